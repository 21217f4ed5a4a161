//! VPN users: a person's account on a VPN server of the firewall — on a Linux target a WireGuard peer of a
//! configured interface — with its tunnel address, made and removed as a change like any other, together with the
//! grant of that address ([`plan_create`], [`plan_delete`]).
//!
//! Secrets never enter the model: an account holds its peer's public key, the private key exists only in the
//! answer of the call that made it.

use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};
use crate::model::{RuleSet, Timestamp};
use crate::plan::{Addresses, ChangePlan, Operation};

/// The kind of VPN an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VpnType {
    Wireguard,
    Openvpn,
}

impl VpnType {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "wireguard" | "wg" => Ok(VpnType::Wireguard),
            "openvpn" => Ok(VpnType::Openvpn),
            other => Err(FieldError::new(field, format!("{other:?} is not a VPN type: wireguard or openvpn"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VpnType::Wireguard => "wireguard",
            VpnType::Openvpn => "openvpn",
        }
    }
}

/// A VPN user name: 1 to 32 letters, digits, `.`, `-` and `_` (pfSense's rule for user names), so it is safe in
/// a certificate's common name, a file name and a command line.
pub fn check_username(field: &str, name: &str) -> FieldResult<String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(name.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{name:?} is not a VPN user name: 1 to 32 letters, digits, '.', '-' or '_', not starting with '.' or '-'"
            ),
        ))
    }
}

/// A WireGuard key as `wg` writes it: 32 bytes in standard base64 (44 characters ending in `=`).
pub fn check_wireguard_key(field: &str, key: &str) -> FieldResult<String> {
    let b = key.as_bytes();
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    // 43 characters carry 258 bits: the last one holds 4 bits of the key and 2 zero bits.
    let last_ok = b.get(42).is_some_and(|c| b"AEIMQUYcgkosw048".contains(c));
    if b.len() == 44 && b[43] == b'=' && b[..43].iter().all(alphabet) && last_ok {
        Ok(key.to_string())
    } else {
        Err(FieldError::new(field, "not a WireGuard key: 32 bytes in base64, 44 characters ending in '='"))
    }
}

/// One VPN user as the firewall holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VpnAccount {
    pub username: String,
    #[serde(rename = "type")]
    pub kind: VpnType,
    /// The server or interface the account belongs to (a WireGuard interface's name).
    pub server: String,
    /// The peer's public key (WireGuard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The account's tunnel address.
    pub address: IpAddr,
    /// The certificate the user authenticates with (OpenVPN), named by its description or reference id, when it
    /// existed before the user; `None` when Portcullis had one made for the user (and removes it with the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl VpnAccount {
    /// The account's address as one host.
    pub fn host(&self) -> IpNet {
        IpNet::from(self.address)
    }

    /// Whether two accounts are the same on the firewall (what a read-back must show).
    pub fn same_enforcement(&self, other: &VpnAccount) -> bool {
        self.username == other.username
            && self.kind == other.kind
            && self.server == other.server
            && self.public_key == other.public_key
            && self.address == other.address
            && self.expires_at.map(|t| t.timestamp()) == other.expires_at.map(|t| t.timestamp())
    }
}

/// A VPN server as configuration or the firewall describes it: its name, the tunnel network and the server's own
/// address in it, and what others hold on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnServer {
    pub name: String,
    pub kind: VpnType,
    /// The server's own address with the tunnel network's prefix (`10.8.0.1/24`).
    pub address: IpNet,
    /// Addresses of the tunnel network the firewall gives to clients Portcullis does not manage, with whose they
    /// are (a pfSense override made by hand, a peer added in the GUI).
    pub held: Vec<(IpAddr, String)>,
    /// User names the server's firewall has that are not VPN users Portcullis made.
    pub other_users: Vec<String>,
    /// The certificates a user of this server may authenticate with (OpenVPN: user certificates signed by the
    /// server's authority), as (reference id, description).
    pub certificates: Vec<(String, String)>,
}

impl VpnServer {
    /// A server nothing else is known of.
    pub fn new(name: impl Into<String>, kind: VpnType, address: IpNet) -> Self {
        VpnServer {
            name: name.into(),
            kind,
            address,
            held: Vec::new(),
            other_users: Vec::new(),
            certificates: Vec::new(),
        }
    }

    /// The reference id of the certificate `name` (a description or a reference id) names.
    fn certificate(&self, name: &str) -> FieldResult<String> {
        if let Some((refid, _)) = self.certificates.iter().find(|(refid, _)| refid == name) {
            return Ok(refid.clone());
        }
        let described: Vec<&(String, String)> = self.certificates.iter().filter(|(_, d)| d == name).collect();
        match described.as_slice() {
            [(refid, _)] => Ok(refid.clone()),
            [] => {
                let known: Vec<&str> = self.certificates.iter().map(|(_, d)| d.as_str()).collect();
                Err(FieldError::new(
                    "certificate",
                    if known.is_empty() {
                        format!(
                            "no user certificate {name:?} signed by server {}'s authority; leave certificate out to \
                             have one made",
                            self.name
                        )
                    } else {
                        format!(
                            "no user certificate {name:?} signed by server {}'s authority; there are: {}",
                            self.name,
                            known.join(", ")
                        )
                    },
                ))
            }
            many => Err(FieldError::new(
                "certificate",
                format!(
                    "{} certificates are described {name:?}; name one by its reference id: {}",
                    many.len(),
                    many.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

impl VpnServer {
    /// Whether `addr` can be a user's: inside the tunnel network, not its network or broadcast address, not the
    /// server's own.
    fn check_address(&self, field: &str, addr: IpAddr) -> FieldResult<()> {
        let net = self.address.trunc();
        let reason = if !net.contains(&addr) {
            Some(format!("outside server {}'s tunnel network {net}", self.name))
        } else if addr == self.address.addr() {
            Some(format!("server {}'s own address", self.name))
        } else if let Some((_, whose)) = self.held.iter().find(|(a, _)| *a == addr) {
            Some(format!("held by {whose} on server {}", self.name))
        } else if addr == net.network()
            || (matches!(net, IpNet::V4(_)) && addr == net.broadcast() && net.prefix_len() < 31)
        {
            Some(format!("the network or broadcast address of {net}"))
        } else {
            None
        };
        match reason {
            Some(why) => Err(FieldError::new(field, format!("{addr} is {why}"))),
            None => Ok(()),
        }
    }

    /// The first address of the tunnel network no account holds (after the server's own).
    pub fn free_address(&self, state: &RuleSet) -> Option<IpAddr> {
        let taken = |a: &IpAddr| state.vpn_accounts.iter().any(|u| u.server == self.name && u.address == *a);
        self.address.trunc().hosts().take(65_536).find(|a| self.check_address("static_ip", *a).is_ok() && !taken(a))
    }
}

/// What `create_vpn_user` asks for, its arguments checked and its server looked up in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnAsk {
    pub server: VpnServer,
    pub username: String,
    /// Generated by Portcullis for WireGuard; only the public half is planned.
    pub public_key: Option<String>,
    /// `None`: the first free address of the tunnel network.
    pub address: Option<IpAddr>,
    /// An existing certificate to authenticate with (OpenVPN); `None`: one is made for the user.
    pub certificate: Option<String>,
    pub expires_at: Option<Timestamp>,
}

/// Plans a new VPN user and the grant of its address.
pub fn plan_create(state: &RuleSet, ask: &VpnAsk, now: Timestamp) -> FieldResult<ChangePlan> {
    if let Some(same) = state.vpn_accounts.iter().find(|u| u.username == ask.username) {
        return Err(FieldError::new(
            "username",
            format!(
                "{} exists already (on {}, address {}); delete_vpn_user it first",
                same.username, same.server, same.address
            ),
        ));
    }
    if ask.server.other_users.iter().any(|u| u == &ask.username) {
        return Err(FieldError::new(
            "username",
            format!(
                "{} is a user of the firewall already, not a VPN user Portcullis made; choose another name",
                ask.username
            ),
        ));
    }
    let certificate = match (&ask.certificate, ask.server.kind) {
        (Some(name), VpnType::Openvpn) => Some(ask.server.certificate(name)?),
        (Some(_), VpnType::Wireguard) => {
            return Err(FieldError::new(
                "certificate",
                "a WireGuard user gets a key pair, not a certificate: leave certificate out (certificates are \
                 OpenVPN's)",
            ));
        }
        (None, _) => None,
    };
    if let Some(t) = ask.expires_at
        && t <= now
    {
        return Err(FieldError::new("expires", format!("{} is not in the future", t.to_rfc3339())));
    }
    let address = match ask.address {
        Some(a) => {
            ask.server.check_address("static_ip", a)?;
            if let Some(holder) = state.vpn_accounts.iter().find(|u| u.server == ask.server.name && u.address == a) {
                return Err(FieldError::new("static_ip", format!("{a} is {}'s already", holder.username)));
            }
            a
        }
        None => ask.server.free_address(state).ok_or_else(|| {
            FieldError::new(
                "static_ip",
                format!("server {}'s tunnel network {} is full", ask.server.name, ask.server.address.trunc()),
            )
        })?,
    };
    if let Some(key) = &ask.public_key
        && state.vpn_accounts.iter().any(|u| u.public_key.as_ref() == Some(key))
    {
        return Err(FieldError::new("public_key", "another VPN user has this key"));
    }
    let account = VpnAccount {
        username: ask.username.clone(),
        kind: ask.server.kind,
        server: ask.server.name.clone(),
        public_key: ask.public_key.clone(),
        address,
        certificate,
        created_at: Some(now),
        expires_at: ask.expires_at,
    };
    let reason = format!("VPN user {}", account.username);
    let addresses = Addresses::from(account.host());
    let mut plan = crate::plan::plan(
        state,
        &crate::plan::Intent::Grant { addresses, alias: None, expires_at: ask.expires_at, reason, rule: None },
        now,
    )?;
    plan.summary = format!(
        "create {} user {} on {} with address {}{}",
        account.kind.as_str(),
        account.username,
        account.server,
        account.address,
        account.expires_at.map(|t| format!(", until {}", t.to_rfc3339())).unwrap_or_default()
    );
    plan.operations.push(Operation::CreateVpnAccount { after: account });
    Ok(plan)
}

/// Plans the removal of a VPN user and of the grant its creation made (the address in the grant list, if it is
/// still there).
pub fn plan_delete(state: &RuleSet, username: &str, now: Timestamp) -> FieldResult<ChangePlan> {
    let account = state.vpn_accounts.iter().find(|u| u.username == username).ok_or_else(|| {
        let known: Vec<&str> = state.vpn_accounts.iter().map(|u| u.username.as_str()).collect();
        FieldError::new(
            "username",
            if known.is_empty() {
                format!("no VPN user {username}: there are none")
            } else {
                format!("no VPN user {username}; there are: {}", known.join(", "))
            },
        )
    })?;
    let granted = state
        .alias(crate::plan::GRANT_ALIAS)
        .is_some_and(|a| a.entries.iter().any(|e| e.value == crate::model::net_to_string(&account.host())));
    let mut plan = if granted {
        crate::plan::plan(
            state,
            &crate::plan::Intent::Revoke { addresses: Addresses::from(account.host()), alias: None },
            now,
        )?
    } else {
        ChangePlan { summary: String::new(), operations: Vec::new(), warnings: Vec::new(), facts: Default::default() }
    };
    plan.summary = format!("delete {} user {} ({})", account.kind.as_str(), account.username, account.address);
    plan.operations.push(Operation::DeleteVpnAccount { before: account.clone() });
    Ok(plan)
}

/// The removal of the accounts whose time has come, for the reconciler's expiry plan (their grants expire with
/// them, as entries of the grant list with the same time).
pub fn expired_accounts(state: &RuleSet, now: Timestamp) -> Vec<Operation> {
    state
        .vpn_accounts
        .iter()
        .filter(|u| u.expires_at.is_some_and(|t| t <= now))
        .map(|u| Operation::DeleteVpnAccount { before: u.clone() })
        .collect()
}

/// When the next account expires.
pub fn next_account_end(state: &RuleSet) -> Option<Timestamp> {
    state.vpn_accounts.iter().filter_map(|u| u.expires_at).min()
}

#[cfg(test)]
mod tests;

/// What a WireGuard client needs of its server besides its own key and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireguardServerSide {
    pub public_key: String,
    /// `host:port` the clients connect to.
    pub endpoint: String,
    /// What the client sends through the tunnel.
    pub allowed_ips: Vec<IpNet>,
    pub dns: Vec<IpAddr>,
}

/// The client's configuration file (`wg-quick` format) for `account`, holding its private key: returned once, by
/// the call that made it, and never stored.
pub fn wireguard_client_config(server: &WireguardServerSide, private_key: &str, account: &VpnAccount) -> String {
    let mut out = String::from("[Interface]\n");
    out.push_str(&format!("PrivateKey = {private_key}\nAddress = {}\n", account.host()));
    if !server.dns.is_empty() {
        let dns: Vec<String> = server.dns.iter().map(ToString::to_string).collect();
        out.push_str(&format!("DNS = {}\n", dns.join(", ")));
    }
    let allowed: Vec<String> = server.allowed_ips.iter().map(ToString::to_string).collect();
    out.push_str(&format!(
        "\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = {}\nPersistentKeepalive = 25\n",
        server.public_key,
        server.endpoint,
        allowed.join(", ")
    ));
    out
}
