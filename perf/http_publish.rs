//! Publishes JSON records to an HTTP endpoint (nchan's publisher location)
//! at a fixed total rate over `--connections` keep-alive connections, each
//! value carrying the send time like the Kafka producer:
//! `{"p":<connection>,"seq":N,"ts":<unix ns>,"pad":".."}` (one sequence per
//! connection, as per partition). Several connections keep the rate when
//! the server answers a publish only after its fan-out (nchan does).
//!
//! `cargo run --release -p sse-kafka-perf --bin http_publish -- --addr 127.0.0.1:18081 --path /pub --rate 100 --seconds 30 --connections 4`

#[path = "args.rs"]
mod args;
use args::arg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> anyhow::Result<()> {
    let addr = arg("--addr", "127.0.0.1:18081");
    let path = arg("--path", "/pub");
    let rate: f64 = arg("--rate", "100").parse()?;
    let seconds: u64 = arg("--seconds", "30").parse()?;
    let connections: usize = arg("--connections", "4").parse()?;
    let threads: Vec<_> = (0..connections)
        .map(|p| {
            let (addr, path) = (addr.clone(), path.clone());
            std::thread::spawn(move || publish(&addr, &path, p, rate / connections as f64, seconds))
        })
        .collect();
    for t in threads {
        t.join().expect("publisher thread")?;
    }
    Ok(())
}

fn publish(addr: &str, path: &str, p: usize, rate: f64, seconds: u64) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    let mut seq = 0u64;
    let pad = "x".repeat(100);
    while Instant::now() < end {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += interval;
        let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let body = format!("{{\"p\":{p},\"seq\":{seq},\"ts\":{ts},\"pad\":\"{pad}\"}}");
        seq += 1;
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: publish\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        // Read the response (head, then a content-length body) before the next.
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            anyhow::ensure!(
                reader.read_line(&mut line)? > 0,
                "publisher connection closed"
            );
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse()?;
            }
        }
        let mut sink = vec![0u8; length];
        reader.read_exact(&mut sink)?;
    }
    Ok(())
}
