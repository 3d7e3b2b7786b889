//! `rivulet-demo run`: the whole demo against a running server, step by step, ending in a
//! summary of figures and checks.
//!
//! Owns the orchestration: topics (deleted and re-created, so a previous run's data does not
//! count), the producer (in this process, with a progress bar), the two consumer processes it
//! starts from its own binary and watches through their output, the SIGKILL and restart of the
//! archive consumer half-way, the replays, and the checks. Every wait is bounded by
//! `--timeout`; the only processes it signals are the children it started, by their handles.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rivulet_client::{Client, ClientError, Compression, DeliveryFuture, NewTopic, ProducerRecord};
use rivulet_format::partition_for_key;
use tokio::time::Instant;

use crate::analytics::{AnalyticsResult, CANCELLED, SOURCE, SOURCE_HEADER};
use crate::archive::ArchiveResult;
use crate::data::{self, Dataset, Expected, FLIGHT_PARTITIONS, FlightView, known};
use crate::event_time::new_york_midnight_ms;
use crate::replay::{self, Flow, Start};
use crate::report_line::{self, Line};
use crate::stats::thousands;

/// Topics the demo owns, with their partition counts.
const TOPICS: [(&str, u32); 3] = [(SOURCE, FLIGHT_PARTITIONS), ("weather", 3), (CANCELLED, 1)];
/// Deliveries awaited at most this far behind the newest send.
const MAX_PENDING: usize = 50_000;

/// Arguments of `rivulet-demo run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Directory with flights.csv.zst and weather.csv.zst.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Directory for the archive consumer's files; emptied at start.
    #[arg(long, default_value = "target/demo")]
    work_dir: PathBuf,
    /// The server's data directory, to measure bytes on disk (optional).
    #[arg(long)]
    server_data_dir: Option<PathBuf>,
    /// Use about this many flights, spread evenly over the year, and the same share of the
    /// weather.
    #[arg(long)]
    limit: Option<u64>,
    /// The archive consumer commits its offsets after this many records.
    #[arg(long, default_value_t = 5_000)]
    commit_every: u64,
    /// Compression of produced batches.
    #[arg(long, value_enum, default_value_t = Codec::Zstd)]
    compression: Codec,
    /// Give up on any step after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Batch compression, as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Codec {
    None,
    Lz4,
    Zstd,
}

/// The checks and their outcomes, in the order made.
#[derive(Debug, Default)]
struct Checks {
    items: Vec<(String, bool, String)>,
}

impl Checks {
    fn check(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        let (name, detail) = (name.into(), detail.into());
        println!(
            "  {} {name}: {detail}",
            if passed { "PASS" } else { "FAIL" }
        );
        self.items.push((name, passed, detail));
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: T, expected: T) {
        let passed = got == expected;
        let detail = if passed {
            format!("{got:?}")
        } else {
            format!("got {got:?}, expected {expected:?}")
        };
        self.check(name, passed, detail);
    }

    fn failed(&self) -> usize {
        self.items.iter().filter(|(_, passed, _)| !passed).count()
    }
}

/// Prints lines above the progress bar while it is shown, plainly otherwise.
#[derive(Debug, Clone, Default)]
struct Console {
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Console {
    fn println(&self, line: &str) {
        let bar = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match bar.as_ref().filter(|b| !b.is_hidden()) {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    fn set_bar(&self, bar: Option<ProgressBar>) {
        *self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = bar;
    }
}

/// Runs the demo; an error means it could not finish, failed checks are reported in the
/// summary and make the returned count non-zero.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<usize> {
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout);
    let mut checks = Checks::default();

    println!("== 0. data and topics");
    let dataset = data::load(&args.data, args.limit)?;
    let expected = dataset.expected.clone();
    println!(
        "loaded {} flights and {} weather observations from {} ({}), sorted by event time",
        thousands(expected.flights),
        thousands(expected.weather),
        args.data.display(),
        if expected.full {
            "full files".to_owned()
        } else {
            format!("slice of about {}", args.limit.unwrap_or(0))
        },
    );
    check_source(&mut checks, &expected);
    let client = Client::connect(&args.addr).await?;
    recreate_topics(&client).await?;
    let archive_dir = args.work_dir.join("archive");
    if archive_dir.exists() {
        std::fs::remove_dir_all(&archive_dir)
            .with_context(|| format!("cannot empty {}", archive_dir.display()))?;
    }

    println!("== 1-3. produce, while the analytics and archive groups consume");
    let console = Console::default();
    let exe = std::env::current_exe()?;
    let analytics = Role::spawn(
        "analytics",
        &exe,
        &[
            "analytics",
            "--addr",
            &args.addr,
            "--expect",
            &expected.flights.to_string(),
            "--timeout",
            &args.timeout.to_string(),
        ],
        &console,
    )?;
    let archive_args: Vec<String> = [
        "archive",
        "--addr",
        &args.addr,
        "--dir",
        &archive_dir.to_string_lossy(),
        "--expect",
        &expected.flights.to_string(),
        "--commit-every",
        &args.commit_every.to_string(),
        "--timeout",
        &args.timeout.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let archive = tokio::spawn(supervise_archive(
        exe.clone(),
        archive_args,
        console.clone(),
        expected.flights / 2,
        timeout,
    ));

    let produced = produce(&client, &dataset, args.compression, &console).await?;
    drop(dataset);
    let analytics = analytics.wait(timeout).await?;
    let (archive, kill) = archive.await??;
    let analytics: AnalyticsResult = report_line::decode(&analytics)?;
    let archive: ArchiveResult = report_line::decode(&archive)?;

    println!("== 3. analytics totals");
    checks.equal(
        "analytics read every flight",
        analytics.totals.flights,
        expected.flights,
    );
    checks.equal(
        "analytics per-carrier counts",
        &analytics.totals.by_carrier,
        &expected.by_carrier,
    );
    checks.equal(
        "analytics per-origin counts",
        &analytics.totals.by_origin,
        &expected.by_origin,
    );
    checks.equal(
        "analytics departure-delay sum and count",
        (
            analytics.totals.dep_delay_sum,
            analytics.totals.dep_delay_count,
        ),
        (expected.dep_delay_sum, expected.dep_delay_count),
    );

    println!("== 4-5. archive group (fan-out), killed with SIGKILL and restarted");
    checks.equal(
        "archive holds every flight once",
        archive.archived,
        expected.flights,
    );
    checks.equal(
        "archive per-origin totals",
        &archive.by_origin,
        &expected.by_origin,
    );
    let behind: u64 = archive
        .resumed
        .values()
        .map(|r| r.archived - r.committed)
        .sum();
    checks.check(
        "archive consumer killed mid-way and resumed from its committed offsets",
        kill.killed_at > 0 && kill.killed_at < expected.flights,
        format!(
            "SIGKILL to pid {} at {} archived; restarted as pid {}",
            kill.pid,
            thousands(kill.killed_at),
            kill.restarted_pid
        ),
    );
    checks.check(
        "duplicates after the restart = records archived past the last commit",
        archive.duplicates == behind && behind <= args.commit_every + 2_000,
        format!(
            "{} read again and skipped; the archive was {} records ahead of the committed \
             offsets (commit every {} records, polls of up to 2,000)",
            thousands(archive.duplicates),
            thousands(behind),
            thousands(args.commit_every)
        ),
    );

    println!("== 6. replays");
    replay_july_fourth(&client, &expected, timeout, &mut checks).await?;
    replay_partition_zero(&client, &expected, timeout, &mut checks).await?;

    println!("== 7. cancelled flights, routed by the analytics consumer");
    check_cancelled(&client, &expected, analytics.routed, timeout, &mut checks).await?;
    let weather = stored_records(&client, "weather").await?;
    checks.equal("weather observations stored", weather, expected.weather);

    println!("== 8. summary");
    let summary = Summary {
        expected: &expected,
        produced: &produced,
        analytics: &analytics,
        archive: &archive,
        total_secs: started.elapsed().as_secs_f64(),
    };
    summary
        .print(&client, args.server_data_dir.as_deref())
        .await?;
    let failed = checks.failed();
    if failed == 0 {
        println!("all {} checks passed", checks.items.len());
    } else {
        println!("{failed} of {} checks FAILED:", checks.items.len());
        for (name, _, detail) in checks.items.iter().filter(|(_, passed, _)| !passed) {
            println!("  FAIL {name}: {detail}");
        }
    }
    Ok(failed)
}

/// Checks the data files against themselves and, for the full files, the published totals.
fn check_source(checks: &mut Checks, expected: &Expected) {
    checks.equal(
        "event time from local date and sched_dep_time agrees with time_hour",
        expected.time_mismatches,
        0,
    );
    if !expected.full {
        println!("  (a slice: the published full-file totals are not compared)");
        return;
    }
    checks.equal("flights in the file", expected.flights, known::FLIGHTS);
    checks.equal(
        "cancelled flights in the file",
        expected.cancelled,
        known::CANCELLED,
    );
    for (origin, n) in known::ORIGINS {
        checks.equal(
            &format!("{origin} flights in the file"),
            expected.by_origin.get(origin).copied(),
            Some(n),
        );
    }
    for (carrier, n) in known::CARRIERS {
        checks.equal(
            &format!("{carrier} flights in the file"),
            expected.by_carrier.get(carrier).copied(),
            Some(n),
        );
    }
}

/// Deletes the demo's topics if they exist (with their groups' offsets) and creates them.
async fn recreate_topics(client: &Client) -> anyhow::Result<()> {
    let admin = client.admin();
    for (name, partitions) in TOPICS {
        match admin.delete_topic(name).await {
            Ok(()) => println!("deleted topic {name} left by an earlier run"),
            Err(ClientError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        admin.create_topic(NewTopic::new(name, partitions)).await?;
        println!("created topic {name} with {partitions} partitions");
    }
    Ok(())
}

/// Figures of the produce step.
#[derive(Debug)]
struct Produced {
    records: u64,
    value_bytes: u64,
    secs: f64,
}

/// Produces every event in order, keyed (flights by carrier, weather by airport), with its
/// event time as the record timestamp, and waits for every acknowledgement.
async fn produce(
    client: &Client,
    dataset: &Dataset,
    codec: Codec,
    console: &Console,
) -> anyhow::Result<Produced> {
    let compression = match codec {
        Codec::None => Compression::None,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    };
    let producer = client
        .producer()
        .compression(compression)
        .batch_bytes(256 << 10)
        .linger(Duration::from_millis(10))
        .build();
    let total = dataset.events.len() as u64;
    let bar = ProgressBar::new(total).with_prefix("produce");
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {human_pos}/{human_len} records, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let plain = !std::io::stderr().is_terminal();
    console.set_bar(Some(bar.clone()));

    let started = Instant::now();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut next_report = total / 10;
    for (sent, event) in dataset.events.iter().enumerate() {
        let record = ProducerRecord::new(event.topic)
            .key(event.key.clone())
            .value(event.value.clone())
            .timestamp_ms(event.timestamp_ms);
        pending.push_back(producer.send(record).await?);
        while pending.len() > MAX_PENDING {
            if let Some(delivery) = pending.pop_front() {
                delivery.await.context("producing")?;
            }
        }
        let sent = sent as u64 + 1;
        if sent % 1_000 == 0 {
            bar.set_position(sent);
        }
        if plain && sent >= next_report {
            println!(
                "produce: {}/{} records sent",
                thousands(sent),
                thousands(total)
            );
            next_report += total / 10;
        }
    }
    producer.flush().await?;
    for delivery in pending {
        delivery.await.context("producing")?;
    }
    let secs = started.elapsed().as_secs_f64();
    bar.set_position(total);
    bar.finish();
    console.set_bar(None);
    let produced = Produced {
        records: total,
        value_bytes: dataset.value_bytes,
        secs,
    };
    console.println(&format!(
        "produced {} records in {:.1} s ({:.0} records/s, {:.1} MB/s of JSON), all acknowledged",
        thousands(total),
        secs,
        total as f64 / secs,
        dataset.value_bytes as f64 / secs / 1e6
    ));
    Ok(produced)
}

/// A consumer process started from this binary, its output relayed line by line.
struct Role {
    child: Child,
    progress: Arc<AtomicU64>,
    result: Arc<Mutex<Option<String>>>,
    relay: Option<std::thread::JoinHandle<()>>,
    name: &'static str,
}

impl Role {
    fn spawn<S: AsRef<std::ffi::OsStr>>(
        name: &'static str,
        exe: &Path,
        args: &[S],
        console: &Console,
    ) -> anyhow::Result<Role> {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {name} consumer"))?;
        console.println(&format!("started the {name} consumer, pid {}", child.id()));
        let progress = Arc::new(AtomicU64::new(0));
        let result = Arc::new(Mutex::new(None));
        let stdout = child.stdout.take().context("child stdout")?;
        let relay = {
            let (progress, result, console) = (progress.clone(), result.clone(), console.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match report_line::parse(&line) {
                        Line::Progress(n) => progress.store(n, Ordering::Relaxed),
                        Line::Result(json) => {
                            *result
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(json.to_owned());
                        }
                        Line::Text(text) => console.println(&format!("[{name}] {text}")),
                    }
                }
            })
        };
        Ok(Role {
            child,
            progress,
            result,
            relay: Some(relay),
            name,
        })
    }

    fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> anyhow::Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    /// SIGKILL, then reaps the process.
    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
        Ok(())
    }

    /// Waits for the process to exit successfully with a result line, killing it at the
    /// timeout.
    async fn wait(mut self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!(
                    "the {} consumer did not finish in {} s",
                    self.name,
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
        if !status.success() {
            bail!("the {} consumer failed: {status}", self.name);
        }
        let result = self
            .result
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        result.with_context(|| format!("the {} consumer reported no result", self.name))
    }
}

/// What happened to the first archive process.
#[derive(Debug, Clone, Copy)]
struct Kill {
    pid: u32,
    killed_at: u64,
    restarted_pid: u32,
}

/// Runs the archive consumer, kills it with SIGKILL once it has archived `kill_at` flights,
/// starts it again, and returns the second process's result.
async fn supervise_archive(
    exe: PathBuf,
    args: Vec<String>,
    console: Console,
    kill_at: u64,
    timeout: Duration,
) -> anyhow::Result<(String, Kill)> {
    let deadline = Instant::now() + timeout;
    let mut first = Role::spawn("archive", &exe, &args, &console)?;
    while first.progress() < kill_at.max(1) {
        if first.exited()? || Instant::now() > deadline {
            bail!("the archive consumer stopped (or stalled) before it could be killed mid-way");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = first.child.id();
    first.kill()?;
    // The process may have archived a little more between its last report and the kill.
    console.println(&format!(
        "killed the archive consumer (pid {pid}) with SIGKILL after it reported {} flights \
         archived; restarting it",
        thousands(kill_at)
    ));
    let second = Role::spawn("archive", &exe, &args, &console)?;
    let restarted_pid = second.child.id();
    let result = second
        .wait(deadline.saturating_duration_since(Instant::now()))
        .await?;
    Ok((
        result,
        Kill {
            pid,
            killed_at: kill_at,
            restarted_pid,
        },
    ))
}

/// Step 6a: seek by timestamp to 2013-07-04 (New York) and read that day's flights.
async fn replay_july_fourth(
    client: &Client,
    expected: &Expected,
    timeout: Duration,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let (from, to) = (
        new_york_midnight_ms(2013, 7, 4),
        new_york_midnight_ms(2013, 7, 5),
    );
    let starts: Vec<_> = (0..FLIGHT_PARTITIONS)
        .map(|p| (p, Start::Timestamp(from)))
        .collect();
    let (mut count, mut wrong_day) = (0u64, 0u64);
    let started = Instant::now();
    let offsets = replay::read(client, SOURCE, &starts, timeout, |record| {
        if record.timestamp_ms() >= to {
            return Flow::StopPartition;
        }
        let day = record
            .value()
            .and_then(|v| serde_json::from_slice::<FlightView>(v).ok())
            .map(|f| (f.month, f.day));
        if record.timestamp_ms() >= from && day == Some((7, 4)) {
            count += 1;
        } else {
            wrong_day += 1;
        }
        Flow::Continue
    })
    .await?;
    println!(
        "  seek to 2013-07-04 00:00 New York ({from} ms): partitions start at offsets {offsets:?}; \
         read {} flights in {:.2} s",
        thousands(count),
        started.elapsed().as_secs_f64()
    );
    checks.equal(
        "flights on 2013-07-04 found by timestamp",
        (count, wrong_day),
        (expected.july_fourth, 0),
    );
    Ok(())
}

/// Step 6b: replay partition 0 from offset 0.
async fn replay_partition_zero(
    client: &Client,
    expected: &Expected,
    timeout: Duration,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let (mut count, mut next, mut gaps, mut backwards, mut misplaced) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_ms = i64::MIN;
    let started = Instant::now();
    replay::read(
        client,
        SOURCE,
        &[(0, Start::Offset(0))],
        timeout,
        |record| {
            count += 1;
            if record.offset() != next {
                gaps += 1;
            }
            next = record.offset() + 1;
            if record.timestamp_ms() < last_ms {
                backwards += 1;
            }
            last_ms = record.timestamp_ms();
            let partition = record
                .key()
                .map(|k| partition_for_key(k, FLIGHT_PARTITIONS));
            if partition != Some(0) {
                misplaced += 1;
            }
            Flow::Continue
        },
    )
    .await?;
    let want = expected.by_partition.get(&0).copied().unwrap_or(0);
    println!(
        "  partition 0 from offset 0: {} records in {:.2} s",
        thousands(count),
        started.elapsed().as_secs_f64()
    );
    checks.equal(
        "partition 0 replayed from offset 0: every record, dense offsets",
        (count, gaps),
        (want, 0),
    );
    checks.equal(
        "partition 0: timestamps in order, every key hashes to partition 0",
        (backwards, misplaced),
        (0, 0),
    );
    Ok(())
}

/// Step 7: every cancelled flight in `flights.cancelled`, once.
async fn check_cancelled(
    client: &Client,
    expected: &Expected,
    routed: u64,
    timeout: Duration,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let (mut count, mut departed) = (0u64, 0u64);
    let mut sources = HashSet::new();
    replay::read(
        client,
        CANCELLED,
        &[(0, Start::Offset(0))],
        timeout,
        |record| {
            count += 1;
            let flight = record
                .value()
                .and_then(|v| serde_json::from_slice::<FlightView>(v).ok());
            if flight.is_none_or(|f| f.dep_time.is_some()) {
                departed += 1;
            }
            if let Some(source) = record.headers().iter().find(|h| h.key() == SOURCE_HEADER) {
                sources.insert(source.value().cloned());
            }
            Flow::Continue
        },
    )
    .await?;
    checks.equal(
        "cancelled flights routed and stored",
        (routed, count),
        (expected.cancelled, expected.cancelled),
    );
    checks.equal(
        "cancelled topic: distinct sources, none departed",
        (sources.len() as u64, departed),
        (expected.cancelled, 0),
    );
    Ok(())
}

/// Records stored in a topic, summed over its partitions.
async fn stored_records(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let description = client.admin().describe_topic(topic).await?;
    Ok(description
        .partitions()
        .iter()
        .map(|p| p.high_watermark() - p.log_start_offset())
        .sum())
}

/// The figures printed at the end.
struct Summary<'a> {
    expected: &'a Expected,
    produced: &'a Produced,
    analytics: &'a AnalyticsResult,
    archive: &'a ArchiveResult,
    total_secs: f64,
}

impl Summary<'_> {
    async fn print(&self, client: &Client, server_data_dir: Option<&Path>) -> anyhow::Result<()> {
        let p = self.produced;
        println!(
            "  records    {} flights + {} weather = {} produced in {:.1} s: {:.0} records/s, \
             {:.1} MB/s of JSON ({:.1} MB)",
            thousands(self.expected.flights),
            thousands(self.expected.weather),
            thousands(p.records),
            p.secs,
            p.records as f64 / p.secs,
            p.value_bytes as f64 / p.secs / 1e6,
            p.value_bytes as f64 / 1e6
        );
        let analytics_secs = self.analytics.elapsed_ms as f64 / 1e3;
        println!(
            "  analytics  {} flights tailed in {:.1} s ({:.0} records/s, from before the first \
             record was produced); {} cancelled routed",
            thousands(self.analytics.totals.flights),
            analytics_secs,
            self.analytics.totals.flights as f64 / analytics_secs,
            thousands(self.analytics.routed)
        );
        let archive_secs = self.archive.elapsed_ms as f64 / 1e3;
        println!(
            "  archive    after the restart: {} records read in {:.1} s ({:.0} records/s), {} \
             of them duplicates skipped",
            thousands(self.archive.read),
            archive_secs,
            self.archive.read as f64 / archive_secs,
            thousands(self.archive.duplicates)
        );
        let mut by_topic = BTreeMap::new();
        for (topic, _) in TOPICS {
            let description = client.admin().describe_topic(topic).await?;
            let bytes: u64 = description
                .partitions()
                .iter()
                .map(|p| p.size_bytes())
                .sum();
            by_topic.insert(topic, bytes);
        }
        let logs: u64 = by_topic.values().sum();
        let per_topic: Vec<String> = by_topic
            .iter()
            .map(|(t, b)| format!("{t} {:.1} MB", *b as f64 / 1e6))
            .collect();
        println!(
            "  on disk    {:.1} MB of logs ({}); {:.2} bytes stored per byte of JSON",
            logs as f64 / 1e6,
            per_topic.join(", "),
            logs as f64 / p.value_bytes.max(1) as f64
        );
        if let Some(dir) = server_data_dir {
            println!(
                "             {:.1} MB in {} (logs, indexes, metadata, group offsets)",
                dir_bytes(dir) as f64 / 1e6,
                dir.display()
            );
        }
        println!("  time       {:.1} s for the whole run", self.total_secs);
        Ok(())
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
