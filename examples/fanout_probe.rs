//! A simple fan-out probe (the full load generator is `loadtest/`): opens K
//! SSE connections, drives them from one epoll loop, parses every event with
//! the crate's SSE parser and measures end-to-end latency from the `"ts"`
//! (unix ns) that the sample producer puts in each value.
//!
//! `cargo run --release --example fanout_probe -- --addr 127.0.0.1:8080 --path /items --clients 1000 --seconds 20 --warmup 5`
//! With `--idle` it only connects and holds the connections for `--seconds`
//! (for RSS per idle connection).

#[path = "../perf/args.rs"]
mod args;
use args::arg;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use sse_kafka::sse::Parser;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn ts_of(data: &str) -> Option<u64> {
    let rest = data.split("\"ts\":").nth(1)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

struct Client {
    stream: TcpStream,
    parser: Parser,
    in_body: bool,
    head: Vec<u8>,
    events: u64,
}

fn main() -> anyhow::Result<()> {
    let addr = arg("--addr", "127.0.0.1:8080");
    let path = arg("--path", "/items");
    let clients: usize = arg("--clients", "1000").parse()?;
    let seconds: u64 = arg("--seconds", "20").parse()?;
    let warmup: u64 = arg("--warmup", "5").parse()?;
    let idle = std::env::args().any(|a| a == "--idle");
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3)?;
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(0) };
    anyhow::ensure!(
        ep >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut stream = TcpStream::connect(&addr)?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: probe\r\naccept: text/event-stream\r\n\r\n"
        )?;
        stream.set_nonblocking(true)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: `ep` and the socket fd are open; `ev` is a valid event.
        let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut ev) };
        anyhow::ensure!(rc == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        conns.push(Client {
            stream,
            parser: Parser::new(),
            in_body: false,
            head: Vec::new(),
            events: 0,
        });
    }
    eprintln!("connected {clients} clients in {:?}", t0.elapsed());
    let measure_from = Instant::now() + Duration::from_secs(warmup);
    let end = measure_from + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 64 << 10];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut closed = 0;
    while Instant::now() < end {
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100) };
        let now = now_ns();
        let measuring = Instant::now() >= measure_from;
        for ev in &events[..n.max(0) as usize] {
            let c = &mut conns[ev.u64 as usize];
            loop {
                let n = match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        // SAFETY: removing an fd we added.
                        unsafe {
                            libc::epoll_ctl(
                                ep,
                                libc::EPOLL_CTL_DEL,
                                c.stream.as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                        break;
                    }
                    Ok(n) => n,
                    Err(_) => break,
                };
                if idle {
                    continue;
                }
                let mut chunk = &buf[..n];
                if !c.in_body {
                    c.head.extend_from_slice(chunk);
                    let Some(i) = c.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    c.in_body = true;
                    let rest = c.head.split_off(i + 4);
                    let events_in = &mut c.events;
                    c.parser.feed(&rest, |_| *events_in += 0)?;
                    chunk = &[];
                }
                let (parser, count) = (&mut c.parser, &mut c.events);
                parser.feed(chunk, |e| {
                    if measuring {
                        if let Some(ts) = ts_of(&e.data) {
                            let _ = hist.record(now.saturating_sub(ts).max(1_000));
                        }
                        *count += 1;
                    }
                })?;
            }
        }
    }
    let total: u64 = conns.iter().map(|c| c.events).sum();
    let min = conns.iter().map(|c| c.events).min().unwrap_or(0);
    let max = conns.iter().map(|c| c.events).max().unwrap_or(0);
    println!(
        "{{\"clients\":{clients},\"seconds\":{seconds},\"events\":{total},\"events_per_s\":{:.0},\"per_conn_min\":{min},\"per_conn_max\":{max},\"closed\":{closed},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        total as f64 / seconds as f64,
        hist.value_at_quantile(0.5) as f64 / 1e6,
        hist.value_at_quantile(0.99) as f64 / 1e6,
        hist.max() as f64 / 1e6
    );
    Ok(())
}
