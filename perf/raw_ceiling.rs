//! The raw ceiling: the least work any SSE server can do per event on this
//! kernel. One thread (pin it with `taskset`), one pre-encoded frame per
//! record written with one `send` per socket, no parsing beyond waiting for
//! the request head, no Kafka. Records are generated in-process at `--rate`
//! per second, each `data:{"p":0,"seq":N,"ts":<unix ns>}` so the load
//! generator measures it exactly like the proxy.
//!
//! `cargo run --release -p sse-kafka-perf --bin raw_ceiling -- --listen 127.0.0.1:18090 --rate 100 --seconds 60`

#[path = "args.rs"]
mod args;
use args::arg;

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

/// One non-blocking send of a whole frame. A ceiling does not queue: a full
/// socket loses the frame (which only flatters the ceiling); a partial
/// write would break the framing, so that connection is dropped.
fn send_frame(s: &TcpStream, bytes: &[u8]) -> Sent {
    // SAFETY: plain syscall on an open socket with a valid buffer.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n == bytes.len() as isize {
        Sent::Whole
    } else if n < 0 && std::io::Error::last_os_error().kind() == ErrorKind::WouldBlock {
        Sent::Full
    } else {
        Sent::Broken
    }
}

#[derive(PartialEq)]
enum Sent {
    Whole,
    Full,
    Broken,
}

/// The listener with the same backlog as the proxy's (std's is 128, which
/// refuses a burst of thousands of connects).
fn listen_socket(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(8192)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn main() -> anyhow::Result<()> {
    let listen = arg("--listen", "127.0.0.1:18090");
    let rate: f64 = arg("--rate", "100").parse()?;
    let seconds: u64 = arg("--seconds", "60").parse()?;
    // Like the proxy (and any server that cares about latency), no Nagle:
    // with it the kernel would batch small frames per connection and the
    // ceiling would measure a different trade-off.
    let nodelay: bool = arg("--nodelay", "true").parse()?;
    let listener = listen_socket(listen.parse()?)?;
    eprintln!("raw ceiling on {listen}");
    let mut pending: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    let mut live: Vec<TcpStream> = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    let mut seq = 0u64;
    let mut frame = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        // Accept and answer new clients.
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true)?;
                    s.set_nodelay(nodelay)?;
                    pending.push((s, Vec::new()));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        pending.retain_mut(|(s, head)| match s.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    if send_frame(s, HEAD) == Sent::Whole {
                        live.push(s.try_clone().expect("clone socket"));
                    }
                    false
                } else {
                    true
                }
            }
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        });
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_micros(500)));
            continue;
        }
        next += interval;
        let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        frame.clear();
        frame.extend_from_slice(
            format!("data:{{\"p\":0,\"seq\":{seq},\"ts\":{ts},\"pad\":\"").as_bytes(),
        );
        frame.resize(frame.len() + 100, b'x');
        frame.extend_from_slice(b"\"}\n\n");
        seq += 1;
        live.retain(|s| send_frame(s, &frame) != Sent::Broken);
    }
    Ok(())
}
