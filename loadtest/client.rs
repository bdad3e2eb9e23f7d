//! The client side of one non-blocking SSE connection, shared by
//! `subscribe` and `storm`: open the socket (from a chosen source address,
//! the connect left in progress), build the GET (with `Last-Event-ID` when
//! resuming, `Authorization: Bearer` when the run has tokens) and write it
//! as the socket takes it. The response head is `response`'s.

use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd as _;

use anyhow::{bail, Context as _};
use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::target::Target;
use crate::tokens::Token;

/// Writes the rest of the request; true when it is all sent. A connect
/// still in progress reports `WouldBlock` (wait for writability, which is
/// the end of the handshake); a refused one reports its error here.
#[allow(
    clippy::disallowed_methods,
    reason = "a non-blocking write: the amount is used to resume it"
)]
pub(crate) fn write_request(
    stream: &mut TcpStream,
    request: &[u8],
    sent: &mut usize,
) -> anyhow::Result<bool> {
    while *sent < request.len() {
        match stream.write(&request[*sent..]) {
            Ok(0) => bail!("connection closed while sending the request"),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("sending the request"),
        }
    }
    Ok(true)
}

pub(crate) fn build_request(
    out: &mut Vec<u8>,
    target: &Target,
    last_event_id: Option<&str>,
    token: Option<&Token>,
) {
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
    if let Some(token) = token {
        out.extend_from_slice(b"authorization: Bearer ");
        out.extend_from_slice(token.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn connect_socket(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
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
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Tokens;

    #[test]
    fn builds_requests() {
        let target = Target {
            addr: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path: "/items".into(),
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, None, None);
        assert_eq!(
            out,
            b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\n\r\n"
        );
        build_request(&mut out, &target, Some("AbC"), None);
        assert!(out.ends_with(b"accept: text/event-stream\r\nlast-event-id: AbC\r\n\r\n"));
        let tokens = Tokens::parse("f", b"t0.a.b\nt1.a.b\n").unwrap();
        build_request(&mut out, &target, Some("AbC"), tokens.for_client(3));
        assert!(out.ends_with(b"last-event-id: AbC\r\nauthorization: Bearer t1.a.b\r\n\r\n"));
    }
}
