//! What a change tool asks for: intents and the drafts and patches they carry.

use ipnet::IpNet;

use crate::model::{Action, AddressMatch, Direction, IpVersion, PortMatch, Protocol, RuleId, Timestamp};

/// A new rule as asked for, already parsed but not yet checked against the firewall's state.
#[derive(Debug, Clone)]
pub struct RuleDraft {
    pub interface: String,
    pub direction: Direction,
    pub action: Action,
    pub ip_version: Option<IpVersion>,
    pub protocol: Protocol,
    pub source: AddressMatch,
    pub source_port: PortMatch,
    pub destination: AddressMatch,
    pub destination_port: PortMatch,
    pub description: String,
    pub log: bool,
    pub enabled: bool,
    pub position: Option<usize>,
}

/// Fields to change on an existing rule; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RulePatch {
    pub action: Option<Action>,
    pub ip_version: Option<IpVersion>,
    pub protocol: Option<Protocol>,
    pub source: Option<AddressMatch>,
    pub source_port: Option<PortMatch>,
    pub destination: Option<AddressMatch>,
    pub destination_port: Option<PortMatch>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub log: Option<bool>,
    pub position: Option<usize>,
}

/// What a change tool asks for.
#[derive(Debug, Clone)]
pub enum Intent {
    CreateRule(RuleDraft),
    ModifyRule {
        rule_id: RuleId,
        patch: RulePatch,
    },
    DeleteRule {
        rule_id: RuleId,
    },
    PauseRule {
        rule_id: RuleId,
        until: Timestamp,
    },
    ResumeRule {
        rule_id: RuleId,
    },
    Block {
        net: IpNet,
        interface: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
        /// Set this expiry even where the address is already blocked for longer (by default the longer block,
        /// a person's 7 d block under an automated 1 h one, is kept).
        replace: bool,
    },
    Unblock {
        net: IpNet,
        interface: Option<String>,
    },
    Grant {
        net: IpNet,
        alias: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
        rule: Option<GrantRule>,
    },
    Revoke {
        net: IpNet,
        alias: Option<String>,
    },
    /// The host's own egress policy on one interface, replacing one already there (`crate::egress`).
    SetEgressPolicy(crate::egress::EgressPolicy),
    RemoveEgressPolicy {
        interface: String,
    },
}

/// The pass rule a grant list needs, created with the first grant when asked for.
#[derive(Debug, Clone)]
pub struct GrantRule {
    pub interface: String,
    pub protocol: Protocol,
    pub destination: AddressMatch,
    pub destination_port: PortMatch,
}
