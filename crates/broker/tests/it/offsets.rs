//! Consumer-group committed offsets: rules, durability, compaction, topic deletion.

use std::sync::Arc;

use rivulet_broker::{
    Broker, BrokerConfig, BrokerError, Durability, ErrorKind, FetchRequest, OffsetCommit,
    TopicConfig,
};

use crate::{open, open_with, produce_n, produce_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc10_the_offset_after_the_last_record_read_is_committed_and_resumed_from() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path()).await;
        broker
            .create_topic("t10", 1, TopicConfig::default())
            .await
            .unwrap();
        assert_eq!(
            produce_one(&broker, "t10", 0, "first", Durability::Durable).await,
            0
        );

        // The consumer read offset 0, so it commits 1: the next offset to read.
        let read = broker.fetch(FetchRequest::new("t10", 0, 0)).await.unwrap();
        let last = read.read.records().unwrap().last().unwrap().offset;
        broker.commit_offset("g", "t10", 0, last + 1).await.unwrap();

        let committed = broker.committed_offset("g", "t10", 0).unwrap().unwrap();
        assert_eq!(committed.offset, 1);
        assert_eq!(broker.list_groups().unwrap(), ["g"]);
        broker.shutdown().await.unwrap();
    }

    // Restart: the consumer resumes at exactly the committed offset and sees only new records.
    let broker = open(dir.path()).await;
    assert_eq!(broker.list_groups().unwrap(), ["g"]);
    let resume = broker
        .committed_offset("g", "t10", 0)
        .unwrap()
        .unwrap()
        .offset;
    assert_eq!(resume, 1);
    assert_eq!(
        produce_one(&broker, "t10", 0, "second", Durability::Durable).await,
        1
    );
    let read = broker
        .fetch(FetchRequest::new("t10", 0, resume))
        .await
        .unwrap();
    let records = read.read.records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"second"[..]));

    // Manual variant: commit 1 again and read it back unchanged (not committed + 1).
    broker.commit_offset("g", "t10", 0, 1).await.unwrap();
    assert_eq!(
        broker
            .committed_offset("g", "t10", 0)
            .unwrap()
            .unwrap()
            .offset,
        1
    );

    // Beyond the log end (2) is refused with an invalid-offset error, and nothing changes.
    let err = broker.commit_offset("g", "t10", 0, 5).await.unwrap_err();
    match &err {
        BrokerError::InvalidCommitOffset {
            offset, log_end, ..
        } => {
            assert_eq!((*offset, *log_end), (5, 2));
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        broker
            .committed_offset("g", "t10", 0)
            .unwrap()
            .unwrap()
            .offset,
        1
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_commits_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 2, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "t", 0, 3, "v").await;

    let err = broker.commit_offset("g", "t", 0, -1).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::InvalidCommitOffset { offset: -1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("negative"), "{err}");
    let err = broker.commit_offset("g", "t", 9, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = broker.commit_offset("g", "nope", 0, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = broker.commit_offset("", "t", 0, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    // One bad entry refuses the whole commit.
    let err = broker
        .commit_offsets(
            "g",
            vec![OffsetCommit::new("t", 0, 2), OffsetCommit::new("t", 1, 1)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::InvalidCommitOffset { partition: 1, .. }),
        "{err}"
    );
    assert!(broker.committed_offsets("g", None).unwrap().is_empty());
    assert!(broker.list_groups().unwrap().is_empty());

    // The log end itself is fine, and so is 0 on an empty partition.
    broker
        .commit_offsets(
            "g",
            vec![
                OffsetCommit::new("t", 0, 3).with_metadata("host-a"),
                OffsetCommit::new("t", 1, 0),
            ],
        )
        .await
        .unwrap();
    let committed = broker.committed_offsets("g", Some("t")).unwrap();
    assert_eq!(committed.len(), 2);
    assert_eq!(committed[0].metadata.as_deref(), Some("host-a"));
    assert_eq!(committed[1].metadata, None);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_group_reports_lag_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("t", 2, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "t", 0, 10, "v").await;
    produce_n(&broker, "t", 1, 4, "v").await;
    broker
        .commit_offsets(
            "g",
            vec![OffsetCommit::new("t", 0, 7), OffsetCommit::new("t", 1, 4)],
        )
        .await
        .unwrap();
    let lag: Vec<(u32, u64, u64, u64)> = broker
        .describe_group("g")
        .unwrap()
        .into_iter()
        .map(|l| (l.partition, l.committed, l.log_end_offset, l.lag))
        .collect();
    assert_eq!(lag, [(0, 7, 10, 3), (1, 4, 4, 0)]);
    assert!(broker.describe_group("other").unwrap().is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path()).await;
        broker
            .create_topic("t", 3, TopicConfig::default())
            .await
            .unwrap();
        for p in 0..3 {
            produce_n(&broker, "t", p, 5, "v").await;
        }
        for (i, group) in ["a", "b", "c"].iter().enumerate() {
            broker
                .commit_offset(group, "t", i as u32, i as i64 + 1)
                .await
                .unwrap();
        }
        // Dropped without shutdown: logs are not closed cleanly.
    }
    let broker = open(dir.path()).await;
    assert_eq!(broker.list_groups().unwrap(), ["a", "b", "c"]);
    for (i, group) in ["a", "b", "c"].iter().enumerate() {
        let c = broker
            .committed_offset(group, "t", i as u32)
            .unwrap()
            .unwrap();
        assert_eq!(c.offset, i as u64 + 1);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_log_is_compacted_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::new(dir.path()).with_offsets_compact_bytes(16 << 10);
    let broker = Arc::new(Broker::open(config.clone()).await.unwrap());
    broker
        .create_topic("t", 4, TopicConfig::default())
        .await
        .unwrap();
    for p in 0..4 {
        produce_n(&broker, "t", p, 100, "v").await;
    }
    // Concurrent committers keep overwriting the same 12 keys.
    let mut tasks = Vec::new();
    for g in 0..3 {
        let broker = Arc::clone(&broker);
        tasks.push(tokio::spawn(async move {
            for i in 0..300i64 {
                let p = (i % 4) as u32;
                broker
                    .commit_offset(&format!("group-{g}"), "t", p, i % 100)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = broker.metrics();
    assert!(metrics.offsets_compactions > 0, "{metrics:?}");
    assert!(metrics.offsets_log_bytes < 64 << 10, "{metrics:?}");

    let before: Vec<_> = (0..3)
        .map(|g| {
            broker
                .committed_offsets(&format!("group-{g}"), None)
                .unwrap()
        })
        .collect();
    assert!(before.iter().all(|c| c.len() == 4));
    // Last commit of each group for partition 3 was i = 299: 299 % 100 = 99.
    assert!(before.iter().all(|c| c[3].offset == 99));
    drop(broker); // unclean stop

    let broker = open_with(config).await;
    let after: Vec<_> = (0..3)
        .map(|g| {
            broker
                .committed_offsets(&format!("group-{g}"), None)
                .unwrap()
        })
        .collect();
    assert_eq!(before, after);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_removes_its_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("gone", 1, TopicConfig::default())
        .await
        .unwrap();
    broker
        .create_topic("kept", 1, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "gone", 0, 3, "v").await;
    produce_n(&broker, "kept", 0, 3, "v").await;
    broker.commit_offset("g", "gone", 0, 3).await.unwrap();
    broker.commit_offset("g", "kept", 0, 2).await.unwrap();
    broker
        .commit_offset("only-gone", "gone", 0, 1)
        .await
        .unwrap();

    broker.delete_topic("gone").await.unwrap();
    let left = broker.committed_offsets("g", None).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].topic, "kept");
    assert_eq!(broker.list_groups().unwrap(), ["g"]);

    broker
        .create_topic("gone", 1, TopicConfig::default())
        .await
        .unwrap();
    assert!(broker.committed_offset("g", "gone", 0).unwrap().is_none());
    broker.shutdown().await.unwrap();

    let broker = open(dir.path()).await;
    assert!(broker.committed_offset("g", "gone", 0).unwrap().is_none());
    assert_eq!(
        broker
            .committed_offset("g", "kept", 0)
            .unwrap()
            .unwrap()
            .offset,
        2
    );
    broker.shutdown().await.unwrap();
}

/// Flips a byte inside the records of batch `index` of the offsets log's first segment.
fn garble_offsets_batch(data: &std::path::Path, index: usize) {
    let segment = data
        .join("internal")
        .join("offsets")
        .join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&segment).expect("offsets log segment readable and writable");
    let mut pos = 0;
    for _ in 0..index {
        let len = u32::from_be_bytes(
            bytes[pos + 8..pos + 12]
                .try_into()
                .expect("offsets log segment readable and writable"),
        );
        pos += 12 + len as usize;
    }
    bytes[pos + 70] ^= 0x5a;
    std::fs::write(&segment, bytes).expect("offsets log segment readable and writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_lost_to_damage_is_reported_rather_than_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path()).await;
        broker
            .create_topic("t", 2, TopicConfig::default())
            .await
            .unwrap();
        produce_n(&broker, "t", 0, 10, "v").await;
        produce_n(&broker, "t", 1, 10, "v").await;
        broker.commit_offset("g", "t", 0, 3).await.unwrap(); // offsets log offset 0
        broker.commit_offset("g", "t", 0, 7).await.unwrap(); // 1: garbled below
        broker.commit_offset("h", "t", 1, 4).await.unwrap(); // 2
        broker.shutdown().await.unwrap();
    }
    garble_offsets_batch(dir.path(), 1);

    let broker = open(dir.path()).await;
    // Reading g's offsets would resume from 3 and re-deliver 3..7 without a word: refused.
    let err = broker.committed_offsets("g", None).unwrap_err();
    assert!(matches!(err, BrokerError::CommitsInDoubt { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::DataLoss);
    let message = err.to_string();
    for words in [
        "group \"g\" may be stale",
        "offsets 1 to 1",
        "topic \"t\" partition 0 (last readable commit: offset 3)",
        "reset-offsets",
    ] {
        assert!(message.contains(words), "{message} should say {words:?}");
    }
    assert!(broker.committed_offset("g", "t", 0).is_err());
    // Inspection shows the older offset, flagged.
    let lags = broker.describe_group("g").unwrap();
    assert_eq!(lags[0].committed, 3);
    assert!(
        lags[0]
            .damage
            .as_deref()
            .unwrap()
            .contains("offsets 1 to 1")
    );
    // A commit written after the damage is exact.
    assert_eq!(
        broker
            .committed_offset("h", "t", 1)
            .unwrap()
            .unwrap()
            .offset,
        4
    );
    assert_eq!(broker.describe_group("h").unwrap()[0].damage, None);
    assert_eq!(broker.list_groups().unwrap(), ["g", "h"]);

    // Committing again settles it, durably.
    broker.commit_offset("g", "t", 0, 7).await.unwrap();
    assert_eq!(broker.committed_offsets("g", None).unwrap()[0].offset, 7);
    broker.shutdown().await.unwrap();
    let broker = open(dir.path()).await;
    assert_eq!(broker.committed_offsets("g", None).unwrap()[0].offset, 7);
    assert_eq!(
        broker
            .committed_offset("h", "t", 1)
            .unwrap()
            .unwrap()
            .offset,
        4
    );
    broker.shutdown().await.unwrap();
}
