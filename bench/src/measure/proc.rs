//! CPU time, resident memory and threads of the server process, from `/proc/PID/stat` and
//! `/proc/PID/status`; its open descriptors from `/proc/PID/fd`.

use std::time::Instant;

use serde::Serialize;

/// Kernel clock ticks per second for `/proc/PID/stat` times (USER_HZ; 100 on Linux everywhere).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub threads: u64,
    #[serde(skip)]
    pub at: Instant,
}

/// utime + stime in seconds from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<f64> {
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `Key:   value kB` field of `/proc/PID/status`, as a number.
pub fn parse_status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One sample of a live process; None when it is gone or unreadable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_seconds: parse_stat_cpu(&stat)?,
        rss_kib: parse_status_field(&status, "VmRSS").unwrap_or(0),
        threads: parse_status_field(&status, "Threads").unwrap_or(0),
        at: Instant::now(),
    })
}

/// Open file descriptors of a process: the entries of `/proc/PID/fd` (readable for the bench's
/// own children and other processes of the same user); None when unreadable.
pub fn open_fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count() as u64)
}

/// CPU used between two samples, as cores busy (1.0 = one core all the time).
pub fn cores_busy(a: &ProcSample, b: &ProcSample) -> f64 {
    let wall = b.at.saturating_duration_since(a.at).as_secs_f64();
    if wall <= 0.0 { 0.0 } else { (b.cpu_seconds - a.cpu_seconds).max(0.0) / wall }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (chorus (x) y) S 1 4242 4242 0 -1 4194560 5130 0 0 0 1234 567 0 0 20 0 9 0 \
                        3210 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_cpu_counts_after_the_last_paren() {
        let cpu = parse_stat_cpu(STAT).unwrap();
        assert!((cpu - 18.01).abs() < 1e-9, "{cpu}");
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tchorus\nVmPeak:\t  900 kB\nVmRSS:\t   52340 kB\nThreads:\t9\n";
        assert_eq!(parse_status_field(status, "VmRSS"), Some(52340));
        assert_eq!(parse_status_field(status, "Threads"), Some(9));
        assert_eq!(parse_status_field(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
        // stdin, stdout, stderr at least.
        assert!(open_fds(std::process::id()).unwrap() >= 3);
        assert_eq!(open_fds(u32::MAX), None);
    }
}
