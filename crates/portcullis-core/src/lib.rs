//! The pure domain core of Portcullis: the firewall model, validation, durations, the evaluator with pfSense
//! first-match semantics, lint, and change plans. Nothing here does I/O: time comes in as an argument and
//! state comes in as values, so every rule of the domain is testable on its own.

pub mod address;
pub mod compare;
pub mod device;
pub mod domain;
pub mod duration;
pub mod effect;
pub mod egress;
pub mod error;
pub mod eval;
pub mod firewall;
pub mod freshness;
pub mod geo;
pub mod lint;
pub mod lockout;
pub mod mirror;
pub mod model;
pub mod plan;
pub mod protection;
pub mod text;
pub mod vpn;

pub use error::{FieldError, FieldResult};
