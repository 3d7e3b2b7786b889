//! [`Producer`]: batches records per partition into Kafka v2 record batches, in the storage
//! format, and sends them with the raw-batch form of Produce so the server stores them as they
//! are.
//!
//! Ownership: [`Producer::send`] checks the record, takes its share of the buffer and picks its
//! partition if it has a key (or an explicit one), then hands it to one background task per
//! producer. That task owns every batch: it opens, fills and closes them, chooses sticky
//! partitions for keyless records, and spawns one request task per batch sent. Request tasks
//! own their batch until it is acknowledged or fails, retrying with backoff, then resolve
//! each record's [`DeliveryFuture`] and release its buffer bytes.
//!
//! Invariants:
//! - Per partition, batches are sent one at a time and in the order they were closed, so
//!   records of one key (and all records sent to one partition) are stored in `send` order,
//!   retries included.
//! - Bytes are counted against the buffer from `send` until the record's batch is resolved;
//!   no more than `max_in_flight` batches are being sent at once.
//! - A batch closes when the next record would take it past `batch_bytes`, when it has been
//!   open for `linger`, on [`Producer::flush`], or when every handle to the producer is dropped.
//! - Keyless records go to one partition per topic until the batch they are in closes, then a
//!   new partition is picked at random.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rivulet_format::{BatchBuilder, TIMESTAMP_RULE, is_valid_timestamp, partition_for_key};
use rivulet_proto::v1;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::Client;
use crate::error::ClientError;
use crate::record::{Offset, ProducerRecord, TopicPartition};
use crate::retry::{Backoff, Rng};

/// How far a produce waits on the server before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once written to the server's page cache: survives a crash of the server
    /// process, not of its machine.
    Written,
    /// Acknowledged once fsynced on the server. The default.
    #[default]
    Durable,
}

/// How the records of each batch are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed. The default.
    #[default]
    None,
    /// LZ4 frames: fast, moderate ratio.
    Lz4,
    /// Zstandard: a better ratio for a little more CPU.
    Zstd,
}

impl Compression {
    fn codec(self) -> rivulet_format::Compression {
        match self {
            Compression::None => rivulet_format::Compression::None,
            Compression::Lz4 => rivulet_format::Compression::Lz4,
            Compression::Zstd => rivulet_format::Compression::Zstd,
        }
    }
}

/// Settings of a [`Producer`], set through [`ProducerBuilder`].
#[derive(Debug, Clone)]
struct ProducerConfig {
    linger: Duration,
    batch_bytes: usize,
    buffer_bytes: usize,
    max_in_flight: usize,
    fail_when_full: bool,
    compression: Compression,
    durability: Durability,
    delivery_timeout: Duration,
    request_timeout: Duration,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_bytes: 64 << 10,
            buffer_bytes: 32 << 20,
            max_in_flight: 5,
            fail_when_full: false,
            compression: Compression::None,
            durability: Durability::Durable,
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Producer`]; start with [`Client::producer`].
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    client: Client,
    config: ProducerConfig,
}

impl ProducerBuilder {
    pub(crate) fn new(client: Client) -> Self {
        ProducerBuilder {
            client,
            config: ProducerConfig::default(),
        }
    }

    /// How long a batch waits for more records before it is sent; default 5 ms. Zero sends
    /// each batch as soon as the background task has taken in what is queued.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Size at which a batch is sent without waiting for `linger`; default 64 KiB. A batch may
    /// pass it by the framing of its last record (a few dozen bytes), so keep it at least 128
    /// bytes below the topic's `max_batch_bytes` (1 MiB + 64 KiB by default). A single record
    /// larger than this is sent in a batch of its own.
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.config.batch_bytes = bytes.max(1);
        self
    }

    /// Bytes of records that may wait in the producer, unsent or unacknowledged; default
    /// 32 MiB. When they are used up, [`Producer::send`] waits, or fails if
    /// [`fail_when_full`](Self::fail_when_full) is set.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.buffer_bytes = bytes.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Batches that may be sent at once, across partitions; default 5. A partition never has
    /// more than one batch in flight, which keeps its records in order across retries.
    pub fn max_in_flight(mut self, batches: usize) -> Self {
        self.config.max_in_flight = batches.max(1);
        self
    }

    /// Makes [`Producer::send`] fail with [`ClientError::BufferFull`] instead of waiting when
    /// the buffer is full.
    pub fn fail_when_full(mut self, fail: bool) -> Self {
        self.config.fail_when_full = fail;
        self
    }

    /// Compression of each batch; default none.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Durability of every produce; default [`Durability::Durable`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// How long a batch may take, retries included, before its records fail; default 120 s.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.config.delivery_timeout = timeout;
        self
    }

    /// Deadline of each Produce call; default 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// First and largest delay between retries; default 100 ms and 5 s. Each delay doubles
    /// the previous one and is jittered into its upper half.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_backoff = initial;
        self.config.retry_backoff_max = max;
        self
    }

    /// Builds the producer and starts its background task.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> Producer {
        let (commands, rx) = mpsc::unbounded_channel();
        let buffer = Arc::new(Semaphore::new(self.config.buffer_bytes));
        let config = Arc::new(self.config);
        tokio::spawn(Accumulator::new(self.client.clone(), config.clone()).run(rx));
        Producer {
            inner: Arc::new(Shared {
                client: self.client,
                config,
                commands,
                buffer,
            }),
        }
    }
}

/// Sends records to Rivulet in batches. Cheap to clone; clones share batches and buffer.
///
/// When every clone is dropped, the records already sent are still delivered and their
/// [`DeliveryFuture`]s resolve; call [`flush`](Producer::flush) first to wait for that.
///
/// ```no_run
/// # async fn run() -> Result<(), rivulet_client::ClientError> {
/// use rivulet_client::{Client, Compression, ProducerRecord};
///
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let producer = client.producer().compression(Compression::Zstd).build();
///
/// let delivery = producer
///     .send(ProducerRecord::new("orders").key("customer-7").value("created"))
///     .await?;
/// let offset = delivery.await?;
/// println!("stored at {}/{} offset {}", offset.topic(), offset.partition(), offset.offset());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    config: Arc<ProducerConfig>,
    commands: mpsc::UnboundedSender<Command>,
    buffer: Arc<Semaphore>,
}

impl Producer {
    /// Queues `record` for sending and returns a future that resolves to where it was stored.
    ///
    /// Waits while the producer's buffer is full (unless built with
    /// [`fail_when_full`](ProducerBuilder::fail_when_full)), and on the first record for a
    /// topic while its partition count is looked up. Records passed to `send` one after the
    /// other are stored in that order within each partition.
    ///
    /// # Errors
    ///
    /// Here: [`ClientError::InvalidArgument`] for a timestamp outside
    /// [`rivulet_format::TIMESTAMP_RULE`], [`ClientError::RecordTooLarge`],
    /// [`ClientError::BufferFull`], an unknown topic
    /// ([`ClientError::NotFound`]) or partition ([`ClientError::UnknownPartition`]), or
    /// [`ClientError::ProducerClosed`]. The returned future fails with the error that stopped
    /// the record's batch once retries are exhausted.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let shared = &self.inner;
        let size = record.approx_size();
        if size > shared.config.buffer_bytes {
            return Err(ClientError::RecordTooLarge {
                topic: record.topic,
                size,
                max: shared.config.buffer_bytes,
            });
        }
        if let Some(timestamp) = record.timestamp_ms
            && !is_valid_timestamp(timestamp)
        {
            return Err(ClientError::InvalidArgument {
                operation: "Produce",
                message: format!(
                    "record for topic {:?} has timestamp {timestamp}, which is out of range: a \
                     timestamp must be {TIMESTAMP_RULE}",
                    record.topic
                ),
            });
        }
        let permit = self.reserve(&record.topic, size).await?;

        let mut partitions = shared.client.partition_count(&record.topic).await?;
        if record.partition.is_some_and(|p| p >= partitions) {
            // The cached count may predate the topic being re-created with more partitions.
            partitions = shared.client.refresh_partition_count(&record.topic).await?;
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p >= partitions => {
                return Err(ClientError::UnknownPartition {
                    topic: record.topic,
                    partition: p,
                    partitions,
                });
            }
            (Some(p), _) => Some(p),
            (None, Some(key)) => Some(partition_for_key(key, partitions)),
            (None, None) => None,
        };

        let (tx, rx) = oneshot::channel();
        let append = Append {
            partition,
            partitions,
            timestamp_ms: record.timestamp_ms.unwrap_or_else(now_ms),
            record,
            delivery: Delivery {
                tx,
                _permit: permit,
            },
        };
        shared
            .commands
            .send(Command::Append(append))
            .map_err(|_| ClientError::ProducerClosed)?;
        Ok(DeliveryFuture { rx })
    }

    /// Sends every open batch now and waits until each record passed to
    /// [`send`](Self::send) before this call is acknowledged or has failed. Failures are
    /// reported through the records' [`DeliveryFuture`]s, not here.
    ///
    /// # Errors
    ///
    /// [`ClientError::ProducerClosed`] if the background task has stopped.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Flush(tx))
            .map_err(|_| ClientError::ProducerClosed)?;
        rx.await.map_err(|_| ClientError::ProducerClosed)
    }

    /// Bytes of records buffered now, unsent or unacknowledged.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.config.buffer_bytes - self.inner.buffer.available_permits()
    }

    async fn reserve(&self, topic: &str, size: usize) -> Result<OwnedSemaphorePermit, ClientError> {
        let buffer = self.inner.buffer.clone();
        // `size` is at most `buffer_bytes`, which is at most `Semaphore::MAX_PERMITS`; records
        // past u32::MAX bytes cannot be encoded anyway.
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        if self.inner.config.fail_when_full {
            buffer
                .try_acquire_many_owned(permits)
                .map_err(|_| ClientError::BufferFull {
                    topic: topic.to_owned(),
                    buffered: self.buffered_bytes(),
                    max: self.inner.config.buffer_bytes,
                })
        } else {
            buffer
                .acquire_many_owned(permits)
                .await
                .map_err(|_| ClientError::ProducerClosed)
        }
    }
}

/// Resolves to where a sent record was stored, or to the error that stopped its batch.
#[derive(Debug)]
#[must_use = "a delivery future tells whether the record was stored"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<Offset, ClientError>>,
}

impl Future for DeliveryFuture {
    type Output = Result<Offset, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(ClientError::ProducerClosed)))
    }
}

/// What [`Producer`] handles tell the background task.
#[derive(Debug)]
enum Command {
    Append(Append),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Append {
    /// The partition, unless the record is keyless and the task picks one.
    partition: Option<u32>,
    /// The topic's partition count when the record was sent.
    partitions: u32,
    timestamp_ms: i64,
    record: ProducerRecord,
    delivery: Delivery,
}

/// One record's way back to its sender; dropping it releases the record's buffer bytes.
#[derive(Debug)]
struct Delivery {
    tx: oneshot::Sender<Result<Offset, ClientError>>,
    _permit: OwnedSemaphorePermit,
}

/// A batch being filled.
#[derive(Debug)]
struct OpenBatch {
    builder: BatchBuilder,
    deliveries: Vec<Delivery>,
    deadline: Instant,
}

/// A closed batch waiting for its turn to be sent.
#[derive(Debug)]
struct ClosedBatch {
    /// The encoded batch, or why it could not be encoded.
    bytes: Result<Bytes, ClientError>,
    deliveries: Vec<Delivery>,
}

/// The batches of one partition.
#[derive(Debug, Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    closed: VecDeque<ClosedBatch>,
    /// A batch of this partition is being sent.
    busy: bool,
    /// Batches closed so far; batch `n` is the `n`th closed.
    closed_count: u64,
    /// Batches resolved so far; they resolve in the order they closed.
    resolved_count: u64,
}

/// A [`Producer::flush`] call waiting for batches to resolve.
#[derive(Debug)]
struct FlushWaiter {
    /// For each partition, the number of its batches that must have resolved.
    targets: Vec<(TopicPartition, u64)>,
    tx: oneshot::Sender<()>,
}

/// The background task's state.
struct Accumulator {
    client: Client,
    config: Arc<ProducerConfig>,
    queues: HashMap<TopicPartition, PartitionQueue>,
    /// The partition keyless records of each topic go to now.
    sticky: HashMap<String, u32>,
    in_flight: usize,
    flushes: Vec<FlushWaiter>,
    rng: Rng,
    done_tx: mpsc::UnboundedSender<TopicPartition>,
    done_rx: mpsc::UnboundedReceiver<TopicPartition>,
}

impl Accumulator {
    fn new(client: Client, config: Arc<ProducerConfig>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Accumulator {
            client,
            config,
            queues: HashMap::new(),
            sticky: HashMap::new(),
            in_flight: 0,
            flushes: Vec::new(),
            rng: Rng::from_clock(),
            done_tx,
            done_rx,
        }
    }

    /// Runs until every producer handle is gone and every batch has resolved.
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut closing = false;
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                command = commands.recv(), if !closing => match command {
                    Some(Command::Append(append)) => self.append(append),
                    Some(Command::Flush(tx)) => self.flush(tx),
                    None => {
                        closing = true;
                        self.close_all();
                    }
                },
                Some(tp) = self.done_rx.recv() => self.resolved(&tp),
                () = sleep_until_some(deadline), if deadline.is_some() => self.close_expired(),
            }
            self.dispatch();
            if closing && self.in_flight == 0 && self.queues.values().all(|q| q.closed.is_empty()) {
                debug!("producer closed; every batch resolved");
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| q.open.as_ref().map(|b| b.deadline))
            .min()
    }

    fn append(&mut self, append: Append) {
        let Append {
            partition,
            partitions,
            timestamp_ms,
            record,
            delivery,
        } = append;
        let partition = match partition {
            Some(p) => p,
            None => self.sticky_partition(&record.topic, partitions),
        };
        let tp = TopicPartition::new(record.topic.clone(), partition);
        let size = record.approx_size();
        let (batch_bytes, linger, codec) = (
            self.config.batch_bytes,
            self.config.linger,
            self.config.compression.codec(),
        );

        let queue = self.queues.entry(tp.clone()).or_default();
        // A batch stores timestamps as 64-bit differences from its first: a record at
        // i64::MAX cannot join one that starts at -1 (no timestamp), so it starts a new one.
        let full = queue.open.as_ref().is_some_and(|b| {
            b.builder.estimated_size() + size > batch_bytes
                || !b.builder.accepts_timestamp(timestamp_ms)
        });
        if full {
            self.close(&tp);
        }
        let queue = self.queues.entry(tp.clone()).or_default();
        let open = queue.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(codec),
            deliveries: Vec::new(),
            deadline: Instant::now() + linger,
        });

        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|h| (h.key(), h.value().map(|v| &v[..])))
            .collect();
        open.builder.push(
            timestamp_ms,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        );
        open.deliveries.push(delivery);
        if open.builder.estimated_size() >= batch_bytes {
            self.close(&tp);
        }
    }

    /// The partition for a keyless record of `topic`: the current sticky one, or a new one.
    fn sticky_partition(&mut self, topic: &str, partitions: u32) -> u32 {
        if let Some(&p) = self.sticky.get(topic)
            && p < partitions
        {
            return p;
        }
        let p = self.rng.below(partitions);
        self.sticky.insert(topic.to_owned(), p);
        p
    }

    /// Closes the open batch of `tp`, if any: encodes it and queues it for sending.
    fn close(&mut self, tp: &TopicPartition) {
        let Some(queue) = self.queues.get_mut(tp) else {
            return;
        };
        let Some(open) = queue.open.take() else {
            return;
        };
        let bytes =
            open.builder
                .build()
                .map(|b| b.freeze())
                .map_err(|source| ClientError::Encode {
                    topic: tp.topic().to_owned(),
                    partition: tp.partition(),
                    source,
                });
        queue.closed.push_back(ClosedBatch {
            bytes,
            deliveries: open.deliveries,
        });
        queue.closed_count += 1;

        // Keyless records move on once the batch they filled is closed.
        if self.sticky.get(tp.topic()) == Some(&tp.partition()) {
            self.sticky.remove(tp.topic());
        }
    }

    fn close_all(&mut self) {
        let open: Vec<_> = self
            .queues
            .iter()
            .filter(|(_, q)| q.open.is_some())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in open {
            self.close(&tp);
        }
    }

    fn close_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .queues
            .iter()
            .filter(|(_, q)| q.open.as_ref().is_some_and(|b| b.deadline <= now))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in expired {
            self.close(&tp);
        }
    }

    fn flush(&mut self, tx: oneshot::Sender<()>) {
        self.close_all();
        let targets = self
            .queues
            .iter()
            .filter(|(_, q)| q.resolved_count < q.closed_count)
            .map(|(tp, q)| (tp.clone(), q.closed_count))
            .collect();
        self.flushes.push(FlushWaiter { targets, tx });
        self.wake_flushes();
    }

    fn resolved(&mut self, tp: &TopicPartition) {
        self.in_flight -= 1;
        if let Some(queue) = self.queues.get_mut(tp) {
            queue.busy = false;
            queue.resolved_count += 1;
        }
        self.wake_flushes();
    }

    fn wake_flushes(&mut self) {
        let queues = &self.queues;
        let done = |waiter: &FlushWaiter| {
            waiter
                .targets
                .iter()
                .all(|(tp, target)| queues.get(tp).is_none_or(|q| q.resolved_count >= *target))
        };
        let (ready, waiting): (Vec<_>, Vec<_>) = self.flushes.drain(..).partition(|w| done(w));
        self.flushes = waiting;
        for waiter in ready {
            // The caller may have stopped waiting; nothing to do then.
            let _ = waiter.tx.send(());
        }
    }

    /// Starts sending the next closed batch of every idle partition, within `max_in_flight`.
    fn dispatch(&mut self) {
        for (tp, queue) in &mut self.queues {
            if self.in_flight >= self.config.max_in_flight {
                return;
            }
            if queue.busy {
                continue;
            }
            let Some(batch) = queue.closed.pop_front() else {
                continue;
            };
            queue.busy = true;
            self.in_flight += 1;
            let request = BatchRequest {
                client: self.client.clone(),
                config: self.config.clone(),
                tp: tp.clone(),
                rng: Rng::seeded(self.rng.next_u64()),
            };
            let done = DoneSignal {
                tp: tp.clone(),
                tx: self.done_tx.clone(),
            };
            tokio::spawn(async move {
                request.deliver(batch).await;
                drop(done);
            });
        }
    }
}

/// Tells the background task a batch has resolved, even if its request task panicked.
struct DoneSignal {
    tp: TopicPartition,
    tx: mpsc::UnboundedSender<TopicPartition>,
}

impl Drop for DoneSignal {
    fn drop(&mut self) {
        // The background task only stops once nothing is in flight, so it is still listening.
        let _ = self.tx.send(self.tp.clone());
    }
}

/// Sending one batch, with its retries.
struct BatchRequest {
    client: Client,
    config: Arc<ProducerConfig>,
    tp: TopicPartition,
    rng: Rng,
}

impl BatchRequest {
    /// Sends `batch` and resolves every record in it.
    async fn deliver(self, batch: ClosedBatch) {
        let result = match batch.bytes {
            Ok(bytes) => self.send(bytes).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(base_offset) => {
                for (i, delivery) in batch.deliveries.into_iter().enumerate() {
                    let offset =
                        Offset::new(self.tp.topic(), self.tp.partition(), base_offset + i as u64);
                    let _ = delivery.tx.send(Ok(offset));
                }
            }
            Err(err) => {
                // Every record's delivery carries the error to the caller; a warning here would
                // only say it twice.
                debug!(
                    topic = self.tp.topic(),
                    partition = self.tp.partition(),
                    records = batch.deliveries.len(),
                    error = %err,
                    "batch failed"
                );
                for delivery in batch.deliveries {
                    let _ = delivery.tx.send(Err(err.clone()));
                }
            }
        }
    }

    /// Produces `bytes` until it is acknowledged, it fails for good, or the delivery timeout
    /// passes; returns the base offset.
    async fn send(&self, bytes: Bytes) -> Result<u64, ClientError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(
            self.config.retry_backoff,
            self.config.retry_backoff_max,
            self.rng.clone(),
        );
        let durability = match self.config.durability {
            Durability::Written => v1::Durability::Written,
            Durability::Durable => v1::Durability::Durable,
        };
        loop {
            let produce = v1::ProduceRequest {
                topic: self.tp.topic().to_owned(),
                partition: Some(self.tp.partition()),
                durability: durability as i32,
                payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
                    batches: vec![bytes.clone()],
                })),
            };
            let mut request = tonic::Request::new(produce);
            request.set_timeout(self.config.request_timeout);

            let err = match self.client.log().produce(request).await {
                Ok(reply) => return self.base_offset(reply.into_inner()),
                Err(status) => ClientError::from_status("Produce", &status),
            };
            if !self.should_retry(&err).await {
                return Err(err);
            }
            let delay = backoff.next_delay(err.retry_after());
            if started.elapsed() + delay > self.config.delivery_timeout {
                return Err(err);
            }
            warn!(
                topic = self.tp.topic(),
                partition = self.tp.partition(),
                attempt = backoff.attempts(),
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "produce failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Whether `err` is worth a retry. An unknown partition refreshes the topic's metadata
    /// and is retried only if the partition exists after all.
    async fn should_retry(&self, err: &ClientError) -> bool {
        if err.is_retryable() {
            return true;
        }
        if !matches!(err, ClientError::NotFound { .. }) {
            return false;
        }
        self.client.forget_topic(self.tp.topic());
        match self.client.refresh_partition_count(self.tp.topic()).await {
            Ok(count) => self.tp.partition() < count,
            Err(_) => false,
        }
    }

    fn base_offset(&self, reply: v1::ProduceResponse) -> Result<u64, ClientError> {
        let Some(ack) = reply.batches.first() else {
            return Err(ClientError::Server {
                operation: "Produce",
                code: tonic::Code::Internal,
                message: "the reply acknowledged no batch".to_owned(),
            });
        };
        debug!(
            topic = self.tp.topic(),
            partition = ack.partition,
            offset = ack.base_offset,
            last_offset = ack.last_offset,
            "batch acknowledged"
        );
        Ok(ack.base_offset)
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
