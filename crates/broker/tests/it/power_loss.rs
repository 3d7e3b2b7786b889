//! Simulated power loss under `written` produce: a topic with a sync interval loses only
//! records acknowledged less than the interval (plus the background check period and two
//! fsyncs) before the machine stopped, and a partition that went quiet is synced by the
//! background task, so it loses nothing once that bound has passed.
//!
//! The storage crate's `DurabilityWatch` records what each fsync under the data directory made
//! durable; images of the directory as a power loss would leave it are reopened as a broker.
//! The storage-level measurements are in `rivulet-storage`'s `tests/it/power_loss.rs`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rivulet_broker::{
    Broker, BrokerConfig, Durability, DurabilityPolicy, ProduceRecord, ProduceRequest, TopicConfig,
};
use rivulet_storage::{DurabilityWatch, ImageOptions, PowerLossImage};
use tempfile::TempDir;

use crate::read_all;

const TOPIC: &str = "written";
const INTERVAL: Duration = Duration::from_millis(50);
const CHECK: Duration = Duration::from_millis(20);
/// For what the run does not measure: the background task and the producer waiting for a CPU
/// on a loaded machine.
const SLACK: Duration = Duration::from_millis(50);

struct Taken {
    dir: TempDir,
    acked: usize,
    image: PowerLossImage,
}

fn take(watch: &DurabilityWatch, acks: &Mutex<Vec<(u64, Instant)>>) -> Taken {
    let acked = acks.lock().len();
    let dir = tempfile::tempdir().expect("temporary directory");
    let image = watch
        .power_loss_image(dir.path(), ImageOptions::default())
        .expect("power-loss image");
    Taken { dir, acked, image }
}

/// Reopens an image as a broker: every record below the log end is the one produced at that
/// offset, the log ends at the first lost acknowledged offset, and a produce lands there.
/// Returns the log end.
async fn reopen(dir: &Path, acks: &[(u64, Instant)]) -> u64 {
    let broker = Broker::open(BrokerConfig::new(dir))
        .await
        .expect("broker recovers from the power loss");
    let records = read_all(&broker, TOPIC, 0, 0).await;
    for (offset, value) in &records {
        assert_eq!(value.as_deref(), Some(format!("w-{offset}").as_bytes()));
    }
    let end = records.len() as u64;
    if let Some(&(first_lost, _)) = acks.iter().find(|(offset, _)| *offset >= end) {
        assert_eq!(end, first_lost, "the log must end at the first lost offset");
    }
    let next = crate::produce_one(&broker, TOPIC, 0, "after", Durability::Durable).await;
    assert_eq!(next, end);
    broker.shutdown().await.expect("clean shutdown");
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_produce_loses_only_records_younger_than_the_sync_interval() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let watch = DurabilityWatch::start(&data).unwrap();
    let broker = Arc::new(
        Broker::open(BrokerConfig::new(&data).with_flush_check_interval(CHECK))
            .await
            .unwrap(),
    );
    let config = TopicConfig::default().with_durability(DurabilityPolicy::SyncInterval(INTERVAL));
    broker.create_topic(TOPIC, 1, config).await.unwrap();

    // One producer, one record per request, `written`, about a thousand requests a second.
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (broker, acks, stop) = (Arc::clone(&broker), Arc::clone(&acks), Arc::clone(&stop));
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            for i in 0..100_000u64 {
                if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                    break;
                }
                let request =
                    ProduceRequest::records(TOPIC, vec![ProduceRecord::value(format!("w-{i}"))])
                        .to_partition(0)
                        .with_durability(Durability::Written);
                let offset = broker.produce(request).await.unwrap().base_offset();
                assert_eq!(offset, i);
                acks.lock().push((offset, Instant::now()));
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    };

    // Power losses at fixed fractions of the interval: the sync schedule drifts with the load,
    // so these land at different phases of it.
    tokio::time::sleep(INTERVAL * 2).await;
    let mut images = Vec::new();
    for fraction in [0.4, 1.1, 0.7, 1.9, 0.55, 1.45, 0.9, 2.2] {
        tokio::time::sleep(INTERVAL.mul_f64(fraction)).await;
        images.push(take(&watch, &acks));
    }
    stop.store(true, Ordering::Release);
    producer.await.unwrap();

    // Quiet: no produce for longer than the bound; the background task must have synced it all.
    let quiet_wait = INTERVAL + CHECK + SLACK + Duration::from_millis(200);
    tokio::time::sleep(quiet_wait).await;
    let quiet = take(&watch, &acks);
    broker.shutdown().await.unwrap();

    let all_acks = acks.lock().clone();
    let partition_dir = data.join("topics").join(TOPIC).join("0");
    let mut fsyncs: Vec<Duration> = watch
        .syncs()
        .iter()
        .filter(|s| s.synced_len.is_some() && s.path.starts_with(&partition_dir))
        .map(|s| s.duration)
        .collect();
    fsyncs.sort_unstable();
    let fsync_max = fsyncs.last().copied().unwrap_or_default();
    let bound = INTERVAL + CHECK + fsync_max * 2 + SLACK;

    let mut oldest_max = Duration::ZERO;
    let mut lost_max = 0;
    for taken in &images {
        let acked = &all_acks[..taken.acked];
        let end = reopen(taken.dir.path(), acked).await;
        let lost: Vec<&(u64, Instant)> = acked.iter().filter(|(o, _)| *o >= end).collect();
        let oldest = lost
            .first()
            .map(|(_, at)| taken.image.taken_at().saturating_duration_since(*at))
            .unwrap_or_default();
        assert!(
            oldest < bound,
            "a written record acknowledged {oldest:?} before the power loss was lost; the \
             bound is {bound:?}"
        );
        oldest_max = oldest_max.max(oldest);
        lost_max = lost_max.max(lost.len());
        println!(
            "power loss: broker written, interval {} ms: {} acknowledged, {} lost, oldest lost \
             {:.1} ms old",
            INTERVAL.as_millis(),
            taken.acked,
            lost.len(),
            oldest.as_secs_f64() * 1000.0
        );
    }

    let end = reopen(quiet.dir.path(), &all_acks[..quiet.acked]).await;
    assert_eq!(
        end, quiet.acked as u64,
        "a partition quiet for {quiet_wait:?} must have been synced by the background task"
    );
    println!(
        "power loss: broker written, interval {} ms, check {} ms: {} images, at most {lost_max} \
         records lost, oldest lost {:.1} ms (bound {:.1} ms, fsync max {:.2} ms); after {} ms \
         quiet, 0 of {} lost",
        INTERVAL.as_millis(),
        CHECK.as_millis(),
        images.len(),
        oldest_max.as_secs_f64() * 1000.0,
        bound.as_secs_f64() * 1000.0,
        fsync_max.as_secs_f64() * 1000.0,
        quiet_wait.as_millis(),
        quiet.acked
    );
}
