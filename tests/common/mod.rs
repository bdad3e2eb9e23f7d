//! One helper for every integration test: a real nisshi broker and the real
//! `sse-kafka` binary on ephemeral ports, a Kafka client (rskafka) to create
//! topics and produce, and a raw SSE client that keeps the exact wire bytes.
//!
//! Nothing here sleeps to synchronise: every wait polls a condition with a
//! deadline and fails loudly when it passes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rskafka::chrono::Utc;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use sse_kafka::sse::{Event, Parser};

/// Generous: CI machines are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The nisshi binary: `$NISSHI_BIN`, else `~/.cargo/bin/nisshi`. Missing is
/// a test failure with instructions, never a silent skip.
fn nisshi_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NISSHI_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME is set");
    let p = PathBuf::from(home).join(".cargo/bin/nisshi");
    assert!(
        p.exists(),
        "the nisshi broker is not installed at {}; run examples/install-nisshi.sh (see README)",
        p.display()
    );
    p
}

/// A port that was free a moment ago (the broker needs its port up front).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A record's key and value, either of which may be null.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    producer: ProducerOnly,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(nisshi_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://nisshi/"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nisshi");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until("the broker to accept connections", || {
            TcpStream::connect(addr).is_ok()
        });
        Broker {
            child,
            addr,
            _dir: dir,
            producer: ProducerOnly::connect(addr),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.producer
            .rt
            .block_on(async {
                self.producer
                    .client
                    .controller_client()?
                    .create_topic(name, partitions, 1, 5_000)
                    .await
            })
            .expect("create topic");
    }

    /// Produces one record; returns its offset.
    pub fn produce(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> i64 {
        self.produce_many(
            topic,
            partition,
            vec![(key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec))],
        )[0]
    }

    pub fn produce_many(&self, topic: &str, partition: i32, records: Vec<KeyValue>) -> Vec<i64> {
        self.produce_compressed(topic, partition, records, Compression::NoCompression)
    }

    pub fn produce_compressed(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        compression: Compression,
    ) -> Vec<i64> {
        self.producer
            .produce_records(topic, partition, records, compression)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A config with the broker filled in and ephemeral ports; `rest` is
/// appended verbatim (routes and any overrides).
pub fn config_for(broker: &Broker, rest: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nkafka:\n  bootstrap: [\"{}\"]\n  fetch_max_wait: 50ms\n{rest}",
        broker.addr
    )
}

impl Proxy {
    /// Starts the proxy and waits until it reports ready.
    pub fn start(config: &str, cpus: &str) -> Proxy {
        let proxy = Self::start_unready(config, cpus);
        wait_until("the proxy to be ready", || {
            http_get(proxy.admin, "/health/ready")
                .map(|r| r.starts_with("HTTP/1.1 200"))
                .unwrap_or(false)
        });
        proxy
    }

    /// Starts the proxy and waits only until it listens.
    pub fn start_unready(config: &str, cpus: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-kafka.yaml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--cpus", cpus])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sse-kafka");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut addrs = None;
        wait_until("the proxy to listen", || {
            let log = log.lock().unwrap();
            addrs = log.iter().find_map(|l| {
                let rest = l.split("sse-kafka serving listen=").nth(1)?;
                let mut words = rest.split_whitespace();
                let listen = words.next()?.parse().ok()?;
                let admin = words.next()?.strip_prefix("admin=")?.parse().ok()?;
                Some((listen, admin))
            });
            addrs.is_some()
        });
        let (addr, admin) = addrs.unwrap();
        Proxy {
            child,
            addr,
            admin,
            log,
            _dir: dir,
        }
    }

    pub fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.admin, "/metrics").expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        // SAFETY: plain syscall on the pid of a child we own.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes, returns everything until the server closes.
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A real SSE client over a plain socket: it keeps the raw bytes for wire
/// assertions and parses them with the spec-following parser.
pub struct SseClient {
    stream: TcpStream,
    parser: Parser,
    pub head: String,
    pub raw: Vec<u8>,
    events: std::collections::VecDeque<Event>,
    pub eof: bool,
}

impl SseClient {
    pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        Self::over(TcpStream::connect(addr).unwrap(), path, headers)
    }

    /// A client whose socket receive buffer is tiny, so a client that stops
    /// reading backs up into the server quickly.
    pub fn connect_small_buffer(addr: SocketAddr, path: &str) -> SseClient {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        Self::over(socket.into(), path, &[])
    }

    fn over(mut stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).expect("response head");
            assert!(
                n == 1,
                "connection closed before the response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.push(byte[0]);
        }
        SseClient {
            stream,
            parser: Parser::new(),
            head: String::from_utf8(buf).unwrap(),
            raw: Vec::new(),
            events: Default::default(),
            eof: false,
        }
    }

    /// The socket, for tests that drive many connections themselves.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    /// Reads once (up to the deadline); false on EOF or timeout.
    fn read_more(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.eof {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                let events = &mut self.events;
                self.parser
                    .feed(&buf[..n], |e| events.push_back(e))
                    .expect("valid SSE");
                true
            }
            Err(_) => false,
        }
    }

    pub fn next_event(&mut self) -> Event {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            assert!(
                self.read_more(deadline),
                "no event within {DEADLINE:?} (eof: {})",
                self.eof
            );
        }
    }

    pub fn take(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }

    /// Waits until the parser has seen `n` comments (keep-alives).
    pub fn wait_comments(&mut self, n: u64) {
        let deadline = Instant::now() + DEADLINE;
        while self.parser.comments() < n {
            assert!(
                self.read_more(deadline),
                "no keep-alive within {DEADLINE:?}"
            );
        }
    }

    /// Reads until the server closes the stream.
    pub fn wait_eof(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while !self.eof {
            if !self.read_more(deadline) && !self.eof {
                panic!("stream not closed within {DEADLINE:?}");
            }
        }
    }

    pub fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    pub fn last_event_id(&self) -> Option<String> {
        self.parser.last_event_id().map(str::to_owned)
    }
}

/// A producer with its own Kafka client, for use from another thread.
pub struct ProducerOnly {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl ProducerOnly {
    pub fn connect(addr: SocketAddr) -> ProducerOnly {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(ClientBuilder::new(vec![addr.to_string()]).build())
            .unwrap();
        ProducerOnly { rt, client }
    }

    pub fn produce(&self, topic: &str, partition: i32, value: Vec<u8>) -> i64 {
        self.produce_records(
            topic,
            partition,
            vec![(None, Some(value))],
            Compression::NoCompression,
        )[0]
    }

    /// Produces records with current timestamps (the broker's retention
    /// deletes old ones); returns their offsets.
    pub fn produce_records(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        compression: Compression,
    ) -> Vec<i64> {
        self.rt
            .block_on(async {
                let pc = self
                    .client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await?;
                let records = records
                    .into_iter()
                    .map(|(key, value)| Record {
                        key,
                        value,
                        headers: BTreeMap::new(),
                        timestamp: Utc::now(),
                    })
                    .collect();
                pc.produce(records, compression).await
            })
            .expect("produce")
    }
}
