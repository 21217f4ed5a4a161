//! The lab's interfaces and the rule set of a freshly installed pfSense.

use chrono::TimeDelta;
use ipnet::IpNet;
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Interface, IpVersion, PortMatch, PortRange, Protocol, Rule, Timestamp,
};
use portcullis_core::plan::MANAGED_ANTI_LOCKOUT;
use portcullis_store::LabState;

/// A logical interface name and the device it maps to (config `interfaces:`).
pub type LabInterface = (String, String);

pub fn default_interfaces() -> Vec<LabInterface> {
    [("wan", "em0"), ("lan", "em1"), ("dmz", "em2")].into_iter().map(|(n, d)| (n.to_string(), d.to_string())).collect()
}

/// Builds lab interfaces with documentation-range addresses: wan on TEST-NET-2, lan and the others on private
/// subnets like a new pfSense.
pub fn lab_interfaces(mapping: &[LabInterface]) -> Vec<Interface> {
    let mut opt = 0u8;
    mapping
        .iter()
        .map(|(name, device)| {
            let (v4, v6, description) = match name.as_str() {
                "wan" => ("198.51.100.2/24", Some("2001:db8:ffff::2/64"), "WAN"),
                "lan" => ("192.168.1.1/24", Some("2001:db8:1::1/64"), "LAN"),
                "dmz" => ("10.10.10.1/24", Some("2001:db8:10::1/64"), "DMZ"),
                _ => ("", None, "OPT"),
            };
            let ipv4 = if v4.is_empty() {
                opt += 1;
                format!("10.{}.0.1/24", 20 + opt).parse::<IpNet>().ok()
            } else {
                v4.parse().ok()
            };
            Interface {
                name: name.clone(),
                device: device.clone(),
                description: description.to_string(),
                ipv4,
                ipv6: v6.and_then(|s| s.parse().ok()),
                enabled: true,
            }
        })
        .collect()
}

fn rule(id: u64, interface: &str, now: Timestamp) -> Rule {
    Rule { ip_version: IpVersion::Inet, ..Rule::new(interface, Action::Pass).with_id(id.to_string()).stamped(now) }
}

/// pfSense after the setup wizard: the anti-lockout rule and default allow rules on LAN; nothing on WAN or
/// other interfaces, so the implicit default deny blocks what arrives there.
pub fn fresh_install(interfaces: &[Interface], now: Timestamp) -> LabState {
    let mut rules = Vec::new();
    if interfaces.iter().any(|i| i.name == "lan") {
        let base = (now - TimeDelta::seconds(1)).timestamp().max(0) as u64 * 10;
        rules.push(Rule {
            protocol: Protocol::Tcp,
            destination: AddressMatch { target: AddressTarget::InterfaceAddress("lan".into()), negate: false },
            destination_port: PortMatch::Range(PortRange::single(443)),
            description: "Anti-Lockout Rule".into(),
            managed: Some(MANAGED_ANTI_LOCKOUT.into()),
            ..rule(base, "lan", now)
        });
        let lan_net = AddressMatch { target: AddressTarget::Alias("lan".into()), negate: false };
        rules.push(Rule {
            source: lan_net.clone(),
            description: "Default allow LAN to any rule".into(),
            ..rule(base + 1, "lan", now)
        });
        rules.push(Rule {
            ip_version: IpVersion::Inet6,
            source: lan_net,
            description: "Default allow LAN IPv6 to any rule".into(),
            ..rule(base + 2, "lan", now)
        });
    }
    LabState { rules, aliases: Vec::new(), protections: Vec::new(), mirrors: Vec::new() }
}
