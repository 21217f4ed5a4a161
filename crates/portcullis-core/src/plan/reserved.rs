//! Names Portcullis manages are reserved for their purpose. Every object it owns is named `PORTCULLIS…` (block
//! lists, grant lists, and the geo, mirror, DDoS and sandbox objects to come); a name of one purpose must never
//! be given to an object of another: a grant list named `PORTCULLIS_BLOCK` would receive every later block and
//! turn the block list into an allow list, and a pass rule from `PORTCULLIS_BLOCK` would let the blocked in.
//! Names are compared without case, so `portcullis_block` is the same reserved name.

use std::fmt;

use crate::error::{FieldError, FieldResult};
use crate::model::Action;

/// The prefix of every name Portcullis manages.
pub const RESERVED_PREFIX: &str = "PORTCULLIS";

/// What a reserved name is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    BlockList,
    GrantList,
    Geo,
    Mirror,
    Ddos,
    Sandbox,
    /// Reserved for objects Portcullis may add later.
    Future,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BlockList => "Portcullis' block lists",
            Self::GrantList => "Portcullis' grant lists",
            Self::Geo => "Portcullis' geo blocks",
            Self::Mirror => "Portcullis' traffic mirrors",
            Self::Ddos => "Portcullis' DDoS protection",
            Self::Sandbox => "Portcullis' network sandboxes",
            Self::Future => "objects Portcullis manages",
        })
    }
}

/// The purpose a name is reserved for, if it is reserved.
pub fn reserved_purpose(name: &str) -> Option<Purpose> {
    let upper = name.to_ascii_uppercase();
    let rest = upper.strip_prefix(RESERVED_PREFIX)?;
    let kinds = [
        ("_BLOCK", Purpose::BlockList),
        ("_GRANT", Purpose::GrantList),
        ("_GEO", Purpose::Geo),
        ("_MIRROR", Purpose::Mirror),
        ("_DDOS", Purpose::Ddos),
        ("_SANDBOX", Purpose::Sandbox),
    ];
    Some(kinds.iter().find(|(head, _)| rest.starts_with(head)).map_or(Purpose::Future, |(_, p)| *p))
}

/// A name given for an object of `purpose`: refused when it is reserved for another.
pub fn check_name_for(field: &str, name: &str, purpose: Purpose) -> FieldResult<()> {
    match reserved_purpose(name) {
        Some(reserved) if reserved != purpose => Err(reserved_error(field, name, reserved)),
        _ => Ok(()),
    }
}

/// A rule's reference to an address alias: a reserved list may be referenced only by a rule that acts as the list
/// does (a block or reject from a block list, a pass from a grant list; negated, the other way round: a pass from
/// everything but the block list); other reserved names not at all.
pub fn check_reference(field: &str, name: &str, negated: bool, action: Action) -> FieldResult<()> {
    let passes = (action == Action::Pass) != negated;
    let acts_alike = match reserved_purpose(name) {
        None => true,
        Some(Purpose::BlockList) => !passes,
        Some(Purpose::GrantList) => passes,
        Some(_) => false,
    };
    match reserved_purpose(name) {
        Some(reserved) if !acts_alike => Err(FieldError::new(
            field,
            format!(
                "{name} is reserved for {reserved}; a {} rule may not reference it ({})",
                action.as_str(),
                hint(reserved)
            ),
        )),
        _ => Ok(()),
    }
}

fn reserved_error(field: &str, name: &str, reserved: Purpose) -> FieldError {
    FieldError::new(field, format!("{name} is reserved for {reserved} ({})", hint(reserved)))
}

fn hint(reserved: Purpose) -> &'static str {
    match reserved {
        Purpose::BlockList => "block addresses with block_ip_address; name your own aliases without PORTCULLIS",
        Purpose::GrantList => "grant access with grant_access; name your own aliases without PORTCULLIS",
        _ => "name your own aliases and objects without the PORTCULLIS prefix",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_reserved_name_is_reserved() {
        for (name, purpose) in [
            ("PORTCULLIS_BLOCK", Purpose::BlockList),
            ("portcullis_block", Purpose::BlockList),
            ("Portcullis_Block_LAN", Purpose::BlockList),
            ("PORTCULLIS_GRANT", Purpose::GrantList),
            ("PORTCULLIS_GRANT_VENDORS", Purpose::GrantList),
            ("PORTCULLIS_GEO_CN", Purpose::Geo),
            ("PORTCULLIS_MIRROR_ZEEK", Purpose::Mirror),
            ("PORTCULLIS_DDOS_WAN", Purpose::Ddos),
            ("PORTCULLIS_SANDBOX_1", Purpose::Sandbox),
            ("PORTCULLIS", Purpose::Future),
            ("PORTCULLISX", Purpose::Future),
        ] {
            assert_eq!(reserved_purpose(name), Some(purpose), "{name}");
        }
        for free in ["VENDORS", "MY_PORTCULLIS", "BLOCK", "P0RTCULLIS_BLOCK"] {
            assert_eq!(reserved_purpose(free), None, "{free}");
        }
    }

    #[test]
    fn a_name_of_one_purpose_is_refused_for_another() {
        assert!(check_name_for("alias", "PORTCULLIS_GRANT_X", Purpose::GrantList).is_ok());
        assert!(check_name_for("alias", "VENDORS", Purpose::GrantList).is_ok());
        for hijack in ["PORTCULLIS_BLOCK", "portcullis_block_wan", "PORTCULLIS_GEO_RU", "PORTCULLIS_NEXT"] {
            let e = check_name_for("alias", hijack, Purpose::GrantList).unwrap_err();
            assert_eq!(e.field, "alias");
            assert!(e.message.contains("reserved"), "{}", e.message);
        }
    }

    #[test]
    fn rules_reference_reserved_lists_only_to_act_as_they_do() {
        assert!(check_reference("source", "PORTCULLIS_BLOCK", false, Action::Block).is_ok());
        assert!(check_reference("source", "PORTCULLIS_BLOCK_LAN", false, Action::Reject).is_ok());
        assert!(check_reference("source", "PORTCULLIS_GRANT", false, Action::Pass).is_ok());
        assert!(check_reference("source", "OFFICE", false, Action::Pass).is_ok());
        assert!(check_reference("source", "PORTCULLIS_BLOCK", false, Action::Pass).is_err());
        assert!(check_reference("destination", "portcullis_block", false, Action::Pass).is_err());
        assert!(check_reference("source", "PORTCULLIS_GRANT", false, Action::Block).is_err());
        assert!(check_reference("source", "PORTCULLIS_GEO_CN", false, Action::Block).is_err());
        // Everything but the block list may pass; everything but the grant list may be blocked.
        assert!(check_reference("source", "PORTCULLIS_BLOCK", true, Action::Pass).is_ok());
        assert!(check_reference("source", "PORTCULLIS_BLOCK", true, Action::Block).is_err());
        assert!(check_reference("source", "PORTCULLIS_GRANT", true, Action::Block).is_ok());
    }
}
