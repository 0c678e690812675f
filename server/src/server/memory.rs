//! The server's memory budget: its size (configured, or half of what the machine or the
//! cgroup allows) and its metrics.

use std::fmt::Write as _;

use opendata_common::budget::MemoryBudget;

use crate::config::LimitsConfig;

/// The budget `limits` asks for: its configured size, or half of the memory this
/// process may use (0 when that cannot be read, which leaves the budget off).
pub fn budget(limits: &LimitsConfig) -> MemoryBudget {
    let bytes = match limits.memory_budget_bytes {
        Some(bytes) => bytes,
        None => available_memory().map(|m| m / 2).unwrap_or(0),
    };
    if bytes == 0 {
        tracing::info!("no memory budget (limits.memory_budget_bytes = 0)");
    } else {
        tracing::info!(bytes, "memory budget for running requests");
    }
    MemoryBudget::new(bytes)
}

/// The memory this process may use: the smaller of the machine's and the cgroup's.
fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total(&s));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| cgroup_limit(&s));
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A cgroup memory limit: a number of bytes, or none for `max` (v2) or the v1 value
/// that stands for no limit.
fn cgroup_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    // cgroup v1 writes "no limit" as a page-rounded i64::MAX.
    (bytes < (1 << 62)).then_some(bytes)
}

/// Appends the budget's metrics in the Prometheus text format.
pub fn render(budget: &MemoryBudget, out: &mut String) {
    for (metric, kind, help, value) in [
        (
            "opendata_memory_budget_bytes",
            "gauge",
            "The memory budget of running requests (0: none).",
            budget.limit(),
        ),
        (
            "opendata_memory_budget_used_bytes",
            "gauge",
            "Bytes of the memory budget running requests hold.",
            budget.used(),
        ),
        (
            "opendata_memory_budget_refused_total",
            "counter",
            "Requests refused because the memory budget was spent.",
            budget.refused(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} {kind}\n{metric} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_read_mem_total_and_cgroup_limits() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(cgroup_limit("2147483648\n"), Some(2_147_483_648));
    }

    #[test]
    fn should_take_the_configured_size_and_zero_as_off() {
        let b = budget(&LimitsConfig {
            memory_budget_bytes: Some(1000),
        });
        assert_eq!(b.limit(), 1000);
        let off = budget(&LimitsConfig {
            memory_budget_bytes: Some(0),
        });
        assert!(off.reserve(u64::MAX / 4).is_ok());
        let auto = budget(&LimitsConfig::default());
        if let Some(m) = available_memory() {
            assert_eq!(auto.limit(), m / 2);
        }
    }

    #[test]
    fn should_render_the_budget_metrics() {
        let b = MemoryBudget::new(100);
        let _held = b.reserve(40).unwrap();
        assert!(b.reserve(100).is_err());
        let mut out = String::new();
        render(&b, &mut out);
        assert!(out.contains("opendata_memory_budget_bytes 100"), "{out}");
        assert!(
            out.contains("opendata_memory_budget_used_bytes 40"),
            "{out}"
        );
        assert!(
            out.contains("opendata_memory_budget_refused_total 1"),
            "{out}"
        );
    }
}
