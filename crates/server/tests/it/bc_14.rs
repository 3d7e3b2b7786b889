//! BC-14: one record larger than the fetch size; empty values.

use bytes::Bytes;
use rivulet_proto::v1;
use tonic::Code;

use crate::harness::{TestServer, produce_request};

const MIB: usize = 1 << 20;

fn record(key: Option<&'static [u8]>, value: Vec<u8>) -> v1::ProduceRecord {
    v1::ProduceRecord {
        key: key.map(Bytes::from_static),
        value: Some(Bytes::from(value)),
        ..Default::default()
    }
}

#[tokio::test]
async fn bc_14_a_record_larger_than_max_bytes_is_returned_whole_and_alone() {
    let mut server = TestServer::start().await;
    server
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "t14".into(),
            partitions: 1,
            config: Some(v1::TopicConfig {
                max_record_bytes: Some((8 * MIB) as u32),
                segment_bytes: Some(MIB as u64),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    // One produce per record, in order.
    let records = [
        record(None, vec![b'a'; 10]),
        record(None, vec![b'b'; 5 * MIB]),
        record(None, vec![b'c'; 10]),
        record(Some(b"k"), Vec::new()),
        record(None, Vec::new()),
    ];
    for (expected, r) in records.iter().enumerate() {
        let reply = server
            .log
            .produce(produce_request("t14", Some(0), vec![r.clone()]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.batches[0].base_offset, expected as u64);
    }

    // Fetch with max_bytes 1 KiB until the log end: progress on every call.
    let mut fetched = Vec::new();
    let mut next = 0;
    let mut calls = 0;
    while next < 5 {
        calls += 1;
        assert!(calls <= 5, "no progress at offset {next}");
        let reply = server
            .log
            .fetch(v1::FetchRequest {
                topic: "t14".into(),
                partition: 0,
                offset: next,
                max_bytes: 1024,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            !reply.records.is_empty(),
            "empty reply at {next} below LEO 5"
        );
        assert_eq!(reply.records[0].offset, next);
        if next == 1 {
            assert_eq!(reply.records.len(), 1, "offset 1 must come alone");
        }
        next = reply.next_offset;
        fetched.extend(reply.records);
    }
    let offsets: Vec<u64> = fetched.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(fetched[1].value.as_ref().unwrap().len(), 5 * MIB);
    assert!(
        fetched[1]
            .value
            .as_ref()
            .unwrap()
            .iter()
            .all(|&b| b == b'b')
    );
    assert_eq!(fetched[3].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        fetched[3].value.as_deref(),
        Some(&b""[..]),
        "empty value must not become null"
    );
    assert_eq!(fetched[4].key, None, "null key must stay null");
    assert_eq!(fetched[4].value.as_deref(), Some(&b""[..]));

    // Raw batches check their CRCs.
    for offset in 0..5 {
        let raw = server
            .log
            .fetch(v1::FetchRequest {
                topic: "t14".into(),
                partition: 0,
                offset,
                max_bytes: 1024,
                format: v1::FetchFormat::RawBatches as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for batch in &raw.batches {
            let limits = rivulet_format::BatchLimits {
                max_batch_bytes: 16 * MIB,
            };
            rivulet_format::validate_batch(batch, &limits).unwrap();
        }
    }

    // The 5 MiB record, larger than a segment, got a segment of its own.
    let described = server
        .admin
        .describe_topic(v1::DescribeTopicRequest { name: "t14".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(described.partitions[0].size_bytes > 5 * MIB as u64);

    // A 9 MiB record is refused as too large; nothing is written; the next produce gets 5.
    let err = server
        .log
        .produce(produce_request(
            "t14",
            Some(0),
            vec![record(None, vec![b'x'; 9 * MIB])],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("larger than the topic's max_record_bytes"),
        "{err:?}"
    );
    let reply = server
        .log
        .produce(produce_request(
            "t14",
            Some(0),
            vec![record(None, vec![b'z'; 10])],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.batches[0].base_offset, 5);
    let last = server.fetch("t14", 0, 5).await;
    assert_eq!(last.records.len(), 1);
    assert_eq!(last.records[0].value.as_deref(), Some(&[b'z'; 10][..]));
}
