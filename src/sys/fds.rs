//! The process's file descriptor budget: its limit (`RLIMIT_NOFILE`).
//! Every client connection costs one descriptor; so
//! do Kafka connections, the admin listener's, io_uring rings and event
//! fds. The connection cap keeps a reserve for those (see
//! `server::admission`).

use std::io;

/// The soft limit on open descriptors (what `open`, `accept` and `socket`
/// fail past with EMFILE); `None` when unlimited.
pub fn descriptor_limit() -> io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` to the pointer, which is valid
    // and exclusive for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_bounds_what_is_open() {
        // The descriptors open now; the directory's own is among them.
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() - 1;
        assert!(open >= 3, "stdin, stdout, stderr at least: {open}");
        if let Some(limit) = descriptor_limit().unwrap() {
            assert!(open as u64 <= limit, "{open} open, limit {limit}");
        }
    }
}
