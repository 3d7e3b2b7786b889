//! Exponential backoff with jitter for retried requests, and the small PRNG behind the jitter
//! and the keyless partition choice.
//!
//! Invariants: a delay never exceeds the configured maximum, never falls below half the
//! un-jittered step (so retries still back off), and honours a server's retry hint by never
//! being shorter than it. Randomness only spreads retries and keyless records; nothing depends
//! on its quality, so a splitmix64 generator seeded from the clock is enough.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A splitmix64 generator: tiny, fast, and statistically fine for jitter.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded from the clock and a per-call counter, so generators made in the
    /// same instant still differ.
    pub(crate) fn from_clock() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        Rng::seeded(nanos ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A generator with a fixed seed, for tests.
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` must be more than 0.
    pub(crate) fn below(&mut self, bound: u32) -> u32 {
        // The modulo bias is at most bound / 2^64: irrelevant here.
        (self.next_u64() % u64::from(bound.max(1))) as u32
    }
}

/// The delays between attempts of one request.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, rng: Rng) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt: `initial * 2^attempt` capped at the maximum, then
    /// jittered into its upper half, and at least `hint` when the server gave one.
    pub(crate) fn next_delay(&mut self, hint: Option<Duration>) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let step = self.initial.saturating_mul(factor).min(self.max);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(self.rng.next_u64() % jitter_nanos.saturating_add(1));
        let delay = half + jitter;
        match hint {
            Some(hint) => delay.max(hint),
            None => delay,
        }
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let mut backoff = Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
            Rng::seeded(7),
        );
        let delays: Vec<_> = (0..10).map(|_| backoff.next_delay(None)).collect();
        assert!(delays[0] >= Duration::from_millis(5) && delays[0] <= Duration::from_millis(10));
        assert!(delays[3] >= Duration::from_millis(40));
        for delay in &delays {
            assert!(*delay <= Duration::from_millis(100), "{delay:?}");
        }
        assert!(delays[9] >= Duration::from_millis(50));
        assert_eq!(backoff.attempts(), 10);
    }

    #[test]
    fn a_server_hint_is_never_undercut() {
        let mut backoff = Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(2),
            Rng::seeded(1),
        );
        let hint = Duration::from_millis(300);
        assert_eq!(backoff.next_delay(Some(hint)), hint);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::seeded(42);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let n = rng.below(5) as usize;
            seen[n] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
