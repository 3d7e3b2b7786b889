//! BC-12: a rebalance hands a partition over while its old owner is still working. Four
//! partitions of 1,000 records; member A polls 100 from each without committing; member B
//! joins. Variants: A commits before handing over; A stalls and never commits; sixteen
//! partitions and fifteen members joining at once; A leaving cleanly or crashing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_broker::MembershipTimeouts;
use rivulet_client::{
    Client, Consumer, OffsetReset, ProducerRecord, RebalanceEvent, Record, TopicPartition,
};
use tokio::time::Instant;

use crate::harness::{TestServer, create_topic};

const RECORDS_PER_PARTITION: u64 = 1_000;

async fn server_with_session(session: Duration) -> TestServer {
    // `start_with` takes a plain function, so the session timeout is chosen among two.
    if session == Duration::from_secs(1) {
        TestServer::start_with(|c| {
            c.with_group_timeouts(MembershipTimeouts {
                session: Duration::from_secs(1),
                rebalance: Duration::from_secs(5),
            })
        })
        .await
    } else {
        TestServer::start_with(|c| {
            c.with_group_timeouts(MembershipTimeouts {
                session: Duration::from_secs(5),
                rebalance: Duration::from_secs(5),
            })
        })
        .await
    }
}

async fn fill(client: &Client, topic: &str, partitions: u32) {
    create_topic(client, topic, partitions).await;
    let producer = client.producer().build();
    for partition in 0..partitions {
        for i in 0..RECORDS_PER_PARTITION {
            let record = ProducerRecord::new(topic)
                .partition(partition)
                .key(format!("k{i}"))
                .value(format!("{partition}-{i}"));
            drop(producer.send(record).await.unwrap());
        }
    }
    producer.flush().await.unwrap();
}

fn member(client: &Client, events: Option<Arc<Mutex<Vec<RebalanceEvent>>>>) -> Consumer {
    let mut builder = client
        .consumer()
        .group("g")
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(100);
    if let Some(events) = events {
        builder = builder.on_rebalance(move |e| events.lock().unwrap().push(e));
    }
    builder.build()
}

fn keys(records: &[Record]) -> Vec<(u32, u64)> {
    records
        .iter()
        .map(|r| (r.partition(), r.offset()))
        .collect()
}

/// Polls `consumer` until it returned 100 records from each of its partitions, pausing each
/// partition once it has its 100.
async fn poll_hundred_each(consumer: &mut Consumer) -> Vec<(u32, u64)> {
    let mut got: BTreeMap<u32, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.assignment().is_empty()
        || got.len() < consumer.assignment().len()
        || got.values().any(|&n| n < 100)
    {
        assert!(Instant::now() < deadline, "polled {got:?}");
        for (partition, offset) in keys(&consumer.poll(Duration::from_millis(200)).await.unwrap()) {
            *got.entry(partition).or_default() += 1;
            out.push((partition, offset));
        }
        let full: Vec<TopicPartition> = consumer
            .assignment()
            .into_iter()
            .filter(|tp| got.get(&tp.partition()).is_some_and(|&n| n >= 100))
            .collect();
        consumer.pause(&full).unwrap();
    }
    out
}

/// Polls until `consumer` holds `count` partitions or the limit passes; returns what it read.
async fn poll_until_holding(consumer: &mut Consumer, count: usize) -> Vec<(u32, u64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while consumer.assignment().len() != count {
        assert!(
            Instant::now() < deadline,
            "holds {:?}, wanted {count}",
            consumer.assignment()
        );
        out.extend(keys(
            &consumer.poll(Duration::from_millis(100)).await.unwrap(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc12_the_old_owner_commits_before_the_new_one_reads() {
    let server = server_with_session(Duration::from_secs(1)).await;
    let client = server.client().await;
    fill(&client, "t12", 4).await;

    let mut a = member(&client, None);
    a.subscribe(["t12"]).await.unwrap();
    let mut read_by_a = poll_hundred_each(&mut a).await;
    assert_eq!(read_by_a.len(), 400);

    let mut b = member(&client, None);
    b.subscribe(["t12"]).await.unwrap();
    assert!(b.assignment().is_empty(), "A still holds everything");
    a.commit().await.unwrap();
    a.resume(&a.assignment()).unwrap();

    // A keeps working and hands two partitions over; B takes them from A's commits.
    let mut read_by_b = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut distinct: BTreeSet<(u32, u64)> = read_by_a.iter().copied().collect();
    while distinct.len() < 4_000 {
        assert!(Instant::now() < deadline, "{} of 4000 read", distinct.len());
        let from_a = keys(&a.poll(Duration::from_millis(50)).await.unwrap());
        a.commit().await.unwrap();
        let from_b = keys(&b.poll(Duration::from_millis(50)).await.unwrap());
        b.commit().await.unwrap();
        distinct.extend(from_a.iter().chain(&from_b));
        read_by_a.extend(from_a);
        read_by_b.extend(from_b);
    }
    assert_eq!(a.assignment().len(), 2);
    assert_eq!(b.assignment().len(), 2);
    let a_set: BTreeSet<_> = read_by_a.iter().copied().collect();
    let b_set: BTreeSet<_> = read_by_b.iter().copied().collect();
    assert!(a_set.is_disjoint(&b_set), "a record went to both A and B");
    // A committed after every poll, so it committed just past the last record it read of a
    // partition before handing it over: B starts exactly there, no gap and no record twice.
    for tp in b.assignment() {
        let first = read_by_b
            .iter()
            .find(|(p, _)| *p == tp.partition())
            .unwrap();
        let last_of_a = read_by_a
            .iter()
            .filter(|(p, _)| *p == tp.partition())
            .map(|&(_, offset)| offset)
            .max()
            .unwrap();
        assert!(last_of_a >= 99, "A read its first hundred");
        assert_eq!(first.1, last_of_a + 1, "B starts where A committed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc12_a_stalled_owner_that_never_commits_loses_its_partitions_after_the_timeout() {
    let server = server_with_session(Duration::from_secs(1)).await;
    let client = server.client().await;
    fill(&client, "t12", 4).await;
    let events = Arc::new(Mutex::new(Vec::new()));

    let mut a = member(&client, Some(Arc::clone(&events)));
    a.subscribe(["t12"]).await.unwrap();
    let read_by_a: BTreeSet<(u32, u64)> = poll_hundred_each(&mut a).await.into_iter().collect();

    // A stalls: no polls, no heartbeats, no commits. B gets all four partitions once A's
    // session expires, from the committed offsets, which are none: A's 400 records come again.
    let mut b = member(&client, None);
    b.subscribe(["t12"]).await.unwrap();
    let mut read_by_b = poll_until_holding(&mut b, 4).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_by_b.len() < 4_000 {
        assert!(Instant::now() < deadline, "B read {}", read_by_b.len());
        read_by_b.extend(keys(&b.poll(Duration::from_millis(100)).await.unwrap()));
    }
    let read_by_b: BTreeSet<(u32, u64)> = read_by_b.into_iter().collect();
    assert_eq!(read_by_b.len(), 4_000, "every record at least once");
    let duplicates: BTreeSet<_> = read_by_a.intersection(&read_by_b).copied().collect();
    assert_eq!(
        duplicates, read_by_a,
        "duplicates are exactly the range A polled and never committed"
    );

    // A wakes up: it learns it was removed, loses its partitions without committing, and
    // joins again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, RebalanceEvent::Lost(lost) if lost.len() == 4))
    {
        assert!(Instant::now() < deadline, "A never heard it was removed");
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    // It joined again as a new member and shares the partitions with B.
    poll_until_holding_both(&mut a, &mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc12_fifteen_members_joining_at_once_end_with_one_partition_each() {
    let server = server_with_session(Duration::from_secs(5)).await;
    let client = server.client().await;
    create_topic(&client, "t16", 16).await;

    let holdings = Arc::new(Mutex::new(BTreeMap::<usize, usize>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for index in 0..16 {
        let client = client.clone();
        let shared = Arc::clone(&holdings);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut consumer = client.consumer().group("g16").auto_commit(None).build();
            consumer.subscribe(["t16"]).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                consumer.poll(Duration::from_millis(50)).await.unwrap();
                shared
                    .lock()
                    .unwrap()
                    .insert(index, consumer.assignment().len());
            }
            consumer.close().await.unwrap();
        }));
        if index == 0 {
            // The first member alone holds all sixteen before the others arrive together.
            let deadline = Instant::now() + Duration::from_secs(10);
            while holdings.lock().unwrap().get(&0) != Some(&16) {
                assert!(Instant::now() < deadline, "first member never held all 16");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sizes: Vec<usize> = holdings.lock().unwrap().values().copied().collect();
        if sizes.len() == 16 && sizes.iter().all(|&n| n == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "holdings {sizes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc12_a_clean_leave_moves_partitions_at_once_and_a_crash_after_the_session_timeout() {
    // A session timeout of 5 s: a clean leave must move the partitions well before it.
    let server = server_with_session(Duration::from_secs(5)).await;
    let client = server.client().await;
    fill(&client, "t12", 4).await;

    let mut a = member(&client, None);
    a.subscribe(["t12"]).await.unwrap();
    let mut b = member(&client, None);
    b.subscribe(["t12"]).await.unwrap();
    poll_until_holding_both(&mut a, &mut b).await;
    a.close().await.unwrap();
    let left = Instant::now();
    poll_until_holding(&mut b, 4).await;
    assert!(
        left.elapsed() < Duration::from_secs(5),
        "a clean leave waited for the session timeout"
    );

    // A crash: C joins, takes two, and vanishes without leaving; B gets them back only after
    // the session timeout.
    let mut c = member(&client, None);
    c.subscribe(["t12"]).await.unwrap();
    poll_until_holding_both(&mut b, &mut c).await;
    drop(c);
    let crashed = Instant::now();
    poll_until_holding(&mut b, 4).await;
    assert!(
        crashed.elapsed() >= Duration::from_secs(4),
        "a silent member lost its partitions before its session timed out"
    );
}

/// Polls both members until each holds two partitions.
async fn poll_until_holding_both(x: &mut Consumer, y: &mut Consumer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while x.assignment().len() != 2 || y.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "never split 2/2");
        x.poll(Duration::from_millis(50)).await.unwrap();
        y.poll(Duration::from_millis(50)).await.unwrap();
    }
}
