#![allow(clippy::unwrap_used)]
//! `logging.file`: `serve` writes its log there as well as to stderr, at the configured level, in a file created
//! with mode 0600; a file that cannot be opened stops the start with the key named.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `serve` over stdio with `logging` set as given, stdin closed at once (the session ends at EOF).
fn serve(dir: &Path, logging: &str) -> std::process::Output {
    let config = dir.join("config.yaml");
    std::fs::write(&config, format!("data_dir: {}\nlogging: {logging}\n", dir.join("data").display())).unwrap();
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env_remove("PORTCULLIS_LOG")
        .env_remove("PORTCULLIS_LOG_LEVEL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn serve_logs_to_the_configured_file_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("portcullis.log");
    let out = serve(dir.path(), &format!("{{level: INFO, file: {}}}", log.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO") && text.contains("serving"), "file: {text}\nstderr: {stderr}");
    assert!(stderr.contains("serving"), "stderr keeps the log: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A second start appends.
    serve(dir.path(), &format!("{{level: INFO, file: {}}}", log.display()));
    let again = std::fs::read_to_string(&log).unwrap();
    assert_eq!(again.matches("serving").count(), 2 * text.matches("serving").count(), "{again}");
}

#[test]
fn the_file_gets_the_configured_level_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("warn.log");
    serve(dir.path(), &format!("{{level: warning, file: {}}}", log.display()));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("INFO"), "{text}");
}

#[cfg(unix)]
#[test]
fn an_existing_file_readable_by_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("old.log");
    std::fs::write(&log, "an old line\n").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    serve(dir.path(), &format!("{{file: {}}}", log.display()));
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an old line\n") && text.contains("serving"), "{text}");
}

#[test]
fn a_file_that_cannot_be_opened_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("no-such-dir").join("portcullis.log");
    let out = serve(dir.path(), &format!("{{file: {}}}", log.display()));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("logging.file") && stderr.contains("no-such-dir"), "{stderr}");
}
