//! What the geo benchmarks share.

use std::path::{Path, PathBuf};

/// xorshift64*: reproducible draws without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A file of the real DB-IP data `scripts/fetch-geoip` puts in `.ci/geoip`.
pub fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/geoip").join(name)
}
