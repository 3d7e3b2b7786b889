//! Consumer groups end to end: members share partitions, a newcomer takes only what balance
//! needs, a dead member's partitions move after the session timeout, and with commit after
//! processing the group sees every record, with duplicates only from the dead member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_broker::MembershipTimeouts;
use rivulet_client::{Client, ClientError, OffsetReset, ProducerRecord, RebalanceEvent};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::harness::{TestServer, create_topic};

const PARTITIONS: u32 = 6;

/// What the consumers share with the test.
#[derive(Default)]
struct Observed {
    /// Every record processed: (consumer, partition, offset).
    processed: Vec<(usize, u32, u64)>,
    /// Each consumer's assignment after its last poll.
    assignment: BTreeMap<usize, BTreeSet<u32>>,
    /// Each consumer's last successfully committed position per partition.
    committed: BTreeMap<(usize, u32), u64>,
    events: Vec<(usize, RebalanceEvent)>,
}

fn start_consumer(
    client: Client,
    index: usize,
    observed: Arc<Mutex<Observed>>,
) -> JoinHandle<Result<(), ClientError>> {
    tokio::spawn(async move {
        let events = Arc::clone(&observed);
        let mut consumer = client
            .consumer()
            .group("workers")
            .offset_reset(OffsetReset::Earliest)
            .auto_commit(None)
            .on_rebalance(move |event| events.lock().unwrap().events.push((index, event)))
            .build();
        consumer.subscribe(["jobs"]).await?;
        // Bounded: the test aborts or ends it well before this.
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let records = consumer.poll(Duration::from_millis(100)).await?;
            {
                let mut seen = observed.lock().unwrap();
                for record in &records {
                    seen.processed
                        .push((index, record.partition(), record.offset()));
                }
            }
            // Commit after processing; a refusal means the partition moved, which is fine.
            match consumer.commit().await {
                Ok(()) => {
                    let mut seen = observed.lock().unwrap();
                    for tp in consumer.assignment() {
                        if let Some(position) = consumer.position(&tp) {
                            seen.committed.insert((index, tp.partition()), position);
                        }
                    }
                }
                Err(ClientError::NotMember { .. }) => {}
                Err(err) => return Err(err),
            }
            let assigned = consumer
                .assignment()
                .iter()
                .map(|tp| tp.partition())
                .collect();
            observed.lock().unwrap().assignment.insert(index, assigned);
        }
        consumer.close().await
    })
}

/// Waits until the live consumers' assignment sizes, sorted, are `sizes`.
async fn wait_for_sizes(observed: &Mutex<Observed>, live: &[usize], sizes: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let current: Vec<usize> = {
            let seen = observed.lock().unwrap();
            let mut v: Vec<usize> = live
                .iter()
                .map(|i| seen.assignment.get(i).map_or(0, BTreeSet::len))
                .collect();
            v.sort_unstable();
            v
        };
        if current == sizes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "assignment {current:?}, wanted {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_rebalances_and_survives_a_dead_member_without_losing_records() {
    let server = TestServer::start_with(|config| {
        config.with_group_timeouts(MembershipTimeouts {
            session: Duration::from_secs(1),
            rebalance: Duration::from_secs(5),
        })
    })
    .await;
    let client = server.client().await;
    create_topic(&client, "jobs", PARTITIONS).await;
    let observed = Arc::new(Mutex::new(Observed::default()));

    // A producer runs through everything: 40 rounds of 25 keyed records.
    let producer_client = client.clone();
    let producer = tokio::spawn(async move {
        let producer = producer_client
            .producer()
            .linger(Duration::from_millis(2))
            .build();
        let mut produced = BTreeSet::new();
        for round in 0..40 {
            let mut acks = Vec::new();
            for i in 0..25 {
                let record = ProducerRecord::new("jobs")
                    .key(format!("key-{i}"))
                    .value(format!("job-{round}-{i}"));
                acks.push(producer.send(record).await.unwrap());
            }
            for ack in acks {
                let offset = ack.await.unwrap();
                produced.insert((offset.partition(), offset.offset()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        produced
    });

    let mut consumers: Vec<JoinHandle<_>> = (0..3)
        .map(|i| start_consumer(client.clone(), i, Arc::clone(&observed)))
        .collect();
    wait_for_sizes(&observed, &[0, 1, 2], &[2, 2, 2]).await;
    let before: BTreeMap<usize, BTreeSet<u32>> = observed.lock().unwrap().assignment.clone();

    // A fourth member joins: sticky moves exactly one partition, to it.
    consumers.push(start_consumer(client.clone(), 3, Arc::clone(&observed)));
    wait_for_sizes(&observed, &[0, 1, 2, 3], &[1, 1, 2, 2]).await;
    let after = observed.lock().unwrap().assignment.clone();
    let moved: usize = (0..3)
        .map(|i| before[&i].difference(&after[&i]).count())
        .sum();
    assert_eq!(moved, 1, "before {before:?}, after {after:?}");
    assert_eq!(after[&3].len(), 1);

    // Member 0 dies: no leave, no more heartbeats. Its partitions move after the session
    // timeout.
    consumers.remove(0).abort();
    let died = Instant::now();
    wait_for_sizes(&observed, &[1, 2, 3], &[2, 2, 2]).await;
    println!(
        "partitions of the dead member moved after {:?}",
        died.elapsed()
    );

    let produced = producer.await.unwrap();
    // Wait until the group has processed everything produced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: BTreeSet<(u32, u64)> = observed
            .lock()
            .unwrap()
            .processed
            .iter()
            .map(|&(_, p, o)| (p, o))
            .collect();
        if produced.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} records processed",
            seen.intersection(&produced).count(),
            produced.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for consumer in consumers {
        consumer.abort();
    }

    // Duplicates come only from the dead member, on records after its last commit.
    let seen = observed.lock().unwrap();
    let mut by_record: BTreeMap<(u32, u64), Vec<usize>> = BTreeMap::new();
    for &(consumer, partition, offset) in &seen.processed {
        by_record
            .entry((partition, offset))
            .or_default()
            .push(consumer);
    }
    let mut duplicates = 0;
    for ((partition, offset), readers) in &by_record {
        if readers.len() < 2 {
            continue;
        }
        duplicates += readers.len() - 1;
        assert!(
            readers.contains(&0),
            "{partition}/{offset} read by {readers:?}"
        );
        let committed = seen.committed.get(&(0, *partition)).copied().unwrap_or(0);
        assert!(
            *offset >= committed,
            "{partition}/{offset} read twice though the dead member committed {committed}"
        );
    }
    println!(
        "produced {}, processed {}, duplicates {duplicates} (all from the dead member's \
         uncommitted tail)",
        produced.len(),
        seen.processed.len()
    );
    assert!(
        seen.events
            .iter()
            .any(|(i, e)| *i != 0 && matches!(e, RebalanceEvent::Revoked(_)))
    );
}
