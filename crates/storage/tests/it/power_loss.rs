//! Simulated power loss: what each flush policy loses when the machine stops, measured against
//! acknowledgements, and recovery from what is left.
//!
//! A kill -9 keeps the page cache, so the crash tests say nothing about fsync. Here a
//! [`DurabilityWatch`] records what each sync made durable, and images of the directory as a
//! power loss would leave it are taken at random moments while writers run. Each image is
//! reopened afterwards and checked against every acknowledgement recorded before it was taken:
//!
//! - `EveryBatch` (what a `durable` produce relies on) must lose nothing acknowledged;
//! - `Interval(T)` may lose only records acknowledged less than T + timer period + two fsyncs
//!   (+ the scheduling lag measured during the run, + 25 ms) before the power loss;
//! - `Os` is bounded by nothing we control: the test shows records far older than any
//!   interval being lost.
//!
//! Recovery of every image must succeed, end the log exactly at the first lost offset, keep
//! every record below it intact, and take further appends at dense offsets.
//!
//! `RIVULET_POWER_LOSS_SEED` replays a run (the seed is printed). Run with `--nocapture` for
//! the figures quoted in `docs/reliability.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use rivulet_storage::{
    DurabilityWatch, FlushPolicy, ImageOptions, IndexImage, LogConfig, PartitionLog,
    PowerLossImage, StorageError, UnsyncedTail,
};
use tempfile::TempDir;

use crate::fixture::{Spec, build, read_all};

/// Period of the timer that calls `flush_if_due`, as a log's owner must under `Interval`.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Slack on top of the measured bound for what the run cannot measure: the time between a
/// sync being due and the thread that starts it getting a CPU, on a loaded machine.
pub(crate) const SLACK: Duration = Duration::from_millis(25);
/// Bytes of each record value.
const VALUE_LEN: usize = 100;

/// splitmix64: small, seeded, good enough to pick moments and sizes.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env() -> Rng {
        let seed = std::env::var("RIVULET_POWER_LOSS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("power loss: RIVULET_POWER_LOSS_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One acknowledged append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack {
    base: u64,
    last: u64,
    bytes: u64,
    at: Instant,
    writer: usize,
    seq: u64,
}

impl Ack {
    pub(crate) fn records(&self) -> u64 {
        self.last - self.base + 1
    }
}

/// The value of record `r` of batch `seq` of `writer`: unique, and padded to [`VALUE_LEN`].
pub(crate) fn value(writer: usize, seq: u64, r: u64) -> Vec<u8> {
    let mut v = format!("{writer}/{seq}/{r}/").into_bytes();
    v.resize(VALUE_LEN, b'.');
    v
}

pub(crate) fn batch_of(writer: usize, seq: u64, records: u64) -> BytesMut {
    let specs: Vec<Spec> = (0..records)
        .map(|r| Spec::new(seq as i64, None, Some(&value(writer, seq, r))))
        .collect();
    build(&specs)
}

/// An append that returned an error: its records may or may not be stored.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: StorageError,
    writer: usize,
    seq: u64,
    records: u64,
}

/// Appends batches of `records(seq)` records until `stop`, 200 000 batches, 30 seconds or the
/// first error (returned), pausing `pause` between them, and records every acknowledgement.
pub(crate) fn spawn_writer(
    log: &Arc<PartitionLog>,
    acks: &Arc<Mutex<Vec<Ack>>>,
    stop: &Arc<AtomicBool>,
    writer: usize,
    pause: Duration,
    records: impl Fn(u64) -> u64 + Send + 'static,
) -> thread::JoinHandle<Option<Failed>> {
    let (log, acks, stop) = (Arc::clone(log), Arc::clone(acks), Arc::clone(stop));
    let deadline = Instant::now() + Duration::from_secs(30);
    thread::spawn(move || {
        for seq in 0..200_000u64 {
            if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                return None;
            }
            let count = records(seq);
            let mut batch = batch_of(writer, seq, count);
            let bytes = batch.len() as u64;
            let info = match log.append(&mut batch) {
                Ok(info) => info,
                Err(error) => {
                    return Some(Failed {
                        error,
                        writer,
                        seq,
                        records: count,
                    });
                }
            };
            let at = Instant::now();
            acks.lock().push(Ack {
                base: info.base_offset,
                last: info.last_offset,
                bytes,
                at,
                writer,
                seq,
            });
            if !pause.is_zero() {
                thread::sleep(pause);
            }
        }
        None
    })
}

/// Calls `flush_if_due` every [`TICK`] until `stop` or its first error; returns the largest
/// lag behind schedule.
pub(crate) fn spawn_timer(
    log: &Arc<PartitionLog>,
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<Duration> {
    let (log, stop) = (Arc::clone(log), Arc::clone(stop));
    thread::spawn(move || {
        let mut max_lag = Duration::ZERO;
        let mut due = Instant::now() + TICK;
        for _ in 0..10_000 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            thread::sleep(due.saturating_duration_since(Instant::now()));
            max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
            if log.flush_if_due().is_err() {
                break;
            }
            due = Instant::now() + TICK;
        }
        max_lag
    })
}

/// What was known at a power loss.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crash {
    /// Acknowledgements recorded before it: every one of them was acknowledged before it.
    pub(crate) acked: usize,
    /// The log's durable offset read before it.
    pub(crate) durable: u64,
    /// When the machine stopped.
    pub(crate) at: Instant,
}

/// A power-loss image taken while writers ran.
struct Taken {
    dir: TempDir,
    crash: Crash,
    image: PowerLossImage,
}

fn take(
    watch: &DurabilityWatch,
    log: &PartitionLog,
    acks: &Mutex<Vec<Ack>>,
    options: ImageOptions,
) -> Taken {
    // Acknowledgements first, then the durable offset, then the ledger: each step happens after
    // the one before, so the image must honour both.
    let acked = acks.lock().len();
    let durable = log.durable_offset();
    let dir = tempfile::tempdir().unwrap();
    let image = watch.power_loss_image(dir.path(), options).unwrap();
    let crash = Crash {
        acked,
        durable,
        at: image.taken_at(),
    };
    Taken { dir, crash, image }
}

/// What reopening a directory after a power loss found.
pub(crate) struct Reopened {
    pub(crate) log_end: u64,
    /// Acknowledged before the power loss and not found, in offset order.
    pub(crate) lost: Vec<Ack>,
    pub(crate) torn_tail: bool,
}

impl Reopened {
    pub(crate) fn records_lost(&self) -> u64 {
        self.lost.iter().map(Ack::records).sum()
    }

    pub(crate) fn bytes_lost(&self) -> u64 {
        self.lost.iter().map(|a| a.bytes).sum()
    }

    /// Age at the power loss of the oldest lost acknowledgement.
    pub(crate) fn oldest_lost_age(&self, crash: &Crash) -> Option<Duration> {
        self.lost
            .iter()
            .map(|a| crash.at.saturating_duration_since(a.at))
            .max()
    }
}

/// Reopens the log in `dir` after a power loss and checks recovery: it succeeds; the log ends
/// at or past the durable offset read before the loss; every record below the end is the one
/// acknowledged at that offset (or, where nothing was acknowledged, one of an append that
/// failed); no acknowledged batch is cut in two; if anything acknowledged was lost, the log ends
/// exactly at the first lost offset; and appends continue densely, across a clean reopen too.
pub(crate) fn reopen(
    dir: &Path,
    crash: &Crash,
    all_acks: &[Ack],
    failed: &[Failed],
    config: &LogConfig,
) -> Reopened {
    let (log, report) = PartitionLog::open(dir, config.clone()).unwrap();
    let end = log.log_end_offset();
    assert!(
        end >= crash.durable,
        "log ends at {end}, below the durable offset {} read before the power loss",
        crash.durable
    );

    let expected: BTreeMap<u64, Vec<u8>> = all_acks
        .iter()
        .flat_map(|a| (0..a.records()).map(move |r| (a.base + r, value(a.writer, a.seq, r))))
        .collect();
    let maybe_stored: BTreeSet<Vec<u8>> = failed
        .iter()
        .flat_map(|f| (0..f.records).map(|r| value(f.writer, f.seq, r)))
        .collect();
    for record in read_all(&log, 0) {
        let offset = record.offset as u64;
        let found = record.value.as_deref().unwrap_or_default();
        match expected.get(&offset) {
            Some(value) => assert_eq!(found, &value[..], "record at offset {offset}"),
            None => assert!(
                maybe_stored.contains(found),
                "record at offset {offset} was never appended: {:?}",
                String::from_utf8_lossy(found)
            ),
        }
    }

    let mut lost: Vec<Ack> = all_acks[..crash.acked]
        .iter()
        .filter(|a| a.last >= end)
        .copied()
        .collect();
    lost.sort_by_key(|a| a.base);
    for ack in &lost {
        assert!(
            ack.base >= end,
            "batch {}..={} was cut at {end}",
            ack.base,
            ack.last
        );
    }
    if let Some(first) = lost.first() {
        // Everything from the log end up to the first lost batch was acknowledged later, or not
        // at all, so nothing recorded is missing in between.
        let unrecorded_before_first = all_acks[crash.acked..]
            .iter()
            .any(|a| a.base >= end && a.base < first.base);
        assert!(
            first.base == end || unrecorded_before_first,
            "log ends at {end}, but the first lost acknowledged offset is {}",
            first.base
        );
    }

    assert_eq!(
        log.append(&mut batch_of(99, 0, 3)).unwrap().base_offset,
        end
    );
    assert_eq!(
        log.append(&mut batch_of(99, 1, 2)).unwrap().base_offset,
        end + 3
    );
    log.close().unwrap();
    let (log, report_after_close) = PartitionLog::open(dir, config.clone()).unwrap();
    assert!(report_after_close.clean_shutdown);
    assert_eq!(log.log_end_offset(), end + 5);
    let tail = read_all(&log, end);
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[0].value.as_deref(), Some(&value(99, 0, 0)[..]));
    Reopened {
        log_end: end,
        lost,
        torn_tail: report.torn_tail.is_some(),
    }
}

/// Index treatment and unsynced tail for image `k`: every combination comes up.
fn options_for(k: usize, rng: &mut Rng) -> ImageOptions {
    let indexes = if k.is_multiple_of(2) {
        IndexImage::Missing
    } else {
        IndexImage::AsWritten
    };
    let tail = match (k / 2) % 3 {
        0 => UnsyncedTail::Dropped,
        1 => UnsyncedTail::Torn {
            keep: rng.below(3000),
        },
        _ => UnsyncedTail::Zeroed {
            len: rng.below(5000),
        },
    };
    ImageOptions::default()
        .with_indexes(indexes)
        .with_unsynced_tail(tail)
}

pub(crate) fn log_sync_durations(watch: &DurabilityWatch) -> Vec<Duration> {
    let mut durations: Vec<Duration> = watch
        .syncs()
        .iter()
        .filter(|s| s.synced_len.is_some() && s.path.extension().is_some_and(|e| e == "log"))
        .map(|s| s.duration)
        .collect();
    durations.sort_unstable();
    durations
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn every_batch_loses_no_acknowledged_record_at_any_power_loss() {
    const WRITERS: usize = 4;
    const IMAGES: usize = 20;
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let watch = DurabilityWatch::start(dir.path()).unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(16 * 1024)
        .with_index_interval_bytes(512)
        .with_flush(FlushPolicy::EveryBatch);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let log = Arc::new(log);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            spawn_writer(&log, &acks, &stop, w, Duration::ZERO, move |seq| {
                1 + (seq + w as u64) % 4
            })
        })
        .collect();

    let mut images = Vec::new();
    for k in 0..IMAGES {
        thread::sleep(Duration::from_millis(2 + rng.below(40)));
        let options = options_for(k, &mut rng);
        images.push(take(&watch, &log, &acks, options));
    }
    stop.store(true, Ordering::Release);
    for writer in writers {
        assert!(writer.join().unwrap().is_none());
    }
    let all_acks = acks.lock().clone();
    let syncs = log_sync_durations(&watch);

    let mut torn = 0;
    for taken in &images {
        let acked = &all_acks[..taken.crash.acked];
        let claimed = acked.iter().map(|a| a.last + 1).max().unwrap_or(0);
        assert!(
            taken.crash.durable >= claimed,
            "an acknowledged append was not durable"
        );
        let reopened = reopen(taken.dir.path(), &taken.crash, &all_acks, &[], &config);
        assert!(
            reopened.lost.is_empty(),
            "EveryBatch lost {} acknowledged records (first at {})",
            reopened.records_lost(),
            reopened.lost[0].base
        );
        torn += usize::from(reopened.torn_tail);
        println!(
            "power loss: every-batch image: {} acknowledged, log end {}, durable {}, {} bytes \
             dropped",
            taken.crash.acked,
            reopened.log_end,
            taken.crash.durable,
            taken.image.bytes_dropped()
        );
    }
    let records: u64 = all_acks.iter().map(Ack::records).sum();
    println!(
        "power loss: every-batch: {WRITERS} writers, {} appends ({records} records), {} log \
         fsyncs, {IMAGES} images ({torn} with a torn tail cut), 0 acknowledged records lost",
        all_acks.len(),
        syncs.len()
    );
}

/// Figures of one `Interval(T)` run.
struct IntervalFigures {
    interval: Duration,
    images: usize,
    records_lost_max: u64,
    bytes_lost_max: u64,
    oldest_lost_max: Duration,
    fsync_median: Duration,
    fsync_max: Duration,
    timer_lag_max: Duration,
    bound: Duration,
}

/// One writer under steady load (a batch of 4 records every 300 µs, about 10 000 records a
/// second) and a timer, `IMAGES` power losses at random phases of the sync cycle.
fn interval_run(interval: Duration, rng: &mut Rng) -> IntervalFigures {
    const IMAGES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let watch = DurabilityWatch::start(dir.path()).unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(1 << 20)
        .with_flush(FlushPolicy::Interval(interval));
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let log = Arc::new(log);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&log, &acks, &stop, 0, Duration::from_micros(300), |_| 4);
    let timer = spawn_timer(&log, &stop);

    thread::sleep((interval * 2).max(Duration::from_millis(50)));
    let mut images = Vec::new();
    for _ in 0..IMAGES {
        // Anywhere from a third of an interval to two and a third, so the power loss lands at
        // every phase of the sync cycle.
        let wait = interval.mul_f64(0.33 + rng.below(2000) as f64 / 1000.0);
        thread::sleep(wait);
        images.push(take(&watch, &log, &acks, ImageOptions::default()));
    }
    stop.store(true, Ordering::Release);
    assert!(writer.join().unwrap().is_none());
    let timer_lag_max = timer.join().unwrap();
    let all_acks = acks.lock().clone();
    let syncs = log_sync_durations(&watch);
    let fsync_max = syncs.last().copied().unwrap_or_default();
    let fsync_median = syncs.get(syncs.len() / 2).copied().unwrap_or_default();
    // A record written just after a sync started is not covered by it; the next sync starts an
    // interval after that one ended, at the latest on the timer's next tick, and is complete one
    // fsync later.
    let bound = interval + TICK + fsync_max * 2 + timer_lag_max + SLACK;

    let mut figures = IntervalFigures {
        interval,
        images: IMAGES,
        records_lost_max: 0,
        bytes_lost_max: 0,
        oldest_lost_max: Duration::ZERO,
        fsync_median,
        fsync_max,
        timer_lag_max,
        bound,
    };
    for taken in &images {
        let reopened = reopen(taken.dir.path(), &taken.crash, &all_acks, &[], &config);
        let oldest = reopened.oldest_lost_age(&taken.crash).unwrap_or_default();
        assert!(
            oldest < bound,
            "Interval({interval:?}) lost a record acknowledged {oldest:?} before the power loss, \
             past the bound of {bound:?} (largest fsync {fsync_max:?}, timer lag \
             {timer_lag_max:?})"
        );
        if let Some(first) = reopened.lost.first() {
            assert_eq!(
                reopened.log_end, first.base,
                "single writer: the lost are a suffix"
            );
        }
        figures.records_lost_max = figures.records_lost_max.max(reopened.records_lost());
        figures.bytes_lost_max = figures.bytes_lost_max.max(reopened.bytes_lost());
        figures.oldest_lost_max = figures.oldest_lost_max.max(oldest);
        println!(
            "power loss: interval {:>3} ms image: {:>6} acknowledged, {:>5} records / {:>7} \
             bytes lost, oldest lost {:>6.1} ms old",
            interval.as_millis(),
            taken.crash.acked,
            reopened.records_lost(),
            reopened.bytes_lost(),
            ms(oldest)
        );
    }
    figures
}

#[test]
fn interval_flush_loses_only_records_younger_than_the_interval() {
    let mut rng = Rng::from_env();
    let runs: Vec<IntervalFigures> = [10, 50, 200]
        .into_iter()
        .map(|ms| interval_run(Duration::from_millis(ms), &mut rng))
        .collect();
    println!(
        "power loss: | interval | images | most records lost | most bytes lost | oldest lost \
         | fsync median / max | timer lag max | bound checked |"
    );
    for f in &runs {
        println!(
            "power loss: | {} ms | {} | {} | {} | {:.1} ms | {:.2} / {:.2} ms | {:.1} ms | \
             {:.1} ms |",
            f.interval.as_millis(),
            f.images,
            f.records_lost_max,
            f.bytes_lost_max,
            ms(f.oldest_lost_max),
            ms(f.fsync_median),
            ms(f.fsync_max),
            ms(f.timer_lag_max),
            ms(f.bound)
        );
    }
}

#[test]
fn os_flush_loses_records_older_than_any_interval() {
    const RUN: Duration = Duration::from_millis(600);
    let dir = tempfile::tempdir().unwrap();
    let watch = DurabilityWatch::start(dir.path()).unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(16 << 20)
        .with_flush(FlushPolicy::Os);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let log = Arc::new(log);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&log, &acks, &stop, 0, Duration::from_micros(300), |_| 4);
    let started = Instant::now();
    while acks.lock().is_empty() && started.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(RUN);
    let taken = take(&watch, &log, &acks, ImageOptions::default());
    stop.store(true, Ordering::Release);
    assert!(writer.join().unwrap().is_none());
    let all_acks = acks.lock().clone();

    let reopened = reopen(taken.dir.path(), &taken.crash, &all_acks, &[], &config);
    let oldest = reopened.oldest_lost_age(&taken.crash).unwrap();
    assert_eq!(
        reopened.log_end, 0,
        "nothing was synced since the log was opened"
    );
    assert_eq!(reopened.lost.len(), taken.crash.acked);
    assert!(
        oldest >= RUN,
        "the oldest record lost was {oldest:?} old; the first one, acknowledged {RUN:?} before \
         the power loss, should be among them"
    );
    println!(
        "power loss: os: {} records / {} bytes acknowledged in {} ms, all lost; the oldest was \
         {:.1} ms old",
        reopened.records_lost(),
        reopened.bytes_lost(),
        RUN.as_millis(),
        ms(oldest)
    );
}
