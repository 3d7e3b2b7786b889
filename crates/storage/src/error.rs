//! The storage crate's error type.

use std::io;
use std::path::PathBuf;

use rivulet_format::FormatError;

/// Everything that can go wrong in a partition log.
///
/// Variants carry the segment, file position and offsets involved so an operator can find the
/// bytes in question. Paths appear only in variants about files; a network layer should not pass
/// them on to clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done (`"write segment"`, `"fsync index"`, ...).
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The disk (or the file system's quota) is full. Nothing was written; retry once space is
    /// freed.
    #[error("no space left on device while trying to {operation} {path}")]
    DiskFull {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
    },
    /// A batch offered for append is not a valid record batch.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[source] FormatError),
    /// A batch offered for append holds no records.
    #[error("record batch holds no records; a batch must hold at least one record")]
    EmptyBatch,
    /// A read, truncation or deletion named an offset outside the log.
    #[error("offset {requested} is out of range; valid offsets are {log_start} to {log_end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The first offset still stored.
        log_start: u64,
        /// The offset the next record will get (one past the last stored).
        log_end: u64,
    },
    /// A truncation point does not fall between two batches.
    #[error(
        "offset {offset} is inside a stored batch ({batch_base}..={batch_last}); truncate at a batch boundary"
    )]
    NotBatchBoundary {
        /// The offset asked for.
        offset: u64,
        /// First offset of the batch containing it.
        batch_base: u64,
        /// Last offset of that batch.
        batch_last: u64,
    },
    /// Stored bytes that were once whole no longer check out. The offsets from `offset` up to
    /// (not including) `end_offset` cannot be served; the rest of the log can.
    #[error(
        "corrupt record batch in segment {segment_base} at byte {position}: offsets {offset} to \
         {} are unreadable ({reason})",
        last_unreadable(.offset, .end_offset)
    )]
    CorruptBatch {
        /// Base offset of the segment holding the damage.
        segment_base: u64,
        /// Byte position of the bad batch within the segment file.
        position: u64,
        /// The first offset the bad batch should hold.
        offset: u64,
        /// The first offset known to be readable after the damage.
        end_offset: u64,
        /// What check failed.
        #[source]
        reason: FormatError,
    },
    /// One of Rivulet's own files (index, checkpoint) is damaged in a way that could not be
    /// repaired by rebuilding it.
    #[error("{path} is damaged: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// The log refused further writes after a failure that may have lost unsynced data (a failed
    /// fsync, or a failed undo of a partial write). Reopening the log recovers it.
    #[error("log in {dir} refuses writes after an earlier failure: {reason}; reopen it to recover")]
    Failed {
        /// The partition directory.
        dir: PathBuf,
        /// The failure that stopped it.
        reason: String,
    },
    /// The log was retired (its partition is being deleted) and takes no more writes.
    #[error("log in {dir} is retired and takes no more writes")]
    Retired {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A configuration value is out of its allowed range.
    #[error("invalid log setting {name} = {value}: {rule}")]
    InvalidConfig {
        /// Setting name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },
}

impl StorageError {
    /// Wraps an I/O error with what was being done and to which file, and tells a full disk
    /// apart so callers can refuse work with a retryable error.
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            StorageError::DiskFull { operation, path }
        } else {
            StorageError::Io {
                operation,
                path,
                source,
            }
        }
    }

    /// Whether retrying the same request later may succeed without anyone repairing data.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

fn is_disk_full(err: &io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux.
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(28) | Some(122))
}

/// Result alias for the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The last offset of a damaged range `offset..end_offset`, for messages that name both ends
/// inclusively.
pub(crate) fn last_unreadable(offset: &u64, end_offset: &u64) -> u64 {
    end_offset.saturating_sub(1).max(*offset)
}
