//! `pfrest-emulator`: run the pfRest v2 emulator on loopback until killed.
//!
//! ```text
//! pfrest-emulator --port 0 --api-key KEY [--user admin:pass] [--version v2.10.0]
//! ```
//! Prints `pfrest-emulator listening on http://127.0.0.1:PORT` to stderr. Control endpoints for other processes:
//! `GET /__emulator/state`, `GET|DELETE /__emulator/requests`, `GET /__emulator/requests/counts` (per route), `GET|DELETE /__emulator/violations`,
//! `GET|POST /__emulator/faults`, `POST /__emulator/firewall_log`, `GET /__emulator/anchors`, `POST /__emulator/reboot`
//! (empties pf anchors), `POST /__emulator/anchor_counters`, `POST /__emulator/wait_for_applies`.

use std::time::Duration;

use clap::Parser;
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig, InterfaceRepresentation};

#[derive(Debug, Parser)]
#[command(name = "pfrest-emulator", about = "Stateful pfRest v2 emulator (listens on 127.0.0.1 only)")]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// API key accepted in X-API-Key (repeatable).
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// API key with read-only privileges (repeatable).
    #[arg(long = "read-only-api-key")]
    read_only_api_keys: Vec<String>,
    /// Basic-auth user as USER:PASS (repeatable); also used to obtain JWTs.
    #[arg(long = "user")]
    users: Vec<String>,
    /// pfRest version to report (versions before v2.8.0 have no dry_run and the old log paging).
    #[arg(long, default_value = "v2.10.0")]
    version: String,
    /// Interface representation: descr (default), id or if.
    #[arg(long, default_value = "descr")]
    represent_interfaces_as: String,
    /// Milliseconds between a write reading the config and writing it back.
    #[arg(long, default_value_t = 20)]
    write_latency_ms: u64,
    /// Milliseconds every `/api` request waits before it is handled (a slow appliance; also `latency_ms` in
    /// `POST /__emulator/faults`).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Milliseconds a filter reload takes.
    #[arg(long, default_value_t = 150)]
    apply_delay_ms: u64,
    /// Serialise writes instead of emulating pfRest's lost updates.
    #[arg(long)]
    no_lost_updates: bool,
    /// Start without pfSense's two default LAN rules.
    #[arg(long)]
    no_default_rules: bool,
    /// Enable HATEOAS `_links`.
    #[arg(long)]
    hateoas: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut users = Vec::new();
    for u in &args.users {
        match u.split_once(':') {
            Some((name, pass)) => users.push((name.to_string(), pass.to_string())),
            None => {
                eprintln!("pfrest-emulator: --user must be USER:PASS, got {u:?}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let repr = match args.represent_interfaces_as.as_str() {
        "descr" => InterfaceRepresentation::Descr,
        "id" => InterfaceRepresentation::Id,
        "if" => InterfaceRepresentation::If,
        other => {
            eprintln!("pfrest-emulator: --represent-interfaces-as must be descr, id or if, got {other:?}");
            return std::process::ExitCode::from(2);
        }
    };
    let config = EmulatorConfig {
        api_keys: args.api_keys,
        read_only_api_keys: args.read_only_api_keys,
        users,
        version: args.version,
        represent_interfaces_as: repr,
        write_latency: Duration::from_millis(args.write_latency_ms),
        apply_delay: Duration::from_millis(args.apply_delay_ms),
        lost_updates: !args.no_lost_updates,
        seed_default_rules: !args.no_default_rules,
        hateoas: args.hateoas,
        port: args.port,
        ..Default::default()
    };
    let emu = match Emulator::start(config).await {
        Ok(emu) => emu,
        Err(e) => {
            eprintln!("pfrest-emulator: cannot listen: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    emu.faults().set_latency(Duration::from_millis(args.latency_ms));
    eprintln!("pfrest-emulator listening on {}", emu.base_url());
    wait_for_signal().await;
    emu.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
