//! `rivulet-demo analytics`: the consumer group `analytics` tails `flights`, keeps live
//! per-carrier and per-origin counts and departure-delay statistics, prints a compact table
//! every few seconds, and routes cancelled flights (no departure time) to
//! `flights.cancelled`, a dead-letter style topic.
//!
//! Joins the group with `subscribe`; commits every second (auto-commit) and on close, which
//! also leaves the group. Owns its [`Stats`] (in memory only: a restarted analytics process
//! would start its counts over from its committed offsets, which is why the demo kills the
//! archive consumer, whose state survives) and its routing producer. It stops once it has read
//! `--expect` flights.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rivulet_client::{Client, DeliveryFuture, OffsetReset, ProducerRecord};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::data::FlightView;
use crate::report_line;
use crate::stats::{Stats, Totals, thousands};

/// Topic read.
pub(crate) const SOURCE: &str = "flights";
/// Topic cancelled flights are routed to.
pub(crate) const CANCELLED: &str = "flights.cancelled";
/// Header naming where a routed record came from, `flights/PARTITION/OFFSET`.
pub(crate) const SOURCE_HEADER: &str = "source";
/// The group's name.
const GROUP: &str = "analytics";
/// Deliveries of routed records awaited at most this far behind.
const MAX_PENDING: usize = 10_000;

/// Arguments of `rivulet-demo analytics`.
#[derive(Debug, Args)]
pub(crate) struct AnalyticsArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Stop after reading this many flights.
    #[arg(long)]
    expect: u64,
    /// Seconds between tables.
    #[arg(long, default_value_t = 2)]
    table_every: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What the analytics process reports at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AnalyticsResult {
    pub(crate) totals: Totals,
    /// Cancelled flights routed to `flights.cancelled`, all acknowledged.
    pub(crate) routed: u64,
    /// Records whose value was not a flight.
    pub(crate) malformed: u64,
    pub(crate) elapsed_ms: u64,
}

/// Runs the analytics consumer until it has read `--expect` flights or times out.
pub(crate) async fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let client = Client::connect(&args.addr).await?;
    let mut consumer = client
        .consumer()
        .group(GROUP)
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(Some(Duration::from_secs(1)))
        .max_poll_records(5_000)
        .build();
    // A group member: the server assigns it the partitions of `flights` (all of them while it
    // is the group's only member) and each starts from the group's committed offset.
    consumer.subscribe([SOURCE]).await?;
    let producer = client.producer().linger(Duration::from_millis(20)).build();

    let mut stats = Stats::default();
    let mut result = AnalyticsResult::default();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut next_table = Instant::now() + Duration::from_secs(args.table_every);
    let mut announced = false;
    while stats.all.flights < args.expect {
        if Instant::now() > deadline {
            bail!(
                "analytics timed out after {} s with {} of {} flights",
                args.timeout,
                stats.all.flights,
                args.expect
            );
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if !announced && !consumer.assignment().is_empty() {
            announced = true;
            println!(
                "member {} of group {GROUP}, generation {}: {} partitions of {SOURCE}, {} ms \
                 after start",
                consumer.member_id().unwrap_or_default(),
                consumer.generation().unwrap_or(0),
                consumer.assignment().len(),
                started.elapsed().as_millis()
            );
        }
        for record in records {
            let Some(flight) = record
                .value()
                .and_then(|v| serde_json::from_slice::<FlightView>(v).ok())
            else {
                result.malformed += 1;
                continue;
            };
            stats.add(&flight);
            if flight.dep_time.is_none() {
                let routed = ProducerRecord::new(CANCELLED)
                    .key(flight.carrier.clone())
                    .value(record.value().cloned().unwrap_or_default())
                    .timestamp_ms(record.timestamp_ms())
                    .header(
                        SOURCE_HEADER,
                        Some(format!(
                            "{}/{}/{}",
                            SOURCE,
                            record.partition(),
                            record.offset()
                        )),
                    );
                pending.push_back(producer.send(routed).await?);
                result.routed += 1;
            }
        }
        while pending.len() > MAX_PENDING {
            if let Some(delivery) = pending.pop_front() {
                delivery.await.context("routing a cancelled flight")?;
            }
        }
        report_line::progress(stats.all.flights, None);
        if Instant::now() >= next_table {
            next_table = Instant::now() + Duration::from_secs(args.table_every);
            print_table(&stats, started);
        }
    }

    producer.flush().await?;
    for delivery in pending {
        delivery.await.context("routing a cancelled flight")?;
    }
    consumer.commit().await?;
    consumer.close().await?;
    print_table(&stats, started);
    result.totals = stats.totals();
    result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report_line::result(&result)
}

fn print_table(stats: &Stats, started: Instant) {
    println!(
        "{} flights after {:.1} s, {} cancelled (routed to {CANCELLED})",
        thousands(stats.all.flights),
        started.elapsed().as_secs_f64(),
        thousands(stats.all.cancelled)
    );
    for line in stats.table(5).lines() {
        println!("  {line}");
    }
}
