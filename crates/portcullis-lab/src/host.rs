//! Real numbers for the lab's system status, read from the host that runs it (Linux /proc). The lab is
//! in-process, so its CPU, memory and uptime are this machine's.

use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HostSample {
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub uptime_seconds: u64,
    pub hostname: String,
}

#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Keeps the previous CPU reading so that usage is measured over the interval between two status calls.
#[derive(Default)]
pub struct HostProbe {
    last_cpu: Mutex<Option<CpuTimes>>,
}

impl HostProbe {
    pub fn sample(&self) -> HostSample {
        HostSample {
            cpu_usage: self.cpu_usage(),
            memory_usage: memory_usage().unwrap_or(0.0),
            uptime_seconds: uptime().unwrap_or(0),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    fn cpu_usage(&self) -> f64 {
        let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match *last {
            Some(prev) => Some(prev),
            None => {
                // First call: take a short baseline so the figure describes now, not the average since boot.
                let first = cpu_times();
                std::thread::sleep(Duration::from_millis(50));
                first
            }
        };
        let current = cpu_times();
        *last = current;
        match (previous, current) {
            (Some(a), Some(b)) if b.total > a.total => {
                let usage = (b.busy - a.busy.min(b.busy)) as f64 / (b.total - a.total) as f64 * 100.0;
                (usage * 10.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}

fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { busy: total.saturating_sub(idle), total })
}

fn memory_usage() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some(((total - available) / total * 1000.0).round() / 10.0)
}

fn uptime() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    s.split_whitespace().next()?.parse::<f64>().ok().map(|f| f as u64)
}
