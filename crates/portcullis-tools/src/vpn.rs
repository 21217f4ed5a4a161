//! VPN users (`create_vpn_user`, `delete_vpn_user`, `list_vpn_users`): accounts on the target's VPN server, made
//! through the change pipeline like any other change (`portcullis_core::vpn`).
//!
//! A WireGuard user's key pair is made here, from the operating system's random source. The plan, the journal and
//! the audit hold the public key only; the private key lives in the closure that writes the client configuration
//! into the answer of the call that applied the change, and nowhere else. A dry run returns no configuration.

use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine;
use portcullis_core::FieldError;
use portcullis_core::model::Timestamp;
use portcullis_core::plan::Intent;
use portcullis_core::vpn::{VpnAccount, VpnAsk, VpnServer, VpnType, check_username, wireguard_client_config};
use schemars::JsonSchema;
use serde::Serialize;

use crate::CallError;
use crate::args::{CreateVpnUserArgs, lifetime};
use crate::work::{IntentJob, IntentScope, PlannedIntent, ReadJob, ReadScope};

/// `create_vpn_user`'s arguments, checked.
pub(crate) struct VpnUserRequest {
    username: String,
    vpn_type: Option<VpnType>,
    server: Option<String>,
    address: Option<IpAddr>,
    certificate: Option<String>,
    expires_at: Option<Timestamp>,
}

impl VpnUserRequest {
    pub fn parse(a: &CreateVpnUserArgs, now: Timestamp) -> Result<Self, CallError> {
        let address = a
            .static_ip
            .as_deref()
            .map(|ip| {
                let text = ip.trim();
                let text = text.strip_suffix("/32").or_else(|| text.strip_suffix("/128")).unwrap_or(text);
                text.parse::<IpAddr>().map_err(|_| {
                    FieldError::new("static_ip", format!("{ip:?} is not an IP address (one host, e.g. 10.8.0.100)"))
                })
            })
            .transpose()?;
        let expires_at = match a.expires.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => lifetime(text)
                    .map_err(|_| {
                        FieldError::new(
                            "expires",
                            format!("{text:?} is neither a duration (30d, 12h) nor an RFC 3339 time"),
                        )
                    })?
                    .expires_at(now),
            },
        };
        Ok(VpnUserRequest {
            username: check_username("username", a.username.trim())?,
            vpn_type: a.vpn_type.as_deref().map(|t| VpnType::parse("type", t)).transpose()?,
            server: a.server.as_deref().map(str::trim).map(str::to_string),
            address,
            certificate: a.certificate.clone().filter(|c| !c.trim().is_empty()),
            expires_at,
        })
    }

    /// The server the user goes on: the one named, or the target's only one of the asked type.
    fn server(&self, target: &str, servers: Vec<VpnServer>) -> Result<VpnServer, CallError> {
        let names = || servers.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ");
        if servers.is_empty() {
            return Err(CallError::from(FieldError::new(
                "target",
                format!(
                    "target {target} has no VPN server Portcullis manages (on Linux: targets.{target}.wireguard names the \
                     interface; on pfSense: an OpenVPN remote-access server in subnet topology, or a WireGuard \
                     tunnel with an address)"
                ),
            )));
        }
        // A certificate is OpenVPN's: it picks the OpenVPN server where there is one (elsewhere it is refused,
        // naming the field).
        let has_openvpn = servers.iter().any(|s| s.kind == VpnType::Openvpn);
        let wanted = self.vpn_type.or((self.certificate.is_some() && has_openvpn).then_some(VpnType::Openvpn));
        let mut fitting: Vec<&VpnServer> = servers.iter().filter(|s| wanted.is_none_or(|t| t == s.kind)).collect();
        if let Some(name) = &self.server {
            fitting.retain(|s| &s.name == name);
            return fitting.first().map(|s| (*s).clone()).ok_or_else(|| {
                CallError::from(FieldError::new(
                    "server",
                    format!("no such VPN server {name} here; there is: {}", names()),
                ))
            });
        }
        match fitting.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(CallError::from(FieldError::new(
                "type",
                format!("target {target} has no {} server; there is: {}", wanted.map_or("", VpnType::as_str), names()),
            ))),
            _ => Err(CallError::from(FieldError::new("server", format!("name one of the servers: {}", names())))),
        }
    }
}

impl VpnUserRequest {
    /// An OpenVPN user: the firewall makes the certificate (unless one is named) and the client configuration,
    /// and hands them over in the apply's answer; this only adds the notice that no copy is kept.
    fn openvpn(self, server: VpnServer) -> PlannedIntent {
        let ask = VpnAsk {
            server,
            username: self.username,
            public_key: None,
            address: self.address,
            certificate: self.certificate,
            expires_at: self.expires_at,
        };
        let reveal: crate::work::Reveal = Box::new(|answer: &serde_json::Value| {
            let mut extra = serde_json::Map::new();
            let notice = match (answer.get("client_config").is_some(), answer.get("password").is_some()) {
                (true, _) => Some(
                    "client_config holds the user's private key and password holds the user's password; Portcullis \
                     keeps no copy of either, so they cannot be shown again",
                ),
                (false, true) => Some(
                    "password holds the user's password and Portcullis keeps no copy; the firewall has no client \
                     export package, so export the client configuration in its GUI (VPN > OpenVPN > Client Export) \
                     or install pfSense-pkg-openvpn-client-export",
                ),
                (false, false) => None,
            };
            if let Some(notice) = notice {
                extra.insert("secret_notice".into(), notice.into());
            }
            extra
        });
        PlannedIntent {
            intent: Intent::CreateVpnUser(Box::new(ask)),
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: None,
            reveal: Some(reveal),
        }
    }
}

/// A WireGuard key pair: (private, public), each as `wg` writes keys.
fn wireguard_keypair() -> Result<(String, String), CallError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| CallError::internal(format!("no random source for a WireGuard key: {e}")))?;
    let secret = x25519_dalek::StaticSecret::from(secret);
    let public = x25519_dalek::PublicKey::from(&secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok((b64.encode(secret.to_bytes()), b64.encode(public.as_bytes())))
}

/// The account a plan's answer says was made.
fn created_account(answer: &serde_json::Value) -> Option<VpnAccount> {
    answer["plan"]
        .as_array()?
        .iter()
        .find(|op| op["op"] == "create_vpn_account")
        .and_then(|op| serde_json::from_value(op["after"].clone()).ok())
}

#[async_trait]
impl IntentJob for VpnUserRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let server = self.server(&at.target.name, at.target.firewall.vpn_servers().await?)?;
        if server.kind == VpnType::Openvpn {
            return Ok(self.openvpn(server));
        }
        if self.certificate.is_some() {
            return Err(CallError::from(FieldError::new(
                "certificate",
                "a WireGuard user gets a key pair, not a certificate: leave certificate out (certificates are OpenVPN's)",
            )));
        }
        // The interface must be up and answer before a key is made for it.
        let side = at.target.firewall.wireguard_server_side(&server.name).await?;
        let (private_key, public_key) = wireguard_keypair()?;
        let ask = VpnAsk {
            server,
            username: self.username,
            public_key: Some(public_key),
            address: self.address,
            certificate: None,
            expires_at: self.expires_at,
        };
        let reveal: crate::work::Reveal = Box::new(move |answer: &serde_json::Value| {
            let mut extra = serde_json::Map::new();
            if let Some(account) = created_account(answer) {
                extra.insert("client_config".into(), wireguard_client_config(&side, &private_key, &account).into());
                extra.insert(
                    "secret_notice".into(),
                    "client_config holds the user's private key; Portcullis keeps no copy, so it cannot be shown again"
                        .into(),
                );
            }
            extra
        });
        Ok(PlannedIntent {
            intent: Intent::CreateVpnUser(Box::new(ask)),
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: None,
            reveal: Some(reveal),
        })
    }
}

/// `list_vpn_users`.
pub(crate) struct VpnUsersRead;

#[derive(Debug, Serialize, JsonSchema)]
pub struct VpnUsersResult {
    pub target: String,
    pub count: usize,
    /// Every user of the target's VPN servers that Portcullis manages; no secrets.
    pub users: Vec<VpnAccount>,
}

#[async_trait]
impl ReadJob for VpnUsersRead {
    type Output = VpnUsersResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<VpnUsersResult, CallError> {
        let users = at.target.firewall.vpn_accounts().await?;
        Ok(VpnUsersResult { target: at.target.name.clone(), count: users.len(), users })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_are_wireguard_keys_and_differ() {
        let (private, public) = wireguard_keypair().expect("keys");
        assert!(portcullis_core::vpn::check_wireguard_key("k", &private).is_ok());
        assert!(portcullis_core::vpn::check_wireguard_key("k", &public).is_ok());
        assert_ne!(private, public);
        assert_ne!(wireguard_keypair().expect("keys").0, private);
    }
}
