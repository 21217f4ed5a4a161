//! The risk score (0–100) of a call. Calibrated so that everyday operator actions pass the default
//! threshold of 80 (block one address for a day: 10; pause one block rule for an hour: 35) and broad or
//! permanent exposure does not (a permanent pass any → any on a restricted WAN: 100).
//! The table is documented in docs/GUARDRAILS.md; keep both in step.

use std::collections::BTreeMap;

use portcullis_core::plan::ChangeFacts;
use serde::{Deserialize, Serialize};

/// Weights of the score. Base weights are per operation; the rest add up on top. Config `security.risk_weights`
/// overrides any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskWeights {
    pub base: BTreeMap<String, u8>,
    pub widens_exposure: u8,
    pub permanent: u8,
    pub longer_than_a_week: u8,
    pub restricted_interface: u8,
    /// Added to a mirror that copies for longer than four hours.
    pub long_mirror: u8,
    /// Added for host bits of the widest address: (at most this many host bits, weight).
    pub breadth: Vec<(u8, u8)>,
}

impl Default for RiskWeights {
    fn default() -> Self {
        let base = [
            ("create_rule", 30),
            ("modify_rule", 25),
            ("delete_rule", 35),
            ("pause_rule", 15),
            ("resume_rule", 10),
            ("block_ip", 10),
            ("unblock_ip", 20),
            ("grant_access", 20),
            ("revoke_access", 10),
            // It decides every connection the host starts: a wrong list cuts Portcullis off from the firewalls it
            // manages, so a person approves it under the default threshold of 80.
            ("set_egress_policy", 85),
            // A country is wide whatever its breadth score says; a week or more of it needs a person.
            ("geo_block", 35),
            ("delete_geo_block", 30),
            // It reaches every source on the interface; a limit set too low is an outage of its own.
            ("ddos_protection", 40),
            // A copy of users' traffic: its breadth, its interface and how long it runs add to it.
            ("mirror_traffic", 30),
            // Remote access for a person into the networks behind the firewall; permanent ones score 60.
            ("manage_vpn_users", 45),
        ];
        Self {
            base: base.into_iter().map(|(op, w)| (op.to_string(), w)).collect(),
            widens_exposure: 20,
            permanent: 15,
            longer_than_a_week: 10,
            restricted_interface: 15,
            long_mirror: 10,
            // a single host adds nothing; up to a /24 adds 10; up to a /16 adds 25; wider adds 40.
            breadth: vec![(0, 0), (8, 10), (16, 25), (255, 40)],
        }
    }
}

/// What the score is computed from.
pub struct RiskInput<'a> {
    pub operation: &'a str,
    pub read_only: bool,
    pub facts: Option<&'a ChangeFacts>,
}

pub fn risk_score(w: &RiskWeights, input: &RiskInput<'_>, restricted: &[String]) -> u8 {
    if input.read_only {
        return 0;
    }
    let base = w.base.get(input.operation).copied().unwrap_or(30);
    let Some(facts) = input.facts else {
        return base;
    };
    let breadth = w.breadth.iter().find(|(max_bits, _)| facts.host_bits <= *max_bits).map_or(0, |(_, s)| *s);
    let mut score = u32::from(base) + u32::from(breadth);
    if facts.widens_exposure {
        score += u32::from(w.widens_exposure);
        if facts.permanent {
            score += u32::from(w.permanent);
        }
    }
    if input.operation == "mirror_traffic" && facts.lifetime_seconds.is_some_and(|s| s > 4 * 3600) {
        score += u32::from(w.long_mirror);
    }
    if facts.lifetime_seconds.is_some_and(|s| s > 7 * 86_400) {
        score += u32::from(w.longer_than_a_week);
    }
    if facts.interfaces.iter().any(|i| restricted.iter().any(|r| r.eq_ignore_ascii_case(i))) {
        score += u32::from(w.restricted_interface);
    }
    score.min(100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(op: &str, facts: ChangeFacts) -> u8 {
        risk_score(
            &RiskWeights::default(),
            &RiskInput { operation: op, read_only: false, facts: Some(&facts) },
            &["wan".to_string()],
        )
    }

    #[test]
    fn everyday_actions_pass_and_broad_exposure_does_not() {
        let block_day = ChangeFacts {
            host_bits: 0,
            lifetime_seconds: Some(86_400),
            interfaces: vec!["lan".into()],
            ..Default::default()
        };
        assert!(score("block_ip", block_day) <= 80);
        let pause_hour = ChangeFacts {
            widens_exposure: true,
            lifetime_seconds: Some(3600),
            interfaces: vec!["lan".into()],
            ..Default::default()
        };
        assert!(score("pause_rule", pause_hour) <= 80);
        let any_any_wan = ChangeFacts {
            host_bits: 128,
            widens_exposure: true,
            permanent: true,
            interfaces: vec!["wan".into()],
            ..Default::default()
        };
        assert!(score("create_rule", any_any_wan) > 80);
        let egress = ChangeFacts { permanent: true, interfaces: vec!["eth0".into()], ..Default::default() };
        assert!(score("set_egress_policy", egress) > 80, "the host's egress policy always needs a person");
    }
}
