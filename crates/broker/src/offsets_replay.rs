//! Rebuilding the committed offsets from the group offsets log at start, stepping over damage.
//!
//! The log is read from its start to its end and its records applied in order: the last record
//! per `(group, topic, partition)` wins, and a tombstone removes the key. Damage does not stop
//! the replay:
//!
//! - a batch the storage engine reports as corrupt, or one that passes its CRC but does not
//!   decode, is a *damaged range*: its records are lost, and so are their keys;
//! - a record whose key does not decode is a damaged range of one offset;
//! - a record whose key decodes but whose value does not puts that key alone in doubt.
//!
//! At the end, every key whose last readable record comes before a damaged range is in doubt:
//! the range may have held a newer commit for it. A key whose last readable record comes after
//! every damaged range is exact, because the last record wins. A key whose every record lies
//! inside a damaged range cannot be named at all; the error logged for the range says how many
//! records were lost and between which commit times, so an operator can look for the consumers
//! that committed then.
//!
//! This module reads the log and never writes it; the damaged bytes stay where they are.

use std::collections::BTreeMap;

use bytes::Bytes;
use rivulet_format::BatchHeader;
use rivulet_storage::{PartitionLog, StorageError};
use tracing::error;

use crate::error::{BrokerError, Result};
use crate::group_offsets::{
    Committed, CommittedValue, DamagedRange, OffsetKey, SCOPE, decode_key, decode_value,
};

/// Most bytes read from the log at a time.
const READ_BYTES: usize = 1 << 20;

/// A damaged range met during replay, with what surrounds it.
#[derive(Debug)]
struct Damage {
    range: DamagedRange,
    reason: String,
    /// Commit time of the last readable record before the range.
    after_ms: Option<i64>,
    /// Commit time of the first readable record after it.
    before_ms: Option<i64>,
}

/// Replay state.
#[derive(Default)]
struct Replay {
    values: BTreeMap<OffsetKey, CommittedValue>,
    /// Offset of each key's last record whose key could be read.
    last_seen: BTreeMap<OffsetKey, u64>,
    /// Keys whose last record has an unreadable value.
    unreadable_values: BTreeMap<OffsetKey, DamagedRange>,
    damage: Vec<Damage>,
    last_timestamp: Option<i64>,
}

/// Rebuilds the latest value per key from `log`, and the keys in doubt. Logs every damaged
/// range with `error!`.
///
/// # Errors
///
/// A storage error other than a corrupt batch (an I/O error reading the log).
pub(crate) fn replay(log: &PartitionLog) -> Result<Committed> {
    let mut replay = Replay::default();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = match log.read(offset, READ_BYTES) {
            Ok(read) => read,
            Err(StorageError::CorruptBatch {
                offset: first,
                end_offset,
                reason,
                ..
            }) => {
                // The next readable batch starts at `end_offset`; always move forward.
                let next = end_offset.max(first + 1).max(offset + 1);
                replay.damaged(first, next - 1, reason.to_string());
                offset = next;
                continue;
            }
            Err(err) => return Err(BrokerError::from_storage_in(SCOPE, err)),
        };
        if read.is_empty() {
            break;
        }
        for batch in read.batches() {
            replay.batch(&batch, offset);
        }
        offset = read.next_offset().max(offset + 1);
    }
    Ok(replay.finish())
}

impl Replay {
    /// Applies one stored batch, skipping its records below `from`.
    fn batch(&mut self, batch: &Bytes, from: u64) {
        match rivulet_format::decode_batch(batch) {
            Ok((_, records)) => {
                for record in records {
                    let offset = record.offset as u64;
                    if offset >= from {
                        self.record(offset, record.timestamp, record.key, record.value);
                    }
                }
            }
            Err(err) => {
                let (first, last) = BatchHeader::read(batch).map_or((from, from), |h| {
                    (h.base_offset as u64, h.last_offset() as u64)
                });
                self.damaged(first.max(from), last.max(from), err.to_string());
            }
        }
    }

    fn record(&mut self, offset: u64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) {
        let Some(key) = key.as_deref().and_then(decode_key) else {
            self.damaged(
                offset,
                offset,
                "the record's key does not decode".to_owned(),
            );
            return;
        };
        self.readable(timestamp);
        self.last_seen.insert(key.clone(), offset);
        let Some(value) = value else {
            self.values.remove(&key);
            self.unreadable_values.remove(&key);
            return;
        };
        match decode_value(&value) {
            Some(value) => {
                self.values.insert(key.clone(), value);
                self.unreadable_values.remove(&key);
            }
            None => {
                error!(
                    log_offset = offset,
                    group = %key.0,
                    topic = %key.1,
                    partition = key.2,
                    "group offsets log: a commit's value does not decode; the commit is lost \
                     and the partition's committed offset is in doubt"
                );
                let range = DamagedRange {
                    first: offset,
                    last: offset,
                };
                self.unreadable_values.insert(key, range);
            }
        }
    }

    /// Notes a readable record: it closes the time window of the damage before it.
    fn readable(&mut self, timestamp: i64) {
        self.last_timestamp = Some(timestamp);
        for damage in self.damage.iter_mut().rev() {
            if damage.before_ms.is_some() {
                break;
            }
            damage.before_ms = Some(timestamp);
        }
    }

    fn damaged(&mut self, first: u64, last: u64, reason: String) {
        self.damage.push(Damage {
            range: DamagedRange { first, last },
            reason,
            after_ms: self.last_timestamp,
            before_ms: None,
        });
    }

    fn finish(self) -> Committed {
        for damage in &self.damage {
            error!(
                first = damage.range.first,
                last = damage.range.last,
                lost_records = damage.range.last - damage.range.first + 1,
                reason = %damage.reason,
                after_commit_ms = damage.after_ms,
                before_commit_ms = damage.before_ms,
                "group offsets log damaged: the commits stored in this range are lost; every \
                 other commit is restored, and offsets last committed before the range are in \
                 doubt"
            );
        }
        let mut in_doubt = self.unreadable_values;
        for (key, seen) in self.last_seen {
            if in_doubt.contains_key(&key) {
                continue;
            }
            if let Some(damage) = self.damage.iter().find(|d| d.range.first > seen) {
                in_doubt.insert(key, damage.range);
            }
        }
        Committed {
            values: self.values,
            in_doubt,
        }
    }
}
