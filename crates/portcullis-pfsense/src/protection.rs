//! DDoS protections on pfSense, as far as pfRest v2 can carry them.
//!
//! pfSense has no object for a protection, and pfRest v2 has no field for pf's connection limits
//! (`max-src-conn-rate`, `overload <virusprot>`, `max-src-conn`; WAVE2-FACTS §2a, CONTRACT §6.1): only the SYN proxy
//! can be set, as `statetype: "synproxy state"` on the TCP pass rules of the protection's interface and ports.
//! Everything else is reported field by field ([`unsupported_fields`]) and the tool refuses it whole.
//!
//! The protection itself is Portcullis' own record, kept in the store under [`protections_key`]: its definition,
//! the rules whose statetype Portcullis set and the statetype each had before (what a removal puts back). The state
//! read from the device lists a recorded protection only while its rules still carry `synproxy state`
//! ([`ProtectionRecord::in_force`]): one changed back in the GUI drops out, so verification fails and drift shows.

use std::collections::HashMap;

use portcullis_core::firewall::{BackendError, ErrorCode, UnsupportedField};
use portcullis_core::model::{Action, PortMatch, PortRange, Protocol, Rule, RuleId};
use portcullis_core::protection::{Protection, Rate};
use portcullis_pfrest::PfRestClient;
use portcullis_pfrest::types::FirewallRule;
use portcullis_store::Store;
use serde::{Deserialize, Serialize};

use crate::mapping::{self, InterfaceMap, MANAGED_FLOATING, MANAGED_UNTRACKED};
use crate::store_error;

/// The statetype that makes pf answer a rule's TCP handshakes itself.
pub const SYNPROXY: &str = "synproxy state";
/// pfRest's default statetype: what a rule is given back when its earlier one is not known.
pub const KEEP_STATE: &str = "keep state";

/// Where a target's protections are kept: one small JSON list (a target has a handful), so a change writes it in
/// one store write and a read is one lookup (the store lists no keys by prefix).
pub fn protections_key(target: &str) -> String {
    format!("pfsense:{target}:protections")
}

/// A rule whose statetype Portcullis set to `synproxy state` for a protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxiedRule {
    pub tracker: i64,
    /// Its statetype before (`synproxy state` when it already had the proxy, which a removal then leaves); `None`
    /// when pfRest did not say, and [`KEEP_STATE`] is put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_statetype: Option<String>,
}

/// One protection as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRecord {
    pub protection: Protection,
    pub rules: Vec<ProxiedRule>,
}

impl ProtectionRecord {
    /// Whether pfSense still holds it: at least one of its rules is still there, and every one still there
    /// carries `synproxy state`. A rule deleted since does not end the protection (the others still proxy);
    /// one whose statetype was changed does.
    pub fn in_force(&self, rules: &[FirewallRule]) -> bool {
        let present: Vec<&FirewallRule> =
            self.rules.iter().filter_map(|p| rules.iter().find(|r| r.tracker == Some(p.tracker))).collect();
        !present.is_empty() && present.iter().all(|r| r.statetype.as_deref() == Some(SYNPROXY))
    }

    /// The statetype recorded for `tracker` before Portcullis proxied it, if this record has the rule.
    pub fn previous_of(&self, tracker: i64) -> Option<Option<String>> {
        self.rules.iter().find(|r| r.tracker == tracker).map(|r| r.previous_statetype.clone())
    }
}

/// The records of `target`. A value that does not parse (edited by hand) counts as none, like a pause record
/// that does not parse: the protections then drop out of the state, which shows as drift, rather than every
/// read of the target failing.
pub(crate) fn load(store: &Store, target: &str) -> Result<Vec<ProtectionRecord>, BackendError> {
    let key = protections_key(target);
    let Some(raw) = store.meta_get(&key).map_err(store_error)? else { return Ok(Vec::new()) };
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(&raw) {
        Ok(records) => Ok(records),
        Err(e) => {
            tracing::warn!(%key, error = %e, "the stored DDoS protections cannot be read; treating them as none");
            Ok(Vec::new())
        }
    }
}

pub(crate) fn encode(records: &[ProtectionRecord]) -> String {
    if records.is_empty() {
        return String::new();
    }
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(records).unwrap_or_default()
}

/// The protections the device still holds, in the order they were recorded.
pub(crate) fn in_force(records: &[ProtectionRecord], rules: &[FirewallRule]) -> Vec<Protection> {
    records.iter().filter(|r| r.in_force(rules)).map(|r| r.protection.clone()).collect()
}

fn ports_text(p: &Protection) -> String {
    match p.ports.len() {
        0 => String::new(),
        1 => format!(" for port {}", p.ports[0]),
        _ => {
            let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
            format!(" for ports {}", ports.join(", "))
        }
    }
}

/// pf's spelling of a rate: so many connections per so many seconds.
fn pf_rate(rate: &Rate) -> String {
    format!("{} connections per {} second(s)", rate.count, rate.unit.seconds())
}

fn burst_note(rate: &Rate, field: &str) -> String {
    if rate.burst == rate.count {
        String::new()
    } else {
        format!(", and {field} {} cannot be held either: pf's connection rate has no burst of its own", rate.burst)
    }
}

/// The parts of `p` pfSense cannot enforce through pfRest, one per field present, named as the tool's arguments
/// are. Only `syn_proxy` is carried out.
pub fn unsupported_fields(p: &Protection) -> Vec<UnsupportedField> {
    let rule = format!(
        "Firewall > Rules > {} > edit the TCP pass rule{} > Display Advanced",
        p.interface.to_ascii_uppercase(),
        ports_text(p)
    );
    let mut out = Vec::new();
    if let Some(rate) = &p.rate_limit {
        out.push(UnsupportedField {
            field: "rate_limit".into(),
            why: format!(
                "pfRest v2 has no field for an interface-wide new-connection rate, and pf has none to set: its \
                 connection rate (max-src-conn-rate) counts per source; {}/{} with burst_limit {} cannot be \
                 enforced on pfSense",
                rate.count,
                rate.unit.as_str(),
                rate.burst
            ),
            instead: format!(
                "there is no pf equivalent: cap the states the rule may create ({rule} > \"Max. states\"), or its \
                 bandwidth with a limiter (Firewall > Traffic Shaper > Limiters, then the rule's In/Out pipe); or \
                 enforce the rate on an nftables target in front of this firewall"
            ),
        });
    }
    if let Some(rate) = &p.per_source_rate {
        out.push(UnsupportedField {
            field: "per_source_rate".into(),
            why: format!(
                "pfRest v2 has no field for pf's max-src-conn-rate (new connections per source), so {}/{} per \
                 source cannot be set through it{}",
                rate.count,
                rate.unit.as_str(),
                burst_note(rate, "per_source_burst")
            ),
            instead: format!(
                "{rule} > \"Max. src. conn. Rate\" {} and \"Max. src. conn. Rates\" {} ({}); pfSense then also \
                 blocks a source that exceeds it (overload <virusprot>)",
                rate.count,
                rate.unit.seconds(),
                pf_rate(rate)
            ),
        });
    }
    if let Some(seconds) = p.overload_block_seconds {
        out.push(UnsupportedField {
            field: "overload_block".into(),
            why: format!(
                "pfRest v2 has no field for pf's overload <virusprot>: pfSense adds `overload <virusprot> flush \
                 global` itself to a rule whose \"Max. src. conn. Rate\" is set, and its cron job (expiretable -t \
                 3600 virusprot) lets a source go after about an hour, not after the {seconds} s asked"
            ),
            instead: format!(
                "set \"Max. src. conn. Rate\" and \"Max. src. conn. Rates\" in the GUI ({rule}): a source over the \
                 rate is then blocked through the virusprot table for about an hour; Diagnostics > Tables > \
                 virusprot lists and flushes it (get_ddos_protection shows its entries)"
            ),
        });
    }
    if let Some(b) = &p.per_source_bandwidth {
        // Until the limiter mapping exists here, a cap pfSense does not hold must be refused, not dropped.
        out.push(UnsupportedField {
            field: "per_source_bandwidth".into(),
            why: format!(
                "this pfSense backend does not create limiters yet, so {b} per source cannot be enforced through \
                 pfRest"
            ),
            instead: format!(
                "Firewall > Traffic Shaper > Limiters: a limiter of {b} with Mask \"Source addresses\" (IPv4 32, \
                 IPv6 64 bits), then {rule} > In pipe"
            ),
        });
    }
    if let Some(n) = p.max_connections_per_source {
        out.push(UnsupportedField {
            field: "max_connections_per_source".into(),
            why: format!(
                "pfRest v2 has no field for pf's max-src-conn (connections one source may hold open), so {n} \
                 cannot be set through it"
            ),
            instead: format!("{rule} > \"Max. src. connections\" {n}"),
        });
    }
    out
}

/// The error of a protection with fields pfSense cannot enforce: it is refused whole, never half applied.
pub(crate) fn unsupported_error(p: &Protection, fields: &[UnsupportedField]) -> BackendError {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let why: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.why)).collect();
    let instead: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.instead)).collect();
    BackendError::new(
        ErrorCode::Unsupported,
        format!(
            "DDoS protection {} cannot be enforced on pfSense through pfRest ({}): {}",
            p.protection_id,
            names.join(", "),
            why.join("; ")
        ),
    )
    .with_hint(format!("only syn_proxy is carried out here; {}", instead.join("; ")))
}

/// How a device rule stands to a protection's SYN proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// A TCP pass rule of the interface whose ports meet the protection's: the proxy goes on it.
    Proxy,
    /// A pass rule that would match but is not `protocol: tcp` (tcp/udp, any): pfRest refuses `synproxy state`.
    NotTcp,
    /// A TCP pass rule that routes through a gateway: pfRest refuses `synproxy state` there too.
    Gateway,
    /// Another interface, action, protocol or port, a floating or untracked rule.
    Elsewhere,
}

/// Whether a destination port of a rule meets the protection's ports (all of them when it has none). A port alias
/// counts by the ports it holds (`aliases`); an alias not found there does not meet them.
fn ports_meet(p: &Protection, port: &PortMatch, aliases: &HashMap<String, Vec<PortRange>>) -> bool {
    if p.ports.is_empty() {
        return true;
    }
    let overlaps = |r: &PortRange| p.ports.iter().any(|q| q.first <= r.last && r.first <= q.last);
    match port {
        PortMatch::Any => true,
        PortMatch::Range(r) => overlaps(r),
        PortMatch::Alias(name) => aliases.get(name).is_some_and(|ranges| ranges.iter().any(overlaps)),
    }
}

/// How `raw` (read as `model`) stands to `p`'s SYN proxy.
pub(crate) fn fit(raw: &FirewallRule, model: &Rule, p: &Protection, aliases: &HashMap<String, Vec<PortRange>>) -> Fit {
    let addressable = !matches!(model.managed.as_deref(), Some(MANAGED_FLOATING | MANAGED_UNTRACKED));
    if !addressable
        || model.action != Action::Pass
        || model.interface != p.interface
        || !ports_meet(p, &model.destination_port, aliases)
    {
        return Fit::Elsewhere;
    }
    match model.protocol {
        Protocol::Tcp if raw.gateway.as_deref().is_some_and(|g| !g.trim().is_empty()) => Fit::Gateway,
        Protocol::Tcp => Fit::Proxy,
        Protocol::TcpUdp | Protocol::Any => Fit::NotTcp,
        _ => Fit::Elsewhere,
    }
}

/// The ports of the port aliases that pass rules of `p`'s interface use as destination, read now (only when the
/// protection names ports: without, every port meets). Nested aliases are not followed.
async fn port_aliases(
    client: &PfRestClient,
    p: &Protection,
    models: &[Rule],
) -> Result<HashMap<String, Vec<PortRange>>, BackendError> {
    let mut out = HashMap::new();
    if p.ports.is_empty() {
        return Ok(out);
    }
    for rule in models.iter().filter(|r| r.action == Action::Pass && r.interface == p.interface) {
        let PortMatch::Alias(name) = &rule.destination_port else { continue };
        if out.contains_key(name) {
            continue;
        }
        let ranges = match client.alias_by_name(name).await? {
            Some(alias) if alias.type_ == "port" => {
                alias.address.iter().filter_map(|a| PortRange::parse("destination_port", a).ok()).collect()
            }
            _ => Vec::new(),
        };
        out.insert(name.clone(), ranges);
    }
    Ok(out)
}

/// The device rules `p`'s SYN proxy goes on, among `rules` (read now); refused as a validation error when there is
/// none, naming the pass rules that come close and why they cannot carry it.
pub(crate) async fn proxy_targets(
    client: &PfRestClient,
    ifaces: &InterfaceMap,
    p: &Protection,
    rules: &[FirewallRule],
) -> Result<Vec<FirewallRule>, BackendError> {
    // A rule Portcullis cannot read is not one it proxies; the state read reports it.
    let read: Vec<(&FirewallRule, Rule)> =
        rules.iter().filter_map(|r| mapping::rule_from_device(r, ifaces, None).ok().map(|m| (r, m))).collect();
    let models: Vec<Rule> = read.iter().map(|(_, m)| m.clone()).collect();
    let aliases = port_aliases(client, p, &models).await?;
    let mut targets = Vec::new();
    let mut near = Vec::new();
    for (raw, model) in &read {
        match fit(raw, model, p, &aliases) {
            Fit::Proxy => targets.push((*raw).clone()),
            Fit::Elsewhere => {}
            other => near.push((model.rule_id.clone(), model.protocol, other)),
        }
    }
    if targets.is_empty() {
        return Err(nothing_to_proxy(p, &near));
    }
    Ok(targets)
}

fn nothing_to_proxy(p: &Protection, near: &[(RuleId, Protocol, Fit)]) -> BackendError {
    let mut message = format!("no TCP pass rule on {}{} to proxy; create one first", p.interface, ports_text(p));
    let not_tcp: Vec<String> =
        near.iter().filter(|(_, _, f)| *f == Fit::NotTcp).map(|(id, proto, _)| format!("{id} ({proto})")).collect();
    if !not_tcp.is_empty() {
        message.push_str(&format!(
            " (pass rules {} match but pfSense's SYN proxy works on protocol tcp rules only; give TCP its own pass \
             rule)",
            not_tcp.join(", ")
        ));
    }
    let routed: Vec<String> =
        near.iter().filter(|(_, _, f)| *f == Fit::Gateway).map(|(id, _, _)| id.to_string()).collect();
    if !routed.is_empty() {
        message.push_str(&format!(
            " (rules {} route through a gateway, where pfSense cannot proxy handshakes)",
            routed.join(", ")
        ));
    }
    BackendError::new(ErrorCode::ValidationError, message).with_hint(format!(
        "create a pass rule with protocol tcp on {}{} (create_firewall_rule), then configure the protection again",
        p.interface,
        ports_text(p)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::protection::Transport;
    use serde_json::json;

    fn syn_proxy(ports: &[u16]) -> Protection {
        Protection {
            protection_id: Protection::id_for(
                "wan",
                Transport::Tcp,
                &ports.iter().map(|p| PortRange::single(*p)).collect::<Vec<_>>(),
            ),
            interface: "wan".into(),
            protocol: Transport::Tcp,
            ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
            rate_limit: None,
            per_source_rate: None,
            overload_block_seconds: None,
            max_connections_per_source: None,
            per_source_bandwidth: None,
            syn_proxy: true,
            exempt: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    fn ifaces() -> InterfaceMap {
        let list = serde_json::from_value::<Vec<portcullis_pfrest::types::NetworkInterface>>(json!([
            {"id": "wan", "if": "em0", "descr": "WAN"}, {"id": "lan", "if": "em1", "descr": "LAN"}
        ]))
        .unwrap();
        InterfaceMap::new(&list)
    }

    fn rule(v: serde_json::Value) -> FirewallRule {
        let mut base = json!({"id": 0, "tracker": 1700000001, "type": "pass", "interface": ["WAN"],
            "ipprotocol": "inet", "protocol": "tcp", "source": "any", "destination": "any",
            "destination_port": "443", "statetype": "keep state"});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn fit_of(raw: &FirewallRule, p: &Protection) -> Fit {
        let aliases = HashMap::from([("WEB".to_string(), vec![PortRange::single(80), PortRange::single(443)])]);
        fit(raw, &mapping::rule_from_device(raw, &ifaces(), None).unwrap(), p, &aliases)
    }

    #[test]
    fn only_syn_proxy_is_carried_out_and_every_other_field_says_why_and_what_instead() {
        let mut p = syn_proxy(&[443]);
        assert!(unsupported_fields(&p).is_empty());
        p.rate_limit = Some(Rate::parse("rate_limit", "1000/s").unwrap().with_burst("burst_limit", "5000").unwrap());
        p.per_source_rate = Some(Rate::parse("per_source_rate", "600/minute").unwrap());
        p.overload_block_seconds = Some(600);
        p.max_connections_per_source = Some(50);
        let fields = unsupported_fields(&p);
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["rate_limit", "per_source_rate", "overload_block", "max_connections_per_source"]);
        assert!(!names.contains(&"burst_limit"), "the burst is told in rate_limit's why, not a field of its own");
        assert!(fields[0].why.contains("burst_limit 5000"), "{}", fields[0].why);
        assert!(fields[0].instead.contains("no pf equivalent") && fields[0].instead.contains("Max. states"));
        assert!(fields[1].why.contains("max-src-conn-rate"), "{}", fields[1].why);
        assert!(!fields[1].why.contains("per_source_burst"), "the burst equals the count: nothing to say");
        assert!(
            fields[1].instead.contains("\"Max. src. conn. Rate\" 600 and \"Max. src. conn. Rates\" 60"),
            "{}",
            fields[1].instead
        );
        assert!(fields[1].instead.contains("Firewall > Rules > WAN > edit the TCP pass rule for port 443"));
        assert!(fields[2].why.contains("overload <virusprot>") && fields[2].why.contains("600 s"));
        assert!(fields[3].why.contains("max-src-conn") && fields[3].instead.contains("\"Max. src. connections\" 50"));
        for f in &fields {
            assert!(f.why.starts_with("pfRest v2 has no field"), "{}: {}", f.field, f.why);
        }

        let mut capped = syn_proxy(&[443]);
        capped.per_source_bandwidth = Some(portcullis_core::protection::Bandwidth::parse("b", "10Mbit/s").unwrap());
        let fields = unsupported_fields(&capped);
        assert_eq!(fields.len(), 1, "never silently dropped");
        assert_eq!(fields[0].field, "per_source_bandwidth");
        assert!(fields[0].why.contains("10Mbit/s") && fields[0].instead.contains("Limiters"), "{:?}", fields[0]);

        p.per_source_rate = Some(Rate::parse("per_source_rate", "20/s").unwrap().with_burst("b", "40").unwrap());
        let fields = unsupported_fields(&p);
        assert!(fields[1].why.contains("per_source_burst 40"), "{}", fields[1].why);
        let err = unsupported_error(&p, &fields);
        assert_eq!(err.code, ErrorCode::Unsupported);
        assert!(err.message.contains("rate_limit, per_source_rate, overload_block, max_connections_per_source"));
    }

    #[test]
    fn the_proxy_goes_on_tcp_pass_rules_of_the_interface_whose_ports_meet() {
        let p = syn_proxy(&[443]);
        assert_eq!(fit_of(&rule(json!({})), &p), Fit::Proxy);
        assert_eq!(fit_of(&rule(json!({"destination_port": null})), &p), Fit::Proxy, "any port includes 443");
        assert_eq!(fit_of(&rule(json!({"destination_port": "400:500"})), &p), Fit::Proxy);
        assert_eq!(fit_of(&rule(json!({"destination_port": "WEB"})), &p), Fit::Proxy, "a port alias holding 443");
        assert_eq!(fit_of(&rule(json!({"destination_port": "OTHER"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"destination_port": "22"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"interface": ["LAN"]})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"type": "block"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"protocol": "udp"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"protocol": "tcp/udp"})), &p), Fit::NotTcp);
        assert_eq!(fit_of(&rule(json!({"protocol": null, "destination_port": null})), &p), Fit::NotTcp);
        assert_eq!(fit_of(&rule(json!({"gateway": "WAN_DHCP"})), &p), Fit::Gateway);
        assert_eq!(fit_of(&rule(json!({"floating": true})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"tracker": null})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"destination_port": "22"})), &syn_proxy(&[])), Fit::Proxy, "every port");

        let near =
            [(RuleId("17".into()), Protocol::TcpUdp, Fit::NotTcp), (RuleId("18".into()), Protocol::Tcp, Fit::Gateway)];
        let err = nothing_to_proxy(&p, &near);
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert!(err.message.starts_with("no TCP pass rule on wan for port 443 to proxy; create one first"));
        assert!(err.message.contains("17 (tcp/udp)") && err.message.contains("rules 18 route"), "{}", err.message);
    }

    #[test]
    fn a_protection_is_in_force_while_its_remaining_rules_carry_the_proxy() {
        let record = ProtectionRecord {
            protection: syn_proxy(&[443]),
            rules: vec![
                ProxiedRule { tracker: 1, previous_statetype: Some("keep state".into()) },
                ProxiedRule { tracker: 2, previous_statetype: None },
            ],
        };
        let with = |states: &[(i64, &str)]| -> Vec<FirewallRule> {
            states.iter().map(|(t, s)| rule(json!({"tracker": t, "statetype": s}))).collect()
        };
        assert!(record.in_force(&with(&[(1, SYNPROXY), (2, SYNPROXY), (3, KEEP_STATE)])));
        assert!(record.in_force(&with(&[(2, SYNPROXY)])), "rule 1 was deleted; 2 still proxies");
        assert!(!record.in_force(&with(&[(1, SYNPROXY), (2, KEEP_STATE)])), "changed back in the GUI");
        assert!(!record.in_force(&with(&[(3, SYNPROXY)])), "none of its rules is left");
        assert_eq!(record.previous_of(1), Some(Some("keep state".into())));
        assert_eq!(record.previous_of(9), None);

        let text = encode(std::slice::from_ref(&record));
        let back: Vec<ProtectionRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![record]);
        assert_eq!(encode(&[]), "");
    }
}
