//! The operator's CLI: `portcullis whoami` (principal, role, what it may call), `config check` naming the tools an
//! allow list puts out of reach, `-o FILE` saving a report as HTML without `jq`, `token new`, `client-config` and
//! `init`.

mod cli;

#[test]
fn whoami_names_the_principal_its_role_and_what_it_may_not_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let out = cli::run(dir.path(), &["whoami", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((me["principal"].as_str(), me["role"].as_str()), (Some("operator"), Some("operator")), "{me}");
    let refused: Vec<&str> = me["may_not_call"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(refused.contains(&"create_firewall_rule"), "the rule tools are named, not hidden without a word: {me}");
    assert!(me["may_call"].as_array().unwrap().iter().any(|v| v == "block_ip_address"));
    assert!(me["run_as_another"].as_str().unwrap().contains("security.principal"));

    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").expect("config");
    let out = cli::run(dir.path(), &["whoami"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("principal: admin") && text.contains("role:      admin"), "{text}");
    assert!(!text.contains("may not call"), "an admin may call everything: {text}");
}

#[test]
fn config_check_names_the_tools_the_customers_allow_list_puts_out_of_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "[read_rules, create_rule, modify_rule, delete_rule, read_logs, block_ip]";
    std::fs::write(dir.path().join("config.yaml"), format!("security: {{allowed_operations: {list}}}\n"))
        .expect("config");
    let out = cli::run(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("out of everyone's reach"), "{text}");
    assert!(
        text.contains("#   unblock_ip: unblock_domain, unblock_ip_address"),
        "one can block but never unblock: {text}"
    );
    assert!(text.contains("#   read_blocks: list_blocks"), "nor list: {text}");
    assert!(!text.contains("block_ip: block_ip_address"), "what is allowed is not listed: {text}");

    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let out = cli::run(dir.path(), &["config", "check"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("out of everyone's reach"));
}

#[test]
fn a_report_is_saved_as_html_with_dash_o_and_no_jq() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let out = cli::run(dir.path(), &["lab", "traffic"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = dir.path().join("report.html");
    let args = ["call", "generate_security_report", "timeframe=24h", "format=html", "-o", file.to_str().unwrap()];
    let out = cli::run(dir.path(), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote the rendered report"));
    let html = std::fs::read_to_string(&file).expect("the report file");
    assert!(html.trim_start().to_ascii_lowercase().starts_with("<!doctype html"), "{}", &html[..80.min(html.len())]);
    let json = dir.path().join("blocks.json");
    let out = cli::run(dir.path(), &["call", "list_blocks", "-o", json.to_str().unwrap()]);
    assert!(out.status.success());
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("JSON");
    assert!(saved["data"].is_array(), "{saved}");
}

#[test]
fn every_tool_has_help_with_its_arguments_and_an_example_and_misspellings_get_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let out = cli::run(dir.path(), &["tools", "--json"]);
    let tools: serde_json::Value = serde_json::from_slice(&out.stdout).expect("catalogue");
    for tool in tools.as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let out = cli::run(dir.path(), &["call", name, "--help"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(name) && text.contains("example:\n  portcullis call"), "{name}: {text}");
        for required in tool["input_schema"]["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap();
            assert!(text.contains(&format!("  {key} (")) && text.contains(&format!("{key}=<")), "{name}: {text}");
        }
    }
    let out = cli::run(dir.path(), &["call", "block_domain", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("domain (string, required)") && text.contains("dry_run (boolean, optional)"), "{text}");
    let out = cli::run(dir.path(), &["call", "get_onlin_devices", "--help"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `get_online_devices`"));
    let out = cli::run(dir.path(), &["call", "get_onlin_devices"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `get_online_devices`"), "the call too");
}

#[test]
fn exit_codes_say_what_kind_of_no_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let code = |args: &[&str]| cli::run(dir.path(), args).status.code();
    assert_eq!(code(&["call", "list_blocks"]), Some(0));
    assert_eq!(code(&["call", "block_ip_address", "ip_address=300.1.1.1", "duration=1h", "reason=x"]), Some(2));
    assert_eq!(code(&["call", "no_such_tool"]), Some(2));
    // The default operator may not edit rules: the guardrails refuse.
    let rule = ["call", "delete_firewall_rule", "rule_id=1"];
    assert_eq!(code(&rule), Some(4));
}

/// What `portcullis ARGS` prints in a pseudo-terminal `cols` wide (`script` from util-linux).
fn in_terminal(dir: &std::path::Path, cols: u16, args: &[&str]) -> String {
    let line = format!(
        "stty cols {cols} rows 50; {} --config {} --data-dir {} {}",
        env!("CARGO_BIN_EXE_portcullis"),
        dir.join("config.yaml").display(),
        dir.join("data").display(),
        args.join(" ")
    );
    let out = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).output().expect("script runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_reads_table_fits_a_terminal_of_80_and_of_120_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {principal: admin}\n").expect("config");
    assert!(cli::run(dir.path(), &["lab", "traffic"]).status.success());
    let block =
        ["call", "block_ip_address", "ip_address=198.51.100.7", "duration=1h", "reason=a long reason that wraps"];
    assert!(cli::run(dir.path(), &block).status.success());
    let out = cli::run(dir.path(), &["tools", "--json"]);
    let tools: serde_json::Value = serde_json::from_slice(&out.stdout).expect("catalogue");
    let reads: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["read_only"] == true)
        .filter(|t| t["input_schema"]["required"].as_array().is_none_or(|r| r.is_empty()))
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(reads.len() >= 15, "{reads:?}");
    for cols in [80u16, 120] {
        for tool in &reads {
            let text = in_terminal(dir.path(), cols, &["call", tool]);
            let widest = text.lines().map(|l| l.trim_end_matches('\r').chars().count()).max().unwrap_or(0);
            assert!(widest <= usize::from(cols), "{tool} at {cols} columns is {widest} wide:\n{text}");
        }
        let text = in_terminal(dir.path(), cols, &["call", "get_audit_log", "limit=5"]);
        assert!(text.lines().all(|l| l.trim_end_matches('\r').chars().count() <= usize::from(cols)), "{text}");
    }
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let refused = ["call", "block_ip_address", "ip_address=300.1.1.1", "duration=1h", "reason=x"];
    let on_terminal = in_terminal(dir.path(), 100, &refused);
    assert!(on_terminal.contains("\x1b[1;31merror [validation_error]\x1b[0m"), "{on_terminal:?}");
    let line = format!(
        "NO_COLOR=1 {} --config {} --data-dir {} {}",
        env!("CARGO_BIN_EXE_portcullis"),
        dir.path().join("config.yaml").display(),
        dir.path().join("data").display(),
        refused.join(" ")
    );
    let out = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).output().expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error [validation_error]") && !text.contains('\x1b'), "{text:?}");
    let piped = cli::run(dir.path(), &refused);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains('\x1b'), "no colour into a pipe");
}

/// `token new` prints the token once and puts only its hash in the file, keeping the file's comments; an unknown
/// principal or a form it cannot extend is refused with the file untouched.
#[test]
fn token_new_adds_the_hash_keeps_the_comments_and_prints_the_token_once() {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let original =
        "# the SOC's Portcullis\nsecurity:\n  principals:\n    soc-bot: {role: operator}  # the triage bot\n";
    std::fs::write(&path, original).expect("config");
    let out = cli::run(dir.path(), &["token", "new", "soc-bot"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("pct_") && token.len() > 40, "{token}");
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.starts_with(original), "comments and layout kept: {text}");
    assert!(!text.contains(&token), "the file holds no token");
    assert!(text.contains(&hex::encode(sha2::Sha256::digest(token.as_bytes()))), "{text}");
    let check = cli::run(dir.path(), &["config", "check"]);
    assert!(check.status.success(), "the edited file loads: {}", String::from_utf8_lossy(&check.stderr));

    let second = cli::run(dir.path(), &["token", "new", "soc-bot"]);
    assert!(second.status.success());
    assert_eq!(std::fs::read_to_string(&path).expect("config").matches("principal: soc-bot").count(), 2);

    let before = std::fs::read_to_string(&path).expect("config");
    let unknown = cli::run(dir.path(), &["token", "new", "nobody"]);
    assert!(!unknown.status.success());
    assert_eq!(std::fs::read_to_string(&path).expect("config"), before, "untouched");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("security.principals"));
    std::fs::write(&path, "http: {bind: 127.0.0.1:8787}\n").expect("config");
    let flow = cli::run(dir.path(), &["token", "new", "admin"]);
    assert!(!flow.status.success() && String::from_utf8_lossy(&flow.stderr).contains("by hand"));
    assert_eq!(std::fs::read_to_string(&path).expect("config"), "http: {bind: 127.0.0.1:8787}\n", "untouched");
}

#[test]
fn client_config_prints_a_snippet_that_starts_this_binary_with_its_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), "security: {}\n").expect("config");
    let out = cli::run(dir.path(), &["client-config", "claude"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout alone");
    let server = &v["mcpServers"]["portcullis"];
    assert!(std::path::Path::new(server["command"].as_str().unwrap()).exists(), "{v}");
    let args: Vec<&str> = server["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(args.first(), Some(&"--config"));
    assert!(args[1].ends_with("config.yaml") && args.last() == Some(&"serve"), "{args:?}");
    let http = cli::run(dir.path(), &["client-config", "vscode", "--http", "https://fw.example.com/mcp"]);
    let v: serde_json::Value = serde_json::from_slice(&http.stdout).expect("JSON");
    assert_eq!(v["servers"]["portcullis"]["url"], "https://fw.example.com/mcp");
    assert!(!cli::run(dir.path(), &["client-config", "cursor", "--http", "not a url"]).status.success());
}

#[test]
fn config_check_probe_says_which_targets_answer_and_why_the_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "security: {}\ntargets:\n  gw:\n    kind: nftables\n    netns: pc-no-such-namespace\n    interfaces: {lan: eth1}\n";
    std::fs::write(dir.path().join("config.yaml"), config).expect("config");
    let out = cli::run(dir.path(), &["config", "check", "--probe"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# targets: lab, gw (nftables)"), "{text}");
    assert!(text.contains("# probe lab: ok"), "{text}");
    let gw = text.lines().find(|l| l.starts_with("# probe gw:")).expect("gw probed");
    assert!(gw.contains("pc-no-such-namespace"), "the reason names what is wrong: {gw}");
    assert_eq!(out.status.code(), Some(1), "a target that does not answer fails the check");
    let plain = cli::run(dir.path(), &["config", "check"]);
    assert!(plain.status.success() && !String::from_utf8_lossy(&plain.stdout).contains("# probe"));
}

/// `portcullis init` from flags against the pfRest emulator: the file loads, holds the key readable by its owner
/// only, and `--probe` (and `config check --probe` after it) reaches the firewall; an existing file is kept
/// without `--force`, and a file that would not load is not written.
#[test]
fn init_writes_a_config_that_checks_and_probes_the_emulator() {
    use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let emulator = runtime.block_on(Emulator::start(EmulatorConfig::with_api_key("init-key-0123456789"))).expect("emu");
    let port = emulator.local_addr().port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let init = |extra: &[&str]| {
        let mut args = vec![
            "init",
            "--pfsense-host",
            "127.0.0.1",
            "--pfsense-port",
            &port,
            "--pfsense-protocol",
            "http",
            "--pfsense-api-key",
            "init-key-0123456789",
            "--principal",
            "ada",
            "--role",
            "operator",
        ];
        args.extend_from_slice(extra);
        cli::run(dir.path(), &args)
    };
    let out = init(&["--probe"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("# probe pfsense: ok"), "{text}");
    let written = std::fs::read_to_string(&path).expect("the file");
    assert!(written.contains("# Portcullis configuration, written by `portcullis init`."), "{written}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is in the file: owner only");
    }
    let check = cli::run(dir.path(), &["config", "check", "--probe"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let whoami = String::from_utf8_lossy(&cli::run(dir.path(), &["whoami"]).stdout).into_owned();
    assert!(whoami.contains("ada") && whoami.contains("operator"), "{whoami}");

    let again = init(&[]);
    assert!(!again.status.success(), "an existing file is kept");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).expect("file"), written);

    let other = dir.path().join("other.yaml");
    let other_arg = other.to_string_lossy().into_owned();
    let bad = cli::run(dir.path(), &["init", "--output", &other_arg, "--nftables-interfaces", "lan"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NAME=DEVICE"));
    let unloadable = cli::run(dir.path(), &["init", "--output", &other_arg, "--pfsense-host", "bad host name"]);
    assert!(!unloadable.status.success(), "{}", String::from_utf8_lossy(&unloadable.stdout));
    assert!(String::from_utf8_lossy(&unloadable.stderr).contains("would not load"));
    assert!(!other.exists(), "nothing is written");
    runtime.block_on(emulator.shutdown());
}
