//! VPN users on pfSense (WAVE2-FACTS §4): an OpenVPN user is a certificate (made for the user, or an existing one
//! named), a local user holding it, and a client-specific override that gives the user its static tunnel address;
//! a WireGuard user is a peer of a tunnel with its one allowed address.
//!
//! Whose objects these are is written on the firewall itself: every object Portcullis makes for a user carries the
//! same marker in its description (` | portcullis vpn user=… server=… address=… created=… expires=…`), so the
//! users survive on pfSense whatever happens to Portcullis' data, and objects made by hand are never taken over.
//! The store only keeps which user names to look for ([`users_key`]), a superset: a name is added before its
//! objects are made and removed after they are gone, so a read never misses a user it should expire.
//!
//! Secrets: the user's password is made here and the client configuration is exported by the firewall; both go
//! into [`Applied::handed_over`](portcullis_core::firewall::Applied) and nowhere else. The certificate's private
//! key stays on the firewall (it is in the exported configuration).

use std::collections::BTreeSet;
use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, HandedOver};
use portcullis_core::model::Timestamp;
use portcullis_core::plan::{ChangePlan, Operation};
use portcullis_core::vpn::{VpnAccount, VpnServer, VpnType, WireguardServerSide};
use portcullis_pfrest::PfRestClient;
use portcullis_pfrest::vpn::{
    CLIENT_EXPORT_PACKAGE, CertificateGenerateRequest, ClientExportRequest, OpenVpnCso, OpenVpnCsoRequest,
    OpenVpnServer, User, UserRequest, WireGuardAddress, WireGuardPeerConfig, WireGuardPeerRequest,
    WireGuardTunnelConfig,
};
use portcullis_store::Store;

use crate::store_error;

const MARKER: &str = " | portcullis vpn ";

/// The store key of the user names to look for on target `target`.
pub(crate) fn users_key(target: &str) -> String {
    format!("pfsense:{target}:vpn_users")
}

/// The user names Portcullis may have VPN objects for on this target.
pub(crate) fn known_users(store: &Store, target: &str) -> Result<BTreeSet<String>, BackendError> {
    let text = store.meta_get(&users_key(target)).map_err(store_error)?.unwrap_or_default();
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn save_users(store: &Store, target: &str, users: &BTreeSet<String>) -> Result<(), BackendError> {
    let text = serde_json::to_string(users).map_err(|e| BackendError::new(ErrorCode::InternalError, e.to_string()))?;
    store.meta_set(&users_key(target), &text).map_err(store_error)
}

/// What the marker in an object's description says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    user: String,
    server: String,
    address: IpAddr,
    /// The certificate's reference id (OpenVPN) and whether Portcullis had it made.
    certificate: Option<String>,
    generated: bool,
    created: Option<Timestamp>,
    expires: Option<Timestamp>,
}

fn stamp(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "never".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

impl Mark {
    fn of(account: &VpnAccount, certificate: Option<&str>, generated: bool) -> Mark {
        Mark {
            user: account.username.clone(),
            server: account.server.clone(),
            address: account.address,
            certificate: certificate.map(str::to_string),
            generated,
            created: account.created_at,
            expires: account.expires_at,
        }
    }

    fn encode(&self) -> String {
        let mut out = format!(
            "VPN user {}{MARKER}user={} server={} address={} created={} expires={}",
            self.user,
            self.user,
            self.server,
            self.address,
            stamp(self.created),
            stamp(self.expires)
        );
        if let Some(refid) = &self.certificate {
            out.push_str(&format!(" cert={refid} generated={}", self.generated));
        }
        out
    }

    /// The marker of a description, if it has one that parses whole; anything else is not Portcullis'.
    fn decode(text: &str) -> Option<Mark> {
        let (_, fields) = text.rsplit_once(MARKER)?;
        let value = |key: &str| {
            fields.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        };
        let time = |key: &str| -> Option<Option<Timestamp>> {
            match value(key)? {
                "never" => Some(None),
                t => DateTime::parse_from_rfc3339(t).ok().map(|t| Some(t.with_timezone(&Utc))),
            }
        };
        Some(Mark {
            user: value("user")?.to_string(),
            server: value("server")?.to_string(),
            address: value("address")?.parse().ok()?,
            certificate: value("cert").map(str::to_string),
            generated: value("generated") == Some("true"),
            created: time("created")?,
            expires: time("expires")?,
        })
    }

    fn account(&self, kind: VpnType, public_key: Option<String>, address: IpAddr) -> VpnAccount {
        VpnAccount {
            username: self.user.clone(),
            kind,
            server: self.server.clone(),
            public_key,
            address,
            certificate: self.certificate.clone().filter(|_| !self.generated),
            created_at: self.created,
            expires_at: self.expires,
        }
    }
}

/// The VPN user a description marks as Portcullis', if it does.
pub(crate) fn user_of(descr: &str) -> Option<String> {
    Mark::decode(descr).map(|m| m.user)
}

/// The host address an override gives (`10.0.1.100/24` → 10.0.1.100).
fn override_address(cso: &OpenVpnCso) -> Option<IpAddr> {
    let text = cso.tunnel_network.as_deref()?.trim();
    text.parse::<IpNet>().map(|n| n.addr()).or_else(|_| text.parse::<IpAddr>()).ok()
}

fn on_server(cso: &OpenVpnCso, vpnif: &str) -> bool {
    cso.server_list.is_empty() || cso.server_list.iter().any(|s| s == vpnif)
}

/// The server's own address with its tunnel network's prefix, for a server whose users can have a static address
/// as Portcullis gives it: remote access (not peer to peer), tun, subnet topology, an IPv4 tunnel network.
fn openvpn_server_address(s: &OpenVpnServer) -> Option<IpNet> {
    let remote_access = matches!(s.mode.as_str(), "server_tls" | "server_user" | "server_tls_user");
    let tun = s.dev_mode.as_deref().is_none_or(|d| d == "tun");
    let subnet = s.topology.as_deref().is_none_or(|t| t == "subnet");
    let net: IpNet = s.tunnel_network.as_deref()?.trim().parse().ok()?;
    let own = net.trunc().hosts().next()?;
    (remote_access && tun && subnet && net.addr().is_ipv4()).then(|| IpNet::new(own, net.prefix_len()).ok())?
}

fn tunnel_address(t: &WireGuardTunnelConfig) -> Option<IpNet> {
    let a = t.addresses.first()?;
    IpNet::new(a.address.parse().ok()?, u8::try_from(a.mask?).ok()?).ok()
}

fn peer_addresses(p: &WireGuardPeerConfig) -> Vec<IpAddr> {
    p.allowedips
        .iter()
        .filter(|a| a.mask == Some(32) || a.mask == Some(128))
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// Everything VPN users are planned against, read now.
struct Read {
    openvpn: Vec<OpenVpnServer>,
    csos: Vec<OpenVpnCso>,
    users: Vec<User>,
    certificates: Vec<portcullis_pfrest::vpn::Certificate>,
    tunnels: Vec<WireGuardTunnelConfig>,
    peers: Vec<WireGuardPeerConfig>,
}

async fn read(c: &PfRestClient) -> Result<Read, BackendError> {
    let (openvpn, csos, users, certificates, tunnels, peers) = tokio::try_join!(
        c.openvpn_server_configs(),
        c.openvpn_csos(),
        c.users(),
        c.certificates(),
        c.wireguard_tunnel_configs(),
        c.wireguard_peer_configs()
    )?;
    Ok(Read {
        openvpn,
        csos,
        users,
        certificates,
        tunnels: tunnels.unwrap_or_default(),
        peers: peers.unwrap_or_default(),
    })
}

impl Read {
    fn servers(&self) -> Vec<VpnServer> {
        let mut out = Vec::new();
        let ours_user = |u: &User| Mark::decode(&u.descr).is_some_and(|m| m.user == u.name);
        for s in &self.openvpn {
            let Some(address) = openvpn_server_address(s) else {
                tracing::debug!(server = %s.vpnif, mode = %s.mode, "an OpenVPN server without static user addresses Portcullis can give (not remote access, tap, net30 or no IPv4 tunnel network)");
                continue;
            };
            let mut server = VpnServer::new(s.vpnif.clone(), VpnType::Openvpn, address);
            server.held = self
                .csos
                .iter()
                .filter(|c| on_server(c, &s.vpnif) && Mark::decode(&c.description).is_none())
                .filter_map(|c| Some((override_address(c)?, format!("the override of {}", c.common_name))))
                .collect();
            server.other_users = self.users.iter().filter(|u| !ours_user(u)).map(|u| u.name.clone()).collect();
            server.certificates = self
                .certificates
                .iter()
                .filter(|c| c.type_.as_deref() == Some("user") && c.caref.is_some() && c.caref == s.caref)
                .map(|c| (c.refid.clone(), c.descr.clone()))
                .collect();
            out.push(server);
        }
        for t in self.tunnels.iter().filter(|t| t.enabled) {
            let Some(address) = tunnel_address(t) else { continue };
            let mut server = VpnServer::new(t.name.clone(), VpnType::Wireguard, address);
            server.held = self
                .peers
                .iter()
                .filter(|p| p.tun == t.name && Mark::decode(&p.descr).is_none())
                .flat_map(|p| {
                    let whose =
                        if p.descr.is_empty() { format!("peer {}", p.publickey) } else { format!("peer {}", p.descr) };
                    peer_addresses(p).into_iter().map(move |a| (a, whose.clone()))
                })
                .collect();
            out.push(server);
        }
        out
    }

    fn accounts(&self) -> Vec<VpnAccount> {
        accounts_of(&self.users, &self.csos, &self.peers)
    }
}

/// The VPN users Portcullis made, from the firewall's users, overrides and peers: each marked as Portcullis' in
/// its description, with the address its override or peer gives it.
fn accounts_of(users: &[User], csos: &[OpenVpnCso], peers: &[WireGuardPeerConfig]) -> Vec<VpnAccount> {
    let mut out = Vec::new();
    for u in users {
        let Some(mark) = Mark::decode(&u.descr).filter(|m| m.user == u.name) else { continue };
        let cso = csos.iter().find(|c| c.common_name == u.name && Mark::decode(&c.description).is_some());
        let address = cso.and_then(override_address).unwrap_or(mark.address);
        out.push(mark.account(VpnType::Openvpn, None, address));
    }
    for p in peers {
        let Some(mark) = Mark::decode(&p.descr) else { continue };
        let address = peer_addresses(p).first().copied().unwrap_or(mark.address);
        out.push(mark.account(VpnType::Wireguard, Some(p.publickey.clone()), address));
    }
    out
}

pub(crate) async fn servers(c: &PfRestClient) -> Result<Vec<VpnServer>, BackendError> {
    Ok(read(c).await?.servers())
}

/// Only what the accounts are made of (users, overrides, peers): this runs on every whole read of a target
/// with VPN users, where servers and certificates are not needed.
pub(crate) async fn accounts(c: &PfRestClient) -> Result<Vec<VpnAccount>, BackendError> {
    let (users, csos, peers) = tokio::try_join!(c.users(), c.openvpn_csos(), c.wireguard_peer_configs())?;
    Ok(accounts_of(&users, &csos, &peers.unwrap_or_default()))
}

/// What a WireGuard client of tunnel `server` needs: its public key, the endpoint (`endpoint_host`, or the host
/// Portcullis reaches pfRest at, with the tunnel's port) and the tunnel network.
pub(crate) async fn wireguard_server_side(
    c: &PfRestClient,
    server: &str,
    endpoint_host: Option<&str>,
) -> Result<WireguardServerSide, BackendError> {
    let tunnels = c.wireguard_tunnel_configs().await?.ok_or_else(|| {
        BackendError::new(ErrorCode::Unsupported, "the WireGuard package (pfSense-pkg-WireGuard) is not installed")
            .with_hint("install it under System > Package Manager, or use an OpenVPN server (type: openvpn)")
    })?;
    let t = tunnels.iter().find(|t| t.name == server).ok_or_else(|| {
        BackendError::new(ErrorCode::NotFound, format!("no WireGuard tunnel {server} on the firewall"))
    })?;
    let public_key = t.publickey.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
        BackendError::new(ErrorCode::UnexpectedResponse, format!("tunnel {server} shows no public key"))
    })?;
    let net = tunnel_address(t)
        .ok_or_else(|| BackendError::new(ErrorCode::Unsupported, format!("tunnel {server} has no address")))?;
    let host = endpoint_host.unwrap_or(c.host());
    let port = t.listenport.clone().unwrap_or_else(|| "51820".into());
    let endpoint = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok(WireguardServerSide { public_key, endpoint, allowed_ips: vec![net.trunc()], dns: Vec::new() })
}

/// A password of 24 characters from the operating system's random source.
fn password() -> Result<String, BackendError> {
    let mut bytes = [0u8; 18];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("no random source for a password: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// pfSense's `expires` (`m/d/Y`): the day after the expiry, so that pfSense refuses logins no earlier than it.
fn expires_day(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| (t + chrono::TimeDelta::days(1)).format("%m/%d/%Y").to_string())
}

fn conflict(message: String) -> BackendError {
    BackendError::new(ErrorCode::Conflict, message)
        .with_hint("the firewall changed since the plan was made; plan again")
}

/// One object made or removed, and how to take it back.
#[derive(Debug)]
enum Undo {
    MadeCertificate { refid: String },
    MadeUser { name: String },
    MadeOverride { common_name: String },
    RemovedOverride { recreate: OpenVpnCsoRequest },
    MadePeer { public_key: String },
    RemovedPeer { recreate: WireGuardPeerRequest },
}

/// The VPN part of one apply: its writes, their undo, and the secrets for the caller.
#[derive(Debug, Default)]
pub(crate) struct VpnWork {
    undo: Vec<Undo>,
    pub handed_over: HandedOver,
    /// Whether a WireGuard peer was written (the tunnel's changes are then applied).
    wireguard_changed: bool,
}

fn wanted_accounts(plan: &ChangePlan) -> Vec<&Operation> {
    plan.operations.iter().filter(|op| op.is_vpn_account()).collect()
}

/// Adds the names of the plan's new users to the store's list (before anything is made).
pub(crate) fn note_new_users(store: &Store, target: &str, plan: &ChangePlan) -> Result<(), BackendError> {
    let mut users = known_users(store, target)?;
    let before = users.len();
    for op in wanted_accounts(plan) {
        if let Operation::CreateVpnAccount { after } = op {
            users.insert(after.username.clone());
        }
    }
    if users.len() != before { save_users(store, target, &users) } else { Ok(()) }
}

/// Removes the plan's deleted users from the store's list (after they are gone).
pub(crate) fn forget_deleted_users(store: &Store, target: &str, plan: &ChangePlan) -> Result<(), BackendError> {
    let mut users = known_users(store, target)?;
    let before = users.len();
    for op in wanted_accounts(plan) {
        if let Operation::DeleteVpnAccount { before } = op {
            users.remove(&before.username);
        }
    }
    if users.len() != before { save_users(store, target, &users) } else { Ok(()) }
}

/// Checks a plan's VPN operations against the firewall as it is now, writing nothing: the server is there, and
/// the name, address and certificate are still free (what the plan judged may have changed since).
pub(crate) async fn check(c: &PfRestClient, plan: &ChangePlan) -> Result<(), BackendError> {
    let ops = wanted_accounts(plan);
    if ops.is_empty() {
        return Ok(());
    }
    let now = read(c).await?;
    for op in ops {
        if let Operation::CreateVpnAccount { after } = op {
            judge_create(&now, after)?;
        }
    }
    Ok(())
}

fn judge_create(now: &Read, account: &VpnAccount) -> Result<(), BackendError> {
    let servers = now.servers();
    let server = servers
        .iter()
        .find(|s| s.name == account.server && s.kind == account.kind)
        .ok_or_else(|| conflict(format!("VPN server {} is no longer on the firewall", account.server)))?;
    if let Some((_, whose)) = server.held.iter().find(|(a, _)| *a == account.address) {
        return Err(BackendError::new(
            ErrorCode::ValidationError,
            format!("static_ip: {} is held by {whose} on server {}", account.address, server.name),
        ));
    }
    if now.accounts().iter().any(|a| a.username == account.username) {
        return Err(conflict(format!("username: VPN user {} exists already", account.username)));
    }
    if account.kind == VpnType::Openvpn {
        if server.other_users.contains(&account.username) {
            return Err(BackendError::new(
                ErrorCode::ValidationError,
                format!(
                    "username: {} is a user of the firewall already, not a VPN user Portcullis made",
                    account.username
                ),
            ));
        }
        if let Some(refid) = &account.certificate
            && !server.certificates.iter().any(|(r, _)| r == refid)
        {
            return Err(conflict(format!(
                "certificate: {refid} is no longer a user certificate of server {}",
                server.name
            )));
        }
    }
    Ok(())
}

impl VpnWork {
    /// Carries out one VPN operation, recording how to undo each write.
    pub(crate) async fn operation(&mut self, c: &PfRestClient, op: &Operation) -> Result<(), BackendError> {
        match op {
            Operation::CreateVpnAccount { after } => {
                let now = read(c).await?;
                judge_create(&now, after)?;
                match after.kind {
                    VpnType::Openvpn => self.create_openvpn(c, &now, after).await,
                    VpnType::Wireguard => self.create_wireguard(c, after).await,
                }
            }
            Operation::DeleteVpnAccount { before } => match before.kind {
                VpnType::Openvpn => self.delete_openvpn(c, before).await,
                VpnType::Wireguard => self.delete_wireguard(c, before).await,
            },
            _ => Ok(()),
        }
    }

    /// Certificate (unless one is named), user, override, then the client configuration: each write undone if a
    /// later one fails.
    async fn create_openvpn(&mut self, c: &PfRestClient, now: &Read, account: &VpnAccount) -> Result<(), BackendError> {
        let server = now
            .openvpn
            .iter()
            .find(|s| s.vpnif == account.server)
            .ok_or_else(|| conflict(format!("OpenVPN server {} is no longer on the firewall", account.server)))?;
        let caref = server.caref.clone().filter(|r| !r.is_empty()).ok_or_else(|| {
            BackendError::new(
                ErrorCode::Unsupported,
                format!("OpenVPN server {} names no certificate authority", server.vpnif),
            )
        })?;
        let (refid, generated) = match &account.certificate {
            Some(refid) => (refid.clone(), false),
            None => {
                let lifetime =
                    account.expires_at.map_or(3650, |t| (t - Utc::now()).num_days().clamp(1, 3650) as u64 + 1);
                let made = c
                    .generate_certificate(&CertificateGenerateRequest {
                        descr: format!("VPN user {} (Portcullis)", account.username),
                        caref,
                        keytype: "RSA".into(),
                        keylen: Some(2048),
                        ecname: None,
                        digest_alg: "sha256".into(),
                        lifetime,
                        dn_commonname: account.username.clone(),
                        type_: "user".into(),
                    })
                    .await?;
                if made.refid.is_empty() {
                    return Err(BackendError::new(
                        ErrorCode::UnexpectedResponse,
                        "POST /api/v2/system/certificate/generate answered without a refid",
                    ));
                }
                self.undo.push(Undo::MadeCertificate { refid: made.refid.clone() });
                (made.refid, true)
            }
        };
        let mark = Mark::of(account, Some(&refid), generated).encode();
        let password = password()?;
        c.create_user(&UserRequest {
            name: account.username.clone(),
            password: password.clone(),
            descr: mark.clone(),
            expires: expires_day(account.expires_at),
            cert: vec![refid.clone()],
        })
        .await?;
        self.undo.push(Undo::MadeUser { name: account.username.clone() });
        let prefix =
            server.tunnel_network.as_deref().and_then(|n| n.parse::<IpNet>().ok()).map_or(24, |n| n.prefix_len());
        c.create_openvpn_cso(&OpenVpnCsoRequest {
            common_name: account.username.clone(),
            description: mark,
            server_list: vec![server.vpnif.clone()],
            tunnel_network: format!("{}/{prefix}", account.address),
        })
        .await?;
        self.undo.push(Undo::MadeOverride { common_name: account.username.clone() });
        self.handed_over.0.insert("password".into(), password);
        if c.has_package(CLIENT_EXPORT_PACKAGE).await? {
            let vpnid = server.vpnid.ok_or_else(|| {
                BackendError::new(
                    ErrorCode::UnexpectedResponse,
                    format!("OpenVPN server {} has no vpnid", server.vpnif),
                )
            })?;
            let export = c
                .export_openvpn_client(&ClientExportRequest {
                    server: vpnid,
                    type_: "confinline".into(),
                    username: account.username.clone(),
                    certref: refid,
                })
                .await?;
            let config = export
                .binary_data
                .as_deref()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    BackendError::new(ErrorCode::UnexpectedResponse, "the client export answered no configuration file")
                })?;
            self.handed_over.0.insert("client_config".into(), config);
        }
        Ok(())
    }

    async fn create_wireguard(&mut self, c: &PfRestClient, account: &VpnAccount) -> Result<(), BackendError> {
        let public_key = account.public_key.clone().ok_or_else(|| {
            BackendError::new(
                ErrorCode::InternalError,
                format!("WireGuard user {} has no public key", account.username),
            )
        })?;
        let mask = if account.address.is_ipv4() { 32 } else { 128 };
        c.create_wireguard_peer(&WireGuardPeerRequest {
            enabled: true,
            tun: account.server.clone(),
            descr: Mark::of(account, None, false).encode(),
            publickey: public_key.clone(),
            allowedips: vec![WireGuardAddress {
                address: account.address.to_string(),
                mask: Some(mask),
                descr: account.username.clone(),
            }],
        })
        .await?;
        self.undo.push(Undo::MadePeer { public_key });
        self.wireguard_changed = true;
        Ok(())
    }

    /// The override first (it can be put back exactly), then the user, then a certificate Portcullis had made.
    /// pfRest never shows a user's password, so a deleted user cannot be put back as it was: once the user is
    /// deleted the removal goes on to its end, and a certificate left behind is only reported.
    async fn delete_openvpn(&mut self, c: &PfRestClient, account: &VpnAccount) -> Result<(), BackendError> {
        let (users, csos) = tokio::try_join!(c.users(), c.openvpn_csos())?;
        let user = users
            .iter()
            .find(|u| u.name == account.username && Mark::decode(&u.descr).is_some_and(|m| m.user == u.name));
        let mark = user.and_then(|u| Mark::decode(&u.descr));
        for cso in csos.iter().filter(|o| o.common_name == account.username && Mark::decode(&o.description).is_some()) {
            let Some(id) = cso.id else { continue };
            c.delete_openvpn_cso(id).await?;
            self.undo.push(Undo::RemovedOverride {
                recreate: OpenVpnCsoRequest {
                    common_name: cso.common_name.clone(),
                    description: cso.description.clone(),
                    server_list: cso.server_list.clone(),
                    tunnel_network: cso.tunnel_network.clone().unwrap_or_default(),
                },
            });
        }
        let Some(user) = user else { return Ok(()) };
        let id = user.id.ok_or_else(|| BackendError::new(ErrorCode::UnexpectedResponse, "a user without an id"))?;
        c.delete_user(id).await?;
        // The point of no return: nothing before it is undone from here on.
        self.undo.clear();
        if let Some(refid) = mark.filter(|m| m.generated).and_then(|m| m.certificate) {
            self.delete_certificate(c, &refid).await;
        }
        Ok(())
    }

    /// Deletes a certificate Portcullis had made for a user now gone, reporting (not failing on) what is left.
    async fn delete_certificate(&self, c: &PfRestClient, refid: &str) {
        let found = match c.certificates().await {
            Ok(all) => all.into_iter().find(|cert| cert.refid == refid),
            Err(e) => {
                tracing::warn!(%refid, error = %e, "the certificate of a deleted VPN user could not be looked up; delete it in System > Certificates");
                return;
            }
        };
        if let Some(id) = found.and_then(|cert| cert.id)
            && let Err(e) = c.delete_certificate(id).await
        {
            tracing::warn!(%refid, error = %e, "the certificate of a deleted VPN user is left; delete it in System > Certificates");
        }
    }

    async fn delete_wireguard(&mut self, c: &PfRestClient, account: &VpnAccount) -> Result<(), BackendError> {
        let peers = c.wireguard_peer_configs().await?.unwrap_or_default();
        let Some(peer) = peers.iter().find(|p| {
            Some(&p.publickey) == account.public_key.as_ref()
                && Mark::decode(&p.descr).is_some_and(|m| m.user == account.username)
        }) else {
            return Ok(());
        };
        let id = peer.id.ok_or_else(|| BackendError::new(ErrorCode::UnexpectedResponse, "a peer without an id"))?;
        c.delete_wireguard_peer(id).await?;
        self.undo.push(Undo::RemovedPeer {
            recreate: WireGuardPeerRequest {
                enabled: peer.enabled,
                tun: peer.tun.clone(),
                descr: peer.descr.clone(),
                publickey: peer.publickey.clone(),
                allowedips: peer.allowedips.clone(),
            },
        });
        self.wireguard_changed = true;
        Ok(())
    }

    /// Applies the WireGuard changes the operations wrote (the peers take effect on the tunnel).
    pub(crate) async fn finish(&mut self, c: &PfRestClient) -> Result<(), BackendError> {
        if self.wireguard_changed {
            c.apply_wireguard().await?;
        }
        Ok(())
    }

    /// Takes back every recorded write, newest first; the failures, described.
    pub(crate) async fn rollback(&mut self, c: &PfRestClient) -> (usize, Vec<String>) {
        let undo = std::mem::take(&mut self.undo);
        self.handed_over = HandedOver::default();
        let mut failures = Vec::new();
        let mut wireguard = false;
        for u in undo.iter().rev() {
            wireguard |= matches!(u, Undo::MadePeer { .. } | Undo::RemovedPeer { .. });
            if let Err(e) = undo_one(c, u).await {
                failures.push(format!("{u:?}: {}", e.message));
            }
        }
        if wireguard && let Err(e) = c.apply_wireguard().await {
            failures.push(format!("apply WireGuard: {}", e.message));
        }
        (undo.len(), failures)
    }
}

async fn undo_one(c: &PfRestClient, u: &Undo) -> Result<(), BackendError> {
    match u {
        Undo::MadeCertificate { refid } => {
            if let Some(id) = c.certificates().await?.into_iter().find(|x| &x.refid == refid).and_then(|x| x.id) {
                c.delete_certificate(id).await?;
            }
        }
        Undo::MadeUser { name } => {
            if let Some(id) = c.users().await?.into_iter().find(|x| &x.name == name).and_then(|x| x.id) {
                c.delete_user(id).await?;
            }
        }
        Undo::MadeOverride { common_name } => {
            let found = c
                .openvpn_csos()
                .await?
                .into_iter()
                .find(|x| &x.common_name == common_name && Mark::decode(&x.description).is_some());
            if let Some(id) = found.and_then(|x| x.id) {
                c.delete_openvpn_cso(id).await?;
            }
        }
        Undo::RemovedOverride { recreate } => {
            c.create_openvpn_cso(recreate).await?;
        }
        Undo::MadePeer { public_key } => {
            let peers = c.wireguard_peer_configs().await?.unwrap_or_default();
            if let Some(id) = peers.into_iter().find(|p| &p.publickey == public_key).and_then(|p| p.id) {
                c.delete_wireguard_peer(id).await?;
            }
        }
        Undo::RemovedPeer { recreate } => {
            c.create_wireguard_peer(recreate).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> VpnAccount {
        VpnAccount {
            username: "remote_user".into(),
            kind: VpnType::Openvpn,
            server: "ovpns1".into(),
            public_key: None,
            address: "10.0.1.100".parse().expect("ip"),
            certificate: None,
            created_at: Some("2026-12-07T10:00:00.5Z".parse().expect("time")),
            expires_at: None,
        }
    }

    #[test]
    fn the_marker_round_trips_and_text_without_it_is_not_ours() {
        let mark = Mark::of(&account(), Some("6750a1b2c3d4e"), true);
        let text = mark.encode();
        assert!(text.starts_with("VPN user remote_user | portcullis vpn "), "{text}");
        assert_eq!(Mark::decode(&text), Some(mark.clone()));
        assert_eq!(mark.account(VpnType::Openvpn, None, account().address).certificate, None, "generated");
        let named = Mark::of(&account(), Some("6750a1b2c3d4e"), false);
        assert_eq!(
            named.account(VpnType::Openvpn, None, account().address).certificate.as_deref(),
            Some("6750a1b2c3d4e")
        );
        assert_eq!(Mark::decode("Remote worker"), None);
        assert_eq!(Mark::decode("x | portcullis vpn user=a server=b"), None, "an incomplete marker is not ours");
    }

    #[test]
    fn only_remote_access_subnet_servers_give_static_addresses() {
        let server = |mode: &str, topology: Option<&str>| OpenVpnServer {
            mode: mode.into(),
            tunnel_network: Some("10.0.1.0/24".into()),
            topology: topology.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            openvpn_server_address(&server("server_tls_user", Some("subnet"))),
            Some("10.0.1.1/24".parse().expect("net"))
        );
        assert_eq!(openvpn_server_address(&server("server_tls", None)), Some("10.0.1.1/24".parse().expect("net")));
        assert_eq!(openvpn_server_address(&server("p2p_tls", Some("subnet"))), None);
        assert_eq!(openvpn_server_address(&server("server_tls", Some("net30"))), None);
    }

    #[test]
    fn pfsense_expires_the_day_after() {
        let t: Timestamp = "2026-12-31T23:00:00Z".parse().expect("time");
        assert_eq!(expires_day(Some(t)).as_deref(), Some("01/01/2027"));
        assert_eq!(expires_day(None), None);
    }
}
