//! Produce: raw batches, structured records, size rules, concurrency, durability.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use rivulet_broker::{
    BrokerError, Durability, DurabilityPolicy, ErrorKind, FetchRequest, ProduceRecord,
    ProduceRequest, TopicConfig,
};
use rivulet_format::{BatchBuilder, Compression};

use crate::{open, read_all};

fn raw_batch(values: &[&str]) -> bytes::BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for v in values {
        builder.push(1_700_000_000_000, None, Some(v.as_bytes()), &[]);
    }
    builder.build().expect("batch builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_batches_get_offsets_assigned_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 2, TopicConfig::default())
        .await
        .unwrap();

    let first = broker
        .produce(ProduceRequest::batch("t", 1, raw_batch(&["a", "b", "c"])))
        .await
        .unwrap();
    assert_eq!(first.appended.len(), 1);
    assert_eq!(first.appended[0].partition, 1);
    assert_eq!(
        (first.appended[0].base_offset, first.appended[0].last_offset),
        (0, 2)
    );
    assert!(first.durable_offset() >= 3, "durable by default");

    let second = broker
        .produce(ProduceRequest::batch("t", 1, raw_batch(&["d"])))
        .await
        .unwrap();
    assert_eq!(second.base_offset(), 3);

    let values: Vec<_> = read_all(&broker, "t", 1, 0).await;
    let values: Vec<_> = values.into_iter().map(|(_, v)| v.unwrap()).collect();
    assert_eq!(
        values,
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_empty_requests_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();

    let err = broker
        .produce(ProduceRequest::records("t", vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::EmptyBatch { .. }), "{err}");

    let mut corrupt = raw_batch(&["x"]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let err = broker
        .produce(ProduceRequest::batch("t", 0, corrupt))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidBatch { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let err = broker
        .produce(ProduceRequest::batch(
            "t",
            0,
            bytes::BytesMut::from(&b"short"[..]),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidBatch { .. }), "{err}");

    let err = broker
        .produce(ProduceRequest::batch("t", 5, raw_batch(&["x"])))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::UnknownPartition { partitions: 1, .. }),
        "{err}"
    );
    let err = broker
        .produce(ProduceRequest::batch("nope", 0, raw_batch(&["x"])))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownTopic { .. }), "{err}");

    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].log_end_offset,
        0
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_the_topic_limit_are_refused_and_the_next_produce_gets_the_next_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default().with_max_record_bytes(1024))
        .await
        .unwrap();
    crate::produce_n(&broker, "t", 0, 2, "ok").await;

    // Structured: one oversized record among small ones refuses the whole request.
    let records = vec![
        ProduceRecord::value("small"),
        ProduceRecord::value(vec![0u8; 2048]),
    ];
    let err = broker
        .produce(ProduceRequest::records("t", records).to_partition(0))
        .await
        .unwrap_err();
    match err {
        BrokerError::RecordTooLarge {
            index, size, max, ..
        } => {
            assert_eq!((index, size, max), (1, 2048, 1024));
        }
        other => panic!("unexpected {other}"),
    }

    // Raw: a compressed batch hides the record size; it is still checked.
    let mut builder = BatchBuilder::new(Compression::Gzip);
    builder.push(0, None, Some(&vec![7u8; 4096]), &[]);
    let compressed = builder.build().unwrap();
    assert!(compressed.len() < 1024, "gzip should shrink a run of bytes");
    let err = broker
        .produce(ProduceRequest::batch("t", 0, compressed))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::RecordTooLarge { size: 4096, .. }),
        "{err}"
    );

    // Headers count too.
    let record = ProduceRecord::value("v").with_header("h", Some(Bytes::from(vec![1u8; 1100])));
    let err = broker
        .produce(ProduceRequest::records("t", vec![record]).to_partition(0))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::RecordTooLarge { .. }), "{err}");

    let next = crate::produce_one(&broker, "t", 0, "after", Durability::Durable).await;
    assert_eq!(next, 2);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_topic_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic(
            "t",
            1,
            TopicConfig::default()
                .with_max_record_bytes(512)
                .with_max_batch_bytes(1024),
        )
        .await
        .unwrap();
    let records = (0..100)
        .map(|i| ProduceRecord::value(format!("value-{i:04}")))
        .collect();
    let err = broker
        .produce(ProduceRequest::records("t", records).to_partition(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::BatchTooLarge { max: 1024, .. }),
        "{err}"
    );
    let big = raw_batch(&[&"x".repeat(2000)]);
    let err = broker
        .produce(ProduceRequest::batch("t", 0, big))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::BatchTooLarge { .. }), "{err}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_producers_to_one_partition_get_dense_unique_ordered_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for producer in 0..8 {
        let broker = Arc::clone(&broker);
        tasks.push(tokio::spawn(async move {
            let mut ranges = Vec::new();
            for i in 0..40 {
                let records = vec![
                    ProduceRecord::value(format!("{producer}-{i}-a")),
                    ProduceRecord::value(format!("{producer}-{i}-b")),
                ];
                let reply = broker
                    .produce(ProduceRequest::records("t", records).to_partition(0))
                    .await
                    .unwrap();
                let a = reply.appended[0];
                assert!(a.durable_offset > a.last_offset);
                ranges.push((a.base_offset, a.last_offset));
            }
            (producer, ranges)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let (producer, ranges) = task.await.unwrap();
        // Each producer's own requests got increasing offsets.
        assert!(
            ranges.windows(2).all(|w| w[0].1 < w[1].0),
            "producer {producer}"
        );
        all.extend(ranges.into_iter().map(|r| (r, producer)));
    }
    all.sort();
    let mut expected = 0;
    for ((base, last), _) in &all {
        assert_eq!(*base, expected, "gap or overlap at {base}");
        assert_eq!(*last, base + 1);
        expected = last + 1;
    }
    assert_eq!(expected, 8 * 40 * 2);

    // The stored records match the offsets each producer was given.
    let stored = read_all(&broker, "t", 0, 0).await;
    let values: BTreeSet<_> = stored.iter().map(|(_, v)| v.clone().unwrap()).collect();
    assert_eq!(values.len(), 640);
    for ((base, _), producer) in &all {
        let value = stored[*base as usize].1.clone().unwrap();
        assert!(value.starts_with(format!("{producer}-").as_bytes()));
        assert!(value.ends_with(b"-a"));
    }
    let metrics = broker.metrics();
    assert_eq!(metrics.records_appended, 640);
    assert!(metrics.fsyncs >= 1 && metrics.fsyncs <= 320, "{metrics:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_requests_do_not_wait_for_fsync_but_durable_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic(
            "t",
            1,
            TopicConfig::default().with_durability(DurabilityPolicy::OsDecides),
        )
        .await
        .unwrap();
    let reply = broker
        .produce(
            ProduceRequest::records("t", vec![ProduceRecord::value("w")])
                .to_partition(0)
                .with_durability(Durability::Written),
        )
        .await
        .unwrap();
    assert_eq!(reply.durable_offset(), 0, "nothing fsynced under OsDecides");
    // Written data is readable at once.
    let read = broker.fetch(FetchRequest::new("t", 0, 0)).await.unwrap();
    assert_eq!(read.read.records().unwrap().len(), 1);

    let reply = broker
        .produce(ProduceRequest::records("t", vec![ProduceRecord::value("d")]).to_partition(0))
        .await
        .unwrap();
    assert_eq!(
        reply.durable_offset(),
        2,
        "a durable request syncs everything before it"
    );

    // AlwaysDurable topics sync even Written requests.
    broker
        .create_topic(
            "always",
            1,
            TopicConfig::default().with_durability(DurabilityPolicy::AlwaysDurable),
        )
        .await
        .unwrap();
    let offset = crate::produce_one(&broker, "always", 0, "x", Durability::Written).await;
    assert_eq!(offset, 0);
    assert_eq!(
        broker.describe_topic("always").unwrap().partitions[0].durable_offset,
        1
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_topics_are_synced_by_the_background_task() {
    let dir = tempfile::tempdir().unwrap();
    let broker = rivulet_broker::Broker::open(
        rivulet_broker::BrokerConfig::new(dir.path())
            .with_flush_check_interval(std::time::Duration::from_millis(10)),
    )
    .await
    .unwrap();
    let policy = DurabilityPolicy::SyncInterval(std::time::Duration::from_millis(50));
    broker
        .create_topic("t", 1, TopicConfig::default().with_durability(policy))
        .await
        .unwrap();
    crate::produce_one(&broker, "t", 0, "x", Durability::Written).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while broker.describe_topic("t").unwrap().partitions[0].durable_offset < 1 {
        assert!(std::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_requests() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    broker.shutdown().await.unwrap();
    let err = broker
        .produce(ProduceRequest::records(
            "t",
            vec![ProduceRecord::value("x")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::ShuttingDown), "{err}");
    assert!(err.is_retryable());
    broker.shutdown().await.unwrap();
}
