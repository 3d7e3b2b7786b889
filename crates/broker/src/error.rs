//! [`BrokerError`], the broker's one error type, and the translation of storage errors into it.
//!
//! Every variant names the topic, partition and offsets involved, and none carries a file path:
//! a server passes these messages to clients as they are. Storage errors (whose messages do
//! name files) are logged in full where they are translated, then reduced to what a client may
//! see. [`BrokerError::kind`] groups the variants the way a network layer maps them to status
//! codes.

use rivulet_format::FormatError;
use rivulet_storage::StorageError;

use crate::membership::MembershipError;
use tracing::error;

/// How a caller should treat an error; a network layer maps each kind to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The topic or partition does not exist.
    NotFound,
    /// An offset lies outside the log; the error carries the valid range.
    OutOfRange,
    /// The request breaks a documented rule; retrying it unchanged fails again.
    InvalidArgument,
    /// The topic already exists (or collides with an existing name).
    AlreadyExists,
    /// The broker cannot take the request now; retry later.
    Unavailable,
    /// Stored data is damaged.
    DataLoss,
    /// An internal failure, such as an I/O error other than a full disk.
    Internal,
    /// The request conflicts with the consumer group's state: the member was removed, or no
    /// longer owns the partition, or the group has live members.
    FailedPrecondition,
}

/// Everything a broker operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No topic of that name exists.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The name asked for.
        topic: String,
    },
    /// The topic exists but has no such partition.
    #[error("topic {topic:?} has no partition {partition}; it has partitions 0 to {last}", last = .partitions.saturating_sub(1))]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// An offset outside the partition's log.
    #[error(
        "offset {requested} is out of range for topic {topic:?} partition {partition}; valid \
         offsets are {log_start} to {log_end}"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        requested: u64,
        /// The first offset still stored.
        log_start: u64,
        /// The offset the next record will get.
        log_end: u64,
    },
    /// A topic name breaks the naming rule.
    #[error("invalid topic name {name:?}: {rule}")]
    InvalidTopicName {
        /// The name given (escaped when shown).
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A partition count outside the allowed range.
    #[error("invalid partition count {count} for topic {topic:?}: must be between 1 and {max}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The count given.
        count: u32,
        /// The largest count allowed.
        max: u32,
    },
    /// A topic or broker setting outside its allowed range.
    #[error("invalid setting {setting} = {value}: {rule}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },
    /// A request field breaks a rule not covered by a more specific variant.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// A topic of that name, or of a name that collides with it, exists.
    #[error("{}", topic_exists_message(topic, existing))]
    TopicExists {
        /// The name asked for.
        topic: String,
        /// The existing topic it collides with.
        existing: String,
    },
    /// A record larger than the topic's `max_record_bytes`. Nothing was stored.
    #[error(
        "record {index} for topic {topic:?} is {size} bytes (key, value and headers), larger \
         than the topic's max_record_bytes of {max}; nothing was stored"
    )]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// Index of the record within the request.
        index: usize,
        /// Its size.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// A batch larger than the topic's `max_batch_bytes`. Nothing was stored.
    #[error(
        "record batch for topic {topic:?} partition {partition} is {size} bytes, larger than the \
         topic's max_batch_bytes of {max}; nothing was stored"
    )]
    BatchTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The batch size.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// A produce request with no records.
    #[error("produce request for topic {topic:?} holds no records; send at least one")]
    EmptyBatch {
        /// The topic.
        topic: String,
    },
    /// A raw batch that is not one valid Kafka v2 record batch.
    #[error("invalid record batch for topic {topic:?} partition {partition}: {reason}")]
    InvalidBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What check failed.
        #[source]
        reason: FormatError,
    },
    /// A consumer-group offset commit that is not allowed.
    #[error(
        "cannot commit offset {offset} for group {group:?} on topic {topic:?} partition \
         {partition}: {rule} (log end offset is {log_end})"
    )]
    InvalidCommitOffset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset given.
        offset: i64,
        /// The partition's log end offset when the commit was checked.
        log_end: u64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Too many produce bytes are in flight; nothing was stored. Retry after the given delay.
    #[error(
        "broker busy: {in_flight_bytes} bytes of produce requests in flight, limit {limit}; \
         retry after {retry_after_ms} ms"
    )]
    Busy {
        /// Suggested delay before retrying.
        retry_after_ms: u64,
        /// Bytes in flight when the request arrived.
        in_flight_bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The disk is full. Nothing was stored; retry once space is freed.
    #[error("disk full while trying to {operation} for {scope}; nothing was stored, retry later")]
    DiskFull {
        /// What was being done.
        operation: &'static str,
        /// Which topic and partition (or internal structure) was affected.
        scope: String,
    },
    /// Stored data is damaged.
    #[error("data damaged in {scope}: {detail}")]
    Corrupt {
        /// Which topic and partition (or internal structure) holds the damage.
        scope: String,
        /// What is damaged and which offsets cannot be read.
        detail: String,
    },
    /// A topic found on disk at start that cannot be served: its metadata file is missing,
    /// unreadable or damaged, or one of its partitions is. The topic is listed, every other
    /// operation on it is refused with this error, and nothing in its directory was changed.
    #[error(
        "topic {topic:?} cannot be served: {detail}; nothing in its directory was changed. \
         Restore what is damaged from a backup and restart the server, or delete the topic \
         (which removes its data)"
    )]
    TopicDamaged {
        /// The topic.
        topic: String,
        /// What is damaged, without file paths.
        detail: String,
    },
    /// Some of a group's committed offsets may be older than its last commits: records of the
    /// group offsets log written after them cannot be read. The offsets stay in doubt (and are
    /// refused with this error rather than served) until the group commits them again.
    #[error(
        "committed offsets of group {group:?} may be stale: {detail}. Commit these partitions \
         again (for example with `rivulet group reset-offsets`) to resolve it"
    )]
    CommitsInDoubt {
        /// The group.
        group: String,
        /// Which partitions are in doubt, their last readable commits, and the damaged range
        /// of the offsets log.
        detail: String,
    },
    /// The broker is shutting down and accepts no new requests.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// A consumer-group membership rule refused a heartbeat or commit.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Another process holds the data directory: two brokers on one directory would
    /// overwrite each other's records.
    #[error(
        "data directory {} is in use by another process (its lock file is held); stop that \
         process or choose another directory",
        dir.display()
    )]
    DataDirectoryInUse {
        /// The data directory.
        dir: std::path::PathBuf,
    },
    /// An internal failure, such as an I/O error other than a full disk.
    #[error("internal error in {scope}: {detail}")]
    Internal {
        /// Which topic and partition (or internal structure) was affected.
        scope: String,
        /// What failed, without file paths.
        detail: String,
    },
}

impl BrokerError {
    /// The error's kind, for mapping to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => {
                ErrorKind::NotFound
            }
            BrokerError::OffsetOutOfRange { .. } => ErrorKind::OutOfRange,
            BrokerError::InvalidTopicName { .. }
            | BrokerError::InvalidPartitionCount { .. }
            | BrokerError::InvalidConfig { .. }
            | BrokerError::InvalidArgument(_)
            | BrokerError::RecordTooLarge { .. }
            | BrokerError::BatchTooLarge { .. }
            | BrokerError::EmptyBatch { .. }
            | BrokerError::InvalidBatch { .. }
            | BrokerError::InvalidCommitOffset { .. } => ErrorKind::InvalidArgument,
            BrokerError::TopicExists { .. } => ErrorKind::AlreadyExists,
            BrokerError::Busy { .. } | BrokerError::DiskFull { .. } | BrokerError::ShuttingDown => {
                ErrorKind::Unavailable
            }
            BrokerError::Corrupt { .. }
            | BrokerError::TopicDamaged { .. }
            | BrokerError::CommitsInDoubt { .. } => ErrorKind::DataLoss,
            BrokerError::Internal { .. } | BrokerError::DataDirectoryInUse { .. } => {
                ErrorKind::Internal
            }
            BrokerError::Membership(_) => ErrorKind::FailedPrecondition,
        }
    }

    /// Whether the same request may succeed later without anyone changing it or repairing data.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BrokerError::Busy { .. } | BrokerError::DiskFull { .. } | BrokerError::ShuttingDown
        )
    }

    /// Translates a storage error met on `topic`/`partition`, logging the full error (with its
    /// file path) and keeping only what a client may see.
    pub(crate) fn from_storage(topic: &str, partition: u32, err: StorageError) -> Self {
        let scope = || format!("topic {topic:?} partition {partition}");
        match err {
            StorageError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => BrokerError::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                requested,
                log_start,
                log_end,
            },
            StorageError::InvalidBatch(reason) => BrokerError::InvalidBatch {
                topic: topic.to_owned(),
                partition,
                reason,
            },
            StorageError::EmptyBatch => BrokerError::EmptyBatch {
                topic: topic.to_owned(),
            },
            // The topic was deleted while the request was running.
            StorageError::Retired { .. } => BrokerError::UnknownTopic {
                topic: topic.to_owned(),
            },
            err => Self::from_storage_in(&scope(), err),
        }
    }

    /// Translates a storage error that has no partition-specific meaning, naming `scope` (e.g.
    /// `"the group offsets log"`) instead of a file.
    pub(crate) fn from_storage_in(scope: &str, err: StorageError) -> Self {
        let scope = scope.to_owned();
        match err {
            StorageError::DiskFull { operation, .. } => BrokerError::DiskFull { operation, scope },
            StorageError::CorruptBatch {
                offset,
                end_offset,
                ref reason,
                ..
            } => {
                error!(%scope, offset, end_offset, error = %err, "corrupt data");
                BrokerError::Corrupt {
                    detail: format!(
                        "offsets {offset} to {} are unreadable ({reason})",
                        end_offset.saturating_sub(1).max(offset)
                    ),
                    scope,
                }
            }
            StorageError::CorruptFile { ref reason, .. } => {
                error!(%scope, error = %err, "corrupt file");
                BrokerError::Corrupt {
                    detail: reason.clone(),
                    scope,
                }
            }
            StorageError::Io {
                operation,
                ref source,
                ..
            } => {
                error!(%scope, error = %err, "storage I/O error");
                BrokerError::Internal {
                    detail: format!("{operation} failed: {source}"),
                    scope,
                }
            }
            StorageError::Failed { .. } => {
                error!(%scope, error = %err, "log refuses writes");
                BrokerError::Internal {
                    detail: "the log refuses writes after an earlier failure that may have lost \
                             unsynced data; restart the broker to recover it"
                        .to_owned(),
                    scope,
                }
            }
            StorageError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => BrokerError::Internal {
                detail: format!(
                    "offset {requested} out of range {log_start} to {log_end} in internal log"
                ),
                scope,
            },
            other => {
                error!(%scope, error = %other, "storage error");
                BrokerError::Internal {
                    detail: "storage error (details in the broker log)".to_owned(),
                    scope,
                }
            }
        }
    }

    /// Wraps an I/O error on broker-owned files (topic metadata, directories) without the path.
    pub(crate) fn io(scope: &str, operation: &'static str, err: std::io::Error) -> Self {
        let scope = scope.to_owned();
        if is_disk_full(&err) {
            return BrokerError::DiskFull { operation, scope };
        }
        error!(%scope, operation, error = %err, "I/O error");
        BrokerError::Internal {
            detail: format!("{operation} failed: {err}"),
            scope,
        }
    }
}

fn is_disk_full(err: &std::io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux.
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(28) | Some(122))
}

/// The message of [`BrokerError::TopicExists`]: plain when the name itself is taken, with the
/// collision rule when another spelling holds it.
fn topic_exists_message(topic: &str, existing: &str) -> String {
    if topic == existing {
        format!("topic {topic:?} already exists")
    } else {
        format!(
            "topic {topic:?} cannot be created: it collides with existing topic {existing:?} \
             (names equal when compared ignoring case and treating '.' and '_' as the same)"
        )
    }
}

/// Result alias for the broker crate.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn an_existing_topic_is_named_plainly_and_a_collision_with_its_rule() {
        let same = BrokerError::TopicExists {
            topic: "orders".into(),
            existing: "orders".into(),
        };
        assert_eq!(same.to_string(), "topic \"orders\" already exists");
        let collision = BrokerError::TopicExists {
            topic: "ORDERS".into(),
            existing: "orders".into(),
        }
        .to_string();
        assert!(
            collision.contains("collides with existing topic \"orders\""),
            "{collision}"
        );
        assert!(collision.contains("ignoring case"), "{collision}");
    }

    #[test]
    fn storage_errors_lose_their_paths() {
        let err = StorageError::Io {
            operation: "write segment",
            path: PathBuf::from("/secret/data/topics/t/0/00000000000000000000.log"),
            source: std::io::Error::other("boom"),
        };
        let broker = BrokerError::from_storage("t", 0, err);
        let message = broker.to_string();
        assert!(!message.contains("/secret"), "{message}");
        assert!(message.contains("\"t\" partition 0"), "{message}");
        assert_eq!(broker.kind(), ErrorKind::Internal);
    }

    #[test]
    fn disk_full_is_retryable_and_pathless() {
        let err = StorageError::DiskFull {
            operation: "write segment",
            path: PathBuf::from("/secret/x"),
        };
        let broker = BrokerError::from_storage("t", 3, err);
        assert!(broker.is_retryable());
        assert_eq!(broker.kind(), ErrorKind::Unavailable);
        assert!(!broker.to_string().contains("/secret"));
    }

    #[test]
    fn out_of_range_keeps_the_range() {
        let err = StorageError::OffsetOutOfRange {
            requested: 0,
            log_start: 20,
            log_end: 20,
        };
        match BrokerError::from_storage("t5", 0, err) {
            BrokerError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
                ..
            } => assert_eq!((requested, log_start, log_end), (0, 20, 20)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
