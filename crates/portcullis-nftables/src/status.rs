//! System status of the host that runs the nftables target: CPU, memory and uptime from /proc (network
//! namespaces share them with the host), the `nft` version, and the health of Portcullis' table.

use chrono::Utc;
use portcullis_core::firewall::{BackendError, HealthCheck, SystemStatus};

use crate::NftablesFirewall;

pub async fn system_status(fw: &NftablesFirewall) -> Result<SystemStatus, BackendError> {
    let host = fw.host.sample().await;
    let version = fw.settings.runner.nft(&["--version"]).await.map_err(|e| e.into_backend("nft --version"))?;
    let uptime = host.uptime_seconds;
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
        cpu_usage: host.cpu_usage,
        memory_usage: host.memory_usage,
        uptime,
        uptime_human: portcullis_core::duration::format_span(chrono::TimeDelta::seconds(uptime as i64)),
        version: version.trim().to_string(),
        platform: format!("Linux, {}", fw.settings.runner),
        hostname: host.hostname,
        health,
    })
}
