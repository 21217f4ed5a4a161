//! The process' one [`Scrubber`]: every resolved secret of the configuration (each pfSense target's API key,
//! password and `user:password`), and the JWTs the pfRest clients obtain, which share it. The pfRest clients
//! scrub every answer with it before any text reaches an error, an answer or the audit trail; every log line is
//! scrubbed with it again on its way to stderr ([`ScrubbingWriter`]), at every level.
//!
//! The HTTP transport's bearer tokens are configured by SHA-256 only: the plain tokens are never known to the
//! process, never sent upstream and never logged, so there is nothing of them to scrub.

use std::io::{self, Write};
use std::sync::OnceLock;

use portcullis_pfrest::Scrubber;
use portcullis_pfrest::scrub::MIN_SECRET_LEN;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Config;

static GLOBAL: OnceLock<Scrubber> = OnceLock::new();

/// The process-wide scrubber (shared by every pfRest client and the log writer).
pub fn global() -> &'static Scrubber {
    GLOBAL.get_or_init(Scrubber::new)
}

/// Adds every secret value of the configuration to `scrubber`.
pub fn add_config(scrubber: &Scrubber, config: &Config) {
    for (_, pf) in config.pfsense_targets() {
        if let Some(key) = &pf.api_key {
            scrubber.add(key.expose());
        }
        if let Some(password) = &pf.password {
            scrubber.add_basic(pf.username.as_deref().unwrap_or_default(), password.expose());
        }
    }
    for secret in config.alerts.secrets() {
        scrubber.add(secret.expose());
    }
}

/// The secrets too short to be scrubbed reliably (fewer than [`MIN_SECRET_LEN`] characters), by key path. They
/// cannot be told apart from ordinary text, so a target that would use one is refused when it is built, and
/// `config check` names them (a file with placeholders still loads).
pub fn short_secrets(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, pf) in config.pfsense_targets() {
        let key = if name == crate::config::LEGACY_PFSENSE_TARGET {
            "pfsense".to_string()
        } else {
            format!("targets.{name}")
        };
        for (field, secret) in [("password", &pf.password), ("api_key", &pf.api_key)] {
            if secret.as_ref().is_some_and(|s| s.expose().chars().count() < MIN_SECRET_LEN) {
                out.push(format!("{key}.{field}"));
            }
        }
    }
    out
}

/// Why a secret is refused (never its value).
pub fn short_secret_message(key: &str) -> String {
    format!(
        "`{key}` is shorter than {MIN_SECRET_LEN} characters: a secret that short cannot be told apart from ordinary \
         text, so it could not be kept out of error messages, the audit trail and logs if the firewall or a proxy \
         echoed it back; use a longer password or a pfRest API key"
    )
}

/// Where scrubbed log lines go.
#[derive(Clone)]
pub enum Sink {
    Stderr,
    /// `logging.file`, shared by every line.
    File(std::sync::Arc<std::fs::File>),
}

/// Writes log lines to stderr (or `logging.file`) with every secret scrubbed. `tracing_subscriber`'s formatter
/// writes one event per writer, so a line is scrubbed whole (a secret cannot be split between two writes of one
/// event).
#[derive(Clone)]
pub struct ScrubbingWriter {
    scrubber: Scrubber,
    sink: Sink,
}

impl ScrubbingWriter {
    /// Scrubbed lines to `sink`.
    pub fn to(scrubber: Scrubber, sink: Sink) -> Self {
        ScrubbingWriter { scrubber, sink }
    }
}

/// One event's text, written scrubbed when the formatter is done with it.
pub struct ScrubbedLine {
    scrubber: Scrubber,
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for ScrubbedLine {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.sink.clone() {
            Sink::Stderr => self.emit(&mut io::stderr().lock()),
            Sink::File(file) => self.emit(&mut file.as_ref()),
        }
    }
}

impl ScrubbedLine {
    /// Writes what was collected, scrubbed, to `out`.
    fn emit(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = self.scrubber.scrub(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
        out.write_all(text.as_bytes())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for ScrubbingWriter {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine { scrubber: self.scrubber.clone(), sink: self.sink.clone(), buf: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_secrets_are_added() {
        let text = "pfsense: {host: fw, username: admin, password: pw-one-1234, api_key: key-two-5678}\n\
                    targets:\n  b: {kind: pfsense, host: fw2, username: ops, password: pw-three-9}\n";
        let config =
            crate::config::parse(text, std::path::Path::new("/etc/portcullis/config.yaml"), &|_| None).unwrap();
        let s = Scrubber::new();
        add_config(&s, &config);
        let line = "pw-one-1234 key-two-5678 pw-three-9 ops:pw-three-9 admin";
        assert_eq!(s.scrub(line), "[redacted] [redacted] [redacted] [redacted] admin");
    }

    #[test]
    fn short_secrets_are_named_by_key() {
        let text = "pfsense: {host: fw, username: admin, password: abc, api_key: long-enough}\n\
                    targets:\n  b: {kind: pfsense, host: fw2, api_key: k}\n";
        let config =
            crate::config::parse(text, std::path::Path::new("/etc/portcullis/config.yaml"), &|_| None).unwrap();
        assert_eq!(short_secrets(&config), vec!["pfsense.password".to_string(), "targets.b.api_key".to_string()]);
        assert!(!short_secret_message("pfsense.password").contains("abc"));
    }

    #[test]
    fn a_log_line_is_scrubbed_whole() {
        let s = Scrubber::new();
        s.add("log-secret-1");
        let mut line = ScrubbedLine { scrubber: s, sink: Sink::Stderr, buf: Vec::new() };
        line.write_all(b"a log-sec").unwrap();
        line.write_all(b"ret-1 b\n").unwrap();
        let mut out = Vec::new();
        line.emit(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a [redacted] b\n");
        assert!(line.buf.is_empty(), "nothing is written twice");
    }
}
