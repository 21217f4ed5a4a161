//! A tool service over one pfSense target (`fw1`) on the pfRest emulator, with a log store, for the tests that
//! drive pfSense through `ToolService::call`. Included by path (`#[path = "common/pfsense.rs"]`) so the lab-only
//! tests do not compile it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_guard::{Auditor, Guard, GuardSettings, RateQuotas};
use portcullis_logstore::{LogStore, Retention};
use portcullis_pfrest::{Auth, ClientConfig, RetryPolicy};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use portcullis_pfsense::{PfSenseFirewall, PfSenseOptions};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};

/// The emulator's API key.
pub const KEY: &str = "test-key-0123456789";

pub struct PfSenseService {
    _logs: tempfile::TempDir,
    pub emu: Emulator,
    #[allow(dead_code)] // not every test that includes this module reads it
    pub fw: Arc<PfSenseFirewall>,
    pub svc: ToolService,
}

/// The emulator started with `emulator` (its API key is [`KEY`]) and a service over it, rate limits out of the way,
/// applies polled quickly and rules created without tracker spacing (the emulator gives distinct trackers).
pub async fn start(emulator: EmulatorConfig) -> PfSenseService {
    start_with(emulator, |_| {}).await
}

/// [`start`], with the backend's options changed by `tweak` (e.g. `allow_shell`).
pub async fn start_with(emulator: EmulatorConfig, tweak: impl FnOnce(&mut PfSenseOptions)) -> PfSenseService {
    let emu = Emulator::start(emulator).await.expect("emulator starts");
    over(emu, tweak)
}

/// A service over an emulator already running, with a store of its own: Portcullis started again on another
/// machine, or after losing its data directory.
#[allow(dead_code)] // not every test that includes this module restarts
pub fn over(emu: Emulator, tweak: impl FnOnce(&mut PfSenseOptions)) -> PfSenseService {
    let mut client = ClientConfig::new(emu.base_url(), Auth::ApiKey(KEY.into()));
    client.retry =
        RetryPolicy { max_retries: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
    let store = Arc::new(Store::open_in_memory().expect("in-memory store"));
    let options = PfSenseOptions {
        apply_poll_interval: Duration::from_millis(20),
        tracker_spacing: Duration::ZERO,
        ..PfSenseOptions::default()
    };
    let mut options = options;
    tweak(&mut options);
    let fw = Arc::new(PfSenseFirewall::new("fw1", client, store.clone()).expect("client config").with_options(options));
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        ..Default::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).expect("auditor")).expect("guard");
    let logs = tempfile::tempdir().expect("temporary directory");
    let log_store = LogStore::open(logs.path().join("fw1"), Retention::default()).expect("log store");
    let svc = ToolService::new(guard, vec![Target::new("fw1", fw.clone())])
        .expect("service")
        .with_log_stores(HashMap::from([("fw1".to_string(), log_store)]));
    PfSenseService { _logs: logs, emu, fw, svc }
}

impl PfSenseService {
    /// The same service with these sensors and mirror bounds.
    #[allow(dead_code)]
    pub fn with_mirroring(self, settings: portcullis_tools::MirrorSettings) -> Self {
        PfSenseService { svc: self.svc.with_mirroring(settings), ..self }
    }

    /// The same service answering with this country database.
    #[allow(dead_code)]
    pub fn with_country_db(self, db: Arc<portcullis_geo::CountryDb>) -> Self {
        PfSenseService { svc: self.svc.with_country_db(Some(db)), ..self }
    }
}
