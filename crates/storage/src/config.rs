//! Per-log settings.

use std::time::Duration;

use crate::error::{Result, StorageError};

/// When appended bytes are forced to disk with `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushPolicy {
    /// Every append syncs before it returns. Concurrent appenders share one sync (group commit).
    EveryBatch,
    /// Appends never sync; the owner of the log calls
    /// [`PartitionLog::flush_if_due`](crate::PartitionLog::flush_if_due) on a timer, which
    /// syncs once the last sync is older than this. So an append never waits for an fsync,
    /// and a power loss can lose what was appended in about the last interval plus one timer
    /// period.
    Interval(Duration),
    /// Never sync unless asked ([`PartitionLog::flush`](crate::PartitionLog::flush)); the
    /// operating system writes dirty pages back on its own schedule.
    Os,
}

/// Settings of one partition log.
///
/// Build with [`LogConfig::default`] and the `with_*` methods; [`LogConfig::validate`] checks
/// every range and is called by [`PartitionLog::open`](crate::PartitionLog::open).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Roll to a new segment once the active one would pass this size. Default 1 GiB.
    pub segment_bytes: u64,
    /// Roll to a new segment once the active one is this old (wall clock, from its creation).
    /// Default: never.
    pub segment_age: Option<Duration>,
    /// Add an offset and time index entry every this many bytes of log. Default 4 KiB.
    pub index_interval_bytes: u32,
    /// Largest index file; the segment rolls when its index is full. Default 10 MiB.
    pub index_max_bytes: u32,
    /// Largest batch accepted by `append`, header included. Default 1 MiB.
    pub max_batch_bytes: u32,
    /// Delete sealed segments last written more than this long ago. Default: keep forever.
    pub retention_age: Option<Duration>,
    /// Delete the oldest sealed segments while the log is larger than this. Default: no limit.
    pub retention_bytes: Option<u64>,
    /// When to fsync. Default [`FlushPolicy::EveryBatch`].
    pub flush: FlushPolicy,
}

/// Smallest segment size accepted: room for a few small batches, so tests can roll often.
pub const MIN_SEGMENT_BYTES: u64 = 1024;
/// Largest segment size: file positions in the offset index are 32-bit.
pub const MAX_SEGMENT_BYTES: u64 = (1 << 31) - 1;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_age: None,
            index_interval_bytes: 4096,
            index_max_bytes: 10 << 20,
            max_batch_bytes: 1 << 20,
            retention_age: None,
            retention_bytes: None,
            flush: FlushPolicy::EveryBatch,
        }
    }
}

impl LogConfig {
    /// Sets [`LogConfig::segment_bytes`].
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::segment_age`].
    pub fn with_segment_age(mut self, age: Option<Duration>) -> Self {
        self.segment_age = age;
        self
    }

    /// Sets [`LogConfig::index_interval_bytes`].
    pub fn with_index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::index_max_bytes`].
    pub fn with_index_max_bytes(mut self, bytes: u32) -> Self {
        self.index_max_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::max_batch_bytes`].
    pub fn with_max_batch_bytes(mut self, bytes: u32) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::retention_age`].
    pub fn with_retention_age(mut self, age: Option<Duration>) -> Self {
        self.retention_age = age;
        self
    }

    /// Sets [`LogConfig::retention_bytes`].
    pub fn with_retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::flush`].
    pub fn with_flush(mut self, flush: FlushPolicy) -> Self {
        self.flush = flush;
        self
    }

    /// Checks every setting against its allowed range.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidConfig`] naming the first setting out of range and the rule.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(invalid(
                "segment_bytes",
                self.segment_bytes,
                "must be between 1024 and 2147483647",
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err(invalid(
                "index_interval_bytes",
                self.index_interval_bytes,
                "must be at least 1",
            ));
        }
        if self.index_max_bytes < 4096 {
            return Err(invalid(
                "index_max_bytes",
                self.index_max_bytes,
                "must be at least 4096",
            ));
        }
        let min_batch = rivulet_format::header::BATCH_HEADER_LEN as u32;
        if self.max_batch_bytes < min_batch || self.max_batch_bytes > i32::MAX as u32 {
            return Err(invalid(
                "max_batch_bytes",
                self.max_batch_bytes,
                "must be between 61 (one batch header) and 2147483647",
            ));
        }
        if let FlushPolicy::Interval(every) = self.flush
            && every.is_zero()
        {
            return Err(invalid(
                "flush interval",
                "0ms",
                "must be longer than zero; use EveryBatch to sync every append",
            ));
        }
        Ok(())
    }

    /// Bytes to preallocate for each index of the active segment: enough entries for a full
    /// segment at the configured interval, capped by `index_max_bytes`.
    pub(crate) fn index_capacity_bytes(&self, entry_len: u64) -> u64 {
        let entries = self.segment_bytes / u64::from(self.index_interval_bytes) + 2;
        let wanted = crate::index::INDEX_HEADER_LEN as u64 + entries * entry_len;
        wanted.clamp(4096, u64::from(self.index_max_bytes))
    }
}

fn invalid(name: &'static str, value: impl ToString, rule: &'static str) -> StorageError {
    StorageError::InvalidConfig {
        name,
        value: value.to_string(),
        rule,
    }
}
