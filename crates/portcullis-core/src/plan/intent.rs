//! What a change tool asks for: intents and the drafts and patches they carry.

use ipnet::IpNet;

use crate::model::{Action, AddressMatch, Direction, IpVersion, PortMatch, Protocol, RuleId, Timestamp};

/// The addresses a block, unblock, grant or revoke is about: one (`ip_address`) or a list (`ip_addresses`), in
/// the order given, each once. A list is one plan: one approval, one update of each alias, one apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    nets: Vec<IpNet>,
    listed: bool,
}

impl Addresses {
    /// A list as given; repeats are dropped (the first one stays).
    pub fn listed(nets: Vec<IpNet>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let nets = nets.into_iter().filter(|n| seen.insert(*n)).collect();
        Self { nets, listed: true }
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether the call gave a list (`ip_addresses`).
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// The argument the addresses came in.
    pub fn field(&self) -> &'static str {
        if self.listed { "ip_addresses" } else { "ip_address" }
    }

    /// Each address with the argument it came in (`ip_addresses[3]`), for errors that name it.
    pub fn with_fields(&self) -> impl Iterator<Item = (String, &IpNet)> {
        self.nets.iter().enumerate().map(|(i, n)| {
            let field = if self.listed { format!("ip_addresses[{i}]") } else { "ip_address".to_string() };
            (field, n)
        })
    }
}

impl From<IpNet> for Addresses {
    fn from(net: IpNet) -> Self {
        Self { nets: vec![net], listed: false }
    }
}

impl Intent {
    /// The entry values a block, unblock, grant or revoke is about (`192.0.2.7`, `10.0.0.0/8`): all it needs of
    /// the lists' entries is theirs. `None` for every other intent.
    pub fn entry_values(&self) -> Option<Vec<String>> {
        match self {
            Intent::Block { addresses, .. }
            | Intent::Unblock { addresses, .. }
            | Intent::Grant { addresses, .. }
            | Intent::Revoke { addresses, .. } => {
                Some(addresses.nets().iter().map(crate::model::net_to_string).collect())
            }
            _ => None,
        }
    }
}

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
        addresses: Addresses,
        interface: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
        /// Set this expiry even where the address is already blocked for longer (by default the longer block,
        /// a person's 7 d block under an automated 1 h one, is kept).
        replace: bool,
    },
    Unblock {
        addresses: Addresses,
        interface: Option<String>,
    },
    Grant {
        addresses: Addresses,
        alias: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
        rule: Option<GrantRule>,
    },
    Revoke {
        addresses: Addresses,
        alias: Option<String>,
    },
    /// The host's own egress policy on one interface, replacing one already there (`crate::egress`).
    SetEgressPolicy(crate::egress::EgressPolicy),
    RemoveEgressPolicy {
        interface: String,
    },
    /// Every network of some countries blocked on some interfaces (`crate::geo`).
    CreateGeoBlock(Box<crate::geo::GeoBlock>),
    DeleteGeoBlock {
        id: crate::geo::GeoBlockId,
    },
    /// Live geo blocks brought to new country data.
    RefreshGeoBlocks(Vec<crate::geo::GeoRefresh>),
    /// A DDoS protection for an interface and selector, replacing the one there (`crate::protection`).
    ConfigureProtection(Box<crate::protection::Protection>),
    RemoveProtection(crate::protection::ProtectionKey),
    /// `mirror_traffic`.
    StartMirror(Box<crate::mirror::MirrorAsk>),
    /// `stop_mirror`.
    StopMirror {
        mirror_id: crate::mirror::MirrorId,
    },
    /// A VPN user and the grant of its address (`crate::vpn`).
    CreateVpnUser(Box<crate::vpn::VpnAsk>),
    DeleteVpnUser {
        username: String,
    },
    /// `block_domain`, and its refresh at the name's TTL (`crate::domain`).
    BlockDomain(Box<crate::domain::DomainBlockAsk>),
    /// `unblock_domain`: `others` are the addresses other live domain blocks stand for.
    UnblockDomain {
        domain: crate::domain::DomainName,
        interface: Option<String>,
        others: std::collections::BTreeMap<std::net::IpAddr, crate::domain::DomainName>,
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
