//! What the configuration tests share: the customer's file, an environment to look variables up in, and
//! assertions on the key an error names.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, parse};

pub const CUSTOMER_YAML: &str = r#"pfsense: {host: "192.168.1.1", port: 443, protocol: "https", username: "admin", password: "...",
          api_key: "...", verify_ssl: true}
mcp: {server_name: "pfsense-network-security", version: "1.0.0"}
security: {rate_limit: 50, timeout: 30,
           allowed_operations: [read_rules, create_rule, modify_rule, delete_rule, read_logs, block_ip],
           restricted_interfaces: [wan]}
logging: {level: INFO, file: /var/log/pfsense-mcp.log, audit_file: /var/log/pfsense-mcp-audit.log}
interfaces: {wan: em0, lan: em1, dmz: em2}
"#;

pub const SECRET: &str = "hunter2-very-secret-value";

pub fn no_env(_: &str) -> Option<String> {
    None
}

pub fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |k: &str| map.get(k).cloned()
}

pub fn origin() -> &'static Path {
    Path::new("/etc/portcullis/config.yaml")
}

pub fn parse_err(text: &str) -> ConfigError {
    parse(text, origin(), &no_env).expect_err("expected an error")
}

pub fn assert_invalid_key(text: &str, expected_key: &str) {
    match parse_err(text) {
        ConfigError::Invalid { key, message } => {
            assert_eq!(key, expected_key, "message: {message}");
            assert!(message.contains("/etc/portcullis/config.yaml"), "{message}");
        }
        other => panic!("expected Invalid for {expected_key}, got {other}"),
    }
}
