//! Byte-level mutations of sample lines, shared by the fuzz tests of both parsers (`fuzz.rs` for filterlog,
//! `eve_fuzz.rs` for eve.json); each brings its own tokens to insert.

use proptest::prelude::*;

/// One edit of a line.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Keep the first `n` bytes (modulo the length).
    Truncate(usize),
    /// Replace the byte at `at` with `byte` (the result is decoded lossily, as a collector would).
    Replace { at: usize, byte: u8 },
    /// Insert `text` at `at`.
    Insert { at: usize, text: &'static str },
    /// Remove `len` bytes at `at`.
    Remove { at: usize, len: usize },
    /// Append the tail of another sample from byte `from`.
    Splice { other: usize, from: usize },
}

/// Any one mutation, inserting one of `tokens`.
pub fn mutation(tokens: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace { at, byte }),
        (any::<usize>(), prop::sample::select(tokens)).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 0usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(other, from)| Mutation::Splice { other, from }),
    ]
}

/// `line` with `mutations` applied in order (`samples` are what splices take tails from).
pub fn apply(line: &str, mutations: &[Mutation], samples: &[&str]) -> String {
    let mut bytes = line.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Truncate(n) => bytes.truncate(n % (len + 1)),
            Mutation::Replace { at, byte } => {
                if len > 0 {
                    bytes[at % len] = *byte;
                }
            }
            Mutation::Insert { at, text } => {
                let at = at % (len + 1);
                bytes.splice(at..at, text.bytes());
            }
            Mutation::Remove { at, len: n } => {
                let at = at % (len + 1);
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            Mutation::Splice { other, from } => {
                let other = samples[other % samples.len()].as_bytes();
                bytes.extend_from_slice(&other[from % (other.len() + 1)..]);
            }
        }
    }
    // A collector decodes what it reads lossily; the parsers only ever see `&str`.
    String::from_utf8_lossy(&bytes).into_owned()
}
