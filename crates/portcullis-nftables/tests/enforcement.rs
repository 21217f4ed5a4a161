//! The backend against the real kernel, proven with real packets between network namespaces.

mod common;

use chrono::{SubsecRound, TimeDelta, Utc};
use common::*;
use portcullis_core::eval::CompiledRuleSet;
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{Action, AddressMatch, Direction, PROTO_TCP, Packet, PortMatch, Protocol, RuleId};
use portcullis_core::plan::{self, GrantRule, Intent, RuleDraft};

fn now() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn block(ip: &str, ttl: TimeDelta) -> Intent {
    Intent::Block {
        addresses: portcullis_core::model::parse_net("ip", ip).expect("net").into(),
        interface: None,
        expires_at: Some(now() + ttl),
        reason: "ssh brute force".into(),
        replace: false,
    }
}

fn draft(action: Action, protocol: Protocol, source: &str, port: Option<&str>, position: Option<usize>) -> RuleDraft {
    RuleDraft {
        interface: "lan".into(),
        direction: Direction::In,
        action,
        ip_version: None,
        protocol,
        source: AddressMatch::parse("source", source).expect("source"),
        source_port: PortMatch::Any,
        destination: AddressMatch::parse("destination", SERVER).expect("destination"),
        destination_port: port.map_or(PortMatch::Any, |p| PortMatch::parse("destination_port", p).expect("port")),
        description: "test rule".into(),
        log: true,
        enabled: true,
        position,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_table_changes_nothing_and_a_block_stops_that_source_only() {
    let net = Topology::new();
    let fw = net.firewall();
    assert!(net.ping(CLIENT_A, SERVER) && net.ping(CLIENT_B, SERVER), "the topology must pass traffic");

    let (_, _, before, after) = change(&fw, block(CLIENT_B, TimeDelta::hours(1))).await;
    assert_eq!(before.rules.len(), 2, "one default-allow rule per interface before the table exists");
    assert!(after.rules.iter().any(|r| r.managed.as_deref() == Some("block_list")));

    assert!(!net.ping(CLIENT_B, SERVER), "the blocked source is stopped (ICMP)");
    assert!(!net.tcp(CLIENT_B, 8080), "the blocked source is stopped (TCP)");
    assert!(net.ping(CLIENT_A, SERVER), "another source still passes (ICMP)");
    assert!(net.tcp(CLIENT_A, 8080), "another source still passes (TCP)");
    assert!(net.ping(CLIENT_A, ROUTER_LAN), "the router itself is still reachable");

    // The core evaluator on the rule set read from the kernel agrees with the packets.
    let compiled = CompiledRuleSet::compile(&after, Utc::now());
    let verdict = |src: &str| {
        let packet = Packet {
            interface: "lan".into(),
            direction: Direction::In,
            protocol: PROTO_TCP,
            source: src.parse().expect("ip"),
            destination: SERVER.parse().expect("ip"),
            source_port: Some(40000),
            destination_port: Some(8080),
        };
        compiled.evaluate(&packet).expect("evaluate").action
    };
    assert_eq!((verdict(CLIENT_B), verdict(CLIENT_A)), (Action::Block, Action::Pass));

    // Counters: the block rule counted the dropped packets, the links the traffic.
    let block_rule = after.rules.iter().find(|r| r.managed.as_deref() == Some("block_list") && r.interface == "lan");
    let hits = Firewall::rule_hits(&fw).await.expect("hits").expect("nftables counts rules");
    let block_rule = &block_rule.expect("lan block rule").rule_id;
    assert!(hits.iter().any(|h| &h.rule_id == block_rule && h.packets >= 2), "{hits:?}");
    let counters = Firewall::interface_counters(&fw).await.expect("counters").expect("nftables counts links");
    let lan = counters.iter().find(|c| c.interface == "lan").expect("lan");
    assert!(lan.packets_in > 4 && lan.bytes_in > lan.packets_in, "{lan:?}");

    let status = fw.system_status().await.expect("status");
    assert!(status.version.contains("nftables"), "{}", status.version);
    assert!(status.health.iter().all(|h| h.ok), "{:?}", status.health);

    let entries = &after.alias(plan::BLOCK_ALIAS).expect("block list").entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].detail, "ssh brute force");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_expires_on_time_through_the_kernel_timeout() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block(CLIENT_B, TimeDelta::seconds(3))).await;
    assert!(!net.tcp(CLIENT_B, 8080), "blocked while the block lasts");
    let listed = net.nft(&["list", "set", "inet", "portcullis", "PORTCULLIS_BLOCK_h4"]);
    assert!(listed.contains("timeout 3s") || listed.contains("timeout 2s"), "the kernel holds the timeout: {listed}");
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert!(net.tcp(CLIENT_B, 8080), "the kernel removed the entry on time, with no sweeper running");
    let state = fw.snapshot().await.expect("snapshot");
    assert!(state.alias(plan::BLOCK_ALIAS).expect("alias").entries.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_opens_a_port_for_one_source_only() {
    let net = Topology::new();
    let fw = net.firewall();
    // Port 8080 is closed to the LAN, above the default allow.
    change(&fw, Intent::CreateRule(draft(Action::Block, Protocol::Tcp, "any", Some("8080"), Some(0)))).await;
    assert!(!net.tcp(CLIENT_A, 8080) && !net.tcp(CLIENT_B, 8080), "8080 is closed to everyone");
    assert!(net.tcp(CLIENT_A, 8081), "other ports stay open");

    let grant = Intent::Grant {
        addresses: portcullis_core::model::parse_net("ip", CLIENT_B).expect("net").into(),
        alias: None,
        expires_at: Some(now() + TimeDelta::hours(2)),
        reason: "contractor".into(),
        rule: Some(GrantRule {
            interface: "lan".into(),
            protocol: Protocol::Tcp,
            destination: AddressMatch::parse("destination", SERVER).expect("destination"),
            destination_port: PortMatch::parse("destination_port", "8080").expect("port"),
        }),
    };
    let (_, _, _, after) = change(&fw, grant).await;
    assert!(net.tcp(CLIENT_B, 8080), "the granted source reaches the port");
    assert!(!net.tcp(CLIENT_A, 8080), "another source still does not");

    let revoke = Intent::Revoke {
        addresses: portcullis_core::model::parse_net("ip", CLIENT_B).expect("net").into(),
        alias: None,
    };
    change(&fw, revoke).await;
    assert!(!net.tcp(CLIENT_B, 8080), "revoked");
    assert!(after.alias(plan::GRANT_ALIAS).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_rule_stops_matching_and_resumes() {
    let net = Topology::new();
    let fw = net.firewall();
    let (_, applied, _, _) =
        change(&fw, Intent::CreateRule(draft(Action::Block, Protocol::Icmp, CLIENT_A, None, Some(0)))).await;
    let id: RuleId = applied.created_rules[0].clone();
    assert!(!net.ping(CLIENT_A, SERVER), "the rule blocks ICMP from A");
    assert!(net.tcp(CLIENT_A, 8080), "and nothing else");

    let hits_of = async |fw: &portcullis_nftables::NftablesFirewall, id: &RuleId| {
        let hits = Firewall::rule_hits(fw).await.expect("hits").expect("nftables counts rules");
        hits.iter().find(|h| &h.rule_id == id).map_or(0, |h| h.packets)
    };
    let counted = hits_of(&fw, &id).await;
    assert!(counted >= 1, "the dropped echo was counted");
    let (_, _, _, paused) =
        change(&fw, Intent::PauseRule { rule_id: id.clone(), until: now() + TimeDelta::hours(1) }).await;
    assert_eq!(hits_of(&fw, &id).await, counted, "the count survived rewriting the chain");
    assert!(net.ping(CLIENT_A, SERVER), "a paused rule does not match");
    let rule = paused.rule(&id).expect("still there");
    assert!(!rule.enabled && rule.paused_until.is_some(), "kept in place, marked paused");

    change(&fw, Intent::ResumeRule { rule_id: id.clone() }).await;
    assert!(!net.ping(CLIENT_A, SERVER), "resumed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_change_restores_the_previous_table() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.10", TimeDelta::hours(5))).await;
    change(&fw, Intent::CreateRule(draft(Action::Reject, Protocol::TcpUdp, "any", Some("8081"), Some(1)))).await;
    let before_listing = normalised(net.list_table());

    let (plan, applied, before, after) = change(&fw, block(CLIENT_A, TimeDelta::hours(1))).await;
    let (plan2, applied2, _, after2) =
        change(&fw, Intent::CreateRule(draft(Action::Block, Protocol::Tcp, CLIENT_B, Some("8080"), Some(0)))).await;
    assert!(!net.tcp(CLIENT_A, 8080) && !net.tcp(CLIENT_B, 8080));

    for (plan, applied, before, after) in [(plan2, applied2, after.clone(), after2), (plan, applied, before, after)] {
        let undo = plan::invert(&plan, &applied, &before, &after);
        let undone = fw.apply(&undo).await.expect("rollback applies");
        plan::verify(&undo, &undone, &fw.snapshot().await.expect("snapshot")).expect("rollback verified");
    }
    assert_eq!(normalised(net.list_table()), before_listing, "the exact previous table is back");
    assert!(net.tcp(CLIENT_A, 8080) && net.tcp(CLIENT_B, 8080));
    assert!(!net.tcp(CLIENT_A, 8081), "earlier rules are untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_batch_changes_nothing_and_foreign_tables_are_left_alone() {
    let net = Topology::new();
    let fw = net.firewall();
    net.nft(&["add", "table", "inet", "theirs"]);
    net.nft(&["add", "chain", "inet", "theirs", "input", "{ type filter hook input priority 5; policy accept; }"]);
    net.nft(&["add", "rule", "inet", "theirs", "input", "tcp", "dport", "9999", "drop"]);
    let theirs = net.nft(&["-j", "list", "table", "inet", "theirs"]);

    change(&fw, block("10.99.0.0/16", TimeDelta::hours(1))).await;
    let listing = net.list_table();
    // 10.99.0.0/24 overlaps the /16 in the interval set: the kernel refuses the batch.
    let state = fw.snapshot().await.expect("snapshot");
    let p = plan::plan(&state, &block("10.99.0.0/24", TimeDelta::hours(1)), now()).expect("plan");
    // `check` (nft -c) finds the same fault without committing anything.
    assert_eq!(fw.check(&p).await.expect_err("checked").code, ErrorCode::ValidationError);
    let fine = plan::plan(&state, &block("10.98.0.1", TimeDelta::hours(1)), now()).expect("plan");
    fw.check(&fine).await.expect("a good plan passes the kernel's check");
    assert_eq!(normalised(net.list_table()), normalised(listing.clone()), "checking changed nothing");
    let err = fw.apply(&p).await.expect_err("overlap refused");
    assert_eq!(err.code, ErrorCode::ValidationError, "{err:?}");
    assert_eq!(normalised(net.list_table()), normalised(listing), "nothing changed");
    assert_eq!(net.nft(&["-j", "list", "table", "inet", "theirs"]), theirs, "another table is never touched");

    // A plan made against state that changed since is a conflict, not an overwrite.
    let (_, applied, _, _) =
        change(&fw, Intent::CreateRule(draft(Action::Block, Protocol::Tcp, "any", Some("8080"), Some(0)))).await;
    let id = applied.created_rules[0].clone();
    let stale = fw.snapshot().await.expect("snapshot");
    change(&fw, Intent::DeleteRule { rule_id: id.clone() }).await;
    let p = plan::plan(&stale, &Intent::PauseRule { rule_id: id, until: now() + TimeDelta::hours(1) }, now())
        .expect("plan");
    assert_eq!(fw.apply(&p).await.expect_err("stale").code, ErrorCode::Conflict);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_shape_reads_back_as_written() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.0/24", TimeDelta::hours(1))).await;
    change(&fw, block("2001:db8::7", TimeDelta::hours(1))).await;
    let shapes = [
        ("any", "any", Protocol::Any, None, Action::Pass),
        ("10.0.0.0/8", "any", Protocol::Tcp, Some("22"), Action::Block),
        ("!10.0.0.0/8", "192.0.2.1", Protocol::Udp, Some("1000:2000"), Action::Reject),
        ("2001:db8::/32", "any", Protocol::TcpUdp, Some("53"), Action::Pass),
        ("PORTCULLIS_BLOCK", "(self)", Protocol::Icmp, None, Action::Block),
        ("!PORTCULLIS_BLOCK", "!(self)", Protocol::parse("p", "gre").expect("gre"), None, Action::Pass),
        ("any", "2001:db8::1", Protocol::Icmpv6, None, Action::Block),
    ];
    for (source, destination, protocol, port, action) in shapes {
        let d = RuleDraft {
            source: AddressMatch::parse("source", source).expect("source"),
            destination: AddressMatch::parse("destination", destination).expect("destination"),
            destination_port: port.map_or(PortMatch::Any, |p| PortMatch::parse("p", p).expect("port")),
            log: action != Action::Pass,
            enabled: protocol != Protocol::Udp,
            ..draft(action, protocol, "any", None, None)
        };
        // `change` verifies that the rule read back from the kernel equals the plan.
        change(&fw, Intent::CreateRule(d)).await;
    }
    let state = fw.snapshot().await.expect("snapshot");
    assert_eq!(state.rules_on("lan").count(), 1 + 1 + shapes.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_packets_are_logged_and_read_back_as_filterlog_lines() {
    // Kernel logging from a network namespace other than the host's is off unless this is set.
    std::fs::write("/proc/sys/net/netfilter/nf_log_all_netns", "1").expect("root can enable namespace logging");
    let net = Topology::new();
    let fw = net.firewall();
    let (_, applied, _, _) = change(&fw, block(CLIENT_B, TimeDelta::hours(1))).await;
    let rule_id: u64 = applied.created_rules[0].as_str().parse().expect("numeric rule id");
    // A port no other test uses, so that the line found is this test's.
    let port = 20000 + (std::process::id() % 10000) as u16;
    assert!(!net.tcp(CLIENT_B, port));
    let mut found = None;
    for _ in 0..20 {
        let lines = fw.firewall_log(5000).await.expect("kernel log");
        found = lines.into_iter().rev().find(|l| {
            portcullis_logs::parse_line(l).is_ok_and(|e| {
                e.dst_port() == Some(port) && e.src.to_string() == CLIENT_B && e.tracker == Some(rule_id)
            })
        });
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = found.expect("the dropped SYN is in the log, linked to the block rule");
    let entry = portcullis_logs::parse_line(&line).expect("filterlog");
    assert_eq!((entry.action.as_str(), entry.direction.as_str(), entry.interface), ("block", "in", "lan0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_egress_policy_lets_the_host_reach_only_the_allowed_flows() {
    use portcullis_core::egress::{EgressFlow, EgressPolicy};
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.99", TimeDelta::hours(1))).await;
    let listing = normalised(net.list_table());
    assert!(net.router_tcp(8080) && net.router_tcp(8081) && net.router_ping(SERVER));

    // The router plays the host that runs Portcullis: its firewall API is the server's 8080, its DNS the server.
    let policy = EgressPolicy {
        interface: "wan".into(),
        allow: [
            vec![EgressFlow {
                name: "firewall API".into(),
                protocol: Protocol::Tcp,
                destination: portcullis_core::model::parse_net("ip", SERVER).expect("net"),
                port: Some(portcullis_core::model::PortRange::single(8080)),
            }],
            EgressPolicy::dns_flows(&format!("nameserver {SERVER}\n")),
        ]
        .concat(),
    };
    let (_, _, _, after) = change(&fw, Intent::SetEgressPolicy(policy)).await;

    assert!(net.router_tcp(8080), "the firewall API is allowed");
    assert!(!net.router_tcp(8081), "any other port is dropped");
    assert!(!net.router_ping(SERVER), "and any other protocol");
    assert!(net.tcp(CLIENT_A, 8081) && net.ping(CLIENT_A, SERVER), "forwarded traffic is not the host's own");
    assert!(net.ping(CLIENT_A, ROUTER_LAN), "replies to inbound traffic still leave");

    let (removal, removed, _, gone) = change(&fw, Intent::RemoveEgressPolicy { interface: "wan".into() }).await;
    assert!(net.router_tcp(8081) && net.router_ping(SERVER), "removed");
    assert_eq!(normalised(net.list_table()), listing, "the table is as it was before the policy");

    // Undoing the removal (what rollback_change applies) puts the same rules back in the same order; re-created
    // rules get new ids, as every created rule does.
    let undo = plan::invert(&removal, &removed, &after, &gone);
    let restored = fw.apply(&undo).await.expect("undo");
    let back = fw.snapshot().await.expect("snapshot");
    plan::verify(&undo, &restored, &back).expect("verified");
    assert_eq!(back.rules.len(), after.rules.len());
    for (now, then) in back.rules.iter().zip(&after.rules) {
        assert!(plan::same_enforcement(now, then), "the policy is back as it was: {now:?} / {then:?}");
    }
    assert!(net.router_tcp(8080) && !net.router_tcp(8081), "and enforced again");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_writing_at_once_lose_nothing() {
    let net = Topology::new();
    // Two firewalls on one table stand for two Portcullis processes: each has its own writer lock.
    let (one, two) = (net.firewall(), net.firewall());
    let writer = |fw: portcullis_nftables::NftablesFirewall, base: u8| async move {
        let mut conflicts = 0;
        for i in 0..6u8 {
            loop {
                let state = fw.snapshot().await.expect("snapshot");
                // Rule creations rewrite the interface chain: the change a stale writer would lose.
                let port = (u16::from(base) + u16::from(i)).to_string();
                let intent = Intent::CreateRule(draft(Action::Block, Protocol::Tcp, "any", Some(&port), None));
                let p = plan::plan(&state, &intent, now()).expect("plan");
                match fw.apply(&p).await {
                    Ok(_) => break,
                    Err(e) if e.code == ErrorCode::Conflict => conflicts += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        conflicts
    };
    let (a, b) = tokio::join!(tokio::spawn(writer(one, 10)), tokio::spawn(writer(two, 50)));
    let conflicts = a.expect("task") + b.expect("task");
    let state = net.firewall().snapshot().await.expect("snapshot");
    let created = state.rules_on("lan").filter(|r| r.description == "test rule").count();
    assert_eq!(created, 12, "every rule landed ({conflicts} conflicts retried)");
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_an_entry_the_kernel_already_dropped_still_applies() {
    let net = Topology::new();
    let fw = net.firewall();
    let (_, _, _, after) = change(&fw, block(CLIENT_B, TimeDelta::hours(1))).await;
    // What the kernel does when a timeout runs out between the sweeper's read and its write.
    net.nft(&["delete", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", &format!("{{ {CLIENT_B} }}")]);
    let p = plan::plan(
        &after,
        &Intent::Unblock {
            addresses: portcullis_core::model::parse_net("ip", CLIENT_B).expect("net").into(),
            interface: None,
        },
        now(),
    )
    .expect("plan");
    let applied = fw.apply(&p).await.expect("the removal of a vanished entry is not an error");
    plan::verify(&p, &applied, &fw.snapshot().await.expect("snapshot")).expect("verified");
    assert!(net.tcp(CLIENT_B, 8080));
}

fn unblock(ip: &str) -> Intent {
    Intent::Unblock { addresses: portcullis_core::model::parse_net("ip", ip).expect("net").into(), interface: None }
}

/// The set's flags and its elements as nft lists them.
fn listed_set(net: &Topology, set: &str) -> (Vec<String>, Vec<String>) {
    let listing: serde_json::Value =
        serde_json::from_str(&net.nft(&["-j", "list", "set", "inet", "portcullis", set])).expect("nft JSON");
    let set = listing["nftables"].as_array().and_then(|o| o.iter().find_map(|o| o.get("set"))).expect("set");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().into_iter().flatten().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect()
    };
    let elements = set["elem"].as_array().into_iter().flatten().map(|e| e["elem"]["val"].clone()).collect();
    (strings(&set["flags"]), strings(&serde_json::Value::Array(elements)))
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_and_networks_of_both_families_live_in_their_own_sets_and_read_back_as_written() {
    let net = Topology::new();
    let fw = net.firewall();
    assert!(net.ipv6_ready(), "the topology must pass IPv6");
    let (_, _, _, first) = change(&fw, block(CLIENT_B, TimeDelta::hours(1))).await;
    // A network containing the blocked host, and both shapes for IPv6.
    change(&fw, block("10.77.1.0/24", TimeDelta::hours(2))).await;
    change(&fw, block(CLIENT6_B, TimeDelta::hours(1))).await;
    let (_, _, _, all) = change(&fw, block("fd77:1::/120", TimeDelta::hours(3))).await;

    let host = |v: &str| v.to_string();
    let prefix = |addr: &str, len: u8| serde_json::json!({"prefix": {"addr": addr, "len": len}}).to_string();
    let timeout = vec!["timeout".to_string()];
    let interval = vec!["interval".to_string(), "timeout".to_string()];
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_h4"), (timeout.clone(), vec![host(CLIENT_B)]));
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_n4"), (interval.clone(), vec![prefix("10.77.1.0", 24)]));
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_h6"), (timeout, vec![host(CLIENT6_B)]));
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_n6"), (interval, vec![prefix("fd77:1::", 120)]));

    // Reading back gives one list with every entry as written, and the rules that enforce it unchanged.
    let mut values: Vec<&str> =
        all.alias(plan::BLOCK_ALIAS).expect("block list").entries.iter().map(|e| e.value.as_str()).collect();
    values.sort_unstable();
    assert_eq!(values, ["10.77.1.0/24", CLIENT_B, "fd77:1::/120", CLIENT6_B]);
    assert_eq!(all.rules, first.rules, "rules (ids, order, matches) read back the same whatever the sets hold");
    assert!(!net.ping(CLIENT_A, SERVER) && !net.ping(CLIENT_B, SERVER), "the /24 stops both IPv4 sources");
    assert!(!net.ping(CLIENT6_A, SERVER6) && !net.ping(CLIENT6_B, SERVER6), "the /120 stops both IPv6 sources");

    // Removing the host leaves the network containing it in force; removing the network frees the rest.
    change(&fw, unblock(CLIENT_B)).await;
    assert!(!net.ping(CLIENT_B, SERVER), "still inside the blocked /24");
    change(&fw, unblock("fd77:1::/120")).await;
    assert!(net.ping(CLIENT6_A, SERVER6) && !net.ping(CLIENT6_B, SERVER6), "only the IPv6 host stays blocked");
    let (_, _, _, last) = change(&fw, unblock("10.77.1.0/24")).await;
    assert!(net.ping(CLIENT_A, SERVER) && net.ping(CLIENT_B, SERVER));
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_h4").1, Vec::<String>::new());
    assert_eq!(listed_set(&net, "PORTCULLIS_BLOCK_n4").1, Vec::<String>::new());

    // The evaluator on the model read back agrees with the kernel, for both families.
    let compiled = CompiledRuleSet::compile(&last, Utc::now());
    let verdict = |src: &str, dst: &str| {
        let packet = Packet {
            interface: "lan".into(),
            direction: Direction::In,
            protocol: 1,
            source: src.parse().expect("ip"),
            destination: dst.parse().expect("ip"),
            source_port: None,
            destination_port: None,
        };
        compiled.evaluate(&packet).expect("evaluate").action
    };
    assert_eq!(
        [verdict(CLIENT_B, SERVER), verdict(CLIENT6_A, SERVER6), verdict(CLIENT6_B, SERVER6)],
        [Action::Pass, Action::Pass, Action::Block]
    );
}
