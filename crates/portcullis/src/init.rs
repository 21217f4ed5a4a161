//! `portcullis init`: a commented configuration file for this install, from flags or asked on the terminal. The
//! file is loaded back through the normal loader (every check `config check` makes) before it is kept; a file that
//! does not load is not left behind. An existing file is only replaced with `--force`.
//!
//! Secrets: an API key given on the command line is written into the file, which is then readable by its owner
//! only; `--pfsense-api-key-env VAR` writes `env:VAR` instead, read when Portcullis starts.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config;

/// What the file describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub pfsense: Option<PfSense>,
    /// Logical interface name → kernel device of an nftables target on this host.
    pub nftables: Option<Nftables>,
    pub principal: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSense {
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub api_key: ApiKey,
    pub verify_ssl: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKey {
    /// Written into the file.
    Literal(String),
    /// `env:VAR`.
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nftables {
    pub interfaces: BTreeMap<String, String>,
    pub netns: Option<String>,
}

const BUILT_IN_ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// `lan=eth1` pairs into a map, each name checked.
pub fn interface_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in pairs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let Some((logical, device)) = pair.split_once('=') else {
            bail!("--nftables-interfaces: {pair:?} is not NAME=DEVICE (e.g. lan=eth1,wan=eth0)");
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 15
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !ok(logical.trim()) || !ok(device.trim()) {
            bail!("--nftables-interfaces: {pair:?}: names are 1 to 15 letters, digits, '_', '-' or '.'");
        }
        out.insert(logical.trim().to_string(), device.trim().to_string());
    }
    Ok(out)
}

/// A YAML scalar: plain where YAML reads it back as the same string, quoted otherwise.
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~")
        && s.parse::<f64>().is_err();
    if plain { s.to_string() } else { serde_json::Value::String(s.to_string()).to_string() }
}

/// The configuration file's text.
pub fn render(a: &Answers) -> String {
    let mut out = String::from(
        "# Portcullis configuration, written by `portcullis init`.\n\
         # Check it with `portcullis config check` (add --probe to connect to the targets);\n\
         # every key is described in the README's Configuration section.\n\n",
    );
    if a.pfsense.is_none() && a.nftables.is_none() {
        out.push_str("# No firewall yet: the embedded lab firewall is the target. Add one under `targets:`.\n");
    }
    let mut default = None;
    if a.pfsense.is_some() || a.nftables.is_some() {
        out.push_str("targets:\n");
    }
    if let Some(p) = &a.pfsense {
        default.get_or_insert("pfsense");
        out.push_str("  # pfSense through its pfRest v2 API (System > REST API > Keys makes a key).\n");
        out.push_str("  pfsense:\n    kind: pfsense\n");
        out.push_str(&format!("    host: {}\n    port: {}\n    protocol: {}\n", scalar(&p.host), p.port, p.protocol));
        match &p.api_key {
            ApiKey::Literal(key) => {
                out.push_str("    # The key is in this file: keep it readable by its owner only (init made it so).\n");
                out.push_str(&format!("    api_key: {}\n", scalar(key)));
            }
            ApiKey::Env(var) => {
                out.push_str(&format!("    # Read from ${var} when Portcullis starts.\n"));
                out.push_str(&format!("    api_key: {}\n", scalar(&format!("env:{var}"))));
            }
        }
        if !p.verify_ssl {
            out.push_str("    # The firewall's certificate is not checked: prefer ca_file with its CA.\n");
        }
        out.push_str(&format!("    verify_ssl: {}\n", p.verify_ssl));
    }
    if let Some(n) = &a.nftables {
        default.get_or_insert("host");
        out.push_str("  # This Linux host (or a network namespace of it), filtered by nftables.\n");
        out.push_str("  host:\n    kind: nftables\n    interfaces:\n");
        for (logical, device) in &n.interfaces {
            out.push_str(&format!("      {}: {}\n", scalar(logical), scalar(device)));
        }
        if let Some(ns) = &n.netns {
            out.push_str(&format!("    netns: {}\n", scalar(ns)));
        }
    }
    if let Some(d) = default {
        out.push_str(&format!("default_target: {d}\n"));
    }
    out.push_str(
        "\nsecurity:\n  # Who the CLI and MCP over stdio run as (`portcullis whoami` shows what it may do).\n",
    );
    out.push_str(&format!("  principal: {}\n", scalar(&a.principal)));
    if !BUILT_IN_ROLES.contains(&a.principal.as_str()) {
        out.push_str(&format!("  principals:\n    {}: {{role: {}}}\n", scalar(&a.principal), scalar(&a.role)));
    }
    out.push_str("  # Addresses no change may block or cut off (your own workstation, say).\n  management_hosts: []\n");
    out
}

/// Where the file goes: `--output`, else `--config`, else `$PORTCULLIS_CONFIG`, else the platform's file.
pub fn destination(output: Option<&Path>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    output
        .or(config)
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PORTCULLIS_CONFIG").map(PathBuf::from))
        .or_else(config::default_config_path)
        .context("no place for the file: name one with --output FILE")
}

/// Asks on the terminal for what the flags did not say.
pub fn ask(answers: &mut Answers) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(());
    }
    let mut lines = stdin.lock().lines();
    let mut question = |q: &str| -> anyhow::Result<String> {
        eprint!("{q}: ");
        std::io::stderr().flush().ok();
        Ok(lines.next().transpose()?.unwrap_or_default().trim().to_string())
    };
    let host = question("pfSense host or address (empty: no pfSense)")?;
    if !host.is_empty() {
        let key = question("pfRest API key (empty: read it from $PORTCULLIS_PFSENSE_API_KEY)")?;
        let api_key =
            if key.is_empty() { ApiKey::Env("PORTCULLIS_PFSENSE_API_KEY".into()) } else { ApiKey::Literal(key) };
        answers.pfsense = Some(PfSense { host, port: 443, protocol: "https".into(), api_key, verify_ssl: true });
    }
    let pairs = question("nftables interfaces on this host, as lan=eth1,wan=eth0 (empty: none)")?;
    if !pairs.is_empty() {
        let split: Vec<String> = pairs.split(',').map(str::to_string).collect();
        answers.nftables = Some(Nftables { interfaces: interface_pairs(&split)?, netns: None });
    }
    let principal = question(&format!("your principal name [{}]", answers.principal))?;
    if !principal.is_empty() {
        answers.principal = principal;
    }
    Ok(())
}

/// Writes `text` to `path` (owner-only when it holds a key) after it loads as a configuration; a file that does
/// not load is not kept.
pub fn write_checked(path: &Path, text: &str, force: bool, holds_secret: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists already: pass --force to replace it, or --output FILE for another file", path.display());
    }
    let env = |k: &str| std::env::var(k).ok();
    config::parse(text, path, &env).map_err(|e| anyhow::anyhow!("the configuration would not load: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    }
    let temporary = path.with_extension("yaml.init");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if holds_secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).context("writing the configuration")?;
    std::fs::rename(&temporary, path).with_context(|| format!("putting {} in place", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            pfsense: Some(PfSense {
                host: "192.0.2.1".into(),
                port: 8443,
                protocol: "https".into(),
                api_key: ApiKey::Literal("key: with # signs".into()),
                verify_ssl: false,
            }),
            nftables: Some(Nftables {
                interfaces: BTreeMap::from([("lan".into(), "eth1".into()), ("wan".into(), "eth0".into())]),
                netns: Some("fw".into()),
            }),
            principal: "ada".into(),
            role: "operator".into(),
        }
    }

    #[test]
    fn the_file_loads_back_as_what_was_asked() {
        let text = render(&answers());
        let config = config::parse(&text, Path::new("init.yaml"), &|_| None).expect("it loads");
        assert_eq!(config.default_target.as_deref(), Some("pfsense"));
        assert_eq!(config.security.principal, "ada");
        assert_eq!(config.security.principals["ada"].role, "operator");
        match &config.targets["pfsense"] {
            config::TargetConfig::Pfsense(p) => {
                assert_eq!((p.host.as_str(), p.port, p.verify_ssl), ("192.0.2.1", 8443, false));
                assert_eq!(p.api_key.as_ref().map(|k| k.expose()), Some("key: with # signs"));
            }
            other => panic!("{other:?}"),
        }
        match &config.targets["host"] {
            config::TargetConfig::Nftables(n) => {
                assert_eq!(n.interfaces["wan"], "eth0");
                assert_eq!(n.netns.as_deref(), Some("fw"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_firewall_is_the_lab_and_an_env_key_is_not_written() {
        let lab = render(&Answers { principal: "admin".into(), role: "admin".into(), ..Default::default() });
        let config = config::parse(&lab, Path::new("init.yaml"), &|_| None).expect("it loads");
        assert!(config.targets.is_empty() && config.default_target.is_none());
        let mut a = answers();
        a.pfsense.as_mut().expect("pfsense").api_key = ApiKey::Env("PFKEY".into());
        let text = render(&a);
        assert!(text.contains("api_key: \"env:PFKEY\""), "{text}");
        let env = |k: &str| (k == "PFKEY").then(|| "from-env".to_string());
        assert!(config::parse(&text, Path::new("init.yaml"), &env).is_ok());
    }

    #[test]
    fn interface_pairs_are_checked() {
        assert_eq!(interface_pairs(&["lan=eth1".into(), " wan = eth0 ".into()]).expect("pairs").len(), 2);
        assert!(interface_pairs(&["lan".into()]).is_err());
        assert!(interface_pairs(&["lan=eth1; reboot".into()]).is_err());
    }
}
