//! A live topic: its partitions' open logs, the signal that wakes long-polling fetches, and the
//! choice of partition for records that did not name one.
//!
//! Invariants kept here:
//! - A [`Partition`]'s signal only ever moves forward: `log_end` is the largest log end offset
//!   any append has reported, and `closed` is set once (topic deleted or broker stopping).
//! - Keyed records go to `murmur2(key) % partitions`, exactly as Kafka's default partitioner,
//!   so the mapping survives restarts and matches Kafka clients. An empty key is a key.
//! - Records without a key go to the partition that has received the fewest keyless records so
//!   far (ties broken round-robin), one choice per request: evenly spread by record count
//!   whatever the mix of request sizes, and independent of how fast each partition is.
//!
//! This module never touches files itself; the logs do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rivulet_storage::PartitionLog;
use tokio::sync::watch;

use crate::config::TopicConfig;

/// What long-polling fetches watch on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionSignal {
    /// The largest log end offset reported by an append.
    pub(crate) log_end: u64,
    /// The partition is going away (topic deleted or broker stopping); waiters return now.
    pub(crate) closed: bool,
}

/// One open partition.
pub(crate) struct Partition {
    pub(crate) topic: Arc<str>,
    pub(crate) index: u32,
    pub(crate) log: Arc<PartitionLog>,
    signal: watch::Sender<PartitionSignal>,
    /// The durable offset last counted as an fsync in the broker's metrics.
    counted_durable: AtomicU64,
}

impl Partition {
    pub(crate) fn new(topic: Arc<str>, index: u32, log: PartitionLog) -> Self {
        let log_end = log.log_end_offset();
        let durable = log.durable_offset();
        let (signal, _) = watch::channel(PartitionSignal {
            log_end,
            closed: false,
        });
        Partition {
            topic,
            index,
            log: Arc::new(log),
            signal,
            counted_durable: AtomicU64::new(durable),
        }
    }

    /// Subscribes to appends; the current value counts as seen.
    pub(crate) fn subscribe(&self) -> watch::Receiver<PartitionSignal> {
        self.signal.subscribe()
    }

    /// Tells waiters the log now ends at `log_end`. Safe from any thread.
    pub(crate) fn note_appended(&self, log_end: u64) {
        self.signal.send_if_modified(|s| {
            let moved = log_end > s.log_end;
            s.log_end = s.log_end.max(log_end);
            moved
        });
    }

    /// Wakes every waiter for good.
    pub(crate) fn close_signal(&self) {
        self.signal.send_modify(|s| s.closed = true);
    }

    /// Records that the durable offset reached `durable`; returns whether that is an advance
    /// no one has counted yet (so one shared fsync is counted once).
    pub(crate) fn note_durable(&self, durable: u64) -> bool {
        self.counted_durable.fetch_max(durable, Ordering::AcqRel) < durable
    }
}

/// One open topic.
pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) created_at_ms: u64,
    pub(crate) partitions: Vec<Arc<Partition>>,
    keyless: Mutex<KeylessSpread>,
}

/// Keyless records sent to each partition so far, and where the next tie-break starts.
struct KeylessSpread {
    sent: Vec<u64>,
    cursor: usize,
}

impl Topic {
    pub(crate) fn new(
        name: Arc<str>,
        config: TopicConfig,
        created_at_ms: u64,
        partitions: Vec<Arc<Partition>>,
    ) -> Self {
        let count = partitions.len();
        Topic {
            name,
            config,
            created_at_ms,
            partitions,
            keyless: Mutex::new(KeylessSpread {
                sent: vec![0; count],
                cursor: 0,
            }),
        }
    }

    pub(crate) fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The partition for a record with `key` (Kafka's murmur2 partitioner).
    pub(crate) fn partition_for_key(&self, key: &[u8]) -> u32 {
        rivulet_format::partition_for_key(key, self.partition_count())
    }

    /// Picks the partition for the next `records` keyless records and counts them against it.
    pub(crate) fn pick_keyless(&self, records: u64) -> u32 {
        let mut spread = self.keyless.lock();
        let n = spread.sent.len();
        let start = spread.cursor;
        let mut best = start;
        for step in 0..n {
            let candidate = (start + step) % n;
            if spread.sent[candidate] < spread.sent[best] {
                best = candidate;
            }
        }
        spread.sent[best] += records;
        spread.cursor = (best + 1) % n;
        best as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(partitions: usize) -> Topic {
        Topic::new(Arc::from("t"), TopicConfig::default(), 0, Vec::new()).with_spread(partitions)
    }

    impl Topic {
        fn with_spread(self, partitions: usize) -> Self {
            *self.keyless.lock() = KeylessSpread {
                sent: vec![0; partitions],
                cursor: 0,
            };
            self
        }
    }

    #[test]
    fn keyless_choice_moves_on_every_request() {
        let t = topic(3);
        let picks: Vec<u32> = (0..6).map(|_| t.pick_keyless(1)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn keyless_choice_evens_out_mixed_request_sizes() {
        let t = topic(6);
        let mut counts = [0u64; 6];
        // Alternating sizes that would skew a plain round-robin.
        for i in 0..600 {
            let n = if i % 2 == 0 { 500 } else { 1 };
            counts[t.pick_keyless(n) as usize] += n;
        }
        let mean = counts.iter().sum::<u64>() as f64 / 6.0;
        for c in counts {
            assert!((c as f64 - mean).abs() <= mean * 0.1, "{counts:?}");
        }
    }
}
