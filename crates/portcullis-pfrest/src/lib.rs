//! A client for pfRest v2 (pfSense-pkg-RESTAPI), the REST API package of pfSense.
//!
//! It knows the package's conventions (see `shared/pfrest/CONTRACT.md`) so that callers do not have to:
//!
//! - **Auth**: `X-API-Key`, HTTP Basic, or JWT (`POST /api/v2/auth/jwt` with Basic credentials, then `Bearer`,
//!   renewed before it expires and once more on a 401).
//! - **TLS**: verification on by default, an extra CA bundle (PEM) for self-signed web configurators, and an explicit
//!   `verify_ssl: false` escape hatch that logs a warning.
//! - **Retries**: bounded exponential backoff, only where a repeat cannot do harm: reads (GET, and the idempotent
//!   filter apply) on connection errors, timeouts and 5xx, and any method on 503 `MODEL_WRITE_CONFIG_LOCKED` (pfRest
//!   did not write). A write that timed out or lost its connection is never repeated: the error says the outcome is
//!   unknown ([`PfRestError::outcome_unknown`]) and the caller re-reads.
//! - **Paging** of every plural GET with `limit`/`offset`, **version discovery** (cached) with
//!   [`PfRestClient::supports_dry_run`], and the log endpoint's version-dependent `limit` semantics.
//! - **Errors** map to Portcullis' stable [`ErrorCode`]s; every message names the endpoint and never carries a
//!   secret: every answer (JSON strings and keys, header values, transport errors) passes the [`Scrubber`] of the
//!   configured secrets before any of it is used, and redirects are not followed (a redirect could carry the
//!   `X-API-Key` header to another host).
//! - **Requests** are typed structs carrying exactly the schema's field names; `None` fields are not sent.
//!
//! [`ErrorCode`]: portcullis_core::firewall::ErrorCode

mod client;
mod config;
mod error;
mod lenient;
pub mod scrub;
pub mod types;
mod version;
pub mod vpn;

pub use client::PfRestClient;
pub use config::{Auth, ClientConfig, RequestInfo, RequestObserver, RetryPolicy};
pub use error::PfRestError;
pub use scrub::Scrubber;
pub use version::PfRestVersion;
