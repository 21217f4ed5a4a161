//! Shared test support: an emulator plus a `PfSenseFirewall` on it, plan helpers, state comparison and a trap that
//! injects an emulator fault into one chosen request.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use portcullis_core::firewall::{Applied, Firewall};
use portcullis_core::model::{Action, AddressMatch, Direction, PortMatch, Protocol, RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Intent, RuleDraft};
use portcullis_pfrest::{Auth, ClientConfig, RequestInfo, RequestObserver, RetryPolicy};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig, StateView};
use portcullis_pfsense::{PfSenseFirewall, PfSenseOptions};
use portcullis_store::Store;
use serde_json::{Value, json};

pub const KEY: &str = "test-key-0123456789";

pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// Fast retries and apply polling for tests.
pub fn client_config(emu: &Emulator) -> ClientConfig {
    let mut c = ClientConfig::new(emu.base_url(), Auth::ApiKey(KEY.into()));
    c.retry =
        RetryPolicy { max_retries: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
    c.request_timeout = Duration::from_secs(20);
    c.connect_timeout = Duration::from_secs(2);
    c
}

pub fn options() -> PfSenseOptions {
    // The emulator gives every rule a distinct tracker by default (`unique_trackers`), so tests need no spacing;
    // `rules::rules_created_in_the_same_second_get_distinct_trackers` checks the real pfRest behaviour.
    PfSenseOptions {
        apply_poll_attempts: 20,
        apply_poll_interval: Duration::from_millis(20),
        tracker_spacing: Duration::ZERO,
        cache: portcullis_pfsense::CacheAges::default(),
        ..PfSenseOptions::default()
    }
}

pub fn firewall(config: ClientConfig, store: &Arc<Store>) -> PfSenseFirewall {
    PfSenseFirewall::new("fw1", config, store.clone()).expect("client config is valid").with_options(options())
}

pub struct Lab {
    pub emu: Emulator,
    pub store: Arc<Store>,
    pub fw: PfSenseFirewall,
    pub trap: Trap,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::start_with(EmulatorConfig::with_api_key(KEY), |_| {}).await
    }

    pub async fn start_with(config: EmulatorConfig, tweak: impl FnOnce(&mut ClientConfig)) -> Lab {
        let emu = Emulator::start(config).await.expect("emulator starts");
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let trap = Trap::default();
        let mut cfg = client_config(&emu);
        cfg.observer = Some(trap.observer());
        tweak(&mut cfg);
        let fw = firewall(cfg, &store);
        Lab { emu, store, fw, trap }
    }

    /// Plans `intent` against a fresh snapshot, applies it and verifies the read-back, like the service does.
    pub async fn change(&self, intent: &Intent) -> (ChangePlan, Applied) {
        let state = self.fw.snapshot().await.expect("snapshot");
        let p = plan::plan(&state, intent, now()).unwrap_or_else(|e| panic!("plan {intent:?}: {e}"));
        let applied = self.fw.apply(&p).await.unwrap_or_else(|e| panic!("apply {}: {e:?}", p.summary));
        self.verify(&p, &applied).await;
        (p, applied)
    }

    pub async fn verify(&self, p: &ChangePlan, applied: &Applied) -> RuleSet {
        let after = self.fw.snapshot().await.expect("read back");
        plan::verify(p, applied, &after).unwrap_or_else(|e| panic!("verify {}: {e}", p.summary));
        after
    }

    pub fn state(&self) -> Value {
        comparable(&self.emu.state())
    }

    /// Fails the test if any request did not match the pfRest schema.
    pub fn assert_schema_clean(&self) {
        let v = self.emu.schema_violations();
        assert!(v.is_empty(), "schema violations:\n{}", v.join("\n"));
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.emu.request_log().iter().filter(|r| r.method == method && r.path == path).count()
    }

    pub async fn finish(self) {
        self.assert_schema_clean();
        self.emu.shutdown().await;
    }
}

/// The parts of the emulator state a change may touch: the config, what is pending, and what the filter enforces
/// (not the reload counter or time).
pub fn comparable(s: &StateView) -> Value {
    json!({
        "rules": s.rules,
        "aliases": s.aliases,
        "pending": s.pending_subsystems,
        "enforced_rules": s.applied.rules,
        "enforced_aliases": s.applied.aliases,
        "limiters": s.limiters,
        "enforced_limiters": s.applied.limiters,
    })
}

type Fire = Box<dyn FnOnce() + Send>;

/// Fires a callback right before the first request that matches (method, path): used to put an emulator fault on
/// exactly that request.
#[derive(Clone, Default)]
pub struct Trap(Arc<Mutex<Option<(String, String, Fire)>>>, Arc<Mutex<bool>>);

impl Trap {
    pub fn arm(&self, method: &str, path: &str, fire: impl FnOnce() + Send + 'static) {
        *self.0.lock().unwrap() = Some((method.to_string(), path.to_string(), Box::new(fire)));
        *self.1.lock().unwrap() = false;
    }

    pub fn fired(&self) -> bool {
        *self.1.lock().unwrap()
    }

    pub fn observer(&self) -> RequestObserver {
        let me = self.clone();
        Arc::new(move |req: &RequestInfo| {
            let mut slot = me.0.lock().unwrap();
            let hit = slot.as_ref().is_some_and(|(m, p, _)| m == req.method && *p == req.path);
            if hit && let Some((_, _, fire)) = slot.take() {
                fire();
                *me.1.lock().unwrap() = true;
            }
        })
    }
}

pub fn draft(interface: &str, description: &str, port: u16) -> RuleDraft {
    RuleDraft {
        interface: interface.into(),
        direction: Direction::In,
        action: Action::Pass,
        ip_version: None,
        protocol: Protocol::Tcp,
        source: AddressMatch::ANY,
        source_port: PortMatch::Any,
        destination: AddressMatch::parse("destination", &format!("{interface}:ip")).unwrap(),
        destination_port: PortMatch::parse("destination_port", &port.to_string()).unwrap(),
        description: description.into(),
        log: false,
        enabled: true,
        position: None,
    }
}

pub fn tracker(id: &RuleId) -> i64 {
    id.as_str().parse().expect("rule ids are trackers")
}

/// A block of `net` on every interface, permanent when `hours` is `None`.
pub fn block(net: &str, hours: Option<i64>, reason: &str) -> Intent {
    Intent::Block {
        addresses: net.parse::<ipnet::IpNet>().unwrap().into(),
        interface: None,
        expires_at: hours.map(|h| now() + chrono::TimeDelta::hours(h)),
        reason: reason.into(),
        replace: false,
    }
}
