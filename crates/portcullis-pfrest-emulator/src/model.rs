//! Emulated pfRest model behaviour: field validation in pfRest's order and with its response ids, the extra
//! validation of `FirewallRule` / `FirewallAlias` / `TrafficShaperLimiter`, nested models (a limiter's
//! `bandwidth` items), interface representation and object representation.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};

use crate::schema::{FieldSchema, ModelSchema, conditions_met};
use crate::util::backticks;

pub(crate) type Obj = Map<String, Value>;

/// A pfRest error response (`code`, `response_id`, `message`, `data`).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub response_id: String,
    pub message: String,
    pub data: Value,
}

impl ApiError {
    pub fn new(code: u16, response_id: &str, message: impl AsRef<str>) -> Self {
        ApiError {
            code,
            response_id: response_id.to_string(),
            message: backticks(message.as_ref()),
            data: Value::Array(vec![]),
        }
    }
    pub fn bad_request(response_id: &str, message: impl AsRef<str>) -> Self {
        Self::new(400, response_id, message)
    }
    pub fn not_found(response_id: &str, message: impl AsRef<str>) -> Self {
        Self::new(404, response_id, message)
    }
}

/// How interfaces are represented in responses (REST API setting `represent_interfaces_as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceRepresentation {
    /// `WAN`, `LAN`, `OPT1` (pfRest's default).
    #[default]
    Descr,
    /// `wan`, `lan`, `opt1`.
    Id,
    /// The real NIC: `em0`, `em1`, `em2`.
    If,
}

/// The emulated interfaces: (pfSense id, real NIC, description).
pub(crate) const INTERFACES: &[(&str, &str, &str)] =
    &[("wan", "em0", "WAN"), ("lan", "em1", "LAN"), ("opt1", "em2", "OPT1")];

/// Gateways known to the emulated firewall (names usable in a rule's `gateway`).
pub(crate) const GATEWAYS: &[&str] = &["WAN_DHCP", "WAN_DHCP6"];

/// Resolve an interface name in any representation (descr, id, NIC) to the pfSense id.
pub(crate) fn iface_id(name: &str) -> Option<&'static str> {
    INTERFACES.iter().find(|(id, nic, descr)| *id == name || *nic == name || *descr == name).map(|(id, _, _)| *id)
}

/// Represent a pfSense interface id per the setting; unknown ids are returned unchanged.
pub(crate) fn iface_repr(id: &str, repr: InterfaceRepresentation) -> String {
    match INTERFACES.iter().find(|(i, _, _)| *i == id) {
        Some((i, nic, descr)) => match repr {
            InterfaceRepresentation::Descr => descr.to_string(),
            InterfaceRepresentation::Id => i.to_string(),
            InterfaceRepresentation::If => nic.to_string(),
        },
        None => id.to_string(),
    }
}

fn iface_choices(repr: InterfaceRepresentation) -> Vec<String> {
    INTERFACES.iter().map(|(id, _, _)| iface_repr(id, repr)).collect()
}

pub(crate) fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

pub(crate) fn is_ipv6(s: &str) -> bool {
    s.parse::<Ipv6Addr>().is_ok()
}

pub(crate) fn is_ip(s: &str) -> bool {
    is_ipv4(s) || is_ipv6(s)
}

pub(crate) fn is_subnet_v4(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, p)| is_ipv4(a) && p.parse::<u8>().is_ok_and(|p| p <= 32) && !p.is_empty())
}

pub(crate) fn is_subnet_v6(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, p)| is_ipv6(a) && p.parse::<u8>().is_ok_and(|p| p <= 128) && !p.is_empty())
}

pub(crate) fn is_subnet(s: &str) -> bool {
    is_subnet_v4(s) || is_subnet_v6(s)
}

/// pfSense `is_fqdn()`: something dotted made of `[-A-Za-z0-9.]`, no `..`, no leading dot, no `/`. Note that a
/// bare IPv4 address passes (so `1.2.3.4` is accepted in a network alias, as on pfSense).
pub(crate) fn is_fqdn(s: &str) -> bool {
    let Some((a, b)) = s.split_once('.') else { return false };
    let ok = |p: &str| p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    !a.is_empty() && !b.is_empty() && ok(a) && ok(b) && !s.contains("..") && !s.starts_with('.') && !s.contains('/')
}

pub(crate) fn is_port(s: &str) -> bool {
    s.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p)) && s.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn is_port_range(s: &str) -> bool {
    s.split_once(':').is_some_and(|(a, b)| is_port(a) && is_port(b))
}

/// Names pf reserves (subset of pfSense `get_pf_reserved()`), plus service/protocol names `is_validaliasname()`
/// rejects through `getservbyname()` / `getprotobyname()`.
const RESERVED_NAMES: &[&str] = &[
    "all",
    "any",
    "block",
    "drop",
    "from",
    "in",
    "inet",
    "inet6",
    "keep",
    "log",
    "nat",
    "no",
    "on",
    "out",
    "pass",
    "port",
    "proto",
    "quick",
    "rdr",
    "return",
    "scrub",
    "self",
    "state",
    "table",
    "tag",
    "to",
    "user",
    "label",
    "queue",
    "anchor",
    "binat",
    "flags",
    "group",
    "icmp-type",
    "set",
    "skip",
    "synproxy",
    "modulate",
];
const SERVICE_AND_PROTOCOL_NAMES: &[&str] = &[
    "ssh", "http", "https", "www", "ftp", "telnet", "smtp", "domain", "ntp", "snmp", "pop3", "imap", "ldap", "bootps",
    "bootpc", "tftp", "syslog", "kerberos", "nfs", "openvpn", "ipsec", "isakmp", "rdp", "mysql", "tcp", "udp", "icmp",
    "ip", "gre", "esp", "ah", "igmp", "ospf", "pim", "carp", "pfsync", "ipv6", "icmp6",
];

/// What a filter-address value (rule `source`/`destination`) refers to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AddressKind {
    Any,
    Ip,
    Subnet,
    Special,
    Interface(&'static str),
    Alias(String),
}

/// Split `!core:ip` into (inverted, core, ip_modifier).
pub(crate) fn split_address(value: &str) -> (bool, &str, bool) {
    let (inv, rest) = match value.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, value),
    };
    match rest.strip_suffix(":ip") {
        Some(core) if iface_id(core).is_some() => (inv, core, true),
        _ => (inv, rest, false),
    }
}

pub(crate) fn classify_address(core: &str) -> AddressKind {
    if core == "any" {
        AddressKind::Any
    } else if is_ip(core) {
        AddressKind::Ip
    } else if is_subnet(core) {
        AddressKind::Subnet
    } else if ["(self)", "l2tp", "pppoe"].contains(&core) {
        AddressKind::Special
    } else if let Some(id) = iface_id(core) {
        AddressKind::Interface(id)
    } else {
        AddressKind::Alias(core.to_string())
    }
}

/// Everything validation needs to know besides the model and the request.
pub(crate) struct ValidateCtx<'a> {
    /// Other stored objects of the same model (for `unique`), with their ids; the object itself is excluded by id.
    pub peers: &'a [Obj],
    /// The object's own id when updating (or its would-be id when creating).
    pub self_id: Option<usize>,
    /// The stored object when updating (PATCH).
    pub initial: Option<&'a Obj>,
    /// All configured aliases (alias references in rules / nested aliases).
    pub aliases: &'a [Obj],
    /// All configured limiters (a rule's `dnpipe` / `pdnpipe` must name one).
    pub limiters: &'a [Obj],
    /// The VPN users' objects a foreign field may name (a user's certificates, an override's server).
    pub vpn: Option<&'a crate::vpn::VpnObjects>,
    pub repr: InterfaceRepresentation,
    /// `user@ip (API)` for created_by / updated_by.
    pub client: &'a str,
    /// PUT replace-all keeps read-only values sent back by the client (e.g. `tracker`).
    pub keep_read_only: bool,
    pub now: i64,
}

fn type_error(field: &FieldSchema) -> ApiError {
    ApiError::bad_request(
        "FIELD_INVALID_TYPE",
        format!("Field `{}` must be of type `{}`", field.name, field.php_type()),
    )
}

fn choice_list(choices: &[Value]) -> String {
    choices
        .iter()
        .map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh object with pfRest's defaults (and the auto-filled read-only values of a creation).
pub(crate) fn new_object(model: &ModelSchema, ctx: &ValidateCtx<'_>) -> Obj {
    let mut obj = Obj::new();
    for f in &model.fields {
        obj.insert(f.name.clone(), f.default.clone());
    }
    if model.class == "FirewallRule" {
        obj.insert("created_time".into(), json!(ctx.now));
        obj.insert("updated_time".into(), json!(ctx.now));
        obj.insert("created_by".into(), json!(ctx.client));
        obj.insert("updated_by".into(), json!(ctx.client));
    }
    obj
}

/// Validate `request` (already stripped of control parameters and `id`) against `model`, the way pfRest's
/// `Model::validate()` does: start from the stored object (update) or defaults (create), overlay the request, then
/// validate every field in model order, then the model's extra validation. Returns the object to store.
pub(crate) fn validate(model: &ModelSchema, request: &Obj, ctx: &ValidateCtx<'_>) -> Result<Obj, ApiError> {
    let mut obj = match ctx.initial {
        Some(initial) => initial.clone(),
        None => new_object(model, ctx),
    };
    for (k, v) in request {
        let Some(field) = model.field(k) else { continue }; // unknown fields are silently ignored
        if field.read_only && !ctx.keep_read_only {
            // A non-editable read-only value (e.g. a rule's `tracker`) sent back unchanged is fine; a different
            // value is refused like pfRest's editable check does.
            if let Some(initial) = ctx.initial
                && !field.editable
                && initial.get(k).is_some_and(|cur| cur != v)
            {
                return Err(ApiError::bad_request(
                    "FIELD_VALUE_CHANGED_WHEN_NOT_EDITABLE",
                    format!(
                        "Field `{k}` is not editable but the requested value `{v}` differs from its current value `{}`.",
                        initial[k]
                    ),
                ));
            }
            continue;
        }
        obj.insert(k.clone(), v.clone());
    }

    for field in &model.fields {
        validate_field(model, field, &mut obj, ctx)?;
    }
    match model.class.as_str() {
        "FirewallRule" => validate_rule_extra(&mut obj, ctx)?,
        "FirewallAlias" => validate_alias_extra(&mut obj, ctx)?,
        _ => {}
    }
    if ctx.initial.is_some() && model.class == "FirewallRule" {
        obj.insert("updated_time".into(), json!(ctx.now));
        obj.insert("updated_by".into(), json!(ctx.client));
    }
    Ok(obj)
}

fn validate_field(
    model: &ModelSchema,
    field: &FieldSchema,
    obj: &mut Obj,
    ctx: &ValidateCtx<'_>,
) -> Result<(), ApiError> {
    let name = field.name.as_str();
    if !conditions_met(field, obj) {
        obj.insert(name.to_string(), Value::Null);
        return Ok(());
    }
    let mut value = obj.get(name).cloned().unwrap_or(Value::Null);
    if field.required && value.is_null() {
        return Err(ApiError::bad_request("FIELD_IS_REQUIRED", format!("Field `{name}` is required.")));
    }
    if !field.editable
        && let Some(initial) = ctx.initial
    {
        let current = initial.get(name).cloned().unwrap_or(Value::Null);
        if value != current {
            return Err(ApiError::bad_request(
                "FIELD_VALUE_CHANGED_WHEN_NOT_EDITABLE",
                format!(
                    "Field `{name}` is not editable but the requested value `{value}` differs from its current value `{current}`."
                ),
            ));
        }
    }
    if field.read_only {
        return Ok(());
    }
    if let Value::Array(items) = &value {
        if field.many && field.many_maximum > 0 && items.len() as i64 > field.many_maximum {
            return Err(ApiError::bad_request(
                "LENGTH_VALIDATOR_MAXIMUM_CONSTRAINT",
                format!("Field '{name}' exceeds the maximum array length of {}.", field.many_maximum),
            ));
        }
        if field.many && (items.len() as i64) < field.many_minimum {
            return Err(ApiError::bad_request(
                "LENGTH_VALIDATOR_MINIMUM_CONSTRAINT",
                format!("Field '{name}' must contain a minimum of {} entries.", field.many_minimum),
            ));
        }
    }
    if value.is_null() && !field.default.is_null() {
        value = field.default.clone();
        obj.insert(name.to_string(), value.clone());
    }
    if field.many && !value.is_array() && !value.is_null() {
        return Err(ApiError::bad_request(
            "FIELD_INVALID_MANY_VALUE",
            format!("Field `{name}` must be of type `array`."),
        ));
    }
    let is_empty = value == json!("") || value == json!([]);
    if is_empty && !field.allow_empty {
        return Err(ApiError::bad_request("FIELD_EMPTY_NOT_ALLOWED", format!("Field `{name}` cannot be empty.")));
    }
    if is_empty || (field.allow_null && value.is_null()) {
        return Ok(());
    }
    let items: Vec<Value> = match &value {
        Value::Array(items) if field.many => items.clone(),
        other => vec![other.clone()],
    };
    let mut converted = Vec::with_capacity(items.len());
    for item in items {
        if field.class == "NestedModelField" {
            converted.push(validate_nested(field, &item, ctx)?);
            continue;
        }
        if !(field.scalar_type_ok(&item) || field.allow_null && item.is_null()) {
            return Err(type_error(field));
        }
        check_range(field, &item)?;
        let item = match field.class.as_str() {
            "InterfaceField" => validate_interface_value(field, &item, ctx.repr)?,
            _ => item,
        };
        if !field.choices.is_empty() && !field.choices.contains(&item) {
            return Err(ApiError::bad_request(
                "FIELD_INVALID_CHOICE",
                format!("Field `{name}` must be one of [{}]", choice_list(&field.choices)),
            ));
        }
        if field.unique {
            let clash = ctx.peers.iter().enumerate().find(|(i, peer)| {
                Some(*i) != ctx.self_id
                    && match peer.get(name) {
                        Some(Value::Array(vals)) => vals.contains(&item),
                        Some(v) => *v == item,
                        None => false,
                    }
            });
            if let Some((i, _)) = clash {
                return Err(ApiError::bad_request(
                    "FIELD_MUST_BE_UNIQUE",
                    format!("Field '{name}' must be unique. Value is in use by object with ID '{i}'."),
                ));
            }
        }
        if item == json!("") {
            converted.push(item);
            continue;
        }
        if let (Some(max), Some(s)) = (field.max_len(), item.as_str())
            && s.len() > max
        {
            return Err(ApiError::bad_request(
                "LENGTH_VALIDATOR_MAXIMUM_CONSTRAINT",
                format!("Field '{name}' exceeds the maximum character length of {max}."),
            ));
        }
        if matches!(model.class.as_str(), "FirewallAlias" | "TrafficShaperLimiter") && name == "name" {
            validate_filter_name(item.as_str().unwrap_or_default())?;
        }
        let item = match field.class.as_str() {
            "FilterAddressField" => validate_filter_address(field, &item, ctx)?,
            "PortField" => validate_port_value(field, &item, ctx)?,
            "ForeignModelField" => validate_foreign(model, field, &item, ctx)?,
            _ => item,
        };
        converted.push(item);
    }
    let new_value =
        if field.many { Value::Array(converted) } else { converted.into_iter().next().unwrap_or(Value::Null) };
    obj.insert(name.to_string(), new_value);
    Ok(())
}

/// pfRest's `NumericRangeValidator` on integer and float fields with a `minimum` / `maximum`.
fn check_range(field: &FieldSchema, item: &Value) -> Result<(), ApiError> {
    if !matches!(field.ty.as_str(), "integer" | "double") {
        return Ok(());
    }
    let Some(v) = item.as_f64() else { return Ok(()) };
    // i64-sized bounds (PHP_INT_MAX) compare exactly as integers; f64 would round them.
    let below = |b: &Value| match (item.as_i64(), b.as_i64()) {
        (Some(x), Some(m)) => x < m,
        _ => b.as_f64().is_some_and(|m| v < m),
    };
    let above = |b: &Value| match (item.as_i64(), b.as_i64()) {
        (Some(x), Some(m)) => x > m,
        _ => b.as_f64().is_some_and(|m| v > m),
    };
    if below(&field.minimum) {
        return Err(ApiError::bad_request(
            "NUMERIC_RANGE_VALIDATOR_MINIMUM_CONSTRAINT",
            format!("Field '{}' must be greater than or equal to '{}'. Received '{item}'", field.name, field.minimum),
        ));
    }
    if above(&field.maximum) {
        return Err(ApiError::bad_request(
            "NUMERIC_RANGE_VALIDATOR_MAXIMUM_CONSTRAINT",
            format!("Field '{}' must be less than or equal to '{}'. Received '{item}'", field.name, field.maximum),
        ));
    }
    Ok(())
}

/// NestedModelField (a limiter's `bandwidth` items): each item is validated as an object of the nested model,
/// without its `id` / `parent_id`, and a failure is reported as pfRest's `validate_extra()` does (the nested
/// response id, the message prefixed with the field).
fn validate_nested(field: &FieldSchema, item: &Value, ctx: &ValidateCtx<'_>) -> Result<Value, ApiError> {
    let Some(nested) = field.nested_model_class.as_deref() else { return Ok(item.clone()) };
    let Some(obj) = item.as_object() else {
        return Err(ApiError::bad_request(
            "FIELD_INVALID_TYPE",
            format!("Field `{}` must be of type `array`", field.name),
        ));
    };
    let mut obj = obj.clone();
    obj.remove("id");
    obj.remove("parent_id");
    let inner = ValidateCtx { peers: &[], self_id: None, initial: None, ..*ctx };
    validate(crate::schema::model(nested), &obj, &inner).map(Value::Object).map_err(|e| {
        ApiError::bad_request(
            &e.response_id,
            format!("Field `{}` encountered a nested validation error: {}", field.name, e.message),
        )
    })
}

/// InterfaceField: accept the descr / id / NIC (and `any`), store the pfSense id.
fn validate_interface_value(
    field: &FieldSchema,
    item: &Value,
    repr: InterfaceRepresentation,
) -> Result<Value, ApiError> {
    let s = item.as_str().unwrap_or_default();
    if s == "any" {
        return Ok(item.clone());
    }
    match iface_id(s) {
        Some(id) => Ok(json!(id)),
        None => {
            let mut choices = iface_choices(repr);
            choices.push("any".into());
            Err(ApiError::bad_request(
                "FIELD_INVALID_CHOICE",
                format!("Field `{}` must be one of [{}]", field.name, choices.join(", ")),
            ))
        }
    }
}

const FILTER_ADDRESS_OPTS: &str =
    "an existing interface, an IP address, a subnet CIDR, an existing alias, `any`, `(self)`, `l2tp`, `pppoe`";

/// FilterAddressField (`source` / `destination`): IP, CIDR, non-port alias, interface[`:ip`], any, (self), l2tp,
/// pppoe, optionally inverted with `!`. Interfaces are stored by pfSense id.
fn validate_filter_address(field: &FieldSchema, item: &Value, ctx: &ValidateCtx<'_>) -> Result<Value, ApiError> {
    let raw = item.as_str().unwrap_or_default();
    let (inverted, core, ip_mod) = split_address(raw);
    if inverted && core == "any" {
        return Err(ApiError::bad_request(
            "FILTER_RULE_ADDRESS_FIELD_WITH_INVERT_ANY",
            format!("Field `{}` cannot use invert prefix (!) with value `any`.", field.name),
        ));
    }
    let stored_core = match classify_address(core) {
        AddressKind::Interface(id) => id.to_string(),
        AddressKind::Alias(name) => {
            let exists = ctx.aliases.iter().any(|a| {
                a.get("name").and_then(Value::as_str) == Some(name.as_str())
                    && a.get("type").and_then(Value::as_str) != Some("port")
            });
            if !exists {
                return Err(ApiError::bad_request(
                    "FILTER_ADDRESS_FIELD_INVALID",
                    format!(
                        "Field `{}` value `{core}` is invalid. Valid options are: {FILTER_ADDRESS_OPTS}",
                        field.name
                    ),
                ));
            }
            name
        }
        _ => core.to_string(),
    };
    let mut out = String::new();
    if inverted {
        out.push('!');
    }
    out.push_str(&stored_core);
    if ip_mod {
        out.push_str(":ip");
    }
    Ok(json!(out))
}

/// PortField: a port, a `a:b` range or a port alias, as a string.
fn validate_port_value(field: &FieldSchema, item: &Value, ctx: &ValidateCtx<'_>) -> Result<Value, ApiError> {
    let s = item.as_str().unwrap_or_default();
    let is_port_alias = ctx.aliases.iter().any(|a| {
        a.get("name").and_then(Value::as_str) == Some(s) && a.get("type").and_then(Value::as_str) == Some("port")
    });
    if is_port(s) || is_port_range(s) || is_port_alias {
        Ok(item.clone())
    } else {
        Err(ApiError::bad_request(
            "PORT_FIELD_INVALID",
            format!("Field `{}` value `{s}` is not a valid port, port range, or port alias.", field.name),
        ))
    }
}

/// ForeignModelField: only gateways exist on the emulated firewall (no schedules, ALTQ queues). A few fields
/// accept keywords besides object names (pfRest's `allowed_keywords`, which the schema does not carry): a
/// limiter bandwidth's `bwsched` takes `none` (no schedule).
fn validate_foreign(
    model: &ModelSchema,
    field: &FieldSchema,
    item: &Value,
    ctx: &ValidateCtx<'_>,
) -> Result<Value, ApiError> {
    let s = item.as_str().unwrap_or_default();
    let keyword = match (model.class.as_str(), field.name.as_str()) {
        ("TrafficShaperLimiterBandwidth", "bwsched") => s == "none",
        // A peer on no tunnel yet, and the local user database (no AuthServer object).
        ("WireGuardPeer", "tun") => s == "unassigned",
        ("OpenVPNServer", "authmode") => s == "Local Database",
        _ => false,
    };
    if keyword {
        return Ok(item.clone());
    }
    let models: Vec<String> = match &field.foreign_model_class {
        Value::String(m) => vec![m.clone()],
        Value::Array(ms) => ms.iter().filter_map(|m| m.as_str().map(str::to_string)).collect(),
        _ => vec![],
    };
    let foreign_field = field.foreign_model_field.as_deref().unwrap_or("name");
    let among_vpn = ctx.vpn.and_then(|vpn| {
        models.iter().filter_map(|m| crate::vpn::foreign_exists(vpn, m, foreign_field, item)).reduce(|a, b| a || b)
    });
    let known =
        among_vpn.unwrap_or(false) || models.iter().any(|m| m.starts_with("RoutingGateway")) && GATEWAYS.contains(&s);
    if known {
        return Ok(item.clone());
    }
    Err(ApiError::not_found(
        "FOREIGN_MODEL_FIELD_VALUE_NOT_FOUND",
        format!(
            "Field `{}` could not locate `{}` object with `{}` set to `{s}`",
            field.name,
            models.join("/"),
            field.foreign_model_field.as_deref().unwrap_or("name")
        ),
    ))
}

/// pfRest's `FilterNameValidator` (alias and limiter names; an alias also gets `is_validaliasname()` after it).
fn validate_filter_name(name: &str) -> Result<(), ApiError> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::bad_request(
            "FILTER_NAME_VALIDATOR_INVALID_CHARACTERS",
            format!(
                "Field 'name' cannot be '{name}' because it contains invalid characters. Only A-Z, a-z, 0-9, and _ are allowed."
            ),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(ApiError::bad_request(
            "FILTER_NAME_VALIDATOR_RESERVED_NAME_USED",
            format!("Field 'name' cannot be '{name}' because it is a name reserved by the system."),
        ));
    }
    if name.starts_with("pkg_") {
        return Err(ApiError::bad_request(
            "FILTER_NAME_VALIDATOR_CANNOT_START_WITH_PKG",
            format!("Field 'name' cannot be '{name}' because it starts with 'pkg_'."),
        ));
    }
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "FILTER_NAME_VALIDATOR_CANNOT_BE_NUMERICAL",
            format!("Field 'name' cannot be '{name}' because it is entirely numerical."),
        ));
    }
    if INTERFACES.iter().any(|(id, _, _)| *id == name) {
        return Err(ApiError::bad_request(
            "FILTER_NAME_VALIDATOR_NAME_IN_USE_BY_INTERFACE",
            format!("Field 'name' cannot be '{name}' because it is in use by an existing interface."),
        ));
    }
    Ok(())
}

fn validate_rule_extra(obj: &mut Obj, ctx: &ValidateCtx<'_>) -> Result<(), ApiError> {
    let floating = obj.get("floating").and_then(Value::as_bool).unwrap_or(false);
    if !floating && obj.get("interface").and_then(Value::as_array).is_some_and(|a| a.len() > 1) {
        return Err(ApiError::bad_request(
            "FIREWALL_RULE_MULTIPLE_INTERFACE_WITHOUT_FLOATING",
            "Field `interface` cannot contain more than one value unless `floating` is enabled.",
        ));
    }
    let protocol = obj.get("protocol").and_then(Value::as_str).map(str::to_string);
    if obj.get("statetype").and_then(Value::as_str) == Some("synproxy state") {
        if protocol.as_deref() != Some("tcp") {
            return Err(ApiError::bad_request(
                "FIREWALL_RULE_SYNPROXY_STATE_TYPE_WITH_NON_TCP_PROTOCOL",
                "Field `statetype` cannot be set to `synproxy state` unless `protocol` is set to `tcp`.",
            ));
        }
        if obj.get("gateway").is_some_and(|g| !g.is_null()) {
            return Err(ApiError::bad_request(
                "FIREWALL_RULE_SYNPROXY_STATE_TYPE_WITH_GATEWAY",
                "Field `statetype` cannot be set to `synproxy state` when a `gateway` value is set.",
            ));
        }
    }
    if let Some(set) = obj.get("tcp_flags_set").and_then(Value::as_array) {
        let out_of = obj.get("tcp_flags_out_of").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(flag) = set.iter().find(|f| !out_of.contains(f)) {
            return Err(ApiError::bad_request(
                "FIREWALL_RULE_TCP_FLAGS_SET_NOT_IN_TCP_FLAGS_OUT_OF",
                format!(
                    "Field `tcp_flags_set` value `{}` is not present in `tcp_flags_out_of`.",
                    flag.as_str().unwrap_or_default()
                ),
            ));
        }
    }
    // pfRest's validate_dnpipe() / validate_pdnpipe(): a name of an existing limiter (limiter queues are not
    // emulated, so the "same class" check cannot fail); null (no pipe) is not validated.
    for (field, id) in [("dnpipe", "FIREWALL_RULE_DNPIPE_NOT_FOUND"), ("pdnpipe", "FIREWALL_RULE_PDNPIPE_NOT_FOUND")] {
        let Some(name) = obj.get(field).and_then(Value::as_str) else { continue };
        if field == "pdnpipe" {
            let dnpipe = obj.get("dnpipe").and_then(Value::as_str);
            if dnpipe.is_none() {
                return Err(ApiError::bad_request(
                    "FIREWALL_RULE_PDNPIPE_SET_WITHOUT_DNPIPE",
                    "Field `pdnpipe` cannot be set unless `dnpipe` is also set.",
                ));
            }
            if dnpipe == Some(name) {
                return Err(ApiError::bad_request(
                    "FIREWALL_RULE_PDNPIPE_CANNOT_MATCH_DNPIPE",
                    "Field `pdnpipe` cannot use the same limiter as `dnpipe`.",
                ));
            }
        }
        if !ctx.limiters.iter().any(|l| l.get("name").and_then(Value::as_str) == Some(name)) {
            return Err(ApiError::not_found(
                id,
                format!(
                    "Field `{field}` must be an existing Traffic Shaper Limiter or Limiter Queue. Could not locate object with `name` value `{name}`"
                ),
            ));
        }
    }
    Ok(())
}

/// The limiters a rule's `dnpipe` / `pdnpipe` name.
pub(crate) fn rule_limiter_refs(rule: &Obj) -> Vec<String> {
    ["dnpipe", "pdnpipe"].iter().filter_map(|f| rule.get(*f).and_then(Value::as_str).map(str::to_string)).collect()
}

fn validate_alias_extra(obj: &mut Obj, ctx: &ValidateCtx<'_>) -> Result<(), ApiError> {
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    // is_validaliasname(): [A-Za-z0-9_], not only underscores/digits, < 32 chars, not a service/protocol name.
    let charset_ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.bytes().all(|b| b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if !charset_ok || SERVICE_AND_PROTOCOL_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ApiError::bad_request(
            "INVALID_FIREWALL_ALIAS_NAME",
            format!("Invalid firewall alias name '{name}'."),
        ));
    }
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let addresses: Vec<String> = obj
        .get("address")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for address in &addresses {
        let alias_type = ctx
            .aliases
            .iter()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(address.as_str()))
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str);
        match ty.as_str() {
            "port" if !(is_port(address) || is_port_range(address) || alias_type == Some("port")) => {
                return Err(ApiError::bad_request(
                    "INVALID_PORT_ALIAS_ADDRESS",
                    format!("Port alias 'address' value '{address}' is not a valid port, range, or alias."),
                ));
            }
            "host" if !(is_ip(address) || is_fqdn(address) || alias_type.is_some_and(|t| t != "port")) => {
                return Err(ApiError::bad_request(
                    "INVALID_HOST_ALIAS_ADDRESS",
                    format!("Host alias 'address' value '{address}' is not a valid IP, FQDN, or alias."),
                ));
            }
            "network" if !(is_subnet(address) || is_fqdn(address) || alias_type.is_some_and(|t| t != "port")) => {
                return Err(ApiError::bad_request(
                    "INVALID_NETWORK_ALIAS_ADDRESS",
                    format!("Network alias 'address' value '{address}' is not a valid CIDR, FQDN, or alias."),
                ));
            }
            _ => {}
        }
    }
    let mut details: Vec<Value> = obj.get("detail").and_then(Value::as_array).cloned().unwrap_or_default();
    if details.len() > addresses.len() {
        return Err(ApiError::bad_request(
            "TOO_MANY_ALIAS_DETAILS",
            "Aliases cannot contain more 'detail' items than 'address' items.",
        ));
    }
    if details.iter().any(|d| d.as_str().is_some_and(|s| s.contains("||"))) {
        return Err(ApiError::bad_request(
            "FIREWALL_ALIAS_DETAIL_CONTAINS_DELIMITER",
            "Field `detail` values cannot contain `||`.",
        ));
    }
    while details.len() < addresses.len() {
        details.push(json!(format!("Entry added {}", chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z"))));
    }
    obj.insert("detail".into(), Value::Array(details));
    Ok(())
}

/// The representation of a stored object: interface ids mapped per `represent_interfaces_as`, write-only fields
/// hidden, `id` added for many-models.
pub(crate) fn to_repr(model: &ModelSchema, obj: &Obj, id: Option<Value>, repr: InterfaceRepresentation) -> Value {
    let mut out = Map::new();
    if let Some(id) = id {
        out.insert("id".into(), id);
    }
    for field in &model.fields {
        // pfRest leaves sensitive values (password hashes, private keys) out of every answer by default
        // (`RESTAPISettings.expose_sensitive_fields` is off).
        if field.write_only || field.sensitive {
            continue;
        }
        let v = obj.get(&field.name).cloned().unwrap_or(Value::Null);
        let v = match field.class.as_str() {
            "InterfaceField" => map_strings(&v, &|s| iface_repr(s, repr)),
            // pfRest shows each nested object with its position and its parent's id.
            "NestedModelField" => match (&v, field.nested_model_class.as_deref()) {
                (Value::Array(items), Some(nested)) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let mut r = match item.as_object() {
                                Some(o) => to_repr(crate::schema::model(nested), o, Some(json!(i)), repr),
                                None => item.clone(),
                            };
                            if let Some(o) = r.as_object_mut() {
                                o.insert("parent_id".into(), out.get("id").cloned().unwrap_or(Value::Null));
                            }
                            r
                        })
                        .collect(),
                ),
                _ => v,
            },
            "FilterAddressField" => map_strings(&v, &|s| {
                let (inv, core, ip_mod) = split_address(s);
                format!("{}{}{}", if inv { "!" } else { "" }, iface_repr(core, repr), if ip_mod { ":ip" } else { "" })
            }),
            _ => v,
        };
        out.insert(field.name.clone(), v);
    }
    Value::Object(out)
}

fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| map_strings(i, f)).collect()),
        other => other.clone(),
    }
}

/// Alias names a rule references (source/destination aliases and port aliases).
pub(crate) fn rule_alias_refs(rule: &Obj) -> Vec<(&'static str, String)> {
    let mut refs = Vec::new();
    for (field, label) in [("source", "source"), ("destination", "destination")] {
        if let Some(s) = rule.get(field).and_then(Value::as_str) {
            let (_, core, _) = split_address(s);
            if let AddressKind::Alias(name) = classify_address(core) {
                refs.push((label, name));
            }
        }
    }
    for (field, label) in [("source_port", "source port"), ("destination_port", "destination port")] {
        if let Some(s) = rule.get(field).and_then(Value::as_str)
            && !is_port(s)
            && !is_port_range(s)
        {
            refs.push((label, s.to_string()));
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::model;

    fn ctx<'a>(aliases: &'a [Obj], peers: &'a [Obj]) -> ValidateCtx<'a> {
        ValidateCtx {
            peers,
            self_id: None,
            initial: None,
            aliases,
            limiters: &[],
            vpn: None,
            repr: InterfaceRepresentation::Descr,
            client: "admin@127.0.0.1 (API)",
            keep_read_only: false,
            now: 1_700_000_000,
        }
    }

    fn req(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rule_defaults_and_interface_mapping() {
        let m = model("FirewallRule");
        let r = req(json!({"type": "block", "interface": ["WAN"], "ipprotocol": "inet", "source": "lan:ip",
            "destination": "any", "source_port": "22", "bogus": 1}));
        let obj = validate(m, &r, &ctx(&[], &[])).unwrap();
        assert_eq!(obj["interface"], json!(["wan"]));
        assert_eq!(obj["source"], json!("lan:ip"));
        assert_eq!(obj["source_port"], Value::Null, "condition protocol in tcp/udp not met");
        assert_eq!(obj["statetype"], json!("keep state"));
        assert!(!obj.contains_key("bogus"));
        let repr = to_repr(m, &obj, Some(json!(0)), InterfaceRepresentation::Descr);
        assert_eq!(repr["interface"], json!(["WAN"]));
        assert_eq!(repr["source"], json!("LAN:ip"));
    }

    #[test]
    fn rule_errors() {
        let m = model("FirewallRule");
        let base =
            json!({"type": "block", "interface": ["wan"], "ipprotocol": "inet", "source": "any", "destination": "any"});
        let with = |k: &str, v: Value| {
            let mut o = req(base.clone());
            o.insert(k.into(), v);
            validate(m, &o, &ctx(&[], &[])).unwrap_err().response_id
        };
        assert_eq!(with("type", json!("allow")), "FIELD_INVALID_CHOICE");
        assert_eq!(with("type", Value::Null), "FIELD_IS_REQUIRED");
        assert_eq!(with("interface", json!("wan")), "FIELD_INVALID_MANY_VALUE");
        assert_eq!(with("interface", json!(["wan", "lan"])), "FIREWALL_RULE_MULTIPLE_INTERFACE_WITHOUT_FLOATING");
        assert_eq!(with("source", json!("nosuchalias")), "FILTER_ADDRESS_FIELD_INVALID");
        assert_eq!(with("source", json!("!any")), "FILTER_RULE_ADDRESS_FIELD_WITH_INVERT_ANY");
        assert_eq!(with("log", json!("yes")), "FIELD_INVALID_TYPE");
        assert_eq!(with("sched", json!("workhours")), "FOREIGN_MODEL_FIELD_VALUE_NOT_FOUND");
    }

    #[test]
    fn alias_validation() {
        let m = model("FirewallAlias");
        let ok = validate(
            m,
            &req(json!({"name": "blocklist", "type": "host", "address": ["1.2.3.4", "example.com"]})),
            &ctx(&[], &[]),
        )
        .unwrap();
        assert_eq!(ok["detail"].as_array().unwrap().len(), 2);
        let bad = |v: Value| validate(m, &req(v), &ctx(&[], &[])).unwrap_err().response_id;
        assert_eq!(
            bad(json!({"name": "n", "type": "network", "address": ["10.0.0.0/33"]})),
            "INVALID_NETWORK_ALIAS_ADDRESS"
        );
        assert_eq!(bad(json!({"name": "h", "type": "host", "address": ["not a host"]})), "INVALID_HOST_ALIAS_ADDRESS");
        assert_eq!(bad(json!({"name": "p", "type": "port", "address": ["99999"]})), "INVALID_PORT_ALIAS_ADDRESS");
        assert_eq!(bad(json!({"name": "ssh", "type": "port", "address": ["22"]})), "INVALID_FIREWALL_ALIAS_NAME");
        assert_eq!(
            bad(json!({"name": "wan", "type": "port", "address": ["22"]})),
            "FILTER_NAME_VALIDATOR_NAME_IN_USE_BY_INTERFACE"
        );
        assert_eq!(bad(json!({"name": "x".repeat(32), "type": "port"})), "LENGTH_VALIDATOR_MAXIMUM_CONSTRAINT");
        assert_eq!(bad(json!({"name": "t", "type": "url"})), "FIELD_INVALID_CHOICE");
        let peers = vec![ok];
        let err = validate(m, &req(json!({"name": "blocklist", "type": "host"})), &ctx(&[], &peers)).unwrap_err();
        assert_eq!(err.response_id, "FIELD_MUST_BE_UNIQUE");
        assert_eq!(err.message, "Field `name` must be unique. Value is in use by object with ID `0`.");
    }
}
