//! One segment: a log file of whole record batches plus its offset and time indexes.
//!
//! A partition log is a run of sealed segments followed by exactly one active segment. Files are
//! named by the segment's base offset, zero-padded to 20 digits, so a directory listing sorts by
//! offset: `00000000000000000042.log`, `.index`, `.timeindex`.
//!
//! Invariants:
//! - Offsets are dense: a segment holds offsets `base_offset..next_offset` with no gaps, and the
//!   next segment's base offset is this one's `next_offset`.
//! - A sealed segment's files never change while the process has them open (see `mmap`), and its
//!   data was fsynced before it was sealed.
//! - Only the log's single writer, holding the write lock, mutates the active segment.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use rivulet_format::header::{BATCH_HEADER_LEN, LOG_OVERHEAD};
use rivulet_format::{BatchHeader, BatchLimits, BatchScan, FormatError, scan_batch};

use crate::error::{Result, StorageError};
use crate::fsync;
use crate::index::{
    ActiveIndex, IndexHeader, IndexRead, OffsetKind, OffsetLookup, SealedIndex, TimeKind,
    TimeLookup,
};
use crate::mmap;
use crate::recovery::IndexCadence;
use tracing::warn;

/// Extension of a segment's log file.
pub(crate) const LOG_EXT: &str = "log";
/// Extension of a segment's offset index.
pub(crate) const OFFSET_INDEX_EXT: &str = "index";
/// Extension of a segment's time index.
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// `dir/<base, 20 digits>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base_offset: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// The base offset in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// A segment that takes no more appends, mapped read-only.
pub(crate) struct SealedSegment {
    pub(crate) base_offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) log: Bytes,
    pub(crate) offset_index: SealedIndex<OffsetKind>,
    pub(crate) time_index: SealedIndex<TimeKind>,
    /// Largest record timestamp in the segment (`i64::MIN` if unknown or empty).
    pub(crate) max_timestamp: i64,
    /// When the log file was last written; retention by age counts from here.
    pub(crate) last_modified: SystemTime,
}

impl SealedSegment {
    pub(crate) fn size(&self) -> u64 {
        self.log.len() as u64
    }
}

/// The segment appends go to.
pub(crate) struct ActiveSegment {
    pub(crate) dir: PathBuf,
    pub(crate) base_offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) file: Arc<File>,
    /// Bytes of whole batches in the file; everything readers may see.
    pub(crate) size: u64,
    pub(crate) offset_index: ActiveIndex<OffsetKind>,
    pub(crate) time_index: ActiveIndex<TimeKind>,
    pub(crate) created_at_ms: u64,
    /// When the next index entries are due, and the largest timestamp so far.
    pub(crate) cadence: IndexCadence,
    pub(crate) last_modified: SystemTime,
}

impl ActiveSegment {
    /// Creates a new, empty active segment at `base_offset`, replacing any files of that name.
    pub(crate) fn create(
        dir: &Path,
        base_offset: u64,
        index_bytes: (u64, u64),
        now: SystemTime,
    ) -> Result<Self> {
        let log_path = segment_path(dir, base_offset, LOG_EXT);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("create segment", &log_path, e))?;
        let header = IndexHeader {
            base_offset,
            created_at_ms: unix_millis(now),
        };
        let offset_index = ActiveIndex::create(
            &segment_path(dir, base_offset, OFFSET_INDEX_EXT),
            header,
            index_bytes.0,
        )?;
        let time_index = ActiveIndex::create(
            &segment_path(dir, base_offset, TIME_INDEX_EXT),
            header,
            index_bytes.1,
        )?;
        Ok(ActiveSegment {
            dir: dir.to_path_buf(),
            base_offset,
            next_offset: base_offset,
            file: Arc::new(file),
            size: 0,
            offset_index,
            time_index,
            created_at_ms: header.created_at_ms,
            cadence: IndexCadence::new(),
            last_modified: now,
        })
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, LOG_EXT)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Whether either index has no room for another entry.
    ///
    /// The time index keeps one slot back for the entry sealing writes (the segment's maximum
    /// timestamp), and an append may add one entry to each index, so the segment rolls while
    /// that still fits.
    pub(crate) fn index_full(&self) -> bool {
        self.offset_index.free_slots() < 1 || self.time_index.free_slots() < 2
    }

    /// Writes one validated batch (its base offset already set) at the end of the file and
    /// indexes it. On a write error the file is cut back to its previous length.
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        interval: u64,
    ) -> Result<()> {
        let position = self.size;
        if let Err(err) = self.file.write_all_at(batch, position) {
            let path = self.log_path();
            if let Err(undo) = self.file.set_len(position) {
                return Err(StorageError::Failed {
                    dir: self.dir.clone(),
                    reason: format!(
                        "write of {} bytes at {position} failed ({err}) and could not be undone \
                         ({undo})",
                        batch.len()
                    ),
                });
            }
            return Err(StorageError::io("write segment", path, err));
        }
        self.note_batch(header, position, interval);
        self.size = position + batch.len() as u64;
        self.last_modified = SystemTime::now();
        Ok(())
    }

    /// Updates the indexes and counters for a batch that now sits at `position`.
    pub(crate) fn note_batch(&mut self, header: &BatchHeader, position: u64, interval: u64) {
        let relative = (header.base_offset as u64 - self.base_offset) as u32;
        let due = self.cadence.on_batch(header, relative, position, interval);
        if let Some((relative, position)) = due.offset {
            self.offset_index.append(relative, position);
        }
        if let Some((ts, relative)) = due.time {
            self.time_index.append(ts, relative);
        }
        self.next_offset = header.next_offset() as u64;
    }

    /// Largest record timestamp appended (`i64::MIN` while empty).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.cadence.max_timestamp
    }

    /// Syncs the log file's data: every whole batch appended so far is durable on return.
    pub(crate) fn sync(&self) -> Result<()> {
        let path = self.log_path();
        fsync::sync_data(&self.file, &path, self.size)
            .map_err(|e| StorageError::io("fsync segment", path, e))
    }

    /// Seals the segment: syncs it, writes the final time index entry, trims and remaps the
    /// indexes read-only, and maps the log.
    pub(crate) fn seal(mut self) -> Result<SealedSegment> {
        self.sync()?;
        // The final time entry records the segment's maximum timestamp, so a sealed segment's
        // time index alone answers "is anything here at or after t?".
        let relative = (self.next_offset - self.base_offset) as u32;
        if !self.is_empty()
            && !self.time_index.is_full()
            && TimeLookup::last(&self.time_index).is_none_or(|(_, r)| r < relative)
        {
            self.time_index.append(self.cadence.max_timestamp, relative);
        }
        let log_path = self.log_path();
        let offset_index = self.offset_index.seal()?;
        let time_index = self.time_index.seal()?;
        let log =
            mmap::map_sealed(&self.file).map_err(|e| StorageError::io("map", &log_path, e))?;
        Ok(SealedSegment {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            log,
            offset_index,
            time_index,
            max_timestamp: self.cadence.max_timestamp,
            last_modified: self.last_modified,
        })
    }
}

/// Where a read finds a segment's bytes: a map for sealed segments, `pread` for the active one.
#[derive(Clone)]
pub(crate) enum SegmentBytes {
    Mapped(Bytes),
    File { file: Arc<File>, len: u64 },
}

impl SegmentBytes {
    pub(crate) fn len(&self) -> u64 {
        match self {
            SegmentBytes::Mapped(bytes) => bytes.len() as u64,
            SegmentBytes::File { len, .. } => *len,
        }
    }

    /// Up to `len` bytes from `position` (fewer at the end of the segment).
    pub(crate) fn read(&self, position: u64, len: usize) -> std::io::Result<Bytes> {
        let end = position.saturating_add(len as u64).min(self.len());
        if position >= end {
            return Ok(Bytes::new());
        }
        match self {
            SegmentBytes::Mapped(bytes) => Ok(bytes.slice(position as usize..end as usize)),
            SegmentBytes::File { file, .. } => {
                let mut buf = BytesMut::zeroed((end - position) as usize);
                let mut filled = 0;
                while filled < buf.len() {
                    match file.read_at(&mut buf[filled..], position + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                buf.truncate(filled);
                Ok(buf.freeze())
            }
        }
    }
}

/// A read's view of one segment, taken under the log's lock and used after releasing it.
#[derive(Clone)]
pub(crate) struct SegmentView {
    pub(crate) base_offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) bytes: SegmentBytes,
    /// Position of the last indexed batch start at or before the read's target offset.
    pub(crate) start_position: u64,
    /// Base offset the index says the batch at `start_position` has.
    pub(crate) start_offset: u64,
    /// Positions of indexed batch starts after `start_position`, used to step over damage.
    pub(crate) later_index_positions: Vec<(u64, u64)>,
}

/// What [`collect_batches`] found in one segment.
pub(crate) struct Collected {
    /// Whole batches, back to back, the first one holding `target` or later offsets.
    pub(crate) bytes: Bytes,
    /// Offset after the last batch collected.
    pub(crate) next_offset: u64,
}

/// Collects whole batches from `view`, starting with the batch that holds `target`, up to
/// `max_bytes` (but always the first batch whole). Batches collected are CRC-checked.
///
/// Returns `Ok(None)` if the segment holds nothing at or after `target`.
pub(crate) fn collect_batches(
    view: &SegmentView,
    target: u64,
    max_bytes: usize,
    limits: &BatchLimits,
) -> Result<Option<Collected>> {
    let io = |e| read_error(view, e);
    let corrupt = |position: u64, offset: u64, reason: FormatError| StorageError::CorruptBatch {
        segment_base: view.base_offset,
        position,
        offset,
        end_offset: next_readable_offset(view, position).unwrap_or(view.next_offset),
        reason,
    };

    let Some((position, first)) = find_batch(view, target)? else {
        return Ok(None);
    };

    // Take whole batches from here, checking each one's CRC.
    let want = max_bytes.max(BATCH_HEADER_LEN);
    let mut window = view.bytes.read(position, want).map_err(io)?;
    let mut taken = 0usize;
    let mut next_offset = first.base_offset as u64;
    loop {
        let rest = &window[taken..];
        if rest.is_empty() {
            break;
        }
        match scan_batch(rest, limits) {
            BatchScan::Complete(header) => {
                if header.base_offset as u64 != next_offset && taken > 0 {
                    let err = FormatError::BadRecordCount {
                        record_count: header.record_count,
                    };
                    return partial_or(
                        window,
                        taken,
                        next_offset,
                        corrupt(position, next_offset, err),
                    );
                }
                taken += header.total_len();
                next_offset = header.next_offset() as u64;
            }
            BatchScan::Incomplete { needed, .. } if taken == 0 => {
                // The first batch is larger than the window: read it whole.
                if position + needed as u64 > view.bytes.len() {
                    let available = (view.bytes.len() - position) as usize;
                    let err = FormatError::Truncated { needed, available };
                    return Err(corrupt(position, next_offset, err));
                }
                window = view.bytes.read(position, needed).map_err(io)?;
            }
            BatchScan::Incomplete { .. } => break,
            BatchScan::Invalid(reason) => {
                let at = position + taken as u64;
                return partial_or(window, taken, next_offset, corrupt(at, next_offset, reason));
            }
        }
    }
    if taken == 0 {
        return Ok(None);
    }
    Ok(Some(Collected {
        bytes: window.slice(..taken),
        next_offset,
    }))
}

/// Finds the batch holding `target` by following batch headers (lengths only, no CRC) from the
/// indexed position: returns its position and header, or `None` if the segment ends first.
///
/// If the index entry does not point at a batch with the offset it names, the index is not
/// trusted and the walk starts over from the segment's first byte.
pub(crate) fn find_batch(view: &SegmentView, target: u64) -> Result<Option<(u64, BatchHeader)>> {
    let mut position = view.start_position;
    let mut trust_index = position > 0;
    loop {
        match step(view, position, target)? {
            Step::Found(header)
                if trust_index && header.base_offset as u64 != view.start_offset => {}
            Step::Found(header) => return Ok(Some((position, header))),
            Step::Skip(header) if trust_index && header.base_offset as u64 != view.start_offset => {
            }
            Step::Skip(header) => {
                position += header.total_len() as u64;
                trust_index = false;
                continue;
            }
            Step::End => return Ok(None),
            Step::Damaged(_) if trust_index => {}
            Step::Damaged(err) => return Err(err),
        }
        warn!(
            segment = view.base_offset,
            position,
            expected_offset = view.start_offset,
            "offset index entry does not match the log; reading from the segment start"
        );
        position = 0;
        trust_index = false;
    }
}

enum Step {
    /// The batch here holds the target.
    Found(BatchHeader),
    /// The batch here ends before the target.
    Skip(BatchHeader),
    /// The segment holds nothing at or after the target.
    End,
    /// The bytes here are not a batch.
    Damaged(StorageError),
}

fn step(view: &SegmentView, position: u64, target: u64) -> Result<Step> {
    let corrupt = |reason: FormatError| StorageError::CorruptBatch {
        segment_base: view.base_offset,
        position,
        offset: target,
        end_offset: next_readable_offset(view, position).unwrap_or(view.next_offset),
        reason,
    };
    if position >= view.bytes.len() {
        // A view covers whole batches only (the active segment's visible size, or a sealed
        // file), so running out of bytes before `target` means bytes are missing: damage.
        if target < view.next_offset {
            let needed = BATCH_HEADER_LEN;
            return Ok(Step::Damaged(corrupt(FormatError::Truncated {
                needed,
                available: 0,
            })));
        }
        return Ok(Step::End);
    }
    let head = view
        .bytes
        .read(position, BATCH_HEADER_LEN)
        .map_err(|e| read_error(view, e))?;
    let header = match BatchHeader::read(&head) {
        Ok(header) if header.batch_length as usize >= BATCH_HEADER_LEN - LOG_OVERHEAD => header,
        Ok(header) => {
            return Ok(Step::Damaged(corrupt(FormatError::BatchLengthTooSmall {
                length: header.batch_length,
                min: (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32,
            })));
        }
        Err(err) => return Ok(Step::Damaged(corrupt(err))),
    };
    if header.next_offset() as u64 > target {
        Ok(Step::Found(header))
    } else {
        Ok(Step::Skip(header))
    }
}

fn read_error(view: &SegmentView, source: std::io::Error) -> StorageError {
    StorageError::Io {
        operation: "read segment",
        path: PathBuf::from(format!("segment {}", view.base_offset)),
        source,
    }
}

/// Returns the batches before a damaged one, or the damage itself if nothing precedes it.
fn partial_or(
    window: Bytes,
    taken: usize,
    next_offset: u64,
    err: StorageError,
) -> Result<Option<Collected>> {
    if taken == 0 {
        Err(err)
    } else {
        Ok(Some(Collected {
            bytes: window.slice(..taken),
            next_offset,
        }))
    }
}

/// The first offset after damage at `position` that can be read: the next batch, if the damaged
/// batch's length field still leads to a valid header, else the next index entry.
fn next_readable_offset(view: &SegmentView, position: u64) -> Option<u64> {
    let head = view.bytes.read(position, BATCH_HEADER_LEN).ok()?;
    if let Ok(header) = BatchHeader::read(&head) {
        let after = position.checked_add(header.total_len() as u64)?;
        if after == view.bytes.len() {
            return Some(view.next_offset);
        }
        if let Ok(next) = view.bytes.read(after, BATCH_HEADER_LEN)
            && let Ok(next_header) = BatchHeader::read(&next)
            && next_header.magic == rivulet_format::header::MAGIC_V2
            && (next_header.base_offset as u64) > view.base_offset
            && (next_header.base_offset as u64) < view.next_offset
        {
            return Some(next_header.base_offset as u64);
        }
    }
    view.later_index_positions
        .iter()
        .find(|(_, pos)| *pos > position)
        .map(|(offset, _)| *offset)
}

/// Builds a read view of a sealed segment for `target`.
pub(crate) fn sealed_view(segment: &SealedSegment, target: u64) -> SegmentView {
    let relative = target
        .saturating_sub(segment.base_offset)
        .min(u64::from(u32::MAX)) as u32;
    let (start_offset, start_position) = segment
        .offset_index
        .floor(relative)
        .map_or((segment.base_offset, 0), |(r, p)| {
            (segment.base_offset + u64::from(r), u64::from(p))
        });
    SegmentView {
        base_offset: segment.base_offset,
        next_offset: segment.next_offset,
        bytes: SegmentBytes::Mapped(segment.log.clone()),
        start_position,
        start_offset,
        later_index_positions: later_positions(
            segment.offset_index.entries(),
            segment.base_offset,
            start_position,
        ),
    }
}

/// Builds a read view of the active segment for `target`.
pub(crate) fn active_view(segment: &ActiveSegment, target: u64) -> SegmentView {
    let relative = target
        .saturating_sub(segment.base_offset)
        .min(u64::from(u32::MAX)) as u32;
    let (start_offset, start_position) = segment
        .offset_index
        .floor(relative)
        .map_or((segment.base_offset, 0), |(r, p)| {
            (segment.base_offset + u64::from(r), u64::from(p))
        });
    SegmentView {
        base_offset: segment.base_offset,
        next_offset: segment.next_offset,
        bytes: SegmentBytes::File {
            file: Arc::clone(&segment.file),
            len: segment.size,
        },
        start_position,
        start_offset,
        later_index_positions: later_positions(
            segment.offset_index.entries(),
            segment.base_offset,
            start_position,
        ),
    }
}

/// Up to four index entries after position `start`, as `(offset, position)`.
fn later_positions(entries: &[u8], base: u64, start: u64) -> Vec<(u64, u64)> {
    let decode = |e: &[u8]| {
        let relative = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let position = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        (base + u64::from(relative), u64::from(position))
    };
    // Positions increase with offsets, so a binary search finds the first entry past `start`.
    let count = entries.len() / 8;
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if decode(&entries[mid * 8..mid * 8 + 8]).1 <= start {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    entries[lo * 8..]
        .chunks_exact(8)
        .take(4)
        .map(decode)
        .collect()
}
