//! File damage (promise 3): with the server stopped, each kind of file in the data directory is
//! truncated, garbled or deleted, one at a time, in a copy of the same data; then the real
//! binary is started on it. For every case the server comes up, a torn tail is cut off, damage
//! in the middle of a log is reported as DATA_LOSS for exactly that range and never served,
//! every other record is readable with its original offset and value, and the server keeps
//! working. A topic whose metadata is damaged is listed as damaged and refused with DATA_LOSS
//! while the other topic is fully served, and its files are left as they were; a commit lost
//! to damage in the offsets log makes the group's older commit answer DATA_LOSS instead of
//! being served as if it were the latest.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::bad_input::snapshot;
use crate::cli_command::rivulet;
use crate::harness::Server;

const TOPIC: &str = "damaged";
const OTHER: &str = "bystander";
/// Commits on TOPIC: `EARLIER`, then `COMMITTED` (offsets log offsets 0 and 1).
const GROUP: &str = "readers";
/// One commit on OTHER (offsets log offset 2).
const AUDITORS: &str = "auditors";
/// One commit on OTHER, the last record of the offsets log (offset 3).
const WATCHERS: &str = "watchers";
/// Small segments, so the log has several sealed ones.
const SEGMENT_BYTES: u64 = 1024;
const BATCHES: u64 = 20;
const PER_BATCH: u64 = 5;
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;
const EARLIER: u64 = 30;
const COMMITTED: u64 = 42;
const AUDITED: u64 = 9;
const WATCHED: u64 = 17;

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

fn commit(group: &str, topic: &str, offset: u64) -> v1::CommitOffsetsRequest {
    v1::CommitOffsetsRequest {
        group: group.into(),
        offsets: vec![v1::OffsetCommit {
            topic: topic.into(),
            partition: 0,
            offset: offset as i64,
            metadata: None,
        }],
        ..Default::default()
    }
}

/// Builds the original data directory: two topics, one in many small segments, and four
/// commits, one per offsets log batch.
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
    for (group, topic, offset) in [
        (GROUP, TOPIC, EARLIER),
        (GROUP, TOPIC, COMMITTED),
        (AUDITORS, OTHER, AUDITED),
        (WATCHERS, OTHER, WATCHED),
    ] {
        log.commit_offsets(commit(group, topic, offset))
            .await
            .unwrap();
    }
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

fn offsets_segment(data: &Path) -> PathBuf {
    files(&data.join("internal").join("offsets"), ".log")
        .pop()
        .unwrap()
}

/// What a group's committed offset reads as after the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// The offset, exactly as last committed.
    Exact(u64),
    /// FetchOffsets answers DATA_LOSS; DescribeGroup shows this older offset, flagged.
    InDoubt(u64),
    /// No committed offset.
    Gone,
}

/// What a damage case should leave behind.
struct Expect {
    /// The log end of the damaged topic after the restart.
    log_end: u64,
    /// Offsets that must be refused with DATA_LOSS.
    lost: Range<u64>,
    /// GROUP's, AUDITORS' and WATCHERS' committed offsets.
    commits: [Commit; 3],
}

impl Expect {
    fn intact() -> Expect {
        Expect {
            log_end: BATCHES * PER_BATCH,
            lost: 0..0,
            commits: [
                Commit::Exact(COMMITTED),
                Commit::Exact(AUDITED),
                Commit::Exact(WATCHED),
            ],
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
            let segment = offsets_segment(data);
            let (pos, _, _) = *batches(&segment).last().unwrap();
            truncate(&segment, pos as u64 + 20);
            let mut expect = Expect::intact();
            expect.commits[2] = Commit::Gone;
            expect
        }),
        ("offsets log garbled mid-log", |data| {
            // GROUP's last commit is lost; its earlier one must not be served as the latest.
            garble_batch(&offsets_segment(data), 1);
            let mut expect = Expect::intact();
            expect.commits[0] = Commit::InDoubt(EARLIER);
            expect
        }),
        ("offsets log garbled at a group's only commit", |data| {
            // AUDITORS' name is in the lost bytes: it reads as never committed (the documented
            // limit); GROUP's commit, older than the damage, is in doubt.
            garble_batch(&offsets_segment(data), 2);
            let mut expect = Expect::intact();
            expect.commits[0] = Commit::InDoubt(COMMITTED);
            expect.commits[1] = Commit::Gone;
            expect
        }),
        ("offsets log garbled at its first batch", |data| {
            // GROUP committed again after the damage: nothing is in doubt.
            garble_batch(&offsets_segment(data), 0);
            Expect::intact()
        }),
        ("offsets log index garbled", |data| {
            let dir = data.join("internal").join("offsets");
            for index in files(&dir, "index") {
                overwrite(&index, 0, &[0x5e; 24]);
            }
            Expect::intact()
        }),
    ]
}

/// Cases that damage TOPIC's metadata: (name, damage, what the refusal must say).
type MetadataCase = (&'static str, fn(&Path), &'static str);

fn metadata_cases() -> Vec<MetadataCase> {
    fn meta(data: &Path) -> PathBuf {
        data.join("topics").join(TOPIC).join("topic.meta")
    }
    vec![
        (
            "topic metadata garbled",
            |data| overwrite(&meta(data), 20, &[0xcc; 8]),
            "metadata file (topic.meta) is damaged: CRC mismatch",
        ),
        (
            "topic metadata truncated",
            |data| truncate(&meta(data), 10),
            "metadata file (topic.meta) is damaged: file is 10 bytes",
        ),
        (
            "topic metadata deleted",
            |data| std::fs::remove_file(meta(data)).unwrap(),
            "metadata file (topic.meta) is missing",
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
    let (mut log, mut admin) = server.clients().await;

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

    let groups = [(GROUP, TOPIC), (AUDITORS, OTHER), (WATCHERS, OTHER)];
    for ((group, topic), commit) in groups.into_iter().zip(expect.commits) {
        check_commit(&mut log, &mut admin, group, topic, commit, name).await;
    }
    let in_doubt = expect.commits[0] != Commit::Exact(COMMITTED);
    if in_doubt {
        let server_log = server.log();
        assert!(
            server_log.contains("group offsets log damaged"),
            "{name}: {server_log}"
        );
        assert!(
            server_log.contains("committed offsets in doubt"),
            "{name}: {server_log}"
        );
        // `rivulet group describe` says which offset may be stale.
        let described = rivulet(server.addr, &["group", "describe", GROUP], b"").ok();
        assert!(
            described.contains(&format!("{TOPIC}/0: ")) && described.contains("may be lost there"),
            "{name}: {described}"
        );
        // Committing again settles it; the new commit is durable (checked after a restart).
        log.commit_offsets(commit(GROUP, TOPIC, COMMITTED))
            .await
            .unwrap_or_else(|s| panic!("{name}: commit after damage: {s:?}"));
        check_commit(
            &mut log,
            &mut admin,
            GROUP,
            TOPIC,
            Commit::Exact(COMMITTED),
            name,
        )
        .await;
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
    drop((log, admin));
    assert!(server.terminate().await.success(), "{name}");

    if in_doubt {
        let server = Server::start(
            data,
            logs.join(format!("{}-again.log", name.replace(' ', "-"))),
        );
        let (mut log, mut admin) = server.clients().await;
        check_commit(
            &mut log,
            &mut admin,
            GROUP,
            TOPIC,
            Commit::Exact(COMMITTED),
            name,
        )
        .await;
        drop((log, admin));
        assert!(server.terminate().await.success(), "{name}");
    }
}

/// FetchOffsets and DescribeGroup for `group`, which committed on partition 0 of `topic`.
async fn check_commit(
    log: &mut LogClient<Channel>,
    admin: &mut AdminClient<Channel>,
    group: &str,
    topic: &str,
    expect: Commit,
    name: &str,
) {
    let fetched = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: group.into(),
            topic: None,
        })
        .await
        .map(|r| r.into_inner().offsets);
    let described = admin
        .describe_group(v1::DescribeGroupRequest {
            group: group.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("{name}: describe {group}: {s:?}"))
        .into_inner()
        .partitions;
    match expect {
        Commit::Exact(offset) => {
            let fetched = fetched.unwrap_or_else(|s| panic!("{name}: {group}: {s:?}"));
            assert_eq!(fetched.len(), 1, "{name}: {group}: {fetched:?}");
            assert_eq!(
                (fetched[0].topic.as_str(), fetched[0].offset),
                (topic, offset)
            );
            assert_eq!(described[0].committed_offset, offset, "{name}: {group}");
            assert_eq!(described[0].damage, None, "{name}: {group}");
        }
        Commit::InDoubt(last) => {
            let status = fetched.expect_err("an offset in doubt was served");
            assert_eq!(status.code(), Code::DataLoss, "{name}: {status:?}");
            let partition =
                format!("topic {topic:?} partition 0 (last readable commit: offset {last})");
            for words in [group, partition.as_str(), "may be stale", "reset-offsets"] {
                assert!(
                    status.message().contains(words),
                    "{name}: {status:?} lacks {words:?}"
                );
            }
            assert!(!status.message().contains('/'), "a path leaked: {status:?}");
            assert_eq!(described[0].committed_offset, last, "{name}: {group}");
            assert!(described[0].damage.is_some(), "{name}: {described:?}");
        }
        Commit::Gone => {
            let fetched = fetched.unwrap_or_else(|s| panic!("{name}: {group}: {s:?}"));
            assert_eq!(fetched, [], "{name}: {group}");
            assert_eq!(described, [], "{name}: {group}");
        }
    }
}

/// A DATA_LOSS refusal of the damaged topic that says `why`.
fn assert_damaged(status: &tonic::Status, why: &str, call: &str) {
    assert_eq!(status.code(), Code::DataLoss, "{call}: {status:?}");
    for words in [
        "topic \"damaged\" cannot be served",
        why,
        "delete the topic",
    ] {
        assert!(
            status.message().contains(words),
            "{call}: {status:?} lacks {words:?}"
        );
    }
    assert!(
        !status.message().contains('/'),
        "{call}: a path leaked: {status:?}"
    );
}

/// Everything a client can do to TOPIC while its metadata is damaged, and to OTHER beside it.
async fn check_damaged_topic(server: &Server, why: &str, name: &str) {
    let (mut log, mut admin) = server.clients().await;

    let listed = admin
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner()
        .topics;
    assert_eq!(listed.len(), 2, "{name}: {listed:?}");
    let (other, damaged) = (&listed[0], &listed[1]);
    assert_eq!(
        (other.name.as_str(), other.partitions, &other.damage),
        (OTHER, 1, &None)
    );
    assert_eq!(
        (damaged.name.as_str(), damaged.partitions),
        (TOPIC, 0),
        "{name}"
    );
    assert!(
        damaged.damage.as_deref().unwrap_or_default().contains(why),
        "{name}: {damaged:?}"
    );

    // The command line shows it too, in the table and in JSON.
    let table = rivulet(server.addr, &["topic", "list"], b"").ok();
    assert!(
        table.contains(&format!("topic {TOPIC} is damaged: ")) && table.contains(why),
        "{name}: {table}"
    );
    let json = rivulet(server.addr, &["topic", "list", "--output", "json"], b"").ok();
    let damaged_line = json
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|v| v["topic"] == TOPIC)
        .unwrap_or_else(|| panic!("{name}: {json}"));
    assert!(
        damaged_line["damage"]
            .as_str()
            .unwrap_or_default()
            .contains(why),
        "{name}: {json}"
    );

    let status = admin
        .describe_topic(v1::DescribeTopicRequest { name: TOPIC.into() })
        .await
        .unwrap_err();
    assert_damaged(&status, why, "describe");
    let status = fetch_one(&mut log, TOPIC, 0).await.unwrap_err();
    assert_damaged(&status, why, "fetch");
    let status = log.produce(produce(TOPIC, 0)).await.unwrap_err();
    assert_damaged(&status, why, "produce");
    let status = log
        .list_offsets(v1::ListOffsetsRequest {
            topic: TOPIC.into(),
            partition: 0,
            spec: Some(v1::list_offsets_request::Spec::TimestampMs(TIMESTAMP_BASE)),
        })
        .await
        .unwrap_err();
    assert_damaged(&status, why, "list offsets");
    let status = log
        .commit_offsets(commit(GROUP, TOPIC, 1))
        .await
        .unwrap_err();
    assert_damaged(&status, why, "commit");
    let subscribed = log
        .subscribe(v1::SubscribeRequest {
            topic: TOPIC.into(),
            partition: 0,
            start: Some(v1::subscribe_request::Start::Offset(0)),
            ..Default::default()
        })
        .await;
    let status = match subscribed {
        Err(status) => status,
        Ok(stream) => {
            let mut stream = stream.into_inner();
            stream
                .message()
                .await
                .expect_err("a damaged topic was served")
        }
    };
    assert_damaged(&status, why, "subscribe");
    let status = admin
        .create_topic(v1::CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 1,
            config: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{name}: {status:?}");

    // Its commits are kept, and DescribeGroup says why it shows no log end; everything else
    // works as before.
    let kept = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: GROUP.into(),
            topic: None,
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    assert_eq!(
        (kept.len(), kept[0].offset),
        (1, COMMITTED),
        "{name}: {kept:?}"
    );
    let described = admin
        .describe_group(v1::DescribeGroupRequest {
            group: GROUP.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .partitions;
    assert_eq!(
        (described[0].committed_offset, described[0].high_watermark),
        (COMMITTED, 0)
    );
    assert!(
        described[0]
            .damage
            .as_deref()
            .unwrap_or_default()
            .contains(why),
        "{described:?}"
    );
    check_commit(
        &mut log,
        &mut admin,
        WATCHERS,
        OTHER,
        Commit::Exact(WATCHED),
        name,
    )
    .await;
    check_readable(&mut log, OTHER, BATCHES * PER_BATCH, &(0..0)).await;
    let reply = log
        .produce(produce(OTHER, BATCHES * PER_BATCH))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.batches[0].base_offset, BATCHES * PER_BATCH, "{name}");
    log.commit_offsets(commit(WATCHERS, OTHER, WATCHED + 1))
        .await
        .unwrap();

    let server_log = server.log();
    assert!(
        server_log.contains("topic cannot be served"),
        "{name}: {server_log}"
    );
    assert!(server_log.contains("topic=damaged"), "{name}: {server_log}");
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

/// The repair docs/broker.md gives when there is no backup of `topic.meta`: a scratch
/// server creates a topic of the same name, partition count and settings, and its metadata
/// file replaces the damaged one. Every record and commit of the topic is back. Runs on a copy
/// of `data`.
async fn check_metadata_repair(dir: &Path, data: &Path, logs: &Path, index: usize, name: &str) {
    let repaired = dir.join(format!("repaired-{index}"));
    copy_dir(data, &repaired);
    let scratch = dir.join(format!("scratch-{index}"));
    let server = Server::start(&scratch, logs.join(format!("scratch-{index}.log")));
    let (log, mut admin) = server.clients().await;
    admin
        .create_topic(v1::CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 1,
            config: Some(v1::TopicConfig {
                segment_bytes: Some(SEGMENT_BYTES),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    drop((log, admin));
    assert!(server.terminate().await.success(), "{name}");
    let meta = |root: &Path| root.join("topics").join(TOPIC).join("topic.meta");
    std::fs::copy(meta(&scratch), meta(&repaired)).unwrap();

    let server = Server::start(&repaired, logs.join(format!("repaired-{index}.log")));
    let (mut log, mut admin) = server.clients().await;
    check_readable(&mut log, TOPIC, BATCHES * PER_BATCH, &(0..0)).await;
    check_commit(
        &mut log,
        &mut admin,
        GROUP,
        TOPIC,
        Commit::Exact(COMMITTED),
        name,
    )
    .await;
    drop((log, admin));
    assert!(server.terminate().await.success(), "{name}");
    std::fs::remove_dir_all(&repaired).unwrap();
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_damaged_metadata_is_reported_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let original = dir.path().join("original");
    build(&original, &logs).await;
    for (index, (name, damage, why)) in metadata_cases().into_iter().enumerate() {
        let data = dir.path().join(format!("metadata-{index}"));
        copy_dir(&original, &data);
        damage(&data);
        let topic_dir = data.join("topics").join(TOPIC);
        let before = snapshot(&topic_dir);
        println!("file damage: {name}");

        let server = Server::start(&data, logs.join(format!("metadata-{index}.log")));
        check_damaged_topic(&server, why, name).await;
        assert!(server.terminate().await.success(), "{name}");
        // Nothing of the damaged topic was touched: not even clean-shutdown markers or indexes.
        assert!(
            snapshot(&topic_dir) == before,
            "{name}: the damaged topic's files changed"
        );

        check_metadata_repair(dir.path(), &data, &logs, index, name).await;

        // An operator can delete it and create the name again.
        let server = Server::start(&data, logs.join(format!("metadata-{index}-deleted.log")));
        let (mut log, mut admin) = server.clients().await;
        admin
            .delete_topic(v1::DeleteTopicRequest { name: TOPIC.into() })
            .await
            .unwrap_or_else(|s| panic!("{name}: delete: {s:?}"));
        assert!(!topic_dir.exists(), "{name}");
        check_commit(&mut log, &mut admin, GROUP, TOPIC, Commit::Gone, name).await;
        admin
            .create_topic(v1::CreateTopicRequest {
                name: TOPIC.into(),
                partitions: 1,
                config: None,
            })
            .await
            .unwrap();
        let reply = log.produce(produce(TOPIC, 0)).await.unwrap().into_inner();
        assert_eq!(reply.batches[0].base_offset, 0, "{name}");
        check_readable(&mut log, OTHER, (BATCHES + 1) * PER_BATCH, &(0..0)).await;
        drop((log, admin));
        assert!(server.terminate().await.success(), "{name}");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
