//! VPN users on a Linux target: peers of a WireGuard interface configured in advance (`wireguard:` in the
//! target's configuration), added and removed with `wg`, with Portcullis' record of whose peer each is.
//!
//! A peer has no name in WireGuard, so the record (in the store) says which user it is, when it was made and when
//! it expires; an account is what the record and the interface both hold. The record is written before the peer
//! is added and removed after the peer is: a stop in between leaves a record without a peer, which is not listed
//! and is dropped by the next change, never a peer nobody knows about.
//!
//! `wg show <if> dump` prints the interface's private key on its first line: that field is dropped as the line is
//! split, before anything else reads it.

use std::net::IpAddr;

use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, VpnConnection, VpnKind, VpnUser};
use portcullis_core::plan::{ChangePlan, Operation};
use portcullis_core::vpn::{VpnAccount, VpnServer, VpnType, WireguardServerSide};

use crate::NftablesFirewall;

/// A WireGuard interface whose peers Portcullis manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireguardSettings {
    /// The interface (`wg0`), brought up beforehand (`wg-quick`, systemd-networkd, `wireguard-go`).
    pub device: String,
    /// The server's own address with the tunnel network's prefix (`10.8.0.1/24`).
    pub address: IpNet,
    /// `host:port` clients connect to.
    pub endpoint: String,
    /// What clients send through the tunnel; the tunnel network when empty.
    pub client_allowed_ips: Vec<IpNet>,
    pub client_dns: Vec<IpAddr>,
}

/// One peer as `wg show <if> dump` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<IpNet>,
    /// Seconds since the epoch of the last handshake; none before the first.
    pub latest_handshake: Option<i64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The interface's public key and its peers, from `wg show <if> dump`. The first line's first field (the
/// interface's private key) is never kept.
pub fn parse_dump(text: &str) -> Result<(String, Vec<Peer>), BackendError> {
    let garbled = |what: &str| BackendError::new(ErrorCode::UnexpectedResponse, format!("wg show dump: {what}"));
    let mut lines = text.lines();
    let interface = lines.next().ok_or_else(|| garbled("no interface line"))?;
    let public_key = interface.split('\t').nth(1).ok_or_else(|| garbled("the interface line has no public key"))?;
    let mut peers = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [key, _psk, endpoint, allowed, handshake, rx, tx, ..] = f.as_slice() else {
            return Err(garbled("a peer line with fewer than 8 fields"));
        };
        let allowed_ips = allowed
            .split(',')
            .filter(|a| !a.is_empty() && *a != "(none)")
            .map(|a| a.parse::<IpNet>().map_err(|_| garbled("an allowed IP that is not a network")))
            .collect::<Result<_, _>>()?;
        let handshake: i64 = handshake.parse().map_err(|_| garbled("a handshake time that is not a number"))?;
        peers.push(Peer {
            public_key: key.to_string(),
            endpoint: (*endpoint != "(none)").then(|| endpoint.to_string()),
            allowed_ips,
            latest_handshake: (handshake > 0).then_some(handshake),
            rx_bytes: rx.parse().map_err(|_| garbled("rx bytes"))?,
            tx_bytes: tx.parse().map_err(|_| garbled("tx bytes"))?,
        });
    }
    Ok((public_key.to_string(), peers))
}

/// The plan without its VPN users' operations: what the nftables table carries out.
pub fn without_vpn(plan: &ChangePlan) -> ChangePlan {
    ChangePlan { operations: plan.operations.iter().filter(|o| !o.is_vpn_account()).cloned().collect(), ..plan.clone() }
}

/// Portcullis' record of one user's peer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredAccount {
    #[serde(flatten)]
    pub account: VpnAccount,
    /// Whether the change that made it was applied whole; until then the peer may be a stopped apply's.
    #[serde(default)]
    pub confirmed: bool,
}

/// Whether the interface holds `account`'s peer with its address.
fn held(peers: &[Peer], account: &VpnAccount) -> bool {
    peers.iter().any(|p| Some(&p.public_key) == account.public_key.as_ref() && p.allowed_ips.contains(&account.host()))
}

fn records_key(target: &str) -> String {
    format!("nftables:{target}:vpn_accounts")
}

impl NftablesFirewall {
    pub(crate) fn vpn_server(&self) -> Option<VpnServer> {
        let wg = self.settings.wireguard.as_ref()?;
        Some(VpnServer::new(wg.device.clone(), VpnType::Wireguard, wg.address))
    }

    fn wireguard(&self) -> Result<&WireguardSettings, BackendError> {
        self.settings.wireguard.as_ref().ok_or_else(|| {
            BackendError::new(
                ErrorCode::Unsupported,
                format!("target {} has no WireGuard interface configured", self.name),
            )
            .with_hint(format!(
                "configure targets.{}.wireguard (interface, address, endpoint) for an interface brought up beforehand",
                self.name
            ))
        })
    }

    /// The interface's public key and peers.
    pub(crate) async fn wg_peers(&self) -> Result<(String, Vec<Peer>), BackendError> {
        let wg = self.wireguard()?;
        parse_dump(&self.settings.runner.wg(&["show", &wg.device, "dump"]).await?)
    }

    pub(crate) fn vpn_records(&self) -> Result<Vec<StoredAccount>, BackendError> {
        let stored = self.store.meta_get(&records_key(&self.name)).map_err(|e| {
            BackendError::new(ErrorCode::InternalError, format!("the VPN user records cannot be read: {e}"))
        })?;
        match stored {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                BackendError::new(ErrorCode::InternalError, format!("the VPN user records are unreadable: {e}"))
            }),
        }
    }

    fn save_vpn_records(&self, records: &[StoredAccount]) -> Result<(), BackendError> {
        let text = serde_json::to_string(records)
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("VPN user records: {e}")))?;
        self.store.meta_set(&records_key(&self.name), &text).map_err(|e| {
            BackendError::new(ErrorCode::InternalError, format!("the VPN user records cannot be written: {e}"))
        })
    }

    /// The accounts the records and the interface both hold; none where no WireGuard interface is configured.
    pub(crate) async fn vpn_accounts(&self) -> Result<Vec<VpnAccount>, BackendError> {
        if self.settings.wireguard.is_none() {
            return Ok(Vec::new());
        }
        let (_, peers) = self.wg_peers().await?;
        Ok(self.vpn_records()?.into_iter().filter(|r| held(&peers, &r.account)).map(|r| r.account).collect())
    }

    /// [`Self::vpn_accounts`] for a read of the whole state: an interface that does not answer leaves the
    /// accounts out (with a warning) rather than failing every change of the table. `list_vpn_users` and the
    /// VPN changes themselves read the interface directly and fail on it.
    pub(crate) async fn vpn_accounts_or_none(&self) -> Vec<VpnAccount> {
        match self.vpn_accounts().await {
            Ok(accounts) => accounts,
            Err(e) => {
                tracing::warn!(target = %self.name, "VPN users not read: {}", e.message);
                Vec::new()
            }
        }
    }

    /// What a client needs of the server.
    pub(crate) async fn wireguard_server_side(&self) -> Result<WireguardServerSide, BackendError> {
        let wg = self.wireguard()?;
        let (public_key, _) = self.wg_peers().await?;
        let allowed_ips =
            if wg.client_allowed_ips.is_empty() { vec![wg.address.trunc()] } else { wg.client_allowed_ips.clone() };
        Ok(WireguardServerSide { public_key, endpoint: wg.endpoint.clone(), allowed_ips, dns: wg.client_dns.clone() })
    }

    /// Carries out the VPN users' operations of a plan, checked against what is there first. On failure those
    /// already done are undone.
    pub(crate) async fn apply_vpn(&self, ops: &[&Operation]) -> Result<(), BackendError> {
        let wg = self.wireguard()?;
        let current = self.vpn_accounts().await?;
        for op in ops {
            match op {
                Operation::CreateVpnAccount { after } if current.iter().any(|u| u.username == after.username) => {
                    return Err(conflict(format!("VPN user {} exists already", after.username)));
                }
                Operation::DeleteVpnAccount { before } if !current.iter().any(|u| u.same_enforcement(before)) => {
                    return Err(conflict(format!("VPN user {} is not as planned", before.username)));
                }
                _ => {}
            }
        }
        // Records of peers that never came (an apply stopped between the two) go now; confirmed ones whose peer
        // the interface lost stay, for `restore_lost_peers`.
        let mut records: Vec<StoredAccount> = self
            .vpn_records()?
            .into_iter()
            .filter(|r| r.confirmed || current.iter().any(|c| c.username == r.account.username))
            .collect();
        let mut done: Vec<&Operation> = Vec::new();
        for op in ops {
            let step = match op {
                Operation::CreateVpnAccount { after } => {
                    records.retain(|r| r.account.username != after.username);
                    records.push(StoredAccount { account: after.clone(), confirmed: false });
                    self.save_vpn_records(&records)?;
                    self.set_peer(&wg.device, after, true).await
                }
                Operation::DeleteVpnAccount { before } => self.set_peer(&wg.device, before, false).await,
                _ => Ok(()),
            };
            if let Err(e) = step {
                self.undo_vpn(&done).await;
                return Err(e);
            }
            done.push(op);
        }
        records.retain(|r| {
            !ops.iter()
                .any(|o| matches!(o, Operation::DeleteVpnAccount { before } if before.username == r.account.username))
        });
        self.save_vpn_records(&records)
    }

    /// Marks the users a change made as confirmed, once the whole change is applied: from then on a peer the
    /// interface loses (restarted from a file without it) is put back by [`Self::restore_lost_peers`].
    pub(crate) fn confirm_vpn(&self, ops: &[&Operation]) -> Result<(), BackendError> {
        let mut records = self.vpn_records()?;
        for r in &mut records {
            if ops
                .iter()
                .any(|o| matches!(o, Operation::CreateVpnAccount { after } if after.username == r.account.username))
            {
                r.confirmed = true;
            }
        }
        self.save_vpn_records(&records)
    }

    /// Adds back the peers of confirmed, unexpired users that the interface no longer holds; what was put back.
    pub(crate) async fn restore_lost_peers(&self) -> Result<Vec<String>, BackendError> {
        let Some(wg) = self.settings.wireguard.as_ref() else { return Ok(Vec::new()) };
        let (_, peers) = self.wg_peers().await?;
        let now = chrono::Utc::now();
        let mut restored = Vec::new();
        for r in self.vpn_records()? {
            let live = r.account.expires_at.is_none_or(|t| t > now);
            if r.confirmed && live && !held(&peers, &r.account) {
                self.set_peer(&wg.device, &r.account, true).await?;
                restored.push(format!("VPN user {} ({}) on {}", r.account.username, r.account.address, wg.device));
            }
        }
        Ok(restored)
    }

    /// Undoes VPN operations (a later part of the change failed): peers added are removed, removed ones added back.
    pub(crate) async fn undo_vpn(&self, done: &[&Operation]) {
        let Ok(wg) = self.wireguard() else { return };
        for op in done.iter().rev() {
            let undone = match op {
                Operation::CreateVpnAccount { after } => self.set_peer(&wg.device, after, false).await,
                Operation::DeleteVpnAccount { before } => self.set_peer(&wg.device, before, true).await,
                _ => Ok(()),
            };
            if let Err(e) = undone {
                tracing::error!(target = %self.name, "a VPN user's peer could not be put back: {}", e.message);
            }
        }
        // The records follow the peers: a record without its peer is not listed, and an unconfirmed one goes.
        if let Ok(mut records) = self.vpn_records() {
            for op in done {
                match op {
                    Operation::DeleteVpnAccount { before }
                        if !records.iter().any(|r| r.account.username == before.username) =>
                    {
                        records.push(StoredAccount { account: before.clone(), confirmed: true })
                    }
                    _ => {}
                }
            }
            let _ = self.save_vpn_records(&records);
        }
    }

    async fn set_peer(&self, device: &str, account: &VpnAccount, add: bool) -> Result<(), BackendError> {
        let key = account.public_key.as_deref().ok_or_else(|| {
            BackendError::new(ErrorCode::ValidationError, format!("VPN user {} has no public key", account.username))
        })?;
        let host = account.host().to_string();
        let args: Vec<&str> = if add {
            vec!["set", device, "peer", key, "allowed-ips", &host]
        } else {
            vec!["set", device, "peer", key, "remove"]
        };
        self.settings.runner.wg(&args).await.map(|_| ())
    }

    /// The interface and the users with a handshake in the last three minutes (WireGuard has no sessions).
    pub(crate) async fn wireguard_status(&self) -> Result<(Vec<VpnConnection>, Vec<VpnUser>), BackendError> {
        let Some(wg) = self.settings.wireguard.as_ref() else { return Ok((Vec::new(), Vec::new())) };
        let (_, peers) = self.wg_peers().await?;
        let accounts: Vec<VpnAccount> = self.vpn_records()?.into_iter().map(|r| r.account).collect();
        let now = chrono::Utc::now().timestamp();
        let mut users = Vec::new();
        for peer in &peers {
            let Some(handshake) = peer.latest_handshake.filter(|t| now - t < 180) else { continue };
            let account = accounts.iter().find(|a| a.public_key.as_ref() == Some(&peer.public_key));
            users.push(VpnUser {
                kind: VpnKind::Wireguard,
                name: account.map_or_else(|| format!("peer {}", peer.public_key), |a| a.username.clone()),
                remote_address: peer.endpoint.clone(),
                virtual_address: account.map(|a| a.address.to_string()),
                connected_since: chrono::DateTime::from_timestamp(handshake, 0).map(|t| t.to_rfc3339()),
                bytes_in: peer.rx_bytes,
                bytes_out: peer.tx_bytes,
            });
        }
        let connection = VpnConnection {
            kind: VpnKind::Wireguard,
            name: wg.device.clone(),
            status: "up".into(),
            local: Some(wg.address.to_string()),
            remote: None,
            bytes_in: peers.iter().map(|p| p.rx_bytes).sum(),
            bytes_out: peers.iter().map(|p| p.tx_bytes).sum(),
        };
        Ok((vec![connection], users))
    }
}

fn conflict(message: String) -> BackendError {
    BackendError::new(ErrorCode::Conflict, message)
        .with_hint("read the VPN users again (list_vpn_users) and plan again")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "cFJpdmF0ZUtleU5ldmVyVG9CZVJlYWRBZ2Fpbjk5OTk=\tSGNVQ1l3c3Z6T2pJcGFSbkZNSkpMdGt5S0RKdzNZPQ=\t51820\toff\n\
                        xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\t(none)\t192.0.2.9:40000\t10.8.0.100/32\t1765108800\t1024\t2048\t25\n\
                        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";

    #[test]
    fn the_dump_gives_peers_and_never_the_private_key() {
        let (public, peers) = parse_dump(DUMP).expect("dump");
        assert_eq!(public, "SGNVQ1l3c3Z6T2pJcGFSbkZNSkpMdGt5S0RKdzNZPQ=");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].allowed_ips, vec!["10.8.0.100/32".parse::<IpNet>().expect("net")]);
        assert_eq!(peers[0].endpoint.as_deref(), Some("192.0.2.9:40000"));
        assert_eq!((peers[0].rx_bytes, peers[0].tx_bytes, peers[0].latest_handshake), (1024, 2048, Some(1765108800)));
        assert!(peers[1].allowed_ips.is_empty() && peers[1].latest_handshake.is_none());
        assert!(!format!("{public}{peers:?}").contains("cFJpdmF0ZUtleU5ldmVy"), "the private key is not kept");
        for bad in ["", "onlyone", "a\tb\n1\t2\n"] {
            assert!(parse_dump(bad).is_err(), "{bad:?}");
        }
    }
}
