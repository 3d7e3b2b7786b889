//! Bad input matrix (promise 5): every kind of malformed request the API can receive, sent to
//! the real binary. Each must get the right status code and a message that names what was
//! wrong and what is allowed, and the data directory must be byte-identical afterwards.
//!
//! Malformed protobuf is sent as raw bytes through a generic gRPC client with a pass-through
//! codec. Its code is INTERNAL, as gRPC's status-code table prescribes for a request that
//! cannot be parsed, with tonic's decoder message naming the field that broke.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Buf, BufMut, Bytes};
use rivulet_format::{BatchBuilder, Compression};
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::harness::Server;

const TOPIC: &str = "good";
/// Records stored in partition 0 before the bad requests.
const STORED: u64 = 5;
const MAX_RECORD_BYTES: u32 = 1024;
const MAX_BATCH_BYTES: u32 = 64 * 1024;

/// Passes request and response bytes through untouched.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// One bad request.
enum Call {
    Create(v1::CreateTopicRequest),
    Delete(&'static str),
    Describe(&'static str),
    DescribeGroup(String),
    Produce(v1::ProduceRequest),
    Stream(v1::ProduceRequest),
    Fetch(v1::FetchRequest),
    Subscribe(v1::SubscribeRequest),
    ListOffsets(v1::ListOffsetsRequest),
    Commit(v1::CommitOffsetsRequest),
    FetchOffsets(String),
    /// Raw bytes to a method path.
    Raw(&'static str, Vec<u8>),
}

struct Case {
    name: &'static str,
    call: Call,
    code: Code,
    /// Each must appear in the message: what was wrong, and what is allowed.
    says: &'static [&'static str],
}

async fn run(
    log: &mut LogClient<Channel>,
    admin: &mut AdminClient<Channel>,
    call: Call,
    channel: &Channel,
) -> Result<(), Status> {
    match call {
        Call::Create(request) => admin.create_topic(request).await.map(drop),
        Call::Delete(name) => admin
            .delete_topic(v1::DeleteTopicRequest { name: name.into() })
            .await
            .map(drop),
        Call::Describe(name) => admin
            .describe_topic(v1::DescribeTopicRequest { name: name.into() })
            .await
            .map(drop),
        Call::DescribeGroup(group) => admin
            .describe_group(v1::DescribeGroupRequest { group })
            .await
            .map(drop),
        Call::Produce(request) => log.produce(request).await.map(drop),
        Call::Stream(request) => {
            let message = v1::ProduceStreamRequest {
                correlation_id: 7,
                request: Some(request),
            };
            let mut acks = log
                .produce_stream(tokio_stream_once(message))
                .await?
                .into_inner();
            let ack = acks.message().await?.expect("one ack per request");
            assert_eq!(ack.correlation_id, 7);
            match ack.result {
                Some(v1::produce_stream_response::Result::Error(err)) => {
                    Err(Status::new(Code::from_i32(err.code), err.message))
                }
                _ => Ok(()),
            }
        }
        Call::Fetch(request) => log.fetch(request).await.map(drop),
        Call::Subscribe(request) => {
            let mut stream = log.subscribe(request).await?.into_inner();
            stream.message().await.map(drop)
        }
        Call::ListOffsets(request) => log.list_offsets(request).await.map(drop),
        Call::Commit(request) => log.commit_offsets(request).await.map(drop),
        Call::FetchOffsets(group) => log
            .fetch_offsets(v1::FetchOffsetsRequest { group, topic: None })
            .await
            .map(drop),
        Call::Raw(path, bytes) => {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(bytes),
                PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .map(drop)
        }
    }
}

/// A one-message request stream.
fn tokio_stream_once<T: Send + 'static>(item: T) -> impl tonic::IntoStreamingRequest<Message = T> {
    tonic::codegen::tokio_stream::iter(vec![item])
}

fn create(name: &str, partitions: u32) -> Call {
    Call::Create(v1::CreateTopicRequest {
        name: name.into(),
        partitions,
        config: None,
    })
}

fn create_with(config: v1::TopicConfig) -> Call {
    Call::Create(v1::CreateTopicRequest {
        name: "configured".into(),
        partitions: 1,
        config: Some(config),
    })
}

fn records(
    topic: &str,
    partition: Option<u32>,
    records: Vec<v1::ProduceRecord>,
) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition,
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records,
        })),
    }
}

fn value(bytes: &[u8]) -> v1::ProduceRecord {
    v1::ProduceRecord {
        value: Some(Bytes::copy_from_slice(bytes)),
        ..Default::default()
    }
}

fn raw(partition: Option<u32>, batches: Vec<Vec<u8>>) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: TOPIC.into(),
        partition,
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
            batches: batches.into_iter().map(Bytes::from).collect(),
        })),
    }
}

/// A valid batch of `count` small records.
fn batch(count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    for i in 0..count {
        builder.push(
            1_700_000_000_000,
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    builder.build().unwrap().to_vec()
}

/// A valid batch, then `damage` applied to it.
fn damaged(damage: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = batch(3);
    damage(&mut bytes);
    bytes
}

fn fetch(topic: &str, partition: u32, offset: u64) -> v1::FetchRequest {
    v1::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        ..Default::default()
    }
}

fn commit(group: &str, topic: &str, partition: u32, offset: i64, metadata: Option<String>) -> Call {
    Call::Commit(v1::CommitOffsetsRequest {
        group: group.into(),
        offsets: vec![v1::OffsetCommit {
            topic: topic.into(),
            partition,
            offset,
            metadata,
        }],
        ..Default::default()
    })
}

fn list_offsets(partition: u32, spec: Option<v1::list_offsets_request::Spec>) -> Call {
    Call::ListOffsets(v1::ListOffsetsRequest {
        topic: TOPIC.into(),
        partition,
        spec,
    })
}

fn subscribe(partition: u32, start: Option<v1::subscribe_request::Start>) -> Call {
    Call::Subscribe(v1::SubscribeRequest {
        topic: TOPIC.into(),
        partition,
        start,
        ..Default::default()
    })
}

/// A valid batch of three records (timestamped 1 700 000 000 000), then `edit` applied to its
/// header and the CRC recomputed: well-formed, but carrying whatever the edit wrote.
fn resealed(edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    use rivulet_format::header::{CRC_OFFSET, compute_crc};
    let mut bytes = batch(3);
    edit(&mut bytes);
    let crc = compute_crc(&bytes);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// Writes `value` at `at` of a batch header.
fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

fn at(timestamp: i64) -> v1::ProduceRecord {
    v1::ProduceRecord {
        timestamp_ms: Some(timestamp),
        ..value(b"v")
    }
}

/// Protobuf bytes of a produce request to topic `good` whose payload field is cut short.
fn truncated_produce() -> Vec<u8> {
    // field 1 (topic), length 4, "good"; field 4 (records), length 100, but only 2 bytes follow.
    let mut bytes = vec![0x0a, 4];
    bytes.extend_from_slice(b"good");
    bytes.extend_from_slice(&[0x22, 100, 0x0a, 0x00]);
    bytes
}

fn cases() -> Vec<Case> {
    use v1::list_offsets_request::Spec;
    use v1::subscribe_request::Start;

    let name_rule: &[&str] = &["invalid topic name", "1 to 249 bytes"];
    let chars_rule: &[&str] = &["invalid topic name", "A-Z a-z 0-9 . _ -"];
    let many_headers = v1::ProduceRecord {
        value: Some(Bytes::from_static(b"v")),
        headers: (0..100_000)
            .map(|_| v1::RecordHeader {
                key: String::new(),
                value: None,
            })
            .collect(),
        ..Default::default()
    };
    vec![
        // Topic names.
        Case {
            name: "empty topic name",
            call: create("", 1),
            code: Code::InvalidArgument,
            says: name_rule,
        },
        Case {
            name: "250-byte topic name",
            call: create(&"a".repeat(250), 1),
            code: Code::InvalidArgument,
            says: name_rule,
        },
        Case {
            name: "topic name ..",
            call: create("..", 1),
            code: Code::InvalidArgument,
            says: &["invalid topic name", "\"..\""],
        },
        Case {
            name: "topic name .",
            call: create(".", 1),
            code: Code::InvalidArgument,
            says: &["invalid topic name", "\".\""],
        },
        Case {
            name: "topic name with a slash",
            call: create("a/b", 1),
            code: Code::InvalidArgument,
            says: chars_rule,
        },
        Case {
            name: "topic name with a backslash",
            call: create("a\\b", 1),
            code: Code::InvalidArgument,
            says: chars_rule,
        },
        Case {
            name: "topic name with NUL",
            call: create("a\0b", 1),
            code: Code::InvalidArgument,
            says: chars_rule,
        },
        Case {
            name: "non-ASCII topic name",
            call: create(&"ä".repeat(10), 1),
            code: Code::InvalidArgument,
            says: chars_rule,
        },
        Case {
            name: "topic name with a space",
            call: create("a b", 1),
            code: Code::InvalidArgument,
            says: chars_rule,
        },
        Case {
            name: "reserved topic name",
            call: create("__offsets", 1),
            code: Code::InvalidArgument,
            says: &["invalid topic name", "__"],
        },
        Case {
            name: "existing topic",
            call: create(TOPIC, 1),
            code: Code::AlreadyExists,
            says: &["topic \"good\" already exists"],
        },
        Case {
            name: "colliding topic name",
            call: create("GOOD", 1),
            code: Code::AlreadyExists,
            says: &["collides with existing topic \"good\""],
        },
        // Partition counts and settings.
        Case {
            name: "zero partitions",
            call: create("zero", 0),
            code: Code::InvalidArgument,
            says: &["partition", "between 1 and 10000"],
        },
        Case {
            name: "absurd partition count",
            call: create("absurd", u32::MAX),
            code: Code::InvalidArgument,
            says: &["4294967295", "between 1 and 10000"],
        },
        Case {
            name: "tiny segment_bytes",
            call: create_with(v1::TopicConfig {
                segment_bytes: Some(10),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["segment_bytes", "1024"],
        },
        Case {
            name: "huge segment_bytes",
            call: create_with(v1::TopicConfig {
                segment_bytes: Some(u64::MAX),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["segment_bytes", "2147483647"],
        },
        Case {
            name: "zero retention_ms",
            call: create_with(v1::TopicConfig {
                retention_ms: Some(0),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["config.retention_ms", "more than 0"],
        },
        Case {
            name: "zero max_record_bytes",
            call: create_with(v1::TopicConfig {
                max_record_bytes: Some(0),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["max_record_bytes"],
        },
        Case {
            name: "tiny max_batch_bytes",
            call: create_with(v1::TopicConfig {
                max_batch_bytes: Some(10),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["max_batch_bytes", "1024"],
        },
        Case {
            name: "zero sync_interval_ms",
            call: create_with(v1::TopicConfig {
                durability_policy: v1::DurabilityPolicy::SyncInterval as i32,
                sync_interval_ms: Some(0),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["config.sync_interval_ms", "more than 0"],
        },
        Case {
            name: "sync_interval_ms with ALWAYS_DURABLE",
            call: create_with(v1::TopicConfig {
                durability_policy: v1::DurabilityPolicy::AlwaysDurable as i32,
                sync_interval_ms: Some(500),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &[
                "config.sync_interval_ms",
                "DURABILITY_POLICY_ALWAYS_DURABLE has no sync interval",
            ],
        },
        Case {
            name: "sync_interval_ms with OS_DECIDES",
            call: create_with(v1::TopicConfig {
                durability_policy: v1::DurabilityPolicy::OsDecides as i32,
                sync_interval_ms: Some(500),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["DURABILITY_POLICY_OS_DECIDES has no sync interval"],
        },
        Case {
            name: "max_record_bytes above max_batch_bytes",
            call: create_with(v1::TopicConfig {
                max_record_bytes: Some(2 << 20),
                max_batch_bytes: Some(1 << 20),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &[
                "max_record_bytes = 2097152 with max_batch_bytes = 1048576",
                "must be at most max_batch_bytes - 128",
            ],
        },
        Case {
            name: "unknown durability policy",
            call: create_with(v1::TopicConfig {
                durability_policy: 99,
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["durability_policy", "99"],
        },
        // Unknown names.
        Case {
            name: "describe unknown topic",
            call: Call::Describe("nope"),
            code: Code::NotFound,
            says: &["unknown topic \"nope\""],
        },
        Case {
            name: "delete unknown topic",
            call: Call::Delete("nope"),
            code: Code::NotFound,
            says: &["unknown topic \"nope\""],
        },
        Case {
            name: "delete topic with empty name",
            call: Call::Delete(""),
            code: Code::NotFound,
            says: &["unknown topic \"\""],
        },
        Case {
            name: "delete topic ..",
            call: Call::Delete(".."),
            code: Code::NotFound,
            says: &["unknown topic \"..\""],
        },
        Case {
            name: "describe group with empty name",
            call: Call::DescribeGroup(String::new()),
            code: Code::InvalidArgument,
            says: &["group name", "1 to 255 bytes"],
        },
        // Produce.
        Case {
            name: "produce to unknown topic",
            call: Call::Produce(records("nope", None, vec![value(b"v")])),
            code: Code::NotFound,
            says: &["unknown topic \"nope\""],
        },
        Case {
            name: "produce to topic with a slash",
            call: Call::Produce(records("../good", None, vec![value(b"v")])),
            code: Code::NotFound,
            says: &["unknown topic \"../good\""],
        },
        Case {
            name: "produce to unknown partition",
            call: Call::Produce(records(TOPIC, Some(7), vec![value(b"v")])),
            code: Code::NotFound,
            says: &["partition 7", "partitions 0 to 1"],
        },
        Case {
            name: "produce with no records",
            call: Call::Produce(records(TOPIC, Some(0), Vec::new())),
            code: Code::InvalidArgument,
            says: &["holds no records"],
        },
        Case {
            name: "produce with no payload",
            call: Call::Produce(v1::ProduceRequest {
                payload: None,
                ..records(TOPIC, None, Vec::new())
            }),
            code: Code::InvalidArgument,
            says: &["payload", "set either records or batches"],
        },
        Case {
            name: "record timestamp -2",
            call: Call::Produce(records(TOPIC, Some(0), vec![at(0), at(-2)])),
            code: Code::InvalidArgument,
            says: &[
                "record 1",
                "timestamp -2",
                "-1 (no timestamp) or 0 to 9223372036854775807",
                "nothing was stored",
            ],
        },
        Case {
            name: "record timestamp i64::MIN",
            call: Call::Produce(records(TOPIC, None, vec![at(i64::MIN)])),
            code: Code::InvalidArgument,
            says: &["timestamp -9223372036854775808", "out of range"],
        },
        Case {
            name: "records at -1 and i64::MAX for one partition",
            call: Call::Produce(records(TOPIC, Some(1), vec![at(-1), at(i64::MAX)])),
            code: Code::InvalidArgument,
            says: &["record 1", "cannot hold both", "another request"],
        },
        Case {
            name: "raw batch with timestamps before -1",
            call: Call::Produce(raw(
                Some(0),
                vec![resealed(|b| {
                    use rivulet_format::header::{BASE_TIMESTAMP_OFFSET, MAX_TIMESTAMP_OFFSET};
                    put(b, BASE_TIMESTAMP_OFFSET, &(-5i64).to_be_bytes());
                    put(b, MAX_TIMESTAMP_OFFSET, &(-5i64).to_be_bytes());
                })],
            )),
            code: Code::InvalidArgument,
            says: &["timestamp", "-5", "-1 (no timestamp) or 0 to"],
        },
        Case {
            name: "raw batch whose maxTimestamp is below its records",
            call: Call::Produce(raw(
                Some(0),
                vec![resealed(|b| {
                    let at = rivulet_format::header::MAX_TIMESTAMP_OFFSET;
                    put(b, at, &1_000i64.to_be_bytes());
                })],
            )),
            code: Code::InvalidArgument,
            says: &["maxTimestamp 1000 is below the timestamp 1700000000000"],
        },
        Case {
            name: "raw control batch",
            call: Call::Produce(raw(
                Some(0),
                vec![resealed(|b| {
                    b[rivulet_format::header::ATTRIBUTES_OFFSET + 1] |= 0x20
                })],
            )),
            code: Code::InvalidArgument,
            says: &["control (0x20)", "transactions are not supported"],
        },
        Case {
            name: "raw transactional batch",
            call: Call::Produce(raw(
                Some(0),
                vec![resealed(|b| {
                    b[rivulet_format::header::ATTRIBUTES_OFFSET + 1] |= 0x10
                })],
            )),
            code: Code::InvalidArgument,
            says: &["transactional (0x10)", "nothing was stored"],
        },
        Case {
            name: "record over max_record_bytes",
            call: Call::Produce(records(
                TOPIC,
                Some(0),
                vec![value(&[7; MAX_RECORD_BYTES as usize + 1])],
            )),
            code: Code::InvalidArgument,
            says: &["1025", "max_record_bytes", "1024"],
        },
        Case {
            name: "batch over max_batch_bytes",
            call: Call::Produce(records(TOPIC, Some(0), vec![value(&[7; 1000]); 100])),
            code: Code::InvalidArgument,
            says: &["max_batch_bytes", "65536"],
        },
        Case {
            name: "100000 headers",
            call: Call::Produce(records(TOPIC, Some(0), vec![many_headers])),
            code: Code::InvalidArgument,
            says: &["65536"],
        },
        Case {
            name: "request over max_request_bytes",
            call: Call::Produce(records(TOPIC, Some(0), vec![value(&vec![7; 17 << 20])])),
            // Refused as its length prefix arrives, before tonic's decoder buffers it.
            code: Code::ResourceExhausted,
            says: &[
                "17825817 bytes",
                "limit of 16777216 bytes",
                "max_request_bytes",
            ],
        },
        Case {
            name: "unknown durability",
            call: Call::Produce(v1::ProduceRequest {
                durability: 99,
                ..records(TOPIC, Some(0), vec![value(b"v")])
            }),
            code: Code::InvalidArgument,
            says: &["durability", "99"],
        },
        Case {
            name: "bad produce inside a stream",
            call: Call::Stream(records(TOPIC, Some(9), vec![value(b"v")])),
            code: Code::NotFound,
            says: &["partition 9", "partitions 0 to 1"],
        },
        // Raw batches.
        Case {
            name: "raw batch without partition",
            call: Call::Produce(raw(None, vec![batch(1)])),
            code: Code::InvalidArgument,
            says: &["partition", "raw batches need an explicit partition"],
        },
        Case {
            name: "empty raw batch list",
            call: Call::Produce(raw(Some(0), Vec::new())),
            code: Code::InvalidArgument,
            says: &["batches", "at least one batch"],
        },
        Case {
            name: "raw batch to unknown partition",
            call: Call::Produce(raw(Some(5), vec![batch(1)])),
            code: Code::NotFound,
            says: &["partition 5", "partitions 0 to 1"],
        },
        Case {
            name: "raw batch of garbage",
            call: Call::Produce(raw(Some(0), vec![b"not a batch".to_vec()])),
            code: Code::InvalidArgument,
            says: &["invalid record batch"],
        },
        Case {
            name: "raw batch with bad CRC",
            call: Call::Produce(raw(
                Some(0),
                vec![damaged(|b| {
                    let last = b.len() - 1;
                    b[last] ^= 0xff;
                })],
            )),
            code: Code::InvalidArgument,
            says: &["invalid record batch", "CRC"],
        },
        Case {
            name: "raw batch longer than its length field",
            call: Call::Produce(raw(
                Some(0),
                vec![damaged(|b| b.extend_from_slice(&[0; 9]))],
            )),
            code: Code::InvalidArgument,
            says: &[
                "invalid record batch",
                "declares 88 bytes but 97 were given",
            ],
        },
        Case {
            name: "raw batch shorter than its length field",
            call: Call::Produce(raw(Some(0), vec![damaged(|b| b.truncate(b.len() - 4))])),
            code: Code::InvalidArgument,
            says: &["invalid record batch"],
        },
        Case {
            name: "raw batch with length field 0",
            call: Call::Produce(raw(
                Some(0),
                vec![damaged(|b| b[8..12].copy_from_slice(&0u32.to_be_bytes()))],
            )),
            code: Code::InvalidArgument,
            says: &["invalid record batch"],
        },
        Case {
            name: "raw batch with magic 1",
            call: Call::Produce(raw(Some(0), vec![damaged(|b| b[16] = 1)])),
            code: Code::InvalidArgument,
            says: &["invalid record batch", "magic"],
        },
        Case {
            name: "raw batch, second of two damaged",
            call: Call::Produce(raw(Some(0), vec![batch(1), damaged(|b| b[16] = 9)])),
            code: Code::InvalidArgument,
            says: &["invalid record batch"],
        },
        // Fetch, subscribe, list offsets.
        Case {
            name: "fetch unknown topic",
            call: Call::Fetch(fetch("nope", 0, 0)),
            code: Code::NotFound,
            says: &["unknown topic \"nope\""],
        },
        Case {
            name: "fetch topic with NUL",
            call: Call::Fetch(fetch("go\0od", 0, 0)),
            code: Code::NotFound,
            says: &["unknown topic"],
        },
        Case {
            name: "fetch unknown partition",
            call: Call::Fetch(fetch(TOPIC, 2, 0)),
            code: Code::NotFound,
            says: &["partition 2", "partitions 0 to 1"],
        },
        Case {
            name: "fetch beyond log end",
            call: Call::Fetch(fetch(TOPIC, 0, STORED + 1)),
            code: Code::OutOfRange,
            says: &["6", "valid offsets are 0 to 5"],
        },
        Case {
            name: "fetch at u64::MAX",
            call: Call::Fetch(fetch(TOPIC, 0, u64::MAX)),
            code: Code::OutOfRange,
            says: &["18446744073709551615", "valid offsets are 0 to 5"],
        },
        Case {
            name: "fetch max_bytes too large",
            call: Call::Fetch(v1::FetchRequest {
                max_bytes: u32::MAX,
                ..fetch(TOPIC, 0, 0)
            }),
            code: Code::InvalidArgument,
            says: &["max_bytes", "4294967295", "64 MiB"],
        },
        Case {
            name: "fetch max_wait_ms absurd",
            call: Call::Fetch(v1::FetchRequest {
                max_wait_ms: u32::MAX,
                ..fetch(TOPIC, 0, 0)
            }),
            code: Code::InvalidArgument,
            says: &["max_wait_ms", "4294967295", "60000"],
        },
        Case {
            name: "fetch unknown format",
            call: Call::Fetch(v1::FetchRequest {
                format: 42,
                ..fetch(TOPIC, 0, 0)
            }),
            code: Code::InvalidArgument,
            says: &["format", "42"],
        },
        Case {
            name: "subscribe without start",
            call: subscribe(0, None),
            code: Code::InvalidArgument,
            says: &["start"],
        },
        Case {
            name: "subscribe beyond log end",
            call: subscribe(0, Some(Start::Offset(1000))),
            code: Code::OutOfRange,
            says: &["1000", "valid offsets are 0 to 5"],
        },
        Case {
            name: "subscribe unspecified position",
            call: subscribe(0, Some(Start::Position(0))),
            code: Code::InvalidArgument,
            says: &["position", "START_POSITION_EARLIEST"],
        },
        Case {
            name: "subscribe unknown partition",
            call: subscribe(3, Some(Start::Offset(0))),
            code: Code::NotFound,
            says: &["partition 3", "partitions 0 to 1"],
        },
        Case {
            name: "list offsets without spec",
            call: list_offsets(0, None),
            code: Code::InvalidArgument,
            says: &["spec", "position or timestamp_ms"],
        },
        Case {
            name: "list offsets unknown position",
            call: list_offsets(0, Some(Spec::Position(77))),
            code: Code::InvalidArgument,
            says: &["77", "START_POSITION_EARLIEST"],
        },
        Case {
            name: "list offsets unknown partition",
            call: list_offsets(9, Some(Spec::Position(1))),
            code: Code::NotFound,
            says: &["partition 9", "partitions 0 to 1"],
        },
        // Group offsets.
        Case {
            name: "commit beyond log end",
            call: commit("g", TOPIC, 0, 6, None),
            code: Code::InvalidArgument,
            says: &["6", "cannot pass the log end", "5"],
        },
        Case {
            name: "commit negative offset",
            call: commit("g", TOPIC, 0, -1, None),
            code: Code::InvalidArgument,
            says: &["-1"],
        },
        Case {
            name: "commit i64::MIN",
            call: commit("g", TOPIC, 0, i64::MIN, None),
            code: Code::InvalidArgument,
            says: &["-9223372036854775808"],
        },
        Case {
            name: "commit i64::MAX",
            call: commit("g", TOPIC, 0, i64::MAX, None),
            code: Code::InvalidArgument,
            says: &["9223372036854775807", "cannot pass the log end"],
        },
        Case {
            name: "commit with empty group",
            call: commit("", TOPIC, 0, 1, None),
            code: Code::InvalidArgument,
            says: &["group name must be 1 to 255 bytes"],
        },
        Case {
            name: "commit with 256-byte group",
            call: commit(&"g".repeat(256), TOPIC, 0, 1, None),
            code: Code::InvalidArgument,
            says: &["group name must be 1 to 255 bytes"],
        },
        Case {
            name: "commit with a newline in the group",
            call: commit("a\nb", TOPIC, 0, 1, None),
            code: Code::InvalidArgument,
            says: &["\"a\\nb\"", "no control characters"],
        },
        Case {
            name: "commit with a NUL in the group",
            call: commit("a\0b", TOPIC, 0, 1, None),
            code: Code::InvalidArgument,
            says: &["no control characters"],
        },
        Case {
            name: "commit with 5000-byte metadata",
            call: commit("g", TOPIC, 0, 1, Some("m".repeat(5000))),
            code: Code::InvalidArgument,
            says: &["metadata", "4096"],
        },
        Case {
            name: "commit to unknown topic",
            call: commit("g", "nope", 0, 0, None),
            code: Code::NotFound,
            says: &["unknown topic \"nope\""],
        },
        Case {
            name: "commit to unknown partition",
            call: commit("g", TOPIC, 4, 0, None),
            code: Code::NotFound,
            says: &["partition 4", "partitions 0 to 1"],
        },
        Case {
            name: "commit with no offsets",
            call: Call::Commit(v1::CommitOffsetsRequest {
                group: "g".into(),
                offsets: Vec::new(),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            says: &["offsets", "at least one"],
        },
        Case {
            name: "fetch offsets with empty group",
            call: Call::FetchOffsets(String::new()),
            code: Code::InvalidArgument,
            says: &["group name must be 1 to 255 bytes"],
        },
        Case {
            name: "fetch offsets with a tab in the group",
            call: Call::FetchOffsets("a\tb".into()),
            code: Code::InvalidArgument,
            says: &["no control characters"],
        },
        Case {
            name: "subscribe from an empty group's offset",
            call: subscribe(0, Some(Start::Group(String::new()))),
            code: Code::InvalidArgument,
            says: &["group name must be 1 to 255 bytes"],
        },
        Case {
            name: "describe group with an escape character",
            call: Call::DescribeGroup("\u{1b}[31m".into()),
            code: Code::InvalidArgument,
            says: &["no control characters"],
        },
        // Malformed protobuf.
        Case {
            name: "produce of garbage bytes",
            call: Call::Raw("/rivulet.v1.Log/Produce", vec![0xff; 16]),
            code: Code::Internal,
            says: &["failed to decode Protobuf message"],
        },
        Case {
            name: "produce cut short",
            call: Call::Raw("/rivulet.v1.Log/Produce", truncated_produce()),
            code: Code::Internal,
            says: &["failed to decode Protobuf message"],
        },
        Case {
            name: "topic name not UTF-8",
            call: Call::Raw(
                "/rivulet.v1.Admin/CreateTopic",
                vec![0x0a, 2, 0xc3, 0x28, 0x10, 1],
            ),
            code: Code::Internal,
            says: &["failed to decode Protobuf message", "UTF-8"],
        },
        Case {
            name: "wrong wire type",
            call: Call::Raw("/rivulet.v1.Log/Fetch", vec![0x0d, 1, 2, 3, 4]),
            code: Code::Internal,
            says: &["failed to decode Protobuf message", "wire type"],
        },
        Case {
            name: "unknown method",
            call: Call::Raw("/rivulet.v1.Log/Nope", Vec::new()),
            code: Code::Unimplemented,
            says: &[],
        },
    ]
}

/// Every file and directory under `root`, with file contents.
pub fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(name, None);
                stack.push(path);
            } else {
                out.insert(name, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, dir.path().join("server.log"));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut log = LogClient::new(channel.clone()).max_encoding_message_size(64 << 20);
    let mut admin = AdminClient::new(channel.clone());
    admin
        .create_topic(v1::CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 2,
            config: Some(v1::TopicConfig {
                max_record_bytes: Some(MAX_RECORD_BYTES),
                max_batch_bytes: Some(MAX_BATCH_BYTES),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let values: Vec<_> = (0..STORED)
        .map(|i| value(format!("r{i}").as_bytes()))
        .collect();
    log.produce(records(TOPIC, Some(0), values)).await.unwrap();
    log.commit_offsets(v1::CommitOffsetsRequest {
        group: "g".into(),
        offsets: vec![v1::OffsetCommit {
            topic: TOPIC.into(),
            partition: 0,
            offset: 2,
            metadata: None,
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let before = snapshot(&data);

    let cases = cases();
    let total = cases.len();
    let mut wrong = Vec::new();
    for case in cases {
        let result = run(&mut log, &mut admin, case.call, &channel).await;
        let line = match &result {
            Ok(()) => format!("{}: succeeded", case.name),
            Err(status) => format!("{}: {:?} {:?}", case.name, status.code(), status.message()),
        };
        println!("{line}");
        let right = result.as_ref().err().is_some_and(|status| {
            status.code() == case.code
                && case.says.iter().all(|s| status.message().contains(s))
                && !status.message().contains(data.to_str().unwrap())
        });
        if !right {
            wrong.push(format!(
                "{line}; wanted {:?} saying {:?}",
                case.code, case.says
            ));
        }
    }
    println!("bad input: {total} cases, {} wrong", wrong.len());
    assert!(total >= 40);
    assert!(wrong.is_empty(), "wrong replies:\n{}", wrong.join("\n"));

    let after = snapshot(&data);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files appeared or vanished"
    );
    for (name, contents) in &before {
        assert!(after[name] == *contents, "{name} changed");
    }

    // Still serving: the stored records and one more produce.
    let reply = log
        .produce(records(TOPIC, Some(0), vec![value(b"after")]))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().batches[0].base_offset, STORED);
    let fetched = log.fetch(fetch(TOPIC, 0, 0)).await.unwrap().into_inner();
    assert_eq!(fetched.records.len() as u64, STORED + 1);
    assert!(server.terminate().await.success());
}
