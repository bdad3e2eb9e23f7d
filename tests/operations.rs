//! What an operator runs the server with: `--version` naming the commit
//! (and `sse_kafka_build_info` the same), the systemd unit (checked by
//! `systemd-analyze`, Debian's systemd package) and its readiness
//! notification over a real `NOTIFY_SOCKET`, the sysctl drop-in, the log's
//! quiet default and its JSON form, and the `process_*` metrics. Real
//! nisshi broker, real proxy binary.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{config_for, http_get, Broker, Launch, Proxy, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_sse-kafka");

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The checkout's commit, as `--version` should name it.
fn head_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run git");
    assert!(out.status.success(), "git rev-parse: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A broker with topic `ops` (two partitions) and a route to it.
fn broker_and_config() -> (Broker, String) {
    let broker = Broker::start();
    broker.create_topic("ops", 2);
    let config = config_for(&broker, "routes:\n  - path: /ops\n    topic: ops\n");
    (broker, config)
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!(
            "sse-kafka {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head_commit()
        )
    );
}

/// `systemd-analyze`, or the reason the test cannot run (a failure, not a
/// skip: examples/test.sh installs it).
fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("run systemd-analyze (Debian package systemd; examples/test.sh installs it)")
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(repo("examples/systemd/sse-kafka.service")).unwrap();
    // verify checks that ExecStart's binary exists: point it at this build.
    assert!(unit.contains("ExecStart=/usr/local/bin/sse-kafka run --config "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sse-kafka.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/sse-kafka", BIN)).unwrap();
    let path = path.to_str().unwrap();

    let verify = systemd_analyze(&["verify", path]);
    let said = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    // An unknown or misspelt key is only a warning: none may be printed.
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");

    let security = systemd_analyze(&["security", "--offline=yes", path]);
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for sse-kafka.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {report}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");

    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key} missing"))
            .trim()
            .to_owned()
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("CapabilityBoundingSet"), "", "no capabilities");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("DynamicUser"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    let nofile: u64 = value("LimitNOFILE").parse().unwrap();
    assert!(nofile >= 1_000_000, "LimitNOFILE {nofile}");
    // The drop-in may allow it.
    let sysctl = std::fs::read_to_string(repo("examples/systemd/99-sse-kafka.conf")).unwrap();
    let settings: Vec<(&str, &str)> = sysctl
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .unwrap()
        })
        .collect();
    assert!(settings.len() >= 5, "{settings:?}");
    for (key, value) in &settings {
        let proc_path = format!("/proc/sys/{}", key.replace('.', "/"));
        assert!(
            Path::new(&proc_path).exists(),
            "{key} is not a kernel setting"
        );
        let first: u64 = value.split_whitespace().next().unwrap().parse().unwrap();
        assert!(first > 0, "{key} = {value}");
    }
    let nr_open: u64 = settings
        .iter()
        .find(|(k, _)| *k == "fs.nr_open")
        .map(|(_, v)| v.parse().unwrap())
        .expect("fs.nr_open");
    assert!(
        nofile <= nr_open,
        "LimitNOFILE {nofile} above fs.nr_open {nr_open}"
    );
}

/// The datagrams a service manager would get, from a socket bound where
/// `NOTIFY_SOCKET` says.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        // A bound on the wait, not a pause: recv returns as soon as the
        // proxy sends.
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        Manager {
            socket,
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a notification within the deadline");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[test]
fn ready_and_stopping_are_told_to_the_service_manager() {
    let (_broker, config) = broker_and_config();
    let manager = Manager::new();
    let env = [("NOTIFY_SOCKET", Some(manager.path.as_str()))];
    let mut proxy = Proxy::start_unready_with(
        &config,
        "0,1",
        &Launch {
            env: &env,
            ..Launch::default()
        },
    );
    let ready = manager.next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Told only once it is: /health/ready agrees at once.
    let health = http_get(proxy.admin, "/health/ready").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let status = proxy.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let stopping = manager.next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

#[test]
fn without_a_service_manager_nothing_is_sent_and_sighup_ends_nothing() {
    let (_broker, config) = broker_and_config();
    let mut proxy = Proxy::start(&config, "0");
    // SIGHUP's default action would end the process.
    // SAFETY: plain syscall on the pid of a child we own.
    unsafe {
        libc::kill(proxy.pid() as i32, libc::SIGHUP);
    }
    common::wait_until("the SIGHUP warning", || {
        proxy.log_lines().iter().any(|l| l.contains("SIGHUP"))
    });
    let health = http_get(proxy.admin, "/health/ready").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(!proxy
        .log_lines()
        .iter()
        .any(|l| l.contains("service manager")));
    assert!(proxy.terminate(Duration::from_secs(20)).success());
}

/// Starts a proxy with `launch`, waits for ready, and returns its log.
fn log_of(config: &str, launch: &Launch<'_>) -> Vec<String> {
    let mut proxy = Proxy::start_with(config, "0", launch);
    assert!(proxy.terminate(Duration::from_secs(20)).success());
    proxy.log_lines()
}

#[test]
fn the_log_is_quiet_by_default_and_json_on_request() {
    let (_broker, config) = broker_and_config();
    let from_rskafka = |log: &[String]| log.iter().filter(|l| l.contains("rskafka")).count();

    // Asked for, rskafka's info lines are there (so their absence below
    // means something).
    let verbose = log_of(
        &config,
        &Launch {
            args: &["--log", "info,rskafka=info"],
            ..Launch::default()
        },
    );
    assert!(from_rskafka(&verbose) > 0, "{verbose:#?}");

    // Neither --log nor RUST_LOG: sse-kafka's info lines, no rskafka ones.
    let quiet = log_of(
        &config,
        &Launch {
            env: &[("RUST_LOG", None)],
            ..Launch::default()
        },
    );
    assert_eq!(from_rskafka(&quiet), 0, "{quiet:#?}");
    assert!(
        quiet.iter().any(|l| l.contains("all topics ready")),
        "{quiet:#?}"
    );

    // JSON: every line an object with a time, a level, a target and a
    // message.
    let json = log_of(
        &config,
        &Launch {
            env: &[("SSE_KAFKA_LOG_FORMAT", Some("json"))],
            ..Launch::default()
        },
    );
    assert!(json.len() >= 3, "{json:#?}");
    for line in &json {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let serving = json
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("sse-kafka serving"))
        })
        .expect("the serving line");
    assert_eq!(serving["level"], "INFO");

    // A filter that does not parse: exit 2, naming where it came from.
    let bad = Command::new(BIN)
        .args([
            "--log",
            "sse_kafka=loud",
            "check",
            "--config",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.starts_with("error: --log: "), "{said}");
}

#[test]
fn build_info_and_process_metrics_are_exported() {
    let (_broker, config) = broker_and_config();
    let proxy = Proxy::start(&config, "0");
    let text = proxy.metrics_text();
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(
        text.contains(&format!(
            "sse_kafka_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            head_commit()
        )),
        "{text}"
    );
    let rss = sample("process_resident_memory_bytes");
    let measured = proxy.rss_bytes() as f64;
    assert!(
        (rss - measured).abs() < 8.0 * 1024.0 * 1024.0,
        "{rss} vs {measured}"
    );
    let open = sample("process_open_fds");
    let listed = std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))
        .unwrap()
        .count() as f64;
    assert!((open - listed).abs() < 16.0, "{open} vs {listed}");
    assert!(sample("process_max_fds") >= open);
    // What the kernel counts for the proxy (utime + stime, after the
    // command name), read after the scrape: no less.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", proxy.pid())).unwrap();
    let fields: Vec<f64> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_after = (fields[14 - 3] + fields[15 - 3]) / ticks;
    let cpu = sample("process_cpu_seconds_total");
    assert!(cpu >= 0.0 && cpu <= cpu_after, "{cpu} vs {cpu_after}");
    let started = sample("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "{started} vs {now}"
    );
}
