//! [`PartitionLog`]: one partition's append-only log, the storage crate's entry point.
//!
//! Concurrency: one `RwLock` guards the segment list and the active segment. Appends take the
//! write lock for the `write(2)` into the page cache and the index update, nothing longer.
//! Reads take the read lock only to pick segments and positions, then read without it. fsync
//! never runs under the lock: [`PartitionLog::flush_to`] syncs a clone of the active file's
//! handle, and concurrent callers queue on a separate mutex so that one sync covers everyone who
//! arrived while the previous one ran (group commit).
//!
//! Invariants kept here:
//! - `log_start_offset <= durable_offset <= log_end_offset`, and offsets are dense and never
//!   reused: the only way back is an explicit [`PartitionLog::truncate_to`].
//! - Exactly one active segment exists at any time, and its base offset is in its file name, so
//!   an empty log remembers where it ends across restarts.
//! - Every byte readers can see is a whole batch.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rivulet_format::header::set_base_offset;
use rivulet_format::{BatchHeader, BatchLimits, validate_batch};
use tracing::{debug, error, info, warn};

use crate::checkpoint::{
    self, CLEAN_SHUTDOWN_FILE, CLEAN_SHUTDOWN_MAGIC, LOG_START_FILE, LOG_START_MAGIC,
};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Result, StorageError};
use crate::fsync::{self, WRITEBACK_CHUNK, WRITEBACK_PAGE};
use crate::index::{
    ActiveIndex, IndexHeader, IndexKind, OffsetKind, OffsetLookup, SealedIndex, TimeKind,
    TimeLookup, read_header,
};
use crate::mmap;
use crate::read::LogRead;
use crate::recovery::{CorruptRange, IndexCadence, TornTail, scan_segment};
use crate::segment::{
    self, ActiveSegment, LOG_EXT, OFFSET_INDEX_EXT, SealedSegment, SegmentView, TIME_INDEX_EXT,
    active_view, collect_batches, parse_segment_name, sealed_view, segment_path, unix_millis,
};

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
}

/// What opening a log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Whether the log was closed cleanly, so no scan was needed.
    pub clean_shutdown: bool,
    /// Segments found.
    pub segments: usize,
    /// The torn tail cut off the active segment, if any.
    pub torn_tail: Option<TornTail>,
    /// Damaged ranges found (kept in place; reads of them fail with a corruption error).
    pub corrupt_ranges: Vec<CorruptRange>,
    /// Base offsets of segments whose indexes were rebuilt from the log.
    pub rebuilt_indexes: Vec<u64>,
    /// Log start offset after opening.
    pub log_start_offset: u64,
    /// Log end offset after opening.
    pub log_end_offset: u64,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionOutcome {
    /// Sealed segments deleted.
    pub segments_deleted: usize,
    /// Bytes of log deleted.
    pub bytes_deleted: u64,
    /// Whether the active segment was rolled first.
    pub rolled: bool,
    /// Log start offset afterwards.
    pub log_start_offset: u64,
}

struct LogState {
    sealed: Vec<Arc<SealedSegment>>,
    active: ActiveSegment,
    log_start: u64,
}

impl LogState {
    fn log_end(&self) -> u64 {
        self.active.next_offset
    }

    fn size(&self) -> u64 {
        self.sealed.iter().map(|s| s.size()).sum::<u64>() + self.active.size
    }
}

/// One partition's log: an ordered run of segments, appended to by one writer at a time and read
/// by any number of readers.
///
/// ```
/// use rivulet_format::{BatchBuilder, Compression};
/// use rivulet_storage::{LogConfig, PartitionLog};
///
/// let dir = tempfile::tempdir()?;
/// let (log, _report) = PartitionLog::open(dir.path(), LogConfig::default())?;
///
/// let mut batch = BatchBuilder::new(Compression::None);
/// batch.push(1_700_000_000_000, Some(b"key"), Some(b"hello"), &[]);
/// let mut bytes = batch.build()?;
/// let appended = log.append(&mut bytes)?;
/// assert_eq!(appended.base_offset, 0);
///
/// let read = log.read(0, 1 << 20)?;
/// assert_eq!(read.batches().count(), 1);
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    limits: BatchLimits,
    state: RwLock<LogState>,
    /// Every offset below this is on disk.
    durable: AtomicU64,
    /// Serialises syncs; holds the time of the last one.
    sync_lock: Mutex<Instant>,
    /// Where [`PartitionLog::start_writeback`] last stopped: the active segment's base offset
    /// and the file position write-back was started up to.
    writeback: Mutex<(u64, u64)>,
    /// Set after a failure that may have lost unsynced data; appends are refused from then on.
    failure: Mutex<Option<String>>,
    /// Held by every operation that creates, renames or removes files by path; `true` once the
    /// log is retired, after which no such operation runs (the directory may then belong to
    /// someone else).
    paths: Mutex<bool>,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating the directory and an empty log if needed, and recovers
    /// from an unclean shutdown: a torn tail is cut off the active segment, missing or damaged
    /// indexes are rebuilt, and damage elsewhere is reported and kept.
    ///
    /// # Errors
    ///
    /// An invalid `config`, or an I/O error on the directory or its files.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<(Self, RecoveryReport)> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("create directory", &dir, e))?;
        let limits = BatchLimits {
            max_batch_bytes: config.max_batch_bytes as usize,
        };

        let bases = list_segments(&dir)?;
        let clean = read_clean_marker(&dir);
        let checkpoint_start = checkpoint::read(&dir, LOG_START_FILE, LOG_START_MAGIC, 1)
            .unwrap_or_else(|err| {
                warn!(dir = %dir.display(), error = %err, "ignoring damaged log-start checkpoint");
                None
            })
            .and_then(|v| v.first().copied());

        let mut report = RecoveryReport {
            clean_shutdown: clean.is_some(),
            segments: bases.len().max(1),
            ..RecoveryReport::default()
        };
        let now = SystemTime::now();
        let (sealed, active) = match bases.split_last() {
            None => {
                let base = checkpoint_start.unwrap_or(0);
                let active = ActiveSegment::create(&dir, base, index_sizes(&config), now)?;
                checkpoint::sync_dir(&dir)?;
                (Vec::new(), active)
            }
            Some((&last, earlier)) => {
                let mut sealed = Vec::with_capacity(earlier.len());
                for (i, &base) in earlier.iter().enumerate() {
                    let next = bases[i + 1];
                    sealed.push(Arc::new(open_sealed(
                        &dir,
                        base,
                        next,
                        &config,
                        &limits,
                        &mut report,
                    )?));
                }
                let active = open_active(&dir, last, &config, &limits, clean, &mut report)?;
                (sealed, active)
            }
        };

        let first_base = sealed.first().map_or(active.base_offset, |s| s.base_offset);
        let log_start = checkpoint_start
            .unwrap_or(first_base)
            .clamp(first_base, active.next_offset);
        report.log_start_offset = log_start;
        report.log_end_offset = active.next_offset;

        // Whatever survived recovery is on disk once this sync returns.
        active.sync()?;
        let durable = active.next_offset;
        checkpoint::remove(&dir, CLEAN_SHUTDOWN_FILE)?;

        let log = PartitionLog {
            dir,
            config,
            limits,
            state: RwLock::new(LogState {
                sealed,
                active,
                log_start,
            }),
            durable: AtomicU64::new(durable),
            sync_lock: Mutex::new(Instant::now()),
            writeback: Mutex::new((0, 0)),
            failure: Mutex::new(None),
            paths: Mutex::new(false),
        };
        // Segments wholly below a checkpointed log start were meant to be deleted already.
        log.delete_segments_below(log_start)?;
        if let Some(torn) = &report.torn_tail {
            warn!(
                dir = %log.dir.display(),
                segment = torn.segment_base,
                position = torn.position,
                bytes_dropped = torn.bytes_dropped,
                reason = %torn.reason,
                "truncated torn tail"
            );
        }
        for range in &report.corrupt_ranges {
            error!(
                dir = %log.dir.display(),
                segment = range.segment_base,
                position = range.position,
                offset = range.offset,
                end_offset = range.end_offset,
                reason = %range.reason,
                "corrupt record batch kept in place; its offsets cannot be read"
            );
        }
        Ok((log, report))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The first offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.state.read().log_start
    }

    /// The offset the next record will get: one past the last stored record.
    pub fn log_end_offset(&self) -> u64 {
        self.state.read().log_end()
    }

    /// Every offset below this is on disk (fsynced).
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Bytes of log on disk (indexes not counted).
    pub fn size_bytes(&self) -> u64 {
        self.state.read().size()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.read().sealed.len() + 1
    }

    /// Appends one record batch, assigning it the next offsets by patching its base offset in
    /// place (the CRC does not cover it). Under [`FlushPolicy::EveryBatch`] the batch is on disk
    /// when this returns.
    ///
    /// # Errors
    ///
    /// - [`StorageError::InvalidBatch`] or [`StorageError::EmptyBatch`] if `batch` is not exactly
    ///   one valid v2 batch with at least one record and `lastOffsetDelta = recordCount - 1`;
    ///   nothing is written.
    /// - [`StorageError::DiskFull`] (retryable) or another I/O error; nothing is left half
    ///   written.
    /// - [`StorageError::Failed`] after an earlier failure that may have lost data.
    pub fn append(&self, batch: &mut [u8]) -> Result<AppendInfo> {
        let header = validate_batch(batch, &self.limits).map_err(StorageError::InvalidBatch)?;
        // The header's counts decide which offsets the batch takes, and the CRC only proves the
        // sender computed it; walk the records so no offset is ever assigned without a record.
        rivulet_format::check_records(batch, &header).map_err(StorageError::InvalidBatch)?;
        let len = batch.len();
        self.append_valid(header, len, |base_offset| {
            set_base_offset(batch, base_offset);
            batch
        })
    }

    /// As [`PartitionLog::append`], for a batch the caller already checked with
    /// [`rivulet_format::check_produced_batch`]: its CRC and records are not checked again.
    /// A batch over this log's `max_batch_bytes` is refused as `append` refuses it.
    ///
    /// # Errors
    ///
    /// As for [`PartitionLog::append`].
    pub fn append_checked(&self, batch: &mut rivulet_format::CheckedBatch) -> Result<AppendInfo> {
        let len = batch.as_bytes().len();
        if len > self.limits.max_batch_bytes {
            return Err(StorageError::InvalidBatch(
                rivulet_format::FormatError::BatchTooLarge {
                    size: len,
                    max: self.limits.max_batch_bytes,
                },
            ));
        }
        let header = *batch.header();
        self.append_valid(header, len, |base_offset| {
            batch.set_base_offset(base_offset);
            batch.as_bytes()
        })
    }

    /// The header rules of an append, then the append, for a batch of `len` bytes whose bytes
    /// were validated; `place` assigns the batch its base offset and returns its bytes.
    fn append_valid<'b>(
        &self,
        header: BatchHeader,
        len: usize,
        place: impl FnOnce(i64) -> &'b [u8],
    ) -> Result<AppendInfo> {
        if header.record_count == 0 {
            return Err(StorageError::EmptyBatch);
        }
        if header.last_offset_delta != header.record_count - 1 {
            return Err(StorageError::InvalidBatch(
                rivulet_format::FormatError::BadLastOffsetDelta {
                    last_offset_delta: header.last_offset_delta,
                    record_count: header.record_count,
                },
            ));
        }
        self.check_failure()?;

        let info = {
            let mut state = self.state.write();
            self.maybe_roll(&mut state, len as u64, header.last_offset_delta)?;
            let base_offset = state.active.next_offset;
            let batch = place(base_offset as i64);
            let header = BatchHeader {
                base_offset: base_offset as i64,
                ..header
            };
            let interval = u64::from(self.config.index_interval_bytes);
            state
                .active
                .append(batch, &header, interval)
                .map_err(|err| self.note_failure(err))?;
            AppendInfo {
                base_offset,
                last_offset: header.last_offset() as u64,
                max_timestamp: header.max_timestamp,
            }
        };

        match self.config.flush {
            FlushPolicy::EveryBatch => {
                self.flush_to(info.last_offset + 1)?;
            }
            // Interval syncs are the owner's timer's job (`flush_if_due`): an append that ran
            // one itself would keep its caller waiting for every byte written since the last.
            FlushPolicy::Interval(_) | FlushPolicy::Os => {}
        }
        Ok(info)
    }

    /// Rolls to a new segment before an append of `incoming` bytes if the active one is full,
    /// too old, or out of index room.
    fn maybe_roll(
        &self,
        state: &mut LogState,
        incoming: u64,
        last_offset_delta: i32,
    ) -> Result<()> {
        let active = &state.active;
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size + incoming > self.config.segment_bytes;
        let relative_end = active.next_offset - active.base_offset + last_offset_delta as u64 + 1;
        let offsets_exhausted = relative_end > u64::from(u32::MAX);
        let too_old = self.config.segment_age.is_some_and(|age| {
            unix_millis(SystemTime::now()).saturating_sub(active.created_at_ms)
                >= age.as_millis() as u64
        });
        if too_big || offsets_exhausted || too_old || active.index_full() {
            self.roll_locked(state)?;
        }
        Ok(())
    }

    /// Seals the active segment (syncing it) and starts a new one at the log end.
    fn roll_locked(&self, state: &mut LogState) -> Result<()> {
        let _paths = self.paths()?;
        let base = state.active.next_offset;
        // Sync the old segment before the new one exists: once a later segment is on disk, this
        // one is sealed, and recovery never cuts a sealed segment, so its bytes must be whole.
        state.active.sync().map_err(|err| self.note_failure(err))?;
        // Then create the new segment: if the disk is full, the old one stays active, intact.
        let next = ActiveSegment::create(
            &self.dir,
            base,
            index_sizes(&self.config),
            SystemTime::now(),
        )
        .inspect_err(|_| {
            let _ = self.unlink_segment_files(base);
        })?;
        checkpoint::sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut state.active, next);
        let old_base = old.base_offset;
        let sealed = match old.seal() {
            Ok(sealed) => sealed,
            // The old segment's log is whole and synced, and the new segment already exists, so
            // the old one must stay readable: open it the way a restart would, rebuilding its
            // indexes from the log if they do not check out.
            Err(err) => {
                warn!(dir = %self.dir.display(), segment = old_base, error = %err,
                    "sealing failed; reopening the segment from its log");
                let mut report = RecoveryReport::default();
                open_sealed(
                    &self.dir,
                    old_base,
                    base,
                    &self.config,
                    &self.limits,
                    &mut report,
                )
                .map_err(|reopen| {
                    self.note_failure(StorageError::Failed {
                        dir: self.dir.clone(),
                        reason: format!(
                            "segment {old_base} could not be sealed ({err}) or reopened \
                                 ({reopen})"
                        ),
                    })
                })?
            }
        };
        state.sealed.push(Arc::new(sealed));
        self.durable.fetch_max(base, Ordering::AcqRel);
        info!(dir = %self.dir.display(), sealed = old_base, new_segment = base, "segment rolled");
        Ok(())
    }

    /// Seals the active segment and starts a new one, if the active one holds anything.
    ///
    /// # Errors
    ///
    /// I/O errors creating the new segment (the old one then stays active) or sealing the old.
    pub fn roll(&self) -> Result<()> {
        self.check_failure()?;
        let mut state = self.state.write();
        if state.active.is_empty() {
            return Ok(());
        }
        self.roll_locked(&mut state)
    }

    /// Reads whole batches starting with the one that holds `offset`, up to `max_bytes` in
    /// total, but always at least one whole batch (even if larger), so a reader can never stall.
    ///
    /// **The first batch may start before `offset`**: batches are served as stored, never
    /// split. [`LogRead::batches`] yields them whole; [`LogRead::records`] decodes and skips
    /// records before the requested offset. Reading at the log end returns an empty result.
    ///
    /// # Errors
    ///
    /// - [`StorageError::OffsetOutOfRange`] below the log start or beyond the log end, with the
    ///   valid range.
    /// - [`StorageError::CorruptBatch`] if the first batch to return is damaged (later damaged
    ///   batches end the read early instead, and the next read reports them).
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<LogRead> {
        let (views, log_start, log_end) = {
            let state = self.state.read();
            let (log_start, log_end) = (state.log_start, state.log_end());
            if offset < log_start || offset > log_end {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start,
                    log_end,
                });
            }
            (
                self.plan_read(&state, offset, max_bytes),
                log_start,
                log_end,
            )
        };

        let mut chunks = Vec::new();
        let mut taken = 0usize;
        let mut target = offset;
        for view in &views {
            let budget = if chunks.is_empty() {
                max_bytes
            } else {
                max_bytes.saturating_sub(taken)
            };
            if budget == 0 && !chunks.is_empty() {
                break;
            }
            let target_here = target.max(view.base_offset);
            let collected = match collect_batches(view, target_here, budget, &self.limits) {
                Ok(collected) => collected,
                Err(err) if chunks.is_empty() => return Err(err),
                Err(_) => break,
            };
            let Some(collected) = collected else {
                continue;
            };
            if !chunks.is_empty() && collected.bytes.len() > budget {
                break;
            }
            taken += collected.bytes.len();
            target = collected.next_offset;
            chunks.push(collected.bytes);
            // Stopping short of the segment's end means the budget ran out or damage follows;
            // either way the next segment's batches must not be served after a gap.
            if taken >= max_bytes || target < view.next_offset {
                break;
            }
        }
        Ok(LogRead::new(offset, chunks, log_start, log_end))
    }

    /// Picks the segments a read from `offset` may need: the one holding it and those after,
    /// until their sizes cover `max_bytes`.
    fn plan_read(&self, state: &LogState, offset: u64, max_bytes: usize) -> Vec<SegmentView> {
        let mut views = Vec::new();
        let first = state.sealed.partition_point(|s| s.next_offset <= offset);
        let mut covered = 0u64;
        for segment in &state.sealed[first..] {
            let view = sealed_view(segment, offset);
            covered += view.bytes.len() - view.start_position;
            views.push(view);
            if covered >= max_bytes as u64 {
                return views;
            }
        }
        views.push(active_view(&state.active, offset));
        views
    }

    /// The first offset at or after the log start whose record timestamp is at least
    /// `timestamp`, or `None` if every record is older. Correct when producer timestamps go
    /// backwards: the answer is found record by record, not from batch bounds.
    ///
    /// # Errors
    ///
    /// A damaged batch on the search path, or a batch whose records cannot be decoded.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        let (views, log_start) = {
            let state = self.state.read();
            let mut views = Vec::new();
            for segment in &state.sealed {
                if segment.max_timestamp >= timestamp && segment.next_offset > state.log_start {
                    let start = search_start(
                        segment.base_offset,
                        segment.time_index.last_below(timestamp).map(|(_, r)| r),
                        state.log_start,
                    );
                    views.push(sealed_view(segment, start));
                }
            }
            if state.active.max_timestamp() >= timestamp {
                let start = search_start(
                    state.active.base_offset,
                    state
                        .active
                        .time_index
                        .last_below(timestamp)
                        .map(|(_, r)| r),
                    state.log_start,
                );
                views.push(active_view(&state.active, start));
            }
            (views, state.log_start)
        };

        for view in views {
            let mut position_offset = view.base_offset.max(log_start);
            // The view's start position comes from the offset index at the search start.
            if let Some(found) =
                self.search_segment(&view, &mut position_offset, timestamp, log_start)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn search_segment(
        &self,
        view: &SegmentView,
        from: &mut u64,
        timestamp: i64,
        log_start: u64,
    ) -> Result<Option<u64>> {
        let mut target = (*from).max(view.base_offset);
        loop {
            let Some(collected) = collect_batches(view, target, 1 << 20, &self.limits)? else {
                return Ok(None);
            };
            let mut rest = collected.bytes.clone();
            while rest.len() >= rivulet_format::header::BATCH_HEADER_LEN {
                let header = BatchHeader::read(&rest).map_err(StorageError::InvalidBatch)?;
                let batch = rest.split_to(header.total_len());
                if header.max_timestamp < timestamp || (header.next_offset() as u64) <= log_start {
                    continue;
                }
                let records =
                    rivulet_format::record_offsets_and_timestamps(&batch).map_err(|reason| {
                        StorageError::CorruptBatch {
                            segment_base: view.base_offset,
                            position: 0,
                            offset: header.base_offset as u64,
                            end_offset: header.next_offset() as u64,
                            reason,
                        }
                    })?;
                if let Some((offset, _)) = records
                    .iter()
                    .find(|(offset, ts)| *ts >= timestamp && *offset as u64 >= log_start.max(*from))
                {
                    return Ok(Some(*offset as u64));
                }
            }
            if collected.next_offset >= view.next_offset {
                return Ok(None);
            }
            target = collected.next_offset;
            *from = target;
        }
    }

    /// Makes everything appended so far durable. Returns the durable offset.
    ///
    /// # Errors
    ///
    /// An fsync failure; the log then refuses appends until reopened, because the kernel may
    /// have dropped the unsynced pages.
    pub fn flush(&self) -> Result<u64> {
        let end = self.log_end_offset();
        self.flush_to(end)
    }

    /// Waits until every offset below `offset` is durable, syncing if nobody else is. Many
    /// concurrent callers share one fsync.
    ///
    /// # Errors
    ///
    /// As for [`PartitionLog::flush`].
    pub fn flush_to(&self, offset: u64) -> Result<u64> {
        if self.durable_offset() >= offset {
            return Ok(self.durable_offset());
        }
        let mut last_sync = self.sync_lock.lock();
        // Whoever held the lock before us may have synced past our offset already.
        let durable = self.durable_offset();
        if durable >= offset {
            return Ok(durable);
        }
        self.check_failure()?;
        // Offsets below `end` sit in the first `size` bytes, wholly written before the sync.
        let (file, end, size, path) = {
            let state = self.state.read();
            (
                Arc::clone(&state.active.file),
                state.active.next_offset,
                state.active.size,
                state.active.log_path(),
            )
        };
        if let Err(err) = fsync::sync_data(&file, &path, size) {
            let err = StorageError::io("fsync segment", path, err);
            return Err(self.note_failure(err));
        }
        *last_sync = Instant::now();
        let durable = self.durable.fetch_max(end, Ordering::AcqRel).max(end);
        debug!(dir = %self.dir.display(), durable, "log synced");
        Ok(durable)
    }

    /// Starts the write-back of what appends added to the active segment since the last call,
    /// once that is at least [`WRITEBACK_CHUNK`] bytes, and returns without waiting for it.
    /// Nothing becomes durable and the durable offset does not move.
    ///
    /// Call it on a timer, off the append path, for logs not synced on every append: without
    /// it the page cache holds everything appended since the last sync, and that sync, or the
    /// kernel's own write-back when it finally starts, writes it all at once and stalls appends
    /// and reads on the same disk for tens of milliseconds. The call does the kernel's work of
    /// submitting the pages, so it belongs on a thread no producer waits for.
    pub fn start_writeback(&self) {
        let (file, base, size) = {
            let state = self.state.read();
            let active = &state.active;
            (Arc::clone(&active.file), active.base_offset, active.size)
        };
        let mut mark = self.writeback.lock();
        // A roll starts a new file (the old one was synced when sealed).
        let from = if mark.0 == base { mark.1 } else { 0 };
        if size < from.saturating_add(WRITEBACK_CHUNK) {
            return;
        }
        // Whole pages only: the last, partial one is still being appended to.
        let to = size / WRITEBACK_PAGE * WRITEBACK_PAGE;
        fsync::start_writeback(&file, from, to - from);
        *mark = (base, to);
    }

    /// Under [`FlushPolicy::Interval`], syncs if the interval has passed since the last sync and
    /// something is unsynced. Call it on a timer.
    ///
    /// # Errors
    ///
    /// As for [`PartitionLog::flush`].
    pub fn flush_if_due(&self) -> Result<()> {
        let FlushPolicy::Interval(every) = self.config.flush else {
            return Ok(());
        };
        if self.durable_offset() < self.log_end_offset() && self.sync_lock.lock().elapsed() >= every
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Advances the log start to `offset`, hiding everything before it, and deletes segments
    /// wholly before it. The new start is checkpointed durably.
    ///
    /// # Errors
    ///
    /// [`StorageError::OffsetOutOfRange`] beyond the log end; I/O errors.
    pub fn delete_before(&self, offset: u64) -> Result<()> {
        {
            let mut state = self.state.write();
            if offset > state.log_end() {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start: state.log_start,
                    log_end: state.log_end(),
                });
            }
            if offset <= state.log_start {
                return Ok(());
            }
            self.write_log_start(offset)?;
            state.log_start = offset;
        }
        self.delete_segments_below(offset)
    }

    fn write_log_start(&self, offset: u64) -> Result<()> {
        let _paths = self.paths()?;
        let bytes = checkpoint::encode(LOG_START_MAGIC, &[offset]);
        checkpoint::write_atomically(&self.dir, LOG_START_FILE, &bytes)
    }

    /// Drops sealed segments whose offsets all lie below `offset`.
    fn delete_segments_below(&self, offset: u64) -> Result<()> {
        let victims: Vec<_> = {
            let mut state = self.state.write();
            let keep_from = state.sealed.partition_point(|s| s.next_offset <= offset);
            state.sealed.drain(..keep_from).collect()
        };
        for segment in victims {
            self.remove_segment_files(segment.base_offset);
        }
        Ok(())
    }

    /// Deletes sealed segments past the retention limits, after rolling the active segment if
    /// it is old enough to be rolled or expired. Never deletes the active segment.
    ///
    /// # Errors
    ///
    /// I/O errors rolling or writing the log-start checkpoint.
    pub fn enforce_retention(&self, now: SystemTime) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        let victims: Vec<Arc<SealedSegment>> = {
            let mut state = self.state.write();
            let expired = |modified: SystemTime| {
                self.config
                    .retention_age
                    .is_some_and(|age| now.duration_since(modified).is_ok_and(|d| d >= age))
            };
            let active_too_old = self.config.segment_age.is_some_and(|age| {
                unix_millis(now).saturating_sub(state.active.created_at_ms)
                    >= age.as_millis() as u64
            });
            if !state.active.is_empty()
                && (active_too_old || expired(state.active.last_modified))
                && self.check_failure().is_ok()
            {
                self.roll_locked(&mut state)?;
                outcome.rolled = true;
            }

            let mut total = state.size();
            let mut count = 0;
            for segment in &state.sealed {
                let over_size = self
                    .config
                    .retention_bytes
                    .is_some_and(|limit| total - segment.size() >= limit);
                if !(expired(segment.last_modified) || over_size) {
                    break;
                }
                total -= segment.size();
                count += 1;
            }
            let victims: Vec<_> = state.sealed.drain(..count).collect();
            let first_left = state
                .sealed
                .first()
                .map_or(state.active.base_offset, |s| s.base_offset);
            if first_left > state.log_start {
                if let Err(err) = self.write_log_start(first_left) {
                    // Put the segments back: nothing may be deleted that the start does not skip.
                    let mut restored = victims;
                    restored.append(&mut state.sealed);
                    state.sealed = restored;
                    return Err(err);
                }
                state.log_start = first_left;
            }
            outcome.log_start_offset = state.log_start;
            victims
        };
        for segment in victims {
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += segment.size();
            self.remove_segment_files(segment.base_offset);
        }
        if outcome.segments_deleted > 0 {
            info!(
                dir = %self.dir.display(),
                segments = outcome.segments_deleted,
                bytes = outcome.bytes_deleted,
                log_start = outcome.log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(outcome)
    }

    /// Removes every record at `offset` and after, so the next append gets `offset`. `offset`
    /// must be a batch boundary between the log start and the log end.
    ///
    /// Readers that are mid-read of the removed range may see their read fail; no reader sees
    /// bytes of a batch that is not whole.
    ///
    /// # Errors
    ///
    /// [`StorageError::OffsetOutOfRange`], [`StorageError::NotBatchBoundary`], or I/O errors.
    pub fn truncate_to(&self, offset: u64) -> Result<()> {
        self.check_failure()?;
        let mut state = self.state.write();
        let (log_start, log_end) = (state.log_start, state.log_end());
        if offset == log_end {
            return Ok(());
        }
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }

        // The segment holding `offset` becomes the active one, cut at `offset`.
        let holder = state.sealed.partition_point(|s| s.next_offset <= offset);
        let (holder_base, cut) = if holder < state.sealed.len() {
            let segment = &state.sealed[holder];
            let view = sealed_view(segment, offset);
            (segment.base_offset, boundary_position(&view, offset)?)
        } else {
            let view = active_view(&state.active, offset);
            (state.active.base_offset, boundary_position(&view, offset)?)
        };

        let doomed: Vec<u64> = state.sealed[holder..]
            .iter()
            .map(|s| s.base_offset)
            .chain(std::iter::once(state.active.base_offset))
            .filter(|&base| base != holder_base)
            .collect();

        let _paths = self.paths()?;
        // Write the kept prefix to a fresh file first; it replaces the holder by rename, so any
        // map of the old file stays valid for readers still holding it.
        let log_path = segment_path(&self.dir, holder_base, LOG_EXT);
        let tmp = log_path.with_extension("log.truncating");
        let prefix = if holder < state.sealed.len() {
            state.sealed[holder].log.slice(..cut as usize)
        } else {
            segment::SegmentBytes::File {
                file: Arc::clone(&state.active.file),
                len: state.active.size,
            }
            .read(0, cut as usize)
            .map_err(|e| StorageError::io("read segment", &log_path, e))?
        };
        fs::write(&tmp, &prefix)
            .and_then(|()| fsync::sync_all(&File::open(&tmp)?, &tmp, cut))
            .map_err(|e| StorageError::io("write segment", &tmp, e))?;

        // From here on the files change. Later segments go first, newest first, so that a crash
        // at any point leaves a log without holes: a prefix of the old one.
        self.durable.fetch_min(offset, Ordering::AcqRel);
        let replaced = doomed
            .iter()
            .rev()
            .try_for_each(|&base| self.unlink_segment_files(base))
            .and_then(|()| checkpoint::sync_dir(&self.dir))
            .and_then(|()| {
                fsync::rename(&tmp, &log_path)
                    .map_err(|e| StorageError::io("rename segment", &log_path, e))
            })
            .and_then(|()| checkpoint::sync_dir(&self.dir));
        if let Err(err) = replaced {
            return Err(self.note_failure(StorageError::Failed {
                dir: self.dir.clone(),
                reason: format!("truncation to offset {offset} was interrupted: {err}"),
            }));
        }

        let created_at =
            read_header::<OffsetKind>(&segment_path(&self.dir, holder_base, OFFSET_INDEX_EXT))
                .map(|h| h.created_at_ms);
        let mut report = RecoveryReport::default();
        let active = rebuild_active(
            &self.dir,
            holder_base,
            created_at,
            &self.config,
            &self.limits,
            &mut report,
        )
        .map_err(|err| {
            self.note_failure(StorageError::Failed {
                dir: self.dir.clone(),
                reason: format!("reopening the segment cut at offset {offset} failed: {err}"),
            })
        })?;
        state.sealed.truncate(holder);
        state.active = active;
        info!(dir = %self.dir.display(), offset, "log truncated");
        Ok(())
    }

    /// Closes the log cleanly: syncs it and writes the clean-shutdown marker, so the next open
    /// skips the recovery scan.
    ///
    /// # Errors
    ///
    /// I/O errors; the log is then closed uncleanly and the next open recovers.
    pub fn close(self) -> Result<()> {
        if *self.paths.lock() {
            return Ok(());
        }
        self.flush()?;
        let state = self.state.into_inner();
        let active = state.active;
        active.offset_index.sync()?;
        active.time_index.sync()?;
        let marker = checkpoint::encode(
            CLEAN_SHUTDOWN_MAGIC,
            &[
                active.base_offset,
                active.size,
                active.next_offset,
                active.cadence.max_timestamp as u64,
                active.cadence.bytes_since_index,
                active
                    .cadence
                    .last_time_entry
                    .map_or(u64::MAX, |ts| ts as u64),
            ],
        );
        checkpoint::write_atomically(&self.dir, CLEAN_SHUTDOWN_FILE, &marker)
    }

    /// Retires the log: from now on it creates, renames and removes no files, and refuses
    /// appends, rolls, truncation and retention with [`StorageError::Retired`]. Reads keep
    /// working on what is open. Returns once no such file operation is running, so the caller
    /// may then move or delete the directory, or reuse its path.
    pub fn retire(&self) {
        *self.paths.lock() = true;
    }

    /// Takes the guard of path-based file operations, unless the log is retired.
    fn paths(&self) -> Result<parking_lot::MutexGuard<'_, bool>> {
        let guard = self.paths.lock();
        if *guard {
            return Err(StorageError::Retired {
                dir: self.dir.clone(),
            });
        }
        Ok(guard)
    }

    fn check_failure(&self) -> Result<()> {
        if *self.paths.lock() {
            return Err(StorageError::Retired {
                dir: self.dir.clone(),
            });
        }
        match &*self.failure.lock() {
            None => Ok(()),
            Some(reason) => Err(StorageError::Failed {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Records a failure after which unsynced data may be lost, and passes the error on.
    fn note_failure(&self, err: StorageError) -> StorageError {
        let fatal = matches!(err, StorageError::Failed { .. })
            || matches!(
                err,
                StorageError::Io {
                    operation: "fsync segment",
                    ..
                }
            );
        if fatal {
            error!(dir = %self.dir.display(), error = %err, "log refuses writes until reopened");
            // Keep the cause alone: `check_failure` wraps it in `Failed` again.
            let reason = match &err {
                StorageError::Failed { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            *self.failure.lock() = Some(reason);
        }
        err
    }

    /// Deletes a segment's three files, failing on the first that cannot be removed. The caller
    /// holds the path guard.
    fn unlink_segment_files(&self, base: u64) -> Result<()> {
        for ext in [TIME_INDEX_EXT, OFFSET_INDEX_EXT, LOG_EXT] {
            let path = segment_path(&self.dir, base, ext);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(StorageError::io("delete segment", path, err)),
            }
        }
        Ok(())
    }

    /// Deletes a segment's files, logging (not failing on) errors; nothing once retired.
    fn remove_segment_files(&self, base: u64) {
        let Ok(_paths) = self.paths() else {
            return;
        };
        for ext in [LOG_EXT, OFFSET_INDEX_EXT, TIME_INDEX_EXT] {
            let path = segment_path(&self.dir, base, ext);
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                warn!(path = %path.display(), error = %err, "could not delete segment file");
            }
        }
    }
}

/// Where a timestamp search in a segment starts: after the last time index entry that is wholly
/// older than the target, and never before the log start.
fn search_start(base: u64, older_than_target: Option<u32>, log_start: u64) -> u64 {
    (base + older_than_target.map_or(0, u64::from)).max(log_start)
}

/// The file position of the batch starting exactly at `offset` in `view`.
fn boundary_position(view: &SegmentView, offset: u64) -> Result<u64> {
    if offset == view.base_offset {
        return Ok(0);
    }
    let Some((position, header)) = segment::find_batch(view, offset)? else {
        return Err(StorageError::OffsetOutOfRange {
            requested: offset,
            log_start: view.base_offset,
            log_end: view.next_offset,
        });
    };
    if header.base_offset as u64 != offset {
        return Err(StorageError::NotBatchBoundary {
            offset,
            batch_base: header.base_offset as u64,
            batch_last: header.last_offset() as u64,
        });
    }
    Ok(position)
}

// TODO(storage): an active segment's indexes are filled with zeros up front for a whole
// segment (about 5 MiB with the default 1 GiB segment and 4 KiB interval), so that a store to
// the map never meets an unallocated block; a partition costs that much disk even when empty
// (1,000 empty partitions about 5 GB). Growing them in steps, remapping as they fill, would
// make the cost follow the data; meanwhile `segment_bytes` scales it down.
fn index_sizes(config: &LogConfig) -> (u64, u64) {
    (
        config.index_capacity_bytes(OffsetKind::ENTRY_LEN as u64),
        config.index_capacity_bytes(TimeKind::ENTRY_LEN as u64),
    )
}

/// Base offsets of the segments in `dir`, in order. Removes leftovers of interrupted work:
/// temporary files, and index files whose log is gone.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_name(name, LOG_EXT) {
            logs.push(base);
        } else if let Some(base) = parse_segment_name(name, OFFSET_INDEX_EXT)
            .or_else(|| parse_segment_name(name, TIME_INDEX_EXT))
        {
            indexes.push((base, entry.path()));
        } else if name.ends_with(".tmp") || name.ends_with(".truncating") {
            let _ = fs::remove_file(entry.path());
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            let _ = fs::remove_file(path);
        }
    }
    Ok(logs)
}

/// The state a clean shutdown recorded for the active segment.
#[derive(Debug, Clone, Copy)]
struct CleanState {
    base: u64,
    size: u64,
    next_offset: u64,
    cadence: IndexCadence,
}

fn read_clean_marker(dir: &Path) -> Option<CleanState> {
    let values = checkpoint::read(dir, CLEAN_SHUTDOWN_FILE, CLEAN_SHUTDOWN_MAGIC, 6).ok()??;
    Some(CleanState {
        base: values[0],
        size: values[1],
        next_offset: values[2],
        cadence: IndexCadence {
            max_timestamp: values[3] as i64,
            bytes_since_index: values[4],
            last_time_entry: (values[5] != u64::MAX).then_some(values[5] as i64),
        },
    })
}

/// Opens a sealed segment, checking its indexes cheaply and rebuilding them if they do not fit
/// the log.
fn open_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &LogConfig,
    limits: &BatchLimits,
    report: &mut RecoveryReport,
) -> Result<SealedSegment> {
    let log_path = segment_path(dir, base, LOG_EXT);
    let file = File::open(&log_path).map_err(|e| StorageError::io("open segment", &log_path, e))?;
    let last_modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| StorageError::io("stat segment", &log_path, e))?;
    let log = mmap::map_sealed(&file).map_err(|e| StorageError::io("map segment", &log_path, e))?;
    drop(file);

    let offset_path = segment_path(dir, base, OFFSET_INDEX_EXT);
    let time_path = segment_path(dir, base, TIME_INDEX_EXT);
    let offset_index = SealedIndex::<OffsetKind>::open(&offset_path, Some(base))?;
    let time_index = SealedIndex::<TimeKind>::open(&time_path, Some(base))?;
    let relative_end = (next_base - base).min(u64::from(u32::MAX)) as u32;
    if let (Some(offset_index), Some(time_index)) = (offset_index, time_index)
        && let Some((max_timestamp, relative)) = TimeLookup::last(&time_index)
        && relative == relative_end
        && tail_fits(&log, base, next_base, offset_index.last())
    {
        return Ok(SealedSegment {
            base_offset: base,
            next_offset: next_base,
            log,
            offset_index,
            time_index,
            max_timestamp,
            last_modified,
        });
    }

    // Rebuild both indexes from a full scan. A sealed segment is never cut: anything that does
    // not check out is damage to report, not a tail to drop.
    let scan = scan_segment(&log, base, limits, u64::from(config.index_interval_bytes));
    report.corrupt_ranges.extend(scan.corrupt.iter().cloned());
    if let Some(torn) = &scan.torn {
        report.corrupt_ranges.push(CorruptRange {
            segment_base: base,
            position: torn.position,
            offset: scan.next_offset,
            end_offset: next_base,
            reason: torn.reason.clone(),
        });
    } else if scan.next_offset < next_base {
        report.corrupt_ranges.push(CorruptRange {
            segment_base: base,
            position: scan.valid_len,
            offset: scan.next_offset,
            end_offset: next_base,
            reason: format!(
                "the segment ends at offset {} but the next segment starts at {next_base}",
                scan.next_offset
            ),
        });
    }
    let created_at_ms = read_header::<OffsetKind>(&offset_path)
        .map_or_else(|| unix_millis(last_modified), |h| h.created_at_ms);
    let header = IndexHeader {
        base_offset: base,
        created_at_ms,
    };
    let mut time_entries = scan.time_entries.clone();
    if scan.cadence.max_timestamp != i64::MIN {
        time_entries.extend_from_slice(&crate::index::time_entry(
            scan.cadence.max_timestamp,
            relative_end,
        ));
    }
    let offset_index =
        SealedIndex::<OffsetKind>::write(&offset_path, header, &scan.offset_entries)?;
    let time_index = SealedIndex::<TimeKind>::write(&time_path, header, &time_entries)?;
    report.rebuilt_indexes.push(base);
    warn!(segment = base, dir = %dir.display(), "rebuilt indexes of sealed segment");
    Ok(SealedSegment {
        base_offset: base,
        next_offset: next_base,
        log,
        offset_index,
        time_index,
        max_timestamp: scan.cadence.max_timestamp,
        last_modified,
    })
}

/// Whether the batches from the last indexed position run exactly to the end of the log and end
/// at `next_base`: the cheap check that a sealed segment and its index agree.
fn tail_fits(log: &Bytes, base: u64, next_base: u64, last_entry: Option<(u32, u32)>) -> bool {
    let (mut expected, mut position) = match last_entry {
        Some((relative, position)) => (base + u64::from(relative), position as usize),
        None => (base, 0),
    };
    while position < log.len() {
        let Ok(header) = BatchHeader::read(&log[position..]) else {
            return false;
        };
        if header.base_offset as u64 != expected || header.batch_length <= 0 {
            return false;
        }
        position += header.total_len();
        expected = header.next_offset() as u64;
    }
    position == log.len() && expected == next_base
}

/// Whether the active segment's indexes, reopened after a clean shutdown, stay inside the
/// segment: no entry names an offset at or past its end (`relative_end` records after its
/// base) or a position past its `size`. Entries are known to increase (see `ActiveIndex::open`),
/// so the last of each index decides. An index that does not fit is rebuilt from the log;
/// trusting it would put the next entry below one already there.
fn active_indexes_fit(
    offset_index: &ActiveIndex<OffsetKind>,
    time_index: &ActiveIndex<TimeKind>,
    relative_end: u64,
    size: u64,
) -> bool {
    let offsets_fit = OffsetLookup::last(offset_index).is_none_or(|(relative, position)| {
        u64::from(relative) < relative_end && u64::from(position) < size
    });
    let times_fit =
        TimeLookup::last(time_index).is_none_or(|(_, relative)| u64::from(relative) < relative_end);
    offsets_fit && times_fit
}

/// Opens the last segment for appends: fast after a clean shutdown, by a full scan otherwise.
fn open_active(
    dir: &Path,
    base: u64,
    config: &LogConfig,
    limits: &BatchLimits,
    clean: Option<CleanState>,
    report: &mut RecoveryReport,
) -> Result<ActiveSegment> {
    let log_path = segment_path(dir, base, LOG_EXT);
    let offset_path = segment_path(dir, base, OFFSET_INDEX_EXT);
    let time_path = segment_path(dir, base, TIME_INDEX_EXT);
    let (offset_bytes, time_bytes) = index_sizes(config);

    if let Some(clean) = clean.filter(|c| c.base == base) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("open segment", &log_path, e))?;
        let metadata = file
            .metadata()
            .map_err(|e| StorageError::io("stat segment", &log_path, e))?;
        if metadata.len() == clean.size
            && let Some((offset_index, header)) =
                ActiveIndex::<OffsetKind>::open(&offset_path, offset_bytes)?
            && let Some((time_index, _)) = ActiveIndex::<TimeKind>::open(&time_path, time_bytes)?
            && header.base_offset == base
            && active_indexes_fit(
                &offset_index,
                &time_index,
                clean.next_offset - base,
                clean.size,
            )
        {
            return Ok(ActiveSegment {
                dir: dir.to_path_buf(),
                base_offset: base,
                next_offset: clean.next_offset,
                file: Arc::new(file),
                size: clean.size,
                offset_index,
                time_index,
                created_at_ms: header.created_at_ms,
                cadence: clean.cadence,
                last_modified: metadata.modified().unwrap_or_else(|_| SystemTime::now()),
            });
        }
        report.clean_shutdown = false;
    }
    let created_at = read_header::<OffsetKind>(&offset_path).map(|h| h.created_at_ms);
    rebuild_active(dir, base, created_at, config, limits, report)
}

/// Scans the active segment's log, cuts off a torn tail, and writes fresh indexes.
fn rebuild_active(
    dir: &Path,
    base: u64,
    created_at_ms: Option<u64>,
    config: &LogConfig,
    limits: &BatchLimits,
    report: &mut RecoveryReport,
) -> Result<ActiveSegment> {
    let log_path = segment_path(dir, base, LOG_EXT);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&log_path)
        .map_err(|e| StorageError::io("open segment", &log_path, e))?;
    let interval = u64::from(config.index_interval_bytes);
    let scan = {
        let bytes =
            mmap::map_for_scan(&file).map_err(|e| StorageError::io("map segment", &log_path, e))?;
        scan_segment(&bytes, base, limits, interval)
        // The map is dropped here, before the file is cut.
    };
    if let Some(torn) = &scan.torn {
        file.set_len(scan.valid_len)
            .and_then(|()| fsync::sync_all(&file, &log_path, scan.valid_len))
            .map_err(|e| StorageError::io("truncate torn tail", &log_path, e))?;
        report.torn_tail = Some(torn.clone());
    }
    report.corrupt_ranges.extend(scan.corrupt.iter().cloned());

    let last_modified = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let now = SystemTime::now();
    let header = IndexHeader {
        base_offset: base,
        created_at_ms: created_at_ms.unwrap_or_else(|| unix_millis(now)),
    };
    let (offset_bytes, time_bytes) = index_sizes(config);
    let mut offset_index = ActiveIndex::<OffsetKind>::create(
        &segment_path(dir, base, OFFSET_INDEX_EXT),
        header,
        offset_bytes.max((crate::index::INDEX_HEADER_LEN + scan.offset_entries.len()) as u64),
    )?;
    for entry in scan.offset_entries.chunks_exact(OffsetKind::ENTRY_LEN) {
        let relative = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let position = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        offset_index.append(relative, position);
    }
    let mut time_index = ActiveIndex::<TimeKind>::create(
        &segment_path(dir, base, TIME_INDEX_EXT),
        header,
        time_bytes.max((crate::index::INDEX_HEADER_LEN + scan.time_entries.len()) as u64),
    )?;
    for entry in scan.time_entries.chunks_exact(TimeKind::ENTRY_LEN) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&entry[..8]);
        let relative = u32::from_le_bytes([entry[8], entry[9], entry[10], entry[11]]);
        time_index.append(i64::from_le_bytes(ts), relative);
    }
    report.rebuilt_indexes.push(base);
    Ok(ActiveSegment {
        dir: dir.to_path_buf(),
        base_offset: base,
        next_offset: scan.next_offset,
        file: Arc::new(file),
        size: scan.valid_len,
        offset_index,
        time_index,
        created_at_ms: header.created_at_ms,
        cadence: scan.cadence,
        last_modified,
    })
}
