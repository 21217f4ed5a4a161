//! Checks every value after parsing and normalises the ones with several spellings (log levels, protocols,
//! token hashes), so that a bad setting stops the start with its key path instead of failing a call later.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use super::logs::LogsConfig;
use super::schema::{Config, LAB_TARGET, LEGACY_PFSENSE_TARGET, NftablesConfig, PfSenseConfig, TargetConfig};
use super::{ConfigError, invalid};

pub(super) const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "warning", "error"];

pub(super) fn normalize_level(level: &str) -> Option<&'static str> {
    let lower = level.trim().to_ascii_lowercase();
    match lower.as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" => Some("error"),
        _ => None,
    }
}

pub(super) fn check_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if host.contains("://") {
        return Err(format!(
            "must be a host name or IP address without a scheme, got `{host}` \
             (set `pfsense.protocol` for http/https)"
        ));
    }
    if host.contains('/') || host.chars().any(char::is_whitespace) {
        return Err(format!("must be a host name or IP address, got `{host}`"));
    }
    Ok(())
}

pub(super) fn check_bind(bind: &str) -> Result<(), String> {
    bind.trim()
        .parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| format!("must be a socket address such as `127.0.0.1:8787`, got `{bind}`"))
}

pub(super) fn check_rate_limit(value: u32) -> Result<(), String> {
    if value == 0 { Err("must be at least 1 call per minute, got 0".to_owned()) } else { Ok(()) }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_pfsense(pf: &mut PfSenseConfig, key: &str, o: Option<&Path>) -> Result<(), ConfigError> {
    check_host(&pf.host).map_err(|m| invalid(format!("{key}.host"), m, o))?;
    pf.host = pf.host.trim().to_owned();
    if pf.port == 0 {
        return Err(invalid(format!("{key}.port"), "must be between 1 and 65535, got 0", o));
    }
    let protocol = pf.protocol.trim().to_ascii_lowercase();
    if protocol != "http" && protocol != "https" {
        return Err(invalid(format!("{key}.protocol"), format!("must be `http` or `https`, got `{}`", pf.protocol), o));
    }
    pf.protocol = protocol;
    if pf.timeout == Some(0) {
        return Err(invalid(format!("{key}.timeout"), "must be at least 1 second, got 0", o));
    }
    Ok(())
}

/// Names that reach `nft` and `ip` as arguments: letters, digits, `_`, `-` and `.`, nothing a shell or nft
/// would read differently.
fn is_plain_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn validate_nftables(nft: &mut NftablesConfig, key: &str, o: Option<&Path>) -> Result<(), ConfigError> {
    if !is_identifier(&nft.table) || nft.table.len() > 64 {
        return Err(invalid(
            format!("{key}.table"),
            format!("`{}` is not a table name (letters, digits, _)", nft.table),
            o,
        ));
    }
    if nft.interfaces.is_empty() {
        return Err(invalid(format!("{key}.interfaces"), "name at least one interface, e.g. {lan: eth1}", o));
    }
    let mut devices = std::collections::HashSet::new();
    for (logical, device) in &nft.interfaces {
        if !is_identifier(logical) || logical.len() > 32 {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                "logical interface names are identifiers (letters, digits, _) of at most 32 characters",
                o,
            ));
        }
        // IFNAMSIZ: kernel device names have at most 15 characters.
        if !is_plain_name(device, 15) {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                format!("`{device}` is not a kernel device name (at most 15 letters, digits, _ - .)"),
                o,
            ));
        }
        if !devices.insert(device.as_str()) {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                format!("device `{device}` is mapped twice"),
                o,
            ));
        }
    }
    nft.interfaces =
        std::mem::take(&mut nft.interfaces).into_iter().map(|(l, d)| (l.to_ascii_lowercase(), d)).collect();
    if let Some(ns) = &nft.netns
        && !is_plain_name(ns, 64)
    {
        return Err(invalid(format!("{key}.netns"), format!("`{ns}` is not a network namespace name"), o));
    }
    Ok(())
}

pub(super) fn validate(config: &mut Config, origin: &Path) -> Result<(), ConfigError> {
    let o = Some(origin);

    if let Some(pf) = config.pfsense.as_mut() {
        validate_pfsense(pf, "pfsense", o)?;
    }
    for (name, target) in config.targets.iter_mut() {
        if !is_identifier(name) || name == LAB_TARGET || name == LEGACY_PFSENSE_TARGET && config.pfsense.is_some() {
            return Err(invalid(
                format!("targets.{name}"),
                "target names are identifiers, and `lab` (and `pfsense` when the pfsense section is used) are taken",
                o,
            ));
        }
        match target {
            TargetConfig::Pfsense(pf) => validate_pfsense(pf, &format!("targets.{name}"), o)?,
            TargetConfig::Nftables(nft) => validate_nftables(nft, &format!("targets.{name}"), o)?,
        }
    }
    if let Some(default) = &config.default_target {
        let known = default == LAB_TARGET
            || config.pfsense_targets().iter().any(|(n, _)| n == default)
            || config.targets.contains_key(default);
        if !known {
            return Err(invalid("default_target", format!("no target named `{default}`"), o));
        }
    }

    let known_target = |t: &str| {
        t == LAB_TARGET || config.pfsense_targets().iter().any(|(n, _)| n == t) || config.targets.contains_key(t)
    };
    validate_logs(&config.logs, &known_target, o)?;
    config.domains.settings().map_err(|(key, message)| invalid(key, message, o))?;
    config.devices.settings().map_err(|(key, message)| invalid(key, message, o))?;
    config.alerts.sinks().map_err(|(key, message)| invalid(key, message, o))?;
    for r in config.alerts.report_schedules().map_err(|(key, message)| invalid(key, message, o))? {
        if let Some(target) = r.target.as_deref().filter(|t| !known_target(t)) {
            return Err(invalid(
                format!("alerts.reports[{}].target", r.index),
                format!("no target named `{target}`"),
                o,
            ));
        }
    }
    let mirroring = config.mirroring.settings().map_err(|(key, message)| invalid(key, message, o))?;
    for s in &mirroring.sensors {
        if let Some(target) = &s.target
            && !known_target(target)
        {
            return Err(invalid(
                format!("mirroring.sensors.{}.target", s.sensor.name),
                format!("no target named `{target}`"),
                o,
            ));
        }
    }

    if config.mcp.server_name.trim().is_empty() {
        return Err(invalid("mcp.server_name", "must not be empty", o));
    }

    let sec = &config.security;
    check_rate_limit(sec.rate_limit).map_err(|m| invalid("security.rate_limit", m, o))?;
    if sec.timeout == 0 {
        return Err(invalid("security.timeout", "must be at least 1 second, got 0", o));
    }
    if sec.max_risk_score > 100 {
        return Err(invalid(
            "security.max_risk_score",
            format!("must be between 0 and 100, got {}", sec.max_risk_score),
            o,
        ));
    }
    if sec.principal.trim().is_empty() {
        return Err(invalid("security.principal", "must not be empty", o));
    }
    let lists = [
        ("security.allowed_operations", sec.allowed_operations.as_deref().unwrap_or(&[])),
        ("security.denied_operations", &sec.denied_operations[..]),
        ("security.restricted_interfaces", &sec.restricted_interfaces[..]),
    ];
    for (key, list) in lists {
        if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
            return Err(invalid(format!("{key}[{i}]"), "must not be empty", o));
        }
    }

    match normalize_level(&config.logging.level) {
        Some(level) => config.logging.level = level.to_owned(),
        None => {
            return Err(invalid(
                "logging.level",
                format!("must be one of {}, got `{}`", LOG_LEVELS.join(", "), config.logging.level),
                o,
            ));
        }
    }

    for (name, device) in &config.interfaces {
        if !is_identifier(name) {
            return Err(invalid(
                format!("interfaces.{name}"),
                "interface names must start with a letter and contain only letters, digits and `_`",
                o,
            ));
        }
        if device.trim().is_empty() {
            return Err(invalid(format!("interfaces.{name}"), "the device name must not be empty", o));
        }
    }

    check_bind(&config.http.bind).map_err(|m| invalid("http.bind", m, o))?;
    let mut seen = BTreeSet::new();
    for (i, token) in config.http.tokens.iter_mut().enumerate() {
        if token.principal.trim().is_empty() {
            return Err(invalid(format!("http.tokens[{i}].principal"), "must not be empty", o));
        }
        let hash = token.sha256.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                format!("http.tokens[{i}].sha256"),
                "must be the SHA-256 of the token as 64 hexadecimal characters \
                 (the plain token never goes in the configuration)",
                o,
            ));
        }
        token.sha256 = hash.to_ascii_lowercase();
        if !seen.insert(token.sha256.clone()) {
            return Err(invalid(format!("http.tokens[{i}].sha256"), "the same token hash is listed more than once", o));
        }
    }
    if let Some(i) = config.http.allowed_origins.iter().position(|s| s.trim().is_empty()) {
        return Err(invalid(format!("http.allowed_origins[{i}]"), "must not be empty", o));
    }

    validate_access(config, o)
}

/// Principals, roles, tokens, rate classes, protected addresses and the approval TTL.
fn validate_access(config: &Config, o: Option<&Path>) -> Result<(), ConfigError> {
    let sec = &config.security;
    for name in sec.roles.keys() {
        if portcullis_guard::roles::BUILTIN_ROLES.contains(&name.as_str()) {
            return Err(invalid(format!("security.roles.{name}"), "built-in roles cannot be redefined", o));
        }
    }
    for (name, p) in &sec.principals {
        let known =
            portcullis_guard::roles::BUILTIN_ROLES.contains(&p.role.as_str()) || sec.roles.contains_key(&p.role);
        if !known {
            return Err(invalid(format!("security.principals.{name}.role"), format!("no role named `{}`", p.role), o));
        }
    }
    if sec.role_of(&sec.principal).is_none() {
        return Err(invalid(
            "security.principal",
            format!("`{}` has no role: add security.principals.{}.role", sec.principal, sec.principal),
            o,
        ));
    }
    for (i, token) in config.http.tokens.iter().enumerate() {
        if sec.role_of(&token.principal).is_none() {
            return Err(invalid(
                format!("http.tokens[{i}].principal"),
                format!("`{}` has no role: add security.principals.{}.role", token.principal, token.principal),
                o,
            ));
        }
    }
    if let Some(limits) = &sec.rate_limits {
        let classes =
            [("default", limits.default.unwrap_or(1)), ("sensitive", limits.sensitive), ("admin", limits.admin)];
        for (class, n) in classes {
            check_rate_limit(n).map_err(|m| invalid(format!("security.rate_limits.{class}"), m, o))?;
        }
    }
    for (key, list) in [
        ("security.protected_addresses", &sec.protected_addresses),
        ("security.management_hosts", &sec.management_hosts),
        ("egress.mcp_clients", &config.egress.mcp_clients),
    ] {
        for (i, s) in list.iter().enumerate() {
            portcullis_core::model::parse_net("address", s)
                .map_err(|e| invalid(format!("{key}[{i}]"), e.message, o))?;
        }
    }
    // A flow to or from the IPv6 spelling of an IPv4 host is a flow no packet takes: lockout prevention would
    // keep it and lose the one the administrator meant.
    for (i, flow) in sec.management_flows.iter().enumerate() {
        for (side, addr) in [("source", &flow.source), ("destination", &flow.destination)] {
            portcullis_core::address::check_host(side, addr)
                .map_err(|e| invalid(format!("security.management_flows[{i}].{side}"), e.message, o))?;
        }
    }
    portcullis_core::duration::parse_span("approval_ttl", &sec.approval_ttl)
        .map_err(|e| invalid("security.approval_ttl", e.message, o))?;
    if let Some(w) = &sec.confirm_within {
        portcullis_core::duration::parse_span("confirm_within", w)
            .map_err(|e| invalid("security.confirm_within", e.message, o))?;
    }
    Ok(())
}

/// The `logs:` section: listener addresses, spans and sizes.
fn validate_logs(logs: &LogsConfig, known_target: &dyn Fn(&str) -> bool, o: Option<&Path>) -> Result<(), ConfigError> {
    for (key, addr) in [("logs.syslog_udp", &logs.syslog_udp), ("logs.syslog_tcp", &logs.syslog_tcp)] {
        if let Some(a) = addr
            && a.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(key, format!("`{a}` is not an address:port like 127.0.0.1:5514"), o));
        }
    }
    if let Some(age) = &logs.max_age {
        portcullis_core::duration::parse_span("logs.max_age", age)
            .map_err(|e| invalid("logs.max_age", e.message, o))?;
    }
    for (key, mb) in [("logs.max_size_mb", logs.max_size_mb), ("logs.cache_mb", logs.cache_mb)] {
        if mb == Some(0) {
            return Err(invalid(key, "must be at least 1", o));
        }
    }
    if logs.pull_max_lines.is_some_and(|n| n < portcullis_tools::LINES_PER_PULL_PAGE) {
        let least = portcullis_tools::LINES_PER_PULL_PAGE;
        return Err(invalid("logs.pull_max_lines", format!("must be at least {least} (one page)"), o));
    }
    validate_eve_files(logs, known_target, o)?;
    let a = &logs.auto_response;
    portcullis_core::duration::parse_span("logs.auto_response.timeframe", &a.timeframe)
        .map_err(|e| invalid("logs.auto_response.timeframe", e.message, o))?;
    if a.every_seconds == 0 {
        return Err(invalid("logs.auto_response.every_seconds", "must be at least 1", o));
    }
    if a.min_score > 100 {
        return Err(invalid("logs.auto_response.min_score", "must be 0-100", o));
    }
    Ok(())
}

/// `logs.eve_files`: a path each (no file twice), a configured target, an interface name, a sensor name that is
/// plain text.
fn validate_eve_files(
    logs: &LogsConfig,
    known_target: &dyn Fn(&str) -> bool,
    o: Option<&Path>,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, e) in logs.eve_files.iter().enumerate() {
        let key = |field: &str| format!("logs.eve_files[{i}].{field}");
        if e.path.as_os_str().is_empty() {
            return Err(invalid(key("path"), "must name the eve.json file", o));
        }
        if !seen.insert(&e.path) {
            return Err(invalid(key("path"), format!("{} is listed twice", e.path.display()), o));
        }
        if let Some(t) = &e.target
            && !known_target(t)
        {
            return Err(invalid(key("target"), format!("no target named `{t}`"), o));
        }
        if let Some(i) = &e.interface {
            let ok = !i.is_empty()
                && i.len() <= 64
                && i.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
            if !ok {
                return Err(invalid(key("interface"), "1-64 letters, digits, `_`, `.`, `:` or `-` (like `wan`)", o));
            }
        }
        if let Some(s) = &e.sensor {
            portcullis_core::text::validate_text("sensor", s, 64)
                .map_err(|err| invalid(key("sensor"), err.message, o))?;
            if s.trim().is_empty() {
                return Err(invalid(key("sensor"), "must not be blank", o));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::test_support::*;

    #[test]
    fn invalid_values_name_their_keys() {
        assert_invalid_key("pfsense: {host: fw, protocol: ftp}\n", "pfsense.protocol");
        assert_invalid_key("pfsense: {host: fw, port: 0}\n", "pfsense.port");
        assert_invalid_key("pfsense: {host: \"https://fw\"}\n", "pfsense.host");
        assert_invalid_key("pfsense: {host: fw, timeout: 0}\n", "pfsense.timeout");
        assert_invalid_key("security: {rate_limit: 0}\n", "security.rate_limit");
        assert_invalid_key("security: {timeout: 0}\n", "security.timeout");
        assert_invalid_key("security: {max_risk_score: 101}\n", "security.max_risk_score");
        assert_invalid_key("security: {principal: \"\"}\n", "security.principal");
        assert_invalid_key("logging: {level: verbose}\n", "logging.level");
        assert_invalid_key("http: {bind: \"localhost\"}\n", "http.bind");
        assert_invalid_key("http: {tokens: [{principal: bot, sha256: abc123}]}\n", "http.tokens[0].sha256");
        assert_invalid_key(
            &format!("http: {{tokens: [{{principal: bot, sha256: {}}}]}}\n", "g".repeat(64)),
            "http.tokens[0].sha256",
        );
        assert_invalid_key("interfaces: {1wan: em0}\n", "interfaces.1wan");
        assert_invalid_key("interfaces: {\"w-an\": em0}\n", "interfaces.w-an");
        assert_invalid_key("interfaces: {wan: \"\"}\n", "interfaces.wan");
    }

    #[test]
    fn principals_roles_and_guard_settings_load_and_are_checked() {
        let text = "security:\n  principal: alice\n  principals: {alice: {role: auditor}, bob: {role: admin}}\n  \
                    roles: {auditor: {permissions: {analytics: read, system: read}}}\n  \
                    rate_limits: {sensitive: 4, admin: 2}\n  protected_addresses: [10.0.0.0/24, 192.0.2.10]\n  \
                    approval_ttl: 5m\n  risk_weights: {permanent: 30}\n";
        let c = parse(text, origin(), &no_env).unwrap();
        assert_eq!(c.security.role_of("alice").as_deref(), Some("auditor"));
        assert_eq!(c.security.role_of("operator").as_deref(), Some("operator"));
        assert_eq!(c.security.role_of("mallory"), None);
        let q = c.security.rate_quotas();
        assert_eq!((q.default, q.sensitive, q.admin), (100, 4, 2));
        assert_eq!(c.security.protected_nets().len(), 2);
        assert_eq!(c.security.approval_ttl(), chrono::TimeDelta::minutes(5));
        assert_eq!(c.security.risk_weights.unwrap().permanent, 30);

        assert_invalid_key("security: {principal: mallory}\n", "security.principal");
        assert_invalid_key("security: {principals: {a: {role: root}}}\n", "security.principals.a.role");
        assert_invalid_key("security: {roles: {admin: {}}}\n", "security.roles.admin");
        assert_invalid_key("security: {protected_addresses: [10.0.0.0/33]}\n", "security.protected_addresses[0]");
        assert_invalid_key("egress: {mcp_clients: [192.0.2.0/24, nope]}\n", "egress.mcp_clients[1]");
        assert_invalid_key("security: {approval_ttl: -5m}\n", "security.approval_ttl");
        assert_invalid_key("security: {rate_limits: {sensitive: 0}}\n", "security.rate_limits.sensitive");
    }

    #[test]
    fn ipv6_spellings_of_ipv4_hosts_are_refused_wherever_config_names_an_address() {
        for form in ["\"::ffff:192.0.2.10\"", "\"::ffff:c000:20a\"", "\"::192.0.2.10\"", "\"::ffff:10.0.0.0/104\""] {
            assert_invalid_key(
                &format!("security: {{protected_addresses: [{form}]}}\n"),
                "security.protected_addresses[0]",
            );
            assert_invalid_key(
                &format!("security: {{management_hosts: [10.0.0.5, {form}]}}\n"),
                "security.management_hosts[1]",
            );
            assert_invalid_key(&format!("egress: {{mcp_clients: [{form}]}}\n"), "egress.mcp_clients[0]");
        }
        let flow = |source: &str, destination: &str| {
            format!(
                "security:\n  management_flows:\n    - {{name: gui, interface: lan, source: \"{source}\", \
                 destination: \"{destination}\", port: 443}}\n"
            )
        };
        assert!(parse(&flow("192.0.2.10", "192.0.2.1"), origin(), &no_env).is_ok());
        assert_invalid_key(&flow("::ffff:192.0.2.10", "192.0.2.1"), "security.management_flows[0].source");
        assert_invalid_key(&flow("192.0.2.10", "::192.0.2.1"), "security.management_flows[0].destination");
        for ambiguous in ["\"fe80::1%eth0\"", "010.0.0.1", "10.0.0.0/024", "\"10.0.0.0/+8\""] {
            assert_invalid_key(
                &format!("security: {{management_hosts: [{ambiguous}]}}\n"),
                "security.management_hosts[0]",
            );
        }
    }

    #[test]
    fn nftables_targets_load_and_name_their_bad_fields() {
        let text = "targets:\n  router: {kind: nftables, interfaces: {LAN: eth1, wan: eth0}, netns: edge}\n\
                    default_target: router\n";
        let c = parse(text, origin(), &no_env).unwrap();
        let (name, nft) = &c.nftables_targets()[0];
        assert_eq!((name.as_str(), nft.table.as_str(), nft.netns.as_deref()), ("router", "portcullis", Some("edge")));
        assert_eq!(nft.interfaces.get("lan").map(String::as_str), Some("eth1"));
        assert!(nft.default_allow);
        assert_eq!(c.default_target(), "router");
        assert!(c.pfsense_targets().is_empty());
        assert_invalid_key("targets: {r: {kind: nftables, interfaces: {}}}\n", "targets.r.interfaces");
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: \"eth0;rm\"}}}\n",
            "targets.r.interfaces.lan",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0}, table: \"x y\"}}\n",
            "targets.r.table",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0}, netns: \"a/b\"}}\n",
            "targets.r.netns",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0, wan: e0}}}\n",
            "targets.r.interfaces.wan",
        );
        let err = parse("targets: {r: {kind: nftables, interfaces: {lan: e0}, colour: red}}\n", origin(), &no_env);
        assert!(err.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn normalisations() {
        // SHA-256 of "s3cret-token" in upper case; the HTTP layer's tests check that the token then finds `bot`.
        let hash = "A81E611A041B13F078BF8EBE5DAB4D4FD63FCC5594661C918BEC093A2F416A7E";
        let text = format!(
            "pfsense: {{host: fw, protocol: HTTP}}\nlogging: {{level: Warning}}\n\
             security: {{principals: {{bot: {{role: operator}}}}}}\n\
             http: {{tokens: [{{principal: bot, sha256: {hash}}}]}}\n"
        );
        let c = parse(&text, origin(), &no_env).unwrap();
        assert_eq!(c.pfsense.unwrap().protocol, "http");
        assert_eq!(c.logging.level, "warn");
        assert_eq!(c.logging.tracing_level(), tracing::Level::WARN);
        assert_eq!(c.http.tokens[0].sha256, hash.to_ascii_lowercase());
        for level in ["trace", "DEBUG", "Info", "warn", "ERROR"] {
            let text = format!("logging: {{level: {level}}}\n");
            assert!(parse(&text, origin(), &no_env).is_ok(), "{level}");
        }
    }

    #[test]
    fn duplicate_token_hashes_are_rejected() {
        let h = "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8";
        let text = format!("http: {{tokens: [{{principal: a, sha256: {h}}}, {{principal: b, sha256: {h}}}]}}\n");
        assert_invalid_key(&text, "http.tokens[1].sha256");
    }
}
