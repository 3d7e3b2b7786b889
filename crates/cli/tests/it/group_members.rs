//! Consumer groups across real processes: `rivulet consume --group` children share six
//! partitions 2/2/2, a fourth joins and takes only its share, one is killed with SIGKILL and
//! its partitions move within the session timeout; with a producer running throughout, the
//! union of what the members printed holds every acknowledged record, and duplicates come only
//! from the killed member's uncommitted tail. A member stopped with SIGTERM commits what it
//! printed and leaves the group at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::harness::Server;

const PARTITIONS: u32 = 6;
/// Session timeout of the test server, in ms: short, so a killed member's partitions move soon.
const SESSION_MS: u64 = 2_000;

/// One `rivulet consume --group` child, printing JSON lines into a file.
struct Member {
    child: Child,
    output: PathBuf,
}

impl Member {
    fn start(server: &Server, dir: &Path, name: &str) -> Member {
        Member::start_committing_every(server, dir, name, "200ms")
    }

    fn start_committing_every(
        server: &Server,
        dir: &Path,
        name: &str,
        commit_interval: &str,
    ) -> Member {
        let output = dir.join(format!("{name}.jsonl"));
        let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args([
                "consume",
                "jobs",
                "--group",
                "workers",
                "--from-beginning",
                "--follow",
                "--output",
                "json",
                "--commit-interval",
                commit_interval,
            ])
            .env("RIVULET_SERVER", server.addr.to_string())
            .env("HOSTNAME", name)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
            .spawn()
            .unwrap();
        Member { child, output }
    }

    /// The (partition, offset) of every record it printed so far.
    fn printed(&self) -> Vec<(u32, u64)> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|v| {
                (
                    u32::try_from(v["partition"].as_u64().unwrap()).unwrap(),
                    v["offset"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Partitions held per member host, from DescribeGroup.
async fn holdings(admin: &mut AdminClient<Channel>) -> BTreeMap<String, BTreeSet<u32>> {
    let reply = admin
        .describe_group(v1::DescribeGroupRequest {
            group: "workers".into(),
        })
        .await
        .unwrap()
        .into_inner();
    reply
        .members
        .into_iter()
        .map(|m| {
            (
                m.client_host,
                m.owned.iter().map(|tp| tp.partition).collect(),
            )
        })
        .collect()
}

/// Waits until the members' holding sizes, sorted, are `sizes`; returns the holdings.
async fn wait_for_sizes(
    admin: &mut AdminClient<Channel>,
    sizes: &[usize],
    limit: Duration,
) -> BTreeMap<String, BTreeSet<u32>> {
    let deadline = Instant::now() + limit;
    loop {
        let current = holdings(admin).await;
        let mut got: Vec<usize> = current.values().map(BTreeSet::len).collect();
        got.sort_unstable();
        if got == sizes {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "holdings {current:?}, wanted sizes {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_processes_share_rebalance_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        dir.path().join("server.log"),
        &["--group-session-timeout-ms", &SESSION_MS.to_string()],
    );
    let (mut log, mut admin) = server.clients().await;
    admin
        .create_topic(v1::CreateTopicRequest {
            name: "jobs".into(),
            partitions: PARTITIONS,
            config: None,
        })
        .await
        .unwrap();

    // A producer runs throughout: 60 rounds of 20 keyed records, every ack recorded.
    let mut producer_log = log.clone();
    let producer = tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        for round in 0..60 {
            let records = (0..20)
                .map(|i| v1::ProduceRecord {
                    key: Some(Bytes::from(format!("key-{i}"))),
                    value: Some(Bytes::from(format!("job-{round}-{i}"))),
                    ..Default::default()
                })
                .collect();
            let reply = producer_log
                .produce(v1::ProduceRequest {
                    topic: "jobs".into(),
                    payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
                        records,
                    })),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for batch in reply.batches {
                for offset in batch.base_offset..=batch.last_offset {
                    acked.insert((batch.partition, offset));
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        acked
    });

    let mut members: Vec<Member> = ["m0", "m1", "m2"]
        .iter()
        .map(|name| Member::start(&server, dir.path(), name))
        .collect();
    let before = wait_for_sizes(&mut admin, &[2, 2, 2], Duration::from_secs(30)).await;

    // A fourth joins: exactly one partition moves, to it.
    members.push(Member::start(&server, dir.path(), "m3"));
    let after = wait_for_sizes(&mut admin, &[1, 1, 2, 2], Duration::from_secs(30)).await;
    let moved: usize = before
        .iter()
        .map(|(host, had)| had.difference(&after[host]).count())
        .sum();
    assert_eq!(moved, 1, "before {before:?}, after {after:?}");
    assert_eq!(after["m3"].len(), 1);

    // SIGKILL m0. What it committed so far only grows, so it bounds its duplicates below.
    let victim_partitions = after["m0"].clone();
    let committed_before_kill: BTreeMap<u32, u64> = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: "workers".into(),
            topic: Some("jobs".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .offsets
        .into_iter()
        .map(|c| (c.partition, c.offset))
        .collect();
    let mut victim = members.remove(0);
    let killed = Instant::now();
    // `Child::kill` sends SIGKILL: no commit, no leave.
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let victim_printed = victim.printed();
    let rebalanced = wait_for_sizes(&mut admin, &[2, 2, 2], Duration::from_secs(30)).await;
    println!(
        "m0 killed; its partitions {victim_partitions:?} moved after {:?}: {rebalanced:?}",
        killed.elapsed()
    );

    let acked = producer.await.unwrap();
    // Wait until the members together printed every acknowledged record.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed: Vec<(&str, (u32, u64))> = Vec::new();
    loop {
        printed.clear();
        printed.extend(victim_printed.iter().map(|r| ("m0", *r)));
        for (name, member) in ["m1", "m2", "m3"].iter().zip(&members) {
            printed.extend(member.printed().into_iter().map(|r| (*name, r)));
        }
        let seen: BTreeSet<(u32, u64)> = printed.iter().map(|(_, r)| *r).collect();
        if acked.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged records printed",
            acked.intersection(&seen).count(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Duplicates: only records the killed member printed past its last commit.
    let mut readers: BTreeMap<(u32, u64), Vec<&str>> = BTreeMap::new();
    for (name, record) in &printed {
        readers.entry(*record).or_default().push(name);
    }
    let mut duplicates = 0;
    for ((partition, offset), names) in &readers {
        if names.len() < 2 {
            continue;
        }
        duplicates += names.len() - 1;
        assert_eq!(names.len(), 2, "{partition}/{offset} printed by {names:?}");
        assert!(
            names.contains(&"m0"),
            "{partition}/{offset} printed by {names:?}"
        );
        assert!(victim_partitions.contains(partition));
        let committed = committed_before_kill.get(partition).copied().unwrap_or(0);
        assert!(
            *offset >= committed,
            "{partition}/{offset} below m0's commit {committed}"
        );
    }
    println!(
        "acknowledged {}, printed {}, duplicates {duplicates} (m0's uncommitted tail, commit \
         interval 200 ms)",
        acked.len(),
        printed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_with_sigterm_commits_what_it_printed_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let (mut log, mut admin) = server.clients().await;
    admin
        .create_topic(v1::CreateTopicRequest {
            name: "jobs".into(),
            partitions: 2,
            config: None,
        })
        .await
        .unwrap();
    let records = (0..40)
        .map(|i| v1::ProduceRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("job-{i}"))),
            ..Default::default()
        })
        .collect();
    log.produce(v1::ProduceRequest {
        topic: "jobs".into(),
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records,
        })),
        ..Default::default()
    })
    .await
    .unwrap();

    // The commit interval is far longer than the test: only the stop can commit.
    let mut member = Member::start_committing_every(&server, dir.path(), "m0", "1h");
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.printed().len() < 40 {
        assert!(Instant::now() < deadline, "printed {:?}", member.printed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &member.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = member.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "consume did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(dir.path().join("m0.err")).unwrap();
    assert_eq!(exit.code(), Some(0), "{stderr}");

    // Committed offsets are one past the last record printed of each partition.
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for (partition, offset) in member.printed() {
        let end = next.entry(partition).or_default();
        *end = (*end).max(offset + 1);
    }
    let group = admin
        .describe_group(v1::DescribeGroupRequest {
            group: "workers".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let committed: BTreeMap<u32, u64> = group
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed_offset))
        .collect();
    assert_eq!(committed, next);
    assert_eq!(committed.values().sum::<u64>(), 40);
    assert!(
        group.members.is_empty(),
        "still a member: {:?}",
        group.members
    );
}
