//! Plans that start and stop a mirror, and the removal of mirrors that are due.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Family, Mirror, MirrorDirection, MirrorId, Selector, Sensor};
use crate::error::{FieldError, FieldResult};
use crate::model::{RuleSet, Timestamp};
use crate::plan::{ChangeFacts, ChangePlan, Operation};

/// What `mirror_traffic` asks for, its arguments checked and its sensor looked up in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorAsk {
    pub mirror_id: MirrorId,
    /// As the caller named it (logical name or device).
    pub interface: String,
    pub sensor: Sensor,
    pub direction: MirrorDirection,
    pub selector: Selector,
    pub rate_limit: u32,
    pub burst: u32,
    pub reason: String,
    pub expires_at: Timestamp,
}

/// Plans a new mirror.
pub fn plan_start(state: &RuleSet, ask: &MirrorAsk, now: Timestamp) -> FieldResult<ChangePlan> {
    let iface = state.resolve_interface("interface", &ask.interface)?;
    if let Some(own) = ask.sensor.interface()
        && (own.eq_ignore_ascii_case(&iface.name) || own.eq_ignore_ascii_case(&iface.device))
    {
        return Err(FieldError::new(
            "interface",
            format!(
                "{} is sensor {}'s own interface: the copies leave there and would be copied again; mirror another interface",
                iface.name, ask.sensor.name
            ),
        ));
    }
    let mirror = Mirror {
        mirror_id: ask.mirror_id.clone(),
        interface: iface.name.clone(),
        sensor: ask.sensor.clone(),
        direction: ask.direction,
        selector: ask.selector.clone(),
        rate_limit: ask.rate_limit,
        burst: ask.burst,
        excluded: ask.sensor.excluded(),
        reason: ask.reason.clone(),
        created_at: Some(now),
        expires_at: ask.expires_at,
    };
    validate(&mirror, now)?;
    if state.mirrors.iter().any(|m| m.mirror_id == mirror.mirror_id) {
        return Err(FieldError::new("mirror_id", format!("{} exists already", mirror.mirror_id)));
    }
    if let Some(same) = state.mirrors.iter().find(|m| m.same_copy(&mirror)) {
        return Err(FieldError::new(
            "sensor",
            format!(
                "{} already copies exactly this to {} until {}; stop_mirror it first to change its cap or expiry",
                same.mirror_id,
                same.sensor.name,
                same.expires_at.to_rfc3339()
            ),
        ));
    }
    let mut warnings = Vec::new();
    if mirror.selector.all {
        warnings.push(format!(
            "{} copies every packet of {} to {}",
            mirror.mirror_id, mirror.interface, mirror.sensor.name
        ));
    }
    if mirror.sensor.families().len() == 1 && mirror.selector.families().len() > 1 {
        let left_out = if mirror.sensor.families()[0] == Family::V4 { "IPv6" } else { "IPv4" };
        warnings.push(format!(
            "{left_out} packets are not copied: sensor {} is reached at an address of the other family",
            mirror.sensor.name
        ));
    }
    let lifetime = (mirror.expires_at - now).num_seconds();
    Ok(ChangePlan {
        summary: format!("start mirror {}", mirror.describe()),
        operations: vec![Operation::CreateMirror { after: mirror.clone() }],
        warnings,
        facts: ChangeFacts {
            host_bits: breadth(&mirror.selector),
            // A copy lets nothing more through; the risk of copying users' traffic is scored by the tool.
            widens_exposure: false,
            lifetime_seconds: Some(lifetime),
            permanent: false,
            interfaces: vec![mirror.interface.clone()],
        },
    })
}

/// Plans stopping the mirror `id`.
pub fn plan_stop(state: &RuleSet, id: &MirrorId) -> FieldResult<ChangePlan> {
    let Some(before) = state.mirrors.iter().find(|m| &m.mirror_id == id) else {
        let known: Vec<String> = state.mirrors.iter().map(|m| m.mirror_id.to_string()).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        return Err(FieldError::new(
            "mirror_id",
            format!("there is no mirror {id} (mirrors running: {known}; see list_mirrors)"),
        ));
    };
    Ok(ChangePlan {
        summary: format!("stop mirror {}", before.describe()),
        operations: vec![Operation::DeleteMirror { before: before.clone() }],
        warnings: Vec::new(),
        facts: ChangeFacts {
            host_bits: 0,
            widens_exposure: false,
            lifetime_seconds: None,
            permanent: false,
            interfaces: vec![before.interface.clone()],
        },
    })
}

/// The removals of every mirror whose time is up at `now`.
pub fn expired_mirrors(state: &RuleSet, now: Timestamp) -> Vec<Operation> {
    state
        .mirrors
        .iter()
        .filter(|m| m.expires_at <= now)
        .map(|m| Operation::DeleteMirror { before: m.clone() })
        .collect()
}

/// When the earliest mirror in `state` ends (overdue ones included).
pub fn next_mirror_end(state: &RuleSet) -> Option<Timestamp> {
    state.mirrors.iter().map(|m| m.expires_at).min()
}

fn validate(m: &Mirror, now: Timestamp) -> FieldResult<()> {
    let s = &m.selector;
    if s.all && s.narrows() {
        return Err(FieldError::new(
            "all",
            format!(
                "all: true copies everything, but a selector was given too ({}); give one or the other",
                s.describe()
            ),
        ));
    }
    if !s.all && !s.narrows() {
        return Err(FieldError::new(
            "all",
            "say what to copy (protocol, source, destination, port, source_port or destination_port); any to any \
             needs all: true, which only an admin may ask and a person must approve",
        ));
    }
    let has_port = s.port.is_some() || s.source_port.is_some() || s.destination_port.is_some();
    if has_port && !s.protocol.has_ports() {
        return Err(FieldError::new("protocol", "ports are matched on tcp, udp or tcp/udp only"));
    }
    if let (Some(a), Some(b)) = (&s.source, &s.destination)
        && a.addr().is_ipv4() != b.addr().is_ipv4()
    {
        return Err(FieldError::new("destination", format!("{b} is of another address family than source {a}")));
    }
    if s.families().iter().all(|f| !m.sensor.families().contains(f)) {
        return Err(FieldError::new(
            "sensor",
            format!("sensor {} is reached at an address of another family than the traffic selected", m.sensor.name),
        ));
    }
    for (field, net) in [("source", &s.source), ("destination", &s.destination)] {
        if let Some(net) = net
            && let Some(x) = m.excluded.iter().find(|x| host_net(**x) == *net)
        {
            return Err(FieldError::new(
                field,
                format!("{x} is sensor {}'s own address: its traffic is never mirrored (a loop)", m.sensor.name),
            ));
        }
    }
    if m.rate_limit == 0 {
        return Err(FieldError::new("rate_limit", "a cap of 0 packets per second copies nothing"));
    }
    if m.burst == 0 {
        return Err(FieldError::new("rate_limit", "the burst must be at least one packet"));
    }
    if m.expires_at <= now {
        return Err(FieldError::new("duration", "a mirror must end in the future"));
    }
    Ok(())
}

fn host_net(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

/// How much of the interface's traffic the selector copies, in host bits: the narrower named end bounds it;
/// with no address named, one service (a port) counts as a /16's worth and anything wider as a whole family.
fn breadth(s: &Selector) -> u8 {
    /// What copying one service of every host weighs: less than everything, more than a network of hosts.
    const ONE_SERVICE_BITS: u8 = 16;
    let by_address = match (&s.source, &s.destination) {
        (Some(a), Some(b)) => crate::address::net_host_bits(a).min(crate::address::net_host_bits(b)),
        (Some(n), None) | (None, Some(n)) => crate::address::net_host_bits(n),
        (None, None) => 128,
    };
    let one_service = [s.port, s.source_port, s.destination_port].iter().flatten().any(|p| p.first == p.last);
    if one_service { by_address.min(ONE_SERVICE_BITS) } else { by_address }
}

/// The mirrors `operations` leave of `mirrors`: started ones added (replacing one of the same id), stopped ones
/// removed, everything else ignored. What a backend that writes all of its mirrors at once writes after a plan.
pub fn mirrors_after<'a>(mirrors: &[Mirror], operations: impl IntoIterator<Item = &'a Operation>) -> Vec<Mirror> {
    let mut out = mirrors.to_vec();
    for op in operations {
        match op {
            Operation::CreateMirror { after } => {
                out.retain(|m| m.mirror_id != after.mirror_id);
                out.push(after.clone());
            }
            Operation::DeleteMirror { before } => out.retain(|m| m.mirror_id != before.mirror_id),
            _ => {}
        }
    }
    out
}
