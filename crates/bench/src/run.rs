//! One benchmark run from start to report: connects (or starts a server), creates and fills
//! the topic, runs the producers and consumers of the workload with a progress line, and
//! gathers the report. Owns the phases and their time bounds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use rivulet_client::{Client, DurabilityPolicy, NewTopic};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::consume::{Assignment, ConsumeSpec, run_consumer};
use crate::options::{BenchOptions, DurabilityMode, ProduceClient, TopicPolicy, Workload};
use crate::payload::Payloads;
use crate::produce::{ProduceSpec, run_producer};
use crate::report::{Latency, Machine, Report, Throughput, load_average, unix_ms};
use crate::server::{SpawnedServer, disk_usage, peak_rss};
use crate::stats::{Counters, new_histogram, progress};

/// How long consumers may keep reading after the producers are done (end to end), so a
/// consumer that fell behind still drains what was acknowledged.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Runs the benchmark `options` describe and returns its report.
///
/// # Errors
///
/// When the server cannot be reached or started, the topic cannot be created, or a worker
/// fails for good (a connection refused, a corrupt batch).
pub async fn run(options: &BenchOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let mut machine = Machine::detect();
    let started_at_ms = unix_ms();

    let spawned = match &options.spawn_server {
        Some(binary) => Some(SpawnedServer::start(binary)?),
        None => None,
    };
    let address = spawned
        .as_ref()
        .map_or_else(|| options.server.to_string(), |s| s.address().to_owned());
    let server_pid = spawned
        .as_ref()
        .map(SpawnedServer::pid)
        .or(options.server_pid);
    let data_dir = spawned
        .as_ref()
        .map(SpawnedServer::data_dir)
        .or_else(|| options.server_data_dir.clone());

    let client = Client::connect(&address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let topic = options
        .topic
        .clone()
        .unwrap_or_else(|| format!("bench-{started_at_ms}"));
    let partitions = if options.existing_topic {
        let described = client.admin().describe_topic(&topic).await?;
        u32::try_from(described.partitions().len()).unwrap_or(u32::MAX)
    } else {
        client
            .admin()
            .create_topic(
                NewTopic::new(topic.as_str(), options.partitions).durability_policy(match options
                    .topic_policy
                {
                    TopicPolicy::SyncInterval => DurabilityPolicy::SyncInterval,
                    TopicPolicy::OsDecides => DurabilityPolicy::OsDecides,
                    TopicPolicy::AlwaysDurable => DurabilityPolicy::AlwaysDurable,
                }),
            )
            .await
            .with_context(|| format!("cannot create topic {topic}"))?;
        options.partitions
    };

    let payloads = Arc::new(match &options.payload_file {
        Some(path) => Payloads::from_file(path)?,
        None => Payloads::synthetic(options.record_size),
    });
    let base = Instant::now();
    let produce_spec = |deadline: Instant, client: ProduceClient, durability, stamp| {
        Arc::new(ProduceSpec {
            address: address.clone(),
            topic: topic.clone(),
            partitions,
            client,
            durability,
            batch_bytes: options.batch_bytes,
            linger: Duration::from_secs_f64(options.linger_ms / 1000.0),
            in_flight: options.in_flight,
            payloads: payloads.clone(),
            interval: options
                .rate
                .map(|r| Duration::from_secs_f64(f64::from(options.producers) / r)),
            stamp,
            base,
            deadline,
        })
    };
    let consume_spec = |deadline: Instant| {
        Arc::new(ConsumeSpec {
            address: address.clone(),
            topic: topic.clone(),
            client: options.fetch_client,
            fetch_bytes: options.fetch_bytes,
            mean_value_size: payloads.mean_size(),
            base,
            deadline,
        })
    };

    let limit = options.duration_limit();
    let progress_every =
        (options.progress > 0.0).then(|| Duration::from_secs_f64(options.progress));
    let mut report_produce_latency = None;
    let mut end_to_end_latency = None;
    let mut consume = None;
    let produce;
    let consumers;
    let errors;

    match options.workload {
        Workload::Produce => {
            let counters = Arc::new(Counters::default());
            let spec = produce_spec(
                Instant::now() + limit,
                options.produce_client,
                options.durability,
                false,
            );
            let (throughput, hist) = produce_phase(
                spec,
                options,
                counters.clone(),
                progress_every,
                "produce",
                limit,
            )
            .await?;
            errors = counters.errors.load(Ordering::Relaxed);
            produce = throughput;
            report_produce_latency = Latency::from_histogram(&hist);
            consumers = 0;
        }
        Workload::Consume => {
            if !options.existing_topic {
                // The fill is not the measurement: raw batches, written, as fast as they go.
                let counters = Arc::new(Counters::default());
                let spec = produce_spec(
                    Instant::now() + limit,
                    ProduceClient::Raw,
                    DurabilityMode::Written,
                    false,
                );
                produce = produce_phase(spec, options, counters, progress_every, "fill", limit)
                    .await?
                    .0;
            } else {
                produce = Throughput::new(0, 0, 0.0);
            }
            let described = client.admin().describe_topic(&topic).await?;
            let ranges: Vec<(u32, u64, u64)> = described
                .partitions()
                .iter()
                .map(|p| (p.partition(), p.log_start_offset(), p.high_watermark()))
                .collect();
            let expected: u64 = ranges.iter().map(|(_, s, e)| e - s).sum();
            let counters = Arc::new(Counters::default());
            let started = Instant::now();
            let spec = consume_spec(started + limit);
            let (_, last) = consume_phase(
                spec,
                options.consumers,
                &ranges,
                counters.clone(),
                expected,
                progress_every,
                limit,
            )
            .await?;
            let seconds = last.duration_since(started).as_secs_f64();
            consume = Some(Throughput::new(
                counters.consumed.load(Ordering::Relaxed),
                counters.consumed_bytes.load(Ordering::Relaxed),
                seconds,
            ));
            consumers = options.consumers;
            errors = counters.errors.load(Ordering::Relaxed);
        }
        Workload::EndToEnd => {
            let counters = Arc::new(Counters::default());
            let deadline = Instant::now() + limit;
            let ranges: Vec<(u32, u64, u64)> = if options.existing_topic {
                client
                    .admin()
                    .describe_topic(&topic)
                    .await?
                    .partitions()
                    .iter()
                    .map(|p| (p.partition(), p.high_watermark(), u64::MAX))
                    .collect()
            } else {
                (0..partitions).map(|p| (p, 0, u64::MAX)).collect()
            };
            let mut cspec = (*consume_spec(deadline + DRAIN_GRACE)).clone();
            // End-to-end latency needs each record's stamp, so records are decoded.
            cspec.client = crate::options::FetchClient::Consumer;
            let consuming = {
                let counters = counters.clone();
                let consumers = options.consumers;
                tokio::spawn(async move {
                    consume_phase(
                        Arc::new(cspec),
                        consumers,
                        &ranges,
                        counters,
                        u64::MAX,
                        None,
                        limit + DRAIN_GRACE,
                    )
                    .await
                })
            };
            let spec = produce_spec(deadline, options.produce_client, options.durability, true);
            let (throughput, hist) = produce_phase(
                spec,
                options,
                counters.clone(),
                progress_every,
                "end-to-end",
                limit,
            )
            .await?;
            produce = throughput;
            report_produce_latency = Latency::from_histogram(&hist);
            // Consumers stop once they have read every acknowledged record, or at the grace.
            let target = produce.records;
            let drain_until = Instant::now() + DRAIN_GRACE;
            while counters.consumed.load(Ordering::Relaxed) < target && Instant::now() < drain_until
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            counters.stop.store(true, Ordering::Relaxed);
            let (hist, _) = consuming.await.context("consumer task")??;
            end_to_end_latency = Latency::from_histogram(&hist);
            consume = Some(Throughput::new(
                counters.consumed.load(Ordering::Relaxed),
                counters.consumed_bytes.load(Ordering::Relaxed),
                produce.seconds,
            ));
            consumers = options.consumers;
            errors = counters.errors.load(Ordering::Relaxed);
        }
    }

    let topic_bytes_on_disk = client
        .admin()
        .describe_topic(&topic)
        .await
        .ok()
        .map(|d| d.partitions().iter().map(|p| p.size_bytes()).sum());
    machine.load_end = load_average();
    Ok(Report {
        workload: options.workload,
        durability: options.durability,
        topic_policy: options.topic_policy,
        produce_client: options.produce_client,
        fetch_client: options.fetch_client,
        topic,
        partitions,
        producers: options.producers,
        consumers,
        record_size: payloads.mean_size(),
        batch_bytes: options.batch_bytes,
        linger_ms: options.linger_ms,
        target_rate: options.rate,
        errors,
        produce,
        consume,
        produce_latency: report_produce_latency,
        end_to_end_latency,
        server_peak_rss_bytes: server_pid.and_then(peak_rss),
        topic_bytes_on_disk,
        data_dir_bytes: data_dir.as_deref().and_then(disk_usage),
        machine,
        started_at_ms,
    })
}

/// Runs `options.producers` producers sharing `options.records`, and returns their
/// throughput and merged acknowledgement latency.
async fn produce_phase(
    spec: Arc<ProduceSpec>,
    options: &BenchOptions,
    counters: Arc<Counters>,
    progress_every: Option<Duration>,
    phase: &'static str,
    limit: Duration,
) -> anyhow::Result<(Throughput, hdrhistogram::Histogram<u64>)> {
    let producers = options.producers;
    let quota = options.records.div_ceil(u64::from(producers));
    let started = Instant::now();
    let reporter =
        progress_every.map(|every| tokio::spawn(progress(counters.clone(), phase, every, limit)));
    let mut tasks = JoinSet::new();
    for index in 0..producers {
        let quota = quota.min(options.records.saturating_sub(quota * u64::from(index)));
        tasks.spawn(run_producer(spec.clone(), index, quota, counters.clone()));
    }
    let mut hist = new_histogram();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("producer task")? {
            Ok(h) => hist.add(h).context("merging histograms")?,
            Err(err) => failure = Some(err),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let throughput = Throughput::new(
        counters.produced.load(Ordering::Relaxed),
        counters.produced_bytes.load(Ordering::Relaxed),
        seconds,
    );
    Ok((throughput, hist))
}

/// Runs `consumers` consumers over `ranges` (partition, first offset, end offset), dealt
/// round robin, until `expected` records were read, `counters.stop` is set, or `limit`
/// passes. Returns the merged latency histogram and when the last consumer finished.
async fn consume_phase(
    spec: Arc<ConsumeSpec>,
    consumers: u32,
    ranges: &[(u32, u64, u64)],
    counters: Arc<Counters>,
    expected: u64,
    progress_every: Option<Duration>,
    limit: Duration,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, Instant)> {
    let reporter = progress_every
        .map(|every| tokio::spawn(progress(counters.clone(), "consume", every, limit)));
    let mut tasks = JoinSet::new();
    for c in 0..consumers {
        let partitions: Vec<(u32, u64)> = ranges
            .iter()
            .filter(|(p, _, _)| p % consumers == c)
            .map(|&(p, start, _)| (p, start))
            .collect();
        if partitions.is_empty() {
            continue;
        }
        let counters = counters.clone();
        let spec = spec.clone();
        tasks.spawn(async move {
            let done = {
                let counters = counters.clone();
                move || counters.stopped() || counters.consumed.load(Ordering::Relaxed) >= expected
            };
            run_consumer(spec, Assignment { partitions }, counters, done).await
        });
    }
    let mut hist = new_histogram();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("consumer task")? {
            Ok(h) => hist.add(h).context("merging histograms")?,
            Err(err) => failure = Some(err),
        }
    }
    let last = Instant::now();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    match failure {
        Some(err) => Err(err),
        None => Ok((hist, last)),
    }
}
