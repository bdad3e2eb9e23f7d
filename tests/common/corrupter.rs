//! A man in the middle between Kafka clients and the broker that counts the
//! requests of each kind (API key) and can corrupt record batches on their
//! way to the clients: every occurrence of a marker in a broker's answer
//! gets its last byte flipped, so the batch holding it fails its checksum —
//! what a disk or network fault, or a broken broker, does. The broker
//! advertises the middle's address, so every client (the proxy, the tests'
//! producer) goes through it. Requests pass unchanged.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Kafka API keys counted (ListOffsets is 2, Metadata 3).
const API_KEYS: usize = 80;

/// Requests that passed the middle, per API key.
#[derive(Debug)]
pub struct Requests([AtomicU64; API_KEYS]);

impl Requests {
    pub fn of(&self, api_key: i16) -> u64 {
        self.0[api_key as usize].load(Ordering::Relaxed)
    }
}

/// Accepts on `listener` for the life of the test process, each connection
/// forwarded to `broker`; answers holding `marker` are corrupted.
pub fn spawn(
    listener: TcpListener,
    broker: SocketAddr,
    marker: Option<&'static [u8]>,
) -> Arc<Requests> {
    let requests = Arc::new(Requests(std::array::from_fn(|_| AtomicU64::new(0))));
    let counts = Arc::clone(&requests);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(broker) else {
                continue;
            };
            let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || forward_requests(client, upstream, &counts));
            std::thread::spawn(move || forward_answers(u2, c2, marker));
        }
    });
    requests
}

/// Kafka request frames, each counted by its API key (the frame's first
/// two bytes) before it is passed on.
fn forward_requests(from: TcpStream, mut to: TcpStream, counts: &Requests) {
    forward_frames(from, &mut to, |frame| {
        if let Some(key) = frame.get(..2) {
            let key = i16::from_be_bytes([key[0], key[1]]);
            if let Some(n) = usize::try_from(key).ok().and_then(|k| counts.0.get(k)) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Kafka frames from the broker, each searched for the marker whole,
/// whatever the reads split.
fn forward_answers(from: TcpStream, mut to: TcpStream, marker: Option<&[u8]>) {
    forward_frames(from, &mut to, |frame| {
        if let Some(marker) = marker {
            let mut at = 0;
            while let Some(i) = memchr::memmem::find(&frame[at..], marker) {
                let end = at + i + marker.len();
                frame[end - 1] ^= 0x01;
                at = end;
            }
        }
    });
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Kafka frames (a 4-byte length, then the frame) from `from` to `to`, each
/// handed whole to `each` before it is passed on, until either side ends.
fn forward_frames(mut from: TcpStream, to: &mut TcpStream, mut each: impl FnMut(&mut [u8])) {
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).is_err() {
            break;
        }
        frame.resize(u32::from_be_bytes(len) as usize, 0);
        if from.read_exact(&mut frame).is_err() {
            break;
        }
        each(&mut frame);
        if to
            .write_all(&len)
            .and_then(|()| to.write_all(&frame))
            .is_err()
        {
            break;
        }
    }
}
