//! CPU lists for pinning worker threads: parsing the `0-3,8` notation that
//! Linux uses everywhere (taskset, cpusets, /sys), and reading which CPUs this
//! process may run on. A list naming a CPU outside the process's affinity mask
//! is refused up front, because pinning a thread there would fail later with
//! an opaque EINVAL, or, inside a container limited by cpusets, would pin to a
//! CPU the container does not own.

use std::fmt::Write as _;

/// Why a CPU list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// The text is not a CPU list.
    #[error("bad CPU list '{list}': {reason}")]
    Syntax { list: String, reason: String },
    /// The list names a CPU this process may not run on.
    #[error(
        "bad CPU list '{list}': CPU {cpu} is not available to this process (allowed: {allowed})"
    )]
    NotAllowed {
        list: String,
        cpu: usize,
        /// The allowed CPUs, in the same notation.
        allowed: String,
    },
    /// The process's own affinity could not be read.
    #[error("bad CPU list '{list}': cannot read this process's CPU affinity: {reason}")]
    Affinity { list: String, reason: String },
}

/// Parses "0-3,8" style lists (ranges inclusive, commas, whitespace tolerated,
/// duplicates removed, sorted); empty → error; a CPU the process may not run on
/// → error naming it.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, CpuListError> {
    let allowed = allowed_cpus().map_err(|e| CpuListError::Affinity {
        list: text.to_string(),
        reason: e.to_string(),
    })?;
    parse_cpu_list_in(text, &allowed)
}

/// [`parse_cpu_list`] against an explicit set of allowed CPUs (sorted or not).
pub fn parse_cpu_list_in(text: &str, allowed: &[usize]) -> Result<Vec<usize>, CpuListError> {
    let syntax = |reason: String| CpuListError::Syntax {
        list: text.to_string(),
        reason,
    };
    if text.trim().is_empty() {
        return Err(syntax("it is empty; expected e.g. '0-3,8'".to_string()));
    }
    let number = |s: &str| -> Result<usize, CpuListError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(syntax("a range is missing a number".to_string()));
        }
        s.parse::<usize>()
            .map_err(|_| syntax(format!("'{s}' is not a CPU number")))
    };
    let mut cpus = Vec::new();
    for part in text.split(',') {
        if part.trim().is_empty() {
            return Err(syntax("empty entry between commas".to_string()));
        }
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if first > last {
            return Err(syntax(format!("range '{}' runs backwards", part.trim())));
        }
        // Checked one CPU at a time, stopping at the first one not allowed, so
        // that a typo like "0-99999999" fails fast instead of allocating.
        for cpu in first..=last {
            if !allowed.contains(&cpu) {
                let mut sorted = allowed.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                return Err(CpuListError::NotAllowed {
                    list: text.to_string(),
                    cpu,
                    allowed: format_cpu_list(&sorted),
                });
            }
            cpus.push(cpu);
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Formats sorted, distinct CPUs in the same notation: `[0,1,2,3,8]` → `0-3,8`.
/// Empty input gives `none`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "none".to_string();
    }
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

/// Largest mask size tried, in bits. Linux's own limit (CONFIG_NR_CPUS) is at
/// most 8192 today; this leaves ample room without looping forever on an error
/// that is not about size.
pub const MAX_AFFINITY_BITS: usize = 1 << 18;

/// CPUs this process may run on, from sched_getaffinity(0) (libc), sorted.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    const WORD_BITS: usize = libc::c_ulong::BITS as usize;
    // Start with glibc's cpu_set_t size (1024 CPUs); the kernel answers EINVAL
    // when its mask is larger than the buffer, so grow until it fits.
    let mut bits = std::mem::size_of::<libc::cpu_set_t>() * 8;
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; bits.div_ceil(WORD_BITS)];
        let bytes = mask.len() * std::mem::size_of::<libc::c_ulong>();
        // SAFETY: `mask` is a live, writable buffer of exactly `bytes` bytes,
        // and the kernel writes at most `cpusetsize` bytes into it. cpu_set_t is
        // itself an array of unsigned longs, so a longer array of them is a
        // valid (larger) CPU set for the call, as with glibc's CPU_ALLOC.
        let rc = unsafe {
            libc::sched_getaffinity(0, bytes, mask.as_mut_ptr().cast::<libc::cpu_set_t>())
        };
        if rc == 0 {
            let cpus = (0..mask.len() * WORD_BITS)
                .filter(|&cpu| mask[cpu / WORD_BITS] & (1 << (cpu % WORD_BITS)) != 0)
                .collect();
            return Ok(cpus);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) || bits >= MAX_AFFINITY_BITS {
            return Err(err);
        }
        bits *= 2;
    }
}

/// CPUs this process may run on. Without sched_getaffinity, all CPUs count as
/// allowed.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    Ok((0..std::thread::available_parallelism()?.get()).collect())
}

/// Pins the calling thread to one CPU (the Kafka sidecar runs on its
/// shard's CPU). The mask is sized to the CPU, as [`allowed_cpus`] sizes its
/// own: libc's fixed `cpu_set_t` holds 1,024 CPUs and its `CPU_SET` does not
/// bound the index, so a host with more CPUs would otherwise panic here. A
/// CPU past [`MAX_AFFINITY_BITS`] is refused with an error naming it.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    const WORD_BITS: usize = libc::c_ulong::BITS as usize;
    if cpu >= MAX_AFFINITY_BITS {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot pin to CPU {cpu}: CPU numbers stop at {MAX_AFFINITY_BITS} here"),
        ));
    }
    let bits = (std::mem::size_of::<libc::cpu_set_t>() * 8).max(cpu + 1);
    let mut mask: Vec<libc::c_ulong> = vec![0; bits.div_ceil(WORD_BITS)];
    mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    let bytes = mask.len() * std::mem::size_of::<libc::c_ulong>();
    // SAFETY: `mask` is a live buffer of exactly `bytes` bytes, which the
    // kernel only reads; an array of unsigned longs is a valid (larger)
    // CPU set, as with glibc's CPU_ALLOC. pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_lists() {
        let allowed: Vec<usize> = (0..16).collect();
        let cases: &[(&str, &[usize])] = &[
            ("0", &[0]),
            ("0-3,8", &[0, 1, 2, 3, 8]),
            (" 0 - 2 , 5 ", &[0, 1, 2, 5]),
            ("8,0-3", &[0, 1, 2, 3, 8]),
            ("1,1,0-2,2", &[0, 1, 2]),
            ("15", &[15]),
            ("3-3", &[3]),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_cpu_list_in(text, &allowed).as_deref(),
                Ok(*want),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_bad_lists() {
        let allowed = [0, 1, 2, 3, 8];
        let cases = [
            ("", "bad CPU list '': it is empty; expected e.g. '0-3,8'"),
            (
                "  ",
                "bad CPU list '  ': it is empty; expected e.g. '0-3,8'",
            ),
            ("0-x", "bad CPU list '0-x': 'x' is not a CPU number"),
            ("a", "bad CPU list 'a': 'a' is not a CPU number"),
            ("-1", "bad CPU list '-1': a range is missing a number"),
            ("2-", "bad CPU list '2-': a range is missing a number"),
            ("0,,1", "bad CPU list '0,,1': empty entry between commas"),
            ("0,", "bad CPU list '0,': empty entry between commas"),
            ("3-1", "bad CPU list '3-1': range '3-1' runs backwards"),
            ("1-2-3", "bad CPU list '1-2-3': '2-3' is not a CPU number"),
            (
                "0-4",
                "bad CPU list '0-4': CPU 4 is not available to this process (allowed: 0-3,8)",
            ),
            (
                "0-99999999999",
                "bad CPU list '0-99999999999': CPU 4 is not available to this process (allowed: 0-3,8)",
            ),
            (
                "9",
                "bad CPU list '9': CPU 9 is not available to this process (allowed: 0-3,8)",
            ),
        ];
        for (text, want) in cases {
            let err = parse_cpu_list_in(text, &allowed).expect_err(text);
            assert_eq!(err.to_string(), want, "{text}");
        }
    }

    #[test]
    fn formats_lists() {
        let cases: &[(&[usize], &str)] = &[
            (&[], "none"),
            (&[0], "0"),
            (&[0, 1, 2, 3, 8], "0-3,8"),
            (&[1, 3, 5], "1,3,5"),
            (&[0, 1, 4, 5, 6], "0-1,4-6"),
        ];
        for (cpus, want) in cases {
            assert_eq!(format_cpu_list(cpus), *want);
        }
    }

    #[test]
    fn reads_own_affinity() {
        let cpus = allowed_cpus().expect("sched_getaffinity");
        assert!(!cpus.is_empty());
        assert!(
            cpus.windows(2).all(|w| w[0] < w[1]),
            "sorted and distinct: {cpus:?}"
        );
        // The machine's own list parses against itself.
        let text = format_cpu_list(&cpus);
        assert_eq!(parse_cpu_list(&text).unwrap(), cpus);
        assert!(
            cpus.len()
                <= std::thread::available_parallelism()
                    .unwrap()
                    .get()
                    .max(cpus.len())
        );
    }

    /// Pinning never indexes past its mask: a CPU beyond libc's 1,024-bit
    /// `cpu_set_t` gets a mask of its size (the kernel then refuses a CPU
    /// the host lacks), and one past the bound is a clear error. Each case
    /// runs on a thread of its own, so the test thread stays unpinned.
    #[test]
    fn pinning_past_1024_cpus_is_an_error_not_a_panic() {
        let on_thread = |cpu: usize| {
            std::thread::spawn(move || pin_current_thread(cpu))
                .join()
                .expect("pinning does not panic")
        };
        let err = on_thread(MAX_AFFINITY_BITS).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            format!("cannot pin to CPU {MAX_AFFINITY_BITS}: CPU numbers stop at {MAX_AFFINITY_BITS} here")
        );
        let allowed = allowed_cpus().unwrap();
        for cpu in [1024, 1025, 4097] {
            if !allowed.contains(&cpu) {
                let err = on_thread(cpu).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "CPU {cpu}");
            }
        }
        // A CPU the process may use still pins.
        on_thread(allowed[0]).expect("pinning to an allowed CPU");
    }
}
