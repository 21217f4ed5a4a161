//! System status of the host that runs the nftables target: CPU, memory and uptime from /proc (network
//! namespaces share them with the host), the `nft` version, and the health of Portcullis' table.

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use portcullis_core::firewall::{BackendError, HealthCheck, SystemStatus};

use crate::NftablesFirewall;

#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Keeps the previous CPU reading so that usage covers the interval between two status calls.
#[derive(Default)]
pub struct HostProbe {
    last_cpu: Mutex<Option<CpuTimes>>,
}

impl HostProbe {
    async fn cpu_usage(&self) -> f64 {
        let stored = *self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match stored {
            Some(prev) => Some(prev),
            None => {
                // First call: a short baseline, so the figure describes now and not the average since boot.
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

pub async fn system_status(fw: &NftablesFirewall) -> Result<SystemStatus, BackendError> {
    let cpu = fw.host.cpu_usage().await;
    let version = fw.settings.runner.nft(&["--version"]).await.map_err(|e| e.into_backend("nft --version"))?;
    let uptime = uptime().unwrap_or(0);
    let mut health = Vec::new();
    match fw.read_current().await {
        Ok(current) => {
            let now = Utc::now();
            let live: usize =
                current.state.aliases.iter().map(|a| a.entries.iter().filter(|e| e.is_live(now)).count()).sum();
            let overdue: usize = current.state.aliases.iter().map(|a| a.entries.len()).sum::<usize>() - live;
            health.push(HealthCheck {
                name: "table".into(),
                ok: true,
                detail: if current.exists {
                    format!("table inet {} holds {} rules", fw.settings.table, current.state.rules.len())
                } else {
                    format!("table inet {} is created with the first change", fw.settings.table)
                },
            });
            let down: Vec<&str> =
                current.state.interfaces.iter().filter(|i| !i.enabled).map(|i| i.device.as_str()).collect();
            health.push(HealthCheck {
                name: "interfaces".into(),
                ok: down.is_empty(),
                detail: if down.is_empty() {
                    format!("{} interfaces up", current.state.interfaces.len())
                } else {
                    format!("down or missing: {}", down.join(", "))
                },
            });
            health.push(HealthCheck {
                name: "expiry".into(),
                ok: overdue == 0,
                detail: format!("{live} live set entries, {overdue} expired awaiting removal"),
            });
        }
        Err(e) => health.push(HealthCheck { name: "table".into(), ok: false, detail: e.message }),
    }
    Ok(SystemStatus {
        cpu_usage: cpu,
        memory_usage: memory_usage().unwrap_or(0.0),
        uptime,
        uptime_human: portcullis_core::duration::format_span(chrono::TimeDelta::seconds(uptime as i64)),
        version: version.trim().to_string(),
        platform: format!("Linux, {}", fw.settings.runner),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        health,
    })
}
