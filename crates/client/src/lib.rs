//! Rivulet's Rust client: a batching [`Producer`], a [`Consumer`] that commits a group's
//! offsets, and an [`Admin`] handle, all built from one [`Client`] connection.
//!
//! The producer encodes records into Kafka v2 record batches itself, in the exact format the
//! server stores, and sends them with the raw-batch form of Produce, so the server validates
//! and appends them without re-encoding. It places keyed records on `murmur2(key) %
//! partitions` like the server and Kafka do. The consumer fetches stored batches as they are
//! and checks and decodes them here. Neither exposes the generated protobuf types: records,
//! offsets and groups are this crate's own [`Record`], [`ProducerRecord`], [`Offset`] and
//! [`ConsumerGroup`].
//!
//! Module map:
//! - `client`: [`Client`], the shared connection and the topic metadata cache.
//! - `producer`: [`Producer`], batching per partition, buffering, retries with backoff.
//! - `consumer`: [`Consumer`], positions, fetch and decode, commits, seeks, pause and resume.
//! - `group_member`: a subscribed consumer's group membership: heartbeats and leaving.
//! - `admin`: [`Admin`], topics and groups.
//! - `record`: the record and position types.
//! - `error`: [`ClientError`] and the mapping from gRPC statuses.
//! - `retry`: backoff with jitter.
//!
//! ```no_run
//! # async fn run() -> Result<(), rivulet_client::ClientError> {
//! use std::time::Duration;
//! use rivulet_client::{Client, NewTopic, OffsetReset, ProducerRecord};
//!
//! let client = Client::connect("127.0.0.1:7070").await?;
//! client.admin().create_topic(NewTopic::new("events", 3)).await?;
//!
//! let producer = client.producer().build();
//! let delivery = producer
//!     .send(ProducerRecord::new("events").key("user-1").value("signed up"))
//!     .await?;
//! let stored = delivery.await?;
//!
//! let mut consumer = client
//!     .consumer()
//!     .group("audit")
//!     .offset_reset(OffsetReset::Earliest)
//!     .build();
//! consumer.subscribe(["events"]).await?;
//! let records = consumer.poll(Duration::from_secs(1)).await?;
//! assert!(records.iter().any(|r| r.position() == stored));
//! consumer.commit().await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod client;
mod consumer;
mod error;
mod group_member;
mod producer;
mod record;
mod retry;

pub use admin::{
    Admin, ConsumerGroup, DurabilityPolicy, GroupMember, GroupPartition, NewTopic,
    PartitionDescription, TopicDescription, TopicSummary,
};
pub use client::Client;
pub use consumer::{CommitHandle, Consumer, ConsumerBuilder, OffsetReset};
pub use error::ClientError;
pub use group_member::{AssignmentStrategy, RebalanceEvent};
pub use producer::{Compression, DeliveryFuture, Durability, Producer, ProducerBuilder};
pub use record::{Header, Offset, ProducerRecord, Record, TopicPartition};
