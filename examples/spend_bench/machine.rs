//! Memory and CPU readings from /proc: the server's, the machine's and
//! the local PostgreSQL server's.

use super::*;

pub(super) fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// CPU time of a `/proc/<pid>/stat` line: user and system (the 14th and
/// 15th fields, in clock ticks of 100 per second), and with `children`
/// also that of its exited children (16th and 17th).
pub(super) fn stat_cpu(stat: &str, children: bool) -> Duration {
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(if children { 4 } else { 2 })
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// CPU time (user + system) a process has used so far.
pub(super) fn cpu_time(pid: u32) -> Duration {
    stat_cpu(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default(),
        false,
    )
}

/// The machine's CPU time so far, busy and in all, summed over its cores
/// (`/proc/stat`; idle and I/O wait count as not busy).
pub(super) fn machine_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (
        Duration::from_millis(all.saturating_sub(idle) * 10),
        Duration::from_millis(all * 10),
    )
}

/// The share of the machine's CPU that was busy between two readings of
/// [`machine_cpu`].
pub(super) fn busy_share(before: (Duration, Duration), after: (Duration, Duration)) -> f64 {
    let busy = after.0.saturating_sub(before.0).as_secs_f64();
    let all = after.1.saturating_sub(before.1).as_secs_f64();
    if all > 0.0 { busy / all } else { 0.0 }
}

/// CPU time used so far by the local PostgreSQL server: every `postgres`
/// process, and the backends that have exited (in the postmaster's
/// children's time). Zero when the server is not on this machine.
pub(super) fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains(" (postgres) "))
        .map(|stat| stat_cpu(&stat, true))
        .sum()
}
