//! Fetch with long-poll, and offset lookups.
//!
//! A fetch reads whole batches from the partition log. If they add up to fewer than
//! `min_bytes`, it waits on the partition's watch channel until an append moves the log end,
//! the partition closes, or `max_wait` passes, re-reading after each wake. The subscription is
//! taken before the first read, so an append between the read and the wait is never missed.
//! A waiting fetch is a parked task holding one watch receiver: no thread, no timer loop, so
//! thousands of idle consumers cost only their task memory. Only appends to the same
//! partition wake it: rejected produces, produces to other partitions and retention do not.
//!
//! Reads run on the blocking pool: they may page in segment data from disk.

use std::time::Duration;

use rivulet_storage::LogRead;
use tokio::time::Instant;
use tracing::instrument;

use crate::broker::{Broker, blocking};
use crate::error::{BrokerError, Result};
use crate::topic::Partition;

/// A fetch request for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    topic: String,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    min_bytes: usize,
    max_wait: Duration,
}

impl FetchRequest {
    /// Reads from `offset` of `topic`/`partition`, up to 1 MiB, without waiting.
    pub fn new(topic: impl Into<String>, partition: u32, offset: u64) -> Self {
        FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait: Duration::ZERO,
        }
    }

    /// Caps the bytes returned. At least one whole batch is always returned when one is
    /// available, even if it is larger, so a consumer can never stall.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Waits up to `max_wait` for at least `min_bytes` of batches (default 1: any data).
    pub fn with_wait(mut self, min_bytes: usize, max_wait: Duration) -> Self {
        self.min_bytes = min_bytes;
        self.max_wait = max_wait;
        self
    }
}

/// The reply to a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchResponse {
    /// The partition.
    pub partition: u32,
    /// First offset still stored, when the reply was made.
    pub log_start_offset: u64,
    /// Offset the next record will get, when the reply was made.
    pub log_end_offset: u64,
    /// Every offset below this is fsynced.
    pub durable_offset: u64,
    /// Whole batches as stored. **The first batch may start before the requested offset**;
    /// [`LogRead::records`] decodes and drops records before it.
    pub read: LogRead,
}

/// Which offset [`Broker::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The first offset still stored.
    Earliest,
    /// The offset the next record will get.
    Latest,
    /// The first offset whose record timestamp is at or after this (ms since the Unix epoch).
    Timestamp(i64),
}

impl Broker {
    /// Reads batches from a partition, waiting (long-poll) as the request asks.
    ///
    /// Data produced with [`crate::Durability::Written`] is served before it is fsynced.
    ///
    /// # Errors
    ///
    /// [`BrokerError::UnknownTopic`] (also if the topic is deleted while waiting),
    /// [`BrokerError::UnknownPartition`], [`BrokerError::OffsetOutOfRange`] with the valid
    /// range, [`BrokerError::Corrupt`] if the first batch to return is damaged.
    #[instrument(skip_all, fields(topic = %request.topic, partition = request.partition, offset = request.offset))]
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse> {
        let _ticket = self.shared.admission.admit(0)?;
        let partition = self.partition(&request.topic, request.partition)?;
        // A wait too long to add to the clock is a wait without end, bounded by the client.
        let now = Instant::now();
        let deadline = now
            .checked_add(request.max_wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let mut signal = partition.subscribe();

        loop {
            let response = read(&partition, request.offset, request.max_bytes).await?;
            if response.read.byte_len() >= request.min_bytes.max(1) || Instant::now() >= deadline {
                return Ok(response);
            }
            // `borrow`, not `borrow_and_update`: an append that landed after the read must
            // still make `changed()` below return at once.
            if signal.borrow().closed {
                return self.closed_reply(&request.topic, response);
            }
            match tokio::time::timeout_at(deadline, signal.changed()).await {
                // Something was appended (or the partition closed): look again.
                Ok(Ok(())) => {}
                // The partition is gone for good.
                Ok(Err(_)) => return self.closed_reply(&request.topic, response),
                Err(_timed_out) => {
                    return read(&partition, request.offset, request.max_bytes).await;
                }
            }
        }
    }

    /// Looks up an offset of a partition. `Earliest` and `Latest` always give `Some`;
    /// `Timestamp` gives `None` when every record is older.
    ///
    /// # Errors
    ///
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`], or a damaged batch on
    /// the timestamp search path.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<Option<u64>> {
        let _ticket = self.shared.admission.admit(0)?;
        let partition = self.partition(topic, partition)?;
        match spec {
            OffsetSpec::Earliest => Ok(Some(partition.log.log_start_offset())),
            OffsetSpec::Latest => Ok(Some(partition.log.log_end_offset())),
            OffsetSpec::Timestamp(ts) => {
                blocking(move || {
                    partition.log.offset_for_timestamp(ts).map_err(|e| {
                        BrokerError::from_storage(&partition.topic, partition.index, e)
                    })
                })
                .await
            }
        }
    }

    /// The reply when a waited-on partition closes: data so far while shutting down, otherwise
    /// the topic was deleted.
    fn closed_reply(&self, topic: &str, response: FetchResponse) -> Result<FetchResponse> {
        if self.shared.topics.read().contains_key(topic) {
            Ok(response)
        } else {
            Err(BrokerError::UnknownTopic {
                topic: topic.to_owned(),
            })
        }
    }
}

async fn read(
    partition: &std::sync::Arc<Partition>,
    offset: u64,
    max_bytes: usize,
) -> Result<FetchResponse> {
    let partition = std::sync::Arc::clone(partition);
    blocking(move || {
        let read = partition
            .log
            .read(offset, max_bytes)
            .map_err(|e| BrokerError::from_storage(&partition.topic, partition.index, e))?;
        Ok(FetchResponse {
            partition: partition.index,
            log_start_offset: read.log_start_offset(),
            log_end_offset: read.log_end_offset(),
            durable_offset: partition.log.durable_offset(),
            read,
        })
    })
    .await
}
