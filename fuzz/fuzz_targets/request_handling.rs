//! Sends arbitrary requests to a real Rivulet server, in process, and checks that every failure
//! is a proper gRPC status and that the data on disk stays whole.
//!
//! Each input is a run of operations. An operation is a tag byte, a little-endian `u16` length
//! and that many bytes. The tag's low four bits pick one of the fifteen `rivulet.v1` RPCs, and
//! the bytes are decoded (prost) as that RPC's request message; bytes that do not decode are
//! skipped. `ProduceStream` takes several messages, each after a one-byte length. The sixteenth
//! choice is a raw-batch produce built by hand: a topic, a partition, a durability and batches,
//! each after a little-endian `u16` length, whose length field and CRC32C are rewritten to fit
//! ("resealed"), so the server's validation runs past the CRC into the header rules and the
//! records. Bit `0x20` of the tag flips resealing: the raw produce then sends its batches as
//! given, and a decoded `Produce` or `ProduceStream` has its raw batches resealed.
//!
//! Names and numbers decoded from arbitrary bytes almost never name anything that exists, so
//! with bit `0x10` the harness points them at a few known ones: topics `events` (one partition)
//! and `orders` (three), a topic `scratch` the input may create, groups `g1` and `g2`, member
//! ids the server handed out earlier in the input, partitions below 4 and offsets below 64.
//! Three changes keep one input fast, and the service cannot tell them from a client's choice:
//! fetch waits above 2 ms come down to 2 ms (those above the 60 s limit are kept, to be
//! refused), a subscription is read for at most two messages, and `CreateTopic`'s
//! `segment_bytes` is at most 64 KiB (so each partition preallocates small index files) unless
//! it is beyond the valid range.
//!
//! Each input gets a fresh broker in a temporary directory, served on `127.0.0.1` port 0 by
//! [`rivulet_server::serve_with`], and a client connected to it; the tokio runtime is built
//! once per process. What must hold:
//!
//! - no panic, in the server or the harness;
//! - every error is a `tonic::Status` with a non-empty message, never `UNKNOWN` or `INTERNAL`,
//!   that does not name the data directory; errors inside a produce stream likewise;
//! - acks and fetches are consistent (`base_offset <= last_offset`, records in offset order from
//!   the offset asked for);
//! - after the operations, every partition reads back through `Fetch` from its log start to its
//!   high watermark as whole, valid, contiguous batches;
//! - the server shuts down within a few seconds, and afterwards every segment file in the data
//!   directory is a run of whole, valid batches with dense offsets: no half-written batch.

#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use rivulet_broker::{Broker, BrokerConfig, DurabilityPolicy, TopicConfig};
use rivulet_format::header::{
    BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD, compute_crc,
};
use rivulet_format::{BatchHeader, BatchLimits, BatchScan, scan_batch, validate_batch};
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use rivulet_server::ServerConfig;
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Most operations one input runs.
const MAX_OPS: usize = 24;
/// Tag bit: point names and numbers at things that exist.
const REMAP: u8 = 0x10;
/// Tag bit: reseal the raw batches of a decoded produce; send a hand-built one's as given.
const RESEAL: u8 = 0x20;
/// Topics created before each input, with their partition counts.
const KNOWN_TOPICS: [(&str, u32); 2] = [("events", 1), ("orders", 3)];
/// Topic names the remapping picks from: the known topics and one the input may create.
const TOPICS: [&str; 3] = ["events", "orders", "scratch"];
const GROUPS: [&str; 2] = ["g1", "g2"];
/// Longest fetch wait an input may ask for, below the server's own limit.
const MAX_WAIT_MS: u32 = 2;
/// Largest `segment_bytes` a created topic gets, within the valid range.
const MAX_SEGMENT_BYTES: u64 = 64 << 10;
/// Client message limit: above anything the server may send.
const CLIENT_LIMIT: usize = 512 << 20;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(run(data));
});

/// One input: a fresh server, the operations, the checks, shutdown, the on-disk check.
async fn run(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let mut server = Server::start(dir.path()).await;
    let mut ops = data;
    for _ in 0..MAX_OPS {
        let [tag, len_lo, len_hi, rest @ ..] = ops else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([*len_lo, *len_hi])).min(rest.len());
        let (body, after) = rest.split_at(len);
        ops = after;
        server.op(*tag, body).await;
    }
    server.check_partitions().await;
    server.stop().await;
    check_segment_files(dir.path());
}

/// The server of one input, a client of it, and what the input learned so far.
struct Server {
    log: LogClient<Channel>,
    admin: AdminClient<Channel>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), rivulet_server::ServeError>>,
    /// Text that no error message may contain.
    data_dir: String,
    /// Member ids handed out by heartbeats.
    members: Vec<String>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        let config = BrokerConfig::new(dir).with_max_partitions(8);
        let broker = Arc::new(Broker::open(config).await.expect("opening a fresh broker"));
        for (name, partitions) in KNOWN_TOPICS {
            let config = TopicConfig::default()
                .with_segment_bytes(1024)
                .with_durability(DurabilityPolicy::OsDecides);
            broker
                .create_topic(name, partitions, config)
                .await
                .expect("creating a known topic");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr: SocketAddr = listener.local_addr().expect("reading the bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = ServerConfig::default().with_drain_timeout(Duration::from_millis(100));
        let task = tokio::spawn(rivulet_server::serve_with(
            listener,
            broker,
            config,
            async {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a loopback URL")
            .connect()
            .await
            .expect("connecting to the server");
        Server {
            log: LogClient::new(channel.clone())
                .max_decoding_message_size(CLIENT_LIMIT)
                .max_encoding_message_size(CLIENT_LIMIT),
            admin: AdminClient::new(channel)
                .max_decoding_message_size(CLIENT_LIMIT)
                .max_encoding_message_size(CLIENT_LIMIT),
            stop,
            task,
            data_dir: dir.display().to_string(),
            members: Vec::new(),
        }
    }

    /// Drops the client, stops the server, and waits for it.
    async fn stop(self) {
        let Server {
            log,
            admin,
            stop,
            task,
            ..
        } = self;
        drop((log, admin));
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => panic!("the server failed: {err}"),
            Ok(Err(err)) => panic!("the server task panicked or was cancelled: {err}"),
            Err(_) => panic!("the server did not shut down within 10 s"),
        }
    }

    async fn op(&mut self, tag: u8, body: &[u8]) {
        let remap = tag & REMAP != 0;
        match tag & 0x0f {
            0 => {
                let Some(mut request) = decode::<v1::ProduceRequest>(body) else {
                    return;
                };
                self.fix_produce(&mut request, remap, tag & RESEAL != 0);
                let reply = self.log.produce(request).await;
                self.check_reply("Produce", reply.map(|r| check_acks(&r.into_inner())));
            }
            1 => self.produce_stream(body, remap, tag & RESEAL != 0).await,
            2 => {
                let Some(mut request) = decode::<v1::FetchRequest>(body) else {
                    return;
                };
                if remap {
                    request.topic = pick(TOPICS, &request.topic).to_owned();
                    request.partition %= 4;
                    request.offset %= 64;
                }
                if request.max_wait_ms <= 60_000 {
                    request.max_wait_ms = request.max_wait_ms.min(MAX_WAIT_MS);
                }
                let offset = request.offset;
                let reply = self.log.fetch(request).await;
                self.check_reply("Fetch", reply.map(|r| check_fetch(offset, &r.into_inner())));
            }
            3 => self.subscribe(body, remap).await,
            4 => {
                let Some(mut request) = decode::<v1::ListOffsetsRequest>(body) else {
                    return;
                };
                if remap {
                    request.topic = pick(TOPICS, &request.topic).to_owned();
                    request.partition %= 4;
                }
                let reply = self.log.list_offsets(request).await;
                self.check_reply("ListOffsets", reply.map(drop));
            }
            5 => {
                let Some(mut request) = decode::<v1::CommitOffsetsRequest>(body) else {
                    return;
                };
                if remap {
                    request.group = pick(GROUPS, &request.group).to_owned();
                    for commit in &mut request.offsets {
                        commit.topic = pick(TOPICS, &commit.topic).to_owned();
                        commit.partition %= 4;
                        commit.offset %= 64;
                    }
                    request.member_id = request.member_id.map(|id| self.member(&id));
                }
                let reply = self.log.commit_offsets(request).await;
                self.check_reply("CommitOffsets", reply.map(drop));
            }
            6 => {
                let Some(mut request) = decode::<v1::FetchOffsetsRequest>(body) else {
                    return;
                };
                if remap {
                    request.group = pick(GROUPS, &request.group).to_owned();
                    request.topic = request.topic.map(|t| pick(TOPICS, &t).to_owned());
                }
                let reply = self.log.fetch_offsets(request).await;
                self.check_reply("FetchOffsets", reply.map(drop));
            }
            7 => {
                let Some(mut request) = decode::<v1::HeartbeatRequest>(body) else {
                    return;
                };
                if remap {
                    request.group = pick(GROUPS, &request.group).to_owned();
                    request.member_id = request.member_id.map(|id| self.member(&id));
                    for topic in &mut request.topics {
                        *topic = pick(TOPICS, topic).to_owned();
                    }
                    for owned in &mut request.owned {
                        owned.topic = pick(TOPICS, &owned.topic).to_owned();
                        owned.partition %= 4;
                    }
                }
                let reply = self.log.heartbeat(request).await;
                if let Ok(reply) = &reply {
                    let member = reply.get_ref().member_id.clone();
                    assert!(!member.is_empty(), "a heartbeat reply without a member id");
                    self.members.push(member);
                }
                self.check_reply("Heartbeat", reply.map(drop));
            }
            8 => {
                let Some(mut request) = decode::<v1::LeaveGroupRequest>(body) else {
                    return;
                };
                if remap {
                    request.group = pick(GROUPS, &request.group).to_owned();
                    request.member_id = self.member(&request.member_id);
                }
                let reply = self.log.leave_group(request).await;
                self.check_reply("LeaveGroup", reply.map(drop));
            }
            9 => {
                let Some(mut request) = decode::<v1::CreateTopicRequest>(body) else {
                    return;
                };
                if remap {
                    request.name = pick(TOPICS, &request.name).to_owned();
                }
                let config = request.config.get_or_insert_with(Default::default);
                config.segment_bytes = match config.segment_bytes {
                    Some(bytes) if bytes > i32::MAX as u64 => Some(bytes),
                    Some(bytes) => Some(bytes.min(MAX_SEGMENT_BYTES)),
                    None => Some(MAX_SEGMENT_BYTES),
                };
                let reply = self.admin.create_topic(request).await;
                self.check_reply("CreateTopic", reply.map(drop));
            }
            10 => {
                let Some(mut request) = decode::<v1::DeleteTopicRequest>(body) else {
                    return;
                };
                if remap {
                    request.name = pick(TOPICS, &request.name).to_owned();
                }
                let reply = self.admin.delete_topic(request).await;
                self.check_reply("DeleteTopic", reply.map(drop));
            }
            11 => {
                let Some(request) = decode::<v1::ListTopicsRequest>(body) else {
                    return;
                };
                let reply = self.admin.list_topics(request).await;
                self.check_reply("ListTopics", reply.map(drop));
            }
            12 => {
                let Some(mut request) = decode::<v1::DescribeTopicRequest>(body) else {
                    return;
                };
                if remap {
                    request.name = pick(TOPICS, &request.name).to_owned();
                }
                let reply = self.admin.describe_topic(request).await;
                self.check_reply("DescribeTopic", reply.map(drop));
            }
            13 => {
                let Some(request) = decode::<v1::ListGroupsRequest>(body) else {
                    return;
                };
                let reply = self.admin.list_groups(request).await;
                self.check_reply("ListGroups", reply.map(drop));
            }
            14 => {
                let Some(mut request) = decode::<v1::DescribeGroupRequest>(body) else {
                    return;
                };
                if remap {
                    request.group = pick(GROUPS, &request.group).to_owned();
                }
                let reply = self.admin.describe_group(request).await;
                self.check_reply("DescribeGroup", reply.map(drop));
            }
            _ => {
                let request = raw_produce(body, tag & RESEAL == 0);
                let reply = self.log.produce(request).await;
                self.check_reply("Produce (raw)", reply.map(|r| check_acks(&r.into_inner())));
            }
        }
    }

    fn fix_produce(&self, request: &mut v1::ProduceRequest, remap: bool, reseal_batches: bool) {
        if remap {
            request.topic = pick(TOPICS, &request.topic).to_owned();
            request.partition = request.partition.map(|p| p % 4);
        }
        if reseal_batches
            && let Some(v1::produce_request::Payload::Batches(raw)) = &mut request.payload
        {
            for batch in &mut raw.batches {
                *batch = reseal(batch);
            }
        }
    }

    /// A produce stream of the length-prefixed (one byte) requests in `body`.
    async fn produce_stream(&mut self, body: &[u8], remap: bool, reseal_batches: bool) {
        let mut requests = Vec::new();
        let mut rest = body;
        while let [len, more @ ..] = rest {
            let len = usize::from(*len).min(more.len());
            let (message, after) = more.split_at(len);
            rest = after;
            if let Some(mut message) = decode::<v1::ProduceStreamRequest>(message) {
                if let Some(request) = &mut message.request {
                    self.fix_produce(request, remap, reseal_batches);
                }
                requests.push(message);
            }
        }
        let correlation_ids: Vec<u64> = requests.iter().map(|r| r.correlation_id).collect();
        let reply = self.log.produce_stream(tokio_stream::iter(requests)).await;
        let mut stream = match reply {
            Ok(stream) => stream.into_inner(),
            Err(status) => return self.check_status("ProduceStream", &status),
        };
        let mut answered = 0;
        loop {
            match stream.message().await {
                Ok(Some(ack)) => {
                    assert_eq!(
                        Some(&ack.correlation_id),
                        correlation_ids.get(answered),
                        "produce stream answer {answered} is out of order"
                    );
                    answered += 1;
                    match ack.result {
                        Some(v1::produce_stream_response::Result::Ok(reply)) => check_acks(&reply),
                        Some(v1::produce_stream_response::Result::Error(err)) => {
                            let status = Status::new(Code::from_i32(err.code), err.message);
                            self.check_status("ProduceStream entry", &status);
                        }
                        None => panic!("a produce stream response without a result"),
                    }
                }
                Ok(None) => break,
                // The stream itself may end early with a status; it must be a proper one.
                Err(status) => return self.check_status("ProduceStream", &status),
            }
        }
        let sent = correlation_ids.len();
        assert_eq!(
            answered, sent,
            "a produce stream answered {answered} of {sent} requests"
        );
    }

    /// Subscribes and reads at most two responses, then goes away.
    async fn subscribe(&mut self, body: &[u8], remap: bool) {
        let Some(mut request) = decode::<v1::SubscribeRequest>(body) else {
            return;
        };
        if remap {
            request.topic = pick(TOPICS, &request.topic).to_owned();
            request.partition %= 4;
            if let Some(v1::subscribe_request::Start::Offset(offset)) = &mut request.start {
                *offset %= 64;
            }
            if let Some(v1::subscribe_request::Start::Group(group)) = &mut request.start {
                *group = pick(GROUPS, group).to_owned();
            }
        }
        let mut stream = match self.log.subscribe(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => return self.check_status("Subscribe", &status),
        };
        for _ in 0..2 {
            match tokio::time::timeout(Duration::from_millis(MAX_WAIT_MS.into()), stream.message())
                .await
            {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(status)) => {
                    self.check_status("Subscribe stream", &status);
                    break;
                }
            }
        }
    }

    /// `id` if an earlier heartbeat handed it out, else one of those chosen by `id`, else `id`.
    fn member(&self, id: &str) -> String {
        if self.members.is_empty() || self.members.iter().any(|m| m == id) {
            return id.to_owned();
        }
        self.members[hash(id) % self.members.len()].clone()
    }

    fn check_reply(&self, rpc: &str, reply: Result<(), Status>) {
        if let Err(status) = reply {
            self.check_status(rpc, &status);
        }
    }

    fn check_status(&self, rpc: &str, status: &Status) {
        assert!(
            !status.message().is_empty(),
            "{rpc}: a status without a message: {status:?}"
        );
        assert!(
            !matches!(status.code(), Code::Unknown | Code::Internal),
            "{rpc}: {status:?}"
        );
        assert!(
            !status.message().contains(&self.data_dir),
            "{rpc}: the message names the data directory: {status:?}"
        );
    }

    /// Reads every partition of every topic from its log start to its high watermark.
    async fn check_partitions(&mut self) {
        let topics = self
            .admin
            .list_topics(v1::ListTopicsRequest {})
            .await
            .expect("listing topics")
            .into_inner()
            .topics;
        for topic in topics {
            let described = self
                .admin
                .describe_topic(v1::DescribeTopicRequest {
                    name: topic.name.clone(),
                })
                .await
                .expect("describing a listed topic")
                .into_inner();
            for partition in described.partitions {
                self.read_back(&topic.name, &partition).await;
            }
        }
    }

    async fn read_back(&mut self, topic: &str, partition: &v1::PartitionInfo) {
        let mut offset = partition.log_start_offset;
        while offset < partition.high_watermark {
            let request = v1::FetchRequest {
                topic: topic.to_owned(),
                partition: partition.partition,
                offset,
                format: v1::FetchFormat::RawBatches as i32,
                ..Default::default()
            };
            let reply = self
                .log
                .fetch(request)
                .await
                .unwrap_or_else(|status| {
                    panic!(
                        "{topic}/{}: fetch at {offset}: {status:?}",
                        partition.partition
                    )
                })
                .into_inner();
            assert!(
                !reply.batches.is_empty(),
                "{topic}: nothing at {offset} below the watermark"
            );
            for batch in &reply.batches {
                let header = validate_batch(batch, &any_size())
                    .unwrap_or_else(|err| panic!("{topic}: a stored batch is not valid: {err}"));
                let (base, next) = (header.base_offset as u64, header.next_offset() as u64);
                assert!(
                    base <= offset && offset < next,
                    "{topic}: batch {base}..{next} read where {offset} was expected"
                );
                offset = next;
            }
        }
        assert_eq!(
            offset.max(partition.log_start_offset),
            partition.high_watermark
        );
    }
}

/// Checks the acks of a successful produce.
fn check_acks(reply: &v1::ProduceResponse) {
    assert!(!reply.batches.is_empty(), "a produce acknowledged nothing");
    for ack in &reply.batches {
        assert!(ack.base_offset <= ack.last_offset, "ack {ack:?}");
    }
}

/// Checks a successful fetch from `offset`.
fn check_fetch(offset: u64, reply: &v1::FetchResponse) {
    let mut expected = offset;
    for record in &reply.records {
        assert!(
            record.offset >= expected,
            "fetch from {offset}: records out of order"
        );
        expected = record.offset + 1;
    }
    if let Some(first) = reply.records.first() {
        assert_eq!(
            first.offset, offset,
            "fetch from {offset} started at {}",
            first.offset
        );
    }
    assert!(
        reply.next_offset >= offset,
        "fetch from {offset}: next offset {}",
        reply.next_offset
    );
    assert!(reply.high_watermark >= reply.log_start_offset);
}

/// Decodes a request, or `None` if the bytes are not one.
fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    M::decode(bytes).ok()
}

/// A raw-batch produce: topic and partition from the first two bytes, durability from the
/// third, then batches each after a little-endian `u16` length, resealed if `reseal_batches`.
fn raw_produce(body: &[u8], reseal_batches: bool) -> v1::ProduceRequest {
    let [topic, partition, durability, batches_bytes @ ..] = body else {
        return v1::ProduceRequest::default();
    };
    let mut rest = batches_bytes;
    let mut batches = Vec::new();
    while let [lo, hi, more @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(more.len());
        let (batch, after) = more.split_at(len);
        rest = after;
        let batch = Bytes::copy_from_slice(batch);
        batches.push(if reseal_batches {
            reseal(&batch)
        } else {
            batch
        });
    }
    v1::ProduceRequest {
        topic: TOPICS[usize::from(*topic) % TOPICS.len()].to_owned(),
        partition: Some(u32::from(*partition % 4)),
        durability: i32::from(*durability % 4),
        payload: Some(v1::produce_request::Payload::Batches(v1::RawBatches {
            batches,
        })),
    }
}

/// `batch` with `batchLength` and the CRC32C rewritten to fit its bytes.
fn reseal(batch: &Bytes) -> Bytes {
    if batch.len() < BATCH_HEADER_LEN {
        return batch.clone();
    }
    let Ok(length) = i32::try_from(batch.len() - LOG_OVERHEAD) else {
        return batch.clone();
    };
    let mut resealed = BytesMut::from(&batch[..]);
    resealed[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(&resealed);
    resealed[CRC_OFFSET..][..4].copy_from_slice(&crc.to_be_bytes());
    resealed.freeze()
}

/// `name` if it is one of `names`, else one of them chosen by `name`.
fn pick<const N: usize>(names: [&'static str; N], name: &str) -> &'static str {
    names
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or(names[hash(name) % N])
}

fn hash(text: &str) -> usize {
    // FNV-1a: stable across runs, so a saved input replays the same way.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

/// Limits that accept a batch of any size the format allows.
fn any_size() -> BatchLimits {
    BatchLimits {
        max_batch_bytes: i32::MAX as usize,
    }
}

/// Checks, with the server stopped, that every segment file under `dir` holds whole, valid
/// batches with dense offsets starting at the file's base offset.
fn check_segment_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            check_segment_files(&path);
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(base) = name
            .strip_suffix(".log")
            .filter(|stem| stem.len() == 20)
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let mut position = 0;
        let mut expected = base;
        while position < bytes.len() {
            let header: BatchHeader = match scan_batch(&bytes[position..], &any_size()) {
                BatchScan::Complete(header) => header,
                other => panic!(
                    "{} at {position}: not a whole batch: {other:?}",
                    path.display()
                ),
            };
            assert_eq!(
                header.base_offset as u64,
                expected,
                "{} at {position}: offsets are not dense",
                path.display()
            );
            expected = header.next_offset() as u64;
            position += header.total_len();
        }
    }
}
