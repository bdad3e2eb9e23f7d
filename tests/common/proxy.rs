//! The proxy under test: the real `sse-kafka` binary started on a config
//! written to a temporary directory, listening on ephemeral ports it
//! reports in its log. [`Proxy`] keeps that log (stderr, line by line),
//! reads its metrics and memory, and stops it with SIGTERM or, on drop, a
//! kill.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::broker::Broker;
use super::http::http_get;
use super::wait_until;

/// How to start the proxy beyond its config: flags after `run`'s own, and
/// environment variables set (`Some`) or removed (`None`; `RUST_LOG` is
/// `info` unless one of these changes it).
#[derive(Default)]
pub struct Launch<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, Option<&'a str>)],
}

pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A config with the broker filled in and ephemeral ports; `rest` is
/// appended verbatim (routes and any overrides).
pub fn config_for(broker: &Broker, rest: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nkafka:\n  bootstrap: [\"{}\"]\n  fetch_max_wait: 50ms\n{rest}",
        broker.addr
    )
}

impl Proxy {
    /// Starts the proxy and waits until it reports ready.
    pub fn start(config: &str, cpus: &str) -> Proxy {
        Self::launch(config, cpus, None, &Launch::default()).ready()
    }

    /// Starts the proxy as `launch` says and waits until it reports ready.
    pub fn start_with(config: &str, cpus: &str, launch: &Launch<'_>) -> Proxy {
        Self::launch(config, cpus, None, launch).ready()
    }

    /// Starts the proxy as `launch` says and waits only until it listens.
    pub fn start_unready_with(config: &str, cpus: &str, launch: &Launch<'_>) -> Proxy {
        Self::launch(config, cpus, None, launch)
    }

    /// Waits until the proxy reports ready.
    fn ready(self) -> Proxy {
        wait_until("the proxy to be ready", || {
            http_get(self.admin, "/health/ready")
                .map(|r| r.starts_with("HTTP/1.1 200"))
                .unwrap_or(false)
        });
        self
    }

    /// Starts the proxy and waits only until it listens.
    pub fn start_unready(config: &str, cpus: &str) -> Proxy {
        Self::launch(config, cpus, None, &Launch::default())
    }

    /// Starts the proxy with at most `fds` open descriptors (util-linux
    /// `prlimit`, which then runs it in its place) and waits until it is
    /// ready.
    pub fn start_with_fd_limit(config: &str, cpus: &str, fds: u64) -> Proxy {
        Self::launch(config, cpus, Some(fds), &Launch::default()).ready()
    }

    fn launch(config: &str, cpus: &str, fds: Option<u64>, launch: &Launch<'_>) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-kafka.yaml");
        std::fs::write(&path, config).unwrap();
        let bin = env!("CARGO_BIN_EXE_sse-kafka");
        let mut command = match fds {
            None => Command::new(bin),
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
                c
            }
        };
        command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--cpus", cpus])
            .args(launch.args)
            .env("RUST_LOG", "info");
        for (name, value) in launch.env {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sse-kafka");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut addrs = None;
        wait_until("the proxy to listen", || {
            let log = log.lock().unwrap();
            addrs = log.iter().find_map(|l| {
                let rest = l.split("sse-kafka serving listen=").nth(1)?;
                let mut words = rest.split_whitespace();
                let listen = words.next()?.parse().ok()?;
                let admin = words.next()?.strip_prefix("admin=")?.parse().ok()?;
                Some((listen, admin))
            });
            addrs.is_some()
        });
        let (addr, admin) = addrs.unwrap();
        Proxy {
            child,
            addr,
            admin,
            log,
            _dir: dir,
        }
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        http_get(self.admin, "/metrics").expect("metrics")
    }

    /// The log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.admin, "/metrics").expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        // SAFETY: plain syscall on the pid of a child we own.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not exit within {within:?}"
            );
            super::pause();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy's resident set size (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the proxy's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .expect("VmRSS in /proc status")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
