//! Any bytes: the eve.json parser never panics, and what it parses serialises. Run:
//! `cd crates/portcullis-logs/fuzz && cargo +nightly fuzz run eve -- -max_total_time=300`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = portcullis_logs::eve::parse_timestamp(text);
    let stats = portcullis_logs::eve::EveStats::of_text(text);
    assert_eq!(stats.total() as usize, portcullis_logs::eve::parse_lines(text).count());
    for line in text.split('\n') {
        if let Ok(event) = portcullis_logs::eve::parse_line(line) {
            let _ = event.kind.as_str();
            let _ = event.proto.map(|p| p.to_string());
        }
    }
});
