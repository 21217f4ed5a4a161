#![allow(clippy::unwrap_used)]
//! End to end: `portcullis logs import --eve FILE` stores a Suricata eve.json file's alerts in the target's store,
//! counts the other events and says what it skipped and why; the alerts are then `ids_alert` threats of
//! `analyze_threats` through `portcullis call`, and `logs.eve_files` entries are checked at load.

mod cli;

use cli::run;
use std::process::Output;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// An alert a minute ago, written with a `+0100` offset as a sensor at UTC+1 does.
fn alert(n: u32) -> String {
    let ts = (chrono::Utc::now() - chrono::TimeDelta::seconds(60 + i64::from(n)) + chrono::TimeDelta::hours(1))
        .format("%Y-%m-%dT%H:%M:%S%.6f+0100");
    format!(
        r#"{{"timestamp":"{ts}","flow_id":{n},"in_iface":"eth1","event_type":"alert","src_ip":"203.0.113.50","src_port":4{n:04},"dest_ip":"198.51.100.10","dest_port":8080,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2024217,"rev":3,"signature":"ET EXPLOIT Possible Apache Struts OGNL","category":"Attempted Administrator Privilege Gain","severity":1}}}}"#
    )
}

#[test]
fn logs_import_eve_stores_alerts_says_what_it_skipped_and_analyze_threats_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").unwrap();
    let eve = dir.path().join("eve.json");
    let mut lines: Vec<String> = (0..5).map(alert).collect();
    let flow = alert(9)
        .replace(r#""event_type":"alert""#, r#""event_type":"flow""#)
        .replace(r#""alert":{"#, r#""flow":{"pkts_toserver":1},"x":{"#);
    lines.push(flow);
    lines.push("not json at all".into());
    lines.push(format!("{{\"a\":\"{}\"}}", "x".repeat(100_000)));
    lines.push(alert(7).replace("\"severity\":1", "\"severity\":\"high\""));
    std::fs::write(&eve, lines.join("\n") + "\n").unwrap();

    let out =
        run(dir.path(), &["logs", "import", "--eve", eve.to_str().unwrap(), "--interface", "wan", "--sensor", "ids1"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("eve.json: 9 lines: stored 5 alerts; counted 5 alert, 1 flow; skipped 3: 1 bad value, 1 line too long, 1 not JSON"),
        "{said}"
    );

    let out = run(dir.path(), &["call", "analyze_threats", "timeframe=1h", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let data = found.get("data").unwrap_or(&found);
    let text_all = found.to_string();
    assert!(text_all.contains("\"ids_alert\"") && text_all.contains("203.0.113.50"), "{found}");
    assert!(text_all.contains("ET EXPLOIT Possible Apache Struts OGNL"), "{data}");

    let out = run(dir.path(), &["logs", "import", "--eve", eve.to_str().unwrap(), "--sensor", "ids\u{202e}1"]);
    assert!(!out.status.success() && text(&out).contains("--sensor"), "{}", text(&out));
    let out = run(dir.path(), &["logs", "import"]);
    assert!(!out.status.success() && text(&out).contains("nothing to import"), "{}", text(&out));

    let config = format!(
        "security: {{principal: admin}}\nlogs: {{eve_files: [{{path: {}, target: elsewhere}}]}}\n",
        eve.display()
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let out = run(dir.path(), &["config", "check"]);
    assert!(!out.status.success() && text(&out).contains("logs.eve_files[0].target"), "{}", text(&out));
}
