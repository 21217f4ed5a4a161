//! Running the real binary the way a person does, shared by the end-to-end test binaries of this crate.

use std::path::Path;
use std::process::{Command, Output};

/// `portcullis --config DIR/config.yaml --data-dir DIR/data ARGS…`, waited for.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("portcullis runs")
}
