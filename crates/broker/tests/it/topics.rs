//! Topic creation, naming rules, listing, describing, deletion and reload.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rivulet_broker::{
    Broker, BrokerConfig, BrokerError, DurabilityPolicy, ErrorKind, FetchRequest, OffsetSpec,
    ProduceRecord, ProduceRequest, TopicConfig,
};

use crate::{open, produce_n, read_all};

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                e.expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bc17_names_the_file_system_cannot_hold_are_refused_before_any_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;

    broker
        .create_topic("x", 1, TopicConfig::default())
        .await
        .unwrap();
    let long = "n".repeat(249);
    broker
        .create_topic(&long, 10, TopicConfig::default())
        .await
        .unwrap();

    let bad = [
        "a".repeat(250),
        "b".repeat(255),
        "c".repeat(256),
        "ä".repeat(150),
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "a/b".to_owned(),
        "a\\b".to_owned(),
        "a\0b".to_owned(),
        "a b".to_owned(),
        "__offsets".to_owned(),
    ];
    let before = entries(&dir.path().join("topics"));
    for name in &bad {
        let err = broker
            .create_topic(name, 1, TopicConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::InvalidTopicName { .. }),
            "{name:?}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        // The message states the rule and shows the name escaped.
        assert!(!err.to_string().contains('\0'));
    }
    assert_eq!(entries(&dir.path().join("topics")), before);
    assert!(entries(&dir.path().join("staging")).is_empty());

    // Collisions: case, and '.' against '_'.
    broker
        .create_topic("Foo", 1, TopicConfig::default())
        .await
        .unwrap();
    let err = broker
        .create_topic("foo", 1, TopicConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::TopicExists { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    broker
        .create_topic("a.b", 1, TopicConfig::default())
        .await
        .unwrap();
    let err = broker
        .create_topic("a_b", 1, TopicConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::TopicExists { ref existing, .. } if existing == "a.b"));

    let listed = broker.list_topics();
    broker.shutdown().await.unwrap();
    drop(broker);

    let broker = open(dir.path()).await;
    assert_eq!(broker.list_topics(), listed);
    for name in &listed {
        let partitions = broker.describe_topic(name).unwrap().partitions.len() as u32;
        for p in 0..partitions {
            produce_n(&broker, name, p, 1, "after-restart").await;
        }
    }
    assert_eq!(broker.describe_topic(&long).unwrap().partitions.len(), 10);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_count_is_checked_against_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path()).with_max_partitions(8))
        .await
        .unwrap();
    for count in [0, 9] {
        let err = broker
            .create_topic("t", count, TopicConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::InvalidPartitionCount { max: 8, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("between 1 and 8"), "{err}");
    }
    assert!(entries(&dir.path().join("topics")).is_empty());
    broker
        .create_topic("t", 8, TopicConfig::default())
        .await
        .unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topic_settings_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    let err = broker
        .create_topic("t", 1, TopicConfig::default().with_segment_bytes(100))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BrokerError::InvalidConfig {
            setting: "segment_bytes",
            ..
        }
    ));
    assert!(broker.list_topics().is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_settings_and_offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig::default()
        .with_retention_age(Some(Duration::from_secs(3600)))
        .with_retention_bytes(Some(1 << 30))
        .with_segment_bytes(64 << 10)
        .with_max_record_bytes(4096)
        .with_max_batch_bytes(256 << 10)
        .with_durability(DurabilityPolicy::OsDecides);
    {
        let broker = open(dir.path()).await;
        broker
            .create_topic("orders", 3, config.clone())
            .await
            .unwrap();
        produce_n(&broker, "orders", 1, 7, "v").await;
        let described = broker.describe_topic("orders").unwrap();
        assert_eq!(described.partitions[1].log_end_offset, 7);
        assert_eq!(described.partitions[1].durable_offset, 7);
        assert!(described.partitions[1].size_bytes > 0);
        assert_eq!(described.partitions[0].log_end_offset, 0);
        broker.shutdown().await.unwrap();
    }
    let broker = open(dir.path()).await;
    let described = broker.describe_topic("orders").unwrap();
    assert_eq!(described.config, config);
    assert_eq!(described.partitions.len(), 3);
    assert_eq!(described.partitions[1].log_start_offset, 0);
    assert_eq!(described.partitions[1].log_end_offset, 7);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_topics_leave_no_files_and_can_be_recreated_empty() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker
        .create_topic("gone", 2, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, "gone", 0, 5, "v").await;
    broker.delete_topic("gone").await.unwrap();
    assert!(broker.list_topics().is_empty());
    assert!(entries(&dir.path().join("topics")).is_empty());
    assert!(entries(&dir.path().join("trash")).is_empty());
    let err = broker.describe_topic("gone").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = broker.delete_topic("gone").await.unwrap_err();
    assert!(matches!(err, BrokerError::UnknownTopic { .. }));

    broker
        .create_topic("gone", 1, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(
        broker.describe_topic("gone").unwrap().partitions[0].log_end_offset,
        0
    );
    broker.shutdown().await.unwrap();

    let broker = open(dir.path()).await;
    assert_eq!(broker.list_topics(), ["gone"]);
    broker.shutdown().await.unwrap();
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("data directory readable") {
            let path = entry.expect("data directory readable").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .expect("data directory readable")
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, std::fs::read(&path).expect("data directory readable"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Two topics with data ("t" with 2 partitions, "other") and a commit on each, stopped
/// cleanly.
async fn two_topics(dir: &Path) {
    let broker = open(dir).await;
    for (name, partitions) in [("t", 2), ("other", 1)] {
        broker
            .create_topic(name, partitions, TopicConfig::default())
            .await
            .expect("set-up succeeds");
        produce_n(&broker, name, 0, 5, name).await;
        broker
            .commit_offset("g", name, 0, 3)
            .await
            .expect("set-up succeeds");
    }
    broker.shutdown().await.expect("set-up succeeds");
}

fn garble_metadata(dir: &Path) {
    let meta = dir.join("topics").join("t").join("topic.meta");
    let mut bytes = std::fs::read(&meta).expect("metadata file readable and writable");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&meta, bytes).expect("metadata file readable and writable");
}

/// Every operation on `t` but listing and deleting fails with `TopicDamaged` saying `why`.
async fn assert_refused(broker: &Broker, dir: &Path, why: &str) {
    let check = |err: BrokerError| {
        assert!(matches!(err, BrokerError::TopicDamaged { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::DataLoss);
        let message = err.to_string();
        for words in [
            "topic \"t\" cannot be served",
            why,
            "delete the topic",
            "backup",
        ] {
            assert!(message.contains(words), "{message} should say {words:?}");
        }
        assert!(!message.contains(&*dir.to_string_lossy()), "{message}");
    };
    check(broker.describe_topic("t").expect_err("refused"));
    check(broker.partition_for_key("t", b"k").expect_err("refused"));
    check(
        broker
            .produce(ProduceRequest::records(
                "t",
                vec![ProduceRecord::value("v")],
            ))
            .await
            .expect_err("refused"),
    );
    check(
        broker
            .fetch(FetchRequest::new("t", 0, 0))
            .await
            .expect_err("refused"),
    );
    check(
        broker
            .list_offsets("t", 0, OffsetSpec::Latest)
            .await
            .expect_err("refused"),
    );
    check(
        broker
            .commit_offset("g", "t", 0, 1)
            .await
            .expect_err("refused"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_damaged_metadata_is_listed_and_refused_while_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    two_topics(dir.path()).await;
    garble_metadata(dir.path());
    let topic_dir = dir.path().join("topics").join("t");
    let before = snapshot(&topic_dir);

    for restart in 0..2 {
        let broker = open(dir.path()).await;
        assert_eq!(broker.list_topics(), ["other", "t"]);
        assert_refused(&broker, dir.path(), "metadata file (topic.meta) is damaged").await;

        // The name stays taken, also for colliding spellings.
        for name in ["t", "T"] {
            let err = broker
                .create_topic(name, 1, TopicConfig::default())
                .await
                .unwrap_err();
            assert!(matches!(err, BrokerError::TopicExists { .. }), "{err:?}");
        }
        // Its committed offsets are kept; the other topic works fully.
        assert_eq!(
            broker.committed_offsets("g", Some("t")).unwrap()[0].offset,
            3
        );
        assert_eq!(read_all(&broker, "other", 0, 0).await.len(), 5 + restart);
        produce_n(&broker, "other", 0, 1, "more").await;
        broker.commit_offset("g", "other", 0, 6).await.unwrap();
        broker.shutdown().await.unwrap();

        assert_eq!(
            snapshot(&topic_dir),
            before,
            "the damaged topic's files changed"
        );
    }

    // Deleting it removes its files and offsets and frees the name.
    let broker = open(dir.path()).await;
    broker.delete_topic("t").await.unwrap();
    assert!(!topic_dir.exists());
    assert_eq!(broker.list_topics(), ["other"]);
    assert_eq!(broker.committed_offsets("g", Some("t")).unwrap(), []);
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].log_end_offset,
        0
    );
    assert_eq!(read_all(&broker, "other", 0, 0).await.len(), 7);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_metadata_a_foreign_name_or_a_missing_partition_directory_mark_a_topic_damaged() {
    let dir = tempfile::tempdir().unwrap();
    two_topics(dir.path()).await;
    let topic_dir = dir.path().join("topics").join("t");
    let meta = topic_dir.join("topic.meta");
    let original = std::fs::read(&meta).unwrap();
    let other_meta = std::fs::read(dir.path().join("topics").join("other").join("topic.meta"));

    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(Damage, Damage, &str)> = vec![
        (
            Box::new(|meta| std::fs::remove_file(meta).unwrap()),
            Box::new(|_| {}),
            "metadata file (topic.meta) is missing",
        ),
        (
            Box::new(move |meta| std::fs::write(meta, other_meta.as_ref().unwrap()).unwrap()),
            Box::new(|_| {}),
            "names topic \"other\"",
        ),
        (
            Box::new(|meta| std::fs::remove_dir_all(meta.with_file_name("1")).unwrap()),
            Box::new(|meta| std::fs::create_dir(meta.with_file_name("1")).unwrap()),
            "partition 1 of its 2 has no directory",
        ),
    ];
    for (damage, repair, why) in cases {
        damage(&meta);
        let before = snapshot(&topic_dir);
        let broker = open(dir.path()).await;
        assert_eq!(broker.list_topics(), ["other", "t"], "{why}");
        assert_refused(&broker, dir.path(), why).await;
        assert_eq!(read_all(&broker, "other", 0, 0).await.len(), 5);
        broker.shutdown().await.unwrap();
        assert_eq!(snapshot(&topic_dir), before, "{why}: files changed");

        std::fs::write(&meta, &original).unwrap();
        repair(&meta);
        let broker = open(dir.path()).await;
        assert_eq!(
            read_all(&broker, "t", 0, 0).await.len(),
            5,
            "{why}: repaired"
        );
        broker.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_under_load_and_created_again_starts_empty() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rivulet_broker::{FetchRequest, ProduceRecord, ProduceRequest};

    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    // Tiny segments, so the producers roll segments (creating files by path) all the time.
    let config = TopicConfig::default().with_segment_bytes(1024);
    broker.create_topic("t", 1, config.clone()).await.unwrap();

    let deleting = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let broker = Arc::clone(&broker);
            let deleting = Arc::clone(&deleting);
            tokio::spawn(async move {
                // Bounded: until the deletion starts or the topic is gone, and never more than
                // 2,000 requests. Returns how many requests it sent after the deletion started:
                // at most one, which may land in the new topic if it resolves the name after
                // the re-creation.
                let mut after_delete = 0u64;
                for i in 0..2_000 {
                    let late = deleting.load(Ordering::SeqCst);
                    if late && after_delete > 0 {
                        break;
                    }
                    after_delete += u64::from(late);
                    let request = ProduceRequest::records(
                        "t",
                        vec![ProduceRecord::value(format!(
                            "old-{p}-{i}-{}",
                            "x".repeat(200)
                        ))],
                    );
                    if let Err(err) = broker.produce(request).await {
                        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    deleting.store(true, Ordering::SeqCst);
    broker.delete_topic("t").await.unwrap();
    broker.create_topic("t", 1, config).await.unwrap();
    for producer in producers {
        producer.await.unwrap();
    }

    // Nothing of the old topic reached the new one. Each producer may have had one request in
    // flight across the deletion that resolved the name after the re-creation: at most 4
    // records, legitimately in the new topic. No segment file of the old log appeared in the
    // new directory: every segment starts at or below the new log's end, and the new log reads
    // back densely from 0.
    let log_end = broker.describe_topic("t").unwrap().partitions[0].log_end_offset;
    assert!(log_end <= 4, "{log_end} records in the re-created topic");
    let partition_dir = dir.path().join("topics").join("t").join("0");
    for name in entries(&partition_dir) {
        if let Some(base) = name.strip_suffix(".log") {
            let base: u64 = base.parse().unwrap();
            assert!(
                base <= log_end,
                "segment {name} of an old log in the new topic"
            );
        }
    }
    let mut next = 0;
    while next < log_end {
        let reply = broker.fetch(FetchRequest::new("t", 0, next)).await.unwrap();
        let records = reply.read.records().unwrap();
        assert!(!records.is_empty());
        for record in records {
            assert_eq!(u64::try_from(record.offset).unwrap(), next);
            next += 1;
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_the_same_directory_is_refused_until_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).await;
    first
        .create_topic("mine", 1, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&first, "mine", 0, 3, "v").await;
    let before = snapshot(&dir.path().join("topics"));

    let err = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .err()
        .expect("a second broker on a data directory in use");
    assert!(
        matches!(err, BrokerError::DataDirectoryInUse { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    assert!(snapshot(&dir.path().join("topics")) == before);

    first.shutdown().await.unwrap();
    let second = open(dir.path()).await;
    assert_eq!(read_all(&second, "mine", 0, 0).await.len(), 3);
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_that_is_a_file_is_refused_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = Broker::open(BrokerConfig::new(&file))
        .await
        .err()
        .expect("a file is no data directory");
    let message = err.to_string();
    assert!(
        message.contains("data_dir") && message.contains("must be a directory"),
        "{message}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_the_longest_name_is_deleted_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(249);
    let broker = open(dir.path()).await;
    broker
        .create_topic(&name, 2, TopicConfig::default())
        .await
        .unwrap();
    produce_n(&broker, &name, 0, 2, "v").await;
    broker.delete_topic(&name).await.unwrap();
    assert!(broker.list_topics().is_empty());
    assert!(entries(&dir.path().join("topics")).is_empty());
    broker
        .create_topic(&name, 1, TopicConfig::default())
        .await
        .unwrap();
    broker.delete_topic(&name).await.unwrap();
    broker.shutdown().await.unwrap();

    let broker = open(dir.path()).await;
    assert!(broker.list_topics().is_empty());
    broker.shutdown().await.unwrap();
}
