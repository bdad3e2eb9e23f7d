//! A real load balancer in front of proxy instances: HAProxy (Debian
//! package `haproxy`, which examples/test.sh installs) started on a config
//! written to a temporary directory, in the foreground, and killed when its
//! [`HaProxy`] drops. Its stats socket tells the test which instances it
//! considers up; every response carries `x-served-by: <name>`, so a client
//! knows which instance served its stream.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::proxy::Proxy;
use super::{free_port, wait_until};

/// The header HAProxy adds to every response: the name of the instance
/// that served it.
pub const SERVED_BY: &str = "x-served-by";

/// Health checks of each instance's admin `/health/ready`, this often: a
/// killed instance is out of rotation within `CHECK_FALL` of these.
const CHECK_INTER: &str = "100ms";

/// Failed checks before an instance is out: two, so one check that is slow
/// under the test's load does not take a live instance out.
const CHECK_FALL: u32 = 2;

/// An SSE stream is one response that never ends and may be quiet for a
/// long time: HAProxy's client, server and tunnel timeouts would cut it,
/// so they are far longer than any test.
const STREAM_TIMEOUT: &str = "1h";

/// The `haproxy` binary: `$HAPROXY_BIN`, else the first on `PATH` or in
/// the sbin directories Debian installs it to (not on every user's
/// `PATH`). Missing is a test failure with instructions, never a skip.
fn haproxy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HAPROXY_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HAPROXY_BIN is {}, which is not a file",
            p.display()
        );
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed (not on PATH, not in /usr/sbin); \
                 run examples/test.sh, which installs the Debian package haproxy, \
                 or `apt-get install haproxy`, or set HAPROXY_BIN"
            )
        })
}

/// One server line of HAProxy's `show stat`.
#[derive(Debug, Clone)]
pub struct ServerStat {
    pub name: String,
    /// `UP`, `DOWN`, `UP 1/2` (going down), ...
    pub status: String,
    /// The last check's result, `L7OK` when `/health/ready` said 200.
    pub check_status: String,
}

pub struct HaProxy {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    stats: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy balancing over `servers` (name, instance) and waits
    /// until its checks find every one of them ready.
    pub fn start(servers: &[(&str, &Proxy)]) -> HaProxy {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("stats.sock");
        let log = dir.path().join("haproxy.log");
        let cfg = dir.path().join("haproxy.cfg");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::write(&cfg, config(addr, &stats, servers)).unwrap();
        let child = Command::new(haproxy_bin())
            // -db: foreground, so the pid is HAProxy's own and it logs to
            // stderr.
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start haproxy");
        let mut lb = HaProxy {
            child,
            addr,
            stats,
            log,
            _dir: dir,
        };
        wait_until("haproxy to find every instance ready", || {
            if let Some(status) = lb.child.try_wait().unwrap() {
                panic!("haproxy exited ({status}):\n{}", lb.log());
            }
            let up = lb.try_servers().is_some_and(|s| {
                s.len() == servers.len()
                    && s.iter()
                        .all(|s| s.status == "UP" && s.check_status == "L7OK")
            });
            up
        });
        lb
    }

    /// What HAProxy wrote to stderr (its warnings and alerts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The backend's servers, as the stats socket reports them.
    pub fn servers(&self) -> Vec<ServerStat> {
        self.try_servers()
            .unwrap_or_else(|| panic!("haproxy's stats socket did not answer:\n{}", self.log()))
    }

    /// The status of server `name` (`UP`, `DOWN`, ...).
    pub fn status_of(&self, name: &str) -> String {
        self.servers()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no server {name} in haproxy's stats"))
            .status
    }

    /// `show stat` on the stats socket: `None` until it answers.
    fn try_servers(&self) -> Option<Vec<ServerStat>> {
        let mut socket = UnixStream::connect(&self.stats).ok()?;
        socket.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        socket.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv) = (column("pxname")?, column("svname")?);
        let (status, check) = (column("status")?, column("check_status")?);
        Some(
            lines
                .map(|l| l.split(',').collect::<Vec<_>>())
                .filter(|f| {
                    f.len() == header.len()
                        && f[px] == "instances"
                        && f[sv] != "BACKEND"
                        && f[sv] != "FRONTEND"
                })
                .map(|f| ServerStat {
                    name: f[sv].to_owned(),
                    status: f[status].to_owned(),
                    check_status: f[check].to_owned(),
                })
                .collect(),
        )
    }
}

/// The config: HTTP mode, round robin with no stickiness (no cookie, no
/// stick table), each server checked on its admin `/health/ready`, and a
/// request that cannot reach its server retried on another one.
fn config(addr: SocketAddr, stats: &std::path::Path, servers: &[(&str, &Proxy)]) -> String {
    let mut cfg = format!(
        "global
  maxconn 4000
  stats socket {stats} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout check 1s
  timeout client {STREAM_TIMEOUT}
  timeout server {STREAM_TIMEOUT}
  timeout tunnel {STREAM_TIMEOUT}
  # A connection refused by (or a request never answered by) an instance
  # that died before its checks noticed is retried, on another instance
  # each time: a GET of a stream start is safe to send again.
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend sse
  bind {addr}
  default_backend instances
backend instances
  balance roundrobin
  option httpchk
  http-check send meth GET uri /health/ready ver HTTP/1.1 hdr host haproxy
  http-check expect status 200
  http-response set-header {SERVED_BY} %[srv_name]
",
        stats = stats.display()
    );
    for (name, proxy) in servers {
        cfg.push_str(&format!(
            "  server {name} {} check port {} inter {CHECK_INTER} fall {CHECK_FALL} rise 1\n",
            proxy.addr,
            proxy.admin.port()
        ));
    }
    cfg
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
