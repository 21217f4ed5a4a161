//! Timing shared by the crate's benches.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Timings of `runs` runs: (best, median) and the last result. The best run is the figure (the machine is shared;
/// interference only ever slows a run down), the median shows the spread.
pub fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = black_box(f());
        times.push(t.elapsed());
        out = Some(r);
    }
    times.sort();
    (times[0], times[times.len() / 2], out.expect("at least one run"))
}
