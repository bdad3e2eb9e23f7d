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
use sse_kafka::codec::sse::{Event, Parser};

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

/// Starts a nisshi broker on `addr` with `storage` (a `--storage-engine`
/// URL, relative paths resolved in `dir`, where it also reads `.env`) and
/// waits until it accepts connections.
pub fn spawn_nisshi(addr: SocketAddr, storage: &str, dir: &std::path::Path) -> Child {
    let url = format!("tcp://{addr}");
    let child = Command::new(nisshi_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nisshi");
    wait_until("the broker to accept connections", || {
        TcpStream::connect(addr).is_ok()
    });
    child
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = spawn_nisshi(addr, "memory://nisshi/", dir.path());
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

    /// Produces records with headers; returns their offsets.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, Vec<(&str, &str)>)>,
    ) -> Vec<i64> {
        self.producer
            .produce_with_headers(topic, partition, records)
    }

    /// The topics the broker lists (a metadata request that creates none).
    pub fn topics(&self) -> Vec<String> {
        self.producer.topics()
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

    fn over(stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> SseClient {
        Requested::send(stream, path, headers).open()
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

    /// Comments (keep-alives) seen so far.
    pub fn comments(&self) -> u64 {
        self.parser.comments()
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

    /// Reads until the stream's last event id is `want` (an id-only event
    /// counts, as in EventSource).
    pub fn wait_for_id(&mut self, want: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.parser.last_event_id() != Some(want) {
            assert!(
                self.read_more(deadline),
                "last id {:?}, not {want:?}, within {DEADLINE:?}",
                self.parser.last_event_id()
            );
        }
    }
}

/// A producer with its own Kafka client, for use from another thread.
pub struct ProducerOnly {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl ProducerOnly {
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.rt
            .block_on(async {
                self.client
                    .controller_client()?
                    .create_topic(name, partitions, 1, 5_000)
                    .await
            })
            .expect("create topic");
    }

    /// The topics the broker lists (a metadata request that creates none).
    pub fn topics(&self) -> Vec<String> {
        self.rt
            .block_on(self.client.list_topics())
            .expect("list topics")
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    pub fn delete_topic(&self, name: &str) {
        self.rt
            .block_on(async {
                self.client
                    .controller_client()?
                    .delete_topic(name, 5_000)
                    .await
            })
            .expect("delete topic");
    }

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

    /// Produces records with headers; returns their offsets.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, Vec<(&str, &str)>)>,
    ) -> Vec<i64> {
        let records = records
            .into_iter()
            .map(|((key, value), headers)| {
                let headers = headers
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec()))
                    .collect();
                ((key, value), headers)
            })
            .collect();
        self.produce_built(topic, partition, records, Compression::NoCompression)
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
        let records = records
            .into_iter()
            .map(|kv| (kv, BTreeMap::new()))
            .collect();
        self.produce_built(topic, partition, records, compression)
    }

    /// Produces ((key, value), headers) records stamped now.
    fn produce_built(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, BTreeMap<String, Vec<u8>>)>,
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
                    .map(|((key, value), headers)| Record {
                        key,
                        value,
                        headers,
                        timestamp: Utc::now(),
                    })
                    .collect();
                pc.produce(records, compression).await
            })
            .expect("produce")
    }
}

// ---------------------------------------------------------------------------
// Resume, cache and slow-client helpers (tests/resume.rs).
// ---------------------------------------------------------------------------

impl Broker {
    /// Kafka DeleteRecords: the partition's earliest offset becomes
    /// `offset`, as retention would make it.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) {
        self.producer
            .rt
            .block_on(async {
                self.producer
                    .client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await?
                    .delete_records(offset, 5_000)
                    .await
            })
            .expect("delete records");
    }
}

impl Proxy {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy's resident set size (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the proxy's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .expect("VmRSS in /proc status")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }
}

/// A stream whose request is sent but whose response head is not read yet:
/// open many of these first, then [`Requested::open`] each, and the server
/// sees one burst of requests.
pub struct Requested {
    stream: TcpStream,
}

impl SseClient {
    /// Sends the request from the loopback address `source` (127.x.y.z), so
    /// thousands of connections do not share one source's ephemeral ports.
    pub fn request_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Requested {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind the source address");
        socket.connect(&addr.into()).unwrap();
        Requested::send(socket.into(), path, headers)
    }

    /// [`SseClient::connect`] from the loopback address `source`.
    pub fn connect_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> SseClient {
        Self::request_from(source, addr, path, headers).open()
    }

    /// [`SseClient::connect_small_buffer`] with request headers (a resume).
    pub fn connect_small_buffer_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> SseClient {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        Self::over(socket.into(), path, headers)
    }

    /// Events already received and parsed but not yet taken.
    pub fn buffered_events(&self) -> usize {
        self.events.len()
    }

    /// Reads whatever arrives within `wait` (at most one read); true if
    /// bytes arrived. For tests that read a slow client a little at a time.
    pub fn read_some(&mut self, wait: Duration) -> bool {
        self.read_more(Instant::now() + wait)
    }
}

impl Requested {
    /// Sends the request head.
    fn send(mut stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> Requested {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        Requested { stream }
    }

    /// Reads the response head; the stream is then an [`SseClient`].
    pub fn open(self) -> SseClient {
        let mut stream = self.stream;
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
}

/// A record value `p<partition>-<seq>`, optionally `-<padding>` after it.
pub fn seq_value(p: i32, i: usize, pad: &str) -> Vec<u8> {
    if pad.is_empty() {
        format!("p{p}-{i}").into_bytes()
    } else {
        format!("p{p}-{i}-{pad}").into_bytes()
    }
}

/// The partition and sequence number of a [`seq_value`] event.
pub fn value_of(e: &Event) -> (usize, usize) {
    let parse = || {
        let mut parts = e.data.strip_prefix('p')?.split('-');
        let p = parts.next()?.parse().ok()?;
        let i = parts.next()?.parse().ok()?;
        Some((p, i))
    };
    parse().unwrap_or_else(|| panic!("not a sequenced record: {e:?}"))
}

/// Produces [`seq_value`]s `seq` to every partition, `chunk` records per
/// produce request; returns how many records were produced.
pub fn produce_seq(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    seq: std::ops::Range<usize>,
    pad: &str,
    chunk: usize,
) -> usize {
    let mut n = 0;
    for p in 0..partitions {
        for part in seq.clone().collect::<Vec<_>>().chunks(chunk.max(1)) {
            let records = part
                .iter()
                .map(|&i| (None, Some(seq_value(p, i, pad))))
                .collect();
            n += broker.produce_many(topic, p, records).len();
        }
    }
    n
}

/// Checks a stream of [`seq_value`] events as it arrives: within each
/// partition every sequence number exactly once, in order.
#[derive(Debug, Clone)]
pub struct Sequences {
    next: Vec<usize>,
}

impl Sequences {
    /// Expects partition `p` to start at `start[p]`.
    pub fn starting_at(start: Vec<usize>) -> Sequences {
        Sequences { next: start }
    }

    pub fn new(partitions: usize) -> Sequences {
        Self::starting_at(vec![0; partitions])
    }

    pub fn check(&mut self, e: &Event) {
        assert_eq!(e.event, None, "expected a record, got {e:?}");
        let (p, i) = value_of(e);
        assert!(p < self.next.len(), "unexpected partition {p}: {e:?}");
        assert_eq!(
            i, self.next[p],
            "partition {p} out of order, duplicated or with a gap: {e:?}"
        );
        self.next[p] += 1;
    }

    /// The next sequence number expected per partition.
    pub fn next(&self) -> &[usize] {
        &self.next
    }

    pub fn assert_each_at(&self, per_partition: usize) {
        assert_eq!(self.next, vec![per_partition; self.next.len()]);
    }
}

/// Every record exactly once; within a partition, in offset order.
pub fn assert_complete_and_ordered(events: &[Event], partitions: usize, per_partition: usize) {
    let mut seq = Sequences::new(partitions);
    for e in events {
        seq.check(e);
    }
    seq.assert_each_at(per_partition);
}

/// Milliseconds since the Unix epoch, as Kafka timestamps count.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}
