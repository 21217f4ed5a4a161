//! Human approval the model cannot fake. A call that needs approval is bound to a digest of its exact
//! arguments; a person grants it outside the model's reach (`portcullis approve ID`, or an MCP elicitation the
//! client shows to its user); the grant is consumed by one call with the same digest before it expires.

use chrono::TimeDelta;
use portcullis_core::firewall::ErrorCode;
use portcullis_core::model::Timestamp;
use portcullis_store::{Approval, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::CallError;

/// Arguments that do not change what a call does and so are not part of its digest.
const NOT_BOUND: &[&str] = &["dry_run"];

/// SHA-256 over tool, target and the arguments in canonical form (keys sorted by serde_json's map).
pub fn call_digest(tool: &str, target: &str, args: &Value) -> String {
    let bound = match args {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| !NOT_BOUND.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    };
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update(b"\n");
    h.update(target.as_bytes());
    h.update(b"\n");
    h.update(bound.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// What the pipeline knows about a call that needs a person's approval.
pub struct ApprovalNeed<'a> {
    pub principal: &'a str,
    pub tool: &'a str,
    pub target: &'a str,
    pub args: &'a Value,
    pub summary: &'a str,
    pub risk_score: u8,
    pub reason: &'a str,
    pub now: Timestamp,
    pub ttl: TimeDelta,
}

/// Consumes a matching grant, or records (or finds) the pending request and refuses the call.
pub fn require(store: &Store, need: &ApprovalNeed<'_>) -> Result<Approval, CallError> {
    let digest = call_digest(need.tool, need.target, need.args);
    let store_err = |e: portcullis_store::StoreError| CallError::internal(format!("approval store: {e}"));
    if let Some(granted) = store.approval_consume(need.principal, &digest, need.now).map_err(store_err)? {
        return Ok(granted);
    }
    let request = Approval {
        id: short_id(),
        digest,
        principal: need.principal.to_string(),
        tool: need.tool.to_string(),
        target: need.target.to_string(),
        arguments: crate::redact(need.args),
        summary: need.summary.to_string(),
        risk_score: need.risk_score,
        reason: need.reason.to_string(),
        created_at: need.now,
        expires_at: need.now + need.ttl,
        status: "pending".into(),
        decided_by: None,
    };
    let pending = store.approval_request(&request).map_err(store_err)?;
    let mut err = CallError::new(
        ErrorCode::ApprovalRequired,
        format!("{}; approval {} is pending until {}", need.reason, pending.id, pending.expires_at.to_rfc3339()),
    )
    .with_hint(format!(
        "a person must approve it: `portcullis approve {}`; then repeat the call with exactly the same arguments \
         (approvals are single-use and bound to those arguments)",
        pending.id
    ));
    err.approval_id = Some(pending.id);
    Err(err)
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_binds_every_argument_but_dry_run() {
        let a = call_digest("block_ip_address", "lab", &json!({"ip_address": "192.0.2.1", "duration": "1h"}));
        let same = call_digest(
            "block_ip_address",
            "lab",
            &json!({"duration": "1h", "ip_address": "192.0.2.1", "dry_run": true}),
        );
        let other = call_digest("block_ip_address", "lab", &json!({"ip_address": "192.0.2.2", "duration": "1h"}));
        let confirm = call_digest(
            "block_ip_address",
            "lab",
            &json!({"ip_address": "192.0.2.1", "duration": "1h", "confirm": true}),
        );
        assert_eq!(a, same);
        assert_ne!(a, other);
        assert_ne!(a, confirm);
        assert_ne!(a, call_digest("block_ip_address", "fw2", &json!({"ip_address": "192.0.2.1", "duration": "1h"})));
    }
}
