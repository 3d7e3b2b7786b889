//! Damages the offset and time indexes of a real partition log and reopens it: whatever the
//! index files hold, opening must not panic, and every answer the log gives must be the one the
//! log file itself supports.
//!
//! Each input describes a log (batches of a few records with chosen timestamps, including
//! timestamps that go backwards, and where to roll to a new segment), whether it is closed
//! cleanly, and a list of damage to its index files: bytes overwritten, entries rewritten or
//! nudged by a few units, files cut short, extended, replaced by arbitrary bytes (an index "alone",
//! with nothing of the real one left) or removed, the base offset in the header changed, and the
//! header CRC recomputed so that damage gets past it. A clean close matters: the active segment's
//! indexes are then reopened without a scan, while a sealed segment's are checked cheaply
//! against the log's tail; everything else is rebuilt.
//!
//! After reopening, what must hold:
//!
//! - the log has the same start and end offsets;
//! - a read at every offset returns exactly the stored batch holding it, and a large read from a
//!   batch start returns exactly the stored batches from there to the end: the offset index
//!   may be wrong, but a read never starts anywhere but at a real batch boundary;
//! - a timestamp lookup gives the first offset whose record is at least that old, as computed
//!   from the records themselves. An accepted time index is a cache the log cannot check without
//!   a scan, so while a damaged time index is still in use the answer only has to be a real
//!   offset whose record is at least that old (or none);
//! - new batches append at the log end and read back, before and after a roll that seals the
//!   reopened segment, and after a clean close and another reopen all of the above holds again.

#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog, RecoveryReport};

/// Most batches an input writes, to keep one run in the millisecond range.
const MAX_BATCHES: usize = 24;
/// Most damage operations an input applies.
const MAX_DAMAGE: usize = 12;

/// Index header layout, from `docs/format/segment.md`: the CRC32 at 8..12 covers bytes 12..32,
/// and the base offset sits at 16..24.
const HEADER_LEN: usize = 32;
const HEADER_CRC: usize = 8;
const HEADER_BASE: usize = 16;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Bytes between index entries, in units of 16.
    interval: u8,
    batches: Vec<Shape>,
    /// Bit `i` rolls to a new segment after batch `i`.
    rolls: u32,
    /// Close the log (clean-shutdown marker written) rather than drop it.
    clean: bool,
    damage: Vec<Damage>,
    /// Recompute the header CRC of every damaged file afterwards.
    reseal: bool,
}

#[derive(Debug, Arbitrary)]
struct Shape {
    /// One to eight records.
    records: u8,
    /// First record's timestamp.
    timestamp: i16,
    /// Added to the timestamp for each further record; negative goes backwards.
    step: i8,
    /// Bytes of each record's value, up to 63.
    value_len: u8,
}

/// One index file: of segment `segment` (modulo the segment count), offset or time index.
#[derive(Debug, Arbitrary, Clone, Copy)]
struct FileRef {
    segment: u8,
    time: bool,
}

#[derive(Debug, Arbitrary)]
enum Damage {
    /// Overwrite bytes at `at`.
    Write {
        file: FileRef,
        at: u16,
        bytes: Vec<u8>,
    },
    /// Rewrite entry `slot` with `(relative, position)` or `(timestamp, relative)`.
    Entry {
        file: FileRef,
        slot: u8,
        relative: u32,
        other: i64,
    },
    /// Add `delta` to one field of entry `slot`.
    Nudge {
        file: FileRef,
        slot: u8,
        second: bool,
        delta: i8,
    },
    /// Swap two entries.
    Swap { file: FileRef, a: u8, b: u8 },
    /// Cut the file to `len` bytes.
    Truncate { file: FileRef, len: u16 },
    /// Append bytes.
    Extend { file: FileRef, bytes: Vec<u8> },
    /// Replace the whole file.
    Replace { file: FileRef, bytes: Vec<u8> },
    /// Delete the file.
    Remove { file: FileRef },
    /// Write another base offset into the header.
    SetBase { file: FileRef, base: u64 },
}

impl Damage {
    fn file(&self) -> FileRef {
        match self {
            Damage::Write { file, .. }
            | Damage::Entry { file, .. }
            | Damage::Nudge { file, .. }
            | Damage::Swap { file, .. }
            | Damage::Truncate { file, .. }
            | Damage::Extend { file, .. }
            | Damage::Replace { file, .. }
            | Damage::Remove { file }
            | Damage::SetBase { file, .. } => *file,
        }
    }
}

/// What was written, as the harness knows it independently of the log.
#[derive(Default)]
struct Truth {
    /// Every batch as stored: `(base offset, next offset, bytes)`.
    batches: Vec<(u64, u64, Vec<u8>)>,
    /// Every record's timestamp, indexed by offset.
    timestamps: Vec<i64>,
}

impl Truth {
    fn end(&self) -> u64 {
        self.timestamps.len() as u64
    }

    fn batch_holding(&self, offset: u64) -> Option<usize> {
        self.batches
            .iter()
            .position(|(base, next, _)| (*base..*next).contains(&offset))
    }

    /// First offset whose record timestamp is at least `timestamp`.
    fn offset_for_timestamp(&self, timestamp: i64) -> Option<u64> {
        self.timestamps
            .iter()
            .position(|&ts| ts >= timestamp)
            .map(|i| i as u64)
    }
}

fuzz_target!(|input: Input| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let config = LogConfig::default()
        .with_segment_bytes(1 << 20)
        .with_index_max_bytes(4096)
        .with_index_interval_bytes(u32::from(input.interval) * 16 + 1)
        .with_flush(FlushPolicy::Os);

    let (truth, bases) = write_log(dir.path(), &config, &input);

    let mut damaged = BTreeSet::new();
    for damage in input.damage.iter().take(MAX_DAMAGE) {
        let file = damage.file();
        let base = bases[usize::from(file.segment) % bases.len()];
        let path = index_path(dir.path(), base, file.time);
        apply(&path, damage);
        damaged.insert((base, file.time));
    }
    if input.reseal {
        for &(base, time) in &damaged {
            reseal(&index_path(dir.path(), base, time));
        }
    }
    // Segments whose time index may now be a well-formed lie the log has no cheap way to spot.
    let mut suspect_time: BTreeSet<u64> = damaged
        .iter()
        .filter(|(_, time)| *time)
        .map(|(base, _)| *base)
        .collect();

    let (log, report) = PartitionLog::open(dir.path(), config.clone())
        .expect("damaged indexes must not stop a log from opening");
    forget_rebuilt(&mut suspect_time, &report);
    check(&log, &truth, suspect_time.is_empty());

    // Appends extend the reopened indexes, and the roll seals them: a damaged index that was
    // trusted must not make either fail.
    let mut truth = truth;
    append_one(&log, &mut truth, 7, 1_000);
    log.roll().expect("rolling a reopened log");
    append_one(&log, &mut truth, 0, -1);
    check(&log, &truth, suspect_time.is_empty());
    log.close().expect("closing a reopened log");

    let (log, report) =
        PartitionLog::open(dir.path(), config).expect("reopening after a clean close");
    forget_rebuilt(&mut suspect_time, &report);
    check(&log, &truth, suspect_time.is_empty());
});

/// Writes the input's log and returns what was written and the base offset of every segment.
fn write_log(dir: &Path, config: &LogConfig, input: &Input) -> (Truth, Vec<u64>) {
    let (log, _) = PartitionLog::open(dir, config.clone()).expect("opening an empty log");
    let mut truth = Truth::default();
    let mut bases = vec![0];
    for (i, shape) in input.batches.iter().take(MAX_BATCHES).enumerate() {
        let records = usize::from(shape.records % 8) + 1;
        let timestamp = i64::from(shape.timestamp);
        append_shaped(
            &log,
            &mut truth,
            records,
            timestamp,
            shape.step,
            shape.value_len % 64,
        );
        if input.rolls & (1 << i) != 0 && log.log_end_offset() != *bases.last().unwrap_or(&0) {
            log.roll().expect("rolling a healthy log");
            bases.push(log.log_end_offset());
        }
    }
    if input.clean {
        log.close().expect("closing a healthy log");
    }
    (truth, bases)
}

fn append_one(log: &PartitionLog, truth: &mut Truth, value_len: u8, timestamp: i64) {
    append_shaped(log, truth, 2, timestamp, 1, value_len);
}

fn append_shaped(
    log: &PartitionLog,
    truth: &mut Truth,
    records: usize,
    timestamp: i64,
    step: i8,
    value_len: u8,
) {
    let mut builder = BatchBuilder::new(Compression::None);
    let value = vec![b'v'; usize::from(value_len)];
    let mut timestamps = Vec::with_capacity(records);
    for i in 0..records {
        // Backwards steps go down to -1, the lowest timestamp a batch may carry.
        let ts = (timestamp + i as i64 * i64::from(step)).max(-1);
        timestamps.push(ts);
        builder.push(ts, Some(b"k"), Some(&value), &[]);
    }
    let mut batch = builder.build().expect("building a small batch");
    let appended = log.append(&mut batch).expect("appending to a healthy log");
    assert_eq!(
        appended.base_offset,
        truth.end(),
        "append did not land at the log end"
    );
    truth.batches.push((
        appended.base_offset,
        appended.last_offset + 1,
        batch.to_vec(),
    ));
    truth.timestamps.extend(timestamps);
}

fn index_path(dir: &Path, base: u64, time: bool) -> PathBuf {
    let ext = if time { "timeindex" } else { "index" };
    dir.join(format!("{base:020}.{ext}"))
}

fn apply(path: &Path, damage: &Damage) {
    if let Damage::Remove { .. } = damage {
        let _ = std::fs::remove_file(path);
        return;
    }
    let mut bytes = std::fs::read(path).unwrap_or_default();
    let entry_len = |file: &FileRef| if file.time { 12 } else { 8 };
    match damage {
        Damage::Write { at, bytes: new, .. } => {
            let at = usize::from(*at).min(bytes.len());
            let end = (at + new.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&new[..end - at]);
        }
        Damage::Entry {
            file,
            slot,
            relative,
            other,
        } => {
            let at = HEADER_LEN + usize::from(*slot) * entry_len(file);
            let mut entry = Vec::with_capacity(12);
            if file.time {
                entry.extend_from_slice(&other.to_le_bytes());
                entry.extend_from_slice(&relative.to_le_bytes());
            } else {
                entry.extend_from_slice(&relative.to_le_bytes());
                entry.extend_from_slice(&(*other as u32).to_le_bytes());
            }
            if bytes.len() < at + entry.len() {
                bytes.resize(at + entry.len(), 0);
            }
            bytes[at..at + entry.len()].copy_from_slice(&entry);
        }
        Damage::Nudge {
            file,
            slot,
            second,
            delta,
        } => {
            let at = HEADER_LEN + usize::from(*slot) * entry_len(file);
            // The field nudged: offset index (relative u32, position u32), time index
            // (timestamp i64, relative u32).
            let (field, width) = match (file.time, second) {
                (false, false) => (at, 4),
                (false, true) => (at + 4, 4),
                (true, false) => (at, 8),
                (true, true) => (at + 8, 4),
            };
            if let Some(slice) = bytes.get_mut(field..field + width) {
                nudge(slice, i64::from(*delta));
            }
        }
        Damage::Swap { file, a, b } => {
            let len = entry_len(file);
            let (a, b) = (usize::from(*a), usize::from(*b));
            let (a, b) = (a.min(b), a.max(b));
            let (at_a, at_b) = (HEADER_LEN + a * len, HEADER_LEN + b * len);
            if a != b && bytes.len() >= at_b + len {
                let (head, tail) = bytes.split_at_mut(at_b);
                head[at_a..at_a + len].swap_with_slice(&mut tail[..len]);
            }
        }
        Damage::Truncate { len, .. } => bytes.truncate(usize::from(*len)),
        Damage::Extend { bytes: more, .. } => bytes.extend_from_slice(more),
        Damage::Replace { bytes: new, .. } => bytes.clone_from(new),
        Damage::SetBase { base, .. } => {
            if let Some(field) = bytes.get_mut(HEADER_BASE..HEADER_BASE + 8) {
                field.copy_from_slice(&base.to_le_bytes());
            }
        }
        Damage::Remove { .. } => {}
    }
    let _ = std::fs::write(path, &bytes);
}

/// Adds `delta` to the little-endian integer in `field` (4 or 8 bytes), wrapping.
fn nudge(field: &mut [u8], delta: i64) {
    let mut wide = [0u8; 8];
    wide[..field.len()].copy_from_slice(field);
    let value = u64::from_le_bytes(wide).wrapping_add(delta as u64);
    field.copy_from_slice(&value.to_le_bytes()[..field.len()]);
}

fn reseal(path: &Path) {
    let Ok(mut bytes) = std::fs::read(path) else {
        return;
    };
    if bytes.len() < HEADER_LEN {
        return;
    }
    let crc = crc32fast::hash(&bytes[HEADER_CRC + 4..HEADER_LEN]);
    bytes[HEADER_CRC..HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    let _ = std::fs::write(path, &bytes);
}

fn forget_rebuilt(suspect: &mut BTreeSet<u64>, report: &RecoveryReport) {
    for base in &report.rebuilt_indexes {
        suspect.remove(base);
    }
}

/// Checks every answer of `log` against `truth`; timestamp answers exactly only when
/// `exact_time` (no damaged time index still in use), else only for plausibility.
fn check(log: &PartitionLog, truth: &Truth, exact_time: bool) {
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), truth.end());

    for offset in 0..truth.end() {
        let read = log
            .read(offset, 1)
            .unwrap_or_else(|err| panic!("read at offset {offset} failed: {err}"));
        let batches: Vec<_> = read.batches().collect();
        let expected = truth.batch_holding(offset).map(|i| &truth.batches[i].2);
        assert_eq!(
            batches.len(),
            1,
            "read at {offset} gave {} batches",
            batches.len()
        );
        assert_eq!(Some(&batches[0].to_vec()), expected, "read at {offset}");
    }
    for (i, (base, _, _)) in truth.batches.iter().enumerate() {
        let read = log
            .read(*base, 1 << 30)
            .unwrap_or_else(|err| panic!("read from offset {base} failed: {err}"));
        let got: Vec<u8> = read
            .chunks()
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        let want: Vec<u8> = truth.batches[i..]
            .iter()
            .flat_map(|b| b.2.iter().copied())
            .collect();
        assert!(
            got == want,
            "read from offset {base} is not the stored batches from there"
        );
    }
    assert!(log.read(truth.end(), 1 << 20).is_ok_and(|r| r.is_empty()));

    let mut probes: BTreeSet<i64> = [i64::MIN, i64::MAX].into();
    for &ts in truth.timestamps.iter().take(64) {
        probes.extend([ts, ts.saturating_add(1)]);
    }
    for timestamp in probes {
        let found = log
            .offset_for_timestamp(timestamp)
            .unwrap_or_else(|err| panic!("timestamp lookup {timestamp} failed: {err}"));
        let expected = truth.offset_for_timestamp(timestamp);
        if exact_time {
            assert_eq!(found, expected, "timestamp lookup {timestamp}");
        } else if let Some(offset) = found {
            let ts = truth.timestamps.get(offset as usize).copied();
            assert!(
                ts.is_some_and(|ts| ts >= timestamp),
                "timestamp lookup {timestamp} gave offset {offset} holding {ts:?}"
            );
        }
    }
}
