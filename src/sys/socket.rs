//! The socket calls the proxy makes beyond glommio's: the listeners
//! (`SO_REUSEPORT`, a large backlog, `TCP_DEFER_ACCEPT`, handed to glommio),
//! non-blocking sends straight from the caller's slices (one `sendmsg` for
//! many frames), a non-blocking first read of the request head, and one
//! `poll` over every stream to find the clients that hung up.
//!
//! Every send and receive goes through a `&TcpStream`, which owns its
//! descriptor for as long as it lives: a descriptor is never used after
//! its socket was closed, by construction.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Accept backlog per shard listener. Connection bursts of thousands per
/// second overflow a small queue (glommio's own bind hard-codes 1,024);
/// the kernel caps it at `net.core.somaxconn`. It also bounds the
/// connections waiting for their request (`TCP_DEFER_ACCEPT`); past it
/// (and past `net.ipv4.tcp_max_syn_backlog`) the kernel answers with SYN
/// cookies, which accept a connection before its request is in: each then
/// waits for it with a task, where one whose request came with it needs
/// none (measured: 15,000 connections at once, 6,807 past a backlog of
/// 8,192, cost 300 B more per idle stream). So as large as the kernel
/// lets it be.
const LISTEN_BACKLOG: i32 = 65535;

/// Sends never wait and never raise SIGPIPE (a client that went away is an
/// error return, not a signal).
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// One client listener per shard on the same address (`SO_REUSEPORT` lets
/// the kernel spread connections over the shards).
///
/// `TCP_DEFER_ACCEPT` (up to `defer`): a connection is
/// accepted once its request has arrived, so the head is read and parsed
/// at once in the shard's scratch buffer. Without it a burst of clients is
/// accepted before their requests, and each connection allocates read state
/// whose freed memory stays scattered in the heap (measured: about 1 KB of
/// RSS per idle stream).
pub fn client_listener(addr: SocketAddr, defer: Duration) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    let seconds = libc::c_int::try_from(defer.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket and an option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// Hands a bound, listening socket to the calling shard's glommio reactor
/// (glommio offers no safe conversion for listeners).
pub fn glommio_listener(socket: impl Into<Socket>) -> TcpListener {
    let fd = socket.into().into_raw_fd();
    // SAFETY: `fd` is a listening socket we owned and gave up just above;
    // the glommio listener now owns it and closes it when dropped.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// A glommio stream on a connected socket of any kind (tests run streams
/// over Unix socket pairs).
#[cfg(test)]
pub fn stream_from(fd: std::os::fd::OwnedFd) -> TcpStream {
    // SAFETY: `fd` is an open socket we owned and give up here; the stream
    // now owns it and closes it when dropped.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd.into_raw_fd()) }
}

/// The stream's descriptor, borrowed for as long as the stream is.
fn fd(stream: &TcpStream) -> BorrowedFd<'_> {
    // SAFETY: a glommio `TcpStream` owns its descriptor until it is dropped,
    // and the borrow cannot outlive `stream`.
    unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
}

/// Sends what the socket takes of `bytes` now, without waiting.
pub fn send_now(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let fd = fd(stream);
    SockRef::from(&fd).send_with_flags(bytes, SEND_FLAGS)
}

/// Sends what the socket takes of `parts` now, in order, with one
/// `sendmsg`, without waiting.
pub fn send_vectored_now(stream: &TcpStream, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    let fd = fd(stream);
    SockRef::from(&fd).send_vectored_with_flags(parts, SEND_FLAGS)
}

/// Answers a connection that is refused at once, without waiting: what
/// the client sent so far is read away first (closing with unread bytes
/// would reset the connection and lose the answer), then `answer` is sent
/// as far as the socket takes it. The caller closes the stream.
pub fn answer_now(stream: &TcpStream, answer: &[u8]) {
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        match recv_now(stream, &mut scratch) {
            Ok(Some(n)) if n == scratch.len() => continue,
            _ => break,
        }
    }
    let _ = send_now(stream, answer);
}

/// One non-blocking `recv`: `None` when nothing has arrived yet.
pub fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; the descriptor
        // is owned by `stream`, borrowed for the call.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

/// Finds the streams whose client closed its end: one `poll` with no wait
/// over every stream added. A stream's socket is otherwise only written, so
/// a client that went away would hold its descriptor until a write failed.
/// Reuse one `HangUps` (it keeps its buffer).
#[derive(Debug, Default)]
pub struct HangUps {
    polled: Vec<libc::pollfd>,
}

impl HangUps {
    pub fn clear(&mut self) {
        self.polled.clear();
    }

    /// Adds a stream, asking whether it has room too when `room`; the
    /// answer for it is at this index.
    pub fn add(&mut self, stream: &TcpStream, room: bool) {
        let events = if room {
            libc::POLLRDHUP | libc::POLLOUT
        } else {
            libc::POLLRDHUP
        };
        self.polled.push(libc::pollfd {
            fd: stream.as_raw_fd(),
            events,
            revents: 0,
        });
    }

    /// Polls every stream added since the last `clear`; then `hung_up(i)`
    /// tells about the `i`-th. The caller adds and polls without awaiting
    /// in between, so every descriptor is still its stream's.
    pub fn poll(&mut self) -> io::Result<usize> {
        // SAFETY: `polled` is a valid, writable array of its length.
        let n = unsafe {
            libc::poll(
                self.polled.as_mut_ptr(),
                self.polled.len() as libc::nfds_t,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Whether the `i`-th stream's client closed its end, as of the last
    /// `poll`.
    pub fn hung_up(&self, i: usize) -> bool {
        self.polled[i].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Whether the `i`-th stream's socket has room, as of the last `poll`
    /// (asked only when added with `room`).
    pub fn has_room(&self, i: usize) -> bool {
        self.polled[i].revents & libc::POLLOUT != 0
    }
}
