//! Broker-wide and per-topic settings, and the durability levels a produce request can ask for.
//!
//! Settings are plain values built with `with_*` methods; [`TopicConfig::validate`] and
//! [`BrokerConfig::validate`] state every range. This module owns no state and touches no files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rivulet_storage::{FlushPolicy, LogConfig, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};

use crate::error::{BrokerError, Result};
use crate::membership::MembershipTimeouts;

/// Smallest batch the storage engine accepts: one batch header. Topics stored with a smaller
/// `max_batch_bytes` than [`MIN_NEW_BATCH_BYTES`] still load if they respect this.
const MIN_BATCH_BYTES: u32 = rivulet_format::header::BATCH_HEADER_LEN as u32;
/// Smallest `max_batch_bytes` a new topic may have: below it a batch holds hardly a record.
pub const MIN_NEW_BATCH_BYTES: u32 = 1 << 10;
/// Default `max_record_bytes`.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 1 << 20;
/// What `max_batch_bytes` adds to `max_record_bytes` by default: a batch holding one record of
/// the largest size needs a header and varints besides the record's bytes.
pub const BATCH_HEADROOM: u32 = 64 << 10;
/// Least room `max_batch_bytes` must leave beyond `max_record_bytes`: the 61-byte batch header
/// and a record's own varints (at most 36 bytes without headers), rounded up, so a record of
/// the largest size without headers fits a batch uncompressed.
pub const BATCH_FRAMING: u32 = 128;

/// How far a produce request waits before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once the batch is in the operating system's page cache: it survives a crash
    /// of the broker process (kill -9) but not of the machine.
    Written,
    /// Acknowledged once the batch is fsynced. Concurrent durable requests to one partition
    /// share fsyncs (group commit).
    #[default]
    Durable,
}

/// When a topic's partitions are synced for requests that asked only for
/// [`Durability::Written`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurabilityPolicy {
    /// Every produce is treated as [`Durability::Durable`], whatever it asked for.
    AlwaysDurable,
    /// Unsynced data is synced by a background task once it is this old.
    SyncInterval(Duration),
    /// Only durable requests sync; the operating system writes the rest back on its own schedule.
    OsDecides,
}

impl Default for DurabilityPolicy {
    fn default() -> Self {
        DurabilityPolicy::SyncInterval(Duration::from_secs(1))
    }
}

/// Settings of one topic, fixed at creation and stored in its metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Delete sealed segments older than this. Default: keep forever.
    pub retention_age: Option<Duration>,
    /// Delete the oldest sealed segments while a partition is larger than this. Default: no
    /// limit.
    pub retention_bytes: Option<u64>,
    /// Size at which a partition rolls to a new segment. Default 1 GiB.
    pub segment_bytes: u64,
    /// Largest record (key, value, header names and values together). Default 1 MiB.
    pub max_record_bytes: u32,
    /// Largest record batch, header included. Default 1 MiB + 64 KiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`] + [`BATCH_HEADROOM`]), so a record of the default largest
    /// size fits in a batch.
    pub max_batch_bytes: u32,
    /// When data produced with [`Durability::Written`] is synced.
    pub durability: DurabilityPolicy,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            retention_age: None,
            retention_bytes: None,
            segment_bytes: 1 << 30,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_batch_bytes: DEFAULT_MAX_RECORD_BYTES + BATCH_HEADROOM,
            durability: DurabilityPolicy::default(),
        }
    }
}

impl TopicConfig {
    /// Sets [`TopicConfig::retention_age`].
    pub fn with_retention_age(mut self, age: Option<Duration>) -> Self {
        self.retention_age = age;
        self
    }

    /// Sets [`TopicConfig::retention_bytes`].
    pub fn with_retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets [`TopicConfig::segment_bytes`].
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`TopicConfig::max_record_bytes`].
    pub fn with_max_record_bytes(mut self, bytes: u32) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets [`TopicConfig::max_batch_bytes`].
    pub fn with_max_batch_bytes(mut self, bytes: u32) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Sets [`TopicConfig::durability`].
    pub fn with_durability(mut self, policy: DurabilityPolicy) -> Self {
        self.durability = policy;
        self
    }

    /// Checks every setting against its range, and the settings against each other: a record
    /// must fit a batch (`max_record_bytes` at most `max_batch_bytes`).
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidConfig`] naming the first setting that breaks a rule, and the rule.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_NEW_BATCH_BYTES..=i32::MAX as u32).contains(&self.max_batch_bytes) {
            return Err(invalid(
                "max_batch_bytes",
                self.max_batch_bytes,
                "must be between 1024 and 2147483647",
            ));
        }
        self.validate_ranges()?;
        if self.max_record_bytes > self.max_batch_bytes.saturating_sub(BATCH_FRAMING) {
            return Err(BrokerError::InvalidConfig {
                setting: "max_record_bytes",
                value: format!(
                    "{} with max_batch_bytes = {}",
                    self.max_record_bytes, self.max_batch_bytes
                ),
                rule: "must be at most max_batch_bytes - 128 (a batch's header and a record's \
                       framing), or a record of that size could not be stored; raise \
                       max_batch_bytes or lower max_record_bytes",
            });
        }
        Ok(())
    }

    /// Checks each setting against its own range only. Topics loaded from disk are checked
    /// this way, so that one created before a rule between settings existed is still served.
    pub(crate) fn validate_ranges(&self) -> Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(invalid(
                "segment_bytes",
                self.segment_bytes,
                "must be between 1024 and 2147483647",
            ));
        }
        if self.max_batch_bytes < MIN_BATCH_BYTES || self.max_batch_bytes > i32::MAX as u32 {
            return Err(invalid(
                "max_batch_bytes",
                self.max_batch_bytes,
                "must be between 61 (one batch header) and 2147483647",
            ));
        }
        if self.max_record_bytes == 0 {
            return Err(invalid(
                "max_record_bytes",
                self.max_record_bytes,
                "must be at least 1",
            ));
        }
        if self.retention_bytes == Some(0) {
            return Err(invalid(
                "retention_bytes",
                0,
                "must be at least 1, or unset for no limit",
            ));
        }
        if self.retention_age.is_some_and(|age| age.is_zero()) {
            return Err(invalid(
                "retention_age",
                "0ms",
                "must be longer than zero, or unset to keep forever",
            ));
        }
        if let DurabilityPolicy::SyncInterval(every) = self.durability
            && every.is_zero()
        {
            return Err(invalid(
                "durability sync interval",
                "0ms",
                "must be longer than zero; use AlwaysDurable to sync every produce",
            ));
        }
        Ok(())
    }

    /// The storage settings for one partition of this topic.
    ///
    /// Logs are never opened with the storage engine's `EveryBatch`: that would sync requests
    /// that asked only for [`Durability::Written`]. Durable requests call `flush_to` after the
    /// append instead, which gives the same group commit.
    pub(crate) fn log_config(&self) -> LogConfig {
        let flush = match self.durability {
            DurabilityPolicy::SyncInterval(every) => FlushPolicy::Interval(every),
            DurabilityPolicy::AlwaysDurable | DurabilityPolicy::OsDecides => FlushPolicy::Os,
        };
        LogConfig::default()
            .with_segment_bytes(self.segment_bytes)
            .with_max_batch_bytes(self.max_batch_bytes)
            .with_retention_age(self.retention_age)
            .with_retention_bytes(self.retention_bytes)
            .with_flush(flush)
    }
}

/// Settings of the whole broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// The data directory; everything the broker stores lives under it.
    pub data_dir: PathBuf,
    /// Largest partition count a topic may have. Default 10 000.
    pub max_partitions: u32,
    /// Bound on the bytes of produce requests being processed at once; past it, produce
    /// requests are refused with [`BrokerError::Busy`]. Default 64 MiB.
    pub max_in_flight_bytes: u64,
    /// The delay suggested by [`BrokerError::Busy`]. Default 20 ms.
    pub busy_retry_after: Duration,
    /// How often the background task visits partitions under
    /// [`DurabilityPolicy::SyncInterval`]: it starts the write-back of what each buffered since
    /// its last visit, and syncs those whose interval has passed. Default 100 ms.
    pub flush_check_interval: Duration,
    /// How often the background task applies retention. Default 30 s.
    pub retention_check_interval: Duration,
    /// Compact the group offsets log once it holds this many bytes (and at least twice the size
    /// of its last snapshot). Default 16 MiB.
    pub offsets_compact_bytes: u64,
    /// Consumer-group member session timeout and revocation deadline. Default 10 s and 30 s.
    pub group_timeouts: MembershipTimeouts,
}

impl BrokerConfig {
    /// Default settings with data under `data_dir`.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        BrokerConfig {
            data_dir: data_dir.as_ref().to_path_buf(),
            max_partitions: 10_000,
            max_in_flight_bytes: 64 << 20,
            busy_retry_after: Duration::from_millis(20),
            flush_check_interval: Duration::from_millis(100),
            retention_check_interval: Duration::from_secs(30),
            offsets_compact_bytes: 16 << 20,
            group_timeouts: MembershipTimeouts::default(),
        }
    }

    /// Sets [`BrokerConfig::max_partitions`].
    pub fn with_max_partitions(mut self, max: u32) -> Self {
        self.max_partitions = max;
        self
    }

    /// Sets [`BrokerConfig::max_in_flight_bytes`].
    pub fn with_max_in_flight_bytes(mut self, bytes: u64) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }

    /// Sets [`BrokerConfig::busy_retry_after`].
    pub fn with_busy_retry_after(mut self, delay: Duration) -> Self {
        self.busy_retry_after = delay;
        self
    }

    /// Sets [`BrokerConfig::flush_check_interval`].
    pub fn with_flush_check_interval(mut self, every: Duration) -> Self {
        self.flush_check_interval = every;
        self
    }

    /// Sets [`BrokerConfig::retention_check_interval`].
    pub fn with_retention_check_interval(mut self, every: Duration) -> Self {
        self.retention_check_interval = every;
        self
    }

    /// Sets [`BrokerConfig::group_timeouts`].
    pub fn with_group_timeouts(mut self, timeouts: MembershipTimeouts) -> Self {
        self.group_timeouts = timeouts;
        self
    }

    /// Sets [`BrokerConfig::offsets_compact_bytes`].
    pub fn with_offsets_compact_bytes(mut self, bytes: u64) -> Self {
        self.offsets_compact_bytes = bytes;
        self
    }

    /// Checks every setting against its range.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidConfig`] naming the first setting out of range and the rule.
    pub fn validate(&self) -> Result<()> {
        if self.max_partitions == 0 {
            return Err(invalid("max_partitions", 0, "must be at least 1"));
        }
        if self.max_in_flight_bytes == 0 {
            return Err(invalid("max_in_flight_bytes", 0, "must be at least 1"));
        }
        if self.flush_check_interval.is_zero() || self.retention_check_interval.is_zero() {
            return Err(invalid(
                "check interval",
                "0ms",
                "flush and retention check intervals must be longer than zero",
            ));
        }
        if self.offsets_compact_bytes < MIN_SEGMENT_BYTES {
            return Err(invalid(
                "offsets_compact_bytes",
                self.offsets_compact_bytes,
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}

fn invalid(setting: &'static str, value: impl ToString, rule: &'static str) -> BrokerError {
    BrokerError::InvalidConfig {
        setting,
        value: value.to_string(),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topic_config_is_valid_and_maps_to_an_interval_log() {
        let config = TopicConfig::default();
        config.validate().unwrap();
        assert_eq!(
            config.log_config().flush,
            FlushPolicy::Interval(Duration::from_secs(1))
        );
    }

    #[test]
    fn always_durable_topics_open_logs_without_per_append_sync() {
        let config = TopicConfig::default().with_durability(DurabilityPolicy::AlwaysDurable);
        assert_eq!(config.log_config().flush, FlushPolicy::Os);
    }

    #[test]
    fn a_record_limit_without_room_in_a_batch_is_refused_at_creation_only() {
        let config = TopicConfig::default()
            .with_max_record_bytes(2 << 20)
            .with_max_batch_bytes(1 << 20);
        let err = config.validate().unwrap_err().to_string();
        for words in [
            "max_record_bytes = 2097152",
            "max_batch_bytes = 1048576",
            "at most max_batch_bytes - 128",
        ] {
            assert!(err.contains(words), "{err}");
        }
        config.validate_ranges().unwrap();

        // Equal limits are refused too: an uncompressed record of that size cannot fit.
        let equal = TopicConfig::default()
            .with_max_record_bytes(1 << 20)
            .with_max_batch_bytes(1 << 20);
        assert!(equal.validate().is_err());
        equal
            .with_max_record_bytes((1 << 20) - BATCH_FRAMING)
            .validate()
            .unwrap();
    }

    #[test]
    fn out_of_range_settings_name_the_rule() {
        let err = TopicConfig::default()
            .with_segment_bytes(10)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("segment_bytes"), "{err}");
        let err = TopicConfig::default()
            .with_max_record_bytes(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
