//! Scanning a segment's bytes: what recovery and index rebuilding both start from.
//!
//! A scan walks the batches of one segment in order and checks each one (length sanity, magic,
//! CRC32C, and that its base offset continues the previous batch). It tells three endings apart:
//!
//! - **clean**: the last batch ends exactly at the end of the bytes;
//! - **torn tail**: the bytes end in a partial or invalid batch after which nothing valid
//!   follows. A crash mid-write leaves exactly this, and it is safe to cut off;
//! - **corruption**: an invalid batch followed by a valid one. Bytes that were once whole have
//!   changed; the scan records the range and steps over it, and reads of that range fail with
//!   [`StorageError::CorruptBatch`](crate::StorageError::CorruptBatch). Nothing is dropped.
//!
//! The index entries a scan produces follow the same rule as appends ([`IndexCadence`]), so a
//! rebuilt index is identical to the one the writer would have kept.

use rivulet_format::{BatchHeader, BatchLimits, BatchScan, scan_batch};

use crate::index::{offset_entry, time_entry};

/// Decides when an append adds index entries. Shared by the writer and by index rebuilding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCadence {
    /// Bytes written since the last offset index entry.
    pub(crate) bytes_since_index: u64,
    /// Largest timestamp of the segment so far (`i64::MIN` while empty).
    pub(crate) max_timestamp: i64,
    /// Timestamp of the last time index entry, if any.
    pub(crate) last_time_entry: Option<i64>,
}

/// Index entries due before a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DueEntries {
    /// `(relative offset, position)` for the offset index.
    pub(crate) offset: Option<(u32, u32)>,
    /// `(max timestamp so far, relative offset)` for the time index.
    pub(crate) time: Option<(i64, u32)>,
}

impl IndexCadence {
    pub(crate) fn new() -> Self {
        IndexCadence {
            bytes_since_index: 0,
            max_timestamp: i64::MIN,
            last_time_entry: None,
        }
    }

    /// Accounts for a batch about to sit at `position` with base offset `base + relative`, and
    /// returns the index entries to add first.
    pub(crate) fn on_batch(
        &mut self,
        header: &BatchHeader,
        relative: u32,
        position: u64,
        interval: u64,
    ) -> DueEntries {
        let mut due = DueEntries::default();
        if position > 0 && self.bytes_since_index >= interval {
            due.offset = Some((relative, position as u32));
            if self.max_timestamp != i64::MIN
                && self
                    .last_time_entry
                    .is_none_or(|ts| self.max_timestamp > ts)
            {
                due.time = Some((self.max_timestamp, relative));
                self.last_time_entry = Some(self.max_timestamp);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_len() as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        due
    }
}

/// A torn tail found (and, by the caller, cut off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Base offset of the segment.
    pub segment_base: u64,
    /// Position where the valid bytes end.
    pub position: u64,
    /// Bytes after that position that were dropped.
    pub bytes_dropped: u64,
    /// What was wrong with the bytes there.
    pub reason: String,
}

/// A damaged range kept in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRange {
    /// Base offset of the segment.
    pub segment_base: u64,
    /// Position of the damaged bytes.
    pub position: u64,
    /// First offset that cannot be read.
    pub offset: u64,
    /// First offset readable again after the damage.
    pub end_offset: u64,
    /// What check failed.
    pub reason: String,
}

/// The result of scanning one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    /// Bytes up to the end of the last valid batch.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch.
    pub(crate) next_offset: u64,
    /// Index state after the last valid batch.
    pub(crate) cadence: IndexCadence,
    /// Encoded offset index entries.
    pub(crate) offset_entries: Vec<u8>,
    /// Encoded time index entries.
    pub(crate) time_entries: Vec<u8>,
    /// The torn tail after `valid_len`, if the bytes do not end cleanly.
    pub(crate) torn: Option<TornTail>,
    /// Damage stepped over.
    pub(crate) corrupt: Vec<CorruptRange>,
}

/// Scans `bytes`, the log file of the segment at `base_offset`.
pub(crate) fn scan_segment(
    bytes: &[u8],
    base_offset: u64,
    limits: &BatchLimits,
    interval: u64,
) -> SegmentScan {
    let mut scan = SegmentScan {
        valid_len: 0,
        next_offset: base_offset,
        cadence: IndexCadence::new(),
        offset_entries: Vec::new(),
        time_entries: Vec::new(),
        torn: None,
        corrupt: Vec::new(),
    };
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let outcome = match scan_batch(rest, limits) {
            BatchScan::Complete(header) if header.base_offset as u64 == scan.next_offset => {
                Ok(header)
            }
            BatchScan::Complete(header) => Err(format!(
                "batch claims base offset {} where {} was expected",
                header.base_offset, scan.next_offset
            )),
            BatchScan::Incomplete { needed, available } => Err(format!(
                "batch cut short: {available} of {needed} bytes present"
            )),
            BatchScan::Invalid(err) => Err(err.to_string()),
        };
        match outcome {
            Ok(header) => {
                scan.accept(&header, base_offset, position as u64, interval);
                position += header.total_len();
                scan.valid_len = position as u64;
            }
            Err(reason) => {
                // Damage followed by a valid batch is corruption: keep it and step over it.
                if let Some(next) = valid_batch_after(rest, limits, scan.next_offset) {
                    scan.corrupt.push(CorruptRange {
                        segment_base: base_offset,
                        position: position as u64,
                        offset: scan.next_offset,
                        end_offset: next.1.base_offset as u64,
                        reason,
                    });
                    position += next.0;
                    scan.next_offset = next.1.base_offset as u64;
                    scan.valid_len = position as u64;
                    continue;
                }
                scan.torn = Some(TornTail {
                    segment_base: base_offset,
                    position: position as u64,
                    bytes_dropped: (bytes.len() - position) as u64,
                    reason,
                });
                break;
            }
        }
    }
    scan
}

impl SegmentScan {
    fn accept(&mut self, header: &BatchHeader, base_offset: u64, position: u64, interval: u64) {
        let relative = (header.base_offset as u64 - base_offset) as u32;
        let due = self.cadence.on_batch(header, relative, position, interval);
        if let Some((relative, position)) = due.offset {
            self.offset_entries
                .extend_from_slice(&offset_entry(relative, position));
        }
        if let Some((ts, relative)) = due.time {
            self.time_entries
                .extend_from_slice(&time_entry(ts, relative));
        }
        self.next_offset = header.next_offset() as u64;
    }
}

/// If the damaged batch at the start of `rest` still has a plausible length, and a valid batch
/// with a later base offset starts right after it, returns that batch's position in `rest` and
/// its header.
fn valid_batch_after(
    rest: &[u8],
    limits: &BatchLimits,
    expected: u64,
) -> Option<(usize, BatchHeader)> {
    let damaged = BatchHeader::read(rest).ok()?;
    let skip = damaged.total_len();
    if damaged.batch_length <= 0 || skip > limits.max_batch_bytes || skip >= rest.len() {
        return None;
    }
    match scan_batch(&rest[skip..], limits) {
        BatchScan::Complete(next) if next.base_offset as u64 > expected => Some((skip, next)),
        _ => None,
    }
}
