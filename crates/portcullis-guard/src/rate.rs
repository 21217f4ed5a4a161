//! Per-principal rate limits (governor's keyed GCRA limiter).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portcullis_core::firewall::ErrorCode;

use crate::CallError;

pub struct RateLimits {
    per_principal: DefaultKeyedRateLimiter<String>,
    per_minute: u32,
}

impl RateLimits {
    pub fn per_minute(n: u32) -> Result<Self, CallError> {
        let n = NonZeroU32::new(n).ok_or_else(|| CallError::internal("security.rate_limit must be at least 1"))?;
        Ok(Self { per_principal: RateLimiter::keyed(Quota::per_minute(n)), per_minute: n.get() })
    }

    pub fn check(&self, principal: &str) -> Result<(), CallError> {
        self.per_principal.check_key(&principal.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut err = CallError::new(
                ErrorCode::RateLimited,
                format!("{principal} exceeded {} calls per minute", self.per_minute),
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
    fn limits_each_principal_separately() {
        let limits = RateLimits::per_minute(3).unwrap();
        for _ in 0..3 {
            limits.check("alice").unwrap();
        }
        let err = limits.check("alice").unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after_seconds.unwrap() >= 1);
        limits.check("bob").unwrap();
    }
}
