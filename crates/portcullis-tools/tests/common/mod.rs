//! Test support shared by the integration tests of the tool service.

use async_trait::async_trait;
use portcullis_core::firewall::{Applied, BackendError, Firewall, SystemStatus, TargetInfo};
use portcullis_core::model::RuleSet;
use portcullis_core::plan::ChangePlan;
use portcullis_lab::LabFirewall;

/// The lab firewall standing in for an nftables target on Portcullis' own host, for the tool service's tests of
/// `set_egress_policy`: it stores, applies and reads rules like the lab; only `filters_own_traffic` differs. The
/// kernel's side is proven with packets in `crates/portcullis/tests/nftables_cli.rs`.
// Not every test binary that includes this module uses it.
#[allow(dead_code)]
pub struct OwnHost(pub LabFirewall);

#[async_trait]
impl Firewall for OwnHost {
    fn info(&self) -> TargetInfo {
        self.0.info()
    }

    async fn snapshot(&self) -> Result<RuleSet, BackendError> {
        self.0.snapshot().await
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        self.0.apply(plan).await
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError> {
        self.0.system_status().await
    }

    fn filters_own_traffic(&self) -> bool {
        true
    }
}

/// The small country database of `tests/fixtures/geoip` (DB-IP layout): 10.77.1.2, 203.0.113.0/25 and
/// 2001:db8:c0::/48 in CN; 10.77.1.3, 203.0.113.128/25 in US; 198.51.100.0/24 in RU; 192.0.2.0/25 in DE.
#[allow(dead_code)]
pub fn test_country_db() -> std::sync::Arc<portcullis_geo::CountryDb> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/geoip/dbip-layout.mmdb");
    std::sync::Arc::new(portcullis_geo::CountryDb::open(&path).expect("the test country database opens"))
}

/// A lab firewall with one WireGuard server whose accounts live in memory: a stand-in for the guard matrix,
/// which checks who may call the VPN tools, not how a backend keeps peers (`tests/vpn_wireguard.rs` does).
#[allow(dead_code)]
pub struct VpnHost(pub LabFirewall, pub std::sync::Mutex<Vec<portcullis_core::vpn::VpnAccount>>);

#[async_trait]
impl Firewall for VpnHost {
    fn info(&self) -> TargetInfo {
        self.0.info()
    }

    async fn snapshot(&self) -> Result<RuleSet, BackendError> {
        let mut state = self.0.snapshot().await?;
        state.vpn_accounts = self.1.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(state)
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        use portcullis_core::plan::Operation;
        let rest = ChangePlan {
            operations: plan.operations.iter().filter(|o| !o.is_vpn_account()).cloned().collect(),
            ..plan.clone()
        };
        let applied = self.0.apply(&rest).await?;
        let mut accounts = self.1.lock().unwrap_or_else(|p| p.into_inner());
        for op in &plan.operations {
            match op {
                Operation::CreateVpnAccount { after } => accounts.push(after.clone()),
                Operation::DeleteVpnAccount { before } => accounts.retain(|a| a.username != before.username),
                _ => {}
            }
        }
        Ok(applied)
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError> {
        self.0.system_status().await
    }

    async fn vpn_servers(&self) -> Result<Vec<portcullis_core::vpn::VpnServer>, BackendError> {
        Ok(vec![portcullis_core::vpn::VpnServer::new(
            "wg0",
            portcullis_core::vpn::VpnType::Wireguard,
            "10.8.0.1/24".parse().expect("net"),
        )])
    }

    async fn wireguard_server_side(
        &self,
        _server: &str,
    ) -> Result<portcullis_core::vpn::WireguardServerSide, BackendError> {
        Ok(portcullis_core::vpn::WireguardServerSide {
            public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
            endpoint: "192.0.2.1:51820".into(),
            allowed_ips: vec!["10.8.0.0/24".parse().expect("net")],
            dns: Vec::new(),
        })
    }
}
