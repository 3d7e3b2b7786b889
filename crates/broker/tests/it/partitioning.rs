//! Partition choice: explicit, keyed (Kafka's murmur2), keyless (even spread).

use std::collections::BTreeMap;
use std::sync::Arc;

use rivulet_broker::{
    Durability, DurabilityPolicy, FetchRequest, ProduceRecord, ProduceRequest, TopicConfig,
};

use crate::open;

/// Keys and the partitions Kafka's default partitioner gives them for 6 and 12 partitions,
/// computed with kafka-python's `murmur2` (`(murmur2(key) & 0x7fffffff) % n`).
const KAFKA_TABLE: &[(&[u8], u32, u32)] = &[
    (b"", 3, 9),
    (b"a", 4, 4),
    (b"ab", 2, 2),
    (b"abc", 3, 3),
    (b"abcd", 2, 8),
    (b"abcde", 1, 1),
    (b"key-0", 1, 1),
    (b"key-1", 0, 0),
    (b"order-42", 0, 0),
    (b"user:1001", 5, 5),
    (b"\xff\x00\x80", 4, 10),
    (b"The quick brown fox", 3, 9),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_kafka_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("six", 6, TopicConfig::default())
        .await
        .unwrap();
    broker
        .create_topic("twelve", 12, TopicConfig::default())
        .await
        .unwrap();
    for &(key, six, twelve) in KAFKA_TABLE {
        assert_eq!(
            broker.partition_for_key("six", key).unwrap(),
            six,
            "{key:?}"
        );
        assert_eq!(
            broker.partition_for_key("twelve", key).unwrap(),
            twelve,
            "{key:?}"
        );
        let reply = broker
            .produce(ProduceRequest::records(
                "six",
                vec![ProduceRecord::keyed(key.to_vec(), "v")],
            ))
            .await
            .unwrap();
        assert_eq!(reply.appended[0].partition, six, "{key:?}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_partition_wins_over_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 6, TopicConfig::default())
        .await
        .unwrap();
    // "key-1" hashes to partition 0.
    let reply = broker
        .produce(
            ProduceRequest::records("t", vec![ProduceRecord::keyed("key-1", "v")]).to_partition(4),
        )
        .await
        .unwrap();
    assert_eq!(reply.appended[0].partition, 4);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_several_keys_is_split_by_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 6, TopicConfig::default())
        .await
        .unwrap();
    let records = vec![
        ProduceRecord::keyed("key-0", "1"),
        ProduceRecord::keyed("key-1", "2"),
        ProduceRecord::keyed("key-0", "3"),
    ];
    let reply = broker
        .produce(ProduceRequest::records("t", records))
        .await
        .unwrap();
    let parts: Vec<(u32, u64, u64)> = reply
        .appended
        .iter()
        .map(|a| (a.partition, a.base_offset, a.last_offset))
        .collect();
    assert_eq!(parts, [(0, 0, 0), (1, 0, 1)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc16_records_without_a_key_spread_over_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    let config = TopicConfig::default().with_durability(DurabilityPolicy::OsDecides);
    broker.create_topic("t16", 6, config).await.unwrap();
    let value = vec![b'v'; 200];

    // 3 producers x 20 000 keyless records, mixing single-record and 500-record calls.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let broker = Arc::clone(&broker);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let send = |n: usize| {
                let records = (0..n)
                    .map(|_| ProduceRecord::value(value.clone()))
                    .collect();
                let broker = Arc::clone(&broker);
                async move {
                    broker
                        .produce(
                            ProduceRequest::records("t16", records)
                                .with_durability(Durability::Written),
                        )
                        .await
                        .unwrap();
                }
            };
            for _ in 0..36 {
                send(500).await;
                for _ in 0..50 {
                    send(1).await;
                }
            }
            for _ in 0..200 {
                send(1).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counts: Vec<u64> = broker
        .describe_topic("t16")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 60_000);
    let mean = 10_000.0;
    for (p, &c) in counts.iter().enumerate() {
        assert!(
            (c as f64 - mean).abs() <= mean * 0.1,
            "partition {p}: {counts:?}"
        );
    }

    // Keyed records: 100 keys x 60 records, each key on one partition.
    let mut expected: BTreeMap<u32, u64> = BTreeMap::new();
    for round in 0..60 {
        let records: Vec<_> = (0..100)
            .map(|k| ProduceRecord::keyed(format!("key-{k}"), format!("{round}")))
            .collect();
        for k in 0..100 {
            let p = broker
                .partition_for_key("t16", format!("key-{k}").as_bytes())
                .unwrap();
            *expected.entry(p).or_default() += 1;
        }
        broker
            .produce(ProduceRequest::records("t16", records).with_durability(Durability::Written))
            .await
            .unwrap();
    }
    // The empty key is a key: all 1 000 in one partition (3 for 6 partitions, as in Kafka).
    for _ in 0..10 {
        let records = (0..100).map(|_| ProduceRecord::keyed("", "e")).collect();
        let reply = broker
            .produce(ProduceRequest::records("t16", records))
            .await
            .unwrap();
        assert_eq!(reply.appended.len(), 1);
        assert_eq!(reply.appended[0].partition, 3);
    }
    *expected.entry(3).or_default() += 1000;
    let after: Vec<u64> = broker
        .describe_topic("t16")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    for p in 0..6u32 {
        let added = after[p as usize] - counts[p as usize];
        assert_eq!(
            added,
            expected.get(&p).copied().unwrap_or(0),
            "partition {p}"
        );
    }

    // Null keys come back null, empty keys come back empty.
    let fetched = broker.fetch(FetchRequest::new("t16", 0, 0)).await.unwrap();
    assert_eq!(fetched.read.records().unwrap()[0].key, None);
    let end3 = after[3];
    let fetched = broker
        .fetch(FetchRequest::new("t16", 3, end3 - 1))
        .await
        .unwrap();
    assert_eq!(
        fetched.read.records().unwrap()[0].key.as_deref(),
        Some(&b""[..])
    );

    // Same mapping after restart.
    let mapping: Vec<u32> = (0..100)
        .map(|k| {
            broker
                .partition_for_key("t16", format!("key-{k}").as_bytes())
                .unwrap()
        })
        .collect();
    broker.shutdown().await.unwrap();
    drop(broker);
    let broker = open(dir.path()).await;
    let again: Vec<u32> = (0..100)
        .map(|k| {
            broker
                .partition_for_key("t16", format!("key-{k}").as_bytes())
                .unwrap()
        })
        .collect();
    assert_eq!(mapping, again);
    broker.shutdown().await.unwrap();
}
