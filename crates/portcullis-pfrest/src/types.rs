//! Request and response types of the pfRest endpoints this client uses.
//!
//! Requests carry exactly the field names of the pfRest v2.10 native schema (`shared/pfrest/MODELS.md`); a `None`
//! field is not sent. Nullable schema fields are `Option<Option<T>>`: `Some(None)` sends an explicit `null` (e.g.
//! `protocol: null` = any protocol). Responses are read leniently: unknown fields are kept in `other`, numbers that
//! arrive as strings are accepted, and a missing field takes its default.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient;

/// Control parameters of a singular write (contract §2). `apply`/`async` are only meaningful on singular
/// POST/PATCH/DELETE; `placement` on POST/PATCH; `dry_run` needs pfRest v2.8.0 (the client refuses to send it to
/// older versions, which would run the request for real).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteControls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<bool>,
    #[serde(rename = "async", default, skip_serializing_if = "Option::is_none")]
    pub async_: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<u64>,
}

impl WriteControls {
    pub fn dry_run() -> Self {
        WriteControls { dry_run: Some(true), ..Default::default() }
    }

    /// Write and reload the filter in the same request, waiting for the reload (`async: false`: with the
    /// default `async: true` pfRest clears the pending flag before the reload has run).
    pub fn apply_now() -> Self {
        WriteControls { apply: Some(true), async_: Some(false), ..Default::default() }
    }
}

/// Body of `POST`/`PATCH /api/v2/firewall/rule` (model `FirewallRule`). `id` only on PATCH.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirewallRuleRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipprotocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmptype: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statetype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags_any: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags_out_of: Option<Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags_set: Option<Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sched: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnpipe: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdnpipe: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaultqueue: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ackqueue: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floating: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quick: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(flatten)]
    pub controls: WriteControls,
}

impl FirewallRuleRequest {
    /// Whether the request changes any field of the rule (beyond `id` and control parameters).
    pub fn has_changes(&self) -> bool {
        let bare = FirewallRuleRequest { id: None, controls: WriteControls::default(), ..self.clone() };
        bare != FirewallRuleRequest::default()
    }

    /// The creation request that re-creates `rule` as the firewall stores it: every writable field with a value
    /// (read-only fields such as `tracker` and `created_time` cannot be written and are dropped; nulls are left to
    /// the defaults).
    pub fn recreate(rule: &FirewallRule) -> Self {
        let mut value = serde_json::to_value(rule).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
            for read_only in ["id", "tracker", "associated_rule_id", "created_time", "created_by", "updated_time"] {
                map.remove(read_only);
            }
            map.remove("updated_by");
        }
        let mut req: FirewallRuleRequest = serde_json::from_value(value).unwrap_or_default();
        // Condition-dependent fields the firewall would drop anyway (and flag): keep the request minimal.
        let proto = req.protocol.clone().flatten();
        if proto.as_deref() != Some("icmp") {
            req.icmptype = None;
        }
        if !matches!(proto.as_deref(), Some("tcp" | "udp" | "tcp/udp")) {
            req.source_port = None;
            req.destination_port = None;
        }
        if req.floating != Some(true) {
            req.quick = None;
            req.direction = None;
        }
        if req.tcp_flags_any == Some(true) {
            req.tcp_flags_out_of = None;
            req.tcp_flags_set = None;
        }
        req.controls = WriteControls::default();
        req
    }
}

/// A firewall rule as pfRest returns it (`GET /api/v2/firewall/rules`). `id` is a list position and shifts when
/// rules are deleted or moved; `tracker` is the stable identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirewallRule {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub tracker: Option<i64>,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub type_: String,
    #[serde(deserialize_with = "lenient::strings")]
    pub interface: Vec<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub ipprotocol: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub protocol: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub source: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub source_port: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub destination: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub destination_port: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub disabled: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub log: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub floating: bool,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub direction: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub created_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub updated_time: Option<i64>,
    /// `keep state` (pfRest's default), `sloppy state`, `synproxy state` or `none`: how pf keeps state for the
    /// rule's connections. The SYN proxy of a DDoS protection lives here.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub statetype: Option<String>,
    /// The gateway the rule routes through (`route-to`); pfRest refuses `synproxy state` on a rule with one.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub gateway: Option<String>,
    /// The limiter (or limiter queue) the rule's traffic goes through in its direction, by name; `None`: none.
    /// A DDoS protection's per-source bandwidth cap lives here.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub dnpipe: Option<String>,
    /// The limiter for the reply direction (set only with `dnpipe`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub pdnpipe: Option<String>,
    /// Every other field, as received.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Body of `POST`/`PATCH /api/v2/firewall/alias` (model `FirewallAlias`). `address` and `detail` are parallel
/// arrays; `detail` values must not contain `||`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallAliasRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<String>>,
    #[serde(flatten)]
    pub controls: WriteControls,
}

/// A firewall alias as pfRest returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirewallAlias {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub type_: String,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::strings")]
    pub address: Vec<String>,
    #[serde(deserialize_with = "lenient::strings")]
    pub detail: Vec<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One bandwidth profile of a limiter (`TrafficShaperLimiterBandwidth`, nested in the limiter's `bandwidth`):
/// `bw` in units of `bwscale` (`b`, `Kb`, `Mb`: bits per second with decimal prefixes, as dummynet counts).
/// pfRest shows each with an `id` and `parent_id`, which are not kept (a PATCH replaces the whole list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimiterBandwidth {
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bw: u64,
    #[serde(deserialize_with = "lenient::string")]
    pub bwscale: String,
    /// The schedule the profile holds under (`none`: always); not sent when `None`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::opt_string")]
    pub bwsched: Option<String>,
}

/// Body of `POST`/`PATCH /api/v2/firewall/traffic_shaper/limiter` (model `TrafficShaperLimiter`). `id` only on
/// PATCH; `aqm` and `sched` are required on POST; `enabled` defaults to false in pfRest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrafficShaperLimiterRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `none`, `srcaddress` (one dynamic pipe per source) or `dstaddress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// The IPv4 prefix length a source pipe covers (1..=32), only with a mask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maskbits: Option<u32>,
    /// The IPv6 prefix length a source pipe covers (1..=128), only with a mask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maskbitsv6: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aqm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sched: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Vec<LimiterBandwidth>>,
    #[serde(flatten)]
    pub controls: WriteControls,
}

/// A traffic shaper limiter (a dummynet pipe) as pfRest returns it. `id` is a list position that shifts on
/// delete; `name` is what rules name in `dnpipe`/`pdnpipe`, and `number` the pipe number pfSense gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficShaperLimiter {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub number: Option<i64>,
    #[serde(deserialize_with = "lenient::bool")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mask: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub maskbits: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub maskbitsv6: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub aqm: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub sched: Option<String>,
    #[serde(deserialize_with = "lenient::list")]
    pub bandwidth: Vec<LimiterBandwidth>,
    /// Every other field (queue, AQM and scheduler parameters, delay, plr, ...), as received.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Body of `POST /api/v2/firewall/apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallApplyRequest {
    #[serde(rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// `GET`/`POST /api/v2/firewall/apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirewallApplyStatus {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub applied: Option<bool>,
    #[serde(deserialize_with = "lenient::strings")]
    pub pending_subsystems: Vec<String>,
}

/// `GET /api/v2/interfaces` (model `NetworkInterface`; `id` is the pfSense interface id: `wan`, `lan`, `opt1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkInterface {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(rename = "if", deserialize_with = "lenient::string")]
    pub if_: String,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub enable: bool,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub typev4: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ipaddr: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub subnet: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub typev6: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ipaddrv6: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub subnetv6: Option<u64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `GET /api/v2/status/interfaces` (model `InterfaceStats`; `name` is the interface id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceStats {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::string")]
    pub hwif: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ipaddr: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subnet: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ipaddrv6: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subnetv6: Option<String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub enable: bool,
    /// Cumulative counters of the interface (every packet, passed or blocked).
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub inbytes: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub outbytes: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub inpkts: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub outpkts: u64,
}

/// `GET /api/v2/system/restapi/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestApiVersion {
    #[serde(deserialize_with = "lenient::string")]
    pub current_version: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub latest_version: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub update_available: Option<bool>,
}

/// `GET /api/v2/status/system`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemStatus {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub platform: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub serial: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub netgate_id: Option<String>,
    /// pfSense's text form (`3 Days 01 Hour 06 Minutes 40 Seconds`), or seconds on some versions.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub uptime: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub cpu_model: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub cpu_count: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub cpu_usage: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub mem_usage: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub swap_usage: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub disk_usage: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub temp_c: Option<f64>,
}

/// `GET /api/v2/status/gateways`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayStatus {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub monitorip: Option<String>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub delay: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub loss: Option<f64>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub substatus: Option<String>,
}

/// A client connected to an OpenVPN server (`conns` of `/api/v2/status/openvpn/servers`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenVpnConnection {
    #[serde(deserialize_with = "lenient::string")]
    pub common_name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub remote_host: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub virtual_addr: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub virtual_addr6: Option<String>,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_recv: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_sent: u64,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub connect_time: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub connect_time_unix: Option<i64>,
}

/// `GET /api/v2/status/openvpn/servers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenVpnServerStatus {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mode: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub port: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub vpnid: Option<i64>,
    #[serde(deserialize_with = "lenient::list")]
    pub conns: Vec<OpenVpnConnection>,
}

/// `GET /api/v2/status/openvpn/clients`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenVpnClientStatus {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub port: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub vpnid: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub connect_time: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub virtual_addr: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub remote_host: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub remote_port: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub local_host: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub local_port: Option<String>,
}

/// A child SA of an IPsec SA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpsecChildSa {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_in: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_out: u64,
    #[serde(deserialize_with = "lenient::strings")]
    pub local_ts: Vec<String>,
    #[serde(deserialize_with = "lenient::strings")]
    pub remote_ts: Vec<String>,
}

/// `GET /api/v2/status/ipsec/sas` (IKE SAs with their child SAs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpsecSa {
    #[serde(deserialize_with = "lenient::string")]
    pub con_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub local_host: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub remote_host: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub remote_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub established: Option<i64>,
    #[serde(deserialize_with = "lenient::list")]
    pub child_sas: Vec<IpsecChildSa>,
}

/// `GET /api/v2/status/wireguard/tunnels` (package pfSense-pkg-WireGuard).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireGuardTunnel {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub listen_port: Option<String>,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub transfer_rx: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub transfer_tx: u64,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub descr: Option<String>,
}

/// `GET /api/v2/status/wireguard/peers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireGuardPeer {
    #[serde(deserialize_with = "lenient::string")]
    pub tunnel_device: String,
    #[serde(deserialize_with = "lenient::string")]
    pub public_key: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub endpoint: Option<String>,
    #[serde(deserialize_with = "lenient::strings")]
    pub allowed_ips: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub latest_handshake: Option<i64>,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub transfer_rx: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub transfer_tx: u64,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub descr: Option<String>,
}

/// A pf table as pfRest shows it (`GET /api/v2/diagnostics/table?id=<name>`, model `Table`, pfRest v2.6.0+): its
/// name (which is also its `id`) and the addresses in it now, as `pfctl -t <name> -T show` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PfTable {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// One address or network per entry. pfRest splits `pfctl`'s output on spaces, so the list is read leniently:
    /// a single string is split on whitespace and empty items are dropped.
    #[serde(deserialize_with = "lenient::words")]
    pub entries: Vec<String>,
}

/// One entry of pfSense's ARP table (`GET /api/v2/diagnostics/arp_table`, model `ARPTable`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArpEntry {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub hostname: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ip_address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mac_address: Option<String>,
    /// The NIC (`em1`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub interface: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub permanent: Option<bool>,
    /// As `arp -a` prints it: `Expires in 1150 seconds`, or `permanent`.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub expires: Option<String>,
}

/// One of pf's states (`GET /api/v2/firewall/states`, model `FirewallState`): `source` and `destination` are
/// `address:port` (`[v6]:port` or a bare address for protocols without ports); `bytes_in` went from source to
/// destination, `bytes_out` back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirewallState {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub interface: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub source: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub destination: Option<String>,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub packets_in: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub packets_out: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_in: u64,
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub bytes_out: u64,
}

/// One lease of pfSense's DHCP server (`GET /api/v2/status/dhcp_server/leases`, model `DHCPServerLease`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DhcpLease {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mac: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub hostname: Option<String>,
    /// The interface (pfSense id).
    #[serde(rename = "if", deserialize_with = "lenient::opt_string")]
    pub if_: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub active_status: Option<String>,
    /// `active/online`, `idle/offline`, … (whether pfSense sees the leased address in its ARP table now).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub online_status: Option<String>,
}

/// The body of `POST /api/v2/diagnostics/command_prompt` (model `CommandPrompt`; `command` at most
/// [`COMMAND_MAX_LEN`] characters). pfRest runs it with PHP `exec("$command 2>&1")`, as root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPromptRequest {
    pub command: String,
}

/// The longest `command` pfRest accepts (the model field's `maximum_length`).
pub const COMMAND_MAX_LEN: usize = 1024;

/// What a command printed (stdout and stderr together) and its exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandOutput {
    #[serde(deserialize_with = "lenient::string")]
    pub output: String,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub result_code: Option<i64>,
}

/// One line of `GET /api/v2/status/logs/firewall`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLine {
    #[serde(deserialize_with = "lenient::string")]
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_skip_absent_fields_and_send_explicit_nulls() {
        let req = FirewallRuleRequest {
            id: Some(3),
            protocol: Some(None),
            descr: Some("x".into()),
            controls: WriteControls { placement: Some(2), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"id": 3, "protocol": null, "descr": "x", "placement": 2})
        );
        assert!(req.has_changes());
        assert!(!FirewallRuleRequest { id: Some(1), ..Default::default() }.has_changes());
        let apply = FirewallApplyRequest { async_: Some(false), dry_run: None };
        assert_eq!(serde_json::to_value(&apply).unwrap(), json!({"async": false}));
    }

    #[test]
    fn rules_read_leniently_and_recreate_without_read_only_fields() {
        let rule: FirewallRule = serde_json::from_value(json!({
            "id": 4, "tracker": "1700000001", "type": "pass", "interface": ["LAN"], "ipprotocol": "inet",
            "protocol": "tcp", "source": "LAN", "source_port": null, "destination": "any", "destination_port": 443,
            "descr": null, "disabled": false, "log": true, "icmptype": null, "statetype": "keep state",
            "floating": false, "quick": null, "direction": null, "created_time": 1700000001, "created_by": "x",
            "updated_time": 1700000002, "updated_by": "y"
        }))
        .unwrap();
        assert_eq!(rule.tracker, Some(1_700_000_001));
        assert_eq!(rule.destination_port.as_deref(), Some("443"));
        assert_eq!(rule.descr, "");
        assert_eq!(rule.statetype.as_deref(), Some("keep state"));
        assert!(!rule.other.contains_key("statetype"), "a typed field, not kept twice");
        let again = FirewallRuleRequest::recreate(&rule);
        let v = serde_json::to_value(&again).unwrap();
        assert_eq!(v["type"], "pass");
        assert_eq!(v["statetype"], "keep state");
        assert_eq!(v["destination_port"], "443");
        for gone in ["id", "tracker", "created_time", "updated_by", "quick", "icmptype"] {
            assert!(v.get(gone).is_none(), "{gone} in {v}");
        }
    }

    #[test]
    fn limiters_read_leniently_and_requests_carry_only_what_is_set() {
        let l: TrafficShaperLimiter = serde_json::from_value(json!({
            "id": 2, "name": "pc_1a2b3c4d", "number": "3", "enabled": true, "mask": "srcaddress", "maskbits": 32,
            "maskbitsv6": "64", "description": "x", "aqm": "droptail", "sched": "wf2q+", "delay": null,
            "bandwidth": [{"id": 0, "parent_id": 2, "bw": "10", "bwscale": "Mb", "bwsched": "none"}]
        }))
        .unwrap();
        assert_eq!((l.id, l.number, l.maskbitsv6), (Some(2), Some(3), Some(64)));
        assert_eq!(l.bandwidth, vec![LimiterBandwidth { bw: 10, bwscale: "Mb".into(), bwsched: Some("none".into()) }]);
        assert!(l.other.contains_key("delay") && !l.other.contains_key("bandwidth"));
        let req = TrafficShaperLimiterRequest {
            id: Some(2),
            bandwidth: Some(vec![LimiterBandwidth { bw: 500, bwscale: "Kb".into(), bwsched: None }]),
            controls: WriteControls::dry_run(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"id": 2, "bandwidth": [{"bw": 500, "bwscale": "Kb"}], "dry_run": true})
        );
        let rule: FirewallRule = serde_json::from_value(json!({"tracker": 1, "dnpipe": "pc_1a2b3c4d"})).unwrap();
        assert_eq!((rule.dnpipe.as_deref(), rule.pdnpipe.as_deref()), (Some("pc_1a2b3c4d"), None));
        assert!(!rule.other.contains_key("dnpipe"), "a typed field, not kept twice");
        let clear = FirewallRuleRequest { id: Some(1), dnpipe: Some(None), ..Default::default() };
        assert_eq!(serde_json::to_value(&clear).unwrap(), json!({"id": 1, "dnpipe": null}), "pfRest clears with null");
    }

    #[test]
    fn pf_tables_read_their_entries_however_pfrest_splits_them() {
        let t: PfTable = serde_json::from_value(json!({
            "id": "virusprot", "name": "virusprot", "entries": ["198.51.100.7", "", "  2001:db8::/64 "]
        }))
        .unwrap();
        assert_eq!(t.entries, vec!["198.51.100.7", "2001:db8::/64"]);
        let t: PfTable =
            serde_json::from_value(json!({"name": "virusprot", "entries": "   198.51.100.7\n   203.0.113.9"})).unwrap();
        assert_eq!((t.id, t.entries), (None, vec!["198.51.100.7".to_string(), "203.0.113.9".to_string()]));
        let empty: PfTable =
            serde_json::from_value(json!({"id": "virusprot", "name": "virusprot", "entries": [""]})).unwrap();
        assert!(empty.entries.is_empty());
        let null: PfTable = serde_json::from_value(json!({"name": "x", "entries": null})).unwrap();
        assert!(null.entries.is_empty());
    }
}
