//! The admin listener: `/health/live`, `/health/ready` and `/metrics`
//! (Prometheus text format, counters summed over shards). It runs on shard
//! 0, apart from the client listener, so scraping never competes with the
//! client port's accept queue. Its connections are bounded in number
//! ([`ADMIN_MAX_CONNECTIONS`]) and each has [`ADMIN_REQUEST_TIMEOUT`] for
//! its whole request, however it trickles in.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::codec::http::{self, Method};
use crate::ops::metrics::{self, ShardMetrics};

/// Admin requests are tiny; a scraper that takes longer than this to send
/// one (all of it, not each read) is dropped.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Admin connections open at once; more are closed at accept. Scrapers
/// and health checks need a handful.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// The largest admin request head read.
const ADMIN_MAX_HEAD: usize = 8 * 1024;

pub async fn serve(listener: TcpListener, shards: Arc<[Arc<ShardMetrics>]>) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) if open.get() >= ADMIN_MAX_CONNECTIONS => {
                debug!("admin connection limit reached; closing");
                drop(stream);
            }
            Ok(stream) => {
                let shards = Arc::clone(&shards);
                let open = Rc::clone(&open);
                open.set(open.get() + 1);
                glommio::spawn_local(async move {
                    if let Err(e) = answer(stream, &shards).await {
                        debug!(error = %e, "admin request failed");
                    }
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                debug!(error = %e, "admin accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, shards: &[Arc<ShardMetrics>]) -> io::Result<()> {
    let deadline = Instant::now() + ADMIN_REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let out = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || buf.len() > ADMIN_MAX_HEAD {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_request(&buf) {
            Ok(None) => continue,
            Ok(Some(head)) => break respond(&head, shards),
            Err(e) => {
                let mut out = Vec::new();
                http::write_error(&mut out, e.status(), &e.to_string(), None);
                break out;
            }
        }
    };
    stream.write_all(&out).await?;
    stream.close().await
}

fn respond(head: &http::RequestHead<'_>, shards: &[Arc<ShardMetrics>]) -> Vec<u8> {
    let mut out = Vec::new();
    if head.method != Method::Get {
        http::write_error_allowing(&mut out, 405, "only GET", None, Some("GET"));
        return out;
    }
    match head.path {
        "/health/live" => ok(&mut out, "text/plain; charset=utf-8", "live\n"),
        "/health/ready" if metrics::all_ready(shards) => {
            ok(&mut out, "text/plain; charset=utf-8", "ready\n")
        }
        "/health/ready" if metrics::keys_missing(shards) => {
            http::write_error(&mut out, 503, "a guard's keys are not loaded yet", Some(1))
        }
        "/health/ready" => {
            http::write_error(&mut out, 503, "kafka metadata not loaded yet", Some(1))
        }
        "/metrics" => ok(
            &mut out,
            "text/plain; version=0.0.4; charset=utf-8",
            &metrics::render(shards),
        ),
        _ => http::write_error(&mut out, 404, "not found", None),
    }
    out
}

fn ok(out: &mut Vec<u8>, content_type: &str, body: &str) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
}
