//! Latency percentiles, rates and peak memory of child processes.

use std::time::Duration;

/// Sorted request latencies.
pub(crate) struct Latencies(Vec<Duration>);

impl Latencies {
    pub(crate) fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    /// The `p`-quantile (0 < p <= 1) in milliseconds, nearest-rank; 0 when empty.
    pub(crate) fn ms(&self, p: f64) -> f64 {
        let n = self.0.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.0[rank - 1].as_secs_f64() * 1e3
    }
}

/// `count / elapsed`, guarded against a zero duration.
pub(crate) fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// `VmHWM` (peak resident set size) of a live process, in kB.
pub(crate) fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak RSS of a process we own (`clear_refs` 5), so that the
/// next `VmHWM` read covers only what follows. False where unsupported.
pub(crate) fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU time (user + system) of a process in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(stat_path: &std::path::Path) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the command: state, ppid, … utime is field 14 of the line, stime 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU ticks of the server, of each `postgres` process and of this process.
///
/// PostgreSQL's processes are kept by pid: backends come and go (a
/// scenario's connections close while the next one runs), so a plain sum
/// would drop by what exited processes had used and hide the interval's
/// work. The work of a backend that exits within the interval is lost, which
/// undercounts only what it did between its last sample and its exit.
#[derive(Clone, Default)]
pub(crate) struct CpuSnapshot {
    server: u64,
    postgres: std::collections::HashMap<u32, u64>,
    me: u64,
}

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

impl CpuSnapshot {
    pub(crate) fn take(server_pid: u32) -> Self {
        let server = cpu_ticks(std::path::Path::new(&format!("/proc/{server_pid}/stat"))).map_or(0, |(_, t)| t);
        let me = cpu_ticks(std::path::Path::new("/proc/self/stat")).map_or(0, |(_, t)| t);
        let mut postgres = std::collections::HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Some((comm, t)) = cpu_ticks(&entry.path().join("stat"))
                    && comm == "postgres"
                {
                    postgres.insert(pid, t);
                }
            }
        }
        Self { server, postgres, me }
    }

    /// `server_cpu_s=… postgres_cpu_s=… loadtest_cpu_s=…` since `earlier`.
    pub(crate) fn since(&self, earlier: &Self) -> String {
        let s = |a: u64, b: u64| a.saturating_sub(b) as f64 / TICKS_PER_S;
        // A pid seen only now started within the interval: all its time counts.
        let postgres: u64 = self
            .postgres
            .iter()
            .map(|(pid, t)| t.saturating_sub(earlier.postgres.get(pid).copied().unwrap_or(0)))
            .sum();
        format!(
            "server_cpu_s={:.2} postgres_cpu_s={:.2} loadtest_cpu_s={:.2}",
            s(self.server, earlier.server),
            postgres as f64 / TICKS_PER_S,
            s(self.me, earlier.me)
        )
    }
}

pub(crate) fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert!((l.ms(0.5) - 50.0).abs() < 1e-9);
        assert!((l.ms(0.99) - 99.0).abs() < 1e-9);
        assert!((l.ms(0.999) - 100.0).abs() < 1e-9);
        assert_eq!(Latencies::new(Vec::new()).ms(0.5), 0.0);
    }
}
