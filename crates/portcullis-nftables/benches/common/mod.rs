//! What the nftables benchmarks share: a network namespace made for the run, and a backend inside it.

use std::process::Command;
use std::sync::Arc;

use portcullis_nftables::{NftRunner, NftablesFirewall, NftablesSettings};
use portcullis_store::Store;

/// A network namespace named after the process and `tag`, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("pcbench{}{tag}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed: the benchmark needs root and iproute2");
        Netns(name)
    }

    pub fn nft(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.0, "nft"]).args(args).output().expect("nft")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The backend managing `lan0` and `wan0` in the namespace, with a store of its own.
pub fn firewall(ns: &Netns) -> NftablesFirewall {
    let settings = NftablesSettings {
        runner: NftRunner::in_netns(ns.0.clone()),
        ..NftablesSettings::new(vec![("lan".into(), "lan0".into()), ("wan".into(), "wan0".into())])
    };
    NftablesFirewall::new("bench", settings, Arc::new(Store::open_in_memory().expect("store")))
}
