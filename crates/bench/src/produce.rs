//! Producers of a run: the client library's `Producer`, or raw batches built here. Owns the
//! send schedule (by intended time when a rate is set), the stamp each record carries for
//! end-to-end latency, and the acknowledgement latency histogram of each producer.
//!
//! Every loop is bounded by its record quota and the run's deadline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use rivulet_client::{Client, DeliveryFuture, Durability, ProducerRecord};
use rivulet_format::{BatchBuilder, Compression};
use rivulet_proto::v1;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::options::{DurabilityMode, ProduceClient};
use crate::payload::Payloads;
use crate::stats::{Counters, new_histogram, record};

/// Header key of the stamp: 8 bytes, little-endian nanoseconds from the run's base instant
/// to the record's intended send time.
pub const STAMP_HEADER: &str = "t";

/// Bytes of record framing, besides the value, the raw producer assumes per record when it
/// sizes a batch.
const RECORD_OVERHEAD: usize = 12;

/// What every producer of a run shares.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    /// Server address, `host:port`.
    pub address: String,
    /// Topic produced to.
    pub topic: String,
    /// Its partitions.
    pub partitions: u32,
    /// Which client sends.
    pub client: ProduceClient,
    /// Durability asked for.
    pub durability: DurabilityMode,
    /// Batch size bound.
    pub batch_bytes: usize,
    /// Client producer linger.
    pub linger: Duration,
    /// Raw producer requests in flight.
    pub in_flight: usize,
    /// Record values.
    pub payloads: Arc<Payloads>,
    /// Seconds between this producer's records, when a rate is set.
    pub interval: Option<Duration>,
    /// Whether records carry a stamp header.
    pub stamp: bool,
    /// Instant that stamps count from.
    pub base: Instant,
    /// No record is sent after it.
    pub deadline: Instant,
}

/// Runs one producer that sends up to `quota` records; returns its acknowledgement latency
/// histogram (from each record's intended send time, in µs).
///
/// # Errors
///
/// When the connection cannot be made; failed produces are counted, not returned.
pub async fn run_producer(
    spec: Arc<ProduceSpec>,
    index: u32,
    quota: u64,
    counters: Arc<Counters>,
) -> anyhow::Result<Histogram<u64>> {
    match spec.client {
        ProduceClient::Producer => client_producer(spec, index, quota, counters).await,
        ProduceClient::Raw => raw_producer(spec, index, quota, counters).await,
    }
}

/// The stamp of a record meant to be sent at `intended`.
fn stamp(base: Instant, intended: Instant) -> [u8; 8] {
    let ns = u64::try_from(intended.duration_since(base).as_nanos()).unwrap_or(u64::MAX);
    ns.to_le_bytes()
}

/// Below this much time to wait, [`pace`] sleeps on a blocking-pool thread, whose timer is
/// precise to tens of microseconds, rather than on tokio's, which rounds up to the next
/// millisecond and would count its own lateness as the server's latency.
const PRECISE_SLEEP_BELOW: Duration = Duration::from_millis(2);

/// When record `i` is meant to be sent: on the schedule if a rate is set, else now. Waits
/// until then.
async fn pace(start: Instant, interval: Option<Duration>, i: u64) -> Instant {
    let Some(interval) = interval else {
        return Instant::now();
    };
    let intended = start + interval.mul_f64(i as f64);
    let coarse_until = intended.checked_sub(PRECISE_SLEEP_BELOW);
    if let Some(until) = coarse_until.filter(|&until| until > Instant::now()) {
        tokio::time::sleep_until(until).await;
    }
    let rest = intended.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        // A failed join only loses precision; the schedule still holds.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
    intended
}

async fn client_producer(
    spec: Arc<ProduceSpec>,
    index: u32,
    quota: u64,
    counters: Arc<Counters>,
) -> anyhow::Result<Histogram<u64>> {
    let client = Client::connect(&spec.address)
        .await
        .with_context(|| format!("producer {index} cannot connect to {}", spec.address))?;
    let durability = match spec.durability {
        DurabilityMode::Written => Durability::Written,
        DurabilityMode::Durable => Durability::Durable,
    };
    let producer = client
        .producer()
        .durability(durability)
        .batch_bytes(spec.batch_bytes)
        .linger(spec.linger)
        .buffer_bytes((64 << 20).max(spec.batch_bytes * 8))
        .max_in_flight(spec.partitions.max(1) as usize)
        .build();

    // Acknowledgements are awaited in send order by a task of their own, so the sender never
    // waits on them; a record's latency is taken when its future is seen resolved.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<(Instant, DeliveryFuture, u64)>();
    let acker = tokio::spawn(collect_acks(ack_rx, counters.clone()));

    let start = Instant::now();
    let offset = u64::from(index) * quota;
    for i in 0..quota {
        if counters.stopped() || Instant::now() >= spec.deadline {
            break;
        }
        let intended = pace(start, spec.interval, i).await;
        let value = spec.payloads.value(offset + i);
        let len = value.len() as u64;
        let mut rec = ProducerRecord::new(spec.topic.as_str()).value(value);
        if spec.stamp {
            let t = Bytes::copy_from_slice(&stamp(spec.base, intended));
            rec = rec.header(STAMP_HEADER, Some(t));
        }
        match producer.send(rec).await {
            Ok(delivery) => {
                if ack_tx.send((intended, delivery, len)).is_err() {
                    break;
                }
            }
            Err(_) => {
                counters
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    drop(ack_tx);
    producer.flush().await.context("producer flush")?;
    acker.await.context("acknowledgement task")
}

async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<(Instant, DeliveryFuture, u64)>,
    counters: Arc<Counters>,
) -> Histogram<u64> {
    let mut hist = new_histogram();
    while let Some((intended, delivery, len)) = rx.recv().await {
        match delivery.await {
            Ok(_) => {
                record(&mut hist, intended.elapsed());
                counters.add_produced(1, len);
            }
            Err(_) => {
                counters
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    hist
}

/// Connects a raw gRPC client to `address`.
pub async fn raw_log_client(
    address: &str,
) -> anyhow::Result<v1::log_client::LogClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .context("server address")?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    Ok(v1::log_client::LogClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(64 << 20))
}

async fn raw_producer(
    spec: Arc<ProduceSpec>,
    index: u32,
    quota: u64,
    counters: Arc<Counters>,
) -> anyhow::Result<Histogram<u64>> {
    let log = raw_log_client(&spec.address).await?;
    let per_batch =
        (spec.batch_bytes / (spec.payloads.mean_size() as usize + RECORD_OVERHEAD)).max(1) as u64;
    let durability = match spec.durability {
        DurabilityMode::Written => v1::Durability::Written,
        DurabilityMode::Durable => v1::Durability::Durable,
    } as i32;

    let mut hist = new_histogram();
    let mut requests = JoinSet::new();
    let start = Instant::now();
    let offset = u64::from(index) * quota;
    let mut partition = index % spec.partitions;
    let mut sent = 0;
    while sent < quota && !counters.stopped() && Instant::now() < spec.deadline {
        let count = per_batch.min(quota - sent);
        // A batch leaves once its last record is due; each record is stamped with its own slot.
        let intended = pace(start, spec.interval, sent + count - 1).await;
        let mut builder = BatchBuilder::new(Compression::None);
        let mut bytes = 0;
        let now_ms = crate::report::unix_ms() as i64;
        for i in sent..sent + count {
            let value = spec.payloads.value(offset + i);
            bytes += value.len() as u64;
            let t = stamp(spec.base, pace_point(start, spec.interval, i, intended));
            let headers: &[(&str, Option<&[u8]>)] = if spec.stamp {
                &[(STAMP_HEADER, Some(&t))]
            } else {
                &[]
            };
            builder.push(now_ms, None, Some(&value), headers);
        }
        let batch = builder.build().context("encoding a batch")?.freeze();
        let request = v1::ProduceRequest {
            topic: spec.topic.clone(),
            partition: Some(partition),
            durability,
            payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
                batches: vec![batch],
            })),
        };
        partition = (partition + 1) % spec.partitions;
        sent += count;

        while requests.len() >= spec.in_flight {
            settle(requests.join_next().await, &mut hist, &counters);
        }
        let mut log = log.clone();
        requests.spawn(async move {
            let ok = log.produce(request).await.is_ok();
            // Measured here, as the acknowledgement arrives: the loop above reaps finished
            // requests only when the window is full.
            (ok, intended.elapsed(), count, bytes)
        });
    }
    while let Some(done) = requests.join_next().await {
        settle(Some(done), &mut hist, &counters);
    }
    Ok(hist)
}

/// The intended send time of record `i` of a raw batch: its own slot on the schedule, or the
/// batch's time without a rate.
fn pace_point(start: Instant, interval: Option<Duration>, i: u64, batch: Instant) -> Instant {
    interval.map_or(batch, |interval| start + interval.mul_f64(i as f64))
}

/// A raw produce's outcome: acknowledged, latency from the intended send time, records, bytes.
type RawOutcome = Result<(bool, Duration, u64, u64), tokio::task::JoinError>;

fn settle(done: Option<RawOutcome>, hist: &mut Histogram<u64>, counters: &Counters) {
    match done {
        Some(Ok((true, latency, count, bytes))) => {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            hist.saturating_record_n(us.max(1), count);
            counters.add_produced(count, bytes);
        }
        Some(_) => {
            counters
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        None => {}
    }
}
