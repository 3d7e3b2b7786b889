//! `rivulet-demo run`: the whole demo against a running server, step by step, ending in a
//! summary of figures and checks.
//!
//! Owns the orchestration: topics (deleted and re-created, so a previous run's data does not
//! count), the producer (in this process, with a progress bar), the two consumer processes it
//! starts from its own binary and watches through their output, the SIGKILL of the archive
//! consumer inside a commit interval once it has half the flights, its restart and how soon the
//! group gives the new process its partitions back, the replays, and the checks. Every wait is
//! bounded by `--timeout`; the only processes it signals are the children it started, by their
//! handles.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rivulet_client::{Client, ClientError, Compression, DeliveryFuture, NewTopic, ProducerRecord};
use rivulet_format::partition_for_key;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::analytics::{AnalyticsResult, CANCELLED, SOURCE, SOURCE_HEADER};
use crate::archive::{ArchiveResult, GROUP, MAX_POLL_RECORDS, Membership};
use crate::data::{self, Dataset, Expected, FLIGHT_PARTITIONS, FlightView, known};
use crate::event_time::new_york_midnight_ms;
use crate::replay::{self, Flow, Start};
use crate::report_line::{self, Line};
use crate::stats::thousands;

/// Topics the demo owns, with their partition counts.
const TOPICS: [(&str, u32); 3] = [(SOURCE, FLIGHT_PARTITIONS), ("weather", 3), (CANCELLED, 1)];
/// Deliveries awaited at most this far behind the newest send.
const MAX_PENDING: usize = 50_000;
/// The archive consumer's static instance id, the same for the killed process and its
/// successor.
const ARCHIVE_INSTANCE: &str = "archive-1";
/// From joining to holding its partitions, a restarted static member takes one heartbeat; a
/// member without an instance id would wait until the dead one's session timeout (10 s by
/// default) expired it. The check allows this much.
const STATIC_TAKEOVER_BOUND_MS: u64 = 2_000;

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
    /// The archive consumer commits its offsets after this many records; more than two of its
    /// polls (2,000), so that it can be killed with records archived past a commit.
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
    if args.commit_every <= 2 * MAX_POLL_RECORDS {
        bail!(
            "--commit-every must be above {} (two polls of the archive consumer), so that it can \
             be killed inside a commit interval",
            2 * MAX_POLL_RECORDS
        );
    }

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
        "--instance-id",
        ARCHIVE_INSTANCE,
        "--timeout",
        &args.timeout.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let archive = tokio::spawn(supervise_archive(ArchiveRun {
        exe: exe.clone(),
        args: archive_args,
        console: console.clone(),
        client: client.clone(),
        kill_at: expected.flights / 2,
        expected: expected.flights,
        commit_every: args.commit_every,
        timeout,
    }));

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
    check_archive(&mut checks, &archive, &kill, &expected, args.commit_every);

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
        kill: &kill,
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

/// Steps 4 and 5: the archive's totals, the kill inside a commit interval, the restarted
/// member's partitions, and the duplicates.
fn check_archive(
    checks: &mut Checks,
    archive: &ArchiveResult,
    kill: &Kill,
    expected: &Expected,
    commit_every: u64,
) {
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
    let archived_at_restart: u64 = archive.resumed.values().map(|r| r.archived).sum();
    let lead = archive.lead_at_assignment;
    checks.check(
        "archive consumer killed inside a commit interval, resumed from its committed offsets",
        kill.reported > 0 && archived_at_restart < expected.flights && lead > 0,
        format!(
            "SIGKILL to pid {} when it reported {} archived, {} of them past its committed \
             offsets; at the restart the files held {} and the committed offsets were {} behind; \
             restarted as pid {}",
            kill.pid,
            thousands(kill.reported),
            thousands(kill.reported_uncommitted),
            thousands(archived_at_restart),
            thousands(lead),
            kill.restarted_pid
        ),
    );
    let first = &kill.first;
    let again = &kill.restarted;
    let one_member = matches!(
        kill.members_after.as_slice(),
        [(id, Some(instance))] if *id == again.member_id && instance == ARCHIVE_INSTANCE
    );
    checks.check(
        "restarted member (same instance id) got its partitions back at once, no rebalance",
        again.partitions == first.partitions
            && again.generation == first.generation
            && one_member
            && again.since_join_ms < STATIC_TAKEOVER_BOUND_MS,
        format!(
            "partitions {:?} back {} ms after the SIGKILL ({} ms after the new process started, \
             {} ms after it joined), generation {} before and {} after, group members now {:?}; \
             without an instance id they would wait for the dead member's session timeout (10 s \
             by default)",
            again.partitions,
            kill.reassigned_after.as_millis(),
            again.after_ms,
            again.since_join_ms,
            first.generation,
            again.generation,
            kill.members_after
        ),
    );
    checks.check(
        "duplicates after the restart = the archive's lead over the committed offsets",
        archive.duplicates == lead && lead <= commit_every + MAX_POLL_RECORDS,
        format!(
            "{} read again and skipped; the archive was {} records ahead of the committed \
             offsets (commit every {} records, polls of up to {}, so at most {})",
            thousands(archive.duplicates),
            thousands(lead),
            thousands(commit_every),
            thousands(MAX_POLL_RECORDS),
            thousands(commit_every + MAX_POLL_RECORDS)
        ),
    );
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
        if sent.is_multiple_of(1_000) {
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

/// What a role process has reported so far through its output.
#[derive(Debug, Clone, Default)]
struct Reported {
    /// Records handled, from the last `@progress` line.
    records: u64,
    /// Of those, records past the group's committed offsets, for a role that says.
    uncommitted: Option<u64>,
    /// Every `@member` line, with when it was read.
    members: Vec<(std::time::Instant, String)>,
    /// The `@result` line.
    result: Option<String>,
}

/// A consumer process started from this binary, its output relayed line by line.
struct Role {
    child: Child,
    reported: watch::Receiver<Reported>,
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
        let (report, reported) = watch::channel(Reported::default());
        let stdout = child.stdout.take().context("child stdout")?;
        let relay = {
            let console = console.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match report_line::parse(&line) {
                        Line::Progress {
                            records,
                            uncommitted,
                        } => report.send_modify(|r| {
                            r.records = records;
                            r.uncommitted = uncommitted;
                        }),
                        Line::Member(json) => {
                            let seen = std::time::Instant::now();
                            report.send_modify(|r| r.members.push((seen, json.to_owned())));
                        }
                        Line::Result(json) => {
                            report.send_modify(|r| r.result = Some(json.to_owned()));
                        }
                        Line::Text(text) => console.println(&format!("[{name}] {text}")),
                    }
                }
            })
        };
        Ok(Role {
            child,
            reported,
            relay: Some(relay),
            name,
        })
    }

    /// Waits until the process reports something new, or at most `most`.
    async fn next_report(&mut self, most: Duration) {
        match tokio::time::timeout(most, self.reported.changed()).await {
            Ok(Ok(())) => {}
            // The output closed: nothing more will come, so just pause before looking again.
            Ok(Err(_)) => tokio::time::sleep(most.min(Duration::from_millis(10))).await,
            Err(_) => {}
        }
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
        let result = self.reported.borrow().result.clone();
        result.with_context(|| format!("the {} consumer reported no result", self.name))
    }
}

/// What the archive supervisor needs.
struct ArchiveRun {
    exe: PathBuf,
    args: Vec<String>,
    console: Console,
    client: Client,
    /// Kill once at least this many flights are archived.
    kill_at: u64,
    /// Flights in the run.
    expected: u64,
    commit_every: u64,
    timeout: Duration,
}

/// What happened to the first archive process and how its successor took over.
#[derive(Debug, Clone)]
struct Kill {
    pid: u32,
    /// Flights archived, as last reported before the SIGKILL.
    reported: u64,
    /// Of those, how many were past the committed offsets.
    reported_uncommitted: u64,
    /// The killed process's membership.
    first: Membership,
    restarted_pid: u32,
    /// The restarted process's first membership holding as many partitions as the first.
    restarted: Membership,
    /// From the SIGKILL to the restarted process reporting that membership.
    reassigned_after: Duration,
    /// The group's members (id, instance id) right after the restart's assignment.
    members_after: Vec<(String, Option<String>)>,
}

/// Whether an archive report is the moment to kill: at least `kill_at` archived, some records
/// past the committed offsets, and room for another whole poll before the next commit, so the
/// process is at least two polls away from committing when the signal lands.
fn inside_commit_interval(
    records: u64,
    uncommitted: u64,
    kill_at: u64,
    expected: u64,
    commit_every: u64,
) -> bool {
    records >= kill_at.max(1)
        && records < expected
        && uncommitted > 0
        && uncommitted + MAX_POLL_RECORDS < commit_every
}

/// Runs the archive consumer, kills it with SIGKILL inside a commit interval once it has
/// archived half the flights, starts it again, measures how soon the group gives the new
/// process its partitions back, and returns the second process's result.
async fn supervise_archive(run: ArchiveRun) -> anyhow::Result<(String, Kill)> {
    let deadline = Instant::now() + run.timeout;
    let mut first = Role::spawn("archive", &run.exe, &run.args, &run.console)?;
    let at_kill = loop {
        let now = first.reported.borrow_and_update().clone();
        let uncommitted = now.uncommitted.unwrap_or(0);
        if inside_commit_interval(
            now.records,
            uncommitted,
            run.kill_at,
            run.expected,
            run.commit_every,
        ) {
            break now;
        }
        if first.exited()? || Instant::now() > deadline {
            bail!(
                "the archive consumer stopped (or stalled) before it could be killed inside a \
                 commit interval (last report: {} archived, {uncommitted} past the commit)",
                now.records
            );
        }
        first.next_report(Duration::from_millis(50)).await;
    };
    let pid = first.child.id();
    first.kill()?;
    let killed = std::time::Instant::now();
    let first_member: Membership = match at_kill.members.last() {
        Some((_, json)) => report_line::decode(json)?,
        None => bail!("the archive consumer archived records without reporting its membership"),
    };
    run.console.println(&format!(
        "killed the archive consumer (pid {pid}) with SIGKILL after it reported {} flights \
         archived, {} of them past its committed offsets; restarting it",
        thousands(at_kill.records),
        thousands(at_kill.uncommitted.unwrap_or(0))
    ));

    let mut second = Role::spawn("archive", &run.exe, &run.args, &run.console)?;
    let restarted_pid = second.child.id();
    let (seen, restarted) = loop {
        let found = second
            .reported
            .borrow_and_update()
            .members
            .iter()
            .find_map(|(seen, json)| {
                let member: Membership = report_line::decode(json).ok()?;
                (member.partitions.len() >= first_member.partitions.len())
                    .then_some((*seen, member))
            });
        if let Some(found) = found {
            break found;
        }
        if second.exited()? || Instant::now() > deadline {
            bail!("the restarted archive consumer did not get its partitions back");
        }
        second.next_report(Duration::from_millis(50)).await;
    };
    let reassigned_after = seen.saturating_duration_since(killed);
    let members_after = run
        .client
        .admin()
        .describe_group(GROUP)
        .await?
        .members()
        .iter()
        .map(|m| (m.member_id().to_owned(), m.instance_id().map(str::to_owned)))
        .collect();
    run.console.println(&format!(
        "the restarted archive consumer (pid {restarted_pid}) got partitions {:?} back {} ms \
         after the SIGKILL, generation {} (was {})",
        restarted.partitions,
        reassigned_after.as_millis(),
        restarted.generation,
        first_member.generation
    ));

    let result = second
        .wait(deadline.saturating_duration_since(Instant::now()))
        .await?;
    Ok((
        result,
        Kill {
            pid,
            reported: at_kill.records,
            reported_uncommitted: at_kill.uncommitted.unwrap_or(0),
            first: first_member,
            restarted_pid,
            restarted,
            reassigned_after,
            members_after,
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
    kill: &'a Kill,
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
        println!(
            "  restart    SIGKILL at {} archived ({} past the commit); partitions back {} ms \
             later (generation {} kept); {} records read twice",
            thousands(self.kill.reported),
            thousands(self.kill.reported_uncommitted),
            self.kill.reassigned_after.as_millis(),
            self.kill.restarted.generation,
            thousands(self.archive.duplicates)
        );
        self.print_disk(client, server_data_dir).await
    }

    async fn print_disk(
        &self,
        client: &Client,
        server_data_dir: Option<&Path>,
    ) -> anyhow::Result<()> {
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
            .map(|(t, b)| format!("{t} {}", mb(*b)))
            .collect();
        println!(
            "  on disk    {} of log segments as the server counts them ({}); {:.2} bytes stored \
             per byte of JSON",
            mb(logs),
            per_topic.join(", "),
            logs as f64 / self.produced.value_bytes.max(1) as f64
        );
        if let Some(dir) = server_data_dir {
            let usage = disk_usage(dir);
            println!(
                "             {} allocated in {} (blocks; {} of file lengths): segment logs {}, \
                 indexes {}, other {}, {} files",
                mb(usage.allocated),
                dir.display(),
                mb(usage.apparent),
                mb(usage.logs),
                mb(usage.indexes),
                mb(usage.allocated.saturating_sub(usage.logs + usage.indexes)),
                usage.files
            );
            println!(
                "             (an active segment's offset and time indexes are allocated at their \
                 full size when it opens, whatever it holds)"
            );
        }
        println!("  time       {:.1} s for the whole run", self.total_secs);
        Ok(())
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Space taken by the files under a directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DiskUsage {
    /// Bytes of blocks allocated (`st_blocks` * 512): what the files really take.
    allocated: u64,
    /// Sum of file lengths, which counts preallocated and sparse space in full.
    apparent: u64,
    /// Allocated bytes of segment logs (`*.log`).
    logs: u64,
    /// Allocated bytes of offset and time indexes (`*.index`, `*.timeindex`).
    indexes: u64,
    files: u64,
}

/// Adds up every file under `dir`; what cannot be read counts as nothing.
fn disk_usage(dir: &Path) -> DiskUsage {
    let mut usage = DiskUsage::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return usage;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            let inner = disk_usage(&entry.path());
            usage.allocated += inner.allocated;
            usage.apparent += inner.apparent;
            usage.logs += inner.logs;
            usage.indexes += inner.indexes;
            usage.files += inner.files;
            continue;
        }
        let allocated = allocated_bytes(&meta);
        usage.allocated += allocated;
        usage.apparent += meta.len();
        usage.files += 1;
        match entry.path().extension().and_then(|e| e.to_str()) {
            Some("log") => usage.logs += allocated,
            Some("index" | "timeindex") => usage.indexes += allocated,
            _ => {}
        }
    }
    usage
}

#[cfg(unix)]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

#[cfg(not(unix))]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_waits_for_a_lead_with_room_before_the_next_commit() {
        let (half, all, every) = (10_000, 20_000, 5_000);
        // The largest lead from which the next poll cannot complete the interval.
        let room = every - MAX_POLL_RECORDS - 1;
        assert!(!inside_commit_interval(9_000, 1_000, half, all, every));
        assert!(!inside_commit_interval(10_000, 0, half, all, every));
        assert!(inside_commit_interval(10_000, 1, half, all, every));
        assert!(inside_commit_interval(11_000, room, half, all, every));
        // The next poll could complete the interval and commit before the signal lands.
        assert!(!inside_commit_interval(11_000, room + 1, half, all, every));
        // Done: nothing would be left to resume.
        assert!(!inside_commit_interval(20_000, 1_000, half, all, every));
    }

    #[test]
    fn a_sparse_file_counts_its_blocks_not_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = std::fs::File::create(dir.path().join("0.index")).unwrap();
        sparse.set_len(8 << 20).unwrap();
        std::fs::write(dir.path().join("0.log"), vec![1u8; 10_000]).unwrap();
        std::fs::create_dir(dir.path().join("p")).unwrap();
        std::fs::write(dir.path().join("p/meta"), b"x").unwrap();
        let usage = disk_usage(dir.path());
        assert_eq!(usage.files, 3);
        assert_eq!(usage.apparent, (8 << 20) + 10_001);
        assert!(usage.logs >= 10_000, "{usage:?}");
        assert!(usage.indexes < 1 << 20, "{usage:?}");
        assert!(usage.allocated < usage.apparent, "{usage:?}");
    }
}
