//! Acceptance scenarios from the field that need the real binary: a full disk across a crash
//! (BC-18), open descriptors across restarts (BC-19) and memory under unconsumed data (BC-20).
//! Sizes are scaled down so the suite stays fast; the figures are printed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::Server;

fn records(topic: &str, partition: u32, count: usize, size: usize) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(partition),
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records: (0..count)
                .map(|_| v1::ProduceRecord {
                    value: Some(Bytes::from(vec![b'r'; size])),
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

async fn create(admin: &mut AdminClient<Channel>, name: &str, partitions: u32, segment: u64) {
    admin
        .create_topic(v1::CreateTopicRequest {
            name: name.into(),
            partitions,
            config: Some(v1::TopicConfig {
                segment_bytes: Some(segment),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

/// Reads a partition from 0 to its end; returns the record count, checking offsets are dense.
async fn count_records(log: &mut LogClient<Channel>, topic: &str, partition: u32) -> u64 {
    let mut next = 0;
    loop {
        let reply = log
            .fetch(v1::FetchRequest {
                topic: topic.into(),
                partition,
                offset: next,
                max_bytes: 4 << 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for record in &reply.records {
            assert_eq!(record.offset, next);
            next += 1;
        }
        if reply.records.is_empty() {
            assert_eq!(next, reply.high_watermark);
            return next;
        }
    }
}

/// A tmpfs mounted for a test's lifetime, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.success() {
            return Err(format!("mount failed ({status}); not root or no tmpfs"));
        }
        Ok(Tmpfs { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// BC-18: a disk that fills up, a kill -9 while it is full, a restart while still full, then
/// space freed: produce fails cleanly and retryably, reads keep working, the full restart comes
/// up, nothing acknowledged or committed is lost, and producing resumes at the next offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc18_disk_full_then_kill_and_restart_loses_nothing() {
    let fs = match Tmpfs::mount("24m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("BC-18 skipped: {reason}");
            return;
        }
    };
    let logs = tempfile::tempdir().unwrap();
    let data = fs.path().join("data");
    let server = Server::start(&data, logs.path().join("1.log"));
    let (mut log, mut admin) = server.clients().await;
    create(&mut admin, "t18", 2, 4 << 20).await;

    // Fill: 1 KiB records, 64 per request, alternating partitions, until a produce fails.
    let mut acked = [0u64; 2];
    let refusal = loop {
        let partition = (acked[0] + acked[1]) as u32 / 64 % 2;
        match log.produce(records("t18", partition, 64, 1024)).await {
            Ok(reply) => {
                let ack = &reply.into_inner().batches[0];
                assert_eq!(ack.base_offset, acked[partition as usize]);
                acked[partition as usize] = ack.last_offset + 1;
            }
            Err(status) => break status,
        }
        assert!(acked[0] + acked[1] < 1 << 20, "the disk never filled");
    };
    println!("BC-18: full after {acked:?} records; refusal: {refusal:?}");
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert!(refusal.message().contains("disk"), "{refusal:?}");

    // Other writes while full: each either works or is refused cleanly; none kills the server.
    let topic = admin
        .create_topic(v1::CreateTopicRequest {
            name: "u18".into(),
            partitions: 1,
            config: None,
        })
        .await;
    println!(
        "BC-18: create topic while full: {:?}",
        topic.as_ref().map(drop)
    );
    let commit = log
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "g18".into(),
            offsets: vec![v1::OffsetCommit {
                topic: "t18".into(),
                partition: 0,
                offset: 10,
                metadata: None,
            }],
            ..Default::default()
        })
        .await;
    println!("BC-18: commit while full: {:?}", commit.as_ref().map(drop));
    for partition in 0..2 {
        assert_eq!(
            count_records(&mut log, "t18", partition).await,
            acked[partition as usize]
        );
    }

    // kill -9, restart while the disk is still full.
    drop((log, admin));
    server.kill();
    let server = Server::try_start(&data, logs.path().join("2.log"))
        .unwrap_or_else(|log| panic!("BC-18: no restart on a full disk:\n{log}"));
    let (mut log, _admin) = server.clients().await;
    for partition in 0..2 {
        assert!(count_records(&mut log, "t18", partition).await >= acked[partition as usize]);
    }
    drop(log);
    server.kill();

    // Free space, restart, produce and read everything.
    fs.resize("64m");
    let server = Server::start(&data, logs.path().join("3.log"));
    let (mut log, _admin) = server.clients().await;
    for partition in 0..2 {
        let stored = count_records(&mut log, "t18", partition).await;
        assert!(
            stored >= acked[partition as usize],
            "partition {partition} lost records"
        );
        let reply = log
            .produce(records("t18", partition, 1, 1024))
            .await
            .unwrap();
        assert_eq!(reply.into_inner().batches[0].base_offset, stored);
    }
    if commit.is_ok() {
        let offsets = log
            .fetch_offsets(v1::FetchOffsetsRequest {
                group: "g18".into(),
                topic: None,
            })
            .await
            .unwrap()
            .into_inner()
            .offsets;
        assert_eq!(offsets[0].offset, 10, "an acknowledged commit was lost");
    }
    drop(log);
    assert!(server.terminate().await.success());
}

/// Segment files (`.log`) under the data directory.
fn segment_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += segment_files(&path);
        } else if path.extension().is_some_and(|e| e == "log") {
            count += 1;
        }
    }
    count
}

/// BC-19: many partitions restarted again and again: open descriptors and segment files do
/// not grow with restarts, and under a low open-file limit the server never half-creates a
/// partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc19_open_descriptors_do_not_grow_with_restarts() {
    const TOPICS: u32 = 10;
    const PARTITIONS: u32 = 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, dir.path().join("0.log"));
    let (log, mut admin) = server.clients().await;
    for topic in 0..TOPICS {
        create(&mut admin, &format!("t19-{topic}"), PARTITIONS, 1 << 20).await;
    }
    // Written durability and one task per topic: the scenario is about descriptors, and a
    // thousand sequential fsyncs per life would only make the test slow.
    let produce_everywhere = |log: LogClient<Channel>| async move {
        let mut tasks = Vec::new();
        for topic in 0..TOPICS {
            let mut log = log.clone();
            tasks.push(tokio::spawn(async move {
                for partition in 0..PARTITIONS {
                    let mut request = records(&format!("t19-{topic}"), partition, 1, 100);
                    request.durability = v1::Durability::Written as i32;
                    log.produce(request).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    };
    produce_everywhere(log.clone()).await;
    let first = (server.open_fds(), segment_files(&data));
    println!(
        "BC-19: first life: {} fds, {} segment files",
        first.0, first.1
    );
    drop((log, admin));
    assert!(server.terminate().await.success());

    let mut counts = Vec::new();
    for restart in 1..=5 {
        let server = Server::start(&data, dir.path().join(format!("{restart}.log")));
        let (log, _admin) = server.clients().await;
        produce_everywhere(log).await;
        let now = (server.open_fds(), segment_files(&data));
        println!(
            "BC-19: restart {restart}: {} fds, {} segment files",
            now.0, now.1
        );
        counts.push(now);
        if restart % 2 == 0 {
            server.kill();
        } else {
            assert!(server.terminate().await.success());
        }
    }
    for (fds, segments) in &counts {
        assert!(
            *fds <= first.0 + 16,
            "descriptors grew: {counts:?} from {first:?}"
        );
        assert_eq!(*segments, first.1, "restarts created segments: {counts:?}");
    }

    // Low limit: the server either serves every partition or refuses to start, naming the
    // cause; it never comes up with partitions it cannot write.
    match Server::try_start_with_fd_limit(&data, dir.path().join("limited.log"), 1024) {
        Ok(server) => {
            let (log, _admin) = server.clients().await;
            produce_everywhere(log).await;
            println!(
                "BC-19: under 1024 open files: serving, {} fds",
                server.open_fds()
            );
            assert!(server.terminate().await.success());
        }
        Err(log) => {
            println!("BC-19: under 1024 open files: refused to start:\n{log}");
            assert!(log.to_lowercase().contains("open files"), "{log}");
        }
    }
}

/// BC-20: anonymous memory does not grow with unconsumed data, a slow consumer causes no
/// server-side buffering, and a restart over the data is quick and small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc20_memory_does_not_grow_with_unconsumed_data() {
    const CHUNK: usize = 256; // records of 1 KiB per request: 256 KiB
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, dir.path().join("1.log"));
    let (mut log, mut admin) = server.clients().await;
    create(&mut admin, "t20", 4, 8 << 20).await;

    let mut produced = 0u64;
    let mut produce_mib = async |log: &mut LogClient<Channel>, mib: u64| {
        for i in 0..mib * 4 {
            let request = records("t20", (i % 4) as u32, CHUNK, 1024);
            log.produce(request).await.unwrap();
            produced += CHUNK as u64;
        }
    };
    produce_mib(&mut log, 16).await;
    let warm = server.status_kib("RssAnon");
    produce_mib(&mut log, 48).await;
    let after = server.status_kib("RssAnon");
    println!(
        "BC-20: RssAnon {warm} KiB after 16 MiB stored, {after} KiB after 64 MiB stored; \
         peak RSS {} KiB",
        server.status_kib("VmHWM")
    );

    // A slow consumer from offset 0 with long-polls, while producing continues.
    let mut consumer = log.clone();
    let slow = tokio::spawn(async move {
        let mut next = 0;
        for _ in 0..20 {
            let reply = consumer
                .fetch(v1::FetchRequest {
                    topic: "t20".into(),
                    partition: 0,
                    offset: next,
                    max_bytes: 100 * 1024,
                    max_wait_ms: 500,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!reply.records.is_empty());
            assert_eq!(reply.records[0].offset, next);
            next = reply.next_offset;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    produce_mib(&mut log, 8).await;
    slow.await.unwrap();
    let with_consumer = server.status_kib("RssAnon");
    println!("BC-20: RssAnon {with_consumer} KiB with a slow consumer, {produced} records");
    assert!(
        after.saturating_sub(warm) < 24 * 1024,
        "anonymous memory grew with data: {warm} -> {after} KiB"
    );
    assert!(with_consumer.saturating_sub(warm) < 24 * 1024);
    drop(log);
    server.kill();

    let started = Instant::now();
    let server = Server::start(&data, dir.path().join("2.log"));
    let startup = started.elapsed();
    let (mut log, _admin) = server.clients().await;
    let total: u64 = {
        let mut total = 0;
        for partition in 0..4 {
            let reply = log
                .list_offsets(v1::ListOffsetsRequest {
                    topic: "t20".into(),
                    partition,
                    spec: Some(v1::list_offsets_request::Spec::Position(2)),
                })
                .await
                .unwrap()
                .into_inner();
            total += reply.offset.unwrap();
        }
        total
    };
    assert_eq!(total, produced);
    let rss = server.status_kib("RssAnon");
    println!(
        "BC-20: restart over {} MiB: up in {startup:?}, RssAnon {rss} KiB, peak RSS {} KiB",
        produced / 1024,
        server.status_kib("VmHWM")
    );
    assert!(rss < 64 * 1024, "restart RssAnon {rss} KiB");
    drop(log);
    assert!(server.terminate().await.success());
}
