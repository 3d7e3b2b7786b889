//! Produce: admitting a request, checking sizes, choosing partitions, encoding records,
//! appending, and syncing for durable requests.
//!
//! Order of work, so that nothing is stored for a request that breaks a rule:
//! 1. admission (the in-flight byte bound) — refused with `Busy`, never queued;
//! 2. topic and partition lookup, the empty-request check, per-record size checks against the
//!    topic's `max_record_bytes`, the timestamp rule (`rivulet_format::TIMESTAMP_RULE`), and
//!    (for raw batches) batch validation, all in one walk over a raw batch's records;
//! 3. one batch per target partition, checked against `max_batch_bytes`;
//! 4. the append on the blocking pool, then, for durable requests, `flush_to` the batch's end,
//!    which shares one fsync among concurrent durable appends to the partition.
//!
//! Waiting fetches are woken right after the append, before the fsync.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use rivulet_format::{
    BatchBuilder, BatchLimits, CheckedBatch, Compression, FormatError, TIMESTAMP_RULE,
    check_produced_batch, is_valid_timestamp,
};
use tracing::{debug, instrument};

use crate::broker::{Broker, Counters, join_failed, now_ms};
use crate::config::{Durability, DurabilityPolicy};
use crate::error::{BrokerError, Result};
use crate::topic::{Partition, Topic};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProduceRecord {
    /// The key; `None` is a null key, distinct from an empty key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value.
    pub value: Option<Bytes>,
    /// Application headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the Unix epoch; `None` means now. It must follow
    /// [`rivulet_format::TIMESTAMP_RULE`]: -1 (no timestamp) or 0 to `i64::MAX`.
    pub timestamp: Option<i64>,
}

impl ProduceRecord {
    /// A record with this key and value, no headers, timestamped when produced.
    pub fn new(key: Option<impl Into<Bytes>>, value: Option<impl Into<Bytes>>) -> Self {
        ProduceRecord {
            key: key.map(Into::into),
            value: value.map(Into::into),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A record with a null key.
    pub fn value(value: impl Into<Bytes>) -> Self {
        ProduceRecord::new(None::<Bytes>, Some(value))
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        ProduceRecord::new(Some(key), Some(value))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// Sets the create time.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// The size checked against `max_record_bytes`: key, value, header names and values.
    pub fn size(&self) -> usize {
        record_size(
            self.key.as_deref(),
            self.value.as_deref(),
            self.headers
                .iter()
                .map(|(name, value)| name.len() + value.as_ref().map_or(0, Bytes::len)),
        )
    }
}

#[derive(Debug, Clone)]
enum Payload {
    Records(Vec<ProduceRecord>),
    Batches(Vec<BytesMut>),
}

/// A produce request: records for a topic, or one raw batch for a partition.
#[derive(Debug, Clone)]
pub struct ProduceRequest {
    topic: String,
    partition: Option<u32>,
    payload: Payload,
    durability: Durability,
}

impl ProduceRequest {
    /// Structured records for `topic`. Without [`ProduceRequest::to_partition`], each keyed
    /// record goes to `murmur2(key) % partitions` and the request's keyless records all go to
    /// one partition, chosen so keyless records spread evenly over the partitions.
    pub fn records(topic: impl Into<String>, records: Vec<ProduceRecord>) -> Self {
        ProduceRequest {
            topic: topic.into(),
            partition: None,
            payload: Payload::Records(records),
            durability: Durability::default(),
        }
    }

    /// One raw Kafka v2 record batch for `partition` of `topic`. It is validated (CRC included)
    /// and its base offset is assigned by the log.
    pub fn batch(topic: impl Into<String>, partition: u32, batch: BytesMut) -> Self {
        ProduceRequest {
            topic: topic.into(),
            partition: Some(partition),
            payload: Payload::Batches(vec![batch]),
            durability: Durability::default(),
        }
    }

    /// Raw Kafka v2 record batches for `partition` of `topic`, appended in order. Every batch
    /// is validated before any is stored, so one bad batch refuses the whole request.
    pub fn batches(topic: impl Into<String>, partition: u32, batches: Vec<BytesMut>) -> Self {
        ProduceRequest {
            topic: topic.into(),
            partition: Some(partition),
            payload: Payload::Batches(batches),
            durability: Durability::default(),
        }
    }

    /// Sends every record to `partition`, overriding keys.
    pub fn to_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets how far the request waits before it is acknowledged (default
    /// [`Durability::Durable`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Bytes counted against the in-flight bound.
    fn byte_size(&self) -> u64 {
        match &self.payload {
            Payload::Batches(batches) => batches.iter().map(|b| b.len() as u64).sum(),
            // Each record costs its data plus roughly the varints around it.
            Payload::Records(records) => records.iter().map(|r| r.size() as u64 + 16).sum(),
        }
    }
}

/// Where one partition's share of a produce request landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// The partition.
    pub partition: u32,
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
    /// Every offset below this is fsynced (at least `last_offset + 1` for durable requests).
    pub durable_offset: u64,
}

/// The reply to a produce request: one entry per partition written, by partition number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProduceResponse {
    /// Per-partition results.
    pub appended: Vec<Appended>,
}

impl ProduceResponse {
    /// The base offset of the first partition's batch: the request's only one when it named a
    /// partition.
    pub fn base_offset(&self) -> u64 {
        self.appended.first().map_or(0, |a| a.base_offset)
    }

    /// The lowest durable offset among the partitions written.
    pub fn durable_offset(&self) -> u64 {
        self.appended
            .iter()
            .map(|a| a.durable_offset)
            .min()
            .unwrap_or(0)
    }
}

impl Broker {
    /// Appends records to a topic.
    ///
    /// A request whose records go to several partitions (keyed records without
    /// [`ProduceRequest::to_partition`]) is appended to them in parallel, one batch each.
    /// TODO(broker): such a request is not atomic across partitions; if one partition's append
    /// fails, the error is returned and the other partitions' batches stay stored.
    ///
    /// # Errors
    ///
    /// - [`BrokerError::Busy`] (retryable) when too many produce bytes are in flight;
    /// - [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`];
    /// - [`BrokerError::EmptyBatch`], [`BrokerError::RecordTooLarge`],
    ///   [`BrokerError::BatchTooLarge`], [`BrokerError::InvalidBatch`] (raw batches, including
    ///   timestamps outside [`rivulet_format::TIMESTAMP_RULE`]), [`BrokerError::InvalidArgument`]
    ///   (a record's timestamp outside that rule): nothing was stored;
    /// - [`BrokerError::DiskFull`] (retryable): nothing was stored;
    /// - [`BrokerError::ShuttingDown`], or an internal storage failure.
    #[instrument(skip_all, fields(topic = %request.topic, partition = ?request.partition))]
    pub async fn produce(&self, request: ProduceRequest) -> Result<ProduceResponse> {
        let _ticket = match self.shared.admission.admit(request.byte_size()) {
            Ok(ticket) => ticket,
            Err(err) => {
                if matches!(err, BrokerError::Busy { .. }) {
                    self.shared
                        .metrics
                        .busy_rejections
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Err(err);
            }
        };
        let topic = self.topic(&request.topic)?;
        if let Some(partition) = request.partition {
            self.partition(&request.topic, partition)?;
        }
        let durability = match topic.config.durability {
            DurabilityPolicy::AlwaysDurable => Durability::Durable,
            _ => request.durability,
        };

        let batches = match request.payload {
            Payload::Batches(batches) => {
                let partition = request.partition.unwrap_or(0);
                if batches.is_empty() {
                    return Err(BrokerError::EmptyBatch {
                        topic: topic.name.to_string(),
                    });
                }
                // All checked before any is appended: bad input stores nothing.
                let checked = batches
                    .into_iter()
                    .map(|batch| check_raw_batch(&topic, partition, batch).map(Batch::Checked))
                    .collect::<Result<Vec<_>>>()?;
                vec![(partition, checked)]
            }
            Payload::Records(records) => encode_records(&topic, request.partition, &records)?
                .into_iter()
                .map(|(partition, batch)| (partition, vec![Batch::Encoded(batch)]))
                .collect(),
        };

        let mut running = Vec::with_capacity(batches.len());
        for (partition, batches) in batches {
            let partition = Arc::clone(&topic.partitions[partition as usize]);
            let shared = Arc::clone(&self.shared);
            // Spawned now, not when awaited, so partitions are appended in parallel.
            running.push(tokio::task::spawn_blocking(move || {
                append_all(&partition, batches, durability, &shared.metrics)
            }));
        }
        let mut appended = Vec::with_capacity(running.len());
        for task in running {
            appended.extend(task.await.map_err(join_failed)??);
        }
        Ok(ProduceResponse { appended })
    }
}

/// A batch ready to append.
enum Batch {
    /// Built by the broker from structured records; the log checks it as it appends.
    Encoded(BytesMut),
    /// Sent raw and checked whole by `check_raw_batch`; the log does not check it again.
    Checked(CheckedBatch),
}

/// Appends batches to one partition in order and, for durable requests, waits for one fsync
/// covering them all. Blocking.
fn append_all(
    partition: &Partition,
    batches: Vec<Batch>,
    durability: Durability,
    metrics: &Counters,
) -> Result<Vec<Appended>> {
    let storage = |e| BrokerError::from_storage(&partition.topic, partition.index, e);
    let mut appended = Vec::with_capacity(batches.len());
    let mut end = 0;
    for batch in batches {
        let (bytes, info) = match batch {
            Batch::Encoded(mut batch) => (batch.len(), partition.log.append(&mut batch)),
            Batch::Checked(mut batch) => (
                batch.as_bytes().len(),
                partition.log.append_checked(&mut batch),
            ),
        };
        let bytes = bytes as u64;
        let info = info.map_err(storage)?;
        end = info.last_offset + 1;
        partition.note_appended(end);
        metrics
            .records_appended
            .fetch_add(end - info.base_offset, Ordering::Relaxed);
        metrics.bytes_appended.fetch_add(bytes, Ordering::Relaxed);
        appended.push(Appended {
            partition: partition.index,
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            durable_offset: 0,
        });
    }

    let durable_offset = match durability {
        Durability::Written => partition.log.durable_offset(),
        Durability::Durable => {
            let durable = partition.log.flush_to(end).map_err(storage)?;
            if partition.note_durable(durable) {
                metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            durable
        }
    };
    for ack in &mut appended {
        ack.durable_offset = durable_offset;
        debug!(
            topic = %partition.topic,
            partition = partition.index,
            base_offset = ack.base_offset,
            last_offset = ack.last_offset,
            durable_offset,
            "appended"
        );
    }
    Ok(appended)
}

/// Validates a raw batch against the topic's limits before anything is stored: the header and
/// CRC, then one walk over the records, without copying the batch, for their framing,
/// timestamps and sizes.
fn check_raw_batch(topic: &Topic, partition: u32, batch: BytesMut) -> Result<CheckedBatch> {
    let config = &topic.config;
    if batch.len() > config.max_batch_bytes as usize {
        return Err(BrokerError::BatchTooLarge {
            topic: topic.name.to_string(),
            partition,
            size: batch.len(),
            max: config.max_batch_bytes,
        });
    }
    let limits = BatchLimits {
        max_batch_bytes: config.max_batch_bytes as usize,
    };
    let checked = match check_produced_batch(batch, &limits, config.max_record_bytes as usize) {
        Ok(checked) => checked,
        Err(FormatError::RecordTooLarge { index, size, .. }) => {
            return Err(BrokerError::RecordTooLarge {
                topic: topic.name.to_string(),
                index,
                size,
                max: config.max_record_bytes,
            });
        }
        Err(reason) => {
            return Err(BrokerError::InvalidBatch {
                topic: topic.name.to_string(),
                partition,
                reason,
            });
        }
    };
    let header = checked.header();
    if header.record_count <= 0 {
        return Err(BrokerError::EmptyBatch {
            topic: topic.name.to_string(),
        });
    }
    // Transaction markers and transactional data need a transaction coordinator, which Rivulet
    // does not have: stored, they would be served as ordinary records.
    if header.is_control() || header.is_transactional() {
        return Err(BrokerError::InvalidArgument(format!(
            "record batch for topic {:?} partition {partition} has the {} attribute bit set; \
             transactions are not supported, so produce batches with attributes bits 4 and 5 \
             clear; nothing was stored",
            topic.name,
            if header.is_control() {
                "control (0x20)"
            } else {
                "transactional (0x10)"
            }
        )));
    }
    Ok(checked)
}

/// Checks sizes, picks partitions and encodes one batch per partition.
fn encode_records(
    topic: &Topic,
    explicit: Option<u32>,
    records: &[ProduceRecord],
) -> Result<Vec<(u32, BytesMut)>> {
    if records.is_empty() {
        return Err(BrokerError::EmptyBatch {
            topic: topic.name.to_string(),
        });
    }
    let now = now_ms();
    for (index, record) in records.iter().enumerate() {
        check_record_size(topic, index, record.size())?;
        check_timestamp(topic, index, record.timestamp.unwrap_or(now))?;
    }

    let keyless = records.iter().filter(|r| r.key.is_none()).count() as u64;
    let keyless_partition = match explicit {
        None if keyless > 0 => Some(topic.pick_keyless(keyless)),
        _ => None,
    };
    let mut by_partition: BTreeMap<u32, Vec<(usize, &ProduceRecord)>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let partition = match (explicit, &record.key, keyless_partition) {
            (Some(p), _, _) => p,
            (None, Some(key), _) => topic.partition_for_key(key),
            (None, None, Some(p)) => p,
            (None, None, None) => 0,
        };
        by_partition
            .entry(partition)
            .or_default()
            .push((index, record));
    }

    let mut batches = Vec::with_capacity(by_partition.len());
    for (partition, records) in by_partition {
        let mut builder = BatchBuilder::new(Compression::None);
        for (index, record) in records {
            let timestamp = record.timestamp.unwrap_or(now);
            if !builder.accepts_timestamp(timestamp) {
                return Err(BrokerError::InvalidArgument(format!(
                    "record {index} for topic {:?} has timestamp {timestamp}, more than \
                     9223372036854775807 ms after the first timestamp of the request's records \
                     for partition {partition}: one batch cannot hold both (it stores each \
                     timestamp as a 64-bit difference from its first); send it in another \
                     request; nothing was stored",
                    topic.name
                )));
            }
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_deref()))
                .collect();
            builder.push(
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            );
        }
        let batch = builder
            .build()
            .map_err(|reason| BrokerError::InvalidBatch {
                topic: topic.name.to_string(),
                partition,
                reason,
            })?;
        if batch.len() > topic.config.max_batch_bytes as usize {
            return Err(BrokerError::BatchTooLarge {
                topic: topic.name.to_string(),
                partition,
                size: batch.len(),
                max: topic.config.max_batch_bytes,
            });
        }
        batches.push((partition, batch));
    }
    Ok(batches)
}

/// Refuses a record timestamp outside [`TIMESTAMP_RULE`] before it reaches a batch.
fn check_timestamp(topic: &Topic, index: usize, timestamp: i64) -> Result<()> {
    if is_valid_timestamp(timestamp) {
        return Ok(());
    }
    Err(BrokerError::InvalidArgument(format!(
        "record {index} for topic {:?} has timestamp {timestamp}, which is out of range: a \
         timestamp must be {TIMESTAMP_RULE}; nothing was stored",
        topic.name
    )))
}

fn check_record_size(topic: &Topic, index: usize, size: usize) -> Result<()> {
    let max = topic.config.max_record_bytes;
    if size > max as usize {
        return Err(BrokerError::RecordTooLarge {
            topic: topic.name.to_string(),
            index,
            size,
            max,
        });
    }
    Ok(())
}

fn record_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl Iterator<Item = usize>,
) -> usize {
    key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + headers.sum::<usize>()
}
