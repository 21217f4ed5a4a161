//! The hardened unit `docs/portcullis-nftables.service`, checked by systemd itself (Debian's `systemd` package;
//! `scripts/test` installs it; no running systemd is needed): `systemd-analyze verify` finds nothing to say about
//! it with the built binary as its `ExecStart`, and `systemd-analyze security --offline=true` marks as exposed only
//! settings the service needs, each listed here with the reason, for an overall exposure below 3.0.

use std::process::Command;

const UNIT: &str = include_str!("../../../docs/portcullis-nftables.service");
const INSTALLED_BINARY: &str = "/usr/bin/portcullis";

/// Every setting `systemd-analyze security` may mark exposed (✗), and why the service needs it that way.
const NEEDED: &[(&str, &str)] = &[
    ("PrivateNetwork=", "it serves MCP over HTTP and reaches the firewall APIs"),
    ("IPAddressDeny=", "the addresses come from the configuration; set_egress_policy is the allow list, in nftables"),
    ("RestrictAddressFamilies=~AF_(INET|INET6)", "HTTP and pfRest"),
    ("RestrictAddressFamilies=~AF_NETLINK", "nft and ip talk to the kernel over netlink"),
    ("RestrictAddressFamilies=~AF_UNIX", "the journal (stderr logging) and the resolver"),
    ("CapabilityBoundingSet=~CAP_NET_ADMIN", "writing nftables"),
    ("CapabilityBoundingSet=~CAP_SYSLOG", "reading the kernel log, where logged rules write"),
    ("AmbientCapabilities=", "those two capabilities for a service that is not root"),
    ("PrivateUsers=", "capabilities in a user namespace of its own would not reach the host's nftables"),
    ("ProtectKernelLogs=", "firewall log lines are read from the kernel log"),
    ("PrivateDevices=", "it would hide /dev/kmsg; DevicePolicy=closed with DeviceAllow keeps only that"),
    ("DeviceAllow=", "/dev/kmsg read-only (systemd adds char-rtc read-only itself)"),
    ("ProcSubset=", "system status reads /proc/stat, /proc/meminfo and /proc/uptime"),
    ("RootDirectory=/RootImage=", "it runs the distribution's nft and ip"),
    ("SystemCallFilter=~@privileged", "@system-service as a whole; narrowing it needs a run under systemd"),
    ("SystemCallFilter=~@resources", "@system-service as a whole; narrowing it needs a run under systemd"),
];

/// Systemd's own bands put 1.0-4.9 at "OK"; the needs above come to 2.2 with systemd 252's weights. 3.0
/// leaves room for another version's weights; a single lost setting (+0.1 to 0.5) is caught by the ✗ list instead.
const MAX_EXPOSURE: f64 = 3.0;

fn unit_with_built_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    assert!(UNIT.contains(INSTALLED_BINARY), "the unit starts {INSTALLED_BINARY}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("portcullis.service");
    std::fs::write(&path, UNIT.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_portcullis"))).expect("unit");
    (dir, path)
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze is needed ({e}): `apt-get install systemd`, as scripts/test does"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn systemd_finds_nothing_wrong_with_the_unit() {
    let (_dir, unit) = unit_with_built_binary();
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().expect("path")]);
    // Unknown keys and bad values are warnings with exit status 0: any output at all fails the test.
    assert!(ok && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn the_unit_exposes_only_what_the_service_needs() {
    let (_dir, unit) = unit_with_built_binary();
    let (ok, text) = systemd_analyze(&["security", "--offline=true", "--no-pager", unit.to_str().expect("path")]);
    assert!(ok, "systemd-analyze security:\n{text}");
    let exposed: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("✗ ")).filter_map(|l| l.split_whitespace().next()).collect();
    assert!(!exposed.is_empty(), "no ✗ lines: is this systemd-analyze's format?\n{text}");
    let unexpected: Vec<&&str> = exposed.iter().filter(|s| !NEEDED.iter().any(|(n, _)| n == *s)).collect();
    assert!(unexpected.is_empty(), "exposed without a reason in NEEDED: {unexpected:?}\n{text}");
    let overall = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for portcullis.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    assert!(overall < MAX_EXPOSURE, "exposure {overall} is not below {MAX_EXPOSURE}:\n{text}");
}
