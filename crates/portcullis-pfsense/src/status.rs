//! System status and VPN status of a pfSense firewall.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use portcullis_core::duration::format_span;
use portcullis_core::firewall::{BackendError, HealthCheck, SystemStatus, VpnConnection, VpnKind, VpnStatus, VpnUser};
use portcullis_pfrest::PfRestClient;

use crate::PfSenseFirewall;

/// Seconds from pfSense's uptime text (`3 Days 01 Hour 06 Minutes 40 Seconds`, `1 Day 02:03:04`) or a plain
/// number of seconds.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        return (n >= 0.0).then_some(n as u64);
    }
    let mut total = 0u64;
    let mut pending: Option<u64> = None;
    let mut seen = false;
    for token in t.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()) {
        if token.contains(':') {
            let parts: Vec<u64> = token.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
            let secs = parts.iter().fold(0u64, |acc, p| acc * 60 + p);
            let secs = if parts.len() == 2 { secs * 60 } else { secs };
            total += secs;
            seen = true;
        } else if let Ok(n) = token.parse::<u64>() {
            pending = Some(n);
        } else {
            let unit = token.to_ascii_lowercase();
            let n = pending.take()?;
            let factor = if unit.starts_with("day") {
                86_400
            } else if unit.starts_with("hour") {
                3_600
            } else if unit.starts_with("min") {
                60
            } else if unit.starts_with("sec") {
                1
            } else {
                return None;
            };
            total += n * factor;
            seen = true;
        }
    }
    seen.then_some(total)
}

pub(crate) async fn system_status(fw: &PfSenseFirewall) -> Result<SystemStatus, BackendError> {
    let c = &fw.client;
    let started = Instant::now();
    let st = c.system_status().await?;
    let latency = started.elapsed();
    let version = c.version().await?;
    let mut health = vec![HealthCheck {
        name: "api".into(),
        ok: true,
        detail: format!("pfRest {version} answered in {} ms", latency.as_millis()),
    }];
    health.push(match c.apply_status().await {
        Ok(a) if a.applied == Some(true) => {
            HealthCheck { name: "pending_changes".into(), ok: true, detail: "no pending firewall changes".into() }
        }
        Ok(a) => HealthCheck {
            name: "pending_changes".into(),
            ok: false,
            detail: format!(
                "changes not applied yet: {}",
                if a.pending_subsystems.is_empty() { "unknown".into() } else { a.pending_subsystems.join(", ") }
            ),
        },
        Err(e) => HealthCheck { name: "pending_changes".into(), ok: false, detail: e.message },
    });
    health.push(match c.gateways().await {
        Ok(gws) if gws.is_empty() => HealthCheck { name: "gateways".into(), ok: true, detail: "no gateways".into() },
        Ok(gws) => {
            let down: Vec<String> = gws
                .iter()
                .filter(|g| !matches!(g.status.to_ascii_lowercase().as_str(), "online" | "none" | ""))
                .map(|g| format!("{} {}", g.name, g.status))
                .collect();
            let summary: Vec<String> = gws
                .iter()
                .map(|g| match (g.delay, g.loss) {
                    (Some(d), Some(l)) => format!("{} {} ({d:.1} ms, {l:.0}% loss)", g.name, g.status),
                    _ => format!("{} {}", g.name, g.status),
                })
                .collect();
            HealthCheck {
                name: "gateways".into(),
                ok: down.is_empty(),
                detail: if down.is_empty() { summary.join(", ") } else { format!("not online: {}", down.join(", ")) },
            }
        }
        Err(e) => HealthCheck { name: "gateways".into(), ok: false, detail: e.message },
    });
    let uptime = st.uptime.as_deref().and_then(parse_uptime).unwrap_or(0);
    let platform = match (&st.platform, &st.cpu_model) {
        (Some(p), Some(cpu)) => format!("{p} on {cpu}"),
        (Some(p), None) => p.clone(),
        (None, Some(cpu)) => cpu.clone(),
        (None, None) => "pfSense".into(),
    };
    Ok(SystemStatus {
        cpu_usage: st.cpu_usage.unwrap_or(0.0).clamp(0.0, 100.0),
        memory_usage: st.mem_usage.unwrap_or(0.0).clamp(0.0, 100.0),
        uptime,
        uptime_human: format_span(TimeDelta::seconds(uptime.min(i64::MAX as u64) as i64)),
        version: format!("pfSense with pfRest {version}"),
        platform,
        hostname: c.host().to_string(),
        health,
    })
}

fn wanted(kind: Option<VpnKind>, this: VpnKind) -> bool {
    kind.is_none_or(|k| k == this)
}

fn host_port(host: Option<&str>, port: Option<&str>) -> Option<String> {
    match (host.filter(|h| !h.is_empty()), port.filter(|p| !p.is_empty() && *p != "0")) {
        (Some(h), Some(p)) if h.contains(':') && !h.starts_with('[') => Some(format!("[{h}]:{p}")),
        (Some(h), Some(p)) => Some(format!("{h}:{p}")),
        (Some(h), None) => Some(h.to_string()),
        _ => None,
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

pub(crate) async fn vpn_status(c: &PfRestClient, kind: Option<VpnKind>) -> Result<VpnStatus, BackendError> {
    let mut out = VpnStatus::default();
    if wanted(kind, VpnKind::Openvpn) {
        for s in c.openvpn_servers().await? {
            let (bytes_in, bytes_out) =
                s.conns.iter().fold((0u64, 0u64), |(i, o), c| (i + c.bytes_recv, o + c.bytes_sent));
            out.connections.push(VpnConnection {
                kind: VpnKind::Openvpn,
                name: s.name.clone(),
                status: if s.conns.is_empty() {
                    "up (no clients)".into()
                } else {
                    format!("up ({} clients)", s.conns.len())
                },
                local: s.port.as_ref().map(|p| format!("port {p}")),
                remote: None,
                bytes_in,
                bytes_out,
            });
            for conn in &s.conns {
                out.users.push(VpnUser {
                    kind: VpnKind::Openvpn,
                    name: non_empty(&conn.user_name).unwrap_or_else(|| conn.common_name.clone()),
                    remote_address: non_empty(&conn.remote_host),
                    virtual_address: non_empty(&conn.virtual_addr).or_else(|| non_empty(&conn.virtual_addr6)),
                    connected_since: conn
                        .connect_time_unix
                        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
                        .map(|t| t.to_rfc3339())
                        .or_else(|| non_empty(&conn.connect_time)),
                    bytes_in: conn.bytes_recv,
                    bytes_out: conn.bytes_sent,
                });
            }
        }
        for cl in c.openvpn_clients().await? {
            out.connections.push(VpnConnection {
                kind: VpnKind::Openvpn,
                name: cl.name.clone(),
                status: non_empty(&cl.status).or_else(|| non_empty(&cl.state)).unwrap_or_else(|| "unknown".into()),
                local: host_port(cl.local_host.as_deref(), cl.local_port.as_deref()),
                remote: host_port(cl.remote_host.as_deref(), cl.remote_port.as_deref()),
                bytes_in: 0,
                bytes_out: 0,
            });
        }
    }
    if wanted(kind, VpnKind::Ipsec) {
        for sa in c.ipsec_sas().await? {
            let (bytes_in, bytes_out) =
                sa.child_sas.iter().fold((0u64, 0u64), |(i, o), c| (i + c.bytes_in, o + c.bytes_out));
            out.connections.push(VpnConnection {
                kind: VpnKind::Ipsec,
                name: sa.con_id.clone(),
                status: sa.state.as_deref().map_or_else(|| "unknown".into(), str::to_ascii_lowercase),
                local: non_empty(&sa.local_host),
                remote: non_empty(&sa.remote_host),
                bytes_in,
                bytes_out,
            });
        }
    }
    if wanted(kind, VpnKind::Wireguard) {
        // A firewall without the WireGuard package simply has no WireGuard rows.
        for t in c.wireguard_tunnels().await?.unwrap_or_default() {
            out.connections.push(VpnConnection {
                kind: VpnKind::Wireguard,
                name: non_empty(&t.descr).map_or_else(|| t.name.clone(), |d| format!("{} ({d})", t.name)),
                status: non_empty(&t.status).unwrap_or_else(|| "unknown".into()),
                local: t.listen_port.as_ref().map(|p| format!("port {p}")),
                remote: None,
                bytes_in: t.transfer_rx,
                bytes_out: t.transfer_tx,
            });
        }
        for p in c.wireguard_peers().await?.unwrap_or_default() {
            out.users.push(VpnUser {
                kind: VpnKind::Wireguard,
                // A VPN user Portcullis made is shown by its name, not by the marker in the description.
                name: crate::vpn::user_of(p.descr.as_deref().unwrap_or_default())
                    .or_else(|| non_empty(&p.descr))
                    .unwrap_or_else(|| p.public_key.clone()),
                // wg prints `(none)` for a peer that has not connected.
                remote_address: non_empty(&p.endpoint).filter(|e| e != "(none)"),
                virtual_address: (!p.allowed_ips.is_empty()).then(|| p.allowed_ips.join(", ")),
                connected_since: p
                    .latest_handshake
                    .filter(|t| *t > 0)
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
                    .map(|t| t.to_rfc3339()),
                bytes_in: p.transfer_rx,
                bytes_out: p.transfer_tx,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_formats() {
        assert_eq!(parse_uptime("3 Days 01 Hour 06 Minutes 40 Seconds"), Some(3 * 86_400 + 3_600 + 6 * 60 + 40));
        assert_eq!(parse_uptime("1 Day 01 Hour 01 Minute 01 Second"), Some(90_061));
        assert_eq!(parse_uptime("00 Hours 00 Minutes 05 Seconds"), Some(5));
        assert_eq!(parse_uptime("2 Days 03:04:05"), Some(2 * 86_400 + 3 * 3_600 + 4 * 60 + 5));
        assert_eq!(parse_uptime("12345"), Some(12_345));
        assert_eq!(parse_uptime("soon"), None);
        assert_eq!(parse_uptime(""), None);
    }
}
