//! Crash loop: producers write with `durable` and record every acknowledgement, a consumer group
//! reads and commits as it goes, and the real server is SIGKILLed at random moments and
//! restarted, again and again. After every restart and at the end the log is checked against
//! what was acknowledged:
//!
//! - every durably acknowledged record is present, at the offset its acknowledgement named
//!   (promises 1 and 2: nothing lost, nothing renumbered);
//! - offsets are dense from 0 in every partition, and every record the consumer was ever served
//!   is still at the offset it was served at (page-cache data survives a process kill);
//! - the group's committed offsets are never behind the last acknowledged commit (promise 4);
//! - a record appears more than once only if a produce of it failed and was retried.
//!
//! `RIVULET_CRASH_KILLS` sets the number of kills (default 20); `RIVULET_CRASH_SEED` replays a
//! run. A longer run: `RIVULET_CRASH_KILLS=300 cargo test -p rivulet-cli --test it crash_loop
//! -- --nocapture`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::harness::Server;

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;
const PRODUCERS: u32 = 3;
const GROUP: &str = "crash-readers";
/// Small segments, so kills also land during segment rolls.
const SEGMENT_BYTES: u64 = 16 * 1024;
/// Every RPC gives up after this long; a killed server resets its connections at once.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Wall-clock budget per requested kill; the loop fails rather than run on past it.
const BUDGET_PER_KILL: Duration = Duration::from_secs(5);

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What clients were told, shared by every task across every life of the server.
#[derive(Default)]
struct Ledger {
    /// (partition, offset) -> value, for every durably acknowledged record.
    acked: HashMap<(u32, u64), String>,
    /// Values whose produce failed at least once (so may be stored more than once).
    retried: HashSet<String>,
    /// (partition, offset) -> value, for every record the consumer was served.
    served: HashMap<(u32, u64), String>,
    /// Per partition: the last commit the server acknowledged.
    committed: BTreeMap<u32, u64>,
    /// Per partition: the largest commit ever sent (acknowledged or not).
    commit_sent: BTreeMap<u32, u64>,
    produce_ok: u64,
    produce_failed: u64,
    commits_ok: u64,
}

type Shared = Arc<Mutex<Ledger>>;

/// One producer's state carried from one life of the server to the next.
struct Producer {
    id: u32,
    next_seq: u64,
    /// A batch whose produce failed; it is sent again before anything new.
    pending: Option<(u32, Vec<String>)>,
    rng: Rng,
}

impl Producer {
    fn new_batch(&mut self) -> (u32, Vec<String>) {
        let partition = self.rng.below(u64::from(PARTITIONS)) as u32;
        let count = 1 + self.rng.below(12);
        let values = (0..count)
            .map(|_| {
                let seq = self.next_seq;
                self.next_seq += 1;
                let pad = "x".repeat(20 + self.rng.below(300) as usize);
                format!("p{}-{seq:08}-{pad}", self.id)
            })
            .collect();
        (partition, values)
    }
}

fn channel(server: &Server) -> Channel {
    Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(RPC_TIMEOUT)
        .connect_lazy()
}

fn produce_request(partition: u32, values: &[String]) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: TOPIC.into(),
        partition: Some(partition),
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records: values
                .iter()
                .map(|v| v1::ProduceRecord {
                    value: Some(Bytes::from(v.clone())),
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

/// Produces until told to stop; failed batches stay pending for the next life.
async fn run_producer(
    mut producer: Producer,
    channel: Channel,
    ledger: Shared,
    mut stop: watch::Receiver<bool>,
) -> Producer {
    let mut log = LogClient::new(channel);
    while !*stop.borrow() {
        let (partition, values) = match producer.pending.take() {
            Some(batch) => batch,
            None => producer.new_batch(),
        };
        let call = tokio::time::timeout(
            RPC_TIMEOUT,
            log.produce(produce_request(partition, &values)),
        );
        let reply = tokio::select! {
            reply = call => reply,
            _ = stop.changed() => Ok(Err(tonic::Status::cancelled("server killed"))),
        };
        match reply {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                assert_eq!(reply.batches.len(), 1, "{reply:?}");
                let ack = &reply.batches[0];
                assert_eq!(ack.partition, partition);
                assert_eq!(ack.last_offset - ack.base_offset + 1, values.len() as u64);
                assert!(
                    ack.durable_offset > ack.last_offset,
                    "durable ack not durable: {ack:?}"
                );
                let mut ledger = ledger.lock().unwrap();
                ledger.produce_ok += 1;
                for (offset, value) in (ack.base_offset..).zip(values) {
                    let previous = ledger.acked.insert((partition, offset), value);
                    assert!(
                        previous.is_none(),
                        "offset {partition}/{offset} acknowledged twice"
                    );
                }
            }
            Ok(Err(_)) | Err(_) => {
                {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.produce_failed += 1;
                    ledger.retried.extend(values.iter().cloned());
                }
                producer.pending = Some((partition, values));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    producer
}

/// Reads every partition round-robin from the group's committed offsets, checking each record
/// against what was acknowledged, and commits after each read, until told to stop.
async fn run_consumer(channel: Channel, ledger: Shared, mut stop: watch::Receiver<bool>) {
    let mut log = LogClient::new(channel);
    let mut positions: BTreeMap<u32, u64> = ledger.lock().unwrap().committed.clone();
    let mut partition = 0;
    while !*stop.borrow() {
        partition = (partition + 1) % PARTITIONS;
        let offset = positions.get(&partition).copied().unwrap_or(0);
        let fetch = log.fetch(v1::FetchRequest {
            topic: TOPIC.into(),
            partition,
            offset,
            max_bytes: 16 * 1024,
            max_wait_ms: 20,
            ..Default::default()
        });
        let reply = tokio::select! {
            reply = tokio::time::timeout(RPC_TIMEOUT, fetch) => reply,
            _ = stop.changed() => return,
        };
        let Ok(Ok(reply)) = reply else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let reply = reply.into_inner();
        {
            let mut ledger = ledger.lock().unwrap();
            for (expected, record) in (offset..).zip(&reply.records) {
                assert_eq!(record.offset, expected, "partition {partition} not dense");
                let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
                if let Some(acked) = ledger.acked.get(&(partition, expected)) {
                    assert_eq!(
                        acked, &value,
                        "partition {partition} offset {expected} changed"
                    );
                }
                let served = ledger
                    .served
                    .entry((partition, expected))
                    .or_insert(value.clone());
                assert_eq!(
                    served, &value,
                    "partition {partition} offset {expected} renumbered"
                );
            }
        }
        if reply.records.is_empty() {
            continue;
        }
        let next = reply.next_offset;
        positions.insert(partition, next);
        {
            let mut ledger = ledger.lock().unwrap();
            let sent = ledger.commit_sent.entry(partition).or_insert(0);
            *sent = (*sent).max(next);
        }
        let commit = log.commit_offsets(v1::CommitOffsetsRequest {
            group: GROUP.into(),
            offsets: vec![v1::OffsetCommit {
                topic: TOPIC.into(),
                partition,
                offset: next as i64,
                metadata: None,
            }],
            ..Default::default()
        });
        let reply = tokio::select! {
            reply = tokio::time::timeout(RPC_TIMEOUT, commit) => reply,
            _ = stop.changed() => return,
        };
        if let Ok(Ok(_)) = reply {
            let mut ledger = ledger.lock().unwrap();
            ledger.commits_ok += 1;
            let committed = ledger.committed.entry(partition).or_insert(0);
            assert!(*committed <= next, "commits of one consumer went backwards");
            *committed = next;
        }
    }
}

/// Checks, right after a restart, that the committed offsets are where the last acknowledged
/// commit left them (or at a later commit that was in flight), and that each partition's log
/// end covers everything acknowledged.
async fn check_after_restart(server: &Server, ledger: &Shared) {
    let mut log = LogClient::new(channel(server));
    let offsets = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: GROUP.into(),
            topic: Some(TOPIC.into()),
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    let stored: BTreeMap<u32, u64> = offsets.iter().map(|c| (c.partition, c.offset)).collect();
    let mut admin = AdminClient::new(channel(server));
    let topic = admin
        .describe_topic(v1::DescribeTopicRequest { name: TOPIC.into() })
        .await
        .unwrap()
        .into_inner();

    let mut ledger = ledger.lock().unwrap();
    for (&partition, &committed) in &ledger.committed {
        let found = stored.get(&partition).copied();
        let sent = ledger.commit_sent[&partition];
        assert!(
            found.is_some_and(|found| found >= committed && found <= sent),
            "partition {partition}: committed offset {found:?} after restart, last acknowledged \
             commit {committed}, largest sent {sent}"
        );
    }
    // A commit that was in flight and landed is now the group's position.
    for (&partition, &found) in &stored {
        ledger.committed.insert(partition, found);
    }
    for info in &topic.partitions {
        let acked_end = ledger
            .acked
            .keys()
            .filter(|(p, _)| *p == info.partition)
            .map(|(_, o)| o + 1)
            .max()
            .unwrap_or(0);
        assert!(
            info.high_watermark >= acked_end && info.durable_offset >= acked_end,
            "partition {}: log end {} durable {} behind acknowledged end {acked_end}",
            info.partition,
            info.high_watermark,
            info.durable_offset
        );
        assert_eq!(info.log_start_offset, 0);
    }
}

/// Reads one partition whole, checking the offsets are dense from 0.
async fn read_partition(log: &mut LogClient<Channel>, partition: u32) -> Vec<String> {
    let mut values = Vec::new();
    loop {
        let offset = values.len() as u64;
        let reply = log
            .fetch(v1::FetchRequest {
                topic: TOPIC.into(),
                partition,
                offset,
                max_bytes: 1 << 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for (expected, record) in (offset..).zip(&reply.records) {
            assert_eq!(record.offset, expected, "partition {partition} not dense");
            values.push(String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap());
        }
        if reply.records.is_empty() {
            assert_eq!(offset, reply.high_watermark, "empty read below the log end");
            return values;
        }
    }
}

/// Figures of one crash-loop run.
#[derive(Debug)]
struct Figures {
    kills: u32,
    acknowledged: usize,
    found: usize,
    duplicates: usize,
    unacknowledged_found: usize,
    lost: usize,
    served: usize,
    commits: u64,
}

/// The whole log checked against the ledger.
async fn verify(server: &Server, ledger: &Shared, kills: u32) -> Figures {
    let mut log = LogClient::new(channel(server));
    let mut stored: HashMap<(u32, u64), String> = HashMap::new();
    for partition in 0..PARTITIONS {
        for (offset, value) in (0..).zip(read_partition(&mut log, partition).await) {
            stored.insert((partition, offset), value);
        }
    }
    let ledger = ledger.lock().unwrap();

    let mut lost = 0;
    for (key, value) in &ledger.acked {
        if stored.get(key) != Some(value) {
            lost += 1;
            eprintln!("lost or changed: {key:?} acknowledged as {value:.20}");
        }
    }
    for (key, value) in &ledger.served {
        assert_eq!(
            stored.get(key),
            Some(value),
            "served record {key:?} changed or vanished"
        );
    }

    let mut copies: HashMap<&str, usize> = HashMap::new();
    for value in stored.values() {
        assert!(
            value.starts_with('p'),
            "a record nobody produced: {value:.40}"
        );
        *copies.entry(value.as_str()).or_default() += 1;
    }
    let acked_values: HashSet<&str> = ledger.acked.values().map(String::as_str).collect();
    let mut duplicates = 0;
    for (value, count) in &copies {
        if *count > 1 {
            assert!(
                ledger.retried.contains(*value),
                "{value:.20} stored {count} times but never retried"
            );
            duplicates += count - 1;
        }
    }
    let unacknowledged_found = copies.keys().filter(|v| !acked_values.contains(*v)).count();

    Figures {
        kills,
        acknowledged: ledger.acked.len(),
        found: stored.len(),
        duplicates,
        unacknowledged_found,
        lost,
        served: ledger.served.len(),
        commits: ledger.commits_ok,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_loses_no_durable_record_and_no_committed_offset() {
    let kills_wanted = env_u64("RIVULET_CRASH_KILLS").unwrap_or(20) as u32;
    let seed = env_u64("RIVULET_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_nanos() as u64 | 1
    });
    println!("crash loop: seed {seed}, {kills_wanted} kills");
    let mut rng = Rng(seed);
    let deadline = Instant::now() + BUDGET_PER_KILL * kills_wanted.max(1);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, dir.path().join("life-0.log"));
    AdminClient::new(channel(&server))
        .create_topic(v1::CreateTopicRequest {
            name: TOPIC.into(),
            partitions: PARTITIONS,
            config: Some(v1::TopicConfig {
                segment_bytes: Some(SEGMENT_BYTES),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    let ledger: Shared = Arc::default();
    let mut producers: Vec<Producer> = (0..PRODUCERS)
        .map(|id| Producer {
            id,
            next_seq: 0,
            pending: None,
            rng: Rng(seed.wrapping_add(u64::from(id) + 1) | 1),
        })
        .collect();
    let mut server = Some(server);
    let mut kills = 0;
    while kills < kills_wanted {
        assert!(
            Instant::now() < deadline,
            "crash loop ran out of time after {kills} kills"
        );
        let live = server.take().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let mut tasks = Vec::new();
        for producer in producers.drain(..) {
            let task = run_producer(producer, channel(&live), ledger.clone(), stop.clone());
            tasks.push(tokio::spawn(task));
        }
        let consumer = tokio::spawn(run_consumer(channel(&live), ledger.clone(), stop));

        // Mostly mid-traffic; sometimes right after start, while recovery's effects are fresh.
        let delay = if rng.below(5) == 0 {
            rng.below(30)
        } else {
            50 + rng.below(600)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        live.kill();
        kills += 1;
        stop_tx.send(true).unwrap();
        for task in tasks {
            producers.push(task.await.unwrap());
        }
        consumer.await.unwrap();

        let restarted = Server::start(&data, dir.path().join(format!("life-{kills}.log")));
        check_after_restart(&restarted, &ledger).await;
        server = Some(restarted);
    }

    // Last life: send what is still pending, then check the whole log.
    let live = server.take().unwrap();
    let (_stop_tx, stop) = watch::channel(false);
    for producer in &mut producers {
        if let Some((partition, values)) = producer.pending.take() {
            let reply = LogClient::new(channel(&live))
                .produce(produce_request(partition, &values))
                .await
                .unwrap()
                .into_inner();
            let mut ledger = ledger.lock().unwrap();
            for (offset, value) in (reply.batches[0].base_offset..).zip(values) {
                ledger.acked.insert((partition, offset), value);
            }
        }
    }
    drop(stop);
    let figures = verify(&live, &ledger, kills).await;
    let (produce_ok, produce_failed) = {
        let ledger = ledger.lock().unwrap();
        (ledger.produce_ok, ledger.produce_failed)
    };
    println!(
        "crash loop: {} kills, {} records acknowledged, {} found, {} duplicates from retries, \
         {} found unacknowledged, {} lost; {} records served to the consumer, {} commits \
         acknowledged; {produce_ok} produces acknowledged, {produce_failed} failed and retried",
        figures.kills,
        figures.acknowledged,
        figures.found,
        figures.duplicates,
        figures.unacknowledged_found,
        figures.lost,
        figures.served,
        figures.commits,
    );
    assert_eq!(figures.lost, 0, "{figures:?}");
    assert!(figures.acknowledged > 0, "{figures:?}");
    assert!(live.terminate().await.success());
}
