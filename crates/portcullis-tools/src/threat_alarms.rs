//! Threats in the logs raise alarms for people (`alerts.threats`): each round analyses every target's recent logs
//! with `analyze_threats`, an ordinary call as the configured principal, and raises one `threat` alarm per source
//! and kind of threat at or above the minimum score that it has not raised before. It blocks nothing (that is the
//! automated response's, `logs.auto_response`).

use std::collections::HashSet;

use portcullis_guard::CallContext;

use crate::ToolService;

/// What a round looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreatAlarms {
    /// The window analysed (`1h`).
    pub timeframe: String,
    pub min_score: u8,
}

/// The threats already raised, per target, source and kind; bounded like the automated response's memory.
#[derive(Debug, Default)]
pub struct ThreatAlarmMemory(HashSet<(String, String, String)>);

const MEMORY: usize = 10_000;
/// From this score a threat's alarm is `high`, below it `medium`.
const HIGH_SCORE: u64 = 80;

impl ToolService {
    /// One round over every target; how many alarms it raised.
    pub async fn threat_alarm_round(
        &self,
        ctx: &CallContext,
        cfg: &ThreatAlarms,
        memory: &mut ThreatAlarmMemory,
    ) -> usize {
        let mut raised = 0;
        for (target, threats) in self.threats_per_target(ctx, &cfg.timeframe, "threat alarms").await {
            for t in &threats {
                let score = t["threat_score"].as_u64().unwrap_or(0);
                let ip = t["source_ip"].as_str().unwrap_or("?").to_string();
                let kind = t["type"].as_str().unwrap_or("threat").to_string();
                if score < u64::from(cfg.min_score) || !memory.0.insert((target.clone(), ip.clone(), kind.clone())) {
                    continue;
                }
                // The view's own severity (critical and high, from the score or Suricata's) or the score decides.
                let severe = matches!(t["severity"].as_str(), Some("critical" | "high"));
                let band = if severe || score >= HIGH_SCORE { "high" } else { "medium" };
                let what = t["detail"].as_str().filter(|d| !d.is_empty()).map(|d| format!(": {d}")).unwrap_or_default();
                let message =
                    format!("[{band}] {} from {ip} on {target}, threat score {score}{what}", kind.replace('_', " "));
                self.raise_alarm("threat", "portcullis", &message);
                raised += 1;
            }
        }
        if memory.0.len() > MEMORY {
            memory.0.clear();
        }
        raised
    }
}
