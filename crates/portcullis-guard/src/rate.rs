//! Per-principal rate limits by class (governor's keyed GCRA limiters): reads, sensitive changes, and
//! admin-level operations each have their own budget per minute.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portcullis_core::firewall::ErrorCode;
use serde::Serialize;

use crate::CallError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateClass {
    /// Reads (default 100 per minute).
    Default,
    /// Changes (default 10 per minute).
    Sensitive,
    /// Admin-level operations (default 5 per minute).
    Admin,
    /// Starting and stopping traffic mirrors (default 6 per minute): copies of users' traffic are counted apart.
    Mirror,
}

/// Calls per minute per principal, by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuotas {
    pub default: u32,
    pub sensitive: u32,
    pub admin: u32,
    pub mirror: u32,
}

impl Default for RateQuotas {
    fn default() -> Self {
        Self { default: 100, sensitive: 10, admin: 5, mirror: 6 }
    }
}

pub struct RateLimits {
    limiters: [(RateClass, DefaultKeyedRateLimiter<String>, u32); 4],
}

fn limiter(per_minute: u32) -> Result<DefaultKeyedRateLimiter<String>, CallError> {
    let n =
        NonZeroU32::new(per_minute).ok_or_else(|| CallError::internal("rate limits must be at least 1 per minute"))?;
    Ok(RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    pub fn new(q: RateQuotas) -> Result<Self, CallError> {
        Ok(Self {
            limiters: [
                (RateClass::Default, limiter(q.default)?, q.default),
                (RateClass::Sensitive, limiter(q.sensitive)?, q.sensitive),
                (RateClass::Admin, limiter(q.admin)?, q.admin),
                (RateClass::Mirror, limiter(q.mirror)?, q.mirror),
            ],
        })
    }

    pub fn check(&self, principal: &str, class: RateClass) -> Result<(), CallError> {
        let Some((_, limiter, per_minute)) = self.limiters.iter().find(|(c, _, _)| *c == class) else {
            return Ok(());
        };
        limiter.check_key(&principal.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let class = serde_json::to_value(class).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            let mut err = CallError::new(
                ErrorCode::RateLimited,
                format!("{principal} exceeded {per_minute} {class} calls per minute"),
            )
            .with_hint(format!("retry in {secs} s"));
            err.retry_after_seconds = Some(secs);
            err
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_principal_and_class_separately() {
        let limits = RateLimits::new(RateQuotas { default: 3, sensitive: 1, admin: 1, mirror: 1 }).unwrap();
        for _ in 0..3 {
            limits.check("alice", RateClass::Default).unwrap();
        }
        let err = limits.check("alice", RateClass::Default).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after_seconds.unwrap() >= 1);
        limits.check("bob", RateClass::Default).unwrap();
        limits.check("alice", RateClass::Sensitive).unwrap();
        assert!(limits.check("alice", RateClass::Sensitive).is_err());
    }
}
