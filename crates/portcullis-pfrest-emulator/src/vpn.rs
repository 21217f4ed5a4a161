//! VPN users' objects (WAVE2-FACTS §4): local users, certificates and authorities, OpenVPN servers and
//! client-specific overrides, the client export, WireGuard tunnels and peers, and the installed packages.
//!
//! They are config-backed collections like rules and aliases (`server::Coll`), validated against the schema; this
//! module holds what pfRest does beyond the schema: the values it stamps on creation (a `refid`, a user's `uid`, a
//! tunnel's name and public key), the objects a factory-configured remote-access box starts with, references
//! between the objects, certificate generation, the client export and the WireGuard apply.
//!
//! Certificates are not real X.509: the emulator writes PEM blocks whose content names the certificate, which is
//! all a client of pfRest can see of them without parsing (and Portcullis does not parse them).

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::model::{ApiError, Obj, ValidateCtx, to_repr, validate};
use crate::schema::model;
use crate::state::{Config, Inner};

/// The VPN users' objects of the config.
#[derive(Debug, Clone, Default)]
pub(crate) struct VpnObjects {
    pub users: Vec<Obj>,
    pub certificates: Vec<Obj>,
    pub authorities: Vec<Obj>,
    pub openvpn_servers: Vec<Obj>,
    pub csos: Vec<Obj>,
    pub wireguard_tunnels: Vec<Obj>,
    pub wireguard_peers: Vec<Obj>,
}

/// The seeded CA's and server certificate's `refid`s.
const CA_REFID: &str = "6750a1b2c3d4e";
const SERVER_CERT_REFID: &str = "6750a1b2c3d4f";
/// The seeded WireGuard tunnel's private key (its public key is what the status fixture shows).
const TUNNEL_PRIVATE_KEY: &str = "EMU9YtG4wJ8Hq2mN0pVx3bC6dF1kL7sR5aZ+uW/eQnM=";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A PEM block whose content says what it stands for.
fn pem(label: &str, what: &str) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(format!("pfrest-emulator {label}: {what}"));
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

/// PHP's `uniqid()`: 13 hex digits from the time in microseconds (pfSense's `refid`s).
pub(crate) fn uniqid() -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    *last = (*last + 1).max(now);
    format!("{:08x}{:05x}", (*last / 1_000_000) as u64, (*last % 1_000_000) as u64)
}

/// A WireGuard public key from its private key, as `wg pubkey` derives it.
pub(crate) fn wireguard_public_key(private: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes: [u8; 32] = engine.decode(private.trim()).ok()?.try_into().ok()?;
    let secret = x25519_dalek::StaticSecret::from(bytes);
    Some(engine.encode(x25519_dalek::PublicKey::from(&secret).as_bytes()))
}

/// The seeded tunnel's public key (the status fixture shows the same).
pub(crate) fn seeded_tunnel_public_key() -> String {
    wireguard_public_key(TUNNEL_PRIVATE_KEY).unwrap_or_default()
}

fn seed_ctx<'a>(vpn: &'a VpnObjects, now: i64) -> ValidateCtx<'a> {
    ValidateCtx {
        peers: &[],
        self_id: None,
        initial: None,
        aliases: &[],
        limiters: &[],
        vpn: Some(vpn),
        repr: crate::model::InterfaceRepresentation::Id,
        client: "(system)",
        keep_read_only: true,
        now,
    }
}

fn seeded(model_name: &str, request: Value, vpn: &VpnObjects, now: i64) -> Obj {
    let request = request.as_object().cloned().unwrap_or_default();
    validate(model(model_name), &request, &seed_ctx(vpn, now))
        .unwrap_or_else(|e| panic!("seeded {model_name} is valid: {}", e.message))
}

/// A remote-access box as an administrator leaves it after the OpenVPN wizard and the WireGuard package: the
/// `admin` user, a CA and the server's certificate, an OpenVPN server (SSL/TLS + user auth, subnet topology,
/// tunnel 10.0.1.0/24) and a WireGuard tunnel `tun_wg0` (10.6.0.1/24).
pub(crate) fn seed(now: i64) -> VpnObjects {
    let mut vpn = VpnObjects::default();
    vpn.users.push(seeded(
        "User",
        json!({"name": "admin", "password": "$2y$10$emulated.admin.hash", "uid": 0, "scope": "system",
               "priv": ["page-all"], "descr": "System Administrator"}),
        &vpn,
        now,
    ));
    vpn.authorities.push(seeded(
        "CertificateAuthority",
        json!({"descr": "Remote access CA", "refid": CA_REFID, "crt": b64(&pem("CERTIFICATE", "CN=Remote access CA")),
               "prv": b64(&pem("PRIVATE KEY", "Remote access CA"))}),
        &vpn,
        now,
    ));
    vpn.certificates.push(seeded(
        "Certificate",
        json!({"descr": "OpenVPN server", "refid": SERVER_CERT_REFID, "caref": CA_REFID, "type": "server",
               "crt": b64(&pem("CERTIFICATE", "CN=openvpn.home.arpa")),
               "prv": b64(&pem("PRIVATE KEY", "openvpn.home.arpa"))}),
        &vpn,
        now,
    ));
    vpn.openvpn_servers.push(seeded(
        "OpenVPNServer",
        json!({"vpnid": 1, "vpnif": "ovpns1", "description": "Remote access (SSL/TLS + User Auth) UDP4:1194",
               "mode": "server_tls_user", "authmode": ["Local Database"], "dev_mode": "tun", "protocol": "UDP4",
               "interface": "wan", "local_port": "1194", "use_tls": false, "caref": CA_REFID,
               "certref": SERVER_CERT_REFID, "dh_length": "2048", "ecdh_curve": "none",
               "data_ciphers": ["AES-256-GCM", "CHACHA20-POLY1305"], "data_ciphers_fallback": "AES-256-CBC",
               "digest": "SHA256", "tunnel_network": "10.0.1.0/24", "topology": "subnet"}),
        &vpn,
        now,
    ));
    vpn.wireguard_tunnels.push(seeded(
        "WireGuardTunnel",
        json!({"name": "tun_wg0", "enabled": true, "descr": "road warriors", "listenport": "51820",
               "privatekey": TUNNEL_PRIVATE_KEY, "publickey": seeded_tunnel_public_key(), "mtu": 1420,
               "addresses": [{"address": "10.6.0.1", "mask": 24, "descr": ""}]}),
        &vpn,
        now,
    ));
    // The peer the status fixture shows with a recent handshake.
    vpn.wireguard_peers.push(seeded(
        "WireGuardPeer",
        json!({"enabled": true, "tun": "tun_wg0", "descr": "laptop", "endpoint": "198.51.100.77", "port": "51820",
               "persistentkeepalive": 25, "publickey": LAPTOP_PUBLIC_KEY,
               "allowedips": [{"address": "10.6.0.2", "mask": 32, "descr": ""}]}),
        &vpn,
        now,
    ));
    vpn
}

/// The seeded peer's public key.
const LAPTOP_PUBLIC_KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

/// `GET /api/v2/status/wireguard/peers`: every enabled peer of the config, the seeded one with its handshake and
/// traffic, the others (added since) as never seen.
pub(crate) fn wireguard_peer_status(vpn: &VpnObjects) -> Vec<Value> {
    let fixture = crate::status::wireguard_peers();
    vpn.wireguard_peers
        .iter()
        .filter(|p| p.get("enabled").and_then(Value::as_bool) == Some(true))
        .map(|p| {
            let key = p.get("publickey").and_then(Value::as_str).unwrap_or_default();
            if let Some(seen) = fixture.iter().find(|f| f["public_key"] == key) {
                return seen.clone();
            }
            let allowed: Vec<String> = p
                .get("allowedips")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|a| format!("{}/{}", a["address"].as_str().unwrap_or_default(), a["mask"]))
                .collect();
            crate::status::build(
                "WireGuardPeerStatus",
                json!({"tunnel_device": p.get("tun").cloned().unwrap_or(Value::Null), "public_key": key,
                       "endpoint": "(none)", "allowed_ips": allowed, "latest_handshake": 0, "transfer_rx": 0,
                       "transfer_tx": 0, "persistent_keepalive": "off",
                       "descr": p.get("descr").cloned().unwrap_or(Value::Null)}),
            )
        })
        .collect()
}

/// The installed packages as `GET /api/v2/system/packages` lists them.
pub(crate) fn packages(inner: &Inner) -> Vec<Value> {
    let mut names = vec![("pfSense-pkg-RESTAPI", "2.10.0")];
    if inner.cfg.wireguard_installed {
        names.push(("pfSense-pkg-WireGuard", "0.2.9"));
    }
    if inner.cfg.client_export_installed {
        names.push(("pfSense-pkg-openvpn-client-export", "1.9.5"));
    }
    names
        .into_iter()
        .map(|(name, version)| {
            json!({"name": name, "shortname": name.trim_start_matches("pfSense-pkg-"), "descr": name,
                   "installed_version": version, "latest_version": version, "update_available": false})
        })
        .collect()
}

/// 404 `MODEL_MISSING_REQUIRED_PACKAGE` when the endpoint's model needs a package that is not installed.
pub(crate) fn missing_package(inner: &Inner, model_packages: &[String]) -> Option<ApiError> {
    let installed: Vec<String> =
        packages(inner).iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect();
    let missing = model_packages.iter().find(|p| !installed.contains(p))?;
    Some(ApiError::not_found(
        "MODEL_MISSING_REQUIRED_PACKAGE",
        format!("The requested action requires the '{missing}' package but it is not installed."),
    ))
}

/// Whether a foreign model's object with `field` = `value` exists among the VPN objects; `None` when the model is
/// not one of them. Integer and string forms of a value match (`server` = vpnid).
pub(crate) fn foreign_exists(vpn: &VpnObjects, foreign_model: &str, field: &str, value: &Value) -> Option<bool> {
    let items = match foreign_model {
        "User" => &vpn.users,
        "Certificate" => &vpn.certificates,
        "CertificateAuthority" => &vpn.authorities,
        "OpenVPNServer" => &vpn.openvpn_servers,
        "WireGuardTunnel" => &vpn.wireguard_tunnels,
        _ => return None,
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(items.iter().any(|o| o.get(field).is_some_and(|v| text(v) == text(value))))
}

/// The values pfSense gives a new object itself: a certificate's or authority's `refid`, a user's `uid` and
/// `scope`, a tunnel's interface name and the public key of its private key, a server's `vpnid` and `vpnif`.
pub(crate) fn stamp_created(model_class: &str, obj: &mut Obj, peers: &[Obj]) {
    let max_of = |field: &str| peers.iter().filter_map(|p| p.get(field).and_then(Value::as_i64)).max();
    match model_class {
        "Certificate" | "CertificateAuthority" => {
            obj.insert("refid".into(), json!(uniqid()));
        }
        "User" => {
            obj.insert("uid".into(), json!(max_of("uid").map_or(2000, |m| (m + 1).max(2000))));
            obj.insert("scope".into(), json!("user"));
        }
        "WireGuardTunnel" => {
            let taken: Vec<&str> = peers.iter().filter_map(|p| p.get("name").and_then(Value::as_str)).collect();
            let name = (0..).map(|n| format!("tun_wg{n}")).find(|n| !taken.contains(&n.as_str())).unwrap_or_default();
            obj.insert("name".into(), json!(name));
            let key = obj.get("privatekey").and_then(Value::as_str).and_then(wireguard_public_key);
            obj.insert("publickey".into(), key.map_or(Value::Null, Value::String));
        }
        "OpenVPNServer" => {
            let vpnid = max_of("vpnid").unwrap_or(0) + 1;
            obj.insert("vpnid".into(), json!(vpnid));
            obj.insert("vpnif".into(), json!(format!("ovpns{vpnid}")));
        }
        _ => {}
    }
}

/// 409 when an object about to be deleted is still used: a certificate a user or a server names, an authority a
/// certificate or server names, a tunnel a peer is on, pfSense's own `admin`.
pub(crate) fn check_deletable(model_class: &str, vpn: &VpnObjects, obj: &Obj) -> Result<(), ApiError> {
    let value = |o: &Obj, f: &str| o.get(f).cloned().unwrap_or(Value::Null);
    let refid = value(obj, "refid");
    let names = |list: &Value, v: &Value| list.as_array().is_some_and(|l| l.contains(v)) || list == v;
    let used_by = match model_class {
        "Certificate" => vpn
            .users
            .iter()
            .find(|u| names(&value(u, "cert"), &refid))
            .map(|u| format!("user {}", value(u, "name")))
            .or_else(|| {
                vpn.openvpn_servers
                    .iter()
                    .find(|s| value(s, "certref") == refid)
                    .map(|s| format!("OpenVPN server {}", value(s, "vpnif")))
            }),
        "CertificateAuthority" => vpn
            .certificates
            .iter()
            .find(|c| value(c, "caref") == refid)
            .map(|c| format!("certificate {}", value(c, "descr")))
            .or_else(|| {
                vpn.openvpn_servers
                    .iter()
                    .find(|s| value(s, "caref") == refid)
                    .map(|s| format!("OpenVPN server {}", value(s, "vpnif")))
            }),
        "WireGuardTunnel" => vpn
            .wireguard_peers
            .iter()
            .find(|p| value(p, "tun") == value(obj, "name"))
            .map(|p| format!("peer {}", value(p, "publickey"))),
        "User" if value(obj, "scope") == json!("system") => {
            return Err(ApiError::bad_request("USER_CANNOT_DELETE_SYSTEM_USER", "System users cannot be deleted."));
        }
        _ => None,
    };
    match used_by {
        Some(user) => Err(ApiError::new(
            409,
            "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED",
            format!("Object cannot be deleted because it is referenced by another existing object: {user}."),
        )),
        None => Ok(()),
    }
}

fn validate_ctx<'a>(vpn: &'a VpnObjects, client: &'a str) -> ValidateCtx<'a> {
    ValidateCtx { keep_read_only: false, client, now: crate::util::now(), ..seed_ctx(vpn, 0) }
}

/// `POST /api/v2/system/certificate/generate`: a certificate signed by `caref`, stored with its key; the answer
/// shows the generated certificate (with `crt`, without the sensitive `prv`).
pub(crate) async fn generate_certificate(
    inner: &Inner,
    data: &Map<String, Value>,
    dry_run: bool,
    client: &str,
) -> Result<Value, ApiError> {
    let m = model("CertificateGenerate");
    inner
        .write_config(dry_run, |cfg: &mut Config| {
            let vpn = cfg.vpn.clone();
            let mut obj = validate(m, data, &validate_ctx(&vpn, client))?;
            let cn = obj.get("dn_commonname").and_then(Value::as_str).unwrap_or_default().to_string();
            obj.insert("refid".into(), json!(uniqid()));
            obj.insert("crt".into(), json!(b64(&pem("CERTIFICATE", &format!("CN={cn}")))));
            obj.insert("prv".into(), json!(b64(&pem("PRIVATE KEY", &cn))));
            let stored: Obj = ["descr", "refid", "caref", "type", "crt", "prv"]
                .iter()
                .map(|k| (k.to_string(), obj.get(*k).cloned().unwrap_or(Value::Null)))
                .collect();
            let cert_model = model("Certificate");
            let stored =
                validate(cert_model, &stored, &ValidateCtx { keep_read_only: true, ..validate_ctx(&vpn, client) })?;
            cfg.vpn.certificates.push(stored);
            let id = cfg.vpn.certificates.len() - 1;
            Ok(to_repr(m, &obj, Some(json!(id)), inner.repr()))
        })
        .await
}

/// `POST /api/v2/vpn/openvpn/client_export` with type `confinline`: the client's `.ovpn` file with the CA, the
/// user's certificate and key inline, base64-encoded in `binary_data`.
pub(crate) fn client_export(inner: &Inner, data: &Map<String, Value>, client: &str) -> Result<Value, ApiError> {
    let m = model("OpenVPNClientExport");
    let cfg = inner.config_snapshot();
    let obj = validate(m, data, &validate_ctx(&cfg.vpn, client))?;
    let get = |f: &str| obj.get(f).cloned().unwrap_or(Value::Null);
    let kind = get("type");
    if kind != json!("confinline") {
        return Err(ApiError::bad_request(
            "OPENVPN_CLIENT_EXPORT_TYPE_NOT_EMULATED",
            format!("The pfRest emulator exports `confinline` configurations only, not {kind}."),
        ));
    }
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let server = cfg
        .vpn
        .openvpn_servers
        .iter()
        .find(|s| s.get("vpnid").map(text) == Some(text(&get("server"))))
        .cloned()
        .unwrap_or_default();
    let certref = get("certref");
    let cert = cfg.vpn.certificates.iter().find(|c| c.get("refid") == Some(&certref)).cloned().ok_or_else(|| {
        ApiError::bad_request("OPENVPN_CLIENT_EXPORT_CERTIFICATE_REQUIRED", "Field `certref` is required.")
    })?;
    let ca = cfg.vpn.authorities.iter().find(|a| a.get("refid") == server.get("caref")).cloned().unwrap_or_default();
    let decoded = |o: &Obj, f: &str| {
        o.get(f)
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let port = server.get("local_port").map(text).unwrap_or_else(|| "1194".into());
    let proto = server.get("protocol").map(text).unwrap_or_else(|| "UDP4".into()).to_ascii_lowercase();
    let username = text(&get("username"));
    let ovpn = format!(
        "persist-tun\npersist-key\ndev tun\nproto {proto}\nclient\nremote 203.0.113.2 {port} {proto}\n\
         auth-user-pass\nremote-cert-tls server\n<ca>\n{}</ca>\n<cert>\n{}</cert>\n<key>\n{}</key>\n",
        decoded(&ca, "crt"),
        decoded(&cert, "crt"),
        decoded(&cert, "prv"),
    );
    Ok(json!({
        "filename": format!("pfSense-{}-{port}-{username}-config.ovpn", proto.to_ascii_uppercase()),
        "binary_data": b64(&ovpn),
        "type": "confinline", "server": get("server"), "username": get("username"), "certref": certref,
    }))
}

/// The VPN objects as pfRest shows them, by collection (for tests).
pub(crate) fn view(
    vpn: &VpnObjects,
    repr: crate::model::InterfaceRepresentation,
) -> std::collections::BTreeMap<String, Vec<Value>> {
    let shown = |model_name: &str, items: &[Obj]| -> Vec<Value> {
        let m = model(model_name);
        items.iter().enumerate().map(|(i, o)| to_repr(m, o, Some(json!(i)), repr)).collect()
    };
    [
        ("users", shown("User", &vpn.users)),
        ("certificates", shown("Certificate", &vpn.certificates)),
        ("authorities", shown("CertificateAuthority", &vpn.authorities)),
        ("openvpn_servers", shown("OpenVPNServer", &vpn.openvpn_servers)),
        ("csos", shown("OpenVPNClientSpecificOverride", &vpn.csos)),
        ("wireguard_tunnels", shown("WireGuardTunnel", &vpn.wireguard_tunnels)),
        ("wireguard_peers", shown("WireGuardPeer", &vpn.wireguard_peers)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `GET`/`POST /api/v2/vpn/wireguard/apply`: whether WireGuard changes are pending; a POST applies them.
pub(crate) fn wireguard_apply(inner: &Inner, apply: bool) -> Value {
    if apply {
        inner.clear_dirty("wireguard");
    }
    json!({"applied": !inner.is_dirty("wireguard")})
}
