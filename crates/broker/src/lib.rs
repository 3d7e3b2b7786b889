//! Rivulet's broker: the whole single-node event log without networking. A gRPC server is a
//! thin layer over [`Broker`]: every RPC maps to one method, and every [`BrokerError`] to one
//! status code through [`BrokerError::kind`].
//!
//! What the broker adds to the storage engine (`rivulet-storage`, one log per partition):
//! topics with per-topic settings and durable metadata, Kafka-compatible partitioning,
//! produce with per-request durability and group commit, long-poll fetch, offset lookups,
//! consumer-group committed offsets in an internal compacted log, a bound on produce bytes in
//! flight, and clean shutdown. `docs/broker.md` explains the design.
//!
//! Module map:
//! - `broker`: [`Broker`], the data directory, topic creation and deletion, start-up,
//!   background syncing and retention, shutdown.
//! - `produce`: [`ProduceRequest`], size checks, partition choice, appends.
//! - `fetch`: [`FetchRequest`], long-poll, [`OffsetSpec`] lookups.
//! - `groups`: the consumer-group API; `group_offsets`: the offsets log and its compaction;
//!   `offsets_replay`: rebuilding committed offsets at start, stepping over damage;
//!   `membership`: group members, partition assignment and hand-over, fencing;
//!   `group_coordinator`: the broker's heartbeat and leave API over `membership`.
//! - `topic`: a live topic, its partitions and the signal that wakes waiting fetches.
//! - `topic_name`: the naming and collision rules.
//! - `metadata`: the topic metadata file.
//! - `admission`: the in-flight bound and the shutdown drain.
//! - `config`, `error`: settings and the error type.
//!
//! ```
//! use rivulet_broker::{Broker, BrokerConfig, FetchRequest, ProduceRecord, ProduceRequest, TopicConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(BrokerConfig::new(dir.path())).await?;
//! broker.create_topic("events", 3, TopicConfig::default()).await?;
//!
//! let reply = broker
//!     .produce(ProduceRequest::records("events", vec![ProduceRecord::keyed("user-1", "hello")]))
//!     .await?;
//! let partition = reply.appended[0].partition;
//!
//! let fetched = broker.fetch(FetchRequest::new("events", partition, 0)).await?;
//! assert_eq!(fetched.read.records()?[0].value.as_deref(), Some(&b"hello"[..]));
//! broker.shutdown().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admission;
mod broker;
mod config;
mod error;
mod fetch;
mod group_coordinator;
mod group_offsets;
mod groups;
mod membership;
mod metadata;
mod offsets_replay;
mod produce;
mod topic;
mod topic_name;

pub use broker::{Broker, BrokerMetrics, PartitionDescription, TopicDescription};
pub use config::{
    BATCH_FRAMING, BATCH_HEADROOM, BrokerConfig, DEFAULT_MAX_RECORD_BYTES, Durability,
    DurabilityPolicy, MIN_NEW_BATCH_BYTES, TopicConfig,
};
pub use error::{BrokerError, ErrorKind, Result};
pub use fetch::{FetchRequest, FetchResponse, OffsetSpec};
pub use group_coordinator::{MAX_MEMBER_ID_BYTES, MAX_SUBSCRIBED_TOPICS};
pub use group_offsets::{
    CommittedOffset, MAX_COMMIT_METADATA_BYTES, MAX_GROUP_NAME_BYTES, OffsetCommit,
};
pub use groups::{Committer, PartitionLag};
pub use membership::{
    Assignment, AssignmentStrategy, DEFAULT_REBALANCE_TIMEOUT, DEFAULT_SESSION_TIMEOUT,
    GroupMembers, GroupMembership, Heartbeat, MemberDescription, MembershipError,
    MembershipTimeouts, TopicPartition, assign,
};
pub use produce::{Appended, ProduceRecord, ProduceRequest, ProduceResponse};
pub use rivulet_storage::LogRead;
pub use topic_name::{INTERNAL_TOPIC_PREFIX, MAX_TOPIC_NAME_LEN};
