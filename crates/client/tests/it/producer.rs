//! The producer: batching, partitioning, delivery results, flush, buffer bounds, compression,
//! and retries across a server restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rivulet_client::{
    ClientError, Compression, DeliveryFuture, Durability, OffsetReset, Producer, ProducerRecord,
    TopicPartition,
};
use rivulet_format::{decode_batch, partition_for_key};

use crate::harness::{TestServer, create_topic, poll_until, raw_batches};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sends_become_few_batches() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "batched", 1).await;
    let producer = client
        .producer()
        .linger(Duration::from_millis(50))
        .batch_bytes(16 << 10)
        .build();

    let mut deliveries = Vec::new();
    for i in 0..1000u32 {
        let record = ProducerRecord::new("batched").value(format!("value-{i:04}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();

    for (i, delivery) in deliveries.into_iter().enumerate() {
        let offset = delivery.await.unwrap();
        assert_eq!((offset.partition(), offset.offset()), (0, i as u64));
    }
    let batches = raw_batches(&server, &TopicPartition::new("batched", 0)).await;
    let records: usize = batches
        .iter()
        .map(|b| decode_batch(b).unwrap().1.len())
        .sum();
    assert_eq!(records, 1000);
    // 1000 records of ~30 bytes fill about two 16 KiB batches; lingering may split a few more.
    println!("1000 sends became {} batches", batches.len());
    assert!(batches.len() <= 10, "{} batches", batches.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_murmur2_partitions() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "keyed", 7).await;
    let producer = client
        .producer()
        .linger(Duration::from_millis(2))
        .durability(Durability::Written)
        .build();

    let mut deliveries = Vec::new();
    for i in 0..200 {
        let key = format!("user-{i}");
        let record = ProducerRecord::new("keyed").key(key.clone()).value("v");
        deliveries.push((key, producer.send(record).await.unwrap()));
    }
    for (key, delivery) in deliveries {
        let offset = delivery.await.unwrap();
        let expected = partition_for_key(key.as_bytes(), 7);
        assert_eq!(offset.partition(), expected, "key {key}");
        assert_eq!(
            server
                .broker
                .partition_for_key("keyed", key.as_bytes())
                .unwrap(),
            expected,
            "the broker places key {key} elsewhere"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_resolves_to_where_the_record_is_stored() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "resolve", 3).await;
    let producer = client.producer().build();

    let mut expected = BTreeMap::new();
    for i in 0..60u32 {
        let value = format!("payload-{i}");
        let mut record = ProducerRecord::new("resolve")
            .value(value.clone())
            .header("n", Some(i.to_string()));
        if i % 3 == 0 {
            record = record.partition(2);
        } else if i % 3 == 1 {
            record = record.key(format!("k{i}"));
        }
        let offset = producer.send(record).await.unwrap().await.unwrap();
        assert_eq!(offset.topic(), "resolve");
        expected.insert((offset.partition(), offset.offset()), value);
    }

    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .build();
    consumer.assign((0..3).map(|p| TopicPartition::new("resolve", p)));
    let records = poll_until(&mut consumer, 60, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(records.len(), 60);
    for record in records {
        let value = &expected[&(record.partition(), record.offset())];
        assert_eq!(record.value().unwrap(), value.as_bytes());
        assert_eq!(record.headers()[0].key(), "n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_every_record_sent_before_it() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "flushed", 2).await;
    // A linger far longer than the test: only flush can send these batches.
    let producer = client.producer().linger(Duration::from_secs(600)).build();

    let mut deliveries: Vec<DeliveryFuture> = Vec::new();
    for i in 0..50 {
        let record = ProducerRecord::new("flushed")
            .key(format!("k{i}"))
            .value("x");
        deliveries.push(producer.send(record).await.unwrap());
    }
    assert!(producer.buffered_bytes() > 0);
    producer.flush().await.unwrap();
    assert_eq!(producer.buffered_bytes(), 0);
    for delivery in deliveries {
        // Already resolved: a zero timeout still polls the future once.
        let offset = tokio::time::timeout(Duration::ZERO, delivery)
            .await
            .expect("flush returned before a record resolved")
            .unwrap();
        assert!(offset.offset() < 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_fails_fast_when_asked_to() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "full", 1).await;
    let producer = client
        .producer()
        .linger(Duration::from_secs(600))
        .buffer_bytes(2_000)
        .fail_when_full(true)
        .build();

    let mut accepted = 0;
    let err = loop {
        let record = ProducerRecord::new("full").value(vec![7u8; 100]);
        match producer.send(record).await {
            Ok(_) => accepted += 1,
            Err(err) => break err,
        }
        assert!(accepted < 100, "the buffer bound was never hit");
    };
    assert!(matches!(err, ClientError::BufferFull { .. }), "{err:?}");
    assert!(accepted >= 10, "only {accepted} records fit");

    let err = producer
        .send(ProducerRecord::new("full").value(vec![0u8; 5_000]))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::RecordTooLarge { .. }), "{err:?}");

    // Once flushed, the buffer is free again.
    producer.flush().await.unwrap();
    drop(
        producer
            .send(ProducerRecord::new("full").value("again"))
            .await
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_batches_are_stored_as_sent_and_read_back() {
    let server = TestServer::start().await;
    let client = server.client().await;
    for (topic, codec, expected) in [
        ("zstd", Compression::Zstd, rivulet_format::Compression::Zstd),
        ("lz4", Compression::Lz4, rivulet_format::Compression::Lz4),
    ] {
        create_topic(&client, topic, 1).await;
        let producer = client.producer().compression(codec).build();
        for i in 0..100 {
            let record = ProducerRecord::new(topic).value(format!("repetitive value {i}"));
            drop(producer.send(record).await.unwrap());
        }
        producer.flush().await.unwrap();

        let batches = raw_batches(&server, &TopicPartition::new(topic, 0)).await;
        let (header, _) = decode_batch(&batches[0]).unwrap();
        assert_eq!(header.compression(), Some(expected));

        let mut consumer = client
            .consumer()
            .offset_reset(OffsetReset::Earliest)
            .build();
        consumer.assign([TopicPartition::new(topic, 0)]);
        let records = poll_until(&mut consumer, 100, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(records.len(), 100);
        assert_eq!(
            records[42].value().unwrap(),
            "repetitive value 42".as_bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_or_partition_fails_at_send() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "small", 2).await;
    let producer = client.producer().build();
    let err = producer
        .send(ProducerRecord::new("missing").value("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
    let err = producer
        .send(ProducerRecord::new("small").partition(5).value("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::UnknownPartition { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_follow_the_rule_at_both_ends() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "times", 1).await;
    let producer = client.producer().linger(Duration::from_millis(50)).build();

    for bad in [-2, i64::MIN] {
        let err = producer
            .send(ProducerRecord::new("times").value("x").timestamp_ms(bad))
            .await
            .unwrap_err();
        let ClientError::InvalidArgument { message, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains(&format!("timestamp {bad}")), "{message}");
        assert!(message.contains("-1 (no timestamp) or 0 to"), "{message}");
    }

    // -1 and i64::MAX cannot share a batch; the producer splits them rather than failing.
    let sent = [-1, i64::MAX, 0, -1];
    let mut deliveries = Vec::new();
    for timestamp in sent {
        let record = ProducerRecord::new("times")
            .value("x")
            .timestamp_ms(timestamp);
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .build();
    consumer.assign([TopicPartition::new("times", 0)]);
    let records = poll_until(&mut consumer, sent.len(), Duration::from_secs(10))
        .await
        .unwrap();
    let read: Vec<i64> = records.iter().map(|r| r.timestamp_ms()).collect();
    assert_eq!(read, sent);
}

/// Sends `count` keyed records, one key in `keys`, each value `key:seq`.
async fn send_load(
    producer: Producer,
    keys: usize,
    count: usize,
    progress: Arc<AtomicUsize>,
) -> Vec<(String, u64, DeliveryFuture)> {
    let mut out = Vec::with_capacity(count);
    for seq in 0..count as u64 {
        let key = format!("key-{}", seq as usize % keys);
        let record = ProducerRecord::new("restart")
            .key(key.clone())
            .value(format!("{key}:{seq}"));
        out.push((key, seq, producer.send(record).await.unwrap()));
        progress.fetch_add(1, Ordering::Relaxed);
        if seq % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_carry_a_load_across_a_server_restart() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "restart", 3).await;
    let producer = client
        .producer()
        .linger(Duration::from_millis(2))
        .batch_bytes(2 << 10)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(500))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(60))
        .build();

    let started = Instant::now();
    let progress = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(send_load(producer.clone(), 20, 3000, Arc::clone(&progress)));

    // Restart in the middle of the load.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_stop = progress.load(Ordering::Relaxed);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during_outage = progress.load(Ordering::Relaxed);
    let server = server.restart().await;
    println!("sent {before_stop} records before the stop, {during_outage} by the restart");
    assert!(
        before_stop > 0 && during_outage < 3000,
        "the restart missed the load"
    );

    let sent = load.await.unwrap();
    producer.flush().await.unwrap();
    let mut acked = HashMap::new();
    for (key, seq, delivery) in sent {
        let offset = delivery.await.expect("a record failed despite retries");
        acked.insert((offset.partition(), offset.offset()), (key, seq));
    }
    assert_eq!(acked.len(), 3000);
    println!("load of 3000 across a restart took {:?}", started.elapsed());

    // Read everything back, in log order per partition.
    let mut duplicates = 0;
    let mut stored = 0;
    for partition in 0..3 {
        let tp = TopicPartition::new("restart", partition);
        let mut log = Vec::new();
        for batch in raw_batches(&server, &tp).await {
            for record in decode_batch(&batch).unwrap().1 {
                let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                log.push((record.offset as u64, value));
            }
        }
        stored += log.len();

        // Every acknowledged record is stored exactly where its ack said.
        let by_offset: HashMap<u64, &str> = log.iter().map(|(o, v)| (*o, v.as_str())).collect();
        for ((p, offset), (key, seq)) in &acked {
            if *p == partition {
                assert_eq!(
                    by_offset.get(offset).copied(),
                    Some(format!("{key}:{seq}").as_str())
                );
            }
        }

        // Per key, first occurrences are in send order; later copies are retried batches.
        let mut last_seq: HashMap<&str, u64> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (_, value) in &log {
            let (key, seq) = value.split_once(':').unwrap();
            let seq: u64 = seq.parse().unwrap();
            assert_eq!(partition_for_key(key.as_bytes(), 3), partition);
            if !seen.insert(seq) {
                // The copy whose ack was lost comes first; the retry's copy is the acked one.
                duplicates += 1;
                continue;
            }
            if let Some(previous) = last_seq.insert(key, seq) {
                assert!(previous < seq, "key {key}: {seq} stored after {previous}");
            }
        }
    }
    println!("{stored} records stored for 3000 sent: {duplicates} duplicates from retried batches");
    assert_eq!(stored, 3000 + duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_stick_to_one_partition_per_batch() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "keyless", 4).await;

    // One long linger: every record joins the same open batch, so the same partition.
    let producer = client.producer().linger(Duration::from_secs(600)).build();
    let mut deliveries = Vec::new();
    for i in 0..100 {
        let record = ProducerRecord::new("keyless").value(format!("{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut partitions = std::collections::HashSet::new();
    for delivery in deliveries {
        partitions.insert(delivery.await.unwrap().partition());
    }
    assert_eq!(partitions.len(), 1, "one batch spread over {partitions:?}");

    // Small batches: each closed batch moves keyless records to a new random partition.
    let producer = client.producer().batch_bytes(200).build();
    let mut partitions = std::collections::HashSet::new();
    let mut deliveries = Vec::new();
    for i in 0..400 {
        let record = ProducerRecord::new("keyless").value(format!("{i:0>20}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for delivery in deliveries {
        partitions.insert(delivery.await.unwrap().partition());
    }
    assert!(partitions.len() > 1, "every batch went to {partitions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_is_retried_after_its_hint() {
    let server = TestServer::start_with(|config| {
        config
            .with_max_in_flight_bytes(1)
            .with_busy_retry_after(Duration::from_millis(20))
    })
    .await;
    let client = server.client().await;
    create_topic(&client, "busy", 6).await;
    let producer = client
        .producer()
        .max_in_flight(6)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(50))
        .build();

    let mut deliveries = Vec::new();
    for i in 0..600 {
        let record = ProducerRecord::new("busy")
            .key(format!("k{i}"))
            .value(vec![1u8; 200]);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.expect("a busy refusal was not retried");
    }
    let rejections = server.broker.metrics().busy_rejections;
    println!("{rejections} busy refusals retried");
    assert!(rejections > 0, "the server was never busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_refreshed_when_a_topic_comes_back_larger() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "regrown", 2).await;
    let producer = client.producer().build();
    let first = ProducerRecord::new("regrown").partition(1).value("a");
    producer.send(first).await.unwrap().await.unwrap();

    // Another client re-creates the topic with more partitions behind the producer's back.
    let other = server.client().await;
    other.admin().delete_topic("regrown").await.unwrap();
    create_topic(&other, "regrown", 5).await;

    let offset = producer
        .send(ProducerRecord::new("regrown").partition(4).value("b"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((offset.partition(), offset.offset()), (4, 0));
    let key = "moved-key";
    let offset = producer
        .send(ProducerRecord::new("regrown").key(key).value("c"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(offset.partition(), partition_for_key(key.as_bytes(), 5));
}
