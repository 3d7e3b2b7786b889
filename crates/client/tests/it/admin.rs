//! Admin: topics and groups, round trip.

use std::time::Duration;

use rivulet_client::{
    ClientError, DurabilityPolicy, NewTopic, OffsetReset, ProducerRecord, TopicPartition,
};
use rivulet_proto::v1;

use crate::harness::{TestServer, create_topic, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_groups_round_trip() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let admin = client.admin();

    admin
        .create_topic(
            NewTopic::new("alpha", 3)
                .retention_ms(60_000)
                .max_record_bytes(4096),
        )
        .await
        .unwrap();
    admin.create_topic(NewTopic::new("beta", 1)).await.unwrap();
    let err = admin
        .create_topic(NewTopic::new("alpha", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AlreadyExists { .. }), "{err:?}");
    let err = admin
        .create_topic(NewTopic::new("bad name!", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidArgument { .. }),
        "{err:?}"
    );

    let topics = admin.list_topics().await.unwrap();
    let names: Vec<_> = topics.iter().map(|t| (t.name(), t.partitions())).collect();
    assert_eq!(names, vec![("alpha", 3), ("beta", 1)]);

    let alpha = admin.describe_topic("alpha").await.unwrap();
    assert_eq!(alpha.name(), "alpha");
    assert_eq!(alpha.partitions().len(), 3);
    assert_eq!(alpha.retention_ms(), Some(60_000));
    assert_eq!(alpha.max_record_bytes(), Some(4096));
    assert!(alpha.created_at_ms() > 0);

    // A group that read 4 of 10 records lags by 6.
    let producer = client.producer().build();
    for i in 0..10 {
        let record = ProducerRecord::new("beta").value(format!("{i}"));
        drop(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut consumer = client
        .consumer()
        .group("readers")
        .offset_reset(OffsetReset::Earliest)
        .max_poll_records(4)
        .auto_commit(None)
        .build();
    consumer.subscribe(["beta"]).await.unwrap();
    assert_eq!(
        poll_until(&mut consumer, 4, Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        4
    );
    consumer.commit().await.unwrap();

    assert_eq!(
        admin.list_groups().await.unwrap(),
        vec!["readers".to_owned()]
    );
    let group = admin.describe_group("readers").await.unwrap();
    assert_eq!(group.name(), "readers");
    let lag = &group.partitions()[0];
    assert_eq!(
        (
            lag.topic(),
            lag.partition(),
            lag.committed_offset(),
            lag.high_watermark(),
            lag.lag()
        ),
        ("beta", 0, 4, 10, 6)
    );
    assert_eq!(group.total_lag(), 6);
    assert_eq!(
        consumer
            .committed(&TopicPartition::new("beta", 0))
            .await
            .unwrap(),
        Some(4)
    );

    admin.delete_topic("alpha").await.unwrap();
    let err = admin.describe_topic("alpha").await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
    let err = admin.delete_topic("alpha").await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_setting_round_trips() {
    let server = TestServer::start().await;
    let admin = server.client().await.admin();

    admin
        .create_topic(
            NewTopic::new("tuned", 2)
                .retention_ms(3_600_000)
                .retention_bytes(1 << 30)
                .segment_bytes(1 << 20)
                .max_record_bytes(2048)
                .max_batch_bytes(1 << 16)
                .durability_policy(DurabilityPolicy::SyncInterval)
                .sync_interval_ms(250),
        )
        .await
        .unwrap();
    admin
        .create_topic(NewTopic::new("careful", 1).durability_policy(DurabilityPolicy::OsDecides))
        .await
        .unwrap();

    let tuned = admin.describe_topic("tuned").await.unwrap();
    assert_eq!(tuned.retention_ms(), Some(3_600_000));
    assert_eq!(tuned.retention_bytes(), Some(1 << 30));
    assert_eq!(tuned.segment_bytes(), Some(1 << 20));
    assert_eq!(tuned.max_record_bytes(), Some(2048));
    assert_eq!(tuned.max_batch_bytes(), Some(1 << 16));
    assert_eq!(
        tuned.durability_policy(),
        Some(DurabilityPolicy::SyncInterval)
    );
    assert_eq!(tuned.sync_interval_ms(), Some(250));
    let careful = admin.describe_topic("careful").await.unwrap();
    assert_eq!(
        careful.durability_policy(),
        Some(DurabilityPolicy::OsDecides)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_group_names_the_live_members() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_topic(&client, "jobs", 2).await;
    let admin = client.admin();
    assert!(
        admin
            .describe_group("crew")
            .await
            .unwrap()
            .member_ids()
            .is_empty()
    );

    let mut log = v1::log_client::LogClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let joined = log
        .heartbeat(v1::HeartbeatRequest {
            group: "crew".to_owned(),
            topics: vec!["jobs".to_owned()],
            client_host: "test".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let group = admin.describe_group("crew").await.unwrap();
    assert_eq!(group.member_ids(), [joined.member_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_with_and_without_a_scheme_connect() {
    let server = TestServer::start().await;
    for address in [server.address(), format!("http://{}", server.address())] {
        let client = rivulet_client::Client::connect(&address).await.unwrap();
        assert!(client.admin().list_topics().await.unwrap().is_empty());
    }
    let err = rivulet_client::Client::connect("not a uri at all")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidAddress { .. }), "{err:?}");
}
