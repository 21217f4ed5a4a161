//! nf_tables spoken over netlink directly, for the reads and writes that `nft` makes cost the whole table.
//!
//! `nft` builds a cache of the table before it runs any command that involves rules or set elements, and that
//! cache holds every element of every set: with 100,000 blocked addresses `nft get element` of one address lists
//! all of them first (1.8 s), with 1,000,000 it takes 90 s (the kernel's set dump restarts its walk for every
//! message, so a dump costs the square of the set's size). The kernel itself answers a lookup of one element, and
//! takes a batch of element changes, in time proportional to what is asked. This module does exactly that and
//! nothing else:
//!
//! - [`Netlink::lookup`]: set elements by key (one `NFT_MSG_GETSETELEM` request per key, pipelined);
//! - [`Netlink::dump_elements`]: every element of a small set (the generation number);
//! - [`Netlink::rule_comments`]: the comments of one chain's rules (the alias descriptions), without their
//!   expressions or the sets they name;
//! - [`Netlink::tables`]: the tables of every family (whether the mirror tables exist, for one dump);
//! - [`Netlink::chain_hooks`]: the hooks and devices of a table's base chains (nft 1.0.6's JSON listing leaves a
//!   netdev chain's device out);
//! - [`Netlink::generation`]: the kernel's ruleset generation, which every committed transaction in the network
//!   namespace advances by one;
//! - [`Netlink::commit`]: element additions and deletions as one nfnetlink batch, which the kernel commits whole or
//!   not at all, like `nft -f`;
//! - [`Netlink::monitor`]: the namespace's nf_tables notifications (what `nft monitor` reads), for hand edits;
//! - [`Netlink::commit_steps`]: the same with address sets made (and stale ones deleted) in the batch, so that a set
//!   of tens of thousands of networks is made and filled without `nft` parsing and evaluating each of them.
//!
//! Messages are the kernel's uapi (`linux/netfilter/nf_tables.h`, `nfnetlink.h`); element and rule comments are
//! libnftnl's user-data TLVs, as `nft` writes and reads them, so `nft -j list` shows what this module wrote.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink, sockopt};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETGEN: u16 = 16;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NFPROTO_INET: u8 = 1;
/// Every family: a dump of them all.
pub const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_NETDEV: u8 = 5;
pub const NFPROTO_IPV6: u8 = 10;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_GEN_ID: u16 = 1;
/// The nf_tables notification group (`NFNLGRP_NFTABLES`).
const NFNLGRP_NFTABLES: u32 = 7;
const ENOBUFS: i32 = 105;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// nft's datatype numbers (`enum datatypes` in nft's `datatype.h`), kept in a set's key type.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
/// libnftnl's `NFTNL_UDATA_SET_KEYBYTEORDER` and `NFTNL_UDATA_SET_COMMENT`; nft's `BYTEORDER_BIG_ENDIAN`.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_COMMENT: u8 = 7;
const BYTEORDER_BIG_ENDIAN: u32 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_COUNTERS: u16 = 8;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_HOOK_DEVS: u16 = 4;
const NFTA_DEVICE_NAME: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// libnftnl's `NFTNL_UDATA_SET_ELEM_COMMENT` and `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_COMMENT: u8 = 0;
/// libnftnl's `NFTNL_UDATA_SET_ELEM_FLAGS` with `NFTNL_SET_ELEM_F_INTERVAL_OPEN`: nft's mark on the start of an
/// interval that runs to the top of its family (and so has no end element).
const UDATA_SET_ELEM_FLAGS: u8 = 1;
const SET_ELEM_F_INTERVAL_OPEN: u32 = 1;

const ENOENT: i32 = errno::ENOENT;

/// The errors the kernel refuses set changes with.
pub mod errno {
    /// No such table, set or element.
    pub const ENOENT: i32 = 2;
    /// The set or element exists (an interval that overlaps one in the set, too).
    pub const EEXIST: i32 = 17;
    /// An interval that overlaps one in the set (kernels since 6.2).
    pub const ENOTEMPTY: i32 = 39;
}
/// The largest nested attribute: its length field is 16 bits.
const MAX_NEST: usize = 60_000;
/// Requests in flight at once: their answers must fit the receive buffer.
const PIPELINE: usize = 512;
const RECV_BUFFER: usize = 1 << 22;

/// A netlink failure.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused message `index` of a batch (counted from 0) with `errno`.
    #[error("the kernel refused change {index} of the batch: {}", io::Error::from_raw_os_error(*errno))]
    Refused { index: usize, errno: i32 },
    #[error("netlink: the kernel answered something this client cannot read ({0})")]
    Garbled(&'static str),
}

impl From<rustix::io::Errno> for NetlinkError {
    fn from(e: rustix::io::Errno) -> Self {
        NetlinkError::Io(e.into())
    }
}

impl NetlinkError {
    /// Whether notifications were lost: the socket's buffer filled before they were read.
    pub fn is_overrun(&self) -> bool {
        matches!(self, NetlinkError::Io(e) if e.raw_os_error() == Some(ENOBUFS))
    }

    /// Whether the kernel said "no such file or directory" (a set, table or element that is not there).
    pub fn is_missing(&self) -> bool {
        matches!(self, NetlinkError::Refused { errno: ENOENT, .. })
    }
}

/// One element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelElement {
    pub key: Vec<u8>,
    /// The element's timeout and the time it has left, in milliseconds (none for a permanent element).
    pub timeout_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub comment: Option<String>,
}

/// One element change of a batch: added (with its timeout and comment) or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewElement {
    pub key: Vec<u8>,
    pub timeout_ms: Option<u64>,
    pub comment: Option<String>,
    /// The first address past a network of an interval set ([`network_elements`]); it carries nothing else.
    pub interval_end: bool,
    /// The start of a network of an interval set that runs to the top of its family.
    pub open_interval: bool,
}

impl NewElement {
    /// A single address (of a hash set), or a number, with what it carries.
    pub fn key(key: Vec<u8>, timeout_ms: Option<u64>, comment: Option<String>) -> Self {
        NewElement { key, timeout_ms, comment, interval_end: false, open_interval: false }
    }
}

/// The elements of one network in an interval set, as nft writes them: its first address (with the timeout and
/// comment) and the first address past it, flagged as an interval's end; a network that reaches the top of its
/// family has no end element.
pub fn network_elements(net: ipnet::IpNet, timeout_ms: Option<u64>, comment: Option<String>) -> Vec<NewElement> {
    let mut start = NewElement::key(address_key(net.network()), timeout_ms, comment);
    let past = match net.broadcast() {
        IpAddr::V4(last) => u32::from(last).checked_add(1).map(|n| address_key(IpAddr::V4(n.into()))),
        IpAddr::V6(last) => u128::from(last).checked_add(1).map(|n| address_key(IpAddr::V6(n.into()))),
    };
    match past {
        Some(key) => {
            vec![start, NewElement { key, timeout_ms: None, comment: None, interval_end: true, open_interval: false }]
        }
        None => {
            start.open_interval = true;
            vec![start]
        }
    }
}

/// An address set a batch makes, as nft makes `set NAME { type ipv4_addr; flags interval, timeout; comment …; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSet {
    pub name: String,
    pub ipv6: bool,
    pub interval: bool,
    pub timeout: bool,
    pub comment: Option<String>,
}

/// One nf_tables notification, as far as hand edits need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Elements added to or deleted from a set (one notification per element; interval ends included).
    Elements { table: String, set: String, keys: Vec<Vec<u8>> },
    /// A table, chain, rule, set or object made, changed or deleted.
    Object { table: Option<String> },
    /// The end of a transaction: the ruleset generation it committed.
    Generation(u32),
}

/// A subscription to the nf_tables notifications of one network namespace.
pub struct Monitor {
    conn: Connection,
}

impl Monitor {
    /// The notifications that arrive within `wait` (none when nothing happened). An error that
    /// [`NetlinkError::is_overrun`] means some were lost.
    pub fn next(&mut self, wait: Duration) -> Result<Vec<Notification>, NetlinkError> {
        sockopt::set_socket_timeout(&self.conn.fd, sockopt::Timeout::Recv, Some(wait))?;
        let n = match rustix::net::recv(&self.conn.fd, &mut self.conn.buf[..], RecvFlags::empty()) {
            Ok((n, _)) => n,
            Err(rustix::io::Errno::AGAIN) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(notifications(self.conn.buf.get(..n).unwrap_or(&[])))
    }
}

/// The notifications in one datagram.
fn notifications(mut rest: &[u8]) -> Vec<Notification> {
    let mut out = Vec::new();
    while rest.len() >= 20 {
        let len = usize::try_from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]])).unwrap_or(usize::MAX);
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let Some(payload) = rest.get(20..len) else { break };
        if kind >> 8 == NFNL_SUBSYS_NFTABLES {
            out.extend(notification(kind & 0xff, rest[16], payload));
        }
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    out
}

/// Tables are named within their family: only `inet` ones are Portcullis'.
fn notification(kind: u16, family: u8, payload: &[u8]) -> Option<Notification> {
    // Every object message names its table first (`NFTA_*_TABLE` is 1 for tables' names, chains, rules, sets).
    let table = || {
        let name = attributes(payload).find(|(t, _)| *t == NFTA_TABLE_NAME).and_then(|(_, v)| c_string(v));
        name.map(|n| if family == NFPROTO_INET { n } else { format!("{family}:{n}") })
    };
    match kind {
        NFT_MSG_NEWGEN => attributes(payload)
            .find(|(t, _)| *t == NFTA_GEN_ID)
            .and_then(|(_, v)| be_u32(v))
            .map(Notification::Generation),
        NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM => {
            let set = attributes(payload).find(|(t, _)| *t == NFTA_SET_ELEM_LIST_SET).and_then(|(_, v)| c_string(v))?;
            Some(Notification::Elements { table: table()?, set, keys: elements(payload).map(|e| e.key).collect() })
        }
        NFT_MSG_NEWTABLE..NFT_MSG_NEWGEN => Some(Notification::Object { table: table() }),
        _ => None,
    }
}

/// One step of a batch, in order.
#[derive(Debug, Clone)]
pub enum BatchStep {
    /// Deletes a set no rule refers to, with its elements.
    DeleteSet(String),
    MakeSet(NewSet),
    Elements(ElementChange),
}

/// Additions to or deletions from one set.
#[derive(Debug, Clone)]
pub struct ElementChange {
    pub set: String,
    pub delete: bool,
    pub elements: Vec<NewElement>,
}

/// A chain as [`Netlink::chain_hooks`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainHook {
    pub name: String,
    /// The hook number (`NF_NETDEV_INGRESS` 0, `NF_NETDEV_EGRESS` 1 in family netdev); none for a regular chain.
    pub hook: Option<u32>,
    /// The devices a netdev base chain is bound to.
    pub devices: Vec<String>,
}

/// The key of an address in an `ipv4_addr` or `ipv6_addr` set: the address in network byte order.
pub fn address_key(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The address a key of an address set stands for.
pub fn key_address(key: &[u8]) -> Option<IpAddr> {
    match key.len() {
        4 => <[u8; 4]>::try_from(key).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(key).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The key of a number in a `mark` set: host byte order, as nft encodes that type.
pub fn mark_key(mark: u32) -> Vec<u8> {
    mark.to_ne_bytes().to_vec()
}

/// How to reach the kernel: in the namespace Portcullis runs in, or in a named one (`ip netns add NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netlink {
    netns: Option<String>,
}

impl Netlink {
    pub fn new(netns: Option<String>) -> Self {
        Self { netns }
    }

    /// The kernel's ruleset generation in the namespace.
    pub fn generation(&self) -> Result<u32, NetlinkError> {
        let mut conn = Connection::open(self.netns.as_deref())?;
        let mut msg = Message::new(NFT_MSG_GETGEN, NLM_F_REQUEST, 1, 0);
        msg.finish();
        conn.send(&msg.buf)?;
        let mut found = None;
        conn.receive(|reply| {
            let Reply::Data { payload, .. } = reply else { return Ok(Flow::Stop) };
            found = attributes(payload).find(|(t, _)| *t == NFTA_GEN_ID).and_then(|(_, v)| be_u32(v));
            Ok(Flow::Stop)
        })?;
        found.ok_or(NetlinkError::Garbled("a generation message without its id"))
    }

    /// The elements of `set` in `table` (family `inet`) whose keys are `keys`, in order; `None` where there is
    /// no such element. A set that does not exist is [`NetlinkError::is_missing`].
    pub fn lookup(&self, table: &str, set: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<KernelElement>>, NetlinkError> {
        let mut conn = Connection::open(self.netns.as_deref())?;
        let mut found: Vec<Option<KernelElement>> = vec![None; keys.len()];
        for (chunk_index, chunk) in keys.chunks(PIPELINE).enumerate() {
            let base = chunk_index * PIPELINE;
            let mut out = Vec::new();
            for (i, key) in chunk.iter().enumerate() {
                let mut msg = Message::new(NFT_MSG_GETSETELEM, NLM_F_REQUEST, seq_of(base + i), 0);
                element_list(&mut msg, table, set, std::slice::from_ref(key), |_, _| {});
                msg.finish();
                out.extend_from_slice(&msg.buf);
            }
            conn.send(&out)?;
            let mut answered = 0;
            conn.receive(|reply| {
                match reply {
                    Reply::Data { seq, payload, .. } => {
                        let slot = index_of(seq).and_then(|i| found.get_mut(i));
                        if let (Some(slot), Some(element)) = (slot, elements(payload).next()) {
                            *slot = Some(element);
                        }
                    }
                    Reply::Error { errno: 0, .. } => {}
                    Reply::Error { errno: ENOENT, .. } => {}
                    Reply::Error { seq, errno } => {
                        return Err(NetlinkError::Refused { index: index_of(seq).unwrap_or(0), errno });
                    }
                    Reply::Done => {}
                }
                answered += 1;
                Ok(if answered == chunk.len() { Flow::Stop } else { Flow::More })
            })?;
        }
        // An unknown set answers every lookup with "not found": tell that apart with one lookup of the set alone.
        if found.iter().all(Option::is_none) && !keys.is_empty() {
            self.set_exists(&mut conn, table, set)?;
        }
        Ok(found)
    }

    /// Every element of a small set (a dump costs the square of the set's size; see the module comment).
    pub fn dump_elements(&self, table: &str, set: &str) -> Result<Vec<KernelElement>, NetlinkError> {
        let mut msg = Message::new(NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_DUMP, 1, 0);
        msg.string(NFTA_SET_ELEM_LIST_TABLE, table);
        msg.string(NFTA_SET_ELEM_LIST_SET, set);
        let mut found = Vec::new();
        Connection::open(self.netns.as_deref())?.dump(msg, |payload| {
            found.extend(elements(payload));
            Ok(())
        })?;
        Ok(found)
    }

    /// The first `max` elements of a set in the kernel's order (or all of them when fewer), and whether that was
    /// all: a dump stopped early costs what it read, however large the set.
    pub fn first_elements(
        &self,
        table: &str,
        set: &str,
        max: usize,
    ) -> Result<(Vec<KernelElement>, bool), NetlinkError> {
        let mut msg = Message::new(NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_DUMP, 1, 0);
        msg.string(NFTA_SET_ELEM_LIST_TABLE, table);
        msg.string(NFTA_SET_ELEM_LIST_SET, set);
        let mut found = Vec::new();
        let complete = Connection::open(self.netns.as_deref())?.dump_until(msg, |payload| {
            found.extend(elements(payload));
            Ok(found.len() <= max)
        })?;
        let more = found.len() > max;
        found.truncate(max);
        Ok((found, complete && !more))
    }

    /// Whether `set` exists: an error that [`NetlinkError::is_missing`] when it does not.
    fn set_exists(&self, conn: &mut Connection, table: &str, set: &str) -> Result<(), NetlinkError> {
        let mut msg = Message::new(NFT_MSG_GETSET, NLM_F_REQUEST, 1, 0);
        msg.string(NFTA_SET_TABLE, table);
        msg.string(NFTA_SET_NAME, set);
        msg.finish();
        conn.send(&msg.buf)?;
        conn.receive(|reply| match reply {
            Reply::Error { errno, .. } if errno != 0 => Err(NetlinkError::Refused { index: 0, errno }),
            _ => Ok(Flow::Stop),
        })
    }

    /// (handle, comment) of every rule of `chain` in `table`, in order.
    pub fn rule_comments(&self, table: &str, chain: &str) -> Result<Vec<(u64, Option<String>)>, NetlinkError> {
        let mut msg = Message::new(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0);
        msg.string(NFTA_RULE_TABLE, table);
        msg.string(NFTA_RULE_CHAIN, chain);
        let mut rules = Vec::new();
        Connection::open(self.netns.as_deref())?.dump(msg, |payload| {
            let mut handle = None;
            let mut comment = None;
            let mut in_chain = false;
            for (t, v) in attributes(payload) {
                match t {
                    NFTA_RULE_CHAIN => in_chain = c_string(v).as_deref() == Some(chain),
                    NFTA_RULE_HANDLE => handle = be_u64(v),
                    NFTA_RULE_USERDATA => comment = udata_comment(v),
                    _ => {}
                }
            }
            // Old kernels ignore the chain filter of a dump.
            if in_chain {
                rules.push((handle.ok_or(NetlinkError::Garbled("a rule without its handle"))?, comment));
            }
            Ok(())
        })?;
        Ok(rules)
    }

    /// A digest of `table`'s chains and rules as the kernel holds them, without their counters: equal digests
    /// mean the same chains with the same rules in the same order (a rule written again gets a new handle). One
    /// dump of each, which costs the number of rules, not of set elements.
    pub fn rules_digest(&self, table: &str) -> Result<[u8; 32], NetlinkError> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut conn = Connection::open(self.netns.as_deref())?;
        for (kind, table_attr) in [(NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE), (NFT_MSG_GETRULE, NFTA_RULE_TABLE)] {
            let mut msg = Message::new(kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0);
            msg.string(table_attr, table);
            conn.dump(msg, |payload| {
                if attributes(payload).any(|(t, v)| t == table_attr && c_string(v).as_deref() == Some(table)) {
                    hash_object(&mut hasher, kind, payload);
                }
                Ok(())
            })?;
        }
        Ok(hasher.finalize().into())
    }

    /// (family, name) of every table in the namespace, of every family: one dump of the tables alone, which costs
    /// nothing of their chains, rules or sets.
    pub fn tables(&self) -> Result<Vec<(u8, String)>, NetlinkError> {
        let msg = Message::new(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0).family(NFPROTO_UNSPEC);
        let mut tables = Vec::new();
        Connection::open(self.netns.as_deref())?.dump_families(msg, |family, payload| {
            let name = attributes(payload).find(|(t, _)| *t == NFTA_TABLE_NAME).and_then(|(_, v)| c_string(v));
            tables.push((family, name.ok_or(NetlinkError::Garbled("a table without its name"))?));
            Ok(true)
        })?;
        Ok(tables)
    }

    /// The chains of `table` in `family` with their hook number and devices (none for a chain without a hook).
    pub fn chain_hooks(&self, family: u8, table: &str) -> Result<Vec<ChainHook>, NetlinkError> {
        let mut msg = Message::new(NFT_MSG_GETCHAIN, NLM_F_REQUEST | NLM_F_DUMP, 1, 0).family(family);
        msg.string(NFTA_CHAIN_TABLE, table);
        let mut chains = Vec::new();
        Connection::open(self.netns.as_deref())?.dump_families(msg, |listed_family, payload| {
            let mut chain = ChainHook::default();
            let mut in_table = false;
            for (t, v) in attributes(payload) {
                match t {
                    NFTA_CHAIN_TABLE => in_table = c_string(v).as_deref() == Some(table),
                    NFTA_CHAIN_NAME => chain.name = c_string(v).unwrap_or_default(),
                    NFTA_CHAIN_HOOK => {
                        for (h, hv) in attributes(v) {
                            match h {
                                NFTA_HOOK_HOOKNUM => chain.hook = be_u32(hv),
                                NFTA_HOOK_DEV if chain.devices.is_empty() => chain.devices.extend(c_string(hv)),
                                NFTA_HOOK_DEVS => {
                                    chain.devices = attributes(hv)
                                        .filter(|(d, _)| *d == NFTA_DEVICE_NAME)
                                        .filter_map(|(_, name)| c_string(name))
                                        .collect();
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Old kernels ignore the table filter of a dump.
            if in_table && listed_family == family {
                chains.push(chain);
            }
            Ok(true)
        })?;
        Ok(chains)
    }

    /// Subscribes to the namespace's nf_tables notifications: every committed change, whoever made it.
    pub fn monitor(&self) -> Result<Monitor, NetlinkError> {
        let fd = match self.netns.as_deref() {
            None => Connection::subscribed()?,
            Some(name) => in_namespace(name, Connection::subscribed)?,
        };
        Ok(Monitor { conn: Connection { fd, buf: vec![0; 1 << 16] } })
    }

    /// Commits `changes` to sets of `table` as one transaction: every change or none. A refused change is
    /// [`NetlinkError::Refused`] with its index in `changes`.
    pub fn commit(&self, table: &str, changes: &[ElementChange]) -> Result<(), NetlinkError> {
        self.batch(table, &steps_of(changes), true)
    }

    /// Commits `steps` to `table` as one transaction: every step or none. A refused step is
    /// [`NetlinkError::Refused`] with its index in `steps`.
    pub fn commit_steps(&self, table: &str, steps: &[BatchStep]) -> Result<(), NetlinkError> {
        self.batch(table, steps, true)
    }

    /// Has the kernel check `changes` as [`Netlink::commit`] would make them, and commit nothing: the batch is sent
    /// without its end, so the kernel validates every message and then aborts the transaction.
    pub fn check(&self, table: &str, changes: &[ElementChange]) -> Result<(), NetlinkError> {
        self.batch(table, &steps_of(changes), false)
    }

    fn batch(&self, table: &str, steps: &[BatchStep], commit: bool) -> Result<(), NetlinkError> {
        let mut conn = Connection::open(self.netns.as_deref())?;
        let mut batch = Message::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES).framing();
        batch.finish();
        let mut out = batch.buf;
        let mut owner = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let change = match step {
                BatchStep::Elements(change) => change,
                BatchStep::DeleteSet(name) => {
                    let mut msg = Message::new(NFT_MSG_DELSET, NLM_F_REQUEST | NLM_F_ACK, seq_of(owner.len()), 0);
                    msg.string(NFTA_SET_TABLE, table);
                    msg.string(NFTA_SET_NAME, name);
                    msg.finish();
                    out.extend_from_slice(&msg.buf);
                    owner.push(index);
                    continue;
                }
                BatchStep::MakeSet(set) => {
                    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
                    let mut msg = Message::new(NFT_MSG_NEWSET, flags, seq_of(owner.len()), 0);
                    set_definition(&mut msg, table, set, u32::try_from(index).unwrap_or(u32::MAX));
                    msg.finish();
                    out.extend_from_slice(&msg.buf);
                    owner.push(index);
                    continue;
                }
            };
            for chunk in chunks_fitting(&change.elements) {
                let (kind, flags) = if change.delete {
                    (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
                } else {
                    (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
                };
                let mut msg = Message::new(kind, flags, seq_of(owner.len()), 0);
                let keys: Vec<Vec<u8>> = chunk.iter().map(|e| e.key.clone()).collect();
                element_list(&mut msg, table, &change.set, &keys, |msg, i| {
                    if let Some(e) = chunk.get(i) {
                        element_extras(msg, e);
                    }
                });
                msg.finish();
                out.extend_from_slice(&msg.buf);
                owner.push(index);
            }
        }
        if commit {
            let mut end =
                Message::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq_of(owner.len()), NFNL_SUBSYS_NFTABLES).framing();
            end.finish();
            out.extend_from_slice(&end.buf);
        }
        conn.allow_sending(out.len())?;
        conn.send(&out)?;
        let mut acked = 0;
        let mut refused = None;
        conn.receive(|reply| {
            if let Reply::Error { seq, errno } = reply {
                acked += 1;
                if errno != 0 && refused.is_none() {
                    let index = index_of(seq).and_then(|m| owner.get(m)).copied().unwrap_or(0);
                    refused = Some(NetlinkError::Refused { index, errno });
                }
            }
            Ok(if acked >= owner.len() || refused.is_some() { Flow::Stop } else { Flow::More })
        })?;
        refused.map_or(Ok(()), Err)
    }
}

/// Feeds one chain or rule to the digest: every attribute, except a chain's counters and the data of a rule's
/// `counter` expressions (they change with every packet).
fn hash_object(hasher: &mut sha2::Sha256, kind: u16, payload: &[u8]) {
    use sha2::Digest;
    hasher.update(kind.to_be_bytes());
    for (t, v) in attributes(payload) {
        match (kind, t) {
            (NFT_MSG_GETCHAIN, NFTA_CHAIN_COUNTERS) => continue,
            (NFT_MSG_GETRULE, NFTA_RULE_EXPRESSIONS) => {
                hasher.update(t.to_be_bytes());
                for (_, expression) in attributes(v) {
                    let name = attributes(expression).find(|(t, _)| *t == NFTA_EXPR_NAME).map(|(_, n)| n);
                    hasher.update(name.unwrap_or_default());
                    if name.and_then(c_string).as_deref() != Some("counter") {
                        let data = attributes(expression).find(|(t, _)| *t == NFTA_EXPR_DATA).map(|(_, d)| d);
                        hasher.update(data.unwrap_or_default());
                    }
                }
                continue;
            }
            _ => {}
        }
        hasher.update(t.to_be_bytes());
        hasher.update((v.len() as u32).to_be_bytes());
        hasher.update(v);
    }
}

fn steps_of(changes: &[ElementChange]) -> Vec<BatchStep> {
    changes.iter().cloned().map(BatchStep::Elements).collect()
}

/// The attributes of a `NEWSET` for `set`, as libnftnl writes them for nft (so that `nft list` shows the set as if
/// nft had made it): key type and length, flags, the key's byte order and the comment in the user data.
fn set_definition(msg: &mut Message, table: &str, set: &NewSet, id: u32) {
    msg.string(NFTA_SET_TABLE, table);
    msg.string(NFTA_SET_NAME, &set.name);
    let flags = if set.interval { NFT_SET_INTERVAL } else { 0 } | if set.timeout { NFT_SET_TIMEOUT } else { 0 };
    msg.attr(NFTA_SET_FLAGS, &flags.to_be_bytes());
    let (key_type, key_len) = if set.ipv6 { (TYPE_IP6ADDR, 16u32) } else { (TYPE_IPADDR, 4u32) };
    msg.attr(NFTA_SET_KEY_TYPE, &key_type.to_be_bytes());
    msg.attr(NFTA_SET_KEY_LEN, &key_len.to_be_bytes());
    msg.attr(NFTA_SET_ID, &id.to_be_bytes());
    let mut udata = vec![UDATA_SET_KEYBYTEORDER, 4];
    udata.extend_from_slice(&BYTEORDER_BIG_ENDIAN.to_ne_bytes());
    if let Some(comment) = &set.comment {
        push_udata_text(&mut udata, UDATA_SET_COMMENT, comment);
    }
    msg.attr(NFTA_SET_USERDATA, &udata);
}

/// A libnftnl user-data TLV of text: type, length (with the terminating NUL), the text cut to fit.
fn push_udata_text(udata: &mut Vec<u8>, kind: u8, text: &str) {
    let text = text.as_bytes();
    let len = u8::try_from(text.len() + 1).unwrap_or(u8::MAX);
    udata.extend_from_slice(&[kind, len]);
    udata.extend_from_slice(text.get(..usize::from(len) - 1).unwrap_or(text));
    udata.push(0);
}

/// Sequence numbers start at 1 (0 is the batch's framing).
fn seq_of(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX - 1).saturating_add(1)
}

fn index_of(seq: u32) -> Option<usize> {
    usize::try_from(seq.checked_sub(1)?).ok()
}

/// Splits elements into runs whose nested list fits one attribute.
fn chunks_fitting(elements: &[NewElement]) -> Vec<&[NewElement]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, e) in elements.iter().enumerate() {
        let cost = 40 + e.key.len() + e.comment.as_ref().map_or(0, |c| c.len() + 8);
        if size + cost > MAX_NEST && i > start {
            out.extend(elements.get(start..i));
            start = i;
            size = 0;
        }
        size += cost;
    }
    if start < elements.len() {
        out.extend(elements.get(start..));
    }
    out
}

/// The list of elements of a set, each with its key and what `extras` adds to element `i`.
fn element_list(
    msg: &mut Message,
    table: &str,
    set: &str,
    keys: &[Vec<u8>],
    mut extras: impl FnMut(&mut Message, usize),
) {
    msg.string(NFTA_SET_ELEM_LIST_TABLE, table);
    msg.string(NFTA_SET_ELEM_LIST_SET, set);
    let list = msg.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    for (i, key) in keys.iter().enumerate() {
        let element = msg.nest(NFTA_LIST_ELEM);
        let key_attr = msg.nest(NFTA_SET_ELEM_KEY);
        msg.attr(NFTA_DATA_VALUE, key);
        msg.end_nest(key_attr);
        extras(msg, i);
        msg.end_nest(element);
    }
    msg.end_nest(list);
}

fn element_extras(msg: &mut Message, e: &NewElement) {
    if e.interval_end {
        msg.attr(NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
    }
    if let Some(ms) = e.timeout_ms {
        msg.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
    }
    if e.comment.is_some() || e.open_interval {
        // Comments are at most 128 bytes.
        let mut udata = Vec::new();
        if let Some(comment) = &e.comment {
            push_udata_text(&mut udata, UDATA_COMMENT, comment);
        }
        if e.open_interval {
            udata.extend_from_slice(&[UDATA_SET_ELEM_FLAGS, 4]);
            udata.extend_from_slice(&SET_ELEM_F_INTERVAL_OPEN.to_ne_bytes());
        }
        msg.attr(NFTA_SET_ELEM_USERDATA, &udata);
    }
}

/// The elements of a `NEWSETELEM` message (a lookup's answer, or one message of a dump).
fn elements(payload: &[u8]) -> impl Iterator<Item = KernelElement> + '_ {
    attributes(payload)
        .filter(|(t, _)| *t == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|(_, list)| attributes(list))
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .filter_map(|(_, element)| {
            let mut out = KernelElement { key: Vec::new(), timeout_ms: None, expires_ms: None, comment: None };
            for (t, v) in attributes(element) {
                match t {
                    NFTA_SET_ELEM_KEY => {
                        out.key = attributes(v).find(|(t, _)| *t == NFTA_DATA_VALUE).map(|(_, k)| k.to_vec())?;
                    }
                    NFTA_SET_ELEM_TIMEOUT => out.timeout_ms = be_u64(v),
                    NFTA_SET_ELEM_EXPIRATION => out.expires_ms = be_u64(v),
                    NFTA_SET_ELEM_USERDATA => out.comment = udata_comment(v),
                    _ => {}
                }
            }
            Some(out)
        })
}

/// The comment in libnftnl user data.
fn udata_comment(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == UDATA_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        udata = rest.get(usize::from(*len)..)?;
    }
    None
}

fn c_string(v: &[u8]) -> Option<String> {
    let text = v.strip_suffix(&[0]).unwrap_or(v);
    std::str::from_utf8(text).ok().map(str::to_string)
}

fn be_u32(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v.get(..4)?).ok().map(u32::from_be_bytes)
}

fn be_u64(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v.get(..8)?).ok().map(u64::from_be_bytes)
}

/// The attributes of a payload (after its 4-byte `nfgenmsg` for a message, or a nested attribute's value), with
/// the nested and byte-order flags masked off their types.
fn attributes(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*rest.first()?, *rest.get(1)?]));
        let kind = u16::from_ne_bytes([*rest.get(2)?, *rest.get(3)?]) & NLA_TYPE_MASK;
        let value = rest.get(4..len)?;
        rest = rest.get(align(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// One netlink message being written.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// An nf_tables message (`kind` within the nftables subsystem) of family `inet`.
    fn new(kind: u16, flags: u16, seq: u32, res_id: u16) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[NFPROTO_INET, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message { buf }
    }

    /// The same message for another address family (`nfgen_family`).
    fn family(mut self, family: u8) -> Self {
        self.buf[16] = family;
        self
    }

    /// A batch begin or end: a message of nfnetlink itself, not of the nftables subsystem.
    fn framing(mut self) -> Self {
        let kind = u16::from_ne_bytes([self.buf[4], self.buf[5]]) & 0xff;
        self.buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        self.buf[16] = 0; // AF_UNSPEC
        self
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    fn nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end_nest(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(&mut self) {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// What the kernel sent: a message of data, an acknowledgement or error (`errno` 0 is a success), or the end of a
/// dump.
enum Reply<'a> {
    Data { seq: u32, family: u8, payload: &'a [u8] },
    Error { seq: u32, errno: i32 },
    Done,
}

enum Flow {
    More,
    Stop,
}

/// A netlink socket of the netfilter family, in the wanted namespace.
struct Connection {
    fd: OwnedFd,
    buf: Vec<u8>,
}

/// Runs `f` on a thread that entered network namespace `name` (`/run/netns/NAME`): a socket `f` makes stays in
/// that namespace, and the process does not move.
pub fn in_namespace<T: Send>(name: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread entering the namespace failed")))
    })
}

impl Connection {
    fn open(netns: Option<&str>) -> Result<Self, NetlinkError> {
        let fd = match netns {
            None => Self::socket()?,
            Some(name) => in_namespace(name, Self::socket)?,
        };
        Ok(Connection { fd, buf: vec![0; RECV_BUFFER.min(1 << 20)] })
    }

    fn socket() -> io::Result<OwnedFd> {
        let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, Some(netlink::NETFILTER))?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(Duration::from_secs(10)))?;
        // Root may raise the buffer beyond the system's default maximum; others get what the system allows.
        if sockopt::set_socket_recv_buffer_size_force(&fd, RECV_BUFFER).is_err() {
            sockopt::set_socket_recv_buffer_size(&fd, RECV_BUFFER)?;
        }
        Ok(fd)
    }

    /// A socket that receives the nf_tables notifications, with a buffer for the bursts of a bulk change (one
    /// notification per element).
    fn subscribed() -> io::Result<OwnedFd> {
        let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, Some(netlink::NETFILTER))?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1 << (NFNLGRP_NFTABLES - 1)))?;
        if sockopt::set_socket_recv_buffer_size_force(&fd, 8 * RECV_BUFFER).is_err() {
            sockopt::set_socket_recv_buffer_size(&fd, 8 * RECV_BUFFER)?;
        }
        Ok(fd)
    }

    /// Lets one send carry `len` bytes: a batch must reach the kernel in one message.
    fn allow_sending(&self, len: usize) -> Result<(), NetlinkError> {
        let wanted = len + 4096;
        if sockopt::set_socket_send_buffer_size_force(&self.fd, wanted).is_err() {
            sockopt::set_socket_send_buffer_size(&self.fd, wanted)?;
        }
        Ok(())
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NetlinkError> {
        let sent = rustix::net::send(&self.fd, bytes, SendFlags::empty())?;
        if sent != bytes.len() {
            return Err(NetlinkError::Garbled("the kernel took part of a message"));
        }
        Ok(())
    }

    /// Sends a dump request and hands every message of the answer to `each`, until the dump is done.
    fn dump(
        &mut self,
        request: Message,
        mut each: impl FnMut(&[u8]) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        self.dump_until(request, |payload| each(payload).map(|()| true)).map(|_| ())
    }

    /// A dump whose `each` may stop it early (by answering false); true when it ran to its end. The socket is
    /// then dropped with the rest of the dump unread, which the kernel discards.
    fn dump_until(
        &mut self,
        request: Message,
        mut each: impl FnMut(&[u8]) -> Result<bool, NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        self.dump_families(request, |_, payload| each(payload))
    }

    /// [`Connection::dump_until`] with the family of every message (`nfgen_family`): a dump of every family's
    /// tables tells them apart by it.
    fn dump_families(
        &mut self,
        mut request: Message,
        mut each: impl FnMut(u8, &[u8]) -> Result<bool, NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        request.finish();
        self.send(&request.buf)?;
        let mut complete = false;
        self.receive(|reply| match reply {
            Reply::Data { family, payload, .. } => Ok(if each(family, payload)? { Flow::More } else { Flow::Stop }),
            Reply::Done => {
                complete = true;
                Ok(Flow::Stop)
            }
            Reply::Error { errno: 0, .. } => Ok(Flow::More),
            Reply::Error { errno, .. } => Err(NetlinkError::Refused { index: 0, errno }),
        })?;
        Ok(complete)
    }

    /// Reads replies until `each` says stop.
    fn receive(&mut self, mut each: impl FnMut(Reply<'_>) -> Result<Flow, NetlinkError>) -> Result<(), NetlinkError> {
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::empty())?;
            let mut rest = self.buf.get(..n).unwrap_or(&[]);
            while rest.len() >= 16 {
                let word = |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
                let len = usize::try_from(word(0)).unwrap_or(usize::MAX);
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = word(8);
                let body = rest.get(16..len).ok_or(NetlinkError::Garbled("a message longer than its datagram"))?;
                let reply = match kind {
                    NLMSG_ERROR => {
                        let code = body.get(..4).ok_or(NetlinkError::Garbled("an error message without its code"))?;
                        let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                        Reply::Error { seq, errno: -code }
                    }
                    NLMSG_DONE => Reply::Done,
                    _ => Reply::Data {
                        seq,
                        family: body.first().copied().unwrap_or_default(),
                        payload: body.get(4..).unwrap_or(&[]),
                    },
                };
                if let Flow::Stop = each(reply)? {
                    return Ok(());
                }
                rest = rest.get(align(len)..).unwrap_or(&[]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_a_message() {
        let mut msg = Message::new(NFT_MSG_NEWSETELEM, NLM_F_REQUEST, 1, 0);
        let e = NewElement::key(vec![192, 0, 2, 7], Some(60_000), Some("x=1 |why".into()));
        element_list(&mut msg, "portcullis", "BLOCK_h4", std::slice::from_ref(&e.key), |m, _| element_extras(m, &e));
        msg.finish();
        let payload = &msg.buf[20..];
        let found: Vec<KernelElement> = elements(payload).collect();
        assert_eq!(
            found,
            vec![KernelElement {
                key: vec![192, 0, 2, 7],
                timeout_ms: Some(60_000),
                expires_ms: None,
                comment: Some("x=1 |why".into())
            }]
        );
        let names: Vec<String> = attributes(payload)
            .filter(|(t, _)| *t != NFTA_SET_ELEM_LIST_ELEMENTS)
            .filter_map(|(_, v)| c_string(v))
            .collect();
        assert_eq!(names, ["portcullis", "BLOCK_h4"]);
    }

    #[test]
    fn garbage_never_panics_the_readers() {
        for data in [&[][..], &[1], &[8, 0, 1, 0], &[255, 255, 1, 0, 1, 2], &[4, 0, 0x83, 0x80, 9, 9, 9, 9]] {
            let _ = attributes(data).count();
            let _ = elements(data).count();
            let _ = udata_comment(data);
        }
        assert_eq!(udata_comment(&[1, 1, 9, 0, 3, b'a', b'b', 0]), Some("ab".into()));
        assert_eq!(udata_comment(&[0, 200, b'a']), None);
    }

    #[test]
    fn big_element_lists_are_cut_to_fit_an_attribute() {
        let e = NewElement::key(vec![0; 16], Some(1), Some("c".repeat(100)));
        let many = vec![e; 2_000];
        let chunks = chunks_fitting(&many);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 2_000);
        assert!(chunks.iter().all(|c| c.len() * (40 + 16 + 108) <= MAX_NEST));
    }

    #[test]
    fn keys_are_network_order_addresses_and_host_order_marks() {
        assert_eq!(address_key("192.0.2.7".parse().unwrap()), vec![192, 0, 2, 7]);
        assert_eq!(key_address(&[192, 0, 2, 7]), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(key_address(&[1, 2, 3]), None);
        assert_eq!(mark_key(5), 5u32.to_ne_bytes().to_vec());
    }
}
