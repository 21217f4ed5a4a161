#![allow(clippy::unwrap_used)]
//! End to end: `portcullis geoip install` and the start with a country database. A truncated or corrupt file is
//! refused at install (nothing installed) and at start (the call does not run, the firewall is untouched); a good
//! one is installed, answers `lookup_country`, and `geoip info` shows its attribution.

mod cli;

use cli::run;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/geoip/dbip-layout.mmdb")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The fixture cut in half, and with bytes of its search tree flipped.
fn broken(dir: &Path) -> [PathBuf; 2] {
    let good = std::fs::read(fixture()).unwrap();
    let truncated = dir.join("truncated.mmdb");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let mut flipped = good.clone();
    for b in flipped.iter_mut().take(600).skip(40) {
        *b ^= 0x5a;
    }
    let corrupt = dir.join("corrupt.mmdb");
    std::fs::write(&corrupt, flipped).unwrap();
    [truncated, corrupt]
}

#[test]
fn a_broken_database_is_refused_at_install_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").unwrap();
    for bad in broken(dir.path()) {
        let out = run(dir.path(), &["geoip", "install", bad.to_str().unwrap()]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("nothing was installed"), "{}", text(&out));
        assert!(!dir.path().join("data/geoip/country.mmdb").exists());

        let config = format!("security: {{principal: admin}}\ngeoip: {{database: {}}}\n", bad.display());
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        let out = run(dir.path(), &["call", "list_geo_blocks", "--json"]);
        assert!(!out.status.success(), "a broken configured database stops the start: {}", text(&out));
        assert!(text(&out).contains("geoip.database"), "{}", text(&out));
        std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").unwrap();
    }
}

#[test]
fn an_installed_database_answers_and_says_where_its_data_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").unwrap();
    let out = run(dir.path(), &["geoip", "info"]);
    assert_eq!(out.status.code(), Some(2), "none installed yet: {}", text(&out));
    let out = run(dir.path(), &["geoip", "install", fixture().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("lab: no geo blocks to refresh"), "{}", text(&out));
    let out = run(dir.path(), &["geoip", "info"]);
    assert!(text(&out).contains("IP Geolocation by DB-IP") && text(&out).contains("2026-05-28"), "{}", text(&out));
    let out = run(dir.path(), &["call", "lookup_country", "ip_address=198.51.100.7", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["country"], "RU", "{answer}");
}
