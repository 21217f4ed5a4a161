//! `portcullis whoami`: the principal local calls run as, its role and what it may call, for the default operator
//! and for an admin named in the config.

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
