//! Address sets made and filled over netlink read back from `nft` exactly as the sets nft makes from the same
//! definition: the kernel holds the same thing whichever of the two wrote it.

use std::process::Command;

use ipnet::IpNet;
use portcullis_nftables::netlink::{BatchStep, ElementChange, Netlink, NewSet, network_elements};

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("pcnl{}{tag}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}: the test needs root and iproute2");
        Netns(name)
    }

    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.0, "nft"]).args(args).output().expect("nft");
        assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft_text(&self, input: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("batch.nft");
        std::fs::write(&path, input).expect("write");
        self.nft(&["-f", path.to_str().expect("path")]);
    }

    /// What `nft --debug=netlink` prints of a set's elements: keys, flags and user data as the kernel holds them.
    fn kernel_elements(&self, name: &str) -> String {
        let out = self.nft(&["--debug=netlink", "list", "set", "inet", "t", name]);
        out.lines().filter(|l| l.trim_start().starts_with("element")).collect::<Vec<_>>().join("\n")
    }

    /// The set as `nft -j` lists it, without the handle (which differs between two sets).
    fn listed_set(&self, name: &str) -> serde_json::Value {
        let listing: serde_json::Value =
            serde_json::from_str(&self.nft(&["-j", "list", "set", "inet", "t", name])).expect("json");
        let mut set = listing["nftables"]
            .as_array()
            .and_then(|items| items.iter().find_map(|i| i.get("set")).cloned())
            .expect("the set is listed");
        set.as_object_mut().expect("object").remove("handle");
        set.as_object_mut().expect("object").remove("name");
        set
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().expect("net")).collect()
}

/// In nft's text syntax: nft 1.0.6 reads a set's comment there, not in JSON.
fn made_by_nft(ns: &Netns, name: &str, ipv6: bool, networks: &[IpNet], comment: &str) {
    let family = if ipv6 { "ipv6_addr" } else { "ipv4_addr" };
    let elements: Vec<String> = networks.iter().map(ToString::to_string).collect();
    ns.nft_text(&format!(
        "add set inet t {name} {{ type {family}; flags interval, timeout; comment \"{comment}\"; }}\n\
         add element inet t {name} {{ {} }}\n",
        elements.join(", ")
    ));
}

fn made_over_netlink(ns: &Netns, name: &str, ipv6: bool, networks: &[IpNet], comment: &str) {
    let set = NewSet { name: name.into(), ipv6, interval: true, timeout: true, comment: Some(comment.into()) };
    let elements = networks.iter().flat_map(|n| network_elements(*n, None, None)).collect();
    let steps =
        [BatchStep::MakeSet(set), BatchStep::Elements(ElementChange { set: name.into(), delete: false, elements })];
    Netlink::new(Some(ns.0.clone())).commit_steps("t", &steps).expect("netlink batch");
}

#[test]
fn interval_sets_made_over_netlink_list_as_nft_makes_them() {
    let ns = Netns::new("a");
    ns.nft(&["add", "table", "inet", "t"]);
    // Adjacent networks that do not merge, a network at the bottom and one at the top of the family, a host.
    let v4 = nets(&["0.0.0.0/8", "1.0.1.0/24", "1.0.2.0/23", "10.9.8.7/32", "203.0.113.0/24", "255.255.255.0/24"]);
    let v6 = nets(&["::/16", "2001:db8::/32", "2001:db9::/48", "2001:db9:1::1/128", "ffff::/16"]);
    made_by_nft(&ns, "by_nft_4", false, &v4, "geo CN");
    made_over_netlink(&ns, "by_netlink_4", false, &v4, "geo CN");
    made_by_nft(&ns, "by_nft_6", true, &v6, "geo CN");
    made_over_netlink(&ns, "by_netlink_6", true, &v6, "geo CN");
    assert_eq!(ns.listed_set("by_netlink_4"), ns.listed_set("by_nft_4"));
    assert_eq!(ns.listed_set("by_netlink_6"), ns.listed_set("by_nft_6"));
    assert_eq!(ns.kernel_elements("by_netlink_4"), ns.kernel_elements("by_nft_4"));
    assert_eq!(ns.kernel_elements("by_netlink_6"), ns.kernel_elements("by_nft_6"));
}

#[test]
fn timed_networks_with_comments_and_stale_sets_go_in_one_batch() {
    let ns = Netns::new("b");
    ns.nft(&["add", "table", "inet", "t"]);
    ns.nft_text(
        "add set inet t by_nft { type ipv4_addr; flags interval, timeout; }\n\
         add element inet t by_nft { 198.51.100.0/24 timeout 1h comment \"x=1 |scanner net\", 203.0.113.0/25 }\n\
         add set inet t stale { type ipv4_addr; flags interval; }\n\
         add element inet t stale { 192.0.2.0/24 }\n",
    );
    let mut elements =
        network_elements("198.51.100.0/24".parse().expect("net"), Some(3_600_000), Some("x=1 |scanner net".into()));
    elements.extend(network_elements("203.0.113.0/25".parse().expect("net"), None, None));
    let set = NewSet { name: "by_netlink".into(), ipv6: false, interval: true, timeout: true, comment: None };
    let steps = [
        BatchStep::DeleteSet("stale".into()),
        BatchStep::MakeSet(set),
        BatchStep::Elements(ElementChange { set: "by_netlink".into(), delete: false, elements }),
    ];
    Netlink::new(Some(ns.0.clone())).commit_steps("t", &steps).expect("netlink batch");
    let strip_expiry = |mut set: serde_json::Value| {
        for e in set["elem"].as_array_mut().into_iter().flatten() {
            if let Some(elem) = e.get_mut("elem").and_then(|v| v.as_object_mut()) {
                elem.remove("expires");
            }
        }
        set
    };
    assert_eq!(strip_expiry(ns.listed_set("by_netlink")), strip_expiry(ns.listed_set("by_nft")));
    let sets = ns.nft(&["list", "sets", "inet"]);
    assert!(!sets.contains("stale"), "the stale set went in the same batch: {sets}");

    // A batch the kernel refuses part of changes nothing: the set it would make is not there.
    let again = [
        BatchStep::MakeSet(NewSet { name: "fresh".into(), ipv6: false, interval: true, timeout: false, comment: None }),
        BatchStep::MakeSet(NewSet {
            name: "by_netlink".into(),
            ipv6: false,
            interval: true,
            timeout: true,
            comment: None,
        }),
    ];
    let refused = Netlink::new(Some(ns.0.clone())).commit_steps("t", &again).expect_err("the set exists");
    assert!(matches!(refused, portcullis_nftables::netlink::NetlinkError::Refused { index: 1, .. }), "{refused}");
    assert!(!ns.nft(&["list", "sets", "inet"]).contains("fresh"), "nothing of the refused batch stays");
}
