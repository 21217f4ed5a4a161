//! What Portcullis writes into nft comments, and reads back: a rule's stable id and the model fields that have
//! no nft expression (action of a disabled rule, owner tag, pause deadline, times), an alias' kind and owner, an
//! entry's exact expiry and creation time, and the free text (description, reason).
//!
//! nft keeps at most 128 bytes per comment. Text that does not fit is kept in the Portcullis store under the
//! SHA-256 of its content and the comment carries `#<hash>`: content-addressed, so 100,000 blocks with one
//! reason are one store row, and a text written before a failed batch is harmless.
//!
//! Rule: `pc1 id=17639 a=b e=1 m=block_list p=1763918400123 c=1763918400 u=1763918400 |Text`
//! Alias: `pc1 n=PORTCULLIS_BLOCK k=network m=block_list |Text`
//! Element: `x=1763918400123 c=1763918400123 |Reason`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use portcullis_core::firewall::{BackendError, ErrorCode};
use portcullis_core::model::{Action, AliasKind, IpVersion, Timestamp};
use portcullis_store::Store;
use sha2::{Digest, Sha256};

/// nft's limit on a comment, in bytes.
pub const MAX_COMMENT: usize = 128;
/// The marker of comments Portcullis wrote on rules and sets.
pub const MARK: &str = "pc1";
/// The marker of system rules Portcullis adds around the model's rules (state tracking, default deny).
pub const SYSTEM_MARK: &str = "pc-sys";

/// The comment fields of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    pub rule_id: String,
    pub action: Action,
    pub enabled: bool,
    /// Kept here because a disabled rule has no `log` statement (it would log packets it no longer decides).
    pub log: bool,
    /// The IP version as written: a rule for both families whose addresses only match IPv4 (an IPv4 literal
    /// beside an alias) enforces the same as an IPv4 rule, and reads back as what was asked for.
    pub ip_version: IpVersion,
    pub managed: Option<String>,
    pub paused_until: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// The comment fields of an alias (kept on a rule of the unhooked `aliases` chain, because nft 1.0.6 drops
/// set comments given in JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMeta {
    pub name: String,
    pub kind: AliasKind,
    pub managed: Option<String>,
}

/// The comment fields of a set element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryMeta {
    pub expires_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
}

/// Free text too long for a comment, kept in the store by content hash.
pub struct TextStore {
    store: Arc<Store>,
    cache: Mutex<HashMap<String, String>>,
}

fn store_error(e: portcullis_store::StoreError) -> BackendError {
    BackendError::new(ErrorCode::InternalError, format!("store: {e}"))
        .with_hint("check that the data directory is writable and not full")
}

fn text_key(hash: &str) -> String {
    format!("nftables-text:{hash}")
}

fn text_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl TextStore {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store, cache: Mutex::new(HashMap::new()) }
    }

    /// `head` followed by the text, inline when it fits and by hash otherwise; the hash's text is stored first.
    pub fn compose(&self, head: &str, text: &str) -> Result<String, BackendError> {
        let inline = if head.is_empty() { format!("|{text}") } else { format!("{head} |{text}") };
        if inline.len() <= MAX_COMMENT {
            return Ok(inline);
        }
        let hash = text_hash(text);
        let known = self.cache.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&hash);
        if !known {
            self.store.meta_set(&text_key(&hash), text).map_err(store_error)?;
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(hash.clone(), text.to_string());
        }
        let by_hash = if head.is_empty() { format!("#{hash}") } else { format!("{head} #{hash}") };
        if by_hash.len() > MAX_COMMENT {
            return Err(BackendError::new(ErrorCode::InternalError, format!("nft comment too long: {by_hash}")));
        }
        Ok(by_hash)
    }

    /// Splits a comment into its head and its text (inline or looked up by hash).
    pub fn split<'c>(&self, comment: &'c str) -> Result<(&'c str, String), BackendError> {
        if let Some((head, text)) = comment.split_once('|') {
            return Ok((head.trim_end(), text.to_string()));
        }
        let Some((head, hash)) = comment.rsplit_once('#') else { return Ok((comment.trim_end(), String::new())) };
        let hash = hash.trim();
        if let Some(text) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(hash) {
            return Ok((head.trim_end(), text.clone()));
        }
        let text = self.store.meta_get(&text_key(hash)).map_err(store_error)?.ok_or_else(|| {
            BackendError::new(
                ErrorCode::UnexpectedResponse,
                format!("nft comment refers to text #{hash}, which the Portcullis store does not hold"),
            )
            .with_hint("the table was written with another data directory; point Portcullis at that one")
        })?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(hash.to_string(), text.clone());
        Ok((head.trim_end(), text))
    }
}

fn action_letter(a: Action) -> &'static str {
    match a {
        Action::Pass => "p",
        Action::Block => "b",
        Action::Reject => "r",
    }
}

fn millis(t: Timestamp) -> String {
    t.timestamp_millis().to_string()
}

fn from_millis(s: &str) -> Option<Timestamp> {
    Utc.timestamp_millis_opt(s.parse().ok()?).single()
}

fn from_secs(s: &str) -> Option<Timestamp> {
    DateTime::from_timestamp(s.parse().ok()?, 0)
}

/// Key=value pairs of a comment head.
fn fields(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.split_whitespace().filter_map(|t| t.split_once('='))
}

impl RuleMeta {
    pub fn head(&self) -> String {
        let mut s = format!(
            "{MARK} id={} a={} e={} l={}",
            self.rule_id,
            action_letter(self.action),
            u8::from(self.enabled),
            u8::from(self.log)
        );
        match self.ip_version {
            IpVersion::Inet => s.push_str(" v=4"),
            IpVersion::Inet6 => s.push_str(" v=6"),
            IpVersion::Inet46 => {}
        }
        if let Some(m) = &self.managed {
            s.push_str(&format!(" m={m}"));
        }
        if let Some(p) = self.paused_until {
            s.push_str(&format!(" p={}", millis(p)));
        }
        if let Some(c) = self.created_at {
            s.push_str(&format!(" c={}", c.timestamp()));
        }
        if let Some(u) = self.updated_at {
            s.push_str(&format!(" u={}", u.timestamp()));
        }
        s
    }

    /// `None` when the head is not one Portcullis wrote.
    pub fn parse(head: &str) -> Option<Self> {
        if head.split_whitespace().next() != Some(MARK) {
            return None;
        }
        let mut meta = RuleMeta {
            rule_id: String::new(),
            action: Action::Pass,
            enabled: true,
            log: false,
            ip_version: IpVersion::Inet46,
            managed: None,
            paused_until: None,
            created_at: None,
            updated_at: None,
        };
        for (k, v) in fields(head) {
            match k {
                "id" => meta.rule_id = v.to_string(),
                "a" => {
                    meta.action = match v {
                        "b" => Action::Block,
                        "r" => Action::Reject,
                        _ => Action::Pass,
                    }
                }
                "e" => meta.enabled = v == "1",
                "l" => meta.log = v == "1",
                "v" => meta.ip_version = if v == "6" { IpVersion::Inet6 } else { IpVersion::Inet },
                "m" => meta.managed = Some(v.to_string()),
                "p" => meta.paused_until = from_millis(v),
                "c" => meta.created_at = from_secs(v),
                "u" => meta.updated_at = from_secs(v),
                _ => {}
            }
        }
        (!meta.rule_id.is_empty()).then_some(meta)
    }
}

impl SetMeta {
    pub fn head(&self) -> String {
        let kind = match self.kind {
            AliasKind::Host => "host",
            AliasKind::Network => "network",
            AliasKind::Port => "port",
        };
        let mut s = format!("{MARK} n={} k={kind}", self.name);
        if let Some(m) = &self.managed {
            s.push_str(&format!(" m={m}"));
        }
        s
    }

    pub fn parse(head: &str) -> Option<Self> {
        if head.split_whitespace().next() != Some(MARK) {
            return None;
        }
        let mut meta = SetMeta { name: String::new(), kind: AliasKind::Network, managed: None };
        for (k, v) in fields(head) {
            match (k, v) {
                ("n", n) => meta.name = n.to_string(),
                ("k", "host") => meta.kind = AliasKind::Host,
                ("k", "port") => meta.kind = AliasKind::Port,
                ("m", m) => meta.managed = Some(m.to_string()),
                _ => {}
            }
        }
        (!meta.name.is_empty()).then_some(meta)
    }
}

impl EntryMeta {
    pub fn head(&self) -> String {
        let mut parts = Vec::new();
        if let Some(x) = self.expires_at {
            parts.push(format!("x={}", millis(x)));
        }
        if let Some(c) = self.created_at {
            parts.push(format!("c={}", millis(c)));
        }
        parts.join(" ")
    }

    pub fn parse(head: &str) -> Self {
        let mut meta = EntryMeta::default();
        for (k, v) in fields(head) {
            match k {
                "x" => meta.expires_at = from_millis(v),
                "c" => meta.created_at = from_millis(v),
                _ => {}
            }
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> TextStore {
        TextStore::new(Arc::new(Store::open_in_memory().unwrap()))
    }

    #[test]
    fn rule_meta_round_trips_inline_and_by_hash() {
        let t = texts();
        let meta = RuleMeta {
            rule_id: "17639184000".into(),
            action: Action::Block,
            enabled: false,
            log: true,
            ip_version: IpVersion::Inet,
            managed: Some("block_list".into()),
            paused_until: from_millis("1763918400123"),
            created_at: from_secs("1763918400"),
            updated_at: from_secs("1763918401"),
        };
        for text in ["short", &"a long description with spaces ".repeat(8)] {
            let comment = t.compose(&meta.head(), text).unwrap();
            assert!(comment.len() <= MAX_COMMENT, "{comment}");
            let (head, back) = t.split(&comment).unwrap();
            assert_eq!(back, text);
            assert_eq!(RuleMeta::parse(head).unwrap(), meta);
        }
    }

    #[test]
    fn entries_keep_exact_times_and_foreign_comments_are_not_ours() {
        let t = texts();
        let meta = EntryMeta { expires_at: from_millis("1763918400123"), created_at: from_millis("1763918000999") };
        let comment = t.compose(&meta.head(), "ssh brute force").unwrap();
        let (head, reason) = t.split(&comment).unwrap();
        assert_eq!((EntryMeta::parse(head), reason.as_str()), (meta, "ssh brute force"));
        assert!(RuleMeta::parse("allow web").is_none());
        assert!(SetMeta::parse("whatever").is_none());
    }

    #[test]
    fn a_hash_the_store_does_not_know_is_an_error() {
        let err = texts().split("pc1 id=1 #0011223344556677").unwrap_err();
        assert_eq!(err.code, ErrorCode::UnexpectedResponse);
    }
}
