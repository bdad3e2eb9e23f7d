//! The subscribers: K SSE connections spread round-robin over glommio
//! executors, one pinned executor per CPU. Each connection sends a plain
//! HTTP/1.1 GET, checks the response head, then feeds the body to the main
//! crate's SSE parser; every event's value is stamped by the producer (see
//! `value`), so the connection records end-to-end latency and checks each
//! partition's sequence (see `track`). Deadlines are enforced without
//! per-read timers: a per-executor controller task calls `shutdown(2)` on the
//! sockets it wants to end (mid-window drops, and everything at the end),
//! which completes the pending read; the connection then looks at its flags
//! to tell a deliberate close from a server-side one.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, IntoRawFd as _, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sse_kafka::sse::Parser;

use crate::report::{self, Summary};
use crate::track::{SeqTracker, MAX_PARTITIONS};
use crate::value;

/// One read buffer per connection: large enough for many small events per
/// read at high rates, small enough for 100k connections (1.6 GB worst case
/// is still a lot; the kernel socket buffers dominate anyway).
const READ_BUF: usize = 16 << 10;
/// glommio's registered io_uring buffer memory per executor: the connections
/// use their own buffers, so the default (10 MiB) would be wasted.
const IO_MEMORY: usize = 64 << 10;
/// Longest wait for a TCP handshake (the connect is blocking, see `open`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before reconnecting after an error, so a refusing server is not
/// hammered by every connection in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// How often executors publish their latency histogram for the progress line.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// After the window ends, connections get this long to notice the stop.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Only the first few errors per executor are printed; all are counted.
const MAX_LOGGED_ERRORS: u64 = 5;

/// `http://host:port/path?query`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `host` header value (`host:port` as written).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Splits an `http://` URL into authority, host, port and path (no DNS).
pub fn split_url(url: &str) -> Result<(String, String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("url '{url}': only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("url '{url}': no host"));
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("url '{url}': unclosed ["))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("url '{url}': junk after ]")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("url '{url}': bad port '{p}'"))?,
        None => 80,
    };
    Ok((
        authority.to_string(),
        host.to_string(),
        port,
        path.to_string(),
    ))
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (authority, host, port, path) = split_url(url).map_err(anyhow::Error::msg)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(Self {
            addr,
            authority,
            path,
        })
    }
}

/// Whether connection `index` is one of the `fraction` that drop and resume:
/// selects floor(K·fraction) connections spread evenly over the indices (so
/// over the executors too).
pub fn drops(index: usize, fraction: f64) -> bool {
    let f = fraction.clamp(0.0, 1.0);
    (((index + 1) as f64) * f).floor() > ((index as f64) * f).floor()
}

#[derive(Debug, Clone)]
pub struct SubscribeConfig {
    pub target: Target,
    pub connections: usize,
    pub cpus: Vec<usize>,
    /// Source addresses to bind, round-robin; empty lets the kernel choose.
    pub sources: Vec<IpAddr>,
    pub warmup: Duration,
    pub window: Duration,
    pub drop_fraction: f64,
}

/// Instants shared by every executor, from one origin.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    measure_from: Instant,
    drop_at: Instant,
    end: Instant,
}

/// Cross-thread counters for the progress line.
#[derive(Debug)]
pub struct Live {
    /// Events inside the measurement window so far.
    pub events: AtomicU64,
    /// Connections with a stream open now.
    pub open: AtomicU64,
    pub errors: AtomicU64,
    /// Latency so far, published by the executors every `PUBLISH_EVERY`.
    pub latency: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            events: AtomicU64::new(0),
            open: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(report::new_histogram()),
        }
    }
}

/// What one executor hands back.
struct ExecResult {
    latency: Histogram<u64>,
    connect: Histogram<u64>,
    per_connection: Vec<u64>,
    trackers: Vec<SeqTracker>,
    events: u64,
    errors: u64,
    warmup_errors: u64,
}

/// Per-executor state shared by its connection tasks (single thread: Cells).
struct Local {
    live: Arc<Live>,
    latency: RefCell<Histogram<u64>>,
    /// Latency recorded since the last publish to `live`.
    unpublished: RefCell<Histogram<u64>>,
    connect: RefCell<Histogram<u64>>,
    events: Cell<u64>,
    /// Errors from the window on.
    errors: Cell<u64>,
    /// Errors during warm-up (e.g. 503 until the proxy has the topic's
    /// metadata): reported apart, since a clean run may have some.
    warmup_errors: Cell<u64>,
    measure_from: Instant,
    stop: Cell<bool>,
}

impl Local {
    fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        let counter = if Instant::now() < self.measure_from {
            &self.warmup_errors
        } else {
            &self.errors
        };
        counter.set(counter.get() + 1);
        let n = self.errors.get() + self.warmup_errors.get();
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        if n <= MAX_LOGGED_ERRORS {
            eprintln!("subscriber: {what}: {e}");
        }
    }
}

/// One connection's state that outlives its reconnections.
struct Slot {
    /// The open socket, or -1: what the controller shuts down.
    fd: Cell<RawFd>,
    drop_requested: Cell<bool>,
    /// Events inside the window.
    events: Cell<u64>,
    tracker: RefCell<SeqTracker>,
}

/// Runs the subscribers for warm-up + window and returns the report
/// (`produced` left empty). Blocks the calling thread.
pub fn run(cfg: SubscribeConfig, live: Arc<Live>) -> anyhow::Result<Summary> {
    if cfg.cpus.is_empty() {
        bail!("no CPUs to run subscribers on");
    }
    let start = Instant::now();
    let timeline = Timeline {
        measure_from: start + cfg.warmup,
        drop_at: start + cfg.warmup + cfg.window / 2,
        end: start + cfg.warmup + cfg.window,
    };
    let cfg = Arc::new(cfg);
    let mut handles = Vec::with_capacity(cfg.cpus.len());
    for (e, &cpu) in cfg.cpus.iter().enumerate() {
        // Connection i runs on executor i % N and binds source i % S.
        let indices: Vec<usize> = (e..cfg.connections).step_by(cfg.cpus.len()).collect();
        let cfg = Arc::clone(&cfg);
        let live = Arc::clone(&live);
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("sub-{cpu}"))
            .io_memory(IO_MEMORY)
            .spawn(move || executor_main(cfg, indices, live, timeline))
            .map_err(|e| anyhow::anyhow!("starting the executor on CPU {cpu}: {e}"))?;
        handles.push(handle);
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(
            h.join()
                .map_err(|e| anyhow::anyhow!("subscriber executor failed: {e}"))?,
        );
    }

    let mut summary = Summary {
        connections: cfg.connections as u64,
        events: 0,
        seconds: cfg.window.as_secs_f64(),
        latency: report::merge(results.iter().map(|r| &r.latency)),
        connect: report::merge(results.iter().map(|r| &r.connect)),
        per_connection_min: u64::MAX,
        per_connection_max: 0,
        loss: 0,
        duplicates: 0,
        resumes: 0,
        resume_errors: 0,
        errors: 0,
        warmup_errors: 0,
        produced: None,
        produce_failed: 0,
    };
    for r in &results {
        summary.events += r.events;
        summary.errors += r.errors;
        summary.warmup_errors += r.warmup_errors;
        for &n in &r.per_connection {
            summary.per_connection_min = summary.per_connection_min.min(n);
            summary.per_connection_max = summary.per_connection_max.max(n);
        }
        for t in &r.trackers {
            summary.loss += t.loss;
            summary.duplicates += t.duplicates;
            summary.resumes += t.resumes;
            summary.resume_errors += t.resume_errors;
        }
    }
    if summary.per_connection_min == u64::MAX {
        summary.per_connection_min = 0;
    }
    Ok(summary)
}

async fn executor_main(
    cfg: Arc<SubscribeConfig>,
    indices: Vec<usize>,
    live: Arc<Live>,
    timeline: Timeline,
) -> ExecResult {
    let local = Rc::new(Local {
        live,
        latency: RefCell::new(report::new_histogram()),
        unpublished: RefCell::new(report::new_histogram()),
        connect: RefCell::new(report::new_histogram()),
        events: Cell::new(0),
        errors: Cell::new(0),
        warmup_errors: Cell::new(0),
        measure_from: timeline.measure_from,
        stop: Cell::new(false),
    });
    let mut slots = Vec::with_capacity(indices.len());
    let mut tasks = Vec::with_capacity(indices.len());
    for &i in &indices {
        let slot = Rc::new(Slot {
            fd: Cell::new(-1),
            drop_requested: Cell::new(false),
            events: Cell::new(0),
            tracker: RefCell::new(SeqTracker::new()),
        });
        let source = (!cfg.sources.is_empty()).then(|| cfg.sources[i % cfg.sources.len()]);
        tasks.push(glommio::spawn_local(connection(
            Arc::clone(&cfg),
            Rc::clone(&local),
            Rc::clone(&slot),
            source,
            timeline,
        )));
        slots.push(slot);
    }

    let publisher = glommio::spawn_local({
        let local = Rc::clone(&local);
        async move {
            while !local.stop.get() {
                glommio::timer::sleep(PUBLISH_EVERY).await;
                publish(&local);
            }
        }
    });

    if cfg.drop_fraction > 0.0 {
        sleep_until(timeline.drop_at).await;
        for (slot, &i) in slots.iter().zip(&indices) {
            if drops(i, cfg.drop_fraction) {
                slot.drop_requested.set(true);
                shutdown(slot.fd.get());
            }
        }
    }
    sleep_until(timeline.end).await;
    local.stop.set(true);
    for slot in &slots {
        shutdown(slot.fd.get());
    }
    futures_lite::future::or(
        async {
            for t in tasks {
                t.await;
            }
        },
        glommio::timer::sleep(STOP_GRACE),
    )
    .await;
    publisher.cancel().await;
    publish(&local);

    // Bound to a name so the `RefCell` borrows end before `local` is dropped.
    let result = ExecResult {
        latency: local.latency.borrow().clone(),
        connect: local.connect.borrow().clone(),
        per_connection: slots.iter().map(|s| s.events.get()).collect(),
        trackers: slots.iter().map(|s| s.tracker.take()).collect(),
        events: local.events.get(),
        errors: local.errors.get(),
        warmup_errors: local.warmup_errors.get(),
    };
    result
}

fn publish(local: &Local) {
    let mut unpublished = local.unpublished.borrow_mut();
    if unpublished.is_empty() {
        return;
    }
    if let Ok(mut live) = local.live.latency.lock() {
        // Same bounds on both sides: cannot fail.
        let _ = live.add(&*unpublished);
    }
    unpublished.reset();
}

async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        glommio::timer::sleep(at - now).await;
    }
}

/// Ends both directions of a socket, completing any pending read; ignores a
/// closed slot (-1) and errors (the connection may be closing by itself).
fn shutdown(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: shutdown(2) on a descriptor number only affects that
        // socket; the fd is owned by a live connection of this thread (slots
        // are reset to -1 before the stream is dropped), so it is not reused.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// How a stream ended.
enum End {
    /// The run is over.
    Stop,
    /// A deliberate mid-window drop.
    Dropped,
    /// The server closed or the stream broke.
    Failed(anyhow::Error),
}

/// One subscriber: connect, stream, and on a drop or failure reconnect with
/// `Last-Event-ID`, keeping the same tracker.
async fn connection(
    cfg: Arc<SubscribeConfig>,
    local: Rc<Local>,
    slot: Rc<Slot>,
    source: Option<IpAddr>,
    timeline: Timeline,
) {
    let mut buf = vec![0u8; READ_BUF];
    let mut request = Vec::with_capacity(256);
    let mut resume_id: Option<String> = None;
    while !local.stop.get() {
        build_request(&mut request, &cfg.target, resume_id.as_deref());
        let started = Instant::now();
        let (mut stream, body) = match open(&cfg.target, source, &request, &mut buf).await {
            Ok(opened) => opened,
            Err(e) => {
                if !local.stop.get() {
                    local.error("connect", &format_args!("{e:#}"));
                    glommio::timer::sleep(RECONNECT_BACKOFF).await;
                }
                continue;
            }
        };
        let _ = local
            .connect
            .borrow_mut()
            .record(started.elapsed().as_micros() as u64);
        slot.fd.set(stream.as_raw_fd());
        local.live.open.fetch_add(1, Ordering::Relaxed);
        let mut parser = Parser::new();
        let end = stream_events(
            &mut stream,
            &mut parser,
            &mut buf,
            body,
            &local,
            &slot,
            timeline,
        )
        .await;
        slot.fd.set(-1);
        local.live.open.fetch_sub(1, Ordering::Relaxed);
        drop(stream);
        // Keep the older id if this stream ended before its first event.
        if let Some(id) = parser.last_event_id() {
            resume_id = Some(id.to_string());
        }
        match end {
            End::Stop => return,
            End::Dropped => {}
            End::Failed(e) => {
                if local.stop.get() {
                    return;
                }
                local.error("stream", &format_args!("{e:#}"));
                glommio::timer::sleep(RECONNECT_BACKOFF).await;
            }
        }
        if resume_id.is_some() {
            slot.tracker.borrow_mut().begin_resume();
        }
    }
}

fn build_request(out: &mut Vec<u8>, target: &Target, last_event_id: Option<&str>) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.authority.as_bytes());
    out.extend_from_slice(b"\r\naccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        out.extend_from_slice(b"last-event-id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Connects, sends the request and reads the response head. Returns the
/// stream and the range of `buf` holding body bytes read with the head.
///
/// The TCP connect itself is blocking (with a timeout): on loopback or a LAN
/// it takes microseconds, and it keeps the code free of a nonblocking-connect
/// state machine; the executor stalls only for that handshake.
async fn open(
    target: &Target,
    source: Option<IpAddr>,
    request: &[u8],
    buf: &mut [u8],
) -> anyhow::Result<(TcpStream, std::ops::Range<usize>)> {
    let socket = connect_socket(target.addr, source)
        .with_context(|| format!("connecting to {} from {source:?}", target.addr))?;
    // glommio 0.9 implements `From` only for socket2 0.4's `Socket`, so the
    // descriptor is handed over raw.
    // SAFETY: `into_raw_fd` gives up ownership of a valid, connected TCP
    // socket; the stream becomes its only owner.
    let mut stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
    stream.write_all(request).await.context("sending request")?;
    let mut filled = 0;
    let head_end = loop {
        if filled == buf.len() {
            bail!("response head larger than {} bytes", buf.len());
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .context("reading head")?;
        if n == 0 {
            bail!("server closed before the response head");
        }
        filled += n;
        if let Some(i) = find_head_end(&buf[..filled]) {
            break i;
        }
    };
    check_head(&buf[..head_end])?;
    Ok((stream, head_end..filled))
}

fn connect_socket(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source {
        // Pick the port at connect time (IP_BIND_ADDRESS_NO_PORT) so that a
        // source port is exclusive per destination, not per source address.
        if ip.is_ipv4() {
            let on: libc::c_int = 1;
            // SAFETY: valid fd, option value is a c_int of the size passed.
            let _ = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    socket.connect_timeout(&SockAddr::from(addr), CONNECT_TIMEOUT)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Index just past the blank line ending an HTTP head.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Accepts `HTTP/1.x 200` with an unframed (read-to-close) body.
fn check_head(head: &[u8]) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(head);
    let status = text.lines().next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    let (version, code) = (parts.next(), parts.next());
    if !matches!(version, Some("HTTP/1.1" | "HTTP/1.0")) || code != Some("200") {
        bail!("unexpected response: {status}");
    }
    let chunked = text.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    if chunked {
        bail!("chunked responses are not supported");
    }
    Ok(())
}

/// Feeds the body to the parser until the stream ends.
async fn stream_events(
    stream: &mut TcpStream,
    parser: &mut Parser,
    buf: &mut [u8],
    first: std::ops::Range<usize>,
    local: &Local,
    slot: &Slot,
    timeline: Timeline,
) -> End {
    // The head's read may already hold body bytes.
    if !first.is_empty() {
        let (start, end) = (first.start, first.end);
        if let Err(e) = handle_chunk(parser, &buf[start..end], local, slot, timeline) {
            return End::Failed(e);
        }
    }
    loop {
        if local.stop.get() {
            return End::Stop;
        }
        if slot.drop_requested.replace(false) {
            return End::Dropped;
        }
        let n = match stream.read(buf).await {
            Ok(n) => n,
            Err(e) => {
                if local.stop.get() {
                    return End::Stop;
                }
                if slot.drop_requested.replace(false) {
                    return End::Dropped;
                }
                return End::Failed(e.into());
            }
        };
        if n == 0 {
            if local.stop.get() {
                return End::Stop;
            }
            if slot.drop_requested.replace(false) {
                return End::Dropped;
            }
            return End::Failed(anyhow::anyhow!("server closed the stream"));
        }
        if let Err(e) = handle_chunk(parser, &buf[..n], local, slot, timeline) {
            return End::Failed(e);
        }
        // A read with data already queued completes without suspending, so
        // a busy connection would otherwise never give up the CPU: the other
        // connections and the controller's timers (drop, stop) would starve.
        glommio::yield_if_needed().await;
    }
}

/// Parses one chunk: latency (inside the window), sequence tracking, counts.
fn handle_chunk(
    parser: &mut Parser,
    bytes: &[u8],
    local: &Local,
    slot: &Slot,
    timeline: Timeline,
) -> anyhow::Result<()> {
    // One clock reading per chunk: its events arrived together.
    let now = Instant::now();
    let now_ns = crate::unix_ns();
    let in_window = now >= timeline.measure_from && now < timeline.end;
    let mut latency = local.latency.borrow_mut();
    let mut unpublished = local.unpublished.borrow_mut();
    let mut tracker = slot.tracker.borrow_mut();
    let mut counted = 0u64;
    let mut bad = 0u64;
    parser.feed(bytes, |event| {
        // Control events (reset, gap, delete) carry no stamp: count them as
        // errors, since a clean run produces none.
        if event.event.is_some() {
            bad += 1;
            return;
        }
        let Some(stamp) = value::parse(event.data.as_bytes()) else {
            bad += 1;
            return;
        };
        if stamp.partition >= MAX_PARTITIONS {
            bad += 1;
            return;
        }
        tracker.observe(stamp.partition, stamp.seq);
        if in_window {
            counted += 1;
            let us = now_ns.saturating_sub(stamp.ts_ns) / 1_000;
            let _ = latency.record(us.clamp(report::LOWEST_US, report::HIGHEST_US));
            let _ = unpublished.record(us.clamp(report::LOWEST_US, report::HIGHEST_US));
        }
    })?;
    drop((latency, unpublished, tracker));
    if bad > 0 {
        local.error("events without a load stamp", &bad);
    }
    if counted > 0 {
        slot.events.set(slot.events.get() + counted);
        local.events.set(local.events.get() + counted);
        local.live.events.fetch_add(counted, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let ok = |a: &str, h: &str, p: u16, path: &str| {
            Ok((a.to_string(), h.to_string(), p, path.to_string()))
        };
        let cases = [
            (
                "http://127.0.0.1:8080/items",
                ok("127.0.0.1:8080", "127.0.0.1", 8080, "/items"),
            ),
            (
                "http://example.com",
                ok("example.com", "example.com", 80, "/"),
            ),
            (
                "http://h:1/a/b?lastEventId=x",
                ok("h:1", "h", 1, "/a/b?lastEventId=x"),
            ),
            ("http://[::1]:9000/s", ok("[::1]:9000", "::1", 9000, "/s")),
            ("http://[::1]/s", ok("[::1]", "::1", 80, "/s")),
        ];
        for (url, want) in cases {
            assert_eq!(split_url(url), want, "{url}");
        }
        for bad in ["https://h/", "http:///x", "http://h:port/", "http://[::1/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn drop_selection_is_even_and_exact() {
        let cases = [
            (100, 0.1, 10),
            (100, 0.0, 0),
            (100, 1.0, 100),
            (7, 0.5, 3),
            (1000, 0.25, 250),
        ];
        for (k, f, want) in cases {
            let picked: Vec<usize> = (0..k).filter(|&i| drops(i, f)).collect();
            assert_eq!(picked.len(), want, "k={k} f={f}");
        }
        // 10 % of 100 is every tenth connection, not the first ten.
        let picked: Vec<usize> = (0..100).filter(|&i| drops(i, 0.1)).collect();
        assert_eq!(picked, vec![9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
    }

    #[test]
    fn builds_requests() {
        let target = Target {
            addr: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path: "/items".into(),
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, None);
        assert_eq!(
            out,
            b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\n\r\n"
        );
        build_request(&mut out, &target, Some("AbC"));
        assert!(out.ends_with(b"accept: text/event-stream\r\nlast-event-id: AbC\r\n\r\n"));
    }

    #[test]
    fn checks_heads() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
        assert_eq!(
            find_head_end(format!("{ok}data:x").as_bytes()),
            Some(ok.len())
        );
        assert!(check_head(ok.as_bytes()).is_ok());
        for bad in [
            "HTTP/1.1 503 Service Unavailable\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "SSH-2.0\r\n\r\n",
        ] {
            assert!(check_head(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
