//! Static status data of the emulated firewall. Every object is built from the schema's field list (defaults) with
//! emulator values laid over it, so responses carry exactly the schema's field names.

use serde_json::{Map, Value, json};

use crate::model::{INTERFACES, InterfaceRepresentation, iface_repr};
use crate::schema::model;

/// An object of `model` with schema defaults, overridden by `values` (keys must be schema fields).
pub(crate) fn build(model_name: &str, values: Value) -> Value {
    let m = model(model_name);
    let mut out = Map::new();
    for f in &m.fields {
        if f.write_only {
            continue;
        }
        out.insert(f.name.clone(), f.default.clone());
    }
    if let Value::Object(values) = values {
        for (k, v) in values {
            debug_assert!(m.field(&k).is_some(), "{model_name} has no field {k}");
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

pub(crate) fn system_status(uptime_secs: i64) -> Value {
    let days = uptime_secs / 86_400;
    let rem = uptime_secs % 86_400;
    let day_part = match days {
        0 => String::new(),
        1 => "1 Day ".to_string(),
        n => format!("{n} Days "),
    };
    let uptime = format!(
        "{day_part}{:02} Hour{} {:02} Minute{} {:02} Second{}",
        rem / 3600,
        plural(rem / 3600),
        (rem % 3600) / 60,
        plural((rem % 3600) / 60),
        rem % 60,
        plural(rem % 60)
    );
    build(
        "SystemStatus",
        json!({
            "platform": "pfSense",
            "serial": "",
            "netgate_id": "0123456789abcdef0123",
            "uptime": uptime,
            "bios_vendor": "SeaBIOS",
            "bios_version": "1.16.3-debian-1.16.3-2",
            "bios_date": "04/01/2014",
            "kernel_pti": false,
            "mds_mitigation": "inactive",
            "temp_c": null,
            "temp_f": null,
            "cpu_model": "QEMU Virtual CPU version 2.5+",
            "cpu_load_avg": [0.12, 0.18, 0.16],
            "cpu_count": 2,
            "cpu_usage": 6.0,
            "mbuf_usage": 1.0,
            "mem_usage": 23.0,
            "swap_usage": 0.0,
            "disk_usage": 7.0
        }),
    )
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(crate) fn interface_stats() -> Vec<Value> {
    let addrs = [("203.0.113.2", "24", "203.0.113.1"), ("192.168.1.1", "24", ""), ("10.10.10.1", "24", "")];
    INTERFACES
        .iter()
        .zip(addrs)
        .enumerate()
        .map(|(i, ((id, nic, _descr), (ip, subnet, gw)))| {
            let n = i as i64 + 1;
            build(
                "InterfaceStats",
                json!({
                    "name": id,
                    "descr": iface_repr(id, InterfaceRepresentation::Descr),
                    "hwif": nic,
                    "macaddr": format!("52:54:00:12:34:{:02x}", 0x50 + i),
                    "mtu": "1500",
                    "enable": true,
                    "status": "up",
                    "ipaddr": ip,
                    "subnet": subnet,
                    "linklocal": format!("fe80::5054:ff:fe12:34{:02x}%{nic}", 0x50 + i),
                    "ipaddrv6": "",
                    "subnetv6": "",
                    "inerrs": 0,
                    "outerrs": 0,
                    "collisions": 0,
                    "inbytes": 123_456_789 * n,
                    "inbytespass": 120_000_000 * n,
                    "outbytes": 98_765_432 * n,
                    "outbytespass": 98_000_000 * n,
                    "inpkts": 234_567 * n,
                    "inpktspass": 230_000 * n,
                    "outpkts": 198_765 * n,
                    "outpktspass": 198_000 * n,
                    "dhcplink": if *id == "wan" { "up" } else { "" },
                    "media": "10Gbase-T <full-duplex>",
                    "gateway": gw,
                    "gatewayv6": ""
                }),
            )
        })
        .collect()
}

pub(crate) fn gateways() -> Vec<Value> {
    vec![
        build(
            "RoutingGatewayStatus",
            json!({"name": "WAN_DHCP", "srcip": "203.0.113.2", "monitorip": "203.0.113.1", "delay": 0.412,
                   "stddev": 0.087, "loss": 0.0, "status": "online", "substatus": "none"}),
        ),
        build(
            "RoutingGatewayStatus",
            json!({"name": "WAN_DHCP6", "srcip": "", "monitorip": "", "delay": 0.0, "stddev": 0.0, "loss": 0.0,
                   "status": "down", "substatus": "down"}),
        ),
    ]
}

pub(crate) fn openvpn_servers() -> Vec<Value> {
    let conn = build(
        "OpenVPNServerConnectionStatus",
        json!({"common_name": "alice", "remote_host": "198.51.100.23:51234", "virtual_addr": "10.0.1.2",
               "virtual_addr6": "", "bytes_recv": 123_456, "bytes_sent": 654_321,
               "connect_time": "2026-01-05 09:12:44", "connect_time_unix": 1_767_604_364_i64, "user_name": "alice",
               "client_id": 3, "peer_id": 0, "cipher": "AES-256-GCM"}),
    );
    let route = build(
        "OpenVPNServerRouteStatus",
        json!({"common_name": "alice", "remote_host": "198.51.100.23:51234", "virtual_addr": "10.0.1.2",
               "last_time": "2026-01-05 10:01:02"}),
    );
    vec![build(
        "OpenVPNServerStatus",
        json!({"name": "Remote access (SSL/TLS + User Auth) UDP4:1194", "mode": "server_tls_user", "port": "1194",
               "vpnid": 1, "mgmt": "server1", "conns": [conn], "routes": [route]}),
    )]
}

/// pfSense's ARP table: two LAN hosts (one also leased) and the DMZ server, as pfRest lists it (`interface` is
/// the NIC; `expires` as FreeBSD's `arp -a` prints it, out of 1200 s).
pub(crate) fn arp_table() -> Vec<Value> {
    let entry = |ip: &str, mac: &str, nic: &str, host: &str, expires: &str| {
        build(
            "ARPTable",
            json!({"hostname": host, "ip_address": ip, "mac_address": mac, "interface": nic, "type": "ethernet",
                   "permanent": expires == "permanent", "dnsresolve": host, "expires": expires}),
        )
    };
    vec![
        entry("192.168.1.20", "00:1b:21:3a:4f:5c", "em1", "laptop.home.arpa", "Expires in 1150 seconds"),
        entry("192.168.1.21", "3c:22:fb:10:20:30", "em1", "?", "Expires in 600 seconds"),
        entry("10.10.10.5", "00:50:56:aa:bb:cc", "em2", "?", "Expires in 1199 seconds"),
        entry("192.168.1.1", "00:0c:29:00:00:01", "em1", "pfsense.home.arpa", "permanent"),
    ]
}

/// pf's states: the laptop downloading over HTTPS and resolving names, and a connection from the internet to the
/// DMZ server (source and destination as `address:port`, bytes in the state's direction and back).
pub(crate) fn firewall_states() -> Vec<Value> {
    let state = |iface: &str, proto: &str, src: &str, dst: &str, bytes_in: u64, bytes_out: u64| {
        build(
            "FirewallState",
            json!({"interface": iface, "protocol": proto, "direction": "in", "source": src, "destination": dst,
                   "state": "ESTABLISHED:ESTABLISHED", "age": "00:05:00", "expires_in": "23:55:00",
                   "packets_total": (bytes_in + bytes_out) / 1000, "packets_in": bytes_in / 1000,
                   "packets_out": bytes_out / 1000, "bytes_total": bytes_in + bytes_out, "bytes_in": bytes_in,
                   "bytes_out": bytes_out}),
        )
    };
    vec![
        state("lan", "tcp", "192.168.1.20:51234", "93.184.216.34:443", 120_000, 5_000_000),
        state("lan", "udp", "192.168.1.20:53000", "192.168.1.1:53", 2_000, 6_000),
        state("wan", "tcp", "198.51.100.9:40000", "10.10.10.5:443", 30_000, 900_000),
    ]
}

/// The DHCP server's leases: the laptop (online) and a printer that left (offline).
pub(crate) fn dhcp_leases() -> Vec<Value> {
    let lease = |ip: &str, mac: &str, host: &str, online: &str| {
        build(
            "DHCPServerLease",
            json!({"ip": ip, "mac": mac, "hostname": host, "if": "lan", "starts": "2026/12/07 08:00:00",
                   "ends": "2026/12/07 20:00:00", "active_status": "active", "online_status": online, "descr": ""}),
        )
    };
    vec![
        lease("192.168.1.20", "00:1b:21:3a:4f:5c", "laptop", "active/online"),
        lease("192.168.1.30", "00:80:77:11:22:33", "printer", "idle/offline"),
    ]
}

pub(crate) fn openvpn_clients() -> Vec<Value> {
    vec![build(
        "OpenVPNClientStatus",
        json!({"name": "Site B UDP4:1195", "port": "1195", "vpnid": 2, "mgmt": "client2", "status": "up",
               "state": "CONNECTED", "state_detail": "SUCCESS", "connect_time": "2026-01-05 08:00:00",
               "virtual_addr": "10.9.0.2", "virtual_addr6": "", "remote_host": "192.0.2.44", "remote_port": "1195",
               "local_host": "203.0.113.2", "local_port": "0"}),
    )]
}

pub(crate) fn ipsec_sas() -> Vec<Value> {
    let child = build(
        "IPsecChildSAStatus",
        json!({"name": "con1", "uniqueid": 7, "reqid": 1, "state": "INSTALLED", "mode": "TUNNEL", "protocol": "ESP",
               "encap": false, "spi_in": "c9b4f1a2", "spi_out": "c5d2e3f4", "encr_alg": "AES_GCM_16",
               "encr_keysize": 256, "integ_alg": "", "dh_group": "", "bytes_in": 10_240, "bytes_out": 20_480,
               "packets_in": 80, "packets_out": 120, "use_in": 2, "use_out": 1, "rekey_time": 2_811,
               "life_time": 3_231, "install_time": 369, "local_ts": ["10.10.10.0/24"],
               "remote_ts": ["10.20.20.0/24"]}),
    );
    vec![build(
        "IPsecSAStatus",
        json!({"con_id": "con1", "uniqueid": 3, "version": 2, "state": "ESTABLISHED", "local_host": "203.0.113.2",
               "local_port": "500", "local_id": "203.0.113.2", "remote_host": "192.0.2.10", "remote_port": "500",
               "remote_id": "192.0.2.10", "initiator_spi": "8a1f2b3c4d5e6f70", "responder_spi": "0f1e2d3c4b5a6978",
               "nat_remote": false, "nat_any": false, "encr_alg": "AES_CBC", "encr_keysize": 256,
               "integ_alg": "HMAC_SHA2_256_128", "prf_alg": "PRF_HMAC_SHA2_256", "dh_group": "MODP_2048",
               "established": 1_204, "rekey_time": 26_911, "child_sas": [child]}),
    )]
}

pub(crate) fn wireguard_peers() -> Vec<Value> {
    vec![build(
        "WireGuardPeerStatus",
        json!({"tunnel_device": "tun_wg0", "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
               "endpoint": "198.51.100.77:51820", "allowed_ips": ["10.6.0.2/32"],
               "latest_handshake": 1_767_604_000_i64, "transfer_rx": 4_096, "transfer_tx": 8_192,
               "persistent_keepalive": "25", "descr": "laptop"}),
    )]
}

pub(crate) fn wireguard_tunnels() -> Vec<Value> {
    vec![build(
        "WireGuardTunnelStatus",
        json!({"name": "tun_wg0", "status": "up", "public_key": crate::vpn::seeded_tunnel_public_key(),
               "listen_port": "51820", "mtu": 1420, "transfer_rx": 4_096, "transfer_tx": 8_192, "inpkts": 40,
               "outpkts": 52, "descr": "road warriors", "peers": wireguard_peers()}),
    )]
}

/// `/api/v2/interfaces` (NetworkInterface, string ids).
pub(crate) fn network_interfaces() -> Vec<Value> {
    let addrs = [
        ("dhcp", "203.0.113.2", Value::Null, Value::Null),
        ("static", "192.168.1.1", json!(24), Value::Null),
        ("static", "10.10.10.1", json!(24), Value::Null),
    ];
    INTERFACES
        .iter()
        .zip(addrs)
        .map(|((id, nic, _), (typev4, ip, subnet, gw))| {
            let mut obj = build(
                "NetworkInterface",
                json!({"if": nic, "enable": true, "descr": iface_repr(id, InterfaceRepresentation::Descr),
                       "typev4": typev4, "ipaddr": if typev4 == "dhcp" { "dhcp".to_string() } else { ip.to_string() },
                       "subnet": subnet, "gateway": gw, "typev6": "none", "blockbogons": *id == "wan",
                       "blockpriv": *id == "wan"}),
            );
            // `id` is the pfSense interface id (string ids, contract §2), whatever `represent_interfaces_as` says.
            if let Some(fields) = obj.as_object_mut() {
                fields.insert("id".into(), json!(id));
            }
            obj
        })
        .collect()
}

pub(crate) fn restapi_version(version: &str) -> Value {
    build(
        "RESTAPIVersion",
        json!({"current_version": version, "latest_version": version, "latest_version_release_date": "2026-08-07",
               "update_available": false, "available_versions": [version]}),
    )
}

/// The default firewall log: the lines of `fixtures/filterlog-samples.txt` without comments.
pub(crate) fn default_firewall_log() -> Vec<String> {
    include_str!("../fixtures/filterlog-samples.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fixture_has_63_lines() {
        assert_eq!(default_firewall_log().len(), 63);
    }

    #[test]
    fn uptime_format() {
        let s = system_status(90_061);
        assert_eq!(s["uptime"], json!("1 Day 01 Hour 01 Minute 01 Second"));
    }
}
