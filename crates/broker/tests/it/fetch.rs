//! Fetch, long-poll and offset lookups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_broker::{
    BrokerError, Durability, ErrorKind, FetchRequest, OffsetSpec, ProduceRecord, ProduceRequest,
    TopicConfig,
};

use crate::{open, produce_n, produce_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_batches_and_bounds_and_filters_from_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "t", 0, 16, "a").await;
    produce_n(&broker, "t", 0, 16, "b").await;

    let reply = broker.fetch(FetchRequest::new("t", 0, 20)).await.unwrap();
    assert_eq!((reply.log_start_offset, reply.log_end_offset), (0, 32));
    assert_eq!(reply.durable_offset, 32);
    let records = reply.read.records().unwrap();
    assert_eq!(
        records[0].offset, 20,
        "first record is exactly the one asked for"
    );
    assert_eq!(records.len(), 12);

    // At the log end: empty, not an error.
    let reply = broker.fetch(FetchRequest::new("t", 0, 32)).await.unwrap();
    assert!(reply.read.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_fetches_carry_the_valid_range() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "t", 0, 5, "a").await;
    let err = broker
        .fetch(FetchRequest::new("t", 0, 6))
        .await
        .unwrap_err();
    match &err {
        BrokerError::OffsetOutOfRange {
            topic,
            partition,
            requested,
            log_start,
            log_end,
        } => {
            assert_eq!((topic.as_str(), *partition), ("t", 0));
            assert_eq!((*requested, *log_start, *log_end), (6, 0, 5));
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    let err = broker
        .fetch(FetchRequest::new("t", 1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_on_produce_and_times_out_empty() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();

    // Times out with nothing, after the wait and not much later.
    let started = Instant::now();
    let reply = broker
        .fetch(FetchRequest::new("t", 0, 0).with_wait(1, Duration::from_millis(300)))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(reply.read.is_empty());
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");

    // Returns early when something is produced.
    let waiter = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            broker
                .fetch(FetchRequest::new("t", 0, 0).with_wait(1, Duration::from_secs(30)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    let produced_at = Instant::now();
    produce_one(&broker, "t", 0, "wake", Durability::Written).await;
    let reply = waiter.await.unwrap().unwrap();
    assert!(produced_at.elapsed() < Duration::from_secs(1));
    assert_eq!(
        reply.read.records().unwrap()[0].value.as_deref(),
        Some(&b"wake"[..])
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_waits_for_min_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    let waiter = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            broker
                .fetch(FetchRequest::new("t", 0, 0).with_wait(2000, Duration::from_secs(30)))
                .await
        })
    };
    for i in 0..3 {
        let value = vec![b'x'; 400];
        broker
            .produce(
                ProduceRequest::records("t", vec![ProduceRecord::value(value)]).to_partition(0),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "returned after {} small produces",
            i + 1
        );
    }
    for _ in 0..3 {
        broker
            .produce(
                ProduceRequest::records("t", vec![ProduceRecord::value(vec![b'y'; 400])])
                    .to_partition(0),
            )
            .await
            .unwrap();
    }
    let reply = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(reply.read.byte_len() >= 2000);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc09_long_poll_does_not_return_early_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    let config = TopicConfig::default()
        .with_max_record_bytes(1024)
        .with_segment_bytes(1024)
        .with_retention_bytes(Some(1));
    broker.create_topic("t9", 2, config).await.unwrap();
    // Records of ~200 bytes, so the 1 KiB segments roll and retention has work to do.
    for i in 0..10 {
        let value = format!("{i:0>200}");
        produce_one(&broker, "t9", 0, &value, Durability::Durable).await;
    }

    let fetch_from = |offset: u64, wait: Duration| {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let started = Instant::now();
            let request = FetchRequest::new("t9", 0, offset)
                .with_max_bytes(1 << 20)
                .with_wait(1, wait);
            let reply = broker.fetch(request).await;
            (reply, Instant::now(), started.elapsed())
        })
    };
    let waiter = fetch_from(10, Duration::from_millis(5000));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Things that must not wake it: a rejected record, records for another partition,
    // retention on the partition.
    let err = broker
        .produce(
            ProduceRequest::records("t9", vec![ProduceRecord::value(vec![0u8; 2048])])
                .to_partition(0),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::RecordTooLarge { .. }));
    produce_n(&broker, "t9", 1, 5, "other").await;
    let deleted = broker.enforce_retention().await.unwrap();
    assert!(deleted > 0, "retention should have had something to delete");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "fetch returned without new data");

    let produced_at = Instant::now();
    produce_one(&broker, "t9", 0, "valid", Durability::Written).await;
    let (reply, returned_at, _) = waiter.await.unwrap();
    let reply = reply.unwrap();
    let latency = returned_at.saturating_duration_since(produced_at);
    assert!(latency < Duration::from_millis(100), "{latency:?}");
    let records = reply.read.records().unwrap();
    assert_eq!(records[0].offset, 10);
    assert_eq!(records[0].value.as_deref(), Some(&b"valid"[..]));
    assert_eq!(reply.log_end_offset, 11);

    // Without a valid produce: empty after the wait (never earlier, not much later), carrying
    // the current log end.
    let waiter = fetch_from(11, Duration::from_millis(1500));
    let (reply, _, waited) = waiter.await.unwrap();
    let reply = reply.unwrap();
    assert!(reply.read.is_empty());
    assert_eq!(reply.log_end_offset, 11);
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_fetches_end_when_the_topic_is_deleted_or_the_broker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("doomed", 1, TopicConfig::default())
        .await
        .unwrap();
    broker
        .create_topic("kept", 1, TopicConfig::default())
        .await
        .unwrap();
    let wait = |topic: &'static str| {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            broker
                .fetch(FetchRequest::new(topic, 0, 0).with_wait(1, Duration::from_secs(60)))
                .await
        })
    };
    let on_doomed = wait("doomed");
    let on_kept = wait("kept");
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker.delete_topic("doomed").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), on_doomed)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownTopic { .. }), "{err}");

    tokio::time::timeout(Duration::from_secs(5), broker.shutdown())
        .await
        .unwrap()
        .unwrap();
    let reply = on_kept.await.unwrap().unwrap();
    assert!(reply.read.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_waiters_are_cheap_and_all_wake() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    let waiters: Vec<_> = (0..2000)
        .map(|_| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                broker
                    .fetch(FetchRequest::new("t", 0, 0).with_wait(1, Duration::from_secs(60)))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce_one(&broker, "t", 0, "all", Durability::Written).await;
    for waiter in waiters {
        let reply = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.read.records().unwrap().len(), 1);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    let records = (0..10)
        .map(|i| ProduceRecord::value(format!("{i}")).with_timestamp(1_000 + i * 100))
        .collect();
    broker
        .produce(ProduceRequest::records("t", records).to_partition(0))
        .await
        .unwrap();
    assert_eq!(
        broker
            .list_offsets("t", 0, OffsetSpec::Earliest)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        broker
            .list_offsets("t", 0, OffsetSpec::Latest)
            .await
            .unwrap(),
        Some(10)
    );
    assert_eq!(
        broker
            .list_offsets("t", 0, OffsetSpec::Timestamp(1_450))
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        broker
            .list_offsets("t", 0, OffsetSpec::Timestamp(1_000))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        broker
            .list_offsets("t", 0, OffsetSpec::Timestamp(99_999))
            .await
            .unwrap(),
        None
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_too_long_for_the_clock_is_still_woken_by_a_produce() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();

    let waiting = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let request = FetchRequest::new("t", 0, 0).with_wait(1, Duration::MAX);
            broker.fetch(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "an endless wait returned before any data"
    );
    produce_one(&broker, "t", 0, "wake", Durability::Written).await;

    let reply = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the produce wakes the fetch")
        .unwrap()
        .unwrap();
    assert_eq!(reply.read.records().unwrap()[0].offset, 0);
    broker.shutdown().await.unwrap();
}
