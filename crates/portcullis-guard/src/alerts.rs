//! Alerts on patterns a security team wants to hear about at once: a burst of denials from one principal
//! (more than 5 in 10 minutes) and any refused high-risk change.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::TimeDelta;
use portcullis_core::model::Timestamp;
use portcullis_store::Store;

const BURST_WINDOW: TimeDelta = TimeDelta::minutes(10);
const BURST_LIMIT: usize = 5;

#[derive(Default)]
pub struct AlertMonitor {
    denials: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

impl AlertMonitor {
    /// Notes a denial; raises a burst alert when the principal passes the limit (once per window).
    pub fn denial(&self, store: &Store, principal: &str, now: Timestamp) {
        let burst = {
            let mut all = self.denials.lock().unwrap_or_else(|p| p.into_inner());
            let times = all.entry(principal.to_string()).or_default();
            while times.front().is_some_and(|t| now - *t > BURST_WINDOW) {
                times.pop_front();
            }
            times.push_back(now);
            times.len() == BURST_LIMIT + 1
        };
        if burst {
            raise(
                store,
                "denial_burst",
                principal,
                &format!("more than {BURST_LIMIT} denied calls in 10 minutes"),
                now,
            );
        }
    }

    pub fn refused_high_risk(&self, store: &Store, principal: &str, tool: &str, risk: u8, now: Timestamp) {
        raise(store, "high_risk_refused", principal, &format!("{tool} with risk score {risk} was refused"), now);
    }
}

fn raise(store: &Store, kind: &str, principal: &str, message: &str, now: Timestamp) {
    tracing::warn!(alert = kind, principal, "{message}");
    if let Err(e) = store.alert_raise(kind, principal, message, now) {
        tracing::error!("alert not stored: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn sixth_denial_in_ten_minutes_raises_one_alert() {
        let store = Store::open_in_memory().unwrap();
        let monitor = AlertMonitor::default();
        let start = Utc::now();
        for i in 0..8 {
            monitor.denial(&store, "bot", start + TimeDelta::seconds(i));
        }
        monitor.denial(&store, "other", start);
        let alerts = store.alerts_since(start - TimeDelta::minutes(1)).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].principal, "bot");
    }
}
