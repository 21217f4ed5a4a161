//! VPN users' objects on pfSense: local users, certificates and their authorities, OpenVPN servers and
//! client-specific overrides, the OpenVPN client export, WireGuard tunnels and peers, and the installed packages
//! that some of these need (`shared/research/WAVE2-FACTS.md` §4).
//!
//! Secrets: requests carry a user's password; answers may carry a certificate's private key or an exported client
//! configuration. None of them is logged here, and the types that read answers have no field for a private key
//! (`prv`) or a tunnel's `privatekey`, so they are dropped as soon as they are parsed.

use serde::{Deserialize, Serialize};

use crate::client::PfRestClient;
use crate::error::PfRestError;
use crate::lenient;

/// The package that WireGuard's endpoints need.
pub const WIREGUARD_PACKAGE: &str = "pfSense-pkg-WireGuard";
/// The package that `POST /api/v2/vpn/openvpn/client_export` needs.
pub const CLIENT_EXPORT_PACKAGE: &str = "pfSense-pkg-openvpn-client-export";

/// `GET /api/v2/system/packages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Package {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub installed_version: Option<String>,
}

/// A certificate authority (`/api/v2/system/certificate_authorities`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateAuthority {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::string")]
    pub refid: String,
}

/// A certificate (`/api/v2/system/certificates`), without its key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::string")]
    pub refid: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub caref: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::opt_string")]
    pub type_: Option<String>,
}

/// Body of `POST /api/v2/system/certificate/generate` (model `CertificateGenerate`): a user certificate signed by
/// `caref`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertificateGenerateRequest {
    pub descr: String,
    pub caref: String,
    pub keytype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keylen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecname: Option<String>,
    pub digest_alg: String,
    pub lifetime: u64,
    pub dn_commonname: String,
    #[serde(rename = "type")]
    pub type_: String,
}

/// A local user (`/api/v2/users`); pfRest never shows the password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub scope: Option<String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub disabled: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    /// `m/d/Y`: the day from which pfSense refuses the user's logins.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub expires: Option<String>,
    /// Certificate `refid`s.
    #[serde(deserialize_with = "lenient::strings")]
    pub cert: Vec<String>,
}

/// Body of `POST /api/v2/user`.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserRequest {
    pub name: String,
    pub password: String,
    pub descr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub cert: Vec<String>,
}

impl std::fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRequest")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("descr", &self.descr)
            .field("expires", &self.expires)
            .field("cert", &self.cert)
            .finish()
    }
}

/// An OpenVPN server's configuration (`/api/v2/vpn/openvpn/servers`): what a user's override and client export
/// need of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenVpnServer {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub vpnid: Option<i64>,
    /// `ovpns<vpnid>`: what an override's `server_list` names.
    #[serde(deserialize_with = "lenient::string")]
    pub vpnif: String,
    #[serde(deserialize_with = "lenient::string")]
    pub mode: String,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub dev_mode: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tunnel_network: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub topology: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub caref: Option<String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub username_as_common_name: bool,
}

/// An OpenVPN client-specific override (`/api/v2/vpn/openvpn/csos`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenVpnCso {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub common_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::strings")]
    pub server_list: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tunnel_network: Option<String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub disable: bool,
}

/// Body of `POST /api/v2/vpn/openvpn/cso`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpenVpnCsoRequest {
    pub common_name: String,
    pub description: String,
    pub server_list: Vec<String>,
    /// The client's address with the server's mask (subnet topology), e.g. `10.0.1.100/24`.
    pub tunnel_network: String,
}

/// Body of `POST /api/v2/vpn/openvpn/client_export` (package pfSense-pkg-openvpn-client-export).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientExportRequest {
    /// The server's `vpnid`.
    pub server: i64,
    #[serde(rename = "type")]
    pub type_: String,
    pub username: String,
    pub certref: String,
}

/// The answer of a client export: the file's name and its contents, base64-encoded.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ClientExport {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub filename: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub binary_data: Option<String>,
}

impl std::fmt::Debug for ClientExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientExport").field("filename", &self.filename).field("binary_data", &"<secret>").finish()
    }
}

/// An address with its mask (a WireGuard tunnel's address or a peer's allowed IP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireGuardAddress {
    #[serde(deserialize_with = "lenient::string")]
    pub address: String,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub mask: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
}

/// A WireGuard tunnel's configuration (`/api/v2/vpn/wireguard/tunnels`), without its private key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireGuardTunnelConfig {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub listenport: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub publickey: Option<String>,
    #[serde(deserialize_with = "lenient::list")]
    pub addresses: Vec<WireGuardAddress>,
}

/// A WireGuard peer's configuration (`/api/v2/vpn/wireguard/peers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireGuardPeerConfig {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::bool")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub tun: String,
    #[serde(deserialize_with = "lenient::string")]
    pub descr: String,
    #[serde(deserialize_with = "lenient::string")]
    pub publickey: String,
    #[serde(deserialize_with = "lenient::list")]
    pub allowedips: Vec<WireGuardAddress>,
}

/// Body of `POST /api/v2/vpn/wireguard/peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WireGuardPeerRequest {
    pub enabled: bool,
    pub tun: String,
    pub descr: String,
    pub publickey: String,
    pub allowedips: Vec<WireGuardAddress>,
}

fn id_query(id: u64) -> Vec<(&'static str, String)> {
    vec![("id", id.to_string())]
}

impl PfRestClient {
    /// The installed packages.
    pub async fn packages(&self) -> Result<Vec<Package>, PfRestError> {
        self.list("/api/v2/system/packages", &[]).await
    }

    /// Whether the package named is installed.
    pub async fn has_package(&self, name: &str) -> Result<bool, PfRestError> {
        Ok(self.packages().await?.iter().any(|p| p.name == name))
    }

    pub async fn certificate_authorities(&self) -> Result<Vec<CertificateAuthority>, PfRestError> {
        self.list("/api/v2/system/certificate_authorities", &[]).await
    }

    pub async fn certificates(&self) -> Result<Vec<Certificate>, PfRestError> {
        self.list("/api/v2/system/certificates", &[]).await
    }

    /// Generates a certificate on the firewall; the answer's private key is not kept.
    pub async fn generate_certificate(&self, req: &CertificateGenerateRequest) -> Result<Certificate, PfRestError> {
        self.post("/api/v2/system/certificate/generate", req).await
    }

    pub async fn delete_certificate(&self, id: u64) -> Result<Certificate, PfRestError> {
        self.delete("/api/v2/system/certificate", &id_query(id)).await
    }

    pub async fn users(&self) -> Result<Vec<User>, PfRestError> {
        self.list("/api/v2/users", &[]).await
    }

    pub async fn create_user(&self, req: &UserRequest) -> Result<User, PfRestError> {
        self.post("/api/v2/user", req).await
    }

    pub async fn delete_user(&self, id: u64) -> Result<User, PfRestError> {
        self.delete("/api/v2/user", &id_query(id)).await
    }

    pub async fn openvpn_server_configs(&self) -> Result<Vec<OpenVpnServer>, PfRestError> {
        self.list("/api/v2/vpn/openvpn/servers", &[]).await
    }

    pub async fn openvpn_csos(&self) -> Result<Vec<OpenVpnCso>, PfRestError> {
        self.list("/api/v2/vpn/openvpn/csos", &[]).await
    }

    pub async fn create_openvpn_cso(&self, req: &OpenVpnCsoRequest) -> Result<OpenVpnCso, PfRestError> {
        self.post("/api/v2/vpn/openvpn/cso", req).await
    }

    pub async fn delete_openvpn_cso(&self, id: u64) -> Result<OpenVpnCso, PfRestError> {
        self.delete("/api/v2/vpn/openvpn/cso", &id_query(id)).await
    }

    /// A client configuration file for a user of an OpenVPN server, which holds the user's private key.
    pub async fn export_openvpn_client(&self, req: &ClientExportRequest) -> Result<ClientExport, PfRestError> {
        self.post("/api/v2/vpn/openvpn/client_export", req).await
    }

    /// WireGuard tunnels' configuration; `None` when the WireGuard package is not installed.
    pub async fn wireguard_tunnel_configs(&self) -> Result<Option<Vec<WireGuardTunnelConfig>>, PfRestError> {
        crate::client::missing_package_is_none(self.list("/api/v2/vpn/wireguard/tunnels", &[]).await)
    }

    /// WireGuard peers' configuration; `None` when the WireGuard package is not installed.
    pub async fn wireguard_peer_configs(&self) -> Result<Option<Vec<WireGuardPeerConfig>>, PfRestError> {
        crate::client::missing_package_is_none(self.list("/api/v2/vpn/wireguard/peers", &[]).await)
    }

    pub async fn create_wireguard_peer(&self, req: &WireGuardPeerRequest) -> Result<WireGuardPeerConfig, PfRestError> {
        self.post("/api/v2/vpn/wireguard/peer", req).await
    }

    pub async fn delete_wireguard_peer(&self, id: u64) -> Result<WireGuardPeerConfig, PfRestError> {
        self.delete("/api/v2/vpn/wireguard/peer", &id_query(id)).await
    }

    /// Applies pending WireGuard changes (`POST /api/v2/vpn/wireguard/apply`); safe to repeat.
    pub async fn apply_wireguard(&self) -> Result<serde_json::Value, PfRestError> {
        self.post("/api/v2/vpn/wireguard/apply", &serde_json::json!({})).await
    }
}
