//! Any bytes: the filterlog parser (and everything derived from a parsed entry) and the stored-record decoder
//! never panic. Run: `cd crates/portcullis-logs/fuzz && cargo +nightly fuzz run parse_line -- -max_total_time=300`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = portcullis_logs::compact::Record::decode(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    for line in text.split('\n') {
        if let Ok(entry) = portcullis_logs::parse_line(line) {
            let now = chrono::Utc::now();
            let _ = entry.to_record();
            let _ = entry.to_record_at(2026, now);
            let _ = entry.timestamp(i32::MAX, now);
            let _ = portcullis_logs::compact::Record::from_entry(&entry, now, 0).encode();
        }
    }
});
