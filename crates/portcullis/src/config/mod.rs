//! The YAML configuration file.
//!
//! Portcullis reads one YAML file (see [`load()`] for where it is looked for),
//! applies `PORTCULLIS_*` environment overrides on top of it, resolves secret
//! references, and validates every value. Every error names the file, the key
//! path (for example `security.rate_limit`) or the environment variable at
//! fault, and never a secret value.
//!
//! Secrets (`pfsense.password`, `pfsense.api_key`) may be written literally,
//! as `"env:VARNAME"` (read from the environment at load time) or as
//! `"file:/path/to/secret"` (read from a file, trailing newline removed).
//! Relative paths in the file (`file:` secrets, `pfsense.ca_file`, `data_dir`,
//! `logging.file`, `logging.audit_file`) are relative to the directory of the
//! configuration file.

mod alerts;
mod devices;
mod domains;
mod env;
mod load;
mod logs;
mod mirroring;
mod schema;
#[cfg(test)]
mod test_support;
mod validate;

use std::path::{Path, PathBuf};

pub use alerts::ReportSchedule;
pub use load::*;
pub use logs::LogsConfig;
pub use schema::*;

/// Why the configuration could not be loaded. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML or does not match the schema
    /// (unknown key, wrong type, ...). The message carries the key path and
    /// the line/column.
    #[error("invalid configuration file `{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A value in the configuration is out of range or malformed.
    #[error("invalid configuration value `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// An environment override is malformed or cannot be applied.
    #[error("invalid environment variable `{variable}`: {message}")]
    Env { variable: String, message: String },
    /// A secret reference (`env:` / `file:`) could not be resolved.
    #[error("cannot resolve secret `{key}`: {message}")]
    Secret { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>, origin: Option<&Path>) -> ConfigError {
    let mut message = message.into();
    if let Some(origin) = origin {
        message.push_str(&format!(" (in `{}`)", origin.display()));
    }
    ConfigError::Invalid { key: key.into(), message }
}

fn env_error(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Env { variable: variable.to_owned(), message: message.into() }
}
