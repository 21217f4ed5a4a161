//! `portcullis token new PRINCIPAL`: a bearer token for the Streamable HTTP transport. The token is printed once;
//! the configuration file gets only its SHA-256 (`http.tokens`), added in place so the file's comments and layout
//! stay. The edited file must load and hold the new hash, or it is put back as it was.

use std::path::Path;

use anyhow::Context;
use base64::Engine;

use crate::config::{self, Config};

/// A new token: 32 random bytes, URL-safe base64, with a prefix that says what it is.
fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no random source for a token: {e}"))?;
    Ok(format!("pct_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The file with one more entry in `http.tokens`, placed by looking at the text: under an existing block-style
/// `tokens:` of a top-level `http:`, into a new `tokens:` under `http:`, or as a new `http:` section. `None` when
/// the file says `tokens` in a form this cannot extend safely (a flow list, say).
pub fn with_token(text: &str, principal: &str, sha256: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let entry = |indent: &str| format!("{indent}- principal: {principal}\n{indent}  sha256: \"{sha256}\"\n");
    let is_top = |l: &str, key: &str| l.starts_with(key) && l[key.len()..].trim_start().starts_with(':');
    let Some(http) = lines.iter().position(|l| is_top(l, "http")) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("http:\n  tokens:\n{}", entry("    ")));
        return Some(out);
    };
    let after_colon = lines[http].split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
    if !(after_colon.is_empty() || after_colon.starts_with('#')) {
        return None; // `http: {…}` in flow style
    }
    // The `http:` block: the lines after it that are indented (or blank/comments).
    let end = lines[http + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && !l.starts_with([' ', '\t']) && !l.trim_start().starts_with('#'))
        .map_or(lines.len(), |p| http + 1 + p);
    let tokens = (http + 1..end).find(|&i| {
        let t = lines[i].trim_start();
        t.starts_with("tokens") && t["tokens".len()..].trim_start().starts_with(':')
    });
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match tokens {
        None => {
            let indent = lines[http + 1..end]
                .iter()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map_or("  ".to_string(), |l| l[..l.len() - l.trim_start().len()].to_string());
            let block = format!("{indent}tokens:\n{}", entry(&format!("{indent}  ")));
            out.insert(http + 1, block.trim_end_matches('\n').to_string());
        }
        Some(t) => {
            let rest = lines[t].split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
            if !(rest.is_empty() || rest.starts_with('#')) {
                return None; // `tokens: [...]`
            }
            let own = lines[t].len() - lines[t].trim_start().len();
            // The last line of the list: items and their fields are indented at least as far as `tokens:`.
            let mut last = t;
            let mut item_indent = None;
            for (i, l) in lines.iter().enumerate().take(end).skip(t + 1) {
                if l.trim().is_empty() || l.trim_start().starts_with('#') {
                    continue;
                }
                let indent = l.len() - l.trim_start().len();
                if indent < own || (indent == own && !l.trim_start().starts_with('-')) {
                    break;
                }
                if l.trim_start().starts_with('-') && item_indent.is_none() {
                    item_indent = Some(l[..indent].to_string());
                }
                last = i;
            }
            let indent = item_indent.unwrap_or_else(|| " ".repeat(own + 2));
            out.insert(last + 1, entry(&indent).trim_end_matches('\n').to_string());
        }
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    Some(joined)
}

/// Makes the token, adds its hash to `path`, checks the result loads, and prints the token once.
pub fn new(path: &Path, config: &Config, principal: &str) -> anyhow::Result<i32> {
    let Some(role) = config.security.role_of(principal) else {
        anyhow::bail!(
            "principal {principal:?} has no role: add it under security.principals (e.g. {principal}: {{role: operator}}) first"
        );
    };
    let original = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let token = new_token()?;
    let hash = sha256_hex(&token);
    let edited = with_token(&original, principal, &hash).with_context(|| {
        format!(
            "{} writes http or http.tokens in a form this cannot extend; add this entry to http.tokens by hand:\n  \
             - principal: {principal}\n    sha256: \"<the SHA-256 of the token>\"",
            path.display()
        )
    })?;
    std::fs::write(path, &edited).with_context(|| format!("writing {}", path.display()))?;
    let env = |name: &str| std::env::var(name).ok();
    let holds = config::load(Some(path), &env)
        .map(|l| l.config.http.tokens.iter().any(|t| t.principal == principal && t.sha256 == hash))
        .unwrap_or(false);
    if !holds {
        std::fs::write(path, &original).with_context(|| format!("putting {} back", path.display()))?;
        anyhow::bail!("the edited {} did not load with the new token; it is as it was", path.display());
    }
    eprintln!(
        "# added to {} (http.tokens, principal {principal}, role {role}); the token is shown only now:",
        path.display()
    );
    println!("{token}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ab12";

    #[test]
    fn a_token_goes_into_the_file_as_it_is_written() {
        let none = with_token("# my firewall\ntargets: {}\n", "soc-bot", H).expect("appended");
        assert!(none.starts_with("# my firewall\ntargets: {}\nhttp:\n  tokens:\n    - principal: soc-bot\n"), "{none}");
        let no_tokens = with_token("http:\n  bind: 0.0.0.0:8787  # public\nsecurity: {}\n", "soc-bot", H).expect("x");
        assert_eq!(
            no_tokens,
            "http:\n  tokens:\n    - principal: soc-bot\n      sha256: \"ab12\"\n  bind: 0.0.0.0:8787  # public\nsecurity: {}\n"
        );
        let listed =
            "http:\n  tokens:\n    # the bot\n    - principal: a\n      sha256: \"x\"\n  bind: 1.2.3.4:1\nx: 1\n";
        let more = with_token(listed, "b", H).expect("appended to the list");
        assert_eq!(
            more,
            "http:\n  tokens:\n    # the bot\n    - principal: a\n      sha256: \"x\"\n    - principal: b\n      sha256: \"ab12\"\n  bind: 1.2.3.4:1\nx: 1\n"
        );
        let unindented = "http:\n  tokens:\n  - principal: a\n    sha256: x\n";
        assert!(with_token(unindented, "b", H).expect("x").ends_with("  - principal: b\n    sha256: \"ab12\"\n"));
        assert_eq!(with_token("http: {bind: x}\n", "b", H), None);
        assert_eq!(with_token("http:\n  tokens: [{principal: a, sha256: x}]\n", "b", H), None);
    }

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let (a, b) = (new_token().expect("token"), new_token().expect("token"));
        assert!(a.starts_with("pct_") && a.len() > 40 && a != b);
        assert_eq!(sha256_hex("x").len(), 64);
    }
}
