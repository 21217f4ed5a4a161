#![allow(clippy::unwrap_used)]
//! Secrets echoed back (issue 15): a hostile upstream — the pfRest emulator's `echo` fault, which quotes the
//! request line, query string, every header (`X-API-Key`, `Authorization: Basic ...`) and the body back in 4xx/5xx
//! envelopes, HTML error pages, a 200 with garbage, a 200 whose data is the echo, and a redirect whose `Location`
//! carries the credentials — is answered by the real `portcullis` binary with reads and a block on two pfSense
//! targets (API key; user and password), at the most verbose log level and with an `audit_file`. Then every
//! answer, every log line, the audit file, the audit log as `get_audit_log` shows it and the raw bytes of the
//! SQLite store are searched for every form of every secret.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use portcullis_pfrest_emulator::{EchoStyle, Emulator, EmulatorConfig};

/// Characters that every encoding changes: `+/=` (base64's own), a space, quotes, `&<>` and a non-ASCII letter.
const API_KEY: &str = "k3y+Of/The=Firewall-0123456789abcdef";
const USER: &str = "admin";
const PASSWORD: &str = "pa ss\"w/rd&<é>-9876";

fn percent(s: &str, lower: bool, plus: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            b' ' if plus => "+".into(),
            b if lower => format!("%{b:02x}"),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Every spelling of every secret the test looks for, written out here independently of the scrubber.
fn forbidden() -> Vec<(String, String)> {
    let pair = format!("{USER}:{PASSWORD}");
    let mut out = Vec::new();
    for (what, secret) in [("api key", API_KEY), ("password", PASSWORD), ("user:password", pair.as_str())] {
        let mut forms = vec![
            ("raw", secret.to_string()),
            ("raw middle", secret[2..secret.len() - 3].to_string()),
            ("json", serde_json::to_string(secret).unwrap().trim_matches('"').to_string()),
            (
                "php json",
                serde_json::to_string(secret).unwrap().trim_matches('"').replace('/', "\\/").replace('é', "\\u00e9"),
            ),
            ("percent", percent(secret, false, false)),
            ("percent lower", percent(secret, true, false)),
            ("form", percent(secret, false, true)),
            ("html", secret.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")),
        ];
        for (name, engine) in [
            ("base64", &STANDARD),
            ("base64 unpadded", &STANDARD_NO_PAD),
            ("base64url", &URL_SAFE),
            ("base64url unpadded", &URL_SAFE_NO_PAD),
        ] {
            forms.push((name, engine.encode(secret)));
        }
        for (form, text) in forms {
            out.push((format!("{what} ({form})"), text));
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

struct Run {
    label: String,
    stdout: String,
    stderr: String,
}

fn portcullis(dir: &Path, label: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("PORTCULLIS_LOG", "trace")
        .env("RUST_LOG", "trace")
        .output()
        .expect("portcullis runs");
    Run {
        label: format!("{label}: portcullis {}", args.join(" ")),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn no_secret_echoed_by_a_hostile_upstream_reaches_answers_audit_or_logs() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let emulator = runtime
        .block_on(Emulator::start(EmulatorConfig {
            api_keys: vec![API_KEY.into()],
            users: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        }))
        .unwrap();
    let port = emulator.local_addr().port();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("key.txt"), API_KEY).unwrap();
    std::fs::write(d.join("pw.txt"), PASSWORD).unwrap();
    let config = format!(
        "logging: {{level: trace, audit_file: {audit}}}\n\
         security: {{principal: admin}}\n\
         targets:\n\
         \x20 viakey: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {port}, api_key: \"file:{key}\", timeout: 5}}\n\
         \x20 viapass: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {port}, username: {USER}, password: \"file:{pw}\", timeout: 5}}\n\
         default_target: viakey\n",
        audit = d.join("audit.jsonl").display(),
        key = d.join("key.txt").display(),
        pw = d.join("pw.txt").display(),
    );
    std::fs::write(d.join("config.yaml"), config).unwrap();

    // A clean call first: the configuration works, so what follows fails only because of the echo.
    let mut runs = vec![portcullis(d, "clean", &["call", "get_firewall_rules", "target=viakey", "--json"])];
    assert!(runs[0].stdout.contains("Default allow LAN"), "{}\n{}", runs[0].stdout, runs[0].stderr);

    let scenarios: &[(&str, EchoStyle, u16, bool)] = &[
        ("envelope 500", EchoStyle::Envelope, 500, false),
        ("envelope 401", EchoStyle::Envelope, 401, false),
        ("envelope 400", EchoStyle::Envelope, 400, false),
        ("envelope 503", EchoStyle::Envelope, 503, false),
        ("html 502", EchoStyle::Html, 502, false),
        ("html 403", EchoStyle::Html, 403, false),
        ("200 garbage", EchoStyle::Text, 200, false),
        ("200 echo as data", EchoStyle::Data, 200, false),
        ("302 redirect", EchoStyle::Redirect, 302, false),
        ("writes: envelope 500", EchoStyle::Envelope, 500, true),
        ("writes: envelope 409", EchoStyle::Envelope, 409, true),
        ("writes: echo as data", EchoStyle::Data, 200, true),
        ("writes: redirect", EchoStyle::Redirect, 307, true),
    ];
    let mut last_octet = 10;
    for &(name, style, status, writes_only) in scenarios {
        for target in ["viakey", "viapass"] {
            emulator.faults().reset();
            emulator.faults().echo_next(1_000, style, status, writes_only);
            let t = format!("target={target}");
            if !writes_only {
                runs.push(portcullis(d, name, &["call", "get_firewall_rules", &t, "--json"]));
                runs.push(portcullis(d, name, &["call", "get_system_status", &t, "--json"]));
                runs.push(portcullis(d, name, &["call", "query_firewall_logs", &t, "--json"]));
            }
            last_octet += 1;
            let ip = format!("ip_address=198.51.100.{last_octet}");
            runs.push(portcullis(
                d,
                name,
                &["call", "block_ip_address", &ip, "duration=1h", "reason=scan", &t, "--json"],
            ));
        }
    }
    emulator.faults().reset();
    runs.push(portcullis(d, "audit", &["call", "get_audit_log", "limit=500", "--json"]));
    runs.push(portcullis(d, "config", &["config", "check"]));

    // The echo really was served, with the credentials in it, and reached the answers and the logs: what the
    // search below finds nothing of was there to find.
    let echoed = emulator.request_log().iter().filter(|r| r.fault.as_deref() == Some("echo")).count();
    assert!(echoed >= scenarios.len() * 2, "the emulator echoed {echoed} requests");
    let audit_file = std::fs::read(d.join("audit.jsonl")).unwrap();
    let mut stores = Vec::new();
    for entry in std::fs::read_dir(d.join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("portcullis.sqlite") {
            stores.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(!stores.is_empty());

    let mut leaks = Vec::new();
    for (form, text) in forbidden() {
        for run in &runs {
            for (stream, hay) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if find(hay.as_bytes(), text.as_bytes()) {
                    leaks.push(format!("{form} in {stream} of {}", run.label));
                }
            }
        }
        if find(&audit_file, text.as_bytes()) {
            leaks.push(format!("{form} in the audit file"));
        }
        for (path, bytes) in &stores {
            if find(bytes, text.as_bytes()) {
                leaks.push(format!("{form} in {path}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    let answers: String = runs.iter().map(|r| r.stdout.as_str()).collect();
    let logs: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    assert!(answers.contains("[redacted]"), "no answer quoted the scrubbed echo:\n{answers}");
    assert!(logs.contains("[redacted]"), "no log line quoted the scrubbed echo");
    assert!(logs.contains("TRACE"), "the log ran at trace level");
    assert!(answers.contains("redirects are not followed"), "a redirect is reported as one");
    assert!(answers.contains("X-API-Key") || answers.contains("x-api-key"), "the echoed headers reach the answers");

    assert!(find(&audit_file, b"[redacted]"), "the audit file records the scrubbed errors");
    runtime.block_on(emulator.shutdown());
}

#[test]
fn short_secrets_are_named_by_config_check_and_refused_at_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.yaml"),
        "targets:\n  fw: {kind: pfsense, protocol: http, host: 127.0.0.1, port: 9, username: admin, password: \"x1!\"}\n",
    )
    .unwrap();
    let check = portcullis(d, "check", &["config", "check"]);
    assert!(check.stdout.contains("targets.fw.password` is shorter than 4 characters"), "{}", check.stdout);
    assert!(!check.stdout.contains("x1!") && !check.stderr.contains("x1!"), "{}", check.stdout);
    let call = portcullis(d, "call", &["call", "get_firewall_rules", "target=fw", "--json"]);
    assert!(call.stderr.contains("shorter than 4 characters"), "{}\n{}", call.stdout, call.stderr);
    assert!(!call.stdout.contains("x1!") && !call.stderr.contains("x1!"));
}
