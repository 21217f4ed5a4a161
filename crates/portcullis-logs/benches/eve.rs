//! eve.json ingest throughput on one core: `eve::parse_line` over every line of a generated buffer, against the
//! baseline of merely counting its lines with `memchr` (as `benches/parse.rs` does for filterlog), and, for scale,
//! serde_json's own cheapest pass over each line (skipping it as `IgnoredAny`, which checks the syntax and decodes
//! nothing).
//!
//! The buffer: 300,000 lines generated deterministically (a fixed xorshift seed) in Suricata 7's layout and field
//! order, mixed like a sensor's day: 45% flow, 25% dns, 10% alert, 8% tls, 6% http, 3% anomaly, 2% fileinfo, 1%
//! drop, and a full `stats` event every 1,000 lines; 10% of the flows are IPv6, offsets `+0100`.
//!
//! Run with `cargo bench -p portcullis-logs --bench eve` (`PORTCULLIS_BENCH_LINES=20000` for a quick run).

use std::hint::black_box;
use std::time::Duration;

use portcullis_logs::eve::{EveStats, EventKind, parse_line};

mod common;
#[path = "common/eve_gen.rs"]
mod eve_gen;

use common::timed;
use eve_gen::{Gen, Rng};

const TARGET_LINES: usize = 300_000;
const RUNS: usize = 7;
/// Issue 17's target for eve.json ingest on one core.
const TARGET_RATE: f64 = 200_000.0;

fn count_lines(buf: &str) -> u64 {
    memchr::memchr_iter(b'\n', buf.as_bytes()).count() as u64
}

/// Each line of `buf`, found with memchr.
fn each_line(buf: &str, mut f: impl FnMut(&str)) {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', buf.as_bytes()) {
        f(buf.get(start..end).unwrap_or(""));
        start = end + 1;
    }
}

/// serde_json's cheapest full pass: every line checked as JSON and skipped, nothing decoded.
fn skip_json(buf: &str) -> u64 {
    let mut ok = 0;
    each_line(buf, |line| ok += u64::from(serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok()));
    ok
}

/// The figure: every line parsed into an owned `EveEvent`, alerts and flows summed so nothing is optimised out.
fn parse_all(buf: &str) -> (u64, u64, u64) {
    let (mut ok, mut alerts, mut bytes) = (0, 0, 0u64);
    each_line(buf, |line| {
        if let Ok(e) = parse_line(line) {
            ok += 1;
            alerts += u64::from(e.kind == EventKind::Alert);
            if let Some(f) = e.flow {
                bytes = bytes.wrapping_add(f.bytes_toserver + f.bytes_toclient);
            }
        }
    });
    (ok, alerts, bytes)
}

/// As an ingest would: parse and count by event type and error (`EveStats`).
fn parse_counted(buf: &str) -> EveStats {
    let mut stats = EveStats::default();
    each_line(buf, |line| stats.record(&parse_line(line)));
    stats
}

fn main() {
    let target_lines =
        std::env::var("PORTCULLIS_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(TARGET_LINES);
    let runs = if target_lines < TARGET_LINES { 1 } else { RUNS };
    let mut generator = Gen { rng: Rng(0x9e37_79b9_7f4a_7c15), clock: 0 };
    let mut buf = String::new();
    for n in 0..target_lines {
        buf.push_str(&generator.line(n));
        buf.push('\n');
    }
    let buf = buf.as_str();
    let lines = target_lines;
    let mib = buf.len() as f64 / (1024.0 * 1024.0);
    println!(
        "buffer: {lines} generated eve.json lines, {mib:.1} MiB (mean {} bytes/line); best of {runs} runs, one core",
        buf.len() / lines
    );

    let (t_count, t_count_med, counted) = timed(runs, || count_lines(black_box(buf)));
    assert_eq!(counted as usize, lines);
    let (t_skip, t_skip_med, skipped) = timed(runs, || skip_json(black_box(buf)));
    assert_eq!(skipped as usize, lines);
    let (t_parse, t_parse_med, (parsed, alerts, bytes)) = timed(runs, || parse_all(black_box(buf)));
    assert_eq!(parsed as usize, lines, "every generated line parses");
    let (t_stats, t_stats_med, stats) = timed(runs, || parse_counted(black_box(buf)));
    assert_eq!(stats.parsed as usize, lines);

    let rate = |t: Duration| lines as f64 / t.as_secs_f64();
    let ns = |t: Duration| t.as_secs_f64() * 1e9 / lines as f64;
    println!("eve/baseline line counting (memchr)  {:.0} lines/s ({:.0} median)", rate(t_count), rate(t_count_med));
    println!(
        "eve/serde_json skip (IgnoredAny)     {:.0} lines/s ({:.0} median), {:.0} ns/line",
        rate(t_skip),
        rate(t_skip_med),
        ns(t_skip)
    );
    println!(
        "eve/parse_line                       {:.0} lines/s ({:.0} median), {:.0} ns/line, {:.0} MiB/s; {:.1}x slower than counting, {:.2}x the serde_json skip",
        rate(t_parse),
        rate(t_parse_med),
        ns(t_parse),
        mib / t_parse.as_secs_f64(),
        rate(t_count) / rate(t_parse),
        t_parse.as_secs_f64() / t_skip.as_secs_f64()
    );
    println!(
        "eve/parse_line + EveStats            {:.0} lines/s ({:.0} median), {:.0} ns/line",
        rate(t_stats),
        rate(t_stats_med),
        ns(t_stats)
    );
    println!("  {alerts} alerts, {bytes} flow bytes; by event: {:?}", stats.by_event);
    println!(
        "  target > {TARGET_RATE:.0} lines/s for parse_line: {}",
        if rate(t_parse) > TARGET_RATE { "met" } else { "NOT met" }
    );
}
