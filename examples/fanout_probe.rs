//! A simple fan-out probe (the full load generator is `loadtest/`): opens K
//! SSE connections, one thread each, parses every event with the crate's SSE
//! parser and measures end-to-end latency from the `"ts"` (unix ns) that the
//! sample producer puts in each value.
//!
//! `cargo run --release --example fanout_probe -- --addr 127.0.0.1:8080 --path /items --clients 1000 --seconds 20 --warmup 5`
//! With `--idle` it only connects and holds the connections for `--seconds`
//! (for RSS per idle connection).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use sse_kafka::sse::Parser;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

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

fn main() -> anyhow::Result<()> {
    let addr = arg("--addr", "127.0.0.1:8080");
    let path = arg("--path", "/items");
    let clients: usize = arg("--clients", "1000").parse()?;
    let seconds: u64 = arg("--seconds", "20").parse()?;
    let warmup: u64 = arg("--warmup", "5").parse()?;
    let idle = std::env::args().any(|a| a == "--idle");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1_000,
        60_000_000_000,
        3,
    )?));
    let mut threads = Vec::new();
    for _ in 0..clients {
        let (addr, path) = (addr.clone(), path.clone());
        let (measuring, stop, events, connected, merged) = (
            measuring.clone(),
            stop.clone(),
            events.clone(),
            connected.clone(),
            merged.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let mut hist =
                        Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        return;
                    };
                    let _ = write!(s, "GET {path} HTTP/1.1\r\nhost: probe\r\n\r\n");
                    connected.fetch_add(1, Ordering::Relaxed);
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    let mut parser = Parser::new();
                    let mut buf = vec![0u8; 16 << 10];
                    let mut in_body = false;
                    let mut n_events = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let n = match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(_) => continue,
                        };
                        if idle {
                            continue;
                        }
                        let mut chunk = &buf[..n];
                        if !in_body {
                            // The head arrives first, whole, in practice; skip it.
                            if let Some(i) = chunk.windows(4).position(|w| w == b"\r\n\r\n") {
                                chunk = &chunk[i + 4..];
                                in_body = true;
                            } else {
                                continue;
                            }
                        }
                        let now = now_ns();
                        let on = measuring.load(Ordering::Relaxed);
                        let _ = parser.feed(chunk, |e| {
                            if on {
                                if let Some(ts) = ts_of(&e.data) {
                                    let _ = hist.record(now.saturating_sub(ts).max(1_000));
                                }
                                n_events += 1;
                            }
                        });
                    }
                    events.fetch_add(n_events, Ordering::Relaxed);
                    merged.lock().unwrap().add(&hist).unwrap();
                })?,
        );
    }
    let t0 = Instant::now();
    while connected.load(Ordering::Relaxed) < clients as u64
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "connected {} clients in {:?}",
        connected.load(Ordering::Relaxed),
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_secs(warmup));
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let h = merged.lock().unwrap();
    let n = events.load(Ordering::Relaxed);
    println!(
        "{{\"clients\":{clients},\"seconds\":{elapsed:.1},\"events\":{n},\"events_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        n as f64 / elapsed,
        h.value_at_quantile(0.5) as f64 / 1e6,
        h.value_at_quantile(0.99) as f64 / 1e6,
        h.max() as f64 / 1e6
    );
    Ok(())
}
