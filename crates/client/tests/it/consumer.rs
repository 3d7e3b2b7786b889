//! The consumer: resuming from committed offsets, auto-commit, seeks, pause and resume, and the
//! reset policy on an out-of-range position.

use std::time::Duration;

use rivulet_client::{
    Client, ClientError, NewTopic, OffsetReset, Producer, ProducerRecord, TopicPartition,
};

use crate::harness::{TestServer, capture_warnings, create_topic, poll_until};

async fn produce(producer: &Producer, topic: &str, partition: u32, count: usize) {
    for i in 0..count {
        let record = ProducerRecord::new(topic)
            .partition(partition)
            .value(format!("{i}"));
        drop(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
}

fn group_consumer(client: &Client, group: &str) -> rivulet_client::Consumer {
    client
        .consumer()
        .group(group)
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(10)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_resumes_exactly_at_the_committed_offset() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "resume", 1).await;
    produce(&client.producer().build(), "resume", 0, 100).await;

    let mut first = group_consumer(&client, "g-resume");
    first.subscribe(["resume"]).await.unwrap();
    let records = poll_until(&mut first, 40, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(records.len(), 40);
    assert_eq!(records.last().unwrap().offset(), 39);
    first.commit().await.unwrap();
    // Read on without committing, then go away.
    let more = poll_until(&mut first, 20, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(more[0].offset(), 40);
    // Leave the group (auto-commit is off, so nothing more is committed); the partition
    // moves to the next member at once.
    first.close().await.unwrap();

    let mut second = group_consumer(&client, "g-resume");
    second.subscribe(["resume"]).await.unwrap();
    let records = second.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(records[0].offset(), 40);
    assert_eq!(records[0].value().unwrap(), "40".as_bytes());
    let tp = TopicPartition::new("resume", 0);
    assert_eq!(second.committed(&tp).await.unwrap(), Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_commits_only_what_poll_returned() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "auto", 1).await;
    produce(&client.producer().build(), "auto", 0, 100).await;
    let tp = TopicPartition::new("auto", 0);

    let mut consumer = client
        .consumer()
        .group("g-auto")
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(Some(Duration::from_millis(50)))
        .max_poll_records(10)
        .build();
    consumer.assign([tp.clone()]);
    let first = consumer.poll(Duration::from_secs(5)).await.unwrap();
    // One fetch brought all 100 records in, but poll returned 10.
    assert_eq!(first.len(), 10);
    assert_eq!(consumer.committed(&tp).await.unwrap(), None);

    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(second[0].offset(), 10);
    assert_eq!(consumer.committed(&tp).await.unwrap(), Some(10));

    // Closing commits what the second poll returned, still not the buffered rest.
    consumer.close().await.unwrap();
    let reader = group_consumer(&client, "g-auto");
    assert_eq!(reader.committed(&tp).await.unwrap(), Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commits_land() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "async-commit", 1).await;
    produce(&client.producer().build(), "async-commit", 0, 30).await;
    let tp = TopicPartition::new("async-commit", 0);

    let mut consumer = group_consumer(&client, "g-async");
    consumer.assign([tp.clone()]);
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(records.len(), 10);
    consumer.commit_async().unwrap().await.unwrap();
    assert_eq!(consumer.committed(&tp).await.unwrap(), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeks_by_offset_time_and_ends() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "seek", 1).await;
    let producer = client.producer().linger(Duration::ZERO).build();
    let base = 1_700_000_000_000i64;
    for i in 0..50i64 {
        let record = ProducerRecord::new("seek")
            .value(format!("{i}"))
            .timestamp_ms(base + i * 1000);
        // One batch per record, so the time index has every record to point at.
        producer.send(record).await.unwrap().await.unwrap();
    }
    let tp = TopicPartition::new("seek", 0);
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .max_poll_records(5)
        .build();
    consumer.assign([tp.clone()]);

    let at = consumer
        .seek_to_timestamp(&tp, base + 24_500)
        .await
        .unwrap();
    assert_eq!(at, 25);
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(records[0].offset(), 25);
    assert_eq!(records[0].timestamp_ms(), base + 25_000);

    consumer.seek(&tp, 7).unwrap();
    assert_eq!(
        consumer.poll(Duration::from_secs(5)).await.unwrap()[0].offset(),
        7
    );

    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    assert_eq!(
        consumer.poll(Duration::from_secs(5)).await.unwrap()[0].offset(),
        0
    );

    let after_all = consumer
        .seek_to_timestamp(&tp, base + 10_000_000)
        .await
        .unwrap();
    assert_eq!(after_all, 50);
    consumer
        .seek_to_end(std::slice::from_ref(&tp))
        .await
        .unwrap();
    assert_eq!(consumer.position(&tp), Some(50));
    assert!(
        consumer
            .poll(Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );

    let err = consumer
        .seek(&TopicPartition::new("seek", 3), 0)
        .unwrap_err();
    assert!(matches!(err, ClientError::NotAssigned { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_partitions_return_nothing_until_resumed() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "pause", 2).await;
    let producer = client.producer().build();
    produce(&producer, "pause", 0, 10).await;
    produce(&producer, "pause", 1, 10).await;
    let (p0, p1) = (
        TopicPartition::new("pause", 0),
        TopicPartition::new("pause", 1),
    );

    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .build();
    consumer.assign([p0.clone(), p1.clone()]);
    consumer.pause(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(consumer.paused(), vec![p0.clone()]);

    let records = poll_until(&mut consumer, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.partition() == 1));
    assert!(
        consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );

    consumer.resume(std::slice::from_ref(&p0)).unwrap();
    let records = poll_until(&mut consumer, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.partition() == 0));
}

/// A topic whose partition 0 starts past offset 0 after retention removed old segments.
async fn trimmed_topic(server: &TestServer, client: &Client, topic: &str) -> u64 {
    client
        .admin()
        .create_topic(
            NewTopic::new(topic, 1)
                .segment_bytes(1024)
                .retention_bytes(1),
        )
        .await
        .unwrap();
    let producer = client.producer().linger(Duration::ZERO).build();
    for i in 0..60 {
        let record = ProducerRecord::new(topic).value(format!("{i:0>100}"));
        producer.send(record).await.unwrap().await.unwrap();
    }
    server.broker.enforce_retention().await.unwrap();
    let description = client.admin().describe_topic(topic).await.unwrap();
    let log_start = description.partitions()[0].log_start_offset();
    assert!(log_start > 0, "retention removed nothing");
    log_start
}

#[tokio::test]
async fn an_out_of_range_position_follows_the_reset_policy_with_a_warning() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let log_start = trimmed_topic(&server, &client, "trimmed").await;
    let tp = TopicPartition::new("trimmed", 0);

    let (logs, _guard) = capture_warnings();
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .build();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, 0).unwrap();
    let records = poll_until(&mut consumer, 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(records[0].offset(), log_start);
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("out of range"), "{text}");
    assert!(text.contains(&format!("log_start={log_start}")), "{text}");

    let mut latest = client.consumer().offset_reset(OffsetReset::Latest).build();
    latest.assign([tp.clone()]);
    latest.seek(&tp, 0).unwrap();
    assert!(
        latest
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(latest.position(&tp), Some(60));

    let mut strict = client.consumer().offset_reset(OffsetReset::Fail).build();
    strict.assign([tp.clone()]);
    strict.seek(&tp, 0).unwrap();
    match strict.poll(Duration::from_secs(1)).await.unwrap_err() {
        ClientError::OutOfRange {
            log_start: start,
            log_end,
            ..
        } => assert_eq!((start, log_end), (Some(log_start), Some(60))),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_committed_offset_with_the_fail_policy_is_an_error() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "strict", 1).await;
    let mut consumer = client
        .consumer()
        .group("g-strict")
        .offset_reset(OffsetReset::Fail)
        .build();
    consumer.subscribe(["strict"]).await.unwrap();
    let err = consumer.poll(Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, ClientError::NoOffset { .. }), "{err:?}");

    let mut groupless = client.consumer().build();
    let err = groupless.subscribe(["strict"]).await.unwrap_err();
    assert!(matches!(err, ClientError::NoGroup { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_rides_out_a_server_restart() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "outage", 1).await;
    let producer = client.producer().build();
    produce(&producer, "outage", 0, 10).await;

    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .build();
    consumer.assign([TopicPartition::new("outage", 0)]);
    let records = poll_until(&mut consumer, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(records.len(), 10);

    server.stop().await;
    // An unreachable server is not an error for poll: it returns nothing and tries again.
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    let _server = server.restart().await;

    produce(&producer, "outage", 0, 10).await;
    let records = poll_until(&mut consumer, 10, Duration::from_secs(10))
        .await
        .unwrap();
    let offsets: Vec<u64> = records.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, (10..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_polls_take_turns_so_no_partition_starves() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "turns", 3).await;
    let producer = client.producer().build();
    for partition in 0..3 {
        produce(&producer, "turns", partition, 300).await;
    }
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .max_poll_records(20)
        .build();
    consumer.assign((0..3).map(|p| TopicPartition::new("turns", p)));

    // Far fewer records than one partition holds: every partition must still be read from,
    // each in offset order.
    let mut next = [0u64; 3];
    let mut polled = 0;
    while polled < 150 {
        for record in consumer.poll(Duration::from_secs(5)).await.unwrap() {
            let p = record.partition() as usize;
            assert_eq!(record.offset(), next[p], "partition {p} out of order");
            next[p] += 1;
            polled += 1;
        }
    }
    assert!(next.iter().all(|&n| n > 0), "a partition starved: {next:?}");
}
