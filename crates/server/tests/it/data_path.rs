//! Produce, fetch, offsets, groups and admin calls through the server.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_format::{BatchBuilder, Compression};
use rivulet_proto::v1;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::{TestServer, channel, produce_request, value};

#[tokio::test]
async fn produce_fetch_commit_and_describe_round_trip() {
    let mut server = TestServer::start().await;
    server.create_topic("orders", 3).await;

    let records = (0..30)
        .map(|i| v1::ProduceRecord {
            key: Some(Bytes::from(format!("customer-{}", i % 5))),
            value: Some(Bytes::from(format!("order-{i}"))),
            headers: vec![v1::RecordHeader {
                key: "source".into(),
                value: None,
            }],
            timestamp_ms: Some(1_700_000_000_000 + i),
        })
        .collect();
    let reply = server
        .log
        .produce(produce_request("orders", None, records))
        .await
        .unwrap()
        .into_inner();
    let total: u64 = reply
        .batches
        .iter()
        .map(|b| b.last_offset - b.base_offset + 1)
        .sum();
    assert_eq!(total, 30);
    for ack in &reply.batches {
        assert!(ack.durable_offset > ack.last_offset, "{ack:?}");
    }

    // Every record comes back once, with its key, value, header and timestamp.
    let mut seen = Vec::new();
    for partition in 0..3 {
        let fetched = server.fetch("orders", partition, 0).await;
        assert_eq!(fetched.next_offset, fetched.high_watermark);
        for record in fetched.records {
            assert_eq!(record.headers[0].key, "source");
            assert_eq!(record.headers[0].value, None);
            assert!(record.timestamp_ms >= 1_700_000_000_000);
            seen.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);

    // Commit, read back, describe the group with lag.
    let hwm = server.fetch("orders", 0, 0).await.high_watermark;
    server
        .log
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "billing".into(),
            offsets: vec![v1::OffsetCommit {
                topic: "orders".into(),
                partition: 0,
                offset: 1,
                metadata: Some("worker-1".into()),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let offsets = server
        .log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: "billing".into(),
            topic: None,
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    assert_eq!(offsets.len(), 1);
    assert_eq!(
        (offsets[0].offset, offsets[0].metadata.as_deref()),
        (1, Some("worker-1"))
    );
    let groups = server
        .admin
        .list_groups(v1::ListGroupsRequest {})
        .await
        .unwrap();
    assert_eq!(groups.into_inner().groups, vec!["billing".to_owned()]);
    let described = server
        .admin
        .describe_group(v1::DescribeGroupRequest {
            group: "billing".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.partitions[0].lag, hwm - 1);

    // Offset lookups.
    let lookup = |spec| v1::ListOffsetsRequest {
        topic: "orders".into(),
        partition: 0,
        spec: Some(spec),
    };
    use v1::list_offsets_request::Spec;
    let earliest = server
        .log
        .list_offsets(lookup(Spec::Position(v1::StartPosition::Earliest as i32)))
        .await
        .unwrap();
    assert_eq!(earliest.into_inner().offset, Some(0));
    let latest = server
        .log
        .list_offsets(lookup(Spec::Position(v1::StartPosition::Latest as i32)))
        .await
        .unwrap();
    assert_eq!(latest.into_inner().offset, Some(hwm));
    let future = server
        .log
        .list_offsets(lookup(Spec::TimestampMs(i64::MAX)))
        .await
        .unwrap();
    assert_eq!(future.into_inner().offset, None);

    // Admin views.
    let topics = server
        .admin
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap();
    let topics = topics.into_inner().topics;
    assert_eq!(
        (topics[0].name.as_str(), topics[0].partitions),
        ("orders", 3)
    );
    let topic = server
        .admin
        .describe_topic(v1::DescribeTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.partitions[0].high_watermark, hwm);
    assert_eq!(topic.config.unwrap().segment_bytes, Some(1 << 30));

    server
        .admin
        .delete_topic(v1::DeleteTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap();
    let topics = server
        .admin
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap();
    assert!(topics.into_inner().topics.is_empty());
    server.stop_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn structured_fetch_starts_exactly_at_the_offset_even_inside_a_batch() {
    let mut server = TestServer::start().await;
    server.create_topic("t", 1).await;
    // One request, one stored batch of five records.
    server
        .produce_values("t", 0, &[b"a", b"b", b"c", b"d", b"e"])
        .await;

    let fetched = server.fetch("t", 0, 2).await;
    let offsets: Vec<u64> = fetched.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3, 4]);
    assert_eq!(fetched.next_offset, 5);

    // Raw batches come back whole, starting before the offset; the client skips.
    let raw = server
        .log
        .fetch(v1::FetchRequest {
            topic: "t".into(),
            partition: 0,
            offset: 2,
            format: v1::FetchFormat::RawBatches as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(raw.records.is_empty());
    assert_eq!(raw.batches.len(), 1);
    let (header, records) = rivulet_format::decode_batch(&raw.batches[0]).unwrap();
    assert_eq!((header.base_offset, records.len()), (0, 5));
    assert_eq!(raw.next_offset, 5);

    // max_bytes bounds the records as the reply encodes them, never below one record, and
    // the next fetch continues exactly.
    let fetch_from = |offset: u64, max_bytes: u32| v1::FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset,
        max_bytes,
        ..Default::default()
    };
    let small = server
        .log
        .fetch(fetch_from(1, 2))
        .await
        .unwrap()
        .into_inner();
    let offsets: Vec<u64> = small.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![1]);
    assert_eq!(small.next_offset, 2);
    // Room for exactly two records as encoded in the reply (tag, length, message each).
    let encoded = |r: &v1::Record| {
        use prost::Message as _;
        1 + prost::length_delimiter_len(r.encoded_len()) + r.encoded_len()
    };
    let all = server
        .log
        .fetch(fetch_from(2, 0))
        .await
        .unwrap()
        .into_inner();
    let two = u32::try_from(encoded(&all.records[0]) + encoded(&all.records[1])).unwrap();
    let pair = server
        .log
        .fetch(fetch_from(2, two))
        .await
        .unwrap()
        .into_inner();
    let offsets: Vec<u64> = pair.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_eq!(pair.next_offset, 4);
    let less = server
        .log
        .fetch(fetch_from(2, two - 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(less.records.len(), 1);
}

#[tokio::test]
async fn raw_batches_are_stored_as_sent_and_get_assigned_offsets() {
    let mut server = TestServer::start().await;
    server.create_topic("raw", 2).await;
    server.produce_values("raw", 1, &[b"first"]).await;

    let mut builder = BatchBuilder::new(Compression::Zstd);
    builder.push(1_000, Some(b"k"), Some(b"compressed"), &[]);
    builder.push(1_001, None, Some(b""), &[]);
    let batch = builder.build().unwrap().freeze();
    let reply = server
        .log
        .produce(v1::ProduceRequest {
            topic: "raw".into(),
            partition: Some(1),
            durability: v1::Durability::Written as i32,
            payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
                batches: vec![batch.clone(), batch],
            })),
        })
        .await
        .unwrap()
        .into_inner();
    let bases: Vec<u64> = reply.batches.iter().map(|b| b.base_offset).collect();
    assert_eq!(bases, vec![1, 3]);

    // Structured fetch decompresses; empty values stay empty, null keys stay null.
    let fetched = server.fetch("raw", 1, 1).await;
    assert_eq!(fetched.records.len(), 4);
    assert_eq!(
        fetched.records[0].value.as_deref(),
        Some(&b"compressed"[..])
    );
    assert_eq!(fetched.records[1].key, None);
    assert_eq!(fetched.records[1].value.as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn long_poll_fetch_is_woken_by_a_produce() {
    let mut server = TestServer::start().await;
    server.create_topic("poll", 1).await;
    let mut waiting = server.log.clone();
    let started = Instant::now();
    let fetch = tokio::spawn(async move {
        waiting
            .fetch(v1::FetchRequest {
                topic: "poll".into(),
                partition: 0,
                offset: 0,
                max_wait_ms: 20_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fetch.is_finished(), "fetch returned before any data");
    server.produce_values("poll", 0, &[b"wake up"]).await;

    let fetched = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .expect("long-poll was not woken")
        .unwrap();
    assert_eq!(fetched.records[0].value.as_deref(), Some(&b"wake up"[..]));
    assert!(started.elapsed() < Duration::from_secs(5));

    // With nothing produced, the wait ends at max_wait_ms with an empty reply.
    let started = Instant::now();
    let empty = server
        .log
        .fetch(v1::FetchRequest {
            topic: "poll".into(),
            partition: 0,
            offset: 1,
            max_wait_ms: 300,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.records.is_empty());
    assert_eq!(empty.next_offset, 1);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn health_reports_serving_for_both_services() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(channel(server.addr).await);
    for service in ["rivulet.v1.Log", "rivulet.v1.Admin"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
}

#[tokio::test]
async fn requests_above_the_size_limit_are_refused_before_anything_is_stored() {
    let config = rivulet_server::ServerConfig::default().with_max_request_bytes(64 << 10);
    let mut server = TestServer::start_with(config).await;
    server.create_topic("limits", 1).await;
    let err = server
        .log
        .produce(produce_request(
            "limits",
            Some(0),
            vec![value(&[7u8; 100 << 10])],
        ))
        .await
        .unwrap_err();
    // Refused with RESOURCE_EXHAUSTED as its length prefix arrives, before any handler runs.
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    for words in ["102424 bytes", "limit of 65536 bytes", "max_request_bytes"] {
        assert!(err.message().contains(words), "{err:?}");
    }
    assert_eq!(server.fetch("limits", 0, 0).await.high_watermark, 0);

    // The next produce gets offset 0: nothing was stored for the refused one.
    assert_eq!(server.produce_values("limits", 0, &[b"small"]).await, 0);
}

#[tokio::test]
async fn a_fetch_asking_for_more_than_a_reply_may_hold_gets_what_fits() {
    let config = rivulet_server::ServerConfig::default()
        .with_max_request_bytes(256 << 10)
        .with_max_response_bytes((256 << 10) + rivulet_server::RESPONSE_HEADROOM);
    let mut server = TestServer::start_with(config).await;
    server.create_topic("big", 1).await;
    for i in 0..3u8 {
        let record = vec![i; 200_000];
        server.produce_values("big", 0, &[&record]).await;
    }
    // 64 MiB asked for; a reply holds at most 256 KiB of records, so one 200 KB record per
    // fetch, each fetch succeeding, instead of a reply over the server's response limit.
    for format in [v1::FetchFormat::Records, v1::FetchFormat::RawBatches] {
        let mut offset = 0;
        while offset < 3 {
            let reply = server
                .log
                .fetch(v1::FetchRequest {
                    topic: "big".into(),
                    partition: 0,
                    offset,
                    max_bytes: 64 << 20,
                    format: format as i32,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|err| panic!("{format:?} at {offset}: {err:?}"))
                .into_inner();
            let got = match format {
                v1::FetchFormat::RawBatches => reply.batches.len(),
                _ => reply.records.len(),
            };
            assert_eq!(got, 1, "{format:?} at {offset}");
            offset += 1;
        }
    }
}

#[tokio::test]
async fn a_records_reply_counts_each_record_as_encoded_and_stays_within_the_limit() {
    let config = rivulet_server::ServerConfig::default()
        .with_max_request_bytes(1 << 20)
        .with_max_response_bytes((1 << 20) + rivulet_server::RESPONSE_HEADROOM);
    let mut server = TestServer::start_with(config).await;
    server.create_topic("tiny", 1).await;
    // Empty records cost nothing in keys and values but some 10 bytes each in a reply: three
    // batches of 30 000 would make a reply of about 1.8 MB if only payload bytes counted.
    for _ in 0..3 {
        let mut builder = BatchBuilder::new(Compression::None);
        for _ in 0..30_000 {
            builder.push(1_700_000_000_000, None, Some(b""), &[]);
        }
        let batch = builder.build().unwrap().freeze();
        server
            .log
            .produce(v1::ProduceRequest {
                topic: "tiny".into(),
                partition: Some(0),
                durability: v1::Durability::Durable as i32,
                payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
                    batches: vec![batch],
                })),
            })
            .await
            .unwrap();
    }
    let mut offset = 0;
    while offset < 90_000 {
        let reply = server
            .log
            .fetch(v1::FetchRequest {
                topic: "tiny".into(),
                partition: 0,
                offset,
                max_bytes: 64 << 20,
                format: v1::FetchFormat::Records as i32,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|err| panic!("at {offset}: {err:?}"))
            .into_inner();
        assert!(!reply.records.is_empty());
        assert_eq!(reply.records[0].offset, offset, "dense, from where asked");
        offset = reply.records.last().unwrap().offset + 1;
    }
    assert_eq!(offset, 90_000);
}
