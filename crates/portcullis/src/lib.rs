pub mod config;
#[test]
fn show() {
    use std::path::Path;
    let o = Path::new("/etc/portcullis/config.yaml");
    let e = |_: &str| None;
    for t in ["securty: {rate_limit: 5}\n", "security: {rate_limt: 5}\n", "logging:\n  level: info\nsecurity:\n  timeout: 3\n  rate_limt: 5\n", "security: {rate_limit: lots}\n", "pfsense: {port: 443}\n", "security: {max_risk_score: 300}\n", "pfsense: {host: fw, password: \"env:NOPE\"}", "interfaces: {wan: 3, lan: [a]}", "pfsense: {host: fw, password: 12345}"] {
        match config::parse(t, o, &e) { Err(err) => println!("{err}"), Ok(c) => println!("OK {}", c.redacted_yaml()) }
    }
    println!("{}", config::parse("pfsense: {host: fw, api_key: x}\nhttp: {tokens: [{principal: bot, sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad}]}\n", o, &e).unwrap().redacted_yaml());
    println!("{}", config::load(Some(Path::new("/nonexistent.yaml")), &e).unwrap_err());
}
