//! File damage (promise 3): with the server stopped, each kind of file in the data directory is
//! truncated or garbled, one at a time, in a copy of the same data; then the real binary is
//! started on it. For every case the server comes up, a torn tail is cut off, damage in the
//! middle of a log is reported as DATA_LOSS for exactly that range and never served, every
//! other record is readable with its original offset and value, and the server keeps working.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::log_client::LogClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::Server;

const TOPIC: &str = "damaged";
const OTHER: &str = "bystander";
const GROUP: &str = "readers";
/// Small segments, so the log has several sealed ones.
const SEGMENT_BYTES: u64 = 1024;
const BATCHES: u64 = 20;
const PER_BATCH: u64 = 5;
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;
const COMMITTED: u64 = 42;

fn value_at(offset: u64) -> String {
    format!("record-{offset:05}-{}", "x".repeat(16))
}

fn produce(topic: &str, base: u64) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records: (base..base + PER_BATCH)
                .map(|offset| v1::ProduceRecord {
                    value: Some(Bytes::from(value_at(offset))),
                    timestamp_ms: Some(TIMESTAMP_BASE + offset as i64 * 1000),
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

/// Builds the original data directory: two topics, one in many small segments, and a commit.
async fn build(data: &Path, logs: &Path) {
    let server = Server::start(data, logs.join("build.log"));
    let (mut log, mut admin) = server.clients().await;
    for (name, segment_bytes) in [(TOPIC, SEGMENT_BYTES), (OTHER, 1 << 20)] {
        admin
            .create_topic(v1::CreateTopicRequest {
                name: name.into(),
                partitions: 1,
                config: Some(v1::TopicConfig {
                    segment_bytes: Some(segment_bytes),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    for batch in 0..BATCHES {
        log.produce(produce(TOPIC, batch * PER_BATCH))
            .await
            .unwrap();
        log.produce(produce(OTHER, batch * PER_BATCH))
            .await
            .unwrap();
    }
    log.commit_offsets(v1::CommitOffsetsRequest {
        group: GROUP.into(),
        offsets: vec![v1::OffsetCommit {
            topic: TOPIC.into(),
            partition: 0,
            offset: COMMITTED as i64,
            metadata: None,
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    drop((log, admin));
    assert!(server.terminate().await.success());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Files of one partition directory ending in `ext`, sorted (so by base offset).
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    out.sort();
    out
}

fn partition_dir(data: &Path, topic: &str) -> PathBuf {
    data.join("topics").join(topic).join("0")
}

/// (byte position, base offset, record count) of each batch in a segment file.
fn batches(segment: &Path) -> Vec<(usize, u64, u64)> {
    let bytes = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= bytes.len() {
        let base = u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let count = u32::from_be_bytes(bytes[pos + 57..pos + 61].try_into().unwrap());
        out.push((pos, base, u64::from(count)));
        pos += 12 + len;
    }
    out
}

/// Flips a byte inside the records of a batch (covered by its CRC); returns its offsets.
fn garble_batch(segment: &Path, index: usize) -> Range<u64> {
    let (pos, base, count) = batches(segment)[index];
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[pos + 70] ^= 0x5a;
    std::fs::write(segment, bytes).unwrap();
    base..base + count
}

fn overwrite(path: &Path, at: usize, garbage: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let end = (at + garbage.len()).min(bytes.len());
    bytes[at..end].copy_from_slice(&garbage[..end - at]);
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// What a damage case should leave behind.
struct Expect {
    /// The log end of the damaged topic after the restart.
    log_end: u64,
    /// Offsets that must be refused with DATA_LOSS.
    lost: Range<u64>,
    /// Whether the committed offset must still be there.
    committed: bool,
}

impl Expect {
    fn intact() -> Expect {
        Expect {
            log_end: BATCHES * PER_BATCH,
            lost: 0..0,
            committed: true,
        }
    }
}

/// Damages the copy in `data` and says what to expect.
type Damage = fn(&Path) -> Expect;

fn cases() -> Vec<(&'static str, Damage)> {
    vec![
        ("active segment torn mid-batch", |data| {
            let dir = partition_dir(data, TOPIC);
            let active = files(&dir, ".log").pop().unwrap();
            let (pos, base, _) = *batches(&active).last().unwrap();
            truncate(&active, pos as u64 + 30);
            Expect {
                log_end: base,
                ..Expect::intact()
            }
        }),
        ("active segment with a zero-filled tail", |data| {
            let active = files(&partition_dir(data, TOPIC), ".log").pop().unwrap();
            truncate(&active, file_len(&active) + 4096);
            Expect::intact()
        }),
        ("active segment cut to its header", |data| {
            let active = files(&partition_dir(data, TOPIC), ".log").pop().unwrap();
            let first = batches(&active)[0].1;
            truncate(&active, 7);
            Expect {
                log_end: first,
                ..Expect::intact()
            }
        }),
        ("sealed segment garbled mid-log", |data| {
            let sealed = files(&partition_dir(data, TOPIC), ".log")[1].clone();
            let lost = garble_batch(&sealed, 1);
            Expect {
                lost,
                ..Expect::intact()
            }
        }),
        ("first batch of the first segment garbled", |data| {
            let sealed = files(&partition_dir(data, TOPIC), ".log")[0].clone();
            let lost = garble_batch(&sealed, 0);
            Expect {
                lost,
                ..Expect::intact()
            }
        }),
        ("active segment garbled before its last batch", |data| {
            let active = files(&partition_dir(data, TOPIC), ".log").pop().unwrap();
            let count = batches(&active).len();
            assert!(
                count >= 2,
                "the active segment needs two batches for this case"
            );
            let lost = garble_batch(&active, count - 2);
            Expect {
                lost,
                ..Expect::intact()
            }
        }),
        ("sealed offset index garbled", |data| {
            let index = files(&partition_dir(data, TOPIC), ".index")[1].clone();
            overwrite(&index, 32, &[0xee; 64]);
            Expect::intact()
        }),
        ("sealed offset index header garbled", |data| {
            let index = files(&partition_dir(data, TOPIC), ".index")[0].clone();
            overwrite(&index, 0, b"junkjunkjunk");
            Expect::intact()
        }),
        ("active offset index truncated to nothing", |data| {
            let index = files(&partition_dir(data, TOPIC), ".index").pop().unwrap();
            truncate(&index, 0);
            Expect::intact()
        }),
        ("time index garbled", |data| {
            for index in files(&partition_dir(data, TOPIC), ".timeindex") {
                overwrite(&index, 32, &[0x7f; 48]);
            }
            Expect::intact()
        }),
        ("time index truncated mid-entry", |data| {
            let index = files(&partition_dir(data, TOPIC), ".timeindex")[0].clone();
            truncate(&index, 37);
            Expect::intact()
        }),
        ("index files deleted", |data| {
            for index in files(&partition_dir(data, TOPIC), "index") {
                std::fs::remove_file(index).unwrap();
            }
            Expect::intact()
        }),
        ("log-start checkpoint garbled", |data| {
            let path = partition_dir(data, TOPIC).join("log-start.checkpoint");
            std::fs::write(path, b"RVLS\x01\0\0\0garbage-garbage-garbage").unwrap();
            Expect::intact()
        }),
        ("clean-shutdown marker garbled", |data| {
            let path = partition_dir(data, TOPIC).join("clean-shutdown");
            assert!(path.exists(), "the build stopped cleanly");
            overwrite(&path, 16, &[0xab; 16]);
            Expect::intact()
        }),
        ("offsets log torn mid-batch", |data| {
            let dir = data.join("internal").join("offsets");
            let segment = files(&dir, ".log").pop().unwrap();
            let (pos, _, _) = *batches(&segment).last().unwrap();
            truncate(&segment, pos as u64 + 20);
            Expect {
                committed: false,
                ..Expect::intact()
            }
        }),
    ]
}

/// Cases whose damage stops the whole server from starting today.
type FatalCase = (&'static str, fn(&Path), &'static str);

fn fatal_cases() -> Vec<FatalCase> {
    vec![
        (
            "topic metadata garbled",
            |data| {
                overwrite(
                    &data.join("topics").join(TOPIC).join("topic.meta"),
                    20,
                    &[0xcc; 8],
                )
            },
            "data damaged in metadata of topic \"damaged\": CRC mismatch",
        ),
        (
            "topic metadata truncated",
            |data| truncate(&data.join("topics").join(TOPIC).join("topic.meta"), 10),
            "data damaged in metadata of topic \"damaged\"",
        ),
        (
            "offsets log garbled mid-log",
            |data| {
                let dir = data.join("internal").join("offsets");
                let segment = files(&dir, ".log").pop().unwrap();
                garble_batch(&segment, 0);
            },
            "data damaged in the group offsets log: offsets 0 to 0 are unreadable",
        ),
    ]
}

async fn fetch_one(
    log: &mut LogClient<Channel>,
    topic: &str,
    offset: u64,
) -> Result<v1::FetchResponse, tonic::Status> {
    log.fetch(v1::FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes: 1,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Every offset of `topic` below `end` reads back as written, except `lost`, which must be
/// refused with DATA_LOSS naming the range.
async fn check_readable(log: &mut LogClient<Channel>, topic: &str, end: u64, lost: &Range<u64>) {
    for offset in 0..end {
        let reply = fetch_one(log, topic, offset).await;
        if lost.contains(&offset) {
            let status = reply.expect_err("damaged data was served");
            assert_eq!(status.code(), Code::DataLoss, "offset {offset}: {status:?}");
            let named = format!("{} to {}", lost.start, lost.end - 1);
            assert!(
                status.message().contains(&named),
                "{status:?} should name {named}"
            );
            assert!(!status.message().contains('/'), "a path leaked: {status:?}");
            continue;
        }
        let reply = reply.unwrap_or_else(|s| panic!("{topic} offset {offset}: {s:?}"));
        assert_eq!(reply.high_watermark, end, "{topic} log end");
        let record = reply.records.first().expect("a record below the log end");
        assert_eq!(record.offset, offset);
        assert_eq!(record.value.as_deref(), Some(value_at(offset).as_bytes()));
        for record in &reply.records {
            assert!(
                !lost.contains(&record.offset),
                "damaged record {} served",
                record.offset
            );
        }
    }
}

async fn check_case(data: &Path, logs: &Path, name: &str, expect: Expect) {
    let server = Server::start(data, logs.join(format!("{}.log", name.replace(' ', "-"))));
    let (mut log, _admin) = server.clients().await;

    check_readable(&mut log, TOPIC, expect.log_end, &expect.lost).await;
    check_readable(&mut log, OTHER, BATCHES * PER_BATCH, &(0..0)).await;

    // A time lookup still finds the first record at or after a timestamp.
    let probe = 37;
    let found = log
        .list_offsets(v1::ListOffsetsRequest {
            topic: OTHER.into(),
            partition: 0,
            spec: Some(v1::list_offsets_request::Spec::TimestampMs(
                TIMESTAMP_BASE + probe * 1000,
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.offset, Some(probe as u64), "{name}");
    if expect.lost.is_empty() && expect.log_end > probe as u64 {
        let found = log
            .list_offsets(v1::ListOffsetsRequest {
                topic: TOPIC.into(),
                partition: 0,
                spec: Some(v1::list_offsets_request::Spec::TimestampMs(
                    TIMESTAMP_BASE + probe * 1000,
                )),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.offset, Some(probe as u64), "{name}: time lookup");
    }

    let committed = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: GROUP.into(),
            topic: None,
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    if expect.committed {
        assert_eq!(committed.len(), 1, "{name}: {committed:?}");
        assert_eq!(committed[0].offset, COMMITTED, "{name}");
    }

    // The server keeps working: the next produce lands at the log end.
    let reply = log
        .produce(produce(TOPIC, expect.log_end))
        .await
        .unwrap_or_else(|s| panic!("{name}: produce after damage: {s:?}"))
        .into_inner();
    assert_eq!(reply.batches[0].base_offset, expect.log_end, "{name}");
    let reply = fetch_one(&mut log, TOPIC, expect.log_end).await.unwrap();
    assert_eq!(
        reply.records[0].value.as_deref(),
        Some(value_at(expect.log_end).as_bytes())
    );
    drop(log);
    assert!(server.terminate().await.success(), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_cut_or_reported_and_the_rest_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let original = dir.path().join("original");
    build(&original, &logs).await;
    assert!(files(&partition_dir(&original, TOPIC), ".log").len() >= 3);

    let cases = cases();
    let total = cases.len();
    for (index, (name, damage)) in cases.into_iter().enumerate() {
        let data = dir.path().join(format!("case-{index}"));
        copy_dir(&original, &data);
        let expect = damage(&data);
        println!("file damage: {name}");
        check_case(&data, &logs, name, expect).await;
        std::fs::remove_dir_all(&data).unwrap();
    }
    println!("file damage: {total} cases passed");
}

/// TODO(broker): damage to a topic's metadata or in the middle of the group offsets log stops
/// the whole server from starting (every other topic is unavailable until an operator repairs
/// or removes the file); promise 3 wants that topic, or those commits, reported as damaged
/// while everything else is served. Until then this checks the refusal is loud, names what is
/// damaged, and changes no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_metadata_or_offsets_log_stop_the_start_loudly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let original = dir.path().join("original");
    build(&original, &logs).await;
    for (index, (name, damage, says)) in fatal_cases().into_iter().enumerate() {
        let data = dir.path().join(format!("fatal-{index}"));
        copy_dir(&original, &data);
        damage(&data);
        let before = crate::bad_input::snapshot(&data);
        let log = match Server::try_start(&data, logs.join(format!("fatal-{index}.log"))) {
            Ok(_server) => panic!("{name}: started on damaged files"),
            Err(log) => log,
        };
        assert!(log.contains(says), "{name}: {log}");
        // Opening may already have consumed clean-shutdown markers and reshaped indexes (both
        // derived from the logs); no log, metadata or offsets file may change or vanish.
        let after = crate::bad_input::snapshot(&data);
        for (file, contents) in &before {
            if file.ends_with("clean-shutdown") || file.ends_with("index") {
                continue;
            }
            assert!(after.get(file) == Some(contents), "{name}: {file} changed");
        }
        println!("file damage: {name}: refused to start: {says}");
    }
}
