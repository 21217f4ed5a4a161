//! End to end on nftables: the real binary, configured with `kind: nftables` against a router in a network
//! namespace, blocks an address through `portcullis call` (the whole guard pipeline, journal and audit), and
//! real packets show the kernel enforcing it.

#[path = "../../portcullis-nftables/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::*;

fn portcullis(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("portcullis runs");
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("portcullis {args:?} printed no JSON: {e}"))
}

#[test]
fn block_ip_address_through_the_cli_is_enforced_by_the_kernel() {
    let net = Topology::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "targets:\n  router: {{kind: nftables, netns: {}, interfaces: {{lan: lan0, wan: wan0}}}}\ndefault_target: router\n\
         security: {{principal: admin}}\n",
        net.router
    );
    std::fs::write(dir.path().join("config.yaml"), config).expect("config");
    assert!(net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080));

    let blocked = portcullis(
        dir.path(),
        &["call", "block_ip_address", &format!("ip_address={CLIENT_B}"), "duration=1h", "reason=port scan", "--json"],
    );
    assert_eq!(blocked["status"], "applied", "{blocked}");
    assert!(!net.ping(CLIENT_B, SERVER) && !net.tcp(CLIENT_B, 8080), "the kernel drops the blocked source");
    assert!(net.ping(CLIENT_A, SERVER) && net.tcp(CLIENT_A, 8080), "and only that source");

    // The dropped packets are logged by the kernel and read back through query_firewall_logs. Logging from a
    // network namespace needs this switch.
    std::fs::write("/proc/sys/net/netfilter/nf_log_all_netns", "1").expect("root can enable namespace logging");
    let port = (30000 + std::process::id() % 10000).to_string();
    assert!(!net.tcp(CLIENT_B, port.parse().expect("port")));
    let mut logged = serde_json::Value::Null;
    let mut hit = false;
    for _ in 0..20 {
        logged = portcullis(
            dir.path(),
            &["call", "query_firewall_logs", "timeframe=1h", &format!("source_ip={CLIENT_B}"), "--json"],
        );
        hit = logged["data"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| r["dst_port"] == port.as_str() && r["action"] == "block" && r["interface"] == "lan")
        });
        if hit {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(hit, "the blocked SYN is in query_firewall_logs, on lan, as a block: {logged}");

    // The kernel's own counters: the block rule counted the dropped packets, the link every packet.
    let rules = portcullis(dir.path(), &["call", "get_firewall_rules", "interface=lan", "--json"]);
    let block_rule = rules["data"].as_array().and_then(|rows| {
        rows.iter().find(|r| r["description"].as_str().is_some_and(|d| d.contains("Portcullis managed block list")))
    });
    let dropped = block_rule.and_then(|r| r["hits"]["packets"].as_u64()).unwrap_or(0);
    assert!(dropped >= 2, "the block rule counted the dropped ping and SYNs: {rules}");
    let stats = portcullis(dir.path(), &["call", "get_traffic_stats", "timeframe=1h", "interface=lan", "--json"]);
    let links = stats["interfaces"].as_array().cloned().unwrap_or_default();
    assert_eq!(links.len(), 1, "only the interface asked for: {stats}");
    assert_eq!((links[0]["interface"].as_str(), links[0]["device"].as_str()), (Some("lan"), Some("lan0")));
    assert!(links[0]["packets_in"].as_u64().is_some_and(|p| p >= dropped), "{stats}");

    let blocks = portcullis(dir.path(), &["call", "list_blocks", "--json"]);
    assert!(blocks.to_string().contains(CLIENT_B), "{blocks}");
    let verdict = portcullis(
        dir.path(),
        &[
            "call",
            "simulate_packet",
            "interface=lan",
            "protocol=tcp",
            &format!("source={CLIENT_B}"),
            &format!("destination={SERVER}"),
            "destination_port=8080",
            "--json",
        ],
    );
    assert!(verdict.to_string().contains("block"), "{verdict}");

    let unblocked =
        portcullis(dir.path(), &["call", "unblock_ip_address", &format!("ip_address={CLIENT_B}"), "--json"]);
    assert_eq!(unblocked["status"], "applied", "{unblocked}");
    assert!(net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080), "unblocked");
    let status = portcullis(dir.path(), &["call", "get_system_status", "--json"]);
    assert!(status["version"].as_str().is_some_and(|v| v.contains("nftables")), "{status}");
    let rules = portcullis(dir.path(), &["call", "get_firewall_rules", "interface=lan", "--json"]);
    assert!(rules.to_string().contains("Portcullis managed block list"), "{rules}");
    // rollback_change through the journal restores the table exactly.
    let before = normalised(net.list_table());
    let created = portcullis(
        dir.path(),
        &[
            "call",
            "create_firewall_rule",
            "interface=lan",
            "action=block",
            "protocol=tcp",
            "source=any",
            &format!("destination={SERVER}"),
            "destination_port=8081",
            "description=close 8081",
            "position=0",
            "--json",
        ],
    );
    assert_eq!(created["status"], "applied", "{created}");
    assert!(!net.tcp(CLIENT_A, 8081), "the new rule is enforced");
    let change_id = created["change_id"].as_str().expect("change_id").to_string();
    let rolled = portcullis(dir.path(), &["call", "rollback_change", &format!("change_id={change_id}"), "--json"]);
    assert_eq!(rolled["status"], "rolled_back", "{rolled}");
    assert_eq!(normalised(net.list_table()), before, "the table is exactly as before the change");
    assert!(net.tcp(CLIENT_A, 8081), "and traffic flows again");

    let audit = portcullis(dir.path(), &["call", "verify_audit_log", "--json"]);
    assert!(audit.to_string().contains("true"), "{audit}");
}
