//! The HTTP client: one `reqwest::Client` per firewall, authentication, the pfRest envelope, retries and paging,
//! and the typed endpoint calls the pfSense backend uses.

use std::error::Error as _;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_core::firewall::ErrorCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Auth, ClientConfig, RequestInfo, RequestObserver, RetryPolicy};
use crate::error::{self, PfRestError};
use crate::scrub::Scrubber;
use crate::types::{
    ArpEntry, COMMAND_MAX_LEN, CommandOutput, CommandPromptRequest, DhcpLease, FirewallAlias, FirewallAliasRequest,
    FirewallApplyRequest, FirewallApplyStatus, FirewallRule, FirewallRuleRequest, FirewallState, GatewayStatus,
    InterfaceStats, IpsecSa, LogLine, NetworkInterface, OpenVpnClientStatus, OpenVpnServerStatus, PfTable,
    RestApiVersion, SystemStatus, TrafficShaperLimiter, TrafficShaperLimiterRequest, WireGuardPeer, WireGuardTunnel,
};
use crate::version::PfRestVersion;

const JWT_PATH: &str = "/api/v2/auth/jwt";
/// Renew a JWT this long before it expires.
const JWT_MARGIN_SECS: i64 = 30;
/// Refuse to page beyond this many objects (a firewall answering pages forever is broken, not big).
const MAX_LIST_ITEMS: usize = 5_000_000;

/// HTTP methods the client sends (never PUT: on a plural endpoint it replaces the whole collection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    fn reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// One request as the client will send it (body already serialised, so retries resend the same bytes).
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Safe to repeat after a timeout, a dropped connection or a 5xx.
    idempotent: bool,
}

impl Call<'_> {
    fn endpoint(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }
}

#[derive(Debug, Clone)]
struct Jwt {
    token: String,
    /// Unix time the token expires, when it could be read from the token.
    expires: Option<i64>,
    fetched: i64,
}

impl Jwt {
    /// Still good for a while: renewed 30 s before it expires, or after 3/4 of a shorter lifetime.
    fn fresh(&self, now: i64) -> bool {
        self.expires.is_none_or(|exp| {
            let margin = JWT_MARGIN_SECS.min((exp - self.fetched).max(0) / 4);
            now < exp - margin
        })
    }
}

/// A pfRest v2 client for one firewall. Cheap to share behind an `Arc`; requests may run concurrently (the caller
/// serialises writes: pfRest itself does not, see the contract's lost-update pitfall).
pub struct PfRestClient {
    http: reqwest::Client,
    base: String,
    host: String,
    auth: Auth,
    retry: RetryPolicy,
    page_size: usize,
    observer: Option<RequestObserver>,
    scrubber: Scrubber,
    jwt: tokio::sync::Mutex<Option<Jwt>>,
    version: std::sync::Mutex<Option<PfRestVersion>>,
}

impl std::fmt::Debug for PfRestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PfRestClient").field("base", &self.base).field("auth", &self.auth).finish_non_exhaustive()
    }
}

fn config_error(message: String) -> PfRestError {
    PfRestError::new(ErrorCode::ValidationError, message)
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl PfRestClient {
    /// Builds the client (no request is sent). Fails on a malformed base URL or an unreadable CA bundle.
    pub fn new(config: ClientConfig) -> Result<Self, PfRestError> {
        let scrubber = config.scrubber.clone();
        config.auth.add_to(&scrubber);
        Self::build(config).map_err(|e| scrub_error(&scrubber, e))
    }

    fn build(config: ClientConfig) -> Result<Self, PfRestError> {
        let base = config.base_url.trim().trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| {
            config_error(format!("the firewall address {base:?} (host, port, protocol) is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error(format!("the firewall address {base:?} must use protocol https (or http)")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config_error(
                "the firewall's host must not contain credentials; use api_key or username and password".into(),
            ));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(config_error(format!(
                "the firewall address {base:?} must not have a path (host is a name or address only)"
            )));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Never follow a redirect: reqwest keeps custom headers (X-API-Key) when it follows one to another
            // host, and pfRest itself never redirects. A 3xx is an error that names where it pointed (scrubbed).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis-pfrest/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                config_error(format!("cannot read the CA bundle {}: {e}", path.display()))
                    .hint("the target's ca_file must be a readable PEM file with one or more CA certificates")
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                config_error(format!("the CA bundle {} is not valid PEM: {e}", path.display()))
                    .hint("the target's ca_file must hold -----BEGIN CERTIFICATE----- blocks")
            })?;
            if certs.is_empty() {
                return Err(config_error(format!("the CA bundle {} holds no certificate", path.display())));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !config.verify_ssl {
            tracing::warn!(
                firewall = %host,
                "TLS certificate verification is OFF for this firewall (verify_ssl: false): anyone on the path can \
                 impersonate it; set ca_file to its CA instead outside a lab"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| PfRestError::new(ErrorCode::InternalError, format!("cannot build the HTTP client: {e}")))?;
        Ok(PfRestClient {
            http,
            base,
            host,
            auth: config.auth,
            retry: config.retry,
            page_size: config.page_size.max(1),
            observer: config.observer,
            scrubber: config.scrubber,
            jwt: tokio::sync::Mutex::new(None),
            version: std::sync::Mutex::new(None),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The firewall's host name or address, from the base URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The scrubber every answer passes through (it knows this client's credentials and its current JWT).
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    // -----------------------------------------------------------------------------------------------------------
    // Transport.

    async fn authorize(
        &self,
        rb: reqwest::RequestBuilder,
        call: &Call<'_>,
    ) -> Result<reqwest::RequestBuilder, PfRestError> {
        Ok(match &self.auth {
            Auth::ApiKey(key) => rb.header("X-API-Key", key),
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password)),
            Auth::Jwt { username, password } if call.path == JWT_PATH => rb.basic_auth(username, Some(password)),
            Auth::Jwt { .. } => rb.bearer_auth(self.jwt_token().await?),
        })
    }

    /// A valid JWT, obtained or renewed as needed (`POST /api/v2/auth/jwt` with Basic credentials).
    async fn jwt_token(&self) -> Result<String, PfRestError> {
        let mut slot = self.jwt.lock().await;
        if let Some(jwt) = slot.as_ref()
            && jwt.fresh(now_unix())
        {
            return Ok(jwt.token.clone());
        }
        let call = Call {
            method: Method::Post,
            path: JWT_PATH,
            query: Vec::new(),
            body: Some(b"{}".to_vec()),
            idempotent: false,
        };
        // Boxed: execute -> authorize -> jwt_token -> execute (the JWT call itself uses Basic auth, no deeper).
        let data = Box::pin(self.execute(&call)).await?;
        let token = data.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
            PfRestError::new(ErrorCode::UnexpectedResponse, format!("POST {JWT_PATH}: the answer holds no token"))
        })?;
        // The token is a credential: from now on it is scrubbed like the password.
        self.scrubber.add_runtime(token);
        let jwt = Jwt { token: token.to_string(), expires: jwt_expiry(token), fetched: now_unix() };
        *slot = Some(jwt.clone());
        Ok(jwt.token)
    }

    async fn forget_jwt(&self) {
        *self.jwt.lock().await = None;
    }

    /// Sends one attempt and returns the envelope's `data`, with every secret scrubbed from the answer and from
    /// the error.
    async fn send_once(&self, call: &Call<'_>, attempt: u32) -> Result<Value, PfRestError> {
        self.send_once_unscrubbed(call, attempt).await.map_err(|e| scrub_error(&self.scrubber, e))
    }

    async fn send_once_unscrubbed(&self, call: &Call<'_>, attempt: u32) -> Result<Value, PfRestError> {
        let endpoint = call.endpoint();
        if let Some(observer) = &self.observer {
            observer(&RequestInfo { method: call.method.as_str(), path: call.path.to_string(), attempt });
        }
        let url = format!("{}{}", self.base, call.path);
        let mut rb = self.http.request(call.method.reqwest(), &url).header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            rb = rb.query(&call.query);
        }
        // No Content-Type on a GET/DELETE: pfRest would then ignore the query string (contract §2).
        if let Some(body) = &call.body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let rb = self.authorize(rb, call).await?;
        let response = rb.send().await.map_err(|e| transport_error(&endpoint, &e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| self.scrubber.scrub(&String::from_utf8_lossy(v.as_bytes())));
        let bytes = response.bytes().await.map_err(|e| transport_error(&endpoint, &e))?;
        if tracing::enabled!(tracing::Level::TRACE) {
            if answer_holds_secrets(call.path) {
                tracing::trace!(%endpoint, attempt, status, bytes = bytes.len(), "pfRest answer (withheld: it holds secrets)");
            } else {
                // Scrubbed whole, then cut: a cut first could split a secret and leave its start.
                let text = self.scrubber.scrub(&String::from_utf8_lossy(&bytes));
                tracing::trace!(%endpoint, attempt, status, bytes = bytes.len(), body = %excerpt(&text, 2048), "pfRest answer");
            }
        }
        let mut parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        // Everything read from the answer from here on (messages, data, what errors quote) is scrubbed.
        if let Some(value) = parsed.as_mut() {
            self.scrubber.scrub_value(value);
        }
        let envelope = parsed.as_ref().and_then(Value::as_object).filter(|o| {
            o.contains_key("data") && o.get("response_id").is_some_and(Value::is_string) && o.contains_key("code")
        });
        match envelope {
            Some(env) if status == 200 => Ok(env.get("data").cloned().unwrap_or(Value::Null)),
            Some(env) => Err(error::from_status(
                &endpoint,
                status,
                env.get("response_id").and_then(Value::as_str),
                env.get("message").and_then(Value::as_str),
                true,
            )),
            None if status == 200 => {
                let what =
                    if parsed.is_some() { "JSON without the pfRest envelope" } else { "a body that is not JSON" };
                let mut e = PfRestError::new(
                    ErrorCode::UnexpectedResponse,
                    format!("{endpoint}: HTTP 200 with {what} ({} bytes)", bytes.len()),
                )
                .hint("the firewall's PHP may have printed warnings into the answer; check pfRest's and PHP's logs");
                e.status = Some(200);
                e.outcome_unknown = true;
                Err(e)
            }
            None if (300..400).contains(&status) => {
                let to = location.as_deref().map(|l| excerpt(l, 200)).unwrap_or_else(|| "nowhere".into());
                let mut e = error::from_status(&endpoint, status, None, None, false);
                e.message = format!("{endpoint}: HTTP {status} redirect to {to}; redirects are not followed");
                e.hint = Some(format!(
                    "pfRest answers directly and never redirects: check the target's protocol and port (pfSense \
                     redirects http:// to https://) and that no proxy or login page is in front of the API; {}",
                    error::HINT_UNKNOWN_OUTCOME
                ));
                Err(e)
            }
            None => Err(error::from_status(&endpoint, status, None, None, false)),
        }
    }

    /// Sends a call with the retry policy. Reads are retried on connection errors, timeouts and 5xx; every method
    /// is retried on 503 `MODEL_WRITE_CONFIG_LOCKED` (nothing was written). A JWT rejected with 401 is renewed once.
    async fn execute(&self, call: &Call<'_>) -> Result<Value, PfRestError> {
        let mut attempt = 0u32;
        let mut retries = 0u32;
        let mut renewed_jwt = false;
        loop {
            attempt += 1;
            let err = match self.send_once(call, attempt).await {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            if err.status == Some(401) && matches!(self.auth, Auth::Jwt { .. }) && call.path != JWT_PATH && !renewed_jwt
            {
                renewed_jwt = true;
                self.forget_jwt().await;
                continue;
            }
            let locked = err.is("MODEL_WRITE_CONFIG_LOCKED");
            let transient = matches!(err.code, ErrorCode::ConnectionRefused | ErrorCode::Timeout)
                || err.status.is_some_and(|s| s >= 500)
                || (err.status.is_none() && err.code == ErrorCode::UnexpectedResponse);
            let retry = locked || (call.idempotent && transient);
            if !retry || retries >= self.retry.max_retries {
                if retries > 0 {
                    let mut err = err;
                    err.message = format!("{} (after {} attempts)", err.message, retries + 1);
                    return Err(err);
                }
                return Err(err);
            }
            retries += 1;
            let delay = self.retry.delay(retries);
            tracing::debug!(endpoint = %call.endpoint(), retry = retries, ?delay, error = %err.message, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Generic calls.

    fn pairs(query: &[(&str, String)]) -> Vec<(String, String)> {
        query.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn body<B: Serialize>(endpoint: &str, body: &B) -> Result<Vec<u8>, PfRestError> {
        serde_json::to_vec(body).map_err(|e| {
            PfRestError::new(ErrorCode::InternalError, format!("{endpoint}: cannot serialise the request: {e}"))
        })
    }

    fn decode<T: DeserializeOwned>(endpoint: &str, data: Value) -> Result<T, PfRestError> {
        serde_json::from_value(data).map_err(|e| {
            let mut err = PfRestError::new(
                ErrorCode::UnexpectedResponse,
                format!("{endpoint}: the answer does not have the expected shape: {e}"),
            );
            err.status = Some(200);
            err
        })
    }

    /// GET a singular endpoint; returns `data`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, PfRestError> {
        let call = Call { method: Method::Get, path, query: Self::pairs(query), body: None, idempotent: true };
        let data = self.execute(&call).await?;
        Self::decode(&call.endpoint(), data)
    }

    /// GET every object of a plural endpoint, page by page (`limit`/`offset`). `filters` are pfRest queries
    /// (`field` or `field__filter`); only pass fields of the endpoint's model: pfRest skips an unknown field, so the
    /// query would match everything.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, PfRestError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let mut query = Self::pairs(filters);
            query.push(("limit".into(), self.page_size.to_string()));
            query.push(("offset".into(), offset.to_string()));
            let call = Call { method: Method::Get, path, query, body: None, idempotent: true };
            let data = self.execute(&call).await?;
            let Value::Array(items) = data else {
                let mut err = PfRestError::new(
                    ErrorCode::UnexpectedResponse,
                    format!("{}: expected a list in `data`, got {}", call.endpoint(), type_name(&data)),
                );
                err.status = Some(200);
                return Err(err);
            };
            let n = items.len();
            for item in items {
                out.push(Self::decode(&call.endpoint(), item)?);
            }
            if n < self.page_size {
                return Ok(out);
            }
            offset += n;
            if out.len() > MAX_LIST_ITEMS {
                return Err(PfRestError::new(
                    ErrorCode::UnexpectedResponse,
                    format!("{}: more than {MAX_LIST_ITEMS} objects; refusing to page further", call.endpoint()),
                ));
            }
        }
    }

    async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        dry_run: bool,
        idempotent: bool,
    ) -> Result<T, PfRestError> {
        let endpoint = format!("{} {path}", method.as_str());
        if dry_run {
            self.require_dry_run(&endpoint).await?;
        }
        let body = Self::body(&endpoint, body)?;
        let call = Call { method, path, query: Vec::new(), body: Some(body), idempotent };
        let data = self.execute(&call).await?;
        Self::decode(&endpoint, data)
    }

    /// POST a JSON body; returns `data`. Never repeated after a timeout or a dropped connection.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, PfRestError> {
        self.write(Method::Post, path, body, false, false).await
    }

    /// PATCH a JSON body; returns `data`. Never repeated after a timeout or a dropped connection.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, PfRestError> {
        self.write(Method::Patch, path, body, false, false).await
    }

    /// DELETE a singular object, parameters in the query string (`id`, `dry_run`, ...); returns `data`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, PfRestError> {
        let endpoint = format!("DELETE {path}");
        if query.iter().any(|(k, v)| *k == "dry_run" && v == "true") {
            self.require_dry_run(&endpoint).await?;
        }
        let call = Call { method: Method::Delete, path, query: Self::pairs(query), body: None, idempotent: false };
        let data = self.execute(&call).await?;
        Self::decode(&endpoint, data)
    }

    // -----------------------------------------------------------------------------------------------------------
    // Version.

    /// The installed pfRest version (`GET /api/v2/system/restapi/version`), read once and cached.
    pub async fn version(&self) -> Result<PfRestVersion, PfRestError> {
        if let Some(v) = *self.version.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(v);
        }
        let path = "/api/v2/system/restapi/version";
        let info: RestApiVersion = self.get(path, &[]).await?;
        let version = PfRestVersion::parse(&info.current_version).ok_or_else(|| {
            PfRestError::new(
                ErrorCode::UnexpectedResponse,
                format!("GET {path}: current_version {:?} is not a version number", info.current_version),
            )
        })?;
        if version.major != 2 {
            return Err(PfRestError::new(
                ErrorCode::UnexpectedResponse,
                format!("GET {path}: pfRest {version} is not a v2 release; this client speaks pfRest v2"),
            )
            .hint("install pfRest v2 (v2.8.0 or later recommended)"));
        }
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
        Ok(version)
    }

    /// Whether the firewall honours `dry_run` (pfRest v2.8.0 and later; older versions ignore it and run the
    /// request for real).
    pub async fn supports_dry_run(&self) -> Result<bool, PfRestError> {
        Ok(self.version().await?.supports_dry_run())
    }

    async fn require_dry_run(&self, endpoint: &str) -> Result<(), PfRestError> {
        let version = self.version().await?;
        if version.supports_dry_run() {
            Ok(())
        } else {
            Err(PfRestError::new(
                ErrorCode::Unavailable,
                format!("{endpoint}: pfRest {version} has no dry_run (v2.8.0+); refusing to send a request it would run for real"),
            )
            .hint("upgrade pfRest to v2.8.0 or later to validate changes without making them"))
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Firewall rules.

    /// Every rule, in evaluation order.
    pub async fn rules(&self) -> Result<Vec<FirewallRule>, PfRestError> {
        self.list("/api/v2/firewall/rules", &[]).await
    }

    /// The rule with this tracker (with its current `id`), if any.
    pub async fn rule_by_tracker(&self, tracker: i64) -> Result<Option<FirewallRule>, PfRestError> {
        let found: Vec<FirewallRule> = self.list("/api/v2/firewall/rules", &[("tracker", tracker.to_string())]).await?;
        Ok(found.into_iter().find(|r| r.tracker == Some(tracker)))
    }

    pub async fn create_rule(&self, rule: &FirewallRuleRequest) -> Result<FirewallRule, PfRestError> {
        self.write(Method::Post, "/api/v2/firewall/rule", rule, rule.controls.dry_run == Some(true), false).await
    }

    /// PATCH a rule; `rule.id` must be set (resolve it by tracker right before).
    pub async fn update_rule(&self, rule: &FirewallRuleRequest) -> Result<FirewallRule, PfRestError> {
        if rule.id.is_none() {
            return Err(config_error("PATCH /api/v2/firewall/rule: the rule id is missing".into()));
        }
        self.write(Method::Patch, "/api/v2/firewall/rule", rule, rule.controls.dry_run == Some(true), false).await
    }

    /// DELETE one rule by its current id (never the plural endpoint: it ignores `dry_run`).
    pub async fn delete_rule(&self, id: u64, dry_run: bool) -> Result<FirewallRule, PfRestError> {
        let mut query = vec![("id", id.to_string())];
        if dry_run {
            query.push(("dry_run", "true".into()));
        }
        self.delete("/api/v2/firewall/rule", &query).await
    }

    // -----------------------------------------------------------------------------------------------------------
    // Aliases.

    pub async fn aliases(&self) -> Result<Vec<FirewallAlias>, PfRestError> {
        self.list("/api/v2/firewall/aliases", &[]).await
    }

    /// The alias with this name (with its current `id`), if any.
    pub async fn alias_by_name(&self, name: &str) -> Result<Option<FirewallAlias>, PfRestError> {
        let found: Vec<FirewallAlias> = self.list("/api/v2/firewall/aliases", &[("name", name.to_string())]).await?;
        Ok(found.into_iter().find(|a| a.name == name))
    }

    pub async fn create_alias(&self, alias: &FirewallAliasRequest) -> Result<FirewallAlias, PfRestError> {
        self.write(Method::Post, "/api/v2/firewall/alias", alias, alias.controls.dry_run == Some(true), false).await
    }

    /// PATCH an alias; `alias.id` must be set. `address`/`detail` replace the whole arrays.
    pub async fn update_alias(&self, alias: &FirewallAliasRequest) -> Result<FirewallAlias, PfRestError> {
        if alias.id.is_none() {
            return Err(config_error("PATCH /api/v2/firewall/alias: the alias id is missing".into()));
        }
        self.write(Method::Patch, "/api/v2/firewall/alias", alias, alias.controls.dry_run == Some(true), false).await
    }

    pub async fn delete_alias(&self, id: u64, dry_run: bool) -> Result<FirewallAlias, PfRestError> {
        let mut query = vec![("id", id.to_string())];
        if dry_run {
            query.push(("dry_run", "true".into()));
        }
        self.delete("/api/v2/firewall/alias", &query).await
    }

    // -----------------------------------------------------------------------------------------------------------
    // Traffic shaper limiters (dummynet pipes; subsystem `shaper`, loaded by the filter reload).

    pub async fn limiters(&self) -> Result<Vec<TrafficShaperLimiter>, PfRestError> {
        self.list("/api/v2/firewall/traffic_shaper/limiters", &[]).await
    }

    /// The limiter with this name (with its current `id`), if any.
    pub async fn limiter_by_name(&self, name: &str) -> Result<Option<TrafficShaperLimiter>, PfRestError> {
        let found: Vec<TrafficShaperLimiter> =
            self.list("/api/v2/firewall/traffic_shaper/limiters", &[("name", name.to_string())]).await?;
        Ok(found.into_iter().find(|l| l.name == name))
    }

    pub async fn create_limiter(
        &self,
        limiter: &TrafficShaperLimiterRequest,
    ) -> Result<TrafficShaperLimiter, PfRestError> {
        let dry_run = limiter.controls.dry_run == Some(true);
        self.write(Method::Post, "/api/v2/firewall/traffic_shaper/limiter", limiter, dry_run, false).await
    }

    /// PATCH a limiter; `limiter.id` must be set (resolve it by name right before). `bandwidth` replaces the
    /// whole list.
    pub async fn update_limiter(
        &self,
        limiter: &TrafficShaperLimiterRequest,
    ) -> Result<TrafficShaperLimiter, PfRestError> {
        if limiter.id.is_none() {
            return Err(config_error(
                "PATCH /api/v2/firewall/traffic_shaper/limiter: the limiter id is missing".into(),
            ));
        }
        let dry_run = limiter.controls.dry_run == Some(true);
        self.write(Method::Patch, "/api/v2/firewall/traffic_shaper/limiter", limiter, dry_run, false).await
    }

    /// DELETE one limiter by its current id (there is no plural DELETE of limiters).
    pub async fn delete_limiter(&self, id: u64, dry_run: bool) -> Result<TrafficShaperLimiter, PfRestError> {
        let mut query = vec![("id", id.to_string())];
        if dry_run {
            query.push(("dry_run", "true".into()));
        }
        self.delete("/api/v2/firewall/traffic_shaper/limiter", &query).await
    }

    // -----------------------------------------------------------------------------------------------------------
    // Apply.

    /// Reloads the filter and waits for it (`POST /api/v2/firewall/apply` with `async: false`; `async: true` clears
    /// the pending flag before the reload is done). Safe to repeat, so it is retried like a read.
    pub async fn apply_firewall(&self) -> Result<FirewallApplyStatus, PfRestError> {
        let body = FirewallApplyRequest { async_: Some(false), dry_run: None };
        self.write(Method::Post, "/api/v2/firewall/apply", &body, false, true).await
    }

    /// Whether changes are pending (`GET /api/v2/firewall/apply`). Rule edits never show as pending in pfRest.
    pub async fn apply_status(&self) -> Result<FirewallApplyStatus, PfRestError> {
        self.get("/api/v2/firewall/apply", &[]).await
    }

    // -----------------------------------------------------------------------------------------------------------
    // Interfaces and status.

    pub async fn interfaces(&self) -> Result<Vec<NetworkInterface>, PfRestError> {
        self.list("/api/v2/interfaces", &[]).await
    }

    pub async fn interface_stats(&self) -> Result<Vec<InterfaceStats>, PfRestError> {
        self.list("/api/v2/status/interfaces", &[]).await
    }

    pub async fn system_status(&self) -> Result<SystemStatus, PfRestError> {
        self.get("/api/v2/status/system", &[]).await
    }

    pub async fn gateways(&self) -> Result<Vec<GatewayStatus>, PfRestError> {
        self.list("/api/v2/status/gateways", &[]).await
    }

    pub async fn openvpn_servers(&self) -> Result<Vec<OpenVpnServerStatus>, PfRestError> {
        self.list("/api/v2/status/openvpn/servers", &[]).await
    }

    pub async fn openvpn_clients(&self) -> Result<Vec<OpenVpnClientStatus>, PfRestError> {
        self.list("/api/v2/status/openvpn/clients", &[]).await
    }

    pub async fn ipsec_sas(&self) -> Result<Vec<IpsecSa>, PfRestError> {
        self.list("/api/v2/status/ipsec/sas", &[]).await
    }

    /// WireGuard tunnels; `None` when the WireGuard package is not installed.
    pub async fn wireguard_tunnels(&self) -> Result<Option<Vec<WireGuardTunnel>>, PfRestError> {
        missing_package_is_none(self.list("/api/v2/status/wireguard/tunnels", &[]).await)
    }

    /// WireGuard peers; `None` when the WireGuard package is not installed.
    pub async fn wireguard_peers(&self) -> Result<Option<Vec<WireGuardPeer>>, PfRestError> {
        missing_package_is_none(self.list("/api/v2/status/wireguard/peers", &[]).await)
    }

    /// The pf table `name` with its entries now (`GET /api/v2/diagnostics/table?id=<name>`, pfRest v2.6.0+); `None`
    /// when pf has no table of that name (pfRest answers 404: a table exists only while a loaded rule or alias
    /// uses it). Read-only: pfRest can list and flush pf tables, never add to them.
    pub async fn pf_table(&self, name: &str) -> Result<Option<PfTable>, PfRestError> {
        let path = "/api/v2/diagnostics/table";
        let version = self.version().await?;
        if !version.at_least(PfRestVersion::TABLES) {
            // Before v2.6.0 nginx would answer the unknown path with an HTML 404, which reads as "pfRest is not
            // installed"; say what is really missing.
            return Err(PfRestError::new(
                ErrorCode::Unavailable,
                format!("GET {path}: pfRest {version} cannot read pf tables (v2.6.0+)"),
            )
            .hint("upgrade pfRest to v2.6.0 or later, or read the table in Diagnostics > Tables"));
        }
        match self.get::<PfTable>(path, &[("id", name.to_string())]).await {
            Ok(table) => Ok(Some(table)),
            Err(e) if e.status == Some(404) && e.response_id.is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// pf's current states, with their byte and packet counters.
    pub async fn firewall_states(&self) -> Result<Vec<FirewallState>, PfRestError> {
        self.list("/api/v2/firewall/states", &[]).await
    }

    /// pfSense's ARP table.
    pub async fn arp_table(&self) -> Result<Vec<ArpEntry>, PfRestError> {
        self.list("/api/v2/diagnostics/arp_table", &[]).await
    }

    /// The DHCP server's leases; `None` when the endpoint is not there (the DHCP server not in use, or a pfRest
    /// that lacks it).
    pub async fn dhcp_leases(&self) -> Result<Option<Vec<DhcpLease>>, PfRestError> {
        match self.list("/api/v2/status/dhcp_server/leases", &[]).await {
            Ok(leases) => Ok(Some(leases)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs one shell command as root on the firewall (`POST /api/v2/diagnostics/command_prompt`): what it printed
    /// and its exit status. Never repeated after a timeout or a dropped connection. Callers build `command` only
    /// from validated values; one longer than pfRest takes is refused here, before it is sent.
    pub async fn command_prompt(&self, command: &str) -> Result<CommandOutput, PfRestError> {
        let path = "/api/v2/diagnostics/command_prompt";
        if command.chars().count() > COMMAND_MAX_LEN {
            return Err(PfRestError::new(
                ErrorCode::InternalError,
                format!(
                    "POST {path}: a command of {} characters is longer than pfRest takes ({COMMAND_MAX_LEN})",
                    command.chars().count()
                ),
            ));
        }
        self.post(path, &CommandPromptRequest { command: command.to_string() }).await
    }

    /// The newest `limit` raw filterlog lines, oldest first.
    pub async fn firewall_log(&self, limit: usize) -> Result<Vec<String>, PfRestError> {
        self.firewall_log_page(0, limit).await
    }

    /// One page of raw filterlog lines counted from the newest: the `limit` lines before the newest `skip` ones,
    /// oldest first, on every version (contract §4). pfRest v2.8.0+ pushes paging into the log reader:
    /// `?limit=N&offset=K` is that page in order. Older versions read the whole log, reverse it if asked, then
    /// slice: `?reverse=true&limit=N&offset=K` is the same page newest first. A page shorter than `limit` ends at
    /// the oldest line of the log.
    pub async fn firewall_log_page(&self, skip: usize, limit: usize) -> Result<Vec<String>, PfRestError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pushed_down = self.version().await?.at_least(PfRestVersion::DRY_RUN);
        let mut query = vec![("limit", limit.to_string())];
        if skip > 0 {
            query.push(("offset", skip.to_string()));
        }
        if !pushed_down {
            query.push(("reverse", "true".into()));
        }
        let lines: Vec<LogLine> = self.get("/api/v2/status/logs/firewall", &query).await?;
        let mut lines: Vec<String> = lines.into_iter().map(|l| l.text).collect();
        if !pushed_down {
            lines.reverse();
        }
        if lines.len() > limit {
            lines.drain(..lines.len() - limit);
        }
        Ok(lines)
    }
}

/// Endpoints whose answers carry secrets the firewall just made (a client configuration with its private key, a
/// generated certificate's key, a PKCS#12 bundle), which the scrubber cannot know in advance: never traced.
fn answer_holds_secrets(path: &str) -> bool {
    const SECRET_ANSWERS: [&str; 4] = [
        "/api/v2/vpn/openvpn/client_export",
        "/api/v2/system/certificate/generate",
        "/api/v2/system/certificate_authority/generate",
        "/api/v2/system/certificate/pkcs12/export",
    ];
    SECRET_ANSWERS.contains(&path)
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The error with every secret scrubbed from its message and hint.
fn scrub_error(scrubber: &Scrubber, mut e: PfRestError) -> PfRestError {
    e.message = scrubber.scrub(&e.message);
    e.hint = e.hint.map(|h| scrubber.scrub(&h));
    e.response_id = e.response_id.map(|r| scrubber.scrub(&r));
    e
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn missing_package_is_none<T>(r: Result<T, PfRestError>) -> Result<Option<T>, PfRestError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is("MODEL_MISSING_REQUIRED_PACKAGE") || e.is("DISPATCHER_MISSING_REQUIRED_PACKAGE") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `exp` claim of a JWT, without verifying it (the firewall does that).
fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

/// A JWT segment: base64url with padding optional; the standard alphabet and trailing bits are tolerated too.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    URL_SAFE.decode(s).or_else(|_| STANDARD.decode(s)).ok()
}

/// Whether a transport error comes from TLS (handshake, certificate), judged from the error chain.
fn is_tls(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        let text = s.to_string().to_ascii_lowercase();
        let tls_words = ["certificate", "tls", "ssl", "handshake", "corrupt message", "invalidcontenttype", "alert"];
        if tls_words.iter().any(|w| text.contains(w)) {
            return true;
        }
        source = s.source();
    }
    false
}

/// Maps an error of reqwest (no answer, or the answer broke off). The URL is left out of the message: it has no
/// secrets, but the endpoint is named already.
fn transport_error(endpoint: &str, e: &reqwest::Error) -> PfRestError {
    let mut cause = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() { e.without_url_string() } else { cause };
    let mut err = if e.is_timeout() {
        PfRestError::new(ErrorCode::Timeout, format!("{endpoint}: no answer in time ({cause})"))
            .hint(error::HINT_TIMEOUT)
    } else if is_tls(e) {
        PfRestError::new(ErrorCode::TlsError, format!("{endpoint}: TLS failed: {cause}")).hint(error::HINT_TLS)
    } else if e.is_connect() {
        PfRestError::new(ErrorCode::ConnectionRefused, format!("{endpoint}: cannot connect: {cause}"))
            .hint(error::HINT_CONNECT)
    } else {
        PfRestError::new(
            ErrorCode::UnexpectedResponse,
            format!("{endpoint}: the connection closed without a complete answer ({cause})"),
        )
        .hint(error::HINT_UNKNOWN_OUTCOME)
    };
    // Nothing was sent when the connection could not be made; otherwise the request may have been processed.
    err.outcome_unknown = !e.is_connect();
    if err.code == ErrorCode::Timeout && err.hint.is_some() {
        err.hint = Some(format!("{} {}", error::HINT_TIMEOUT, error::HINT_UNKNOWN_OUTCOME));
    }
    err
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<url>");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_expiry_is_read_from_the_payload() {
        // {"exp":1700000000}
        let payload = "eyJleHAiOjE3MDAwMDAwMDB9";
        assert_eq!(jwt_expiry(&format!("x.{payload}.y")), Some(1_700_000_000));
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }

    #[test]
    fn jwt_renewal_margin() {
        let long = Jwt { token: String::new(), expires: Some(10_000), fetched: 6_400 };
        assert!(long.fresh(9_969));
        assert!(!long.fresh(9_970));
        let short = Jwt { token: String::new(), expires: Some(104), fetched: 100 };
        assert!(short.fresh(102), "a 4 s token is renewed 1 s before it expires");
        assert!(!short.fresh(103));
    }

    #[test]
    fn base_url_is_checked() {
        let auth = Auth::ApiKey("k".into());
        assert!(PfRestClient::new(ClientConfig::new("https://fw.example:8443/", auth.clone())).is_ok());
        for bad in ["fw.example", "ftp://fw", "https://u:p@fw", "https://fw/api/v2"] {
            let err = PfRestClient::new(ClientConfig::new(bad, auth.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationError, "{bad}");
            assert!(!err.message.contains(":p@"), "no secrets in {}", err.message);
        }
    }
}
