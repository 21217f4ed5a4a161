//! Tool arguments, with the exact names the customer's scripts use (BRIEF §2), and their parsing into domain
//! requests. Parsing is the syntactic half of validation: every error names the argument at fault.

use chrono::TimeDelta;
use ipnet::IpNet;
use portcullis_core::duration::Lifetime;
use portcullis_core::model::{
    Action, AddressMatch, Direction, IpVersion, PortMatch, PortRange, Protocol, RuleId, parse_net, validate_text,
};
use portcullis_core::plan::{Addresses, Intent, RuleDraft, RulePatch};
use portcullis_core::protection::{Protection, ProtectionKey, Rate, Transport};
use portcullis_core::{FieldError, FieldResult};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::CallError;

pub const MAX_DESCRIPTION: usize = 255;
pub const MAX_PAUSE_MINUTES: u32 = 1440;

/// A value scripts send either as a string or as a number (ports, rule ids).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StrOrNum {
    Str(String),
    Num(i64),
}

impl StrOrNum {
    fn text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Num(n) => n.to_string(),
        }
    }
}

/// Reads a tool's arguments into its type; a wrong type or a missing argument names the field.
pub fn parse_args<T: DeserializeOwned>(args: &Value) -> Result<T, CallError> {
    let value = if args.is_null() { Value::Object(Default::default()) } else { args.clone() };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = in_peoples_words(&e.into_inner().to_string());
        if path != "." && !path.is_empty() {
            return CallError::from(FieldError::new(path, inner));
        }
        if let Some(field) = missing_field_name(&inner) {
            return CallError::from(FieldError::new(field, inner));
        }
        // serde loses the path of a flattened field; the change options are the one flattened type, so an error
        // at the root is looked for there.
        match serde_path_to_error::deserialize::<_, ChangeOptions>(args.clone()) {
            Err(e) if !e.path().to_string().is_empty() && e.path().to_string() != "." => {
                CallError::from(FieldError::new(e.path().to_string(), in_peoples_words(&e.into_inner().to_string())))
            }
            _ => CallError::from(FieldError::new("arguments", inner)),
        }
    })
}

/// serde's message with the Rust type names said as people say them (`expected u32` → `expected a whole number
/// from 0 to 4294967295`), and its `invalid type: string "x"` as `got the text "x"`.
fn in_peoples_words(message: &str) -> String {
    let kinds: [(&str, String); 14] = [
        ("usize", "a whole number of 0 or more".into()),
        ("u64", format!("a whole number from 0 to {}", u64::MAX)),
        ("u32", format!("a whole number from 0 to {}", u32::MAX)),
        ("u16", format!("a whole number from 0 to {}", u16::MAX)),
        ("u8", format!("a whole number from 0 to {}", u8::MAX)),
        ("i64", "a whole number".into()),
        ("i32", "a whole number".into()),
        ("f64", "a number".into()),
        ("f32", "a number".into()),
        ("a boolean", "true or false".into()),
        ("a string", "text".into()),
        ("a sequence", "a list".into()),
        ("a map", "an object".into()),
        ("struct", "an object".into()),
    ];
    let mut out = message.to_string();
    for (rust, words) in &kinds {
        out = out.replace(&format!("expected {rust}"), &format!("expected {words}"));
    }
    out.replace("invalid type: string ", "got the text ")
        .replace("invalid type: integer ", "got the number ")
        .replace("invalid type: floating point ", "got the number ")
        .replace("invalid type: boolean ", "got ")
        .replace("invalid type: null", "got nothing (null)")
        .replace("invalid type: sequence", "got a list")
        .replace("invalid type: map", "got an object")
        .replace("invalid value: integer ", "got ")
}

fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

// The options every change tool takes, flattened into its arguments (a plain comment: a doc comment would
// become the description of every change tool's input schema).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ChangeOptions {
    /// Return the plan and change nothing.
    pub dry_run: Option<bool>,
    /// Apply now and undo automatically unless `confirm_change` arrives within this time (e.g. 5m).
    pub confirm_within: Option<String>,
    /// The firewall to change; the default target when omitted.
    pub target: Option<String>,
    /// Make the rule even if it changes no traffic (rules above it decide what it matches); refused otherwise.
    pub allow_no_effect: Option<bool>,
}

/// Arguments every tool accepts.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct TargetArg {
    /// The firewall to act on; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct VpnStatusArgs {
    /// openvpn, ipsec or wireguard; every kind when omitted.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChangeIdArgs {
    /// The change_id a change tool returned.
    pub change_id: String,
    /// For rollback_change: show the undo plan and change nothing.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryLogsArgs {
    /// How far back: 15m, 1h, 24h, 7d, ...
    pub timeframe: String,
    /// pass, block or reject.
    pub action: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
    /// An address or a CIDR.
    pub source_ip: Option<String>,
    pub destination_ip: Option<String>,
    pub destination_port: Option<StrOrNum>,
    pub protocol: Option<String>,
    pub interface: Option<String>,
    /// Only entries whose source or destination is in this country (ISO 3166-1 alpha-2, e.g. CN).
    pub country: Option<String>,
    /// The next_cursor of a previous answer, for the next page.
    pub cursor: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TrafficStatsArgs {
    /// Only traffic of this interface (name like `wan`, or device like `em0`).
    pub interface: Option<String>,
    /// How far back: 15m, 1h, 24h, 7d, ...
    pub timeframe: String,
    /// Which metrics the caller wants (bytes, packets, connections, blocked, bandwidth); every bucket carries all.
    pub metrics: Option<Vec<String>>,
    /// Bucket length of `data` (1m, 5m, 1h, 1d); default from the timeframe.
    pub granularity: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnalyzeThreatsArgs {
    /// How far back: 1h, 24h, 7d, ...
    pub timeframe: String,
    /// At most this many threats, highest score first (default 100, at most 1000); `count` is the total.
    pub limit: Option<u32>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReportArgs {
    /// How far back: 24h, 7d, 30d, ...
    pub timeframe: String,
    /// json (default), markdown or html.
    pub format: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AlarmsArgs {
    /// How far back alerts go (default 24h).
    pub timeframe: Option<String>,
}

/// No arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AuditLogArgs {
    /// At most this many records (default 50, at most 1000).
    pub limit: Option<u32>,
    pub tool: Option<String>,
    pub principal: Option<String>,
    /// allowed or denied.
    pub decision: Option<String>,
    /// Only records from this long ago until now: 15m, 1h, 24h, 7d.
    pub timeframe: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetFirewallRulesArgs {
    /// Only rules of this interface (name like `lan`, or device like `em1`).
    pub interface: Option<String>,
    /// Leave out disabled and paused rules.
    pub enabled_only: Option<bool>,
    /// Compact rows plus counts per interface and action.
    pub summary: Option<bool>,
    /// Only the rule with this id.
    pub rule_id: Option<StrOrNum>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListAliasesArgs {
    /// One alias by name, with all its entries; without it, every alias with its entry count.
    pub name: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateFirewallRuleArgs {
    pub interface: String,
    /// pass, block or reject.
    pub action: String,
    /// any, tcp, udp, tcp/udp, icmp, icmpv6, esp, ah, gre, ... (default any).
    pub protocol: Option<String>,
    /// any, an IP, a CIDR, an alias, an interface name (its subnet), iface:ip or (self); prefix ! to invert.
    pub source: String,
    pub destination: String,
    /// A port (22), a range (1000:2000) or a port alias; tcp/udp only.
    pub destination_port: Option<StrOrNum>,
    pub source_port: Option<StrOrNum>,
    pub description: Option<String>,
    /// 0-based position among the interface's rules; appended when omitted.
    pub position: Option<u32>,
    pub log: Option<bool>,
    /// Create the rule disabled.
    pub disabled: Option<bool>,
    /// in (default), out or any.
    pub direction: Option<String>,
    /// inet, inet6 or inet46; follows the addresses when omitted.
    pub ip_version: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ModifyFirewallRuleArgs {
    pub rule_id: StrOrNum,
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub action: Option<String>,
    pub protocol: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub source_port: Option<StrOrNum>,
    pub destination_port: Option<StrOrNum>,
    pub log: Option<bool>,
    pub position: Option<u32>,
    pub ip_version: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RuleIdArgs {
    pub rule_id: StrOrNum,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PauseRuleArgs {
    pub rule_id: StrOrNum,
    /// How long to pause, 1-1440 minutes (default 60). The rule resumes by itself.
    pub minutes: Option<i64>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlockIpAddressArgs {
    /// An IPv4/IPv6 address or CIDR.
    pub ip_address: Option<String>,
    /// Several addresses or CIDRs blocked in one change (one approval, one alias update), instead of `ip_address`.
    pub ip_addresses: Option<Vec<String>>,
    /// Block on this interface only; every interface when omitted.
    pub interface: Option<String>,
    /// 30m, 1h, 24h, 7d, ... or permanent. The block expires by itself.
    pub duration: String,
    pub reason: String,
    /// Set this duration even if the address is already blocked for longer (by default the longer block stays).
    pub replace: Option<bool>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlockDomainArgs {
    /// A hostname (`ads.example.com`; IDNA names are converted). Wildcards are refused: block each name.
    pub domain: String,
    /// 30m, 1h, 24h, 7d, ... or permanent. The block expires by itself.
    pub duration: String,
    pub reason: String,
    /// Block on this interface only; every interface when omitted.
    pub interface: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnblockDomainArgs {
    pub domain: String,
    /// Only the block on this interface; every block of the name when omitted.
    pub interface: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnblockIpAddressArgs {
    pub ip_address: Option<String>,
    /// Several addresses unblocked in one change, instead of `ip_address`.
    pub ip_addresses: Option<Vec<String>>,
    /// Only the block on this interface; every block of the address when omitted.
    pub interface: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GrantAccessArgs {
    /// The address or CIDR let in.
    pub ip_address: Option<String>,
    /// Several addresses let in by one change, instead of `ip_address`.
    pub ip_addresses: Option<Vec<String>>,
    /// 30m, 1h, 8h, ... or permanent. The grant expires by itself.
    pub duration: String,
    /// The managed allow alias (default PORTCULLIS_GRANT) that pass rules reference.
    pub alias: Option<String>,
    pub reason: String,
    /// With `port`: create the pass rule from the alias on this interface if none references it yet.
    pub interface: Option<String>,
    /// tcp (default), udp or tcp/udp, for the created rule.
    pub protocol: Option<String>,
    /// The destination of the created rule (default: the interface's own address, `iface:ip`).
    pub destination: Option<String>,
    pub port: Option<StrOrNum>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RevokeAccessArgs {
    pub ip_address: Option<String>,
    /// Several grants revoked in one change, instead of `ip_address`.
    pub ip_addresses: Option<Vec<String>>,
    /// Only this grant list; every grant list when omitted.
    pub alias: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListGrantsArgs {
    pub alias: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InterfaceFilterArgs {
    pub interface: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListBlocksArgs {
    pub interface: Option<String>,
    pub target: Option<String>,
    /// At most this many blocks (1-10000), read only as far as they reach; without it, every block.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SimulatePacketArgs {
    pub interface: String,
    /// in (default) or out.
    pub direction: Option<String>,
    /// tcp, udp, icmp, icmpv6, or another protocol name or number.
    pub protocol: String,
    /// The packet's source address.
    pub source: String,
    pub destination: String,
    pub destination_port: Option<StrOrNum>,
    pub source_port: Option<StrOrNum>,
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateGeoBlockArgs {
    /// ISO 3166-1 alpha-2 country codes, e.g. ["CN", "RU"].
    pub countries: Vec<String>,
    /// The interfaces it applies on, e.g. ["wan"].
    pub interfaces: Vec<String>,
    /// Why; kept with the block's rules.
    pub description: String,
    /// in (default): traffic from the countries; out: traffic to them; both.
    pub direction: Option<String>,
    /// 30m, 24h, 7d, ... or permanent (the default). The block removes itself when it ends.
    pub duration: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GeoBlockIdArgs {
    /// The block's id, like geo-3f9a1c (see list_geo_blocks).
    pub geo_block_id: String,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

/// A change that needs no arguments of its own.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChangeArgs {
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LookupCountryArgs {
    /// The IPv4 or IPv6 address whose country is asked.
    pub ip_address: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SetEgressPolicyArgs {
    /// The interface whose traffic from this host the policy decides (name like `wan`, or device).
    pub interface: String,
    /// true (default): put the policy in place, replacing one already there; false: remove it.
    pub enabled: Option<bool>,
    /// Further flows this host may start, in order.
    pub allow: Option<Vec<EgressAllowArgs>>,
    /// Allow DNS (TCP and UDP 53) to the resolvers of /etc/resolv.conf (default true).
    pub include_dns: Option<bool>,
    /// Allow the APIs of the configured pfSense targets, their host names resolved now (default true).
    pub include_firewall_apis: Option<bool>,
    /// Allow the MCP clients: the configured client networks and the calling client's address (default true).
    pub include_mcp_clients: Option<bool>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

/// One flow an egress policy allows.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EgressAllowArgs {
    /// What the flow is for, e.g. `package mirror`.
    pub name: String,
    /// tcp, udp, tcp/udp, icmp or any (default tcp).
    pub protocol: Option<String>,
    /// An address or CIDR.
    pub destination: String,
    /// A port (443) or a range (1000:2000); every port when omitted.
    pub port: Option<StrOrNum>,
    /// Any other key is refused: a misspelt `port` must not silently allow every port.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, Value>,
}

// ---- parsing into domain values ----

pub fn rule_id(v: &StrOrNum) -> FieldResult<RuleId> {
    RuleId::parse("rule_id", &v.text())
}

pub fn port(field: &str, v: &Option<StrOrNum>) -> FieldResult<PortMatch> {
    v.as_ref().map_or(Ok(PortMatch::Any), |p| PortMatch::parse(field, &p.text()))
}

fn opt<T>(v: &Option<String>, parse: impl Fn(&str) -> FieldResult<T>) -> FieldResult<Option<T>> {
    v.as_deref().map(parse).transpose()
}

pub fn description(field: &str, v: &Option<String>) -> FieldResult<Option<String>> {
    match v {
        Some(text) => validate_text(field, text, MAX_DESCRIPTION).map(|()| Some(text.trim().to_string())),
        None => Ok(None),
    }
}

/// An address or CIDR that can be blocked, as a network.
pub fn block_target(field: &str, v: &str) -> FieldResult<IpNet> {
    parse_net(field, v)
}

/// The most addresses one call may carry, whatever the role (roles cap it lower: `caps.max_bulk`).
const MAX_LISTED: usize = 100_000;

/// `ip_address` or `ip_addresses`: exactly one of them, each address parsed and named by its place in the list.
pub fn addresses(one: Option<&str>, many: Option<&[String]>) -> FieldResult<Addresses> {
    match (one, many) {
        (Some(v), None) => Ok(block_target("ip_address", v)?.into()),
        (None, Some([])) => Err(FieldError::new("ip_addresses", "the list is empty; give at least one address")),
        (None, Some(list)) if list.len() > MAX_LISTED => {
            Err(FieldError::new("ip_addresses", format!("{} addresses; at most {MAX_LISTED} per call", list.len())))
        }
        (None, Some(list)) => {
            let nets = list.iter().enumerate().map(|(i, v)| block_target(&format!("ip_addresses[{i}]"), v));
            Ok(Addresses::listed(nets.collect::<FieldResult<Vec<_>>>()?))
        }
        (Some(_), Some(_)) => Err(FieldError::new("ip_addresses", "give ip_address or ip_addresses, not both")),
        (None, None) => {
            Err(FieldError::new("ip_address", "an IP address or CIDR is required (or ip_addresses: [...])"))
        }
    }
}

pub fn interface_name(field: &str, v: &str) -> FieldResult<String> {
    portcullis_core::model::validate_identifier(field, v.trim())?;
    Ok(v.trim().to_string())
}

pub fn create_intent(a: &CreateFirewallRuleArgs) -> FieldResult<Intent> {
    Ok(Intent::CreateRule(RuleDraft {
        interface: interface_name("interface", &a.interface)?,
        direction: opt(&a.direction, |s| Direction::parse("direction", s))?.unwrap_or(Direction::In),
        action: Action::parse("action", &a.action)?,
        ip_version: opt(&a.ip_version, |s| IpVersion::parse("ip_version", s))?,
        protocol: opt(&a.protocol, |s| Protocol::parse("protocol", s))?.unwrap_or(Protocol::Any),
        source: AddressMatch::parse("source", &a.source)?,
        source_port: port("source_port", &a.source_port)?,
        destination: AddressMatch::parse("destination", &a.destination)?,
        destination_port: port("destination_port", &a.destination_port)?,
        description: description("description", &a.description)?.unwrap_or_default(),
        log: a.log.unwrap_or(false),
        enabled: !a.disabled.unwrap_or(false),
        position: a.position.map(|p| p as usize),
    }))
}

pub fn modify_intent(a: &ModifyFirewallRuleArgs) -> FieldResult<Intent> {
    let patch = RulePatch {
        action: opt(&a.action, |s| Action::parse("action", s))?,
        ip_version: opt(&a.ip_version, |s| IpVersion::parse("ip_version", s))?,
        protocol: opt(&a.protocol, |s| Protocol::parse("protocol", s))?,
        source: opt(&a.source, |s| AddressMatch::parse("source", s))?,
        source_port: a.source_port.as_ref().map(|p| PortMatch::parse("source_port", &p.text())).transpose()?,
        destination: opt(&a.destination, |s| AddressMatch::parse("destination", s))?,
        destination_port: a
            .destination_port
            .as_ref()
            .map(|p| PortMatch::parse("destination_port", &p.text()))
            .transpose()?,
        description: description("description", &a.description)?,
        enabled: a.enabled,
        log: a.log,
        position: a.position.map(|p| p as usize),
    };
    Ok(Intent::ModifyRule { rule_id: rule_id(&a.rule_id)?, patch })
}

pub fn pause_span(minutes: Option<i64>) -> FieldResult<TimeDelta> {
    let m = minutes.unwrap_or(60);
    if !(1..=i64::from(MAX_PAUSE_MINUTES)).contains(&m) {
        return Err(FieldError::new(
            "minutes",
            format!("{m} is out of range; pause for 1-{MAX_PAUSE_MINUTES} minutes"),
        ));
    }
    Ok(TimeDelta::minutes(m))
}

pub fn lifetime(v: &str) -> FieldResult<Lifetime> {
    Lifetime::parse("duration", v)
}

pub fn reason(v: &str) -> FieldResult<String> {
    let text = v.trim();
    if text.is_empty() {
        return Err(FieldError::new("reason", "a reason is required; it goes into the audit trail and the block list"));
    }
    validate_text("reason", text, MAX_DESCRIPTION)?;
    Ok(text.to_string())
}

pub fn simulate_port(field: &str, v: &Option<StrOrNum>) -> FieldResult<Option<u16>> {
    match v {
        None => Ok(None),
        Some(p) => {
            let range = PortRange::parse(field, &p.text())?;
            if range.first != range.last {
                return Err(FieldError::new(field, "a packet has one port, not a range"));
            }
            Ok(Some(range.first))
        }
    }
}

pub fn vpn_kind(v: &str) -> FieldResult<portcullis_core::firewall::VpnKind> {
    use portcullis_core::firewall::VpnKind;
    match v.trim().to_ascii_lowercase().as_str() {
        "openvpn" => Ok(VpnKind::Openvpn),
        "ipsec" => Ok(VpnKind::Ipsec),
        "wireguard" => Ok(VpnKind::Wireguard),
        other => {
            Err(FieldError::new("type", format!("unknown VPN type {other:?}; expected openvpn, ipsec or wireguard")))
        }
    }
}

pub fn change_id(v: &str) -> FieldResult<String> {
    let v = v.trim();
    let ok = !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if ok { Ok(v.to_string()) } else { Err(FieldError::new("change_id", format!("{v:?} is not a change id"))) }
}

pub fn alias_name(v: &Option<String>) -> FieldResult<Option<String>> {
    match v {
        Some(name) => {
            portcullis_core::model::validate_alias_name("alias", name.trim())?;
            Ok(Some(name.trim().to_string()))
        }
        None => Ok(None),
    }
}

/// The explicit flows of `set_egress_policy`; errors name the flow (`allow[1].port`).
pub fn egress_allow(allow: &[EgressAllowArgs]) -> FieldResult<Vec<portcullis_core::egress::EgressFlow>> {
    allow
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |name: &str| format!("allow[{i}].{name}");
            if let Some(key) = a.unknown.keys().next() {
                return Err(FieldError::new(field(key), "unknown key; expected name, protocol, destination, port"));
            }
            validate_text(&field("name"), &a.name, MAX_DESCRIPTION)?;
            let port = match port(&field("port"), &a.port)? {
                PortMatch::Any => None,
                PortMatch::Range(range) => Some(range),
                PortMatch::Alias(_) => {
                    return Err(FieldError::new(field("port"), "give a port number or range, not an alias"));
                }
            };
            Ok(portcullis_core::egress::EgressFlow {
                name: a.name.trim().to_string(),
                protocol: opt(&a.protocol, |s| Protocol::parse(&field("protocol"), s))?.unwrap_or(Protocol::Tcp),
                destination: parse_net(&field("destination"), &a.destination)?,
                port,
            })
        })
        .collect()
}

pub fn grant_intent(a: &GrantAccessArgs, now: portcullis_core::model::Timestamp) -> FieldResult<Intent> {
    use portcullis_core::plan::GrantRule;
    let rule = match (&a.interface, &a.port) {
        (Some(iface), Some(_)) => {
            let interface = interface_name("interface", iface)?;
            let protocol = opt(&a.protocol, |s| Protocol::parse("protocol", s))?.unwrap_or(Protocol::Tcp);
            let default_destination = format!("{interface}:ip");
            let destination =
                AddressMatch::parse("destination", a.destination.as_deref().unwrap_or(&default_destination))?;
            Some(GrantRule { interface, protocol, destination, destination_port: port("port", &a.port)? })
        }
        (None, None) => None,
        (Some(_), None) => return Err(FieldError::new("port", "give the port the grant opens on that interface")),
        (None, Some(_)) => return Err(FieldError::new("interface", "give the interface the grant opens the port on")),
    };
    Ok(Intent::Grant {
        addresses: addresses(a.ip_address.as_deref(), a.ip_addresses.as_deref())?,
        alias: alias_name(&a.alias)?,
        expires_at: lifetime(&a.duration)?.expires_at(now),
        reason: reason(&a.reason)?,
        rule,
    })
}

/// The ports a protection covers: one port or range, or a list of them (`443`, `"80,443"`, `[80, "8000:8080"]`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortsArg {
    One(StrOrNum),
    Many(Vec<StrOrNum>),
}

impl PortsArg {
    /// Each port or range with the argument it came in (`ports`, `ports[1]`).
    pub fn ranges(&self) -> FieldResult<Vec<PortRange>> {
        let items: Vec<(String, String)> = match self {
            Self::One(p) => {
                let text = p.text();
                let parts: Vec<&str> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                if parts.len() > 1 {
                    parts.iter().enumerate().map(|(i, s)| (format!("ports[{i}]"), s.to_string())).collect()
                } else {
                    vec![("ports".to_string(), text)]
                }
            }
            Self::Many(list) => list.iter().enumerate().map(|(i, p)| (format!("ports[{i}]"), p.text())).collect(),
        };
        if items.is_empty() {
            return Err(FieldError::new("ports", "give at least one port, or leave ports out to cover every port"));
        }
        items.iter().map(|(field, text)| PortRange::parse(field, text)).collect()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConfigureDdosProtectionArgs {
    /// The interface whose incoming connections are limited, e.g. wan.
    pub interface: String,
    /// New connections per second on the interface, all sources together, e.g. "1000/s" (also /minute, /hour).
    pub rate_limit: Option<String>,
    /// How many new connections may arrive at once above rate_limit, e.g. "5000" (default: one second's worth).
    pub burst_limit: Option<StrOrNum>,
    /// true (default): set the protection; false: remove the protection of this interface and selector.
    pub enabled: Option<bool>,
    /// New connections per second from one source (an IPv4 address, an IPv6 /64), e.g. "20/s".
    pub per_source_rate: Option<String>,
    /// The burst one source may send above per_source_rate (default: one second's worth).
    pub per_source_burst: Option<StrOrNum>,
    /// Connections one source may hold open at once; the next is refused with a TCP reset.
    pub max_connections_per_source: Option<StrOrNum>,
    /// What one source may send to the protected ports, e.g. "10Mbit/s" (packets beyond it are dropped).
    pub per_source_bandwidth: Option<String>,
    /// Answer TCP handshakes in the firewall's SYN proxy before the server sees them (TCP only).
    pub syn_proxy: Option<bool>,
    /// The destination ports protected: 443, "80,443", [80, "8000:8080"]; every port when omitted.
    pub ports: Option<PortsArg>,
    /// tcp (default), udp or tcp/udp.
    pub protocol: Option<String>,
    /// How long a source that exceeds per_source_rate stays blocked, e.g. 10m (only its excess is dropped
    /// when omitted).
    pub overload_block: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

impl ConfigureDdosProtectionArgs {
    /// The protection asked for (its interface as named; exempt sources are added at the change door), or the
    /// key of the one to remove when `enabled` is false.
    pub fn protection(&self) -> FieldResult<Result<Protection, ProtectionKey>> {
        let interface = interface_name("interface", &self.interface)?;
        let protocol = opt(&self.protocol, |s| Transport::parse("protocol", s))?.unwrap_or_default();
        let ports = self.ports.as_ref().map(PortsArg::ranges).transpose()?.unwrap_or_default();
        if self.enabled == Some(false) {
            return Ok(Err(ProtectionKey { interface, protocol, ports }));
        }
        let rate = |field: &str, rate: &Option<String>, burst_field: &str, burst: &Option<StrOrNum>| match (rate, burst)
        {
            (Some(r), b) => {
                let r = Rate::parse(field, r)?;
                b.as_ref().map_or(Ok(r), |b| r.with_burst(burst_field, &b.text())).map(Some)
            }
            (None, Some(_)) => Err(FieldError::new(burst_field, format!("a burst needs its rate: give {field} too"))),
            (None, None) => Ok(None),
        };
        let max_connections = match &self.max_connections_per_source {
            None => None,
            Some(n) => Some(portcullis_core::protection::rate::parse_count(n.text().trim()).map_err(|why| {
                FieldError::new("max_connections_per_source", format!("{:?} is not a count: {why}", n.text()))
            })?),
        };
        let overload = match &self.overload_block {
            None => None,
            Some(d) => {
                let span = portcullis_core::duration::parse_span("overload_block", d)?;
                Some(u32::try_from(span.num_seconds()).map_err(|_| {
                    FieldError::new("overload_block", format!("{d:?} is longer than the 7d an overload block may last"))
                })?)
            }
        };
        Ok(Ok(Protection {
            protection_id: String::new(),
            interface,
            protocol,
            ports,
            rate_limit: rate("rate_limit", &self.rate_limit, "burst_limit", &self.burst_limit)?,
            per_source_rate: rate(
                "per_source_rate",
                &self.per_source_rate,
                "per_source_burst",
                &self.per_source_burst,
            )?,
            overload_block_seconds: overload,
            max_connections_per_source: max_connections,
            per_source_bandwidth: self
                .per_source_bandwidth
                .as_deref()
                .map(|b| portcullis_core::protection::Bandwidth::parse("per_source_bandwidth", b))
                .transpose()?,
            syn_proxy: self.syn_proxy.unwrap_or(false),
            exempt: Vec::new(),
            created_at: None,
            updated_at: None,
        }))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetDdosProtectionArgs {
    /// Only the protections of this interface, e.g. wan.
    pub interface: Option<String>,
    /// The firewall to read; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MirrorTrafficArgs {
    /// The interface whose traffic is copied, e.g. wan.
    pub interface: String,
    /// A sensor named in configuration (`mirroring.sensors`); an address cannot be given here.
    pub sensor: String,
    /// How long the mirror runs, e.g. 2h (default and maximum from `mirroring`); it stops by itself.
    pub duration: Option<String>,
    /// Why the traffic is copied; it goes into the audit trail.
    pub reason: String,
    /// in (arriving on the interface), out (leaving it) or both (default: the replies too).
    pub direction: Option<String>,
    /// tcp, udp, tcp/udp, icmp, icmpv6 or a protocol number; tcp/udp when only ports are given.
    pub protocol: Option<String>,
    /// Only traffic from this address or network (as it arrives on the interface).
    pub source: Option<String>,
    /// Only traffic to this address or network.
    pub destination: Option<String>,
    /// A port (or range 8000:8080) at either end, like tcpdump's `port`.
    pub port: Option<StrOrNum>,
    pub source_port: Option<StrOrNum>,
    pub destination_port: Option<StrOrNum>,
    /// The most packets copied per second (default and maximum from `mirroring`); the rest is not copied.
    pub rate_limit: Option<StrOrNum>,
    /// Copy everything on the interface: admin only, and a person approves it.
    pub all: Option<bool>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

impl MirrorTrafficArgs {
    /// The selector asked for. A port with no protocol means TCP and UDP, the protocols that have ports.
    pub fn selector(&self) -> FieldResult<portcullis_core::mirror::Selector> {
        let range =
            |field: &str, v: &Option<StrOrNum>| v.as_ref().map(|p| PortRange::parse(field, &p.text())).transpose();
        let port = range("port", &self.port)?;
        let source_port = range("source_port", &self.source_port)?;
        let destination_port = range("destination_port", &self.destination_port)?;
        let any_port = port.is_some() || source_port.is_some() || destination_port.is_some();
        let protocol = match opt(&self.protocol, |s| Protocol::parse("protocol", s))? {
            Some(p) => p,
            None if any_port => Protocol::TcpUdp,
            None => Protocol::Any,
        };
        let net = |field: &str, v: &Option<String>| -> FieldResult<Option<IpNet>> {
            match v.as_deref().map(str::trim) {
                None | Some("any") => Ok(None),
                Some(text) => parse_net(field, text).map(Some),
            }
        };
        Ok(portcullis_core::mirror::Selector {
            all: self.all.unwrap_or(false),
            protocol,
            source: net("source", &self.source)?,
            destination: net("destination", &self.destination)?,
            port,
            source_port,
            destination_port,
        })
    }

    pub fn direction(&self) -> FieldResult<portcullis_core::mirror::MirrorDirection> {
        Ok(opt(&self.direction, |s| portcullis_core::mirror::MirrorDirection::parse("direction", s))?
            .unwrap_or_default())
    }

    /// The packets-per-second cap asked for, if any: a whole number.
    pub fn rate_limit(&self) -> FieldResult<Option<u32>> {
        match &self.rate_limit {
            None => Ok(None),
            Some(n) => {
                let text = n.text();
                let text = text.trim().trim_end_matches("/s").trim_end_matches("pps").trim();
                portcullis_core::protection::rate::parse_count(text).map(Some).map_err(|why| {
                    FieldError::new("rate_limit", format!("{:?} is not a packets-per-second cap: {why}", n.text()))
                })
            }
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StopMirrorArgs {
    /// The mirror to stop, e.g. mir-3f9a1c (see list_mirrors).
    pub mirror_id: String,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BandwidthArgs {
    /// How far back: 15m, 1h, 24h, 7d, ...
    pub timeframe: String,
    /// Only the devices behind this interface.
    pub interface: Option<String>,
    /// The most devices listed (default 10, at most 1000).
    pub limit: Option<usize>,
    /// The firewall to read; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListDevicesArgs {
    /// online, offline or all (the default).
    pub status: Option<String>,
    /// Only the devices behind this interface.
    pub interface: Option<String>,
    /// The firewall to read; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DevicesArgs {
    /// Only the devices behind this interface.
    pub interface: Option<String>,
    /// The firewall to read; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListMirrorsArgs {
    /// Only the mirrors of this interface.
    pub interface: Option<String>,
    /// The firewall to read; the default target when omitted.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EnableTrafficAnalysisArgs {
    /// The interface to analyse, e.g. wan.
    pub interface: String,
    /// true: copy the interface's traffic to its configured sensor (an IDS such as Suricata) and read the
    /// sensor's alerts; false (default): flow and rate analysis from the firewall's own counters and logs.
    pub deep_packet_inspection: Option<bool>,
    /// Raise an alarm when the interface's traffic or alerts cross this: "5GB/h", "100000 packets/m",
    /// "50 alerts/h".
    pub alert_threshold: Option<String>,
    /// How long the sensor's copy runs (default and maximum from `mirroring`).
    pub duration: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateVpnUserArgs {
    /// The user's name: 1 to 32 letters, digits, '.', '-' or '_'.
    pub username: String,
    /// OpenVPN only: an existing certificate (by description or refid). WireGuard users get a key pair instead.
    pub certificate: Option<String>,
    /// The user's tunnel address, inside the server's tunnel network and unused; the first free one when omitted.
    pub static_ip: Option<String>,
    /// wireguard or openvpn; the target's server decides when omitted.
    #[serde(rename = "type")]
    pub vpn_type: Option<String>,
    /// The VPN server (a WireGuard interface such as wg0); needed only when the target has several.
    pub server: Option<String>,
    /// When the user is removed: a duration (30d, 12h) or an RFC 3339 time; never when omitted.
    pub expires: Option<String>,
    #[serde(flatten)]
    pub change: ChangeOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteVpnUserArgs {
    /// The user to remove, with everything its creation made (see list_vpn_users).
    pub username: String,
    #[serde(flatten)]
    pub change: ChangeOptions,
}
