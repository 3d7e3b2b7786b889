//! Subscribe and ProduceStream: tailing, flow control, clients going away, shutdown.

use std::time::Duration;

use rivulet_proto::v1;
use tokio_stream::StreamExt;

use crate::harness::{TestServer, produce_request, value};

fn subscribe_from(topic: &str, start: v1::subscribe_request::Start) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        topic: topic.into(),
        partition: 0,
        start: Some(start),
        ..Default::default()
    }
}

async fn next_offsets(stream: &mut tonic::Streaming<v1::SubscribeResponse>) -> Vec<u64> {
    // Generous: durable produces of other tests share this machine's disk.
    let reply = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("no subscription message in time")
        .unwrap()
        .unwrap();
    reply.records.iter().map(|r| r.offset).collect()
}

#[tokio::test]
async fn subscribe_tails_live_produce_and_ends_when_the_client_leaves() {
    let mut server = TestServer::start().await;
    server.create_topic("tail", 1).await;
    server.produce_values("tail", 0, &[b"0", b"1"]).await;

    let mut stream = server
        .log
        .subscribe(subscribe_from(
            "tail",
            v1::subscribe_request::Start::Position(v1::StartPosition::Earliest as i32),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_offsets(&mut stream).await, vec![0, 1]);

    for i in 2..5u64 {
        server
            .produce_values("tail", 0, &[i.to_string().as_bytes()])
            .await;
        assert_eq!(next_offsets(&mut stream).await, vec![i]);
    }

    // The client goes away in the middle of a long-poll; the server notices and carries on.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.produce_values("tail", 0, &[b"5"]).await;
    assert_eq!(server.fetch("tail", 0, 5).await.records.len(), 1);
    server.stop_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn subscribe_from_a_group_starts_at_its_committed_offset() {
    let mut server = TestServer::start().await;
    server.create_topic("grp", 1).await;
    server.produce_values("grp", 0, &[b"a", b"b", b"c"]).await;
    server
        .log
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "g".into(),
            offsets: vec![v1::OffsetCommit {
                topic: "grp".into(),
                partition: 0,
                offset: 2,
                metadata: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stream = server
        .log
        .subscribe(subscribe_from(
            "grp",
            v1::subscribe_request::Start::Group("g".into()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_offsets(&mut stream).await, vec![2]);

    // A group with no commit starts at the earliest offset.
    let mut fresh = server
        .log
        .subscribe(subscribe_from(
            "grp",
            v1::subscribe_request::Start::Group("new".into()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_offsets(&mut fresh).await, vec![0, 1, 2]);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_slows_nobody_else() {
    let config = rivulet_server::ServerConfig::default().with_stream_buffer(2);
    let mut server = TestServer::start_with(config).await;
    server.create_topic("busy", 1).await;
    let _stalled = server
        .log
        .subscribe(v1::SubscribeRequest {
            topic: "busy".into(),
            partition: 0,
            start: Some(v1::subscribe_request::Start::Offset(0)),
            max_bytes: 1024,
            format: 0,
        })
        .await
        .unwrap()
        .into_inner();

    // 7.5 MiB through a subscriber that never reads: far more than its buffers can hold.
    let chunk = vec![b'x'; 64 << 10];
    let records: Vec<_> = (0..15).map(|_| value(&chunk)).collect();
    for _ in 0..8 {
        let produce = server
            .log
            .produce(produce_request("busy", Some(0), records.clone()));
        tokio::time::timeout(Duration::from_secs(10), produce)
            .await
            .expect("produce stalled behind a slow subscriber")
            .unwrap();
    }
    let fetched = server.fetch("busy", 0, 119).await;
    assert_eq!(fetched.records[0].offset, 119);
    assert_eq!(fetched.high_watermark, 120);
}

#[tokio::test]
async fn shutdown_ends_subscriptions_with_the_offset_to_resume_from() {
    let mut server = TestServer::start().await;
    server.create_topic("bye", 1).await;
    server.produce_values("bye", 0, &[b"0", b"1", b"2"]).await;
    let mut stream = server
        .log
        .subscribe(subscribe_from(
            "bye",
            v1::subscribe_request::Start::Offset(1),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_offsets(&mut stream).await, vec![1, 2]);

    server.stop_within(Duration::from_secs(5)).await;
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    let status = end.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("resubscribe from offset 3"),
        "{status:?}"
    );
}

#[tokio::test]
async fn produce_stream_acks_every_request_in_order_and_survives_a_bad_one() {
    let mut server = TestServer::start().await;
    server.create_topic("s", 1).await;
    let requests: Vec<v1::ProduceStreamRequest> = (0..5u64)
        .map(|i| {
            // Request 2 names a partition that does not exist.
            let partition = if i == 2 { 7 } else { 0 };
            v1::ProduceStreamRequest {
                correlation_id: 100 + i,
                request: Some(produce_request(
                    "s",
                    Some(partition),
                    vec![value(format!("m{i}").as_bytes())],
                )),
            }
        })
        .collect();
    let mut acks = server
        .log
        .produce_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let mut offsets = Vec::new();
    for i in 0..5u64 {
        let ack = acks.next().await.unwrap().unwrap();
        assert_eq!(ack.correlation_id, 100 + i);
        match ack.result.unwrap() {
            v1::produce_stream_response::Result::Ok(ok) => offsets.push(ok.batches[0].base_offset),
            v1::produce_stream_response::Result::Error(err) => {
                assert_eq!(i, 2);
                assert_eq!(err.code, tonic::Code::NotFound as i32);
                assert!(err.message.contains("no partition 7"), "{err:?}");
            }
        }
    }
    assert_eq!(offsets, vec![0, 1, 2, 3]);
    assert!(acks.next().await.is_none());
}

#[tokio::test]
async fn an_oversized_message_ends_a_produce_stream_after_the_ones_before_it() {
    let config = rivulet_server::ServerConfig::default().with_max_request_bytes(64 << 10);
    let mut server = TestServer::start_with(config).await;
    server.create_topic("big", 1).await;
    let sizes = [10usize, 20, 100 << 10, 30];
    let requests: Vec<v1::ProduceStreamRequest> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| v1::ProduceStreamRequest {
            correlation_id: i as u64,
            request: Some(produce_request("big", Some(0), vec![value(&vec![1; size])])),
        })
        .collect();
    let mut acks = server
        .log
        .produce_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    for i in 0..2u64 {
        let ack = acks.next().await.unwrap().unwrap();
        assert_eq!(ack.correlation_id, i);
        assert!(
            matches!(ack.result, Some(v1::produce_stream_response::Result::Ok(_))),
            "{ack:?}"
        );
    }
    let status = acks.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("limit of 65536 bytes"),
        "{status:?}"
    );
    // Nothing after the two acknowledged requests was stored.
    assert_eq!(server.fetch("big", 0, 0).await.high_watermark, 2);
}
