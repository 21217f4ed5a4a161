//! Traffic mirrors (`portcullis_core::mirror`) on nftables, written as nft JSON in the plan's one batch and read
//! back from the kernel's own listing.
//!
//! nft refuses `dup` in an `inet` table ("unsupported family"), so mirrors live beside Portcullis' table, in tables
//! of their own named after it (`<table>_mirror`, `_mirror4`, `_mirror6`), each there only while it holds a mirror:
//!
//! - **netdev `<table>_mirror`** for a sensor on a local interface (L2: `dup to "<device>"`) or behind a VXLAN
//!   tunnel (`dup to "pcvx<vni>"`, the tunnel device, which wraps the copy in UDP to the remote sensor). A mirror
//!   `mir-X` has a base chain `m_X_in` (hook `ingress` on the mirrored interface's device: what arrives) and/or
//!   `m_X_out` (hook `egress`, Linux 5.16 or later: what leaves).
//! - **ip `<table>_mirror4` / ip6 `<table>_mirror6`** for a sensor at an address (L3: `dup to <address> device
//!   "<device>"`, the sensor is the copies' next hop; nft has this in the ip families only): `m_X_in` hooks
//!   prerouting at priority -300 with `iifname`, before conntrack, DNAT and every filter (the packet as it
//!   arrived), `m_X_out` postrouting at priority 300 with `oifname`, after SNAT (the packet as it leaves).
//!
//! Each [`Clause`](portcullis_core::mirror::Clause) of the mirror is one rule: family, protocol, addresses, ports, the excluded addresses (neither
//! end may be one), then `limit name "m_X"`, `counter name "m_X"`, `dup`. The limit and the counter are named
//! objects, one per mirror, shared by its rules: one cap for the whole mirror (nft's anonymous `limit` is per
//! rule), and one figure of what it copied.
//!
//! Bookkeeping is in the objects' comments (nft 1.0.6 keeps object comments given in JSON, and drops chain
//! comments): the counter's says `pm1 id=X c=<created ms> x=<expires ms> k=<i|a|v> s=<sensor>` (`si=` the
//! sensor's interface as configured when that is a logical name, `pr=` the protocol where the kernel's matches
//! cannot tell two apart); the limit's is the reason (through [`TextStore`]). Everything else is read back from
//! the listed chains, rules, objects and the tunnel device (`ip -d link`), and the mirror those spell is written
//! out again and compared with the listing rule by rule: a table laid out otherwise is refused as unreadable.
//!
//! The netdev chains' devices come from netlink ([`crate::netlink::Netlink::chain_hooks`]): nft 1.0.6's JSON
//! listing leaves them out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{TimeZone, Utc};
use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, MirrorCounter, UnsupportedField};
use portcullis_core::mirror::{Family, Mirror, MirrorAsk, MirrorDirection, MirrorId, Selector, Sensor, SensorKind};
use portcullis_core::model::{Direction, PortRange, Protocol, Timestamp};
use serde_json::{Value, json};

use crate::comment::{MAX_COMMENT, TextStore};
use crate::netlink::{NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_NETDEV};
use crate::translate::PROTOCOL_NAMES;

/// The marker of a mirror's bookkeeping comment.
pub const MARK: &str = "pm1";
/// Priority of the netdev chains (nothing else of Portcullis hooks there).
const NETDEV_PRIORITY: i64 = 0;
/// Priority of the prerouting chains: raw, before conntrack, DNAT and the filter.
const PREROUTING_PRIORITY: i64 = -300;
/// Priority of the postrouting chains: after SNAT (100), the packet as it leaves.
const POSTROUTING_PRIORITY: i64 = 300;
/// The first Linux with nftables' netdev `egress` hook.
pub const EGRESS_KERNEL: (u32, u32) = (5, 16);

/// One of the tables mirrors live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MirrorTable {
    /// L2 copies to a local device or a VXLAN tunnel.
    Netdev,
    /// L3 copies to an IPv4 next hop.
    Ip,
    /// L3 copies to an IPv6 next hop.
    Ip6,
}

impl MirrorTable {
    pub const ALL: [MirrorTable; 3] = [MirrorTable::Netdev, MirrorTable::Ip, MirrorTable::Ip6];

    /// The family as nft names it.
    pub fn family(self) -> &'static str {
        match self {
            MirrorTable::Netdev => "netdev",
            MirrorTable::Ip => "ip",
            MirrorTable::Ip6 => "ip6",
        }
    }

    /// The family as netlink numbers it (`NFPROTO_*`).
    pub fn nfproto(self) -> u8 {
        match self {
            MirrorTable::Netdev => NFPROTO_NETDEV,
            MirrorTable::Ip => NFPROTO_IPV4,
            MirrorTable::Ip6 => NFPROTO_IPV6,
        }
    }

    /// The table's name beside Portcullis' table `base`.
    pub fn name(self, base: &str) -> String {
        match self {
            MirrorTable::Netdev => format!("{base}_mirror"),
            MirrorTable::Ip => format!("{base}_mirror4"),
            MirrorTable::Ip6 => format!("{base}_mirror6"),
        }
    }

    /// The table a mirror to `sensor` lives in.
    pub fn of(sensor: &Sensor) -> MirrorTable {
        match &sensor.kind {
            SensorKind::Address { address: IpAddr::V4(_), .. } => MirrorTable::Ip,
            SensorKind::Address { address: IpAddr::V6(_), .. } => MirrorTable::Ip6,
            _ => MirrorTable::Netdev,
        }
    }

    /// The family an ip table's rules match without saying so.
    fn implied_family(self) -> Option<Family> {
        match self {
            MirrorTable::Netdev => None,
            MirrorTable::Ip => Some(Family::V4),
            MirrorTable::Ip6 => Some(Family::V6),
        }
    }

    /// The hook, and its priority, of a mirror's chain for packets arriving (In) or leaving (Out).
    fn hook(self, direction: Direction) -> (&'static str, i64) {
        match (self, direction) {
            (MirrorTable::Netdev, Direction::Out) => ("egress", NETDEV_PRIORITY),
            (MirrorTable::Netdev, _) => ("ingress", NETDEV_PRIORITY),
            (_, Direction::Out) => ("postrouting", POSTROUTING_PRIORITY),
            (_, _) => ("prerouting", PREROUTING_PRIORITY),
        }
    }
}

/// A mirror's limit and counter objects: `m_<hex of its id>`.
pub fn object_name(id: &MirrorId) -> String {
    format!("m_{}", id.hex())
}

/// A mirror's chain for one hook direction: `m_<hex>_in` or `m_<hex>_out`.
pub fn chain_name(id: &MirrorId, hook: Direction) -> String {
    format!("{}_{}", object_name(id), if hook == Direction::Out { "out" } else { "in" })
}

/// The id hex of an object name Portcullis gave.
fn object_hex(name: &str) -> Option<&str> {
    let hex = name.strip_prefix("m_")?;
    (hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then_some(hex)
}

/// The id hex and hook direction of a chain name Portcullis gave.
fn chain_parts(name: &str) -> Option<(&str, Direction)> {
    if let Some(object) = name.strip_suffix("_in") {
        return object_hex(object).map(|hex| (hex, Direction::In));
    }
    name.strip_suffix("_out").and_then(object_hex).map(|hex| (hex, Direction::Out))
}

/// The backend's interfaces map, for names that may be logical (`lan`) or kernel devices (`eth1`).
#[derive(Clone, Copy)]
pub struct Devices<'a>(pub &'a [(String, String)]);

impl Devices<'_> {
    /// The kernel device of `name`: a logical name in the map resolves to its device (exactly, then ignoring
    /// case, as the planner resolves names); anything else is taken as a device already (a sensor's interface
    /// need not be one Portcullis filters).
    pub fn device(&self, name: &str) -> String {
        let found = self.0.iter().find(|(logical, _)| logical == name);
        let found = found.or_else(|| self.0.iter().find(|(logical, _)| logical.eq_ignore_ascii_case(name)));
        found.map_or_else(|| name.to_string(), |(_, device)| device.clone())
    }

    /// The logical name of a device, when the map has it.
    pub fn logical(&self, device: &str) -> Option<&str> {
        self.0.iter().find(|(_, d)| d == device).map(|(logical, _)| logical.as_str())
    }
}

/// The bookkeeping a mirror's counter object carries in its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MirrorMeta {
    hex: String,
    created_at: Option<Timestamp>,
    expires_at: Timestamp,
    /// `i` (interface), `a` (address) or `v` (VXLAN).
    kind: char,
    sensor: String,
    /// The sensor's interface as configuration names it, when that is not its device (a logical name).
    sensor_interface: Option<String>,
    /// The protocol as asked, where the kernel's matches spell two protocols alike (`icmp` on IPv6 alone is
    /// `icmpv6`); only used when it spells exactly the rules listed.
    protocol: Option<String>,
}

fn kind_letter(sensor: &Sensor) -> char {
    match sensor.kind {
        SensorKind::Interface { .. } => 'i',
        SensorKind::Address { .. } => 'a',
        SensorKind::Vxlan { .. } => 'v',
    }
}

fn from_millis(s: &str) -> Option<Timestamp> {
    Utc.timestamp_millis_opt(s.parse().ok()?).single()
}

impl MirrorMeta {
    fn head(&self) -> String {
        let mut s = format!("{MARK} id={}", self.hex);
        if let Some(c) = self.created_at {
            s.push_str(&format!(" c={}", c.timestamp_millis()));
        }
        s.push_str(&format!(" x={} k={} s={}", self.expires_at.timestamp_millis(), self.kind, self.sensor));
        if let Some(si) = &self.sensor_interface {
            s.push_str(&format!(" si={si}"));
        }
        if let Some(p) = &self.protocol {
            s.push_str(&format!(" pr={p}"));
        }
        s
    }

    fn parse(comment: &str) -> Option<Self> {
        let mut words = comment.split_whitespace();
        if words.next() != Some(MARK) {
            return None;
        }
        let mut meta = MirrorMeta {
            hex: String::new(),
            created_at: None,
            expires_at: Utc.timestamp_millis_opt(0).single()?,
            kind: ' ',
            sensor: String::new(),
            sensor_interface: None,
            protocol: None,
        };
        let mut expiry = false;
        for (k, v) in words.filter_map(|w| w.split_once('=')) {
            match k {
                "id" => meta.hex = v.to_string(),
                "c" => meta.created_at = from_millis(v),
                "x" => {
                    meta.expires_at = from_millis(v)?;
                    expiry = true;
                }
                "k" => meta.kind = v.chars().next().unwrap_or(' '),
                "s" => meta.sensor = v.to_string(),
                "si" => meta.sensor_interface = Some(v.to_string()),
                "pr" => meta.protocol = Some(v.to_string()),
                _ => {}
            }
        }
        (expiry && !meta.hex.is_empty() && !meta.sensor.is_empty() && "iav".contains(meta.kind)).then_some(meta)
    }
}

/// Where a rule's copies go, as written and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dup {
    /// `dup to "<device>"` (netdev): the copy leaves unchanged on the device.
    Device(String),
    /// `dup to <address> device "<device>"` (ip, ip6): the copy is routed to the address as its next hop.
    Next { address: IpAddr, device: String },
}

/// A hook direction as a map key (the model's `Direction` has no order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Hook {
    In,
    Out,
}

impl Hook {
    fn of(direction: Direction) -> Hook {
        if direction == Direction::Out { Hook::Out } else { Hook::In }
    }

    fn direction(self) -> Direction {
        match self {
            Hook::In => Direction::In,
            Hook::Out => Direction::Out,
        }
    }
}

/// One mirror rule in the terms both the writer and the reader use: what the rule matches, counts and copies.
/// Writing renders a [`Form`]; reading parses the listing into one, undoing what nft changes when it lists
/// (an implied `meta protocol` or `meta l4proto` left out, `th` shown as `tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Form {
    family: Family,
    /// The mirrored device as an ip table's rule matches it (`iifname`/`oifname`); netdev chains are bound to it.
    device: Option<String>,
    /// IP protocol numbers, sorted; empty: any.
    l4: Vec<u8>,
    source: Option<IpNet>,
    destination: Option<IpNet>,
    source_port: Option<PortRange>,
    destination_port: Option<PortRange>,
    destination_port_not: Option<PortRange>,
    excluded: Vec<IpAddr>,
    /// The limit and counter object the rule names (the same name).
    object: String,
    dup: Dup,
}

/// The protocol numbers `p` stands for in `family`.
fn l4_numbers(p: Protocol, family: Family) -> Vec<u8> {
    use portcullis_core::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
    match p {
        Protocol::Any => Vec::new(),
        Protocol::Tcp => vec![PROTO_TCP],
        Protocol::Udp => vec![PROTO_UDP],
        Protocol::TcpUdp => vec![PROTO_TCP, PROTO_UDP],
        Protocol::Icmp if family == Family::V6 => vec![PROTO_ICMPV6],
        Protocol::Icmp => vec![PROTO_ICMP],
        Protocol::Icmpv6 => vec![PROTO_ICMPV6],
        Protocol::Number(n) => vec![n],
    }
}

/// The protocol a rule's numbers name, the way the planner would name them.
fn canonical_protocol(l4: &[u8]) -> Option<Protocol> {
    match l4 {
        [] => Some(Protocol::Any),
        [6, 17] => Some(Protocol::TcpUdp),
        [n] => Protocol::parse("protocol", &n.to_string()).ok(),
        _ => None,
    }
}

fn dup_of(sensor: &Sensor, devices: Devices<'_>) -> Dup {
    match &sensor.kind {
        SensorKind::Interface { interface } => Dup::Device(devices.device(interface)),
        SensorKind::Address { address, interface } => {
            Dup::Next { address: *address, device: devices.device(interface) }
        }
        SensorKind::Vxlan { .. } => Dup::Device(sensor.tunnel_device().unwrap_or_default()),
    }
}

/// The rules of `m`, per hook direction, as forms.
fn forms_of(m: &Mirror, devices: Devices<'_>) -> BTreeMap<Hook, Vec<Form>> {
    let table = MirrorTable::of(&m.sensor);
    let device = devices.device(&m.interface);
    let dup = dup_of(&m.sensor, devices);
    let mut out: BTreeMap<Hook, Vec<Form>> = BTreeMap::new();
    for clause in m.clauses() {
        out.entry(Hook::of(clause.hook)).or_default().push(Form {
            family: clause.family,
            device: (table != MirrorTable::Netdev).then(|| device.clone()),
            l4: l4_numbers(clause.protocol, clause.family),
            source: clause.source,
            destination: clause.destination,
            source_port: clause.source_port,
            destination_port: clause.destination_port,
            destination_port_not: clause.destination_port_not,
            excluded: clause.excluded,
            object: object_name(&m.mirror_id),
            dup: dup.clone(),
        });
    }
    out
}

fn net_value(net: &IpNet) -> Value {
    if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    }
}

fn port_value(r: &PortRange) -> Value {
    if r.first == r.last { json!(r.first) } else { json!({"range": [r.first, r.last]}) }
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

/// The statements of one rule.
fn render(form: &Form, hook: Direction) -> Vec<Value> {
    let ip = if form.family == Family::V6 { "ip6" } else { "ip" };
    let mut expr = Vec::new();
    match &form.device {
        // netdev: the family is not implied by the table; a later address match lets nft leave it out of listings.
        None => expr.push(matches("==", json!({"meta": {"key": "protocol"}}), json!(ip))),
        Some(device) => {
            let key = if hook == Direction::Out { "oifname" } else { "iifname" };
            expr.push(matches("==", json!({"meta": {"key": key}}), json!(device)));
        }
    }
    match form.l4.as_slice() {
        [] => {}
        [n] => expr.push(matches("==", json!({"meta": {"key": "l4proto"}}), json!(n))),
        many => expr.push(matches("==", json!({"meta": {"key": "l4proto"}}), json!({"set": many}))),
    }
    if let Some(s) = &form.source {
        expr.push(matches("==", payload(ip, "saddr"), net_value(s)));
    }
    if let Some(d) = &form.destination {
        expr.push(matches("==", payload(ip, "daddr"), net_value(d)));
    }
    if let Some(p) = &form.source_port {
        expr.push(matches("==", payload("th", "sport"), port_value(p)));
    }
    if let Some(p) = &form.destination_port {
        expr.push(matches("==", payload("th", "dport"), port_value(p)));
    }
    if let Some(p) = &form.destination_port_not {
        expr.push(matches("!=", payload("th", "dport"), port_value(p)));
    }
    for x in &form.excluded {
        expr.push(matches("!=", payload(ip, "saddr"), json!(x.to_string())));
        expr.push(matches("!=", payload(ip, "daddr"), json!(x.to_string())));
    }
    expr.push(json!({"limit": form.object}));
    expr.push(json!({"counter": form.object}));
    expr.push(match &form.dup {
        Dup::Device(device) => json!({"dup": {"addr": device}}),
        Dup::Next { address, device } => json!({"dup": {"addr": address.to_string(), "dev": device}}),
    });
    expr
}

/// A VXLAN tunnel device as a sensor needs it and as `ip -d -j link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub device: String,
    pub vni: u32,
    pub remote: Option<IpAddr>,
    pub local: Option<IpAddr>,
    pub port: u16,
}

impl Tunnel {
    /// The tunnel a VXLAN sensor needs.
    pub fn of(sensor: &Sensor) -> Option<Tunnel> {
        match &sensor.kind {
            SensorKind::Vxlan { remote, vni, local, port } => Some(Tunnel {
                device: sensor.tunnel_device()?,
                vni: *vni,
                remote: Some(*remote),
                local: *local,
                port: *port,
            }),
            _ => None,
        }
    }

    /// One link of `ip -d -j link show`, when it is a VXLAN device.
    pub fn from_link(link: &Value) -> Option<Tunnel> {
        let info = &link["linkinfo"];
        if info["info_kind"].as_str() != Some("vxlan") {
            return None;
        }
        let data = &info["info_data"];
        let addr = |keys: [&str; 2]| keys.iter().find_map(|k| data[*k].as_str()?.parse::<IpAddr>().ok());
        Some(Tunnel {
            device: link["ifname"].as_str()?.to_string(),
            vni: u32::try_from(data["id"].as_u64()?).ok()?,
            remote: addr(["remote", "remote6"]),
            local: addr(["local", "local6"]),
            port: u16::try_from(data["port"].as_u64()?).ok()?,
        })
    }

    /// `ip link add` arguments that make the device.
    pub fn add_args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            ["link", "add", &self.device, "type", "vxlan", "id", &self.vni.to_string()].map(String::from).into();
        if let Some(remote) = self.remote {
            args.extend(["remote".into(), remote.to_string()]);
        }
        if let Some(local) = self.local {
            args.extend(["local".into(), local.to_string()]);
        }
        // The copies are the sensor's only traffic: nothing to learn, no forwarding database to fill.
        args.extend(["dstport".into(), self.port.to_string(), "nolearning".into()]);
        args
    }
}

/// The VXLAN devices of an `ip -d -j link show` listing, by name.
pub fn tunnels_of(links: &Value) -> BTreeMap<String, Tunnel> {
    links.as_array().into_iter().flatten().filter_map(Tunnel::from_link).map(|t| (t.device.clone(), t)).collect()
}

/// The tunnel devices a change makes necessary and the ones it leaves unused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelChanges {
    /// Tunnels the mirrors after the change use that none used before: made before the batch if missing.
    pub wanted: Vec<Tunnel>,
    /// Devices mirrors used before the change and none uses after: deleted after the batch.
    pub unused: Vec<String>,
}

impl TunnelChanges {
    pub fn between(before: &[Mirror], after: &[Mirror]) -> Self {
        let used = |ms: &[Mirror]| -> BTreeMap<String, Tunnel> {
            ms.iter().filter_map(|m| Tunnel::of(&m.sensor)).map(|t| (t.device.clone(), t)).collect()
        };
        let (was, will) = (used(before), used(after));
        TunnelChanges {
            wanted: will.iter().filter(|(d, _)| !was.contains_key(*d)).map(|(_, t)| t.clone()).collect(),
            unused: was.keys().filter(|d| !will.contains_key(*d)).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty() && self.unused.is_empty()
    }
}

/// What writes mirrors: the names and text store of the backend.
pub struct Writer<'a> {
    /// Portcullis' own table, whose name the mirror tables carry.
    pub base: &'a str,
    pub devices: Devices<'a>,
    pub texts: &'a TextStore,
}

impl Writer<'_> {
    fn object_ref(&self, table: MirrorTable, name: &str) -> Value {
        json!({"family": table.family(), "table": table.name(self.base), "name": name})
    }

    /// The batch commands that take the mirror tables from `before`'s mirrors to `after`'s; `existing` are the
    /// tables the kernel holds now. A mirror is never changed in place (a new one has a new id): the ones in
    /// `before` only are deleted, those in `after` only written. A table left without mirrors is deleted whole.
    pub fn commands(
        &self,
        existing: &BTreeSet<MirrorTable>,
        before: &[Mirror],
        after: &[Mirror],
    ) -> Result<Vec<Value>, BackendError> {
        let ids = |ms: &[Mirror]| ms.iter().map(|m| m.mirror_id.clone()).collect::<BTreeSet<MirrorId>>();
        let (was, will) = (ids(before), ids(after));
        let mut out = Vec::new();
        for table in MirrorTable::ALL {
            let in_table = |m: &&Mirror| MirrorTable::of(&m.sensor) == table;
            let remaining = after.iter().filter(in_table).count();
            let name = table.name(self.base);
            if remaining == 0 {
                if existing.contains(&table) {
                    out.push(json!({"delete": {"table": {"family": table.family(), "name": name}}}));
                }
                continue;
            }
            for m in before.iter().filter(in_table).filter(|m| !will.contains(&m.mirror_id)) {
                for &hook in m.direction.hooks() {
                    let chain = self.object_ref(table, &chain_name(&m.mirror_id, hook));
                    out.push(json!({"flush": {"chain": chain.clone()}}));
                    out.push(json!({"delete": {"chain": chain}}));
                }
                let object = object_name(&m.mirror_id);
                out.push(json!({"delete": {"limit": self.object_ref(table, &object)}}));
                out.push(json!({"delete": {"counter": self.object_ref(table, &object)}}));
            }
            let new: Vec<&Mirror> = after.iter().filter(in_table).filter(|m| !was.contains(&m.mirror_id)).collect();
            if !new.is_empty() {
                out.push(json!({"add": {"table": {"family": table.family(), "name": name}}}));
            }
            for m in new {
                out.extend(self.mirror_objects(table, m)?);
            }
        }
        Ok(out)
    }

    /// A mirror's limit, counter, chains and rules.
    fn mirror_objects(&self, table: MirrorTable, m: &Mirror) -> Result<Vec<Value>, BackendError> {
        let (family, table_name) = (table.family(), table.name(self.base));
        let object = object_name(&m.mirror_id);
        let forms = forms_of(m, self.devices);
        let reason = self.texts.compose("", &m.reason)?;
        let head = self.meta(m, &forms).head();
        if head.len() > MAX_COMMENT {
            return Err(BackendError::new(ErrorCode::InternalError, format!("mirror comment too long: {head}")));
        }
        let mut out = vec![
            json!({"add": {"limit": {"family": family, "table": table_name, "name": object, "rate": m.rate_limit,
                   "per": "second", "burst": m.burst, "unit": "packets", "comment": reason}}}),
            json!({"add": {"counter": {"family": family, "table": table_name, "name": object, "comment": head}}}),
        ];
        let device = self.devices.device(&m.interface);
        for (&key, rules) in &forms {
            let hook = key.direction();
            let chain = chain_name(&m.mirror_id, hook);
            let (hook_name, prio) = table.hook(hook);
            let mut def = json!({"family": family, "table": table_name, "name": chain, "type": "filter",
                                 "hook": hook_name, "prio": prio, "policy": "accept"});
            if table == MirrorTable::Netdev
                && let Some(def) = def.as_object_mut()
            {
                def.insert("dev".into(), json!(device));
            }
            out.push(json!({"add": {"chain": def}}));
            for form in rules {
                out.push(json!({"add": {"rule": {"family": family, "table": table_name, "chain": chain,
                                                 "expr": render(form, hook)}}}));
            }
        }
        Ok(out)
    }

    fn meta(&self, m: &Mirror, forms: &BTreeMap<Hook, Vec<Form>>) -> MirrorMeta {
        let sensor_interface = m.sensor.interface().filter(|i| self.devices.device(i) != *i).map(str::to_string);
        // The protocol is read from the kernel's matches; said here only where they name another one.
        let first = forms.values().flatten().next();
        let read_as = first.and_then(|f| canonical_protocol(&f.l4));
        let protocol = (read_as != Some(m.selector.protocol)).then(|| protocol_name(m.selector.protocol));
        MirrorMeta {
            hex: m.mirror_id.hex().to_string(),
            created_at: m.created_at,
            expires_at: m.expires_at,
            kind: kind_letter(&m.sensor),
            sensor: m.sensor.name.clone(),
            sensor_interface,
            protocol,
        }
    }
}

fn protocol_name(p: Protocol) -> String {
    match p {
        Protocol::Any => "any".into(),
        Protocol::Tcp => "tcp".into(),
        Protocol::Udp => "udp".into(),
        Protocol::TcpUdp => "tcp/udp".into(),
        Protocol::Icmp => "icmp".into(),
        Protocol::Icmpv6 => "icmpv6".into(),
        Protocol::Number(n) => n.to_string(),
    }
}

/// The statements of a change, in the order they run: the tunnel devices made first, the nft commands (each as
/// the JSON object the batch holds), the tunnel devices deleted after.
pub fn statements(commands: &[Value], tunnels: &TunnelChanges) -> Vec<String> {
    let mut out = Vec::new();
    for t in &tunnels.wanted {
        out.push(format!("ip {}   (if {} is missing)", t.add_args().join(" "), t.device));
        out.push(format!("ip link set {} up", t.device));
    }
    out.extend(commands.iter().map(Value::to_string));
    out.extend(tunnels.unused.iter().map(|d| format!("ip link delete {d}")));
    out
}

/// What nftables cannot do of a mirror: copying what leaves an interface needs the netdev egress hook (Linux
/// 5.16). `kernel` is the running kernel's (major, minor) and release text, when known.
pub fn unsupported(ask: &MirrorAsk, kernel: Option<((u32, u32), &str)>) -> Option<UnsupportedField> {
    let egress = MirrorTable::of(&ask.sensor) == MirrorTable::Netdev && ask.direction != MirrorDirection::In;
    match kernel {
        Some((version, release)) if egress && version < EGRESS_KERNEL => Some(UnsupportedField {
            field: "direction".into(),
            why: format!(
                "copying what leaves {} needs nftables' netdev egress hook, which Linux has from {}.{}; this kernel \
                 is {release}",
                ask.interface, EGRESS_KERNEL.0, EGRESS_KERNEL.1
            ),
            instead: "mirror direction: in here and on the interface the replies arrive on, send the copies to a \
                      sensor at an address (copied in postrouting), or upgrade the kernel"
                .into(),
        }),
        _ => None,
    }
}

/// (major, minor) of a kernel release (`6.18.44-fc`).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()?;
    Some((major, minor))
}

/// One mirror table as listed (`nft -j list table`), with its netdev chains' devices from netlink.
#[derive(Debug, Clone, Default)]
pub struct ListedTable {
    pub limits: BTreeMap<String, Value>,
    pub counters: BTreeMap<String, Value>,
    pub chains: BTreeMap<String, Value>,
    /// Each chain's rules' statements, in order.
    pub rules: BTreeMap<String, Vec<Value>>,
    /// The devices each netdev base chain is bound to.
    pub devices: BTreeMap<String, Vec<String>>,
}

/// The mirror tables the kernel holds, and the tunnel devices their mirrors name.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    pub tables: BTreeMap<MirrorTable, ListedTable>,
    pub tunnels: BTreeMap<String, Tunnel>,
}

impl Listed {
    pub fn existing(&self) -> BTreeSet<MirrorTable> {
        self.tables.keys().copied().collect()
    }

    /// Whether a mirror sends to a VXLAN sensor, whose tunnel is then read (`ip -d link`).
    pub fn needs_tunnels(&self) -> bool {
        self.tables
            .values()
            .flat_map(|t| t.counters.values())
            .filter_map(|c| MirrorMeta::parse(c["comment"].as_str().unwrap_or_default()))
            .any(|meta| meta.kind == 'v')
    }
}

fn unreadable(what: String) -> BackendError {
    BackendError::new(ErrorCode::UnexpectedResponse, what).with_hint(
        "a mirror table was changed outside Portcullis; delete the mirror's chains and objects by hand (or the \
         whole table: nft delete table <family> <name>) and start the mirror again",
    )
}

/// Parses `nft -j list table <family> <name>` of a mirror table.
pub fn parse_table(table: MirrorTable, json: &str) -> Result<ListedTable, BackendError> {
    let listing: Value = serde_json::from_str(json).map_err(|e| {
        BackendError::new(
            ErrorCode::UnexpectedResponse,
            format!("nft -j list table printed JSON Portcullis cannot read: {e}"),
        )
    })?;
    let objects = listing["nftables"].as_array().ok_or_else(|| {
        BackendError::new(ErrorCode::UnexpectedResponse, "nft -j list table printed no \"nftables\" array")
    })?;
    let mut out = ListedTable::default();
    for object in objects {
        let Some((kind, body)) = object.as_object().and_then(|o| o.iter().next()) else { continue };
        let object_name = body["name"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "metainfo" | "table" => {}
            "limit" => {
                out.limits.insert(object_name, body.clone());
            }
            "counter" => {
                out.counters.insert(object_name, body.clone());
            }
            "chain" => {
                out.chains.insert(object_name, body.clone());
            }
            "rule" => {
                let chain = body["chain"].as_str().unwrap_or_default().to_string();
                out.rules.entry(chain).or_default().push(body["expr"].clone());
            }
            other => {
                return Err(unreadable(format!(
                    "the {} mirror table holds a {other} {object_name:?}, which Portcullis does not write",
                    table.family()
                )));
            }
        }
    }
    Ok(out)
}

/// The mirrors the kernel holds.
pub fn read(listed: &Listed, devices: Devices<'_>, texts: &TextStore) -> Result<Vec<Mirror>, BackendError> {
    let mut out = Vec::new();
    for (&table, t) in &listed.tables {
        for name in t.chains.keys() {
            let owned = chain_parts(name).is_some_and(|(hex, _)| t.counters.contains_key(&format!("m_{hex}")));
            if !owned {
                return Err(unreadable(format!("chain {name} of a mirror table belongs to no Portcullis mirror")));
            }
        }
        for name in t.limits.keys() {
            if object_hex(name).is_none() || !t.counters.contains_key(name) {
                return Err(unreadable(format!("limit {name} of a mirror table belongs to no Portcullis mirror")));
            }
        }
        for (name, counter) in &t.counters {
            let hex = object_hex(name).ok_or_else(|| {
                unreadable(format!("counter {name} of a mirror table belongs to no Portcullis mirror"))
            })?;
            out.push(read_one(table, t, hex, counter, devices, texts, &listed.tunnels)?);
        }
    }
    out.sort_by(|a, b| a.mirror_id.cmp(&b.mirror_id));
    Ok(out)
}

fn read_one(
    table: MirrorTable,
    t: &ListedTable,
    hex: &str,
    counter: &Value,
    devices: Devices<'_>,
    texts: &TextStore,
    tunnels: &BTreeMap<String, Tunnel>,
) -> Result<Mirror, BackendError> {
    let what = format!("mirror mir-{hex}");
    let meta = MirrorMeta::parse(counter["comment"].as_str().unwrap_or_default())
        .filter(|m| m.hex == hex)
        .ok_or_else(|| unreadable(format!("{what}: its counter carries no Portcullis bookkeeping")))?;
    let mirror_id = MirrorId::parse("mirror_id", hex).map_err(|e| unreadable(format!("{what}: {}", e.message)))?;
    let object = object_name(&mirror_id);
    let limit = t.limits.get(&object).ok_or_else(|| unreadable(format!("{what}: limit {object} is missing")))?;
    let (rate_limit, burst) =
        listed_limit(limit).ok_or_else(|| unreadable(format!("{what}: limit {object} reads {limit}")))?;
    let (_, reason) = texts.split(limit["comment"].as_str().unwrap_or_default())?;

    // The chains, their hooks and the device they watch.
    let mut listed_forms: BTreeMap<Hook, Vec<Form>> = BTreeMap::new();
    let mut hook_devices: BTreeSet<String> = BTreeSet::new();
    for hook in [Direction::In, Direction::Out] {
        let chain = chain_name(&mirror_id, hook);
        let Some(def) = t.chains.get(&chain) else { continue };
        let (hook_name, prio) = table.hook(hook);
        let hooked = def["type"].as_str() == Some("filter")
            && def["hook"].as_str() == Some(hook_name)
            && def["prio"].as_i64() == Some(prio)
            && def["policy"].as_str() == Some("accept");
        if !hooked {
            return Err(unreadable(format!("{what}: chain {chain} is not a {hook_name} chain at priority {prio}")));
        }
        if table == MirrorTable::Netdev {
            match t.devices.get(&chain).map(Vec::as_slice) {
                Some([device]) => {
                    hook_devices.insert(device.clone());
                }
                other => return Err(unreadable(format!("{what}: chain {chain} is bound to devices {other:?}"))),
            }
        }
        let rules = t.rules.get(&chain).map(Vec::as_slice).unwrap_or_default();
        if rules.is_empty() {
            return Err(unreadable(format!("{what}: chain {chain} has no rules")));
        }
        let forms = rules
            .iter()
            .map(|expr| {
                parse_rule(table, hook, expr).map_err(|why| unreadable(format!("{what}, chain {chain}: {why}")))
            })
            .collect::<Result<Vec<Form>, BackendError>>()?;
        hook_devices.extend(forms.iter().filter_map(|f| f.device.clone()));
        listed_forms.insert(Hook::of(hook), forms);
    }
    let direction = match (listed_forms.contains_key(&Hook::In), listed_forms.contains_key(&Hook::Out)) {
        (true, true) => MirrorDirection::Both,
        (true, false) => MirrorDirection::In,
        (false, true) => MirrorDirection::Out,
        (false, false) => return Err(unreadable(format!("{what} has no chain"))),
    };
    let device = match hook_devices.len() {
        1 => hook_devices.into_iter().next().unwrap_or_default(),
        _ => return Err(unreadable(format!("{what}: its chains watch devices {hook_devices:?}, not one"))),
    };
    let all_forms: Vec<&Form> = listed_forms.values().flatten().collect();
    let dups: BTreeSet<String> = all_forms.iter().map(|f| format!("{:?}", f.dup)).collect();
    let objects: BTreeSet<&str> = all_forms.iter().map(|f| f.object.as_str()).collect();
    if dups.len() != 1 || objects != BTreeSet::from([object.as_str()]) {
        return Err(unreadable(format!(
            "{what}: its rules copy to {dups:?} through {objects:?}, not one sensor and {object}"
        )));
    }
    let (sensor, broken) = sensor_of(table, &meta, &all_forms[0].dup, devices, tunnels).ok_or_else(|| {
        unreadable(format!("{what}: sensor {} (kind {}) does not match where its rules copy", meta.sensor, meta.kind))
    })?;
    let excluded = if broken {
        // The device is gone: the rules still say which addresses they leave out.
        let mut seen = Vec::new();
        for x in all_forms.iter().flat_map(|f| f.excluded.iter()) {
            if !seen.contains(x) {
                seen.push(*x);
            }
        }
        seen
    } else {
        sensor.excluded()
    };
    let interface = devices.logical(&device).map_or(device.clone(), str::to_string);
    let first_hook = if direction == MirrorDirection::Out { Hook::Out } else { Hook::In };
    let first = listed_forms.get(&first_hook).map(Vec::as_slice).unwrap_or_default();
    let hinted = meta.protocol.as_deref().and_then(|p| Protocol::parse("protocol", p).ok());
    let candidates = hinted.into_iter().chain(first.first().and_then(|f| canonical_protocol(&f.l4)));
    for protocol in candidates {
        let m = Mirror {
            mirror_id: mirror_id.clone(),
            interface: interface.clone(),
            sensor: sensor.clone(),
            direction,
            selector: selector_of(first, protocol),
            rate_limit,
            burst,
            excluded: excluded.clone(),
            reason: reason.clone(),
            created_at: meta.created_at,
            expires_at: meta.expires_at,
        };
        // The mirror these rules spell, written out again, must be exactly the rules listed.
        if forms_of(&m, devices) == listed_forms {
            return Ok(m);
        }
    }
    Err(unreadable(format!("{what}: its rules are not the ones Portcullis writes for any mirror")))
}

/// (rate, burst) of a listed limit object: packets per second only.
fn listed_limit(limit: &Value) -> Option<(u32, u32)> {
    let packets = limit.get("rate_unit").is_none_or(|u| u == "packets");
    let unit_ok = limit.get("unit").is_none_or(|u| u == "packets");
    let inverted = limit["inv"].as_bool().unwrap_or(false);
    if limit["per"].as_str() != Some("second") || !packets || !unit_ok || inverted {
        return None;
    }
    let number = |key: &str| limit[key].as_u64().and_then(|n| u32::try_from(n).ok());
    Some((number("rate")?, number("burst").unwrap_or(0)))
}

/// The sensor the rules copy to, with the bookkeeping's name and spelling, and whether its device is gone
/// (listed by the number it had: the mirror is then read as copying to that number, so a check fails and it can
/// be stopped).
fn sensor_of(
    table: MirrorTable,
    meta: &MirrorMeta,
    dup: &Dup,
    devices: Devices<'_>,
    tunnels: &BTreeMap<String, Tunnel>,
) -> Option<(Sensor, bool)> {
    let named = |device: &str| match &meta.sensor_interface {
        Some(si) if devices.device(si) == device => si.clone(),
        _ => device.to_string(),
    };
    let gone = |device: &str| device.bytes().all(|b| b.is_ascii_digit());
    let sensor = |kind| Sensor { name: meta.sensor.clone(), kind };
    match (meta.kind, table, dup) {
        ('i', MirrorTable::Netdev, Dup::Device(d)) => {
            Some((sensor(SensorKind::Interface { interface: named(d) }), gone(d)))
        }
        ('a', MirrorTable::Ip | MirrorTable::Ip6, Dup::Next { address, device }) => {
            let family_ok = (table == MirrorTable::Ip) == address.is_ipv4();
            family_ok
                .then(|| (sensor(SensorKind::Address { address: *address, interface: named(device) }), gone(device)))
        }
        ('v', MirrorTable::Netdev, Dup::Device(d)) => {
            match tunnels.get(d).filter(|t| *d == format!("pcvx{}", t.vni)).and_then(|t| Some((t, t.remote?))) {
                Some((t, remote)) => {
                    Some((sensor(SensorKind::Vxlan { remote, vni: t.vni, local: t.local, port: t.port }), false))
                }
                // The tunnel is gone (or is not one Portcullis made): read as copying to what the rule names.
                None => Some((sensor(SensorKind::Interface { interface: d.clone() }), true)),
            }
        }
        _ => None,
    }
}

/// The selector that `forms` (the rules of the first hook direction, in the order written) spell with `protocol`.
fn selector_of(forms: &[Form], protocol: Protocol) -> Selector {
    let Some(first) = forms.first() else { return Selector::default() };
    // `port` is two rules: destination port P, then source port P with the destination elsewhere.
    let port = forms.iter().find_map(|f| f.destination_port_not);
    let (source_port, destination_port) = match port {
        Some(_) => (
            forms.iter().find(|f| f.destination_port_not.is_none()).and_then(|f| f.source_port),
            forms.iter().find(|f| f.destination_port_not.is_some()).and_then(|f| f.destination_port),
        ),
        None => (first.source_port, first.destination_port),
    };
    let mut s = Selector {
        all: false,
        protocol,
        source: first.source,
        destination: first.destination,
        port,
        source_port,
        destination_port,
    };
    s.all = !s.narrows();
    s
}

/// A listed rule as a [`Form`], or why it is not one Portcullis writes.
fn parse_rule(table: MirrorTable, hook: Direction, expr: &Value) -> Result<Form, String> {
    let mut family = table.implied_family();
    let mut set_family = |f: Family| -> Result<(), String> {
        match family {
            Some(had) if had != f => Err("it matches both address families".into()),
            _ => {
                family = Some(f);
                Ok(())
            }
        }
    };
    let mut device = None;
    let mut l4: Option<BTreeSet<u8>> = None;
    let mut set_l4 = |numbers: BTreeSet<u8>| -> Result<(), String> {
        match &l4 {
            Some(had) if *had != numbers => Err(format!("it matches protocols {had:?} and {numbers:?}")),
            _ => {
                l4 = Some(numbers);
                Ok(())
            }
        }
    };
    let (mut source, mut destination) = (None, None);
    let (mut source_port, mut destination_port, mut destination_port_not) = (None, None, None);
    let (mut saddr_not, mut daddr_not) = (Vec::new(), Vec::new());
    let (mut limit, mut counter, mut dup) = (None, None, None);
    let statements = expr.as_array().ok_or("its statements are not a list")?;
    for statement in statements {
        let bad = || format!("a statement Portcullis does not write: {statement}");
        if let Some(m) = statement.get("match") {
            let op = m["op"].as_str().unwrap_or_default();
            let (left, right) = (&m["left"], &m["right"]);
            if let Some(key) = left.get("meta").and_then(|meta| meta["key"].as_str()) {
                match (key, op) {
                    ("protocol", "==") => match right.as_str() {
                        Some("ip") => set_family(Family::V4)?,
                        Some("ip6") => set_family(Family::V6)?,
                        _ => return Err(bad()),
                    },
                    ("iifname", "==") if hook == Direction::In && table != MirrorTable::Netdev => {
                        device = Some(right.as_str().ok_or_else(bad)?.to_string());
                    }
                    ("oifname", "==") if hook == Direction::Out && table != MirrorTable::Netdev => {
                        device = Some(right.as_str().ok_or_else(bad)?.to_string());
                    }
                    ("l4proto", "==") => set_l4(protocol_numbers(right).ok_or_else(bad)?)?,
                    _ => return Err(bad()),
                }
            } else if let Some(p) = left.get("payload") {
                let (protocol, field) =
                    (p["protocol"].as_str().unwrap_or_default(), p["field"].as_str().unwrap_or_default());
                match (protocol, field, op) {
                    ("ip" | "ip6", "saddr" | "daddr", _) => {
                        set_family(if protocol == "ip6" { Family::V6 } else { Family::V4 })?;
                        match op {
                            "==" => {
                                let net = listed_net(right).ok_or_else(bad)?;
                                *(if field == "saddr" { &mut source } else { &mut destination }) = Some(net);
                            }
                            "!=" => {
                                let addr = right.as_str().and_then(|a| a.parse::<IpAddr>().ok()).ok_or_else(bad)?;
                                (if field == "saddr" { &mut saddr_not } else { &mut daddr_not }).push(addr);
                            }
                            _ => return Err(bad()),
                        }
                    }
                    ("ip", "protocol", "==") | ("ip6", "nexthdr", "==") => {
                        set_family(if protocol == "ip6" { Family::V6 } else { Family::V4 })?;
                        set_l4(protocol_numbers(right).ok_or_else(bad)?)?;
                    }
                    ("th" | "tcp" | "udp", "sport" | "dport", "==" | "!=") => {
                        // nft lists `meta l4proto tcp` and `th dport 80` as `tcp dport 80`.
                        match protocol {
                            "tcp" => set_l4(BTreeSet::from([portcullis_core::model::PROTO_TCP]))?,
                            "udp" => set_l4(BTreeSet::from([portcullis_core::model::PROTO_UDP]))?,
                            _ => {}
                        }
                        let port = listed_port(right).ok_or_else(bad)?;
                        match (field, op) {
                            ("sport", "==") => source_port = Some(port),
                            ("dport", "==") => destination_port = Some(port),
                            ("dport", "!=") => destination_port_not = Some(port),
                            _ => return Err(bad()),
                        }
                    }
                    _ => return Err(bad()),
                }
            } else {
                return Err(bad());
            }
        } else if let Some(l) = statement.get("limit") {
            once(&limit, "limit")?;
            limit = Some(l.as_str().ok_or_else(bad)?.to_string());
        } else if let Some(c) = statement.get("counter") {
            once(&counter, "counter")?;
            counter = Some(c.as_str().ok_or_else(bad)?.to_string());
        } else if let Some(d) = statement.get("dup") {
            once(&dup, "dup")?;
            let addr = d["addr"].as_str().ok_or_else(bad)?;
            dup = Some(match d.get("dev") {
                None => Dup::Device(addr.to_string()),
                Some(dev) => Dup::Next {
                    address: addr.parse().map_err(|_| bad())?,
                    device: dev.as_str().ok_or_else(bad)?.to_string(),
                },
            });
        } else {
            return Err(bad());
        }
    }
    if saddr_not != daddr_not {
        return Err(format!("it leaves out sources {saddr_not:?} but destinations {daddr_not:?}"));
    }
    let (Some(limit), Some(counter)) = (limit, counter) else {
        return Err("it does not name a limit and a counter object".into());
    };
    if limit != counter {
        return Err(format!("its limit {limit} and counter {counter} are different objects"));
    }
    Ok(Form {
        family: family.ok_or("it matches no address family")?,
        device,
        l4: l4.map(|s| s.into_iter().collect()).unwrap_or_default(),
        source,
        destination,
        source_port,
        destination_port,
        destination_port_not,
        excluded: saddr_not,
        object: limit,
        dup: dup.ok_or("it copies nothing")?,
    })
}

/// A statement Portcullis writes once per rule, refused the second time.
fn once<T>(had: &Option<T>, what: &str) -> Result<(), String> {
    match had {
        Some(_) => Err(format!("it has a second {what} statement")),
        None => Ok(()),
    }
}

/// Protocol numbers as nft lists them: a number, a name, or a set of either.
fn protocol_numbers(v: &Value) -> Option<BTreeSet<u8>> {
    let one = |v: &Value| -> Option<u8> {
        match v {
            Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
            Value::String(s) => PROTOCOL_NAMES.iter().find(|(name, _)| name == s).map(|(_, n)| *n),
            _ => None,
        }
    };
    match v.get("set") {
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        _ => one(v).map(|n| BTreeSet::from([n])),
    }
}

fn listed_net(v: &Value) -> Option<IpNet> {
    if let Some(p) = v.get("prefix") {
        let addr: IpAddr = p["addr"].as_str()?.parse().ok()?;
        return IpNet::new(addr, u8::try_from(p["len"].as_u64()?).ok()?).ok();
    }
    v.as_str()?.parse::<IpAddr>().ok().map(IpNet::from)
}

fn listed_port(v: &Value) -> Option<PortRange> {
    let n = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    match v.get("range").and_then(Value::as_array) {
        Some(r) => Some(PortRange { first: n(r.first()?)?, last: n(r.get(1)?)? }),
        None => n(v).map(PortRange::single),
    }
}

/// What each mirror in `mirrors` copied, from its named counter.
pub fn counters(listed: &Listed, mirrors: &[Mirror]) -> Vec<MirrorCounter> {
    mirrors
        .iter()
        .map(|m| {
            let object = object_name(&m.mirror_id);
            let counter = listed.tables.get(&MirrorTable::of(&m.sensor)).and_then(|t| t.counters.get(&object));
            let n = |key: &str| counter.and_then(|c| c[key].as_u64()).unwrap_or(0);
            MirrorCounter { mirror_id: m.mirror_id.to_string(), packets: n("packets"), bytes: n("bytes") }
        })
        .collect()
}

#[cfg(test)]
mod tests;
