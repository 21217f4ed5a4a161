//! The managed lists: blocks, grants, and the aliases they live in.

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level};

use portcullis_core::plan::Intent;

use crate::args::*;
use crate::catalogue::{Decl, Tool, ToolKind::*};
use crate::views::*;
use crate::work::Work;
use crate::{CallError, reads};

pub(crate) struct BlockIpAddress;

impl Tool for BlockIpAddress {
    type Args = BlockIpAddressArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "block_ip_address",
        title: "Block an address",
        operation: "block_ip",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: false,
        idempotent: true,
        description: "Block an IPv4/IPv6 address or CIDR on one or every interface for a duration (30m, 1h, 24h, 7d or \
         permanent) with a reason. The block is an entry of a managed block-list alias and expires by itself.",
    };

    fn route(a: BlockIpAddressArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Block {
            net: block_target("ip_address", &a.ip_address)?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
            expires_at: lifetime(&a.duration)?.expires_at(now),
            reason: reason(&a.reason)?,
        };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct UnblockIpAddress;

impl Tool for UnblockIpAddress {
    type Args = UnblockIpAddressArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "unblock_ip_address",
        title: "Unblock an address",
        operation: "unblock_ip",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: true,
        idempotent: true,
        description: "Remove the block of an address or CIDR (on one interface, or everywhere).",
    };

    fn route(a: UnblockIpAddressArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Unblock {
            net: block_target("ip_address", &a.ip_address)?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
        };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct GrantAccess;

impl Tool for GrantAccess {
    type Args = GrantAccessArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "grant_access",
        title: "Grant access",
        operation: "grant_access",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: false,
        idempotent: true,
        description: "Let an address or CIDR in for a while (knock to get in): an entry with expiry in a managed allow \
         alias that pass rules reference. With interface and port, the pass rule is created on first use.",
    };

    fn route(a: GrantAccessArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, grant_intent(&a, now)?)
    }
}

pub(crate) struct RevokeAccess;

impl Tool for RevokeAccess {
    type Args = RevokeAccessArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "revoke_access",
        title: "Revoke access",
        operation: "revoke_access",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: true,
        idempotent: true,
        description: "Remove a grant now (from one grant list, or all).",
    };

    fn route(a: RevokeAccessArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Revoke { net: block_target("ip_address", &a.ip_address)?, alias: alias_name(&a.alias)? };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct ListGrants;

impl Tool for ListGrants {
    type Args = ListGrantsArgs;
    type Output = GrantsResult;
    const DECL: Decl = Decl {
        name: "list_grants",
        title: "Active grants",
        operation: "read_grants",
        kind: Read,
        category: Category::Security,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Active grants with reason, expiry and the pass rules that let them in.",
    };

    fn route(a: ListGrantsArgs, _now: Timestamp) -> Result<Work<GrantsResult>, CallError> {
        let alias = alias_name(&a.alias)?;
        Ok(Work::from_state(a.target, move |v| Ok(reads::grants(v.target, v.state, alias.as_deref(), v.now))))
    }
}

pub(crate) struct ListAliases;

impl Tool for ListAliases {
    type Args = ListAliasesArgs;
    type Output = AliasesResult;
    const DECL: Decl = Decl {
        name: "list_aliases",
        title: "Aliases",
        operation: "read_aliases",
        kind: Read,
        category: Category::RuleManagement,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Aliases (named address and port lists) with their kind and entry count; with name, one alias and its \
         live entries with reason and expiry.",
    };

    fn route(a: ListAliasesArgs, _now: Timestamp) -> Result<Work<AliasesResult>, CallError> {
        Ok(Work::from_state(a.target, move |v| Ok(reads::aliases(v.target, v.state, a.name.as_deref(), v.now)?)))
    }
}

pub(crate) struct ListBlocks;

impl Tool for ListBlocks {
    type Args = InterfaceFilterArgs;
    type Output = BlocksResult;
    const DECL: Decl = Decl {
        name: "list_blocks",
        title: "Active blocks",
        operation: "read_blocks",
        kind: Read,
        category: Category::Security,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "List active blocks with interface, reason, creation and expiry time.",
    };

    fn route(a: InterfaceFilterArgs, _now: Timestamp) -> Result<Work<BlocksResult>, CallError> {
        Ok(Work::from_state(a.target, move |v| Ok(reads::blocks(v.target, v.state, a.interface.as_deref(), v.now)?)))
    }
}
