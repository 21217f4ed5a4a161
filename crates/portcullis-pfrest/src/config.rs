//! Client settings: where the firewall is, how to authenticate, TLS, timeouts and retries.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the client authenticates (pfRest `auth_methods`; only enabled methods are accepted by the firewall).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `X-API-Key: <key>` (pfRest `KeyAuth`; must be enabled in the REST API settings, the default is Basic only).
    ApiKey(String),
    /// `Authorization: Basic` with a local pfSense user (pfRest `BasicAuth`).
    Basic { username: String, password: String },
    /// `Authorization: Bearer <jwt>`, the token obtained from `POST /api/v2/auth/jwt` with these Basic credentials
    /// (pfRest `JWTAuth`).
    Jwt { username: String, password: String },
}

impl Auth {
    /// Adds these credentials to a scrubber (the API key; the password and `user:password`).
    pub fn add_to(&self, scrubber: &crate::Scrubber) {
        match self {
            Auth::ApiKey(key) => scrubber.add(key),
            Auth::Basic { username, password } | Auth::Jwt { username, password } => {
                scrubber.add_basic(username, password)
            }
        }
    }

    /// The method's name in pfRest's `auth_methods` setting.
    pub fn method_name(&self) -> &'static str {
        match self {
            Auth::ApiKey(_) => "KeyAuth",
            Auth::Basic { .. } => "BasicAuth",
            Auth::Jwt { .. } => "JWTAuth",
        }
    }
}

/// Secrets never print: `Debug` shows the method and the user only.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ApiKey(_) => f.write_str("ApiKey(***)"),
            Auth::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, password: *** }}"),
            Auth::Jwt { username, .. } => write!(f, "Jwt {{ username: {username:?}, password: *** }}"),
        }
    }
}

/// Bounded exponential backoff: retry `n` (1-based) waits `base_delay * 2^(n-1)`, at most `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries waiting 100 ms, 200 ms, 400 ms.
    fn default() -> Self {
        RetryPolicy { max_retries: 3, base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(400) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What is about to be sent (given to a [`RequestObserver`] before every attempt, retries included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub method: &'static str,
    /// The path under the base URL, without the query string (e.g. `/api/v2/firewall/rule`).
    pub path: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// A hook called before every request attempt: for metrics, tracing, and fault injection in tests.
pub type RequestObserver = Arc<dyn Fn(&RequestInfo) + Send + Sync>;

/// Everything the client needs to reach one firewall.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://firewall.example` (scheme, host, optional port; no path, no credentials).
    pub base_url: String,
    pub auth: Auth,
    /// Verify the firewall's TLS certificate (default true). `false` accepts any certificate and logs a warning.
    pub verify_ssl: bool,
    /// Extra trusted CA certificates (a PEM bundle file), e.g. the firewall's own web configurator CA.
    pub ca_bundle: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Whole-request timeout (pfSense's nginx itself gives PHP up to 180 s).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Objects per page of a plural GET.
    pub page_size: usize,
    pub observer: Option<RequestObserver>,
    /// Removes secrets from every answer before it is used. The client adds its own credentials (and each JWT it
    /// obtains); pass a shared one to have every other configured secret removed too (and to scrub logs with it).
    pub scrubber: crate::Scrubber,
}

impl ClientConfig {
    /// Defaults: TLS verified, 10 s connect timeout, 60 s request timeout, 3 retries from 100 ms, 1000 per page.
    pub fn new(base_url: impl Into<String>, auth: Auth) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            auth,
            verify_ssl: true,
            ca_bundle: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            page_size: 1000,
            observer: None,
            scrubber: crate::Scrubber::new(),
        }
    }

    /// Timeouts given in seconds, as in the YAML configuration.
    pub fn with_timeouts_secs(mut self, connect: u64, request: u64) -> Self {
        self.connect_timeout = Duration::from_secs(connect.max(1));
        self.request_timeout = Duration::from_secs(request.max(1));
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("verify_ssl", &self.verify_ssl)
            .field("ca_bundle", &self.ca_bundle)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .field("observer", &self.observer.as_ref().map(|_| "set"))
            .field("scrubber", &self.scrubber)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(9), Duration::from_millis(400));
        assert_eq!(p.delay(64), Duration::from_millis(400));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = ClientConfig::new("https://fw", Auth::Basic { username: "admin".into(), password: "hunter2".into() });
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{:?}", Auth::ApiKey("sekrit".into())).contains("sekrit"));
        assert!(!format!("{:?}", Auth::Jwt { username: "u".into(), password: "pw123".into() }).contains("pw123"));
    }
}
