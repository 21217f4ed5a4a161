#![allow(clippy::unwrap_used)]
//! End to end: `portcullis audit verify` against a store tampered with outside Portcullis (rusqlite on the
//! SQLite file), with the default witness beside the store in the data directory.

mod cli;

use std::path::Path;

use cli::run;

fn verify(dir: &Path) -> (i32, serde_json::Value, String) {
    let out = run(dir, &["audit", "verify"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn setup(calls: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").unwrap();
    for _ in 0..calls {
        let out = run(dir.path(), &["call", "get_firewall_rules", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

fn sql(dir: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join("data/portcullis.sqlite")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn audit_verify_reports_a_cut_tail_against_the_default_witness() {
    let dir = setup(4);
    assert!(dir.path().join("data/audit.jsonl").exists(), "the witness is on by default");
    let (code, v, _) = verify(dir.path());
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v}");
    let records = v["records"].as_i64().unwrap();
    assert!(records >= 4, "{v}");

    sql(dir.path(), &format!("DELETE FROM audit WHERE seq >= {}", records - 1));
    let (code, v, _) = verify(dir.path());
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["broken_at"].as_i64(), Some(records - 1), "{v}");
}

#[test]
fn audit_verify_reports_a_deleted_middle_row_by_sequence() {
    let dir = setup(4);
    sql(dir.path(), "DELETE FROM audit WHERE seq = 2");
    let (code, v, _) = verify(dir.path());
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["broken_at"].as_i64(), Some(2), "{v}");
}

#[test]
fn a_witness_left_behind_by_a_crash_is_reconciled_at_the_next_start_and_said() {
    let dir = setup(3);
    // A crash between the commit and the file write: the last line never reached the file.
    let path = dir.path().join("data/audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    let kept = kept[..kept.len() - 1].join("\n") + "\n";
    std::fs::write(&path, kept).unwrap();
    let (code, v, stderr) = verify(dir.path());
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v} {stderr}");
    assert!(stderr.contains("WARN") && stderr.contains("audit witness was behind the store"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "the missing line is appended again");
}
