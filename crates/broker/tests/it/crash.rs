//! kill -9: a child process (this test binary, re-run on one test) produces durably and
//! commits offsets, printing each acknowledgement; the parent SIGKILLs it mid-stream, reopens
//! the data directory and checks that every acknowledged record and commit is there.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_broker::{
    Broker, BrokerConfig, BrokerError, FetchRequest, ProduceRecord, ProduceRequest, TopicConfig,
};

const CHILD_ENV: &str = "RIVULET_BROKER_CRASH_CHILD_DIR";

/// The child's side: runs only when the parent starts it with a data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let broker = Broker::open(BrokerConfig::new(&dir)).await.unwrap();
    match broker
        .create_topic("crash", 2, TopicConfig::default())
        .await
    {
        Ok(()) | Err(BrokerError::TopicExists { .. }) => {}
        Err(err) => panic!("{err}"),
    }
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let p = (n % 2) as u32;
        let value = format!("v{n}");
        let reply = broker
            .produce(
                ProduceRequest::records("crash", vec![ProduceRecord::value(value.clone())])
                    .to_partition(p),
            )
            .await
            .unwrap();
        println!("ACK {p} {} {value}", reply.base_offset());
        if n % 5 == 4 {
            let next = reply.base_offset() + 1;
            broker
                .commit_offset("g", "crash", p, next as i64)
                .await
                .unwrap();
            println!("COMMIT {p} {next}");
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_durable_ack_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "crash::kill_9_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();

    let mut acks = Vec::new();
    let mut commits: BTreeMap<u32, u64> = BTreeMap::new();
    let mut note = |line: &str, acks: &mut Vec<(u32, u64, String)>| {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ACK", p, offset, value] => {
                acks.push((
                    p.parse().unwrap(),
                    offset.parse().unwrap(),
                    (*value).to_owned(),
                ));
            }
            ["COMMIT", p, offset] => {
                commits.insert(p.parse().unwrap(), offset.parse().unwrap());
            }
            _ => {}
        }
    };
    for line in lines.by_ref() {
        let line = line.unwrap();
        note(&line, &mut acks);
        if acks.len() >= 300 {
            break;
        }
    }
    assert!(acks.len() >= 300, "child stopped early");
    child.kill().unwrap(); // SIGKILL
    // Lines already written were acknowledged before the kill; count them too.
    for line in lines {
        let Ok(line) = line else { break };
        note(&line, &mut acks);
    }
    child.wait().unwrap();

    let broker = Broker::open(BrokerConfig::new(dir.path())).await.unwrap();
    for (p, offset, value) in &acks {
        let reply = broker
            .fetch(FetchRequest::new("crash", *p, *offset))
            .await
            .unwrap();
        let records = reply.read.records().unwrap();
        assert_eq!(records[0].offset as u64, *offset);
        assert_eq!(
            records[0].value.as_deref(),
            Some(value.as_bytes()),
            "partition {p}"
        );
    }
    for (p, offset) in &commits {
        let committed = broker.committed_offset("g", "crash", *p).unwrap().unwrap();
        assert!(
            committed.offset >= *offset,
            "partition {p}: {} < {offset}",
            committed.offset
        );
    }
    assert!(!commits.is_empty());
    broker.shutdown().await.unwrap();
}
