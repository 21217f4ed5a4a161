//! Runtime fault switches. Every switch is an atomic, so tests can flip them while requests are in flight.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default `write_latency`: the time between a write request reading config and writing it back.
pub const DEFAULT_WRITE_LATENCY: Duration = Duration::from_millis(20);
/// Default delay of a filter reload (`POST /api/v2/firewall/apply`, `apply: true`).
pub const DEFAULT_APPLY_DELAY: Duration = Duration::from_millis(150);

/// How a hostile upstream (a reverse proxy, a debugging page) echoes a request back (fault `echo_next_n`). The
/// echo is the request line with its query string, every request header (credentials included) and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EchoStyle {
    /// A pfRest-shaped JSON envelope with the echo as `message` and in `data`, with `echo_status`.
    #[default]
    Envelope,
    /// An HTML error page (`<pre>` with the echo, HTML-escaped), with `echo_status`.
    Html,
    /// A 200 whose body is the echo as plain text (not JSON).
    Text,
    /// A 200 `SUCCESS` envelope whose `data` is the echo (a string, or a list of it for a plural GET), and, for the
    /// version endpoint, `current_version`.
    Data,
    /// A `echo_status` (3xx) redirect whose `Location` carries the credentials as user info and the echo,
    /// percent-encoded, in its query string.
    Redirect,
}

impl EchoStyle {
    fn to_u8(self) -> u8 {
        match self {
            EchoStyle::Envelope => 0,
            EchoStyle::Html => 1,
            EchoStyle::Text => 2,
            EchoStyle::Data => 3,
            EchoStyle::Redirect => 4,
        }
    }
    fn from_u8(v: u8) -> EchoStyle {
        match v {
            1 => EchoStyle::Html,
            2 => EchoStyle::Text,
            3 => EchoStyle::Data,
            4 => EchoStyle::Redirect,
            _ => EchoStyle::Envelope,
        }
    }
}

/// Fault switches, settable at runtime (from tests via [`crate::Emulator::faults`], from other processes via
/// `POST /__emulator/faults`). The `*_next_n` counters decrement once per affected request.
///
/// Requests hit by `drop`, `fail`, `garbage`, `config_locked`, `wrong_credentials` or `html_404_everything` are
/// NOT processed (no state change). `drop_after_commit` processes the request, then drops the connection (the
/// client cannot know whether its write landed).
#[derive(Debug)]
pub struct Faults {
    latency_ms: AtomicU64,
    fail_next_n: AtomicU64,
    fail_status: AtomicU16,
    config_locked_next_n: AtomicU64,
    garbage_next_n: AtomicU64,
    drop_next_n: AtomicU64,
    drop_after_commit_next_n: AtomicU64,
    wrong_credentials: AtomicBool,
    html_404_everything: AtomicBool,
    lost_updates: AtomicBool,
    write_latency_ms: AtomicU64,
    apply_delay_ms: AtomicU64,
    log_growth_per_read: AtomicU64,
    echo_next_n: AtomicU64,
    echo_status: AtomicU16,
    echo_style: AtomicU8,
    echo_writes_only: AtomicBool,
    /// When set (`"POST /api/v2/vpn/openvpn/cso"`), `fail_next_n` counts and fails only requests with this method
    /// and path: a fault in the middle of a flow of several requests.
    fail_only: std::sync::Mutex<Option<String>>,
}

/// A copy of every switch (what `GET /__emulator/faults` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsSnapshot {
    pub latency_ms: u64,
    pub fail_next_n: u64,
    pub fail_status: u16,
    pub config_locked_next_n: u64,
    pub garbage_next_n: u64,
    pub drop_next_n: u64,
    pub drop_after_commit_next_n: u64,
    pub wrong_credentials: bool,
    pub html_404_everything: bool,
    pub lost_updates: bool,
    pub write_latency_ms: u64,
    pub apply_delay_ms: u64,
    pub log_growth_per_read: u64,
    pub echo_next_n: u64,
    pub echo_status: u16,
    pub echo_style: EchoStyle,
    pub echo_writes_only: bool,
    pub fail_only: Option<String>,
}

/// A partial update of the switches (body of `POST /__emulator/faults`); absent fields are left alone.
/// `{"reset": true}` first restores the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub reset: Option<bool>,
    pub latency_ms: Option<u64>,
    pub fail_next_n: Option<u64>,
    pub fail_status: Option<u16>,
    pub config_locked_next_n: Option<u64>,
    pub garbage_next_n: Option<u64>,
    pub drop_next_n: Option<u64>,
    pub drop_after_commit_next_n: Option<u64>,
    pub wrong_credentials: Option<bool>,
    pub html_404_everything: Option<bool>,
    pub lost_updates: Option<bool>,
    pub write_latency_ms: Option<u64>,
    pub apply_delay_ms: Option<u64>,
    pub log_growth_per_read: Option<u64>,
    pub echo_next_n: Option<u64>,
    pub echo_status: Option<u16>,
    pub echo_style: Option<EchoStyle>,
    pub echo_writes_only: Option<bool>,
    /// `"METHOD /path"`, or `""` to fail any request again.
    pub fail_only: Option<String>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Faults {
    pub(crate) fn new(lost_updates: bool, write_latency: Duration, apply_delay: Duration) -> Self {
        Faults {
            latency_ms: AtomicU64::new(0),
            fail_next_n: AtomicU64::new(0),
            fail_status: AtomicU16::new(500),
            config_locked_next_n: AtomicU64::new(0),
            garbage_next_n: AtomicU64::new(0),
            drop_next_n: AtomicU64::new(0),
            drop_after_commit_next_n: AtomicU64::new(0),
            wrong_credentials: AtomicBool::new(false),
            html_404_everything: AtomicBool::new(false),
            lost_updates: AtomicBool::new(lost_updates),
            write_latency_ms: AtomicU64::new(ms(write_latency)),
            apply_delay_ms: AtomicU64::new(ms(apply_delay)),
            log_growth_per_read: AtomicU64::new(0),
            echo_next_n: AtomicU64::new(0),
            echo_status: AtomicU16::new(500),
            echo_style: AtomicU8::new(EchoStyle::Envelope.to_u8()),
            echo_writes_only: AtomicBool::new(false),
            fail_only: std::sync::Mutex::new(None),
        }
    }

    /// Added to every `/api` response.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(ms(latency), Ordering::SeqCst);
    }
    /// The next `n` requests fail with `status` (502/504: nginx HTML page; others: pfRest JSON envelope).
    pub fn fail_next(&self, n: u64, status: u16) {
        self.fail_status.store(status, Ordering::SeqCst);
        self.fail_next_n.store(n, Ordering::SeqCst);
    }
    /// The next `n` config writes (POST/PATCH/PUT/DELETE on rules/aliases) get 503 `MODEL_WRITE_CONFIG_LOCKED`.
    pub fn config_locked_next(&self, n: u64) {
        self.config_locked_next_n.store(n, Ordering::SeqCst);
    }
    /// The next `n` requests get a 200 with a body that is not JSON.
    pub fn garbage_next(&self, n: u64) {
        self.garbage_next_n.store(n, Ordering::SeqCst);
    }
    /// The next `n` requests get their connection closed without any response (nothing is processed).
    pub fn drop_next(&self, n: u64) {
        self.drop_next_n.store(n, Ordering::SeqCst);
    }
    /// The next `n` requests are processed (writes land) and then the connection is closed without a response.
    pub fn drop_after_commit_next(&self, n: u64) {
        self.drop_after_commit_next_n.store(n, Ordering::SeqCst);
    }
    /// The next `n` requests (only writes: POST/PATCH/PUT/DELETE, when `writes_only`) are answered with an echo
    /// of the request, credentials included, in `style` with `status` (see [`EchoStyle`]). Not processed.
    pub fn echo_next(&self, n: u64, style: EchoStyle, status: u16, writes_only: bool) {
        self.echo_status.store(status, Ordering::SeqCst);
        self.echo_style.store(style.to_u8(), Ordering::SeqCst);
        self.echo_writes_only.store(writes_only, Ordering::SeqCst);
        self.echo_next_n.store(n, Ordering::SeqCst);
    }
    /// Reject every request with 401 `AUTH_AUTHENTICATION_FAILED` while on.
    pub fn set_wrong_credentials(&self, on: bool) {
        self.wrong_credentials.store(on, Ordering::SeqCst);
    }
    /// Simulate pfRest not being installed: every `/api` path answers nginx's HTML 404 while on.
    pub fn set_html_404_everything(&self, on: bool) {
        self.html_404_everything.store(on, Ordering::SeqCst);
    }
    /// Emulate pfRest's unprotected read-modify-write of config.xml (default on). Off = writes are serialised.
    pub fn set_lost_updates(&self, on: bool) {
        self.lost_updates.store(on, Ordering::SeqCst);
    }
    /// Time between a write request reading the config and writing its modified copy back.
    pub fn set_write_latency(&self, latency: Duration) {
        self.write_latency_ms.store(ms(latency), Ordering::SeqCst);
    }
    /// How long a filter reload takes (async applies finish this long after the request).
    pub fn set_apply_delay(&self, delay: Duration) {
        self.apply_delay_ms.store(ms(delay), Ordering::SeqCst);
    }

    /// Traffic that keeps arriving while a client pages through the firewall log: every read of
    /// `/api/v2/status/logs/firewall` first appends this many new filterlog lines (default 0).
    pub fn set_log_growth_per_read(&self, lines: u64) {
        self.log_growth_per_read.store(lines, Ordering::SeqCst);
    }
    pub fn log_growth_per_read(&self) -> u64 {
        self.log_growth_per_read.load(Ordering::SeqCst)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }
    pub fn lost_updates(&self) -> bool {
        self.lost_updates.load(Ordering::SeqCst)
    }
    pub fn write_latency(&self) -> Duration {
        Duration::from_millis(self.write_latency_ms.load(Ordering::SeqCst))
    }
    pub fn apply_delay(&self) -> Duration {
        Duration::from_millis(self.apply_delay_ms.load(Ordering::SeqCst))
    }
    pub(crate) fn wrong_credentials(&self) -> bool {
        self.wrong_credentials.load(Ordering::SeqCst)
    }
    pub(crate) fn html_404_everything(&self) -> bool {
        self.html_404_everything.load(Ordering::SeqCst)
    }
    pub(crate) fn fail_status(&self) -> u16 {
        self.fail_status.load(Ordering::SeqCst)
    }

    fn take(counter: &AtomicU64) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
    /// Whether this request fails (`fail_next_n`, restricted to `fail_only` when that is set).
    pub(crate) fn take_fail(&self, method: &str, path: &str) -> bool {
        let only = self.fail_only.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if only.is_some_and(|o| o != format!("{method} {path}")) {
            return false;
        }
        Self::take(&self.fail_next_n)
    }
    /// The next `n` requests with this method and path fail with `status`; others are answered as usual.
    pub fn fail_next_on(&self, method: &str, path: &str, n: u64, status: u16) {
        *self.fail_only.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{method} {path}"));
        self.fail_next(n, status);
    }
    pub(crate) fn take_config_locked(&self) -> bool {
        Self::take(&self.config_locked_next_n)
    }
    pub(crate) fn take_garbage(&self) -> bool {
        Self::take(&self.garbage_next_n)
    }
    /// The echo to answer this request with, if one is due (`write`: the request is a write).
    pub(crate) fn take_echo(&self, write: bool) -> Option<(EchoStyle, u16)> {
        if self.echo_writes_only.load(Ordering::SeqCst) && !write {
            return None;
        }
        Self::take(&self.echo_next_n).then(|| {
            (EchoStyle::from_u8(self.echo_style.load(Ordering::SeqCst)), self.echo_status.load(Ordering::SeqCst))
        })
    }
    pub(crate) fn take_drop(&self) -> bool {
        Self::take(&self.drop_next_n)
    }
    pub(crate) fn take_drop_after_commit(&self) -> bool {
        Self::take(&self.drop_after_commit_next_n)
    }

    /// Restore the defaults (no faults, lost updates on, default write latency and apply delay).
    pub fn reset(&self) {
        self.apply_patch(&FaultsPatch {
            latency_ms: Some(0),
            fail_next_n: Some(0),
            fail_status: Some(500),
            config_locked_next_n: Some(0),
            garbage_next_n: Some(0),
            drop_next_n: Some(0),
            drop_after_commit_next_n: Some(0),
            wrong_credentials: Some(false),
            html_404_everything: Some(false),
            lost_updates: Some(true),
            write_latency_ms: Some(ms(DEFAULT_WRITE_LATENCY)),
            apply_delay_ms: Some(ms(DEFAULT_APPLY_DELAY)),
            log_growth_per_read: Some(0),
            echo_next_n: Some(0),
            echo_status: Some(500),
            echo_style: Some(EchoStyle::Envelope),
            echo_writes_only: Some(false),
            fail_only: Some(String::new()),
            reset: None,
        });
    }

    pub fn snapshot(&self) -> FaultsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultsSnapshot {
            latency_ms: l(&self.latency_ms),
            fail_next_n: l(&self.fail_next_n),
            fail_status: self.fail_status.load(Ordering::SeqCst),
            config_locked_next_n: l(&self.config_locked_next_n),
            garbage_next_n: l(&self.garbage_next_n),
            drop_next_n: l(&self.drop_next_n),
            drop_after_commit_next_n: l(&self.drop_after_commit_next_n),
            wrong_credentials: self.wrong_credentials.load(Ordering::SeqCst),
            html_404_everything: self.html_404_everything.load(Ordering::SeqCst),
            lost_updates: self.lost_updates.load(Ordering::SeqCst),
            write_latency_ms: l(&self.write_latency_ms),
            apply_delay_ms: l(&self.apply_delay_ms),
            log_growth_per_read: l(&self.log_growth_per_read),
            echo_next_n: l(&self.echo_next_n),
            echo_status: self.echo_status.load(Ordering::SeqCst),
            echo_style: EchoStyle::from_u8(self.echo_style.load(Ordering::SeqCst)),
            echo_writes_only: self.echo_writes_only.load(Ordering::SeqCst),
            fail_only: self.fail_only.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    pub fn apply_patch(&self, p: &FaultsPatch) {
        if p.reset == Some(true) {
            self.reset();
        }
        let s = |a: &AtomicU64, v: Option<u64>| {
            if let Some(v) = v {
                a.store(v, Ordering::SeqCst);
            }
        };
        let b = |a: &AtomicBool, v: Option<bool>| {
            if let Some(v) = v {
                a.store(v, Ordering::SeqCst);
            }
        };
        s(&self.latency_ms, p.latency_ms);
        if let Some(st) = p.fail_status {
            self.fail_status.store(st, Ordering::SeqCst);
        }
        s(&self.fail_next_n, p.fail_next_n);
        s(&self.config_locked_next_n, p.config_locked_next_n);
        s(&self.garbage_next_n, p.garbage_next_n);
        s(&self.drop_next_n, p.drop_next_n);
        s(&self.drop_after_commit_next_n, p.drop_after_commit_next_n);
        b(&self.wrong_credentials, p.wrong_credentials);
        b(&self.html_404_everything, p.html_404_everything);
        b(&self.lost_updates, p.lost_updates);
        s(&self.write_latency_ms, p.write_latency_ms);
        s(&self.apply_delay_ms, p.apply_delay_ms);
        s(&self.log_growth_per_read, p.log_growth_per_read);
        if let Some(st) = p.echo_status {
            self.echo_status.store(st, Ordering::SeqCst);
        }
        if let Some(style) = p.echo_style {
            self.echo_style.store(style.to_u8(), Ordering::SeqCst);
        }
        b(&self.echo_writes_only, p.echo_writes_only);
        s(&self.echo_next_n, p.echo_next_n);
        if let Some(only) = &p.fail_only {
            *self.fail_only.lock().unwrap_or_else(|e| e.into_inner()) = Some(only.clone()).filter(|o| !o.is_empty());
        }
    }
}
