//! The process's own figures, for the `process_*` metrics the Prometheus
//! client libraries export: CPU time, memory, descriptors and start time,
//! read from `/proc/self` (the same fields client_golang reads).

use std::io;

/// One reading of the process's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on descriptors; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// Since the Unix epoch.
    pub start_time_seconds: f64,
}

fn sysconf(name: libc::c_int) -> io::Result<u64> {
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).map_err(|_| io::Error::last_os_error())
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {what}"))
}

/// The fields of `/proc/self/stat` after the command name (which may hold
/// spaces and parentheses: it ends at the last `)`), numbered from 3 as in
/// proc(5).
fn stat_fields(stat: &str) -> io::Result<Vec<&str>> {
    let after = stat.rfind(')').ok_or_else(|| bad("/proc/self/stat"))?;
    Ok(stat[after + 1..].split_whitespace().collect())
}

/// Reads them now.
pub fn stats() -> io::Result<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields = stat_fields(&stat)?;
    // proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("/proc/self/stat field"))
    };
    let ticks = sysconf(libc::_SC_CLK_TCK)?.max(1) as f64;
    let page = sysconf(libc::_SC_PAGESIZE)?;
    let boot = std::fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| bad("/proc/stat btime"))?;
    // The directory's own descriptor is open while it is read.
    let open_fds = (std::fs::read_dir("/proc/self/fd")?.count() as u64).saturating_sub(1);
    Ok(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        resident_bytes: field(24)? * page,
        virtual_bytes: field(23)?,
        open_fds,
        max_fds: super::fds::descriptor_limit()?,
        start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_passed_over() {
        let stat = "42 (a (b) c) S 1 2 3";
        assert_eq!(stat_fields(stat).unwrap(), ["S", "1", "2", "3"]);
    }

    #[test]
    fn the_figures_are_this_processs() {
        let s = stats().unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        // Within a mebibyte of what the kernel reports a moment apart.
        assert!(
            s.resident_bytes.abs_diff(rss_kib * 1024) < 1 << 20,
            "{s:?} vs {rss_kib} KiB"
        );
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.open_fds >= 3, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started before now, and not before the test binary could have.
        assert!(
            s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 3600.0,
            "{s:?}"
        );
    }
}
