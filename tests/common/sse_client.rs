//! The SSE client: a plain socket that sends a `GET` with
//! `accept: text/event-stream`, reads the response head, then keeps every
//! raw byte for wire assertions while the spec-following parser turns them
//! into events. [`Requested`] splits sending the request from reading the
//! answer, so a test can open many connections in one burst.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sse_kafka::codec::sse::{Event, Parser};

use super::DEADLINE;

/// A real SSE client over a plain socket: it keeps the raw bytes for wire
/// assertions and parses them with the spec-following parser.
pub struct SseClient {
    stream: TcpStream,
    parser: Parser,
    pub head: String,
    pub raw: Vec<u8>,
    events: VecDeque<Event>,
    pub eof: bool,
}

impl SseClient {
    pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        Self::over(TcpStream::connect(addr).unwrap(), path, headers)
    }

    /// A client whose socket receive buffer is tiny, so a client that stops
    /// reading backs up into the server quickly.
    pub fn connect_small_buffer(addr: SocketAddr, path: &str) -> SseClient {
        Self::connect_small_buffer_with(addr, path, &[])
    }

    /// Sends the request from the loopback address `source` (127.x.y.z), so
    /// thousands of connections do not share one source's ephemeral ports.
    pub fn request_from(
        source: IpAddr,
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
        source: IpAddr,
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

    fn over(stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> SseClient {
        Requested::send(stream, path, headers).open()
    }

    /// The socket, for tests that drive many connections themselves.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub fn status(&self) -> u16 {
        self.head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in the head {:?}", self.head))
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

/// A stream whose request is sent but whose response head is not read yet:
/// open many of these first, then [`Requested::open`] each, and the server
/// sees one burst of requests.
pub struct Requested {
    stream: TcpStream,
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
