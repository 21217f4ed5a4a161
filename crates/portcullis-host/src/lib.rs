//! Facts about the machine a backend runs on, read from Linux `/proc`: the lab firewall is in-process and an
//! nftables target is this host (network namespaces share these figures with it), so their system status is
//! this machine's.

use std::sync::Mutex;
use std::time::Duration;

/// One reading of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSample {
    /// Percent of CPU time busy since the previous sample (0-100).
    pub cpu_usage: f64,
    /// Percent of memory in use (0-100).
    pub memory_usage: f64,
    pub uptime_seconds: u64,
    pub hostname: String,
}

#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Keeps the previous CPU reading so that usage is measured over the interval between two samples.
#[derive(Default)]
pub struct HostProbe {
    last_cpu: Mutex<Option<CpuTimes>>,
}

impl HostProbe {
    pub async fn sample(&self) -> HostSample {
        HostSample {
            cpu_usage: self.cpu_usage().await,
            memory_usage: memory_usage().unwrap_or(0.0),
            uptime_seconds: uptime().unwrap_or(0),
            hostname: hostname(),
        }
    }

    async fn cpu_usage(&self) -> f64 {
        let stored = *self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match stored {
            Some(prev) => Some(prev),
            None => {
                // First call: a short baseline, so the figure describes now and not the average since boot. An
                // async sleep: a blocking one would stall a single-threaded runtime (the CLI's, stdio's).
                let first = cpu_times();
                tokio::time::sleep(Duration::from_millis(50)).await;
                first
            }
        };
        let current = cpu_times();
        *self.last_cpu.lock().unwrap_or_else(|p| p.into_inner()) = current;
        match (previous, current) {
            (Some(a), Some(b)) if b.total > a.total => {
                let usage = (b.busy - a.busy.min(b.busy)) as f64 / (b.total - a.total) as f64 * 100.0;
                (usage * 10.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}

/// The kernel's host name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { busy: total.saturating_sub(idle), total })
}

fn memory_usage() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    Some(((total - available) / total * 1000.0).round() / 10.0)
}

fn uptime() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    s.split_whitespace().next()?.parse::<f64>().ok().map(|f| f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_this_linux_host() {
        let probe = HostProbe::default();
        let first = probe.sample().await;
        let second = probe.sample().await;
        for s in [&first, &second] {
            assert!((0.0..=100.0).contains(&s.cpu_usage), "{s:?}");
            assert!(s.memory_usage > 0.0 && s.memory_usage <= 100.0, "{s:?}");
            assert!(s.uptime_seconds > 0, "{s:?}");
            assert!(!s.hostname.is_empty() && s.hostname != "unknown", "{s:?}");
        }
        assert!(second.uptime_seconds >= first.uptime_seconds);
    }
}
