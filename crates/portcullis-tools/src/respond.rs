//! The opt-in automated response (`logs.auto_response`): each round analyses every target's recent logs with
//! `analyze_threats` and blocks the sources whose threat score reaches the configured minimum, for the duration
//! the score calls for, with `block_ip_address`. Both are ordinary calls through [`ToolService::call`] as the
//! configured principal, so policy, caps, protected ranges, rate limits, risk, approval and audit all apply; every
//! kind of threat (filterlog detections, Suricata `ids_alert` groups, rate-limited sources) takes this one path.

use std::collections::HashSet;

use portcullis_guard::CallContext;
use serde::Serialize;

use crate::ToolService;

/// What a round looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoResponse {
    /// The window analysed (`1h`).
    pub timeframe: String,
    /// Block sources whose threat score is at least this.
    pub min_score: u8,
}

/// The sources already acted on, per target, so that a round does not block again what an earlier one blocked (or
/// was refused); bounded.
#[derive(Debug, Default)]
pub struct AutoResponseMemory(HashSet<(String, String)>);

/// The most sources remembered; past it the memory starts again (a source blocked again only has its block
/// renewed).
const MEMORY: usize = 10_000;

/// One block a round asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoBlock {
    pub target: String,
    pub ip: String,
    pub duration: String,
    pub threat_score: u64,
    /// The threat's type (`brute_force`, `ids_alert`, ...).
    pub kind: String,
    /// `Err` with the refusal's code and message when the pipeline refused it.
    pub outcome: Result<(), String>,
}

impl ToolService {
    /// `analyze_threats` over each target's last `timeframe`, as `ctx`'s principal: the threats found, by target
    /// (a target whose analysis failed is left out, the failure logged under `who`).
    pub(crate) async fn threats_per_target(
        &self,
        ctx: &CallContext,
        timeframe: &str,
        who: &str,
    ) -> Vec<(String, Vec<serde_json::Value>)> {
        let mut out = Vec::new();
        for target in self.target_names() {
            let args = serde_json::json!({"timeframe": timeframe, "target": target});
            match self.call(ctx, "analyze_threats", args).await {
                Ok(mut found) => {
                    let threats = match found["data"].take() {
                        serde_json::Value::Array(threats) => threats,
                        _ => Vec::new(),
                    };
                    out.push((target, threats));
                }
                Err(e) => tracing::debug!(target, "{who}: no analysis: {}", e.message),
            }
        }
        out
    }

    /// One round of the automated response over every target, as `ctx`'s principal.
    pub async fn auto_response_round(
        &self,
        ctx: &CallContext,
        cfg: &AutoResponse,
        memory: &mut AutoResponseMemory,
    ) -> Vec<AutoBlock> {
        let mut out = Vec::new();
        for (target, threats) in self.threats_per_target(ctx, &cfg.timeframe, "automated response").await {
            for t in &threats {
                let score = t["threat_score"].as_u64().unwrap_or(0);
                let (Some(ip), Some(duration)) = (t["source_ip"].as_str(), t["recommended_block_duration"].as_str())
                else {
                    continue;
                };
                if score < u64::from(cfg.min_score) || !memory.0.insert((target.clone(), ip.to_string())) {
                    continue;
                }
                let kind = t["type"].as_str().unwrap_or("threat").to_string();
                let reason = format!("auto: {} (threat score {score})", kind.replace('_', " "));
                let args =
                    serde_json::json!({"ip_address": ip, "duration": duration, "reason": reason, "target": target});
                let outcome = match self.call(ctx, "block_ip_address", args).await {
                    Ok(_) => {
                        tracing::warn!(target, ip, duration, score, kind, "automated response: blocked");
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(target, ip, "automated response refused: {}: {}", e.code.as_str(), e.message);
                        Err(format!("{}: {}", e.code.as_str(), e.message))
                    }
                };
                out.push(AutoBlock {
                    target: target.clone(),
                    ip: ip.to_string(),
                    duration: duration.to_string(),
                    threat_score: score,
                    kind,
                    outcome,
                });
            }
        }
        if memory.0.len() > MEMORY {
            memory.0.clear();
        }
        out
    }
}
