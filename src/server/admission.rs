//! Admission at accept: every connection counts toward `connections.max`,
//! process-wide, from the moment it is accepted — a client that never
//! finishes its request head holds a descriptor as surely as a stream does
//! — and toward `connections.max_per_ip` for its address. Past either the
//! connection is answered at once (503 or 429, with `retry-after`) and
//! closed, so the descriptor table never fills: the cap is also bounded by
//! the process's descriptor limit, less [`FD_RESERVE`] for Kafka, the admin
//! listener and the runtime's own descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::codec::http;
use crate::config::Connections;

/// Descriptors kept free of client connections: the sidecars' Kafka
/// connections, admin requests, io_uring rings, event fds, the log.
pub const FD_RESERVE: usize = 256;

/// What a client past the limits is told to wait before it tries again.
const RETRY_AFTER_SECS: u64 = 1;

/// The process's connection count (see the module doc).
#[derive(Debug)]
pub struct Admission {
    open: AtomicUsize,
    max: usize,
    per_ip: Option<PerIp>,
}

#[derive(Debug)]
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `connections.max` (or the descriptor budget) is reached: 503.
    Full,
    /// Its address holds `connections.max_per_ip`: 429.
    PerIp,
}

impl Refused {
    /// The whole answer: status, `retry-after`, a one-line reason.
    pub fn response(self) -> Vec<u8> {
        let mut out = Vec::new();
        let (status, why) = match self {
            Refused::Full => (503, "connection limit reached"),
            Refused::PerIp => (429, "too many connections from this address"),
        };
        http::write_error(&mut out, status, why, Some(RETRY_AFTER_SECS));
        out
    }
}

impl Admission {
    /// The cap is `connections.max`, bounded by `fd_limit` less the
    /// reserve. The second value is a warning when the config asks for more
    /// than the descriptors allow.
    pub fn new(config: &Connections, fd_limit: Option<u64>) -> (Self, Option<String>) {
        let budget = fd_limit.map(|l| {
            usize::try_from(l)
                .unwrap_or(usize::MAX)
                .saturating_sub(FD_RESERVE)
        });
        let max = match budget {
            Some(b) => config.max.min(b.max(1)),
            None => config.max,
        };
        let warning = (max < config.max).then(|| {
            format!(
                "connections.max is {} but the process may open {} descriptors ({FD_RESERVE} kept for Kafka and the admin listener): at most {max} connections are accepted; raise `ulimit -n` (LimitNOFILE) to serve more",
                config.max,
                fd_limit.unwrap_or_default()
            )
        });
        let per_ip = config.max_per_ip.map(|max| PerIp {
            max,
            open: Mutex::new(HashMap::new()),
        });
        let admission = Self {
            open: AtomicUsize::new(0),
            max,
            per_ip,
        };
        (admission, warning)
    }

    /// The connection cap in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections admitted and not yet closed.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        let mut counted_ip = None;
        if let Some(per_ip) = &self.per_ip {
            let mut open = per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(ip).or_insert(0);
            if *n >= per_ip.max {
                drop(open);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::PerIp);
            }
            *n += 1;
            counted_ip = Some(ip);
        }
        Ok(Admitted {
            admission: Arc::clone(self),
            ip: counted_ip,
        })
    }
}

/// One admitted connection: counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let (Some(ip), Some(per_ip)) = (self.ip, &self.admission.per_ip) {
            let mut open = per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn connections(max: usize, max_per_ip: Option<usize>) -> Connections {
        Connections {
            max_queued_bytes: 1 << 20,
            max,
            max_per_ip,
            request_timeout: Duration::from_secs(10),
            nodelay: true,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn the_cap_is_the_process_count_and_is_given_back() {
        let (admission, warning) = Admission::new(&connections(3, None), None);
        assert!(warning.is_none());
        let admission = Arc::new(admission);
        let held: Vec<_> = (0..3).map(|_| admission.admit(A).unwrap()).collect();
        assert_eq!(admission.admit(B).unwrap_err(), Refused::Full);
        assert_eq!(admission.open(), 3);
        drop(held);
        assert_eq!(admission.open(), 0);
        assert!(admission.admit(A).is_ok());
    }

    #[test]
    fn one_address_is_bounded_on_its_own() {
        let admission = Arc::new(Admission::new(&connections(10, Some(2)), None).0);
        let a1 = admission.admit(A).unwrap();
        let _a2 = admission.admit(A).unwrap();
        assert_eq!(admission.admit(A).unwrap_err(), Refused::PerIp);
        let _b = admission.admit(B).unwrap();
        assert_eq!(admission.open(), 3, "a refusal holds nothing");
        drop(a1);
        assert!(admission.admit(A).is_ok());
    }

    #[test]
    fn the_descriptor_limit_bounds_the_cap_with_a_warning() {
        let (admission, warning) = Admission::new(&connections(100_000, None), Some(20_000));
        assert_eq!(admission.max(), 20_000 - FD_RESERVE);
        let warning = warning.unwrap();
        assert!(
            warning.contains("100000") && warning.contains("20000"),
            "{warning}"
        );
        let (roomy, none) = Admission::new(&connections(1000, None), Some(20_000));
        assert_eq!((roomy.max(), none), (1000, None));
    }

    #[test]
    fn refusals_say_when_to_come_back() {
        let full = String::from_utf8(Refused::Full.response()).unwrap();
        assert!(full.starts_with("HTTP/1.1 503 "), "{full}");
        assert!(full.contains("retry-after: 1\r\n"), "{full}");
        let per_ip = String::from_utf8(Refused::PerIp.response()).unwrap();
        assert!(per_ip.starts_with("HTTP/1.1 429 "), "{per_ip}");
        assert!(per_ip.contains("retry-after: 1\r\n"), "{per_ip}");
    }
}
