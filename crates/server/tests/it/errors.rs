//! Every error mapping a client can reach, with its code and message.

use bytes::Bytes;
use rivulet_proto::v1;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{TestServer, produce_request, value};

fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    text: &str,
) -> tonic::Status {
    let status = result.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(text), "{status:?} lacks {text:?}");
    assert!(
        !status.message().contains("/tmp"),
        "path leaked: {status:?}"
    );
    status
}

fn fetch_at(topic: &str, partition: u32, offset: u64) -> v1::FetchRequest {
    v1::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        ..Default::default()
    }
}

#[tokio::test]
async fn unknown_topics_and_partitions_are_not_found() {
    let mut server = TestServer::start().await;
    server.create_topic("known", 2).await;
    let result = server.log.fetch(fetch_at("missing", 0, 0)).await;
    assert_status(result, Code::NotFound, "unknown topic \"missing\"");
    let result = server.log.fetch(fetch_at("known", 5, 0)).await;
    assert_status(result, Code::NotFound, "it has partitions 0 to 1");
    let result = server
        .log
        .produce(produce_request("missing", None, vec![value(b"x")]))
        .await;
    assert_status(result, Code::NotFound, "unknown topic");
    let result = server
        .admin
        .delete_topic(v1::DeleteTopicRequest {
            name: "missing".into(),
        })
        .await;
    assert_status(result, Code::NotFound, "unknown topic");
    let result = server
        .admin
        .describe_topic(v1::DescribeTopicRequest {
            name: "missing".into(),
        })
        .await;
    assert_status(result, Code::NotFound, "unknown topic");
}

#[tokio::test]
async fn offsets_outside_the_log_are_out_of_range_with_the_range() {
    let mut server = TestServer::start().await;
    server.create_topic("r", 1).await;
    server.produce_values("r", 0, &[b"a", b"b"]).await;
    let result = server.log.fetch(fetch_at("r", 0, 9)).await;
    let status = assert_status(result, Code::OutOfRange, "valid offsets are 0 to 2");
    let info = status.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.metadata["log_end_offset"], "2");
    assert_eq!(info.metadata["requested_offset"], "9");

    let result = server
        .log
        .subscribe(v1::SubscribeRequest {
            topic: "r".into(),
            partition: 0,
            start: Some(v1::subscribe_request::Start::Offset(3)),
            ..Default::default()
        })
        .await;
    assert_status(result, Code::OutOfRange, "valid offsets are 0 to 2");
}

#[tokio::test]
async fn broken_rules_are_invalid_argument_stating_the_rule() {
    let mut server = TestServer::start().await;
    server.create_topic("v", 1).await;

    let create = |name: &str, partitions| v1::CreateTopicRequest {
        name: name.into(),
        partitions,
        config: None,
    };
    let result = server.admin.create_topic(create("a/b", 1)).await;
    assert_status(result, Code::InvalidArgument, "invalid topic name");
    let result = server.admin.create_topic(create("zero", 0)).await;
    assert_status(result, Code::InvalidArgument, "must be between 1 and 10000");
    let result = server
        .admin
        .create_topic(v1::CreateTopicRequest {
            config: Some(v1::TopicConfig {
                segment_bytes: Some(10),
                ..Default::default()
            }),
            ..create("tiny", 1)
        })
        .await;
    assert_status(result, Code::InvalidArgument, "segment_bytes");

    let result = server
        .log
        .fetch(v1::FetchRequest {
            max_bytes: 100 << 20,
            ..fetch_at("v", 0, 0)
        })
        .await;
    let status = assert_status(result, Code::InvalidArgument, "invalid max_bytes");
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert_eq!(bad.field_violations[0].field, "max_bytes");

    let result = server
        .log
        .fetch(v1::FetchRequest {
            max_wait_ms: 600_000,
            ..fetch_at("v", 0, 0)
        })
        .await;
    assert_status(result, Code::InvalidArgument, "max_wait_ms");

    let result = server
        .log
        .produce(produce_request("v", Some(0), Vec::new()))
        .await;
    assert_status(result, Code::InvalidArgument, "holds no records");

    let result = server
        .log
        .produce(produce_request(
            "v",
            Some(0),
            vec![value(&[0u8; (1 << 20) + 1])],
        ))
        .await;
    assert_status(
        result,
        Code::InvalidArgument,
        "larger than the topic's max_record_bytes",
    );

    let raw = |partition, batch: &'static [u8]| v1::ProduceRequest {
        topic: "v".into(),
        partition,
        durability: 0,
        payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
            batches: vec![Bytes::from_static(batch)],
        })),
    };
    let result = server.log.produce(raw(None, b"x")).await;
    assert_status(
        result,
        Code::InvalidArgument,
        "raw batches need an explicit partition",
    );
    let result = server.log.produce(raw(Some(0), b"not a batch")).await;
    assert_status(result, Code::InvalidArgument, "invalid record batch");

    let result = server
        .log
        .produce(v1::ProduceRequest {
            payload: None,
            ..produce_request("v", None, Vec::new())
        })
        .await;
    assert_status(
        result,
        Code::InvalidArgument,
        "set either records or batches",
    );

    let result = server
        .log
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "g".into(),
            offsets: vec![v1::OffsetCommit {
                topic: "v".into(),
                partition: 0,
                offset: 5,
                metadata: None,
            }],
            ..Default::default()
        })
        .await;
    assert_status(result, Code::InvalidArgument, "cannot pass the log end");
    let result = server
        .log
        .commit_offsets(v1::CommitOffsetsRequest {
            group: String::new(),
            offsets: vec![v1::OffsetCommit {
                topic: "v".into(),
                partition: 0,
                offset: 0,
                metadata: None,
            }],
            ..Default::default()
        })
        .await;
    assert_status(
        result,
        Code::InvalidArgument,
        "group name must be 1 to 255 bytes",
    );

    // Nothing above was stored.
    assert_eq!(server.fetch("v", 0, 0).await.high_watermark, 0);
}

#[tokio::test]
async fn colliding_topic_names_already_exist() {
    let mut server = TestServer::start().await;
    server.create_topic("a.b", 1).await;
    let result = server
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "A_b".into(),
            partitions: 1,
            config: None,
        })
        .await;
    assert_status(
        result,
        Code::AlreadyExists,
        "collides with existing topic \"a.b\"",
    );
}
