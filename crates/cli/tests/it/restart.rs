//! Crash and graceful restarts of the real binary: nothing acknowledged is lost, nothing is
//! duplicated, committed offsets survive.

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::log_client::LogClient;
use tonic::transport::Channel;

use crate::harness::Server;

fn produce(topic: &str, partition: u32, values: &[String]) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(partition),
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records: values
                .iter()
                .map(|v| v1::ProduceRecord {
                    value: Some(Bytes::from(v.clone())),
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

async fn values_from(log: &mut LogClient<Channel>, partition: u32, offset: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = offset;
    loop {
        let reply = log
            .fetch(v1::FetchRequest {
                topic: "events".into(),
                partition,
                offset: next,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for record in &reply.records {
            assert_eq!(record.offset, next + (out.len() as u64 - (next - offset)));
            out.push(String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap());
        }
        if reply.next_offset >= reply.high_watermark {
            return out;
        }
        next = reply.next_offset;
    }
}

fn numbered(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("event-{i}")).collect()
}

#[tokio::test]
async fn state_survives_sigkill_and_sigterm_restarts_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // First life: create, produce, consume part, commit; then crash.
    let server = Server::start(&data, dir.path().join("first.log"));
    let (mut log, mut admin) = server.clients().await;
    admin
        .create_topic(v1::CreateTopicRequest {
            name: "events".into(),
            partitions: 2,
            config: None,
        })
        .await
        .unwrap();
    log.produce(produce("events", 0, &numbered(0..10)))
        .await
        .unwrap();
    log.produce(produce("events", 1, &numbered(100..105)))
        .await
        .unwrap();
    assert_eq!(values_from(&mut log, 0, 0).await, numbered(0..10));
    log.commit_offsets(v1::CommitOffsetsRequest {
        group: "readers".into(),
        offsets: vec![
            v1::OffsetCommit {
                topic: "events".into(),
                partition: 0,
                offset: 6,
                metadata: None,
            },
            v1::OffsetCommit {
                topic: "events".into(),
                partition: 1,
                offset: 5,
                metadata: None,
            },
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    drop((log, admin));
    server.kill();

    // Second life after the crash: offsets and data are all there; continue.
    let server = Server::start(&data, dir.path().join("second.log"));
    let (mut log, _admin) = server.clients().await;
    let committed = log
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: "readers".into(),
            topic: Some("events".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    let committed: Vec<(u32, u64)> = committed.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(committed, vec![(0, 6), (1, 5)]);
    assert_eq!(values_from(&mut log, 0, 6).await, numbered(6..10));
    assert!(values_from(&mut log, 1, 5).await.is_empty());

    let reply = log
        .produce(produce("events", 0, &numbered(10..13)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.batches[0].base_offset, 10,
        "offsets continue after the crash"
    );
    assert_eq!(values_from(&mut log, 0, 0).await, numbered(0..13));
    let startup = server.log();
    assert!(startup.contains("rivulet started"), "{startup}");
    assert!(startup.contains("topics=1 partitions=2"), "{startup}");
    assert!(
        startup.contains("partition recovered after unclean shutdown"),
        "{startup}"
    );

    // Graceful stop: exit status 0, logs flushed and marked clean.
    drop(log);
    let log_file = server.log_file.clone();
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
    let stopped = std::fs::read_to_string(log_file).unwrap();
    assert!(stopped.contains("rivulet stopped"), "{stopped}");

    // Third life after the clean stop: no recovery needed, everything still there.
    let server = Server::start(&data, dir.path().join("third.log"));
    let (mut log, _admin) = server.clients().await;
    assert_eq!(values_from(&mut log, 0, 0).await, numbered(0..13));
    assert_eq!(values_from(&mut log, 1, 0).await, numbered(100..105));
    let startup = server.log();
    assert!(
        !startup.contains("partition recovered after unclean shutdown"),
        "{startup}"
    );
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data, dir.path().join("first.log"));
    let (mut log, mut admin) = first.clients().await;
    admin
        .create_topic(v1::CreateTopicRequest {
            name: "events".into(),
            partitions: 1,
            config: None,
        })
        .await
        .unwrap();
    log.produce(produce("events", 0, &numbered(0..5)))
        .await
        .unwrap();

    let refused = Server::try_start(&data, dir.path().join("second.log"))
        .err()
        .expect("a second server on the same data directory started");
    assert!(
        refused.contains("is in use by another process"),
        "second server's log: {refused}"
    );

    // The first server is undisturbed and keeps writing at the next offset.
    let reply = log
        .produce(produce("events", 0, &numbered(5..8)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.batches[0].base_offset, 5);
    drop((log, admin));
    first.kill();

    // Once it is gone, the directory opens again with everything in it.
    let again = Server::start(&data, dir.path().join("again.log"));
    let (mut log, _admin) = again.clients().await;
    assert_eq!(values_from(&mut log, 0, 0).await, numbered(0..8));
}
