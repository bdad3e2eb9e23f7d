//! A man in the middle between Kafka clients and the broker that corrupts
//! record batches on their way to the clients: every occurrence of a marker
//! in a broker's answer gets its last byte flipped, so the batch holding it
//! fails its checksum — what a disk or network fault, or a broken broker,
//! does. The broker advertises the middle's address, so every client (the
//! proxy, the tests' producer) goes through it. Requests pass unchanged.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// Accepts on `listener` for the life of the test process, each connection
/// forwarded to `broker`.
pub fn spawn(listener: TcpListener, broker: SocketAddr, marker: &'static [u8]) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(broker) else {
                continue;
            };
            let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || forward_requests(client, upstream));
            std::thread::spawn(move || forward_answers(u2, c2, marker));
        }
    });
}

fn forward_requests(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Kafka frames (a 4-byte length, then the frame) from the broker, each
/// searched for the marker whole, whatever the reads split.
fn forward_answers(mut from: TcpStream, mut to: TcpStream, marker: &[u8]) {
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
        let mut at = 0;
        while let Some(i) = memchr::memmem::find(&frame[at..], marker) {
            let end = at + i + marker.len();
            frame[end - 1] ^= 0x01;
            at = end;
        }
        if to
            .write_all(&len)
            .and_then(|()| to.write_all(&frame))
            .is_err()
        {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
