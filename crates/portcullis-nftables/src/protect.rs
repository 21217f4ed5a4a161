//! DDoS protections in Portcullis' table (`portcullis_core::protection`), written as nft JSON and read back from
//! the kernel's own listing.
//!
//! Each protection `P` gets a short name `pd_<8 hex of its id>` and:
//! - sets: `pd_X_ex4`/`_ex6` (exempt sources, interval), and as its limits need them `_rl4`/`_rl6` (per-source
//!   token buckets, dynamic, timed), `_ov4`/`_ov6` (sources blocked for overload, timed by `overload_block`),
//!   `_ct4`/`_ct6` (per-source connection counts);
//! - a chain `pd_X`: exempt sources return; overloaded sources are dropped; a source over its rate is added to the
//!   overload set and dropped; a source over its connection count is refused with a TCP reset; the interface-wide
//!   cap drops the excess; the SYN proxy answers the handshakes. Every limit rule has a counter and a comment
//!   naming its limit, and counts only new connections (with the SYN proxy: the untracked SYNs);
//! - a jump to `pd_X` from the base chains `pd_input` and `pd_forward` (priority -5, before the interface rules,
//!   policy accept: a protection never accepts, it only drops what exceeds), for its interface, protocol and
//!   ports; with `syn_proxy`, a `notrack` of those SYNs in `pd_raw` (prerouting, raw priority).
//!
//! IPv6 sources are counted per /64, which one host usually holds whole. The jump rule's comment carries the id
//! and times; the limits themselves are read back from the listed rules and sets, so the verifier checks what the
//! kernel holds. Writing a protection again replaces its chain and sets (its buckets and overload list start over).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, UnsupportedField};
use portcullis_core::model::{PortRange, Timestamp};
use portcullis_core::protection::{Protection, Rate, RateUnit, Transport};
use serde_json::{Value, json};
use sha2::Digest;

/// The table's family, as nft's JSON names it.
const FAMILY_NAME: &str = "inet";

/// Every name a protection owns starts with this.
pub const PREFIX: &str = "pd_";
const INPUT_CHAIN: &str = "pd_input";
const FORWARD_CHAIN: &str = "pd_forward";
const RAW_CHAIN: &str = "pd_raw";
/// The comment head of a protection's jump rule.
const JUMP_MARK: &str = "pd1";
/// How long a per-source bucket is kept after its source's last new connection.
const BUCKET_SECONDS: u32 = 60;
/// The most sources each dynamic set holds; beyond it new sources are not tracked (and not limited per source,
/// the interface-wide cap still applies).
const DYNAMIC_SIZE: u32 = 65_535;
/// The SYN proxy's options: what a Linux server behind a 1500-byte MTU advertises.
const SYNPROXY_MSS: u32 = 1460;
const SYNPROXY_WSCALE: u32 = 7;
/// The IPv6 per-source key: the /64.
const V6_SOURCE_MASK: &str = "ffff:ffff:ffff:ffff::";

/// A protection's short name, the prefix of its chain and sets.
pub fn short_name(protection_id: &str) -> String {
    let digest = sha2::Sha256::digest(protection_id.as_bytes());
    format!("{PREFIX}{}", hex::encode(&digest[..4]))
}

/// What nftables cannot enforce of a protection.
pub fn unsupported(p: &Protection) -> Vec<UnsupportedField> {
    let mut out = Vec::new();
    if p.syn_proxy && p.max_connections_per_source.is_some() {
        out.push(UnsupportedField {
            field: "max_connections_per_source".into(),
            why: "with syn_proxy the handshake ends in the proxy, so conntrack holds no connection to count when the \
                  SYN arrives"
                .into(),
            instead: "protect these ports with syn_proxy and per_source_rate, or with max_connections_per_source \
                      without syn_proxy"
                .into(),
        });
    }
    out
}

/// The batch commands that take the table from `before`'s protections to `after`'s. Protections that are the same
/// in both are left alone (their buckets and overload lists keep counting).
pub fn commands(
    table: &str,
    devices: &BTreeMap<String, String>,
    before: &[Protection],
    after: &[Protection],
) -> Result<Vec<Value>, BackendError> {
    let w = Writer { table };
    let mut out = Vec::new();
    // Unchanged means equal in every field, times included: a protection set again is written again.
    let kept = |p: &Protection, among: &[Protection]| among.contains(p);
    let had_any = !before.is_empty();
    // The base chains are refilled whole; while they still jump to a chain, that chain cannot be deleted.
    for (name, hook, prio) in
        [(INPUT_CHAIN, "input", -5), (FORWARD_CHAIN, "forward", -5), (RAW_CHAIN, "prerouting", -300)]
    {
        let chain = json!({"family": FAMILY_NAME, "table": table, "name": name, "type": "filter", "hook": hook, "prio": prio, "policy": "accept"});
        if !after.is_empty() || had_any {
            out.push(json!({"add": {"chain": chain}}));
            out.push(json!({"flush": {"chain": w.object_ref(name)}}));
        }
    }
    for p in before.iter().filter(|p| !kept(p, after)) {
        let x = short_name(&p.protection_id);
        out.push(json!({"flush": {"chain": w.object_ref(&x)}}));
        out.push(json!({"delete": {"chain": w.object_ref(&x)}}));
        for part in parts(p) {
            out.push(json!({"delete": {"set": w.object_ref(&format!("{x}_{part}"))}}));
        }
    }
    for p in after.iter().filter(|p| !kept(p, before)) {
        out.extend(w.protection_objects(p)?);
    }
    for p in after {
        let device = devices.get(&p.interface).ok_or_else(|| {
            BackendError::new(
                ErrorCode::ValidationError,
                format!("interface {} is not configured on this target", p.interface),
            )
        })?;
        let x = short_name(&p.protection_id);
        let comment = jump_comment(p);
        for chain in [INPUT_CHAIN, FORWARD_CHAIN] {
            let mut expr = selector(device, p);
            expr.push(json!({"jump": {"target": x}}));
            out.push(w.rule(chain, expr, &comment));
        }
        if p.syn_proxy {
            let mut expr = selector(device, p);
            expr.push(syn_only());
            expr.push(json!({"notrack": null}));
            out.push(w.rule(RAW_CHAIN, expr, &comment));
        }
    }
    if after.is_empty() && had_any {
        for name in [INPUT_CHAIN, FORWARD_CHAIN, RAW_CHAIN] {
            out.push(json!({"delete": {"chain": w.object_ref(name)}}));
        }
    }
    Ok(out)
}

/// The set suffixes a protection has.
fn parts(p: &Protection) -> Vec<&'static str> {
    let mut parts = vec!["ex4", "ex6"];
    if p.per_source_rate.is_some() {
        parts.extend(["rl4", "rl6"]);
    }
    if p.overload_block_seconds.is_some() {
        parts.extend(["ov4", "ov6"]);
    }
    if p.max_connections_per_source.is_some() {
        parts.extend(["ct4", "ct6"]);
    }
    if p.per_source_bandwidth.is_some() {
        parts.extend(["bw4", "bw6"]);
    }
    parts
}

fn jump_comment(p: &Protection) -> String {
    let ms = |t: Option<Timestamp>| t.map(|t| t.timestamp_millis().to_string()).unwrap_or_default();
    format!("{JUMP_MARK} id={} c={} u={}", p.protection_id, ms(p.created_at), ms(p.updated_at))
}

struct Writer<'a> {
    table: &'a str,
}

impl Writer<'_> {
    /// A chain or set of the table, by name, as a command names it.
    fn object_ref(&self, name: &str) -> Value {
        json!({"family": FAMILY_NAME, "table": self.table, "name": name})
    }

    fn rule(&self, chain: &str, expr: Vec<Value>, comment: &str) -> Value {
        json!({"add": {"rule": {"family": FAMILY_NAME, "table": self.table, "chain": chain, "expr": expr, "comment": comment}}})
    }

    /// A protection's sets, chain and limit rules.
    fn protection_objects(&self, p: &Protection) -> Result<Vec<Value>, BackendError> {
        let x = short_name(&p.protection_id);
        let mut out = Vec::new();
        let set = |suffix: &str, v6: bool, extra: Value| {
            let mut def = json!({"family": FAMILY_NAME, "table": self.table, "name": format!("{x}_{suffix}"),
                                 "type": if v6 { "ipv6_addr" } else { "ipv4_addr" }});
            if let (Some(def), Value::Object(extra)) = (def.as_object_mut(), extra) {
                def.extend(extra);
            }
            json!({"add": {"set": def}})
        };
        for v6 in [false, true] {
            let fam = if v6 { "6" } else { "4" };
            out.push(set(&format!("ex{fam}"), v6, json!({"flags": ["interval"]})));
            let nets: Vec<Value> = p.exempt.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6).map(prefix).collect();
            if !nets.is_empty() {
                out.push(json!({"add": {"element": {"family": FAMILY_NAME, "table": self.table, "name": format!("{x}_ex{fam}"), "elem": nets}}}));
            }
            // nft 1.0.6 refuses the `dynamic` flag in JSON and sets it itself for sets a rule adds to.
            if p.per_source_rate.is_some() {
                out.push(set(
                    &format!("rl{fam}"),
                    v6,
                    json!({"flags": ["timeout"], "timeout": BUCKET_SECONDS, "size": DYNAMIC_SIZE}),
                ));
            }
            if let Some(seconds) = p.overload_block_seconds {
                out.push(set(
                    &format!("ov{fam}"),
                    v6,
                    json!({"flags": ["timeout"], "timeout": seconds, "size": DYNAMIC_SIZE}),
                ));
            }
            if p.max_connections_per_source.is_some() {
                out.push(set(&format!("ct{fam}"), v6, json!({"size": DYNAMIC_SIZE})));
            }
            if p.per_source_bandwidth.is_some() {
                out.push(set(
                    &format!("bw{fam}"),
                    v6,
                    json!({"flags": ["timeout"], "timeout": BUCKET_SECONDS, "size": DYNAMIC_SIZE}),
                ));
            }
        }
        out.push(json!({"add": {"chain": self.object_ref(&x)}}));
        for rule in limit_rules(&x, p) {
            out.push(self.rule(&x, rule.expr, &format!("pd {}", rule.role)));
        }
        Ok(out)
    }
}

struct LimitRule {
    role: String,
    expr: Vec<Value>,
}

/// The source key of a family: the address, or for IPv6 its /64.
fn source_key(v6: bool) -> Value {
    if v6 {
        json!({"&": [{"payload": {"protocol": "ip6", "field": "saddr"}}, V6_SOURCE_MASK]})
    } else {
        json!({"payload": {"protocol": "ip", "field": "saddr"}})
    }
}

fn source_in(v6: bool, set: &str) -> Value {
    let left = if v6 { json!({"payload": {"protocol": "ip6", "field": "saddr"}}) } else { source_key(false) };
    json!({"match": {"op": "==", "left": left, "right": format!("@{set}")}})
}

fn masked_source_in(v6: bool, set: &str) -> Value {
    json!({"match": {"op": "==", "left": source_key(v6), "right": format!("@{set}")}})
}

fn limit(rate: &Rate) -> Value {
    json!({"limit": {"rate": rate.count, "burst": rate.burst, "per": rate.unit.as_str(), "inv": true}})
}

/// What a new connection is to the limits: a new conntrack entry, or with the SYN proxy an untracked SYN.
fn new_connection(p: &Protection) -> Value {
    let state = if p.syn_proxy { "untracked" } else { "new" };
    json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": state}})
}

fn limit_rules(x: &str, p: &Protection) -> Vec<LimitRule> {
    let mut rules = Vec::new();
    for v6 in [false, true] {
        let fam = if v6 { "6" } else { "4" };
        let family = json!({"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": if v6 { "ipv6" } else { "ipv4" }}});
        rules.push(LimitRule {
            role: format!("exempt{fam}"),
            expr: vec![source_in(v6, &format!("{x}_ex{fam}")), json!({"return": null})],
        });
        if p.overload_block_seconds.is_some() {
            rules.push(LimitRule {
                role: format!("overloaded{fam}"),
                expr: vec![
                    masked_source_in(v6, &format!("{x}_ov{fam}")),
                    json!({"counter": null}),
                    json!({"drop": null}),
                ],
            });
        }
        if let Some(bw) = &p.per_source_bandwidth {
            // Every packet a source sends to the protected ports counts, whatever its connection's state.
            let bytes = bw.bytes_per_second();
            let limit = json!({"limit": {"rate": bytes, "rate_unit": "bytes", "per": "second", "burst": bytes, "burst_unit": "bytes", "inv": true}});
            let expr = vec![
                family.clone(),
                json!({"set": {"op": "update", "elem": source_key(v6), "set": format!("@{x}_bw{fam}"), "stmt": [limit]}}),
                json!({"counter": null}),
                json!({"drop": null}),
            ];
            rules.push(LimitRule { role: format!("per_source_bandwidth{fam}"), expr });
        }
        if let Some(rate) = &p.per_source_rate {
            let mut expr = vec![family.clone(), new_connection(p)];
            expr.push(json!({"set": {"op": "update", "elem": source_key(v6), "set": format!("@{x}_rl{fam}"), "stmt": [limit(rate)]}}));
            if p.overload_block_seconds.is_some() {
                expr.push(json!({"set": {"op": "add", "elem": source_key(v6), "set": format!("@{x}_ov{fam}")}}));
            }
            expr.extend([json!({"counter": null}), json!({"drop": null})]);
            rules.push(LimitRule { role: format!("per_source_rate{fam}"), expr });
        }
        if let Some(n) = p.max_connections_per_source {
            let count = json!({"set": {"op": "add", "elem": source_key(v6), "set": format!("@{x}_ct{fam}"), "stmt": [{"ct count": {"val": n, "inv": true}}]}});
            for proto in p.protocol.protocols() {
                let (name, refuse) = if *proto == portcullis_core::model::PROTO_TCP {
                    ("tcp", json!({"reject": {"type": "tcp reset"}}))
                } else {
                    ("udp", json!({"reject": null}))
                };
                let l4 = json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": name}});
                rules.push(LimitRule {
                    role: format!("max_connections_per_source{fam}_{name}"),
                    expr: vec![family.clone(), l4, new_connection(p), count.clone(), json!({"counter": null}), refuse],
                });
            }
        }
    }
    if let Some(rate) = &p.rate_limit {
        rules.push(LimitRule {
            role: "rate_limit".into(),
            expr: vec![new_connection(p), limit(rate), json!({"counter": null}), json!({"drop": null})],
        });
    }
    if p.syn_proxy {
        rules.push(LimitRule {
            role: "syn_proxy".into(),
            expr: vec![
                json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["invalid", "untracked"]}}),
                json!({"counter": null}),
                json!({"synproxy": {"mss": SYNPROXY_MSS, "wscale": SYNPROXY_WSCALE, "flags": ["timestamp", "sack-perm"]}}),
            ],
        });
        rules.push(LimitRule {
            role: "syn_proxy_invalid".into(),
            expr: vec![
                json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}),
                json!({"counter": null}),
                json!({"drop": null}),
            ],
        });
    }
    rules
}

/// The match of a protection's traffic on its device: protocol and destination ports.
fn selector(device: &str, p: &Protection) -> Vec<Value> {
    let mut expr = vec![json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": device}})];
    let l4 = match p.protocol {
        Transport::Tcp => json!("tcp"),
        Transport::Udp => json!("udp"),
        Transport::TcpUdp => json!({"set": ["tcp", "udp"]}),
    };
    expr.push(json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": l4}}));
    if !p.ports.is_empty() {
        let ports: Vec<Value> = p.ports.iter().map(port_value).collect();
        expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": {"set": ports}}}));
    }
    expr
}

fn port_value(r: &PortRange) -> Value {
    if r.first == r.last { json!(r.first) } else { json!({"range": [r.first, r.last]}) }
}

/// A TCP segment with SYN and none of FIN, RST, ACK: the first of a handshake.
fn syn_only() -> Value {
    json!({"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]}, "right": "syn"}})
}

fn prefix(net: &IpNet) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

/// What the kernel listed of the protections: the `pd_*` chains' rules and the `pd_*` sets, as nft printed them.
#[derive(Debug, Clone, Default)]
pub struct ListedProtections {
    pub chains: BTreeMap<String, Vec<Value>>,
    pub sets: BTreeMap<String, Value>,
}

impl ListedProtections {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.sets.is_empty()
    }
}

fn unreadable(what: String) -> BackendError {
    BackendError::new(ErrorCode::UnexpectedResponse, what)
        .with_hint("a DDoS protection's chain or sets were changed outside Portcullis; set the protection again")
}

/// The protections the kernel holds, read back from the listed jump rules, chains and sets.
pub fn read(listed: &ListedProtections) -> Result<Vec<Protection>, BackendError> {
    let mut out = Vec::new();
    for rule in listed.chains.get(INPUT_CHAIN).into_iter().flatten() {
        let comment = rule["comment"].as_str().unwrap_or_default();
        let Some(head) = comment.strip_prefix(JUMP_MARK) else {
            return Err(unreadable(format!("a rule of {INPUT_CHAIN} is not a Portcullis protection's ({comment:?})")));
        };
        let field = |key: &str| head.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or_default();
        let id = field("id=");
        let at = |s: &str| s.parse::<i64>().ok().and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        out.push(read_one(listed, id, at(field("c=")), at(field("u=")))?);
    }
    Ok(out)
}

fn read_one(
    listed: &ListedProtections,
    id: &str,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
) -> Result<Protection, BackendError> {
    let (interface, protocol, ports) =
        parse_id(id).ok_or_else(|| unreadable(format!("protection id {id:?} is not interface/protocol[/ports]")))?;
    let x = short_name(id);
    let rules = listed.chains.get(&x).ok_or_else(|| unreadable(format!("protection {id}: chain {x} is missing")))?;
    let by_role = |role: &str| rules.iter().find(|r| r["comment"].as_str() == Some(&format!("pd {role}")));
    let find = |role: &str, key: &str| by_role(role).and_then(|r| find_key(&r["expr"], key));
    let rate = |role: &str| -> Result<Option<Rate>, BackendError> {
        let Some(l) = find(role, "limit") else { return Ok(None) };
        let count = l["rate"].as_u64().and_then(|n| u32::try_from(n).ok());
        let burst = l["burst"].as_u64().and_then(|n| u32::try_from(n).ok());
        let unit = match l["per"].as_str() {
            Some("second") => Some(RateUnit::Second),
            Some("minute") => Some(RateUnit::Minute),
            Some("hour") => Some(RateUnit::Hour),
            Some("day") => Some(RateUnit::Day),
            _ => None,
        };
        match (count, unit, burst) {
            (Some(count), Some(unit), Some(burst)) => Ok(Some(Rate { count, unit, burst })),
            _ => Err(unreadable(format!("protection {id}: the {role} limit reads {l}"))),
        }
    };
    let per_source_rate = rate("per_source_rate4")?;
    let per_source_bandwidth = match find("per_source_bandwidth4", "limit") {
        Some(l) => Some(
            listed_bandwidth(l).ok_or_else(|| unreadable(format!("protection {id}: the bandwidth limit reads {l}")))?,
        ),
        None => None,
    };
    let overload_block_seconds = match listed.sets.get(&format!("{x}_ov4")) {
        Some(set) => Some(
            set["timeout"]
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| unreadable(format!("protection {id}: set {x}_ov4 has no timeout")))?,
        ),
        None => None,
    };
    let max_connections_per_source = match find(
        &format!("max_connections_per_source4_{}", if protocol == Transport::Udp { "udp" } else { "tcp" }),
        "ct count",
    ) {
        Some(c) => Some(
            c["val"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| unreadable(format!("protection {id}: ct count reads {c}")))?,
        ),
        None => None,
    };
    let mut exempt = Vec::new();
    for part in ["ex4", "ex6"] {
        let set = listed
            .sets
            .get(&format!("{x}_{part}"))
            .ok_or_else(|| unreadable(format!("protection {id}: set {x}_{part} is missing")))?;
        for e in set["elem"].as_array().into_iter().flatten() {
            exempt.push(listed_net(e).ok_or_else(|| unreadable(format!("protection {id}: exempt element {e}")))?);
        }
    }
    Ok(Protection {
        protection_id: id.to_string(),
        interface,
        protocol,
        ports,
        rate_limit: rate("rate_limit")?,
        per_source_rate,
        overload_block_seconds,
        max_connections_per_source,
        per_source_bandwidth,
        syn_proxy: by_role("syn_proxy").is_some(),
        exempt,
        created_at,
        updated_at,
    })
}

/// A byte-rate limit as nft lists it (`rate_unit` bytes, kbytes or mbytes, 1024 each), in bits per second.
fn listed_bandwidth(l: &Value) -> Option<portcullis_core::protection::Bandwidth> {
    let scale: u64 = match l["rate_unit"].as_str()? {
        "bytes" => 1,
        "kbytes" => 1024,
        "mbytes" => 1024 * 1024,
        _ => return None,
    };
    (l["per"].as_str()? == "second").then_some(())?;
    let bits_per_second = l["rate"].as_u64()?.checked_mul(scale)?.checked_mul(8)?;
    Some(portcullis_core::protection::Bandwidth { bits_per_second })
}

/// `wan/tcp/80,8000:8080` back into its parts.
fn parse_id(id: &str) -> Option<(String, Transport, Vec<PortRange>)> {
    let mut parts = id.splitn(3, '/');
    let interface = parts.next()?.to_string();
    let rest: Vec<&str> = parts.collect();
    // `tcp/udp` holds a slash of its own.
    let (protocol, ports) = match rest.as_slice() {
        [p] => (*p, None),
        ["tcp", "udp"] => ("tcp/udp", None),
        ["tcp", tail] if tail.starts_with("udp") => ("tcp/udp", tail.strip_prefix("udp/")),
        [p, ports] => (*p, Some(*ports)),
        _ => return None,
    };
    let protocol = Transport::parse("protocol", protocol).ok()?;
    let ports = match ports {
        None => Vec::new(),
        Some(list) => list.split(',').map(|p| PortRange::parse("ports", p).ok()).collect::<Option<Vec<_>>>()?,
    };
    Some((interface, protocol, ports))
}

/// The first object under `key` anywhere in `v` (a statement nested in a set update, say).
fn find_key<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|c| find_key(c, key))),
        Value::Array(items) => items.iter().find_map(|c| find_key(c, key)),
        _ => None,
    }
}

/// An interval set's element as nft lists it: `{"prefix": {...}}`, `{"range": [a, b]}` of one network, or an
/// address.
fn listed_net(e: &Value) -> Option<IpNet> {
    let e = e.get("elem").map(|inner| &inner["val"]).unwrap_or(e);
    if let Some(p) = e.get("prefix") {
        return format!("{}/{}", p["addr"].as_str()?, p["len"].as_u64()?).parse().ok();
    }
    if let Some(range) = e.get("range").and_then(Value::as_array) {
        let (a, b): (std::net::IpAddr, std::net::IpAddr) =
            (range.first()?.as_str()?.parse().ok()?, range.get(1)?.as_str()?.parse().ok()?);
        return range_nets(a, b);
    }
    e.as_str()?.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

/// The network a listed range stands for, when it is one.
fn range_nets(a: std::net::IpAddr, b: std::net::IpAddr) -> Option<IpNet> {
    let max = if a.is_ipv4() { 32 } else { 128 };
    (0..=max).rev().find_map(|len| {
        let net = IpNet::new(a, len).ok()?.trunc();
        (net.network() == a && net.broadcast() == b).then_some(net)
    })
}

/// Sources in the overload sets, with when their block ends (from the listed element's `expires`).
pub fn overloaded(
    listed: &ListedProtections,
    p: &Protection,
    now: Timestamp,
) -> Vec<portcullis_core::firewall::OverloadedSource> {
    let x = short_name(&p.protection_id);
    let mut out = Vec::new();
    for part in ["ov4", "ov6"] {
        for e in listed.sets.get(&format!("{x}_{part}")).and_then(|s| s["elem"].as_array()).into_iter().flatten() {
            let inner = e.get("elem").unwrap_or(e);
            let val = inner.get("val").unwrap_or(inner);
            let Some(addr) = val.as_str() else { continue };
            let source = if part == "ov6" { format!("{addr}/64") } else { addr.to_string() };
            let expires_at = inner["expires"].as_i64().map(|s| now + chrono::TimeDelta::seconds(s));
            out.push(portcullis_core::firewall::OverloadedSource { source, expires_at });
        }
    }
    out
}

/// What each limit rule of `p` dropped or refused, from its counter.
pub fn counters(listed: &ListedProtections, p: &Protection) -> Vec<portcullis_core::firewall::LimitCounter> {
    let x = short_name(&p.protection_id);
    let mut by_limit: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for rule in listed.chains.get(&x).into_iter().flatten() {
        let Some(role) = rule["comment"].as_str().and_then(|c| c.strip_prefix("pd ")) else { continue };
        if role.starts_with("exempt") {
            continue;
        }
        let Some(counter) = find_key(&rule["expr"], "counter") else { continue };
        let limit = base_limit(role);
        let held = by_limit.entry(limit.to_string()).or_default();
        held.0 += counter["packets"].as_u64().unwrap_or(0);
        held.1 += counter["bytes"].as_u64().unwrap_or(0);
    }
    by_limit
        .into_iter()
        .map(|(limit, (packets, bytes))| portcullis_core::firewall::LimitCounter { limit, packets, bytes })
        .collect()
}

/// A rule's role without its family and protocol (`per_source_rate4` → `per_source_rate`).
fn base_limit(role: &str) -> &str {
    for limit in [
        "overloaded",
        "per_source_rate",
        "per_source_bandwidth",
        "max_connections_per_source",
        "rate_limit",
        "syn_proxy_invalid",
        "syn_proxy",
    ] {
        if role.starts_with(limit) {
            return if limit == "overloaded" { "overload" } else { limit };
        }
    }
    role
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_into_their_selector() {
        assert_eq!(parse_id("wan/tcp"), Some(("wan".into(), Transport::Tcp, vec![])));
        assert_eq!(parse_id("wan/tcp/udp"), Some(("wan".into(), Transport::TcpUdp, vec![])));
        let ports = vec![PortRange::single(80), PortRange { first: 8000, last: 8080 }];
        assert_eq!(parse_id("wan/tcp/udp/80,8000:8080"), Some(("wan".into(), Transport::TcpUdp, ports.clone())));
        assert_eq!(parse_id("lan/udp/80,8000:8080"), Some(("lan".into(), Transport::Udp, ports)));
        assert_eq!(parse_id("wan"), None);
    }

    #[test]
    fn listed_ranges_and_prefixes_are_networks() {
        assert_eq!(listed_net(&json!({"prefix": {"addr": "192.0.2.0", "len": 24}})), "192.0.2.0/24".parse().ok());
        assert_eq!(listed_net(&json!({"range": ["192.0.2.0", "192.0.2.255"]})), "192.0.2.0/24".parse().ok());
        assert_eq!(listed_net(&json!("192.0.2.9")), "192.0.2.9/32".parse().ok());
    }
}
