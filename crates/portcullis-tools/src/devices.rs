//! `list_devices`, `get_online_devices`, `get_offline_devices`: the devices on a target's networks.
//!
//! Each read asks the firewall what it sees now (`Firewall::device_sightings`: the kernel's neighbour table,
//! pfSense's ARP table and DHCP leases) and reads the configured lease files of the target, merges that into the
//! devices remembered in the store (`devices:<target>`, so a device gone quiet is still listed, as offline) and
//! answers each with its vendor from the IEEE OUI registry (Debian's `ieee-data` CSVs). A device is online while
//! it was seen present within `devices.idle`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use portcullis_core::device::{
    DeviceRecord, LeaseFormat, Mac, OuiRegistry, Presence, Sighting, SightingSource, inside_networks, merge,
    parse_leases,
};
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_logs::rollup::SourceStat;
use portcullis_logstore::LogStore;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::work::{ReadJob, ReadScope};
use crate::{CallError, ToolService, now};

/// Where devices come from beside the firewall, and when one counts as gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    /// A device not seen present for this long is offline.
    pub idle: Duration,
    /// The IEEE registry files (MA-L, MA-M, MA-S CSVs); missing ones are skipped.
    pub oui_files: Vec<PathBuf>,
    pub leases: Vec<LeaseFile>,
}

/// A DHCP server's leases file on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFile {
    /// The target whose networks it serves; the default target when unset.
    pub target: Option<String>,
    pub path: PathBuf,
    pub format: LeaseFormat,
    /// The interface its leases are on, when it serves one network.
    pub interface: Option<String>,
}

/// Where Debian's `ieee-data` puts the registry.
pub const DEFAULT_OUI_FILES: [&str; 3] =
    ["/usr/share/ieee-data/oui.csv", "/usr/share/ieee-data/mam.csv", "/usr/share/ieee-data/oui36.csv"];

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            oui_files: DEFAULT_OUI_FILES.iter().map(PathBuf::from).collect(),
            leases: Vec::new(),
        }
    }
}

/// Which devices a call lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceFilter {
    Online,
    Offline,
    All,
}

impl DeviceFilter {
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, CallError> {
        match text.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("all") => Ok(Self::All),
            Some("online") => Ok(Self::Online),
            Some("offline") => Ok(Self::Offline),
            Some(other) => Err(CallError::from(portcullis_core::FieldError::new(
                "status",
                format!("unknown status {other:?}; expected online, offline or all"),
            ))),
        }
    }

    fn admits(self, p: Presence) -> bool {
        match self {
            Self::All => true,
            Self::Online => p == Presence::Online,
            Self::Offline => p == Presence::Offline,
        }
    }
}

/// One device in an answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceView {
    /// Its address (IPv4 first when it has several).
    pub address: String,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The organisation the MAC's block is registered to (IEEE OUI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// The MAC is locally administered (a phone's per-network random address): it names no vendor.
    pub randomized_mac: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub status: Presence,
    pub first_seen: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// neighbour, arp, dhcp_lease, traffic.
    pub sources: Vec<portcullis_core::device::SightingSource>,
    /// What the firewall log holds of it (as a source) in the last day, and the call that lists those lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged: Option<LoggedActivity>,
}

/// A device's lines in the firewall log.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct LoggedActivity {
    pub lines: u64,
    /// Blocked or rejected.
    pub blocked: u64,
    /// Bytes of the logged packets (only what was logged).
    pub bytes: u64,
    /// The `query_firewall_logs` call for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub query: Option<serde_json::Value>,
    /// What `analyze_threats` finds of the device as a source in the same day: type and score.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threats: Vec<DeviceThreat>,
}

/// A threat a device is the source of.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceThreat {
    #[serde(rename = "type")]
    pub kind: String,
    pub threat_score: u8,
    pub attempt_count: u64,
}

/// How far back the firewall log is read for devices.
const TRAFFIC_WINDOW: TimeDelta = TimeDelta::hours(24);

/// What the last day's log says of the inside networks: the addresses it shows as sources, seen present at their
/// last line, what each did, and the threats `analyze_threats` finds among them. One rollup of the day serves
/// all three.
struct LoggedDay {
    seen: Vec<Sighting>,
    stats: HashMap<IpAddr, SourceStat>,
    threats: Vec<crate::analytics::ThreatView>,
}

fn logged_day(logs: &LogStore, outline: &RuleSet, now: Timestamp) -> Result<LoggedDay, CallError> {
    let inside = inside_networks(&outline.interfaces);
    let to = now.timestamp_millis() + 1;
    let rollup = logs
        .rollup(to - TRAFFIC_WINDOW.num_milliseconds(), to)
        .map_err(|e| CallError::internal(format!("the log store does not read: {e}")))?;
    let (threats, _) = crate::analytics::threats_in(logs, &rollup, TRAFFIC_WINDOW, now, 1000)?;
    let mut seen = Vec::new();
    let mut stats = HashMap::new();
    for (ip, stat) in rollup.sources {
        let Some((interface, _)) = inside.iter().find(|(_, net)| net.contains(&ip)) else { continue };
        seen.push(Sighting {
            address: ip,
            mac: None,
            hostname: None,
            interface: Some(interface.clone()),
            source: SightingSource::Traffic,
            present_at: chrono::DateTime::from_timestamp_millis(stat.last_ms),
        });
        stats.insert(ip, stat);
    }
    Ok(LoggedDay { seen, stats, threats })
}

/// The answer of the device tools.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DevicesResult {
    pub target: String,
    pub data: Vec<DeviceView>,
    pub count: usize,
    /// Of every device remembered on the target (whatever the filter).
    pub online: usize,
    pub offline: usize,
    /// A device not seen for this long is offline.
    pub idle_seconds: u64,
    /// What was read, and what could not be.
    pub sources: Vec<String>,
}

/// The read behind the device tools.
pub(crate) struct DeviceRead {
    pub filter: DeviceFilter,
    pub interface: Option<String>,
}

fn records_key(target: &str) -> String {
    format!("devices:{target}")
}

/// The devices remembered on `target`.
pub(crate) fn load_records(svc: &ToolService, target: &str) -> Result<Vec<DeviceRecord>, CallError> {
    svc.guard
        .auditor
        .store()
        .meta_get(&records_key(target))
        .map_err(|e| CallError::internal(e.to_string()))?
        .filter(|t| !t.trim().is_empty())
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| CallError::internal(format!("the device records do not read: {e}")))
        .map(Option::unwrap_or_default)
}

#[async_trait]
impl ReadJob for DeviceRead {
    type Output = DevicesResult;

    async fn read(self, at: &ReadScope<'_>) -> Result<DevicesResult, CallError> {
        let svc = at.svc;
        let target = &at.target.name;
        let now = now();
        let mut sources = Vec::new();
        let mut sightings = match at.target.firewall.device_sightings().await? {
            Some(seen) => {
                sources.push(format!("the firewall's neighbour/ARP table and leases: {} entries", seen.len()));
                seen
            }
            None => {
                sources.push("the firewall keeps no neighbour table Portcullis can read".into());
                Vec::new()
            }
        };
        let default = svc.default_target_name().to_string();
        for file in svc.devices.leases.iter().filter(|f| f.target.as_deref().unwrap_or(&default) == target) {
            // A leases file is small (one line per lease); read where the call runs.
            match std::fs::read_to_string(&file.path) {
                Ok(text) => {
                    let (leases, skipped) = parse_leases(file.format, &text, file.interface.as_deref());
                    sources.push(format!(
                        "leases file {}: {} leases, {skipped} left out (unreadable or not assigned)",
                        file.path.display(),
                        leases.len()
                    ));
                    sightings.extend(leases);
                }
                Err(e) => sources.push(format!("leases file {} not read: {e}", file.path.display())),
            }
        }
        let outline = at.target.firewall.outline().await?;
        let interface = match &self.interface {
            Some(name) => Some(outline.resolve_interface("interface", name)?.name.clone()),
            None => None,
        };
        let (logged, threats) = match svc.log_store(target) {
            Some(logs) => {
                let day = logged_day(logs, &outline, now)?;
                sources.push(format!(
                    "the firewall log of the last {}: {} addresses of the inside networks",
                    crate::analytics::human_span(TRAFFIC_WINDOW),
                    day.seen.len()
                ));
                sightings.extend(day.seen);
                (day.stats, day.threats)
            }
            None => (HashMap::new(), Vec::new()),
        };
        // The firewall's own addresses (pfSense lists its own in the ARP table) are not devices on its networks.
        let own: Vec<IpAddr> =
            outline.interfaces.iter().flat_map(|i| [i.ipv4, i.ipv6]).flatten().map(|n| n.addr()).collect();
        sightings.retain(|s| !own.contains(&s.address));
        let mut records = load_records(svc, target)?;
        merge(&mut records, &sightings, now);
        let text = serde_json::to_string(&records).map_err(|e| CallError::internal(e.to_string()))?;
        let store = svc.guard.auditor.store();
        store.meta_set(&records_key(target), &text).map_err(|e| CallError::internal(e.to_string()))?;

        let idle = TimeDelta::from_std(svc.devices.idle).unwrap_or(TimeDelta::minutes(10));
        let oui = svc.oui_registry();
        let online = records.iter().filter(|r| r.presence(now, idle) == Presence::Online).count();
        let mut data: Vec<DeviceView> = records
            .iter()
            .filter(|r| interface.is_none() || r.interface == interface)
            .filter(|r| self.filter.admits(r.presence(now, idle)))
            .map(|r| view(r, &oui, now, idle, &logged, &threats))
            .collect();
        data.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.address.cmp(&b.address)));
        if oui.is_empty() {
            sources.push("no IEEE OUI registry found (apt-get install ieee-data): vendors are not named".into());
        }
        Ok(DevicesResult {
            target: target.clone(),
            count: data.len(),
            data,
            online,
            offline: records.len() - online,
            idle_seconds: svc.devices.idle.as_secs(),
            sources,
        })
    }
}

fn view(
    r: &DeviceRecord,
    oui: &OuiRegistry,
    now: Timestamp,
    idle: TimeDelta,
    logged: &HashMap<IpAddr, SourceStat>,
    threats: &[crate::analytics::ThreatView],
) -> DeviceView {
    let mut addresses: Vec<IpAddr> = r.addresses.iter().copied().collect();
    addresses.sort_by_key(|a| (a.is_ipv6(), *a));
    let mut log = LoggedActivity::default();
    for stat in addresses.iter().filter_map(|a| logged.get(a)) {
        log.lines += stat.total();
        log.blocked += stat.denied();
        log.bytes += stat.bytes;
    }
    let mine: Vec<DeviceThreat> = threats
        .iter()
        .filter(|t| addresses.iter().any(|a| a.to_string() == t.source_ip))
        .map(|t| DeviceThreat { kind: t.kind.clone(), threat_score: t.threat_score, attempt_count: t.attempt_count })
        .collect();
    DeviceView {
        logged: (log.lines > 0).then(|| LoggedActivity {
            query: addresses.first().map(|a| json!({"tool": "query_firewall_logs", "source_ip": a.to_string()})),
            threats: mine,
            ..log
        }),
        address: addresses.first().map(ToString::to_string).unwrap_or_default(),
        addresses: addresses.iter().map(ToString::to_string).collect(),
        mac: r.mac.map(|m| m.to_string()),
        vendor: r.mac.as_ref().and_then(|m| oui.vendor(m)).map(str::to_string),
        randomized_mac: r.mac.is_some_and(|m: Mac| m.locally_administered()),
        hostname: r.hostname.clone(),
        interface: r.interface.clone(),
        status: r.presence(now, idle),
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        sources: r.sources.iter().copied().collect(),
    }
}

impl ToolService {
    /// The OUI registry, read from the configured files on first use (about 3 MB of CSV).
    pub(crate) fn oui_registry(&self) -> Arc<OuiRegistry> {
        self.oui
            .get_or_init(|| {
                let mut registry = OuiRegistry::new();
                for path in &self.devices.oui_files {
                    match std::fs::read_to_string(path) {
                        Ok(text) => {
                            registry.add_csv(&text);
                        }
                        Err(e) => tracing::debug!(path = %path.display(), "OUI registry file not read: {e}"),
                    }
                }
                Arc::new(registry)
            })
            .clone()
    }
}
