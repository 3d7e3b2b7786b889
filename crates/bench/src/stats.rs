//! Counters shared by the workers of a run, latency histograms, and the progress line.
//! Owns nothing but numbers: workers add to them, the report reads them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Highest latency a histogram holds, in microseconds (one hour); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds hdrhistogram accepts")
}

/// Records `elapsed` in `hist`, in microseconds.
pub fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    hist.saturating_record(us);
}

/// Counters every worker adds to while the run goes on.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records acknowledged by the server.
    pub produced: AtomicU64,
    /// Value bytes of those records.
    pub produced_bytes: AtomicU64,
    /// Records read by consumers.
    pub consumed: AtomicU64,
    /// Value bytes of those records.
    pub consumed_bytes: AtomicU64,
    /// Produce or fetch failures.
    pub errors: AtomicU64,
    /// Set when every worker should stop.
    pub stop: AtomicBool,
}

impl Counters {
    /// Adds acknowledged records.
    pub fn add_produced(&self, records: u64, bytes: u64) {
        self.produced.fetch_add(records, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds consumed records.
    pub fn add_consumed(&self, records: u64, bytes: u64) {
        self.consumed.fetch_add(records, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether workers should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Prints a progress line to standard error every `every` until `counters.stop` is set or
/// `limit` has passed.
pub async fn progress(
    counters: Arc<Counters>,
    phase: &'static str,
    every: Duration,
    limit: Duration,
) {
    let start = Instant::now();
    let (mut last_p, mut last_c, mut last_t) = (0, 0, start);
    while !counters.stopped() && start.elapsed() < limit {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let p = counters.produced.load(Ordering::Relaxed);
        let c = counters.consumed.load(Ordering::Relaxed);
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-9);
        eprintln!(
            "[{phase} {:>6.1}s] produced {p} ({:.0}/s)  consumed {c} ({:.0}/s)  errors {}",
            now.duration_since(start).as_secs_f64(),
            (p - last_p) as f64 / dt,
            (c - last_c) as f64 / dt,
            counters.errors.load(Ordering::Relaxed),
        );
        (last_p, last_c, last_t) = (p, c, now);
    }
}
