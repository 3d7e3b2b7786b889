//! Consumers of a run: the client library's `Consumer` on assigned partitions, or raw-batch
//! Fetch calls. Owns each consumer's positions and its end-to-end latency histogram (from a
//! record's stamp to the moment it was handed to the consumer).
//!
//! Every loop is bounded by the records expected and the run's deadline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use rivulet_client::{Client, OffsetReset, TopicPartition};
use rivulet_format::BatchHeader;
use rivulet_format::header::verify_crc;
use rivulet_proto::v1;
use tokio::time::Instant;

use crate::options::FetchClient;
use crate::produce::{STAMP_HEADER, raw_log_client};
use crate::stats::{Counters, new_histogram, record};

/// How long one fetch or poll waits for data.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// What every consumer of a run shares.
#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    /// Server address, `host:port`.
    pub address: String,
    /// Topic read.
    pub topic: String,
    /// Which client fetches.
    pub client: FetchClient,
    /// Bytes per fetch.
    pub fetch_bytes: u32,
    /// Mean value size, for the bytes of raw fetches (which do not decode values).
    pub mean_value_size: f64,
    /// Instant that stamps count from.
    pub base: Instant,
    /// Nothing is read after it.
    pub deadline: Instant,
}

/// One consumer's partitions, where each starts, and how many records it expects in all.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// (partition, first offset) pairs.
    pub partitions: Vec<(u32, u64)>,
}

/// Reads the assigned partitions until `expected()` says every record was consumed, or the
/// deadline passes. Returns the end-to-end latency histogram (µs; empty without stamps).
///
/// # Errors
///
/// When the connection cannot be made or a batch fails its CRC check; retryable fetch
/// failures are counted.
pub async fn run_consumer(
    spec: Arc<ConsumeSpec>,
    assignment: Assignment,
    counters: Arc<Counters>,
    done: impl Fn() -> bool,
) -> anyhow::Result<Histogram<u64>> {
    match spec.client {
        FetchClient::Consumer => client_consumer(spec, assignment, counters, done).await,
        FetchClient::Raw => raw_consumer(spec, assignment, counters, done).await,
    }
}

async fn client_consumer(
    spec: Arc<ConsumeSpec>,
    assignment: Assignment,
    counters: Arc<Counters>,
    done: impl Fn() -> bool,
) -> anyhow::Result<Histogram<u64>> {
    let client = Client::connect(&spec.address)
        .await
        .with_context(|| format!("consumer cannot connect to {}", spec.address))?;
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(100_000)
        .fetch_max_bytes(spec.fetch_bytes)
        .build();
    let tps: Vec<_> = assignment
        .partitions
        .iter()
        .map(|&(p, _)| TopicPartition::new(spec.topic.as_str(), p))
        .collect();
    consumer.assign(tps.clone());
    for (tp, &(_, start)) in tps.iter().zip(&assignment.partitions) {
        consumer.seek(tp, start)?;
    }

    let mut hist = new_histogram();
    while !done() && Instant::now() < spec.deadline {
        let records = match consumer.poll(POLL_WAIT).await {
            Ok(records) => records,
            Err(err) if err.is_retryable() => {
                counters
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            Err(err) => return Err(err).context("poll"),
        };
        let now = Instant::now().duration_since(spec.base);
        let mut bytes = 0;
        for rec in &records {
            bytes += rec.value().map_or(0, |v| v.len() as u64);
            let stamp = rec.headers().iter().find(|h| h.key() == STAMP_HEADER);
            let Some(value) = stamp.and_then(|h| h.value()) else {
                continue;
            };
            let Ok(ns) = <[u8; 8]>::try_from(value.as_ref()) else {
                continue;
            };
            record(
                &mut hist,
                now.saturating_sub(Duration::from_nanos(u64::from_le_bytes(ns))),
            );
        }
        counters.add_consumed(records.len() as u64, bytes);
    }
    Ok(hist)
}

async fn raw_consumer(
    spec: Arc<ConsumeSpec>,
    assignment: Assignment,
    counters: Arc<Counters>,
    done: impl Fn() -> bool,
) -> anyhow::Result<Histogram<u64>> {
    let mut log = raw_log_client(&spec.address).await?;
    let mut positions = assignment.partitions.clone();
    let mut next = 0;
    while !done() && Instant::now() < spec.deadline && !positions.is_empty() {
        let (partition, offset) = positions[next];
        let request = v1::FetchRequest {
            topic: spec.topic.clone(),
            partition,
            offset,
            max_bytes: spec.fetch_bytes,
            max_wait_ms: POLL_WAIT.as_millis() as u32,
            min_bytes: 0,
            format: v1::FetchFormat::RawBatches as i32,
        };
        let reply = match log.fetch(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                counters
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                anyhow::ensure!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                    ),
                    "fetch {}/{partition} at {offset}: {status}",
                    spec.topic
                );
                continue;
            }
        };
        let mut records = 0;
        let mut position = offset;
        for batch in &reply.batches {
            let header = BatchHeader::read(batch).context("batch header")?;
            verify_crc(batch, &header).with_context(|| {
                format!(
                    "batch at offset {} of {}/{partition}",
                    header.base_offset, spec.topic
                )
            })?;
            let next_offset = u64::try_from(header.next_offset()).unwrap_or(0);
            records += next_offset.saturating_sub(position.max(header.base_offset as u64));
            position = position.max(next_offset);
        }
        positions[next].1 = position;
        counters.add_consumed(records, (records as f64 * spec.mean_value_size) as u64);
        next = (next + 1) % positions.len();
    }
    Ok(new_histogram())
}
