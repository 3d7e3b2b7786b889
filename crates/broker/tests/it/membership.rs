//! Consumer-group membership through the broker: joins, assignment over real topics, commit
//! fencing, leaves and session expiry.

use std::collections::BTreeSet;
use std::time::Duration;

use rivulet_broker::{
    AssignmentStrategy, Broker, BrokerConfig, Committer, ErrorKind, Heartbeat, MembershipTimeouts,
    OffsetCommit, TopicConfig, TopicPartition,
};

use crate::produce_n;

fn beat(member_id: Option<&str>, owned: &BTreeSet<TopicPartition>) -> Heartbeat {
    Heartbeat {
        member_id: member_id.map(str::to_owned),
        client_host: "127.0.0.1".into(),
        topics: ["t".to_owned()].into(),
        owned: owned.clone(),
        ..Heartbeat::default()
    }
}

#[tokio::test]
async fn members_share_a_topic_and_only_owners_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).await.unwrap();
    broker
        .create_topic("t", 4, TopicConfig::default())
        .await
        .unwrap();
    for partition in 0..4 {
        produce_n(&broker, "t", partition, 10, "r").await;
    }

    let none = BTreeSet::new();
    let a = broker
        .heartbeat("g", AssignmentStrategy::Sticky, beat(None, &none))
        .unwrap();
    assert_eq!(a.partitions.len(), 4);
    let a_id = a.member_id.clone();

    // While A is a member, a commit from outside the group is refused.
    let outside = broker
        .commit_offsets("g", vec![OffsetCommit::new("t", 0, 0)])
        .await
        .unwrap_err();
    assert_eq!(outside.kind(), ErrorKind::FailedPrecondition, "{outside}");
    assert!(outside.to_string().contains("live member"), "{outside}");

    // B joins; A is told to give up two partitions, and may commit them until it releases.
    let b = broker
        .heartbeat("g", AssignmentStrategy::Sticky, beat(None, &none))
        .unwrap();
    assert!(b.partitions.is_empty());
    assert_eq!(b.pending, 2);
    let a2 = broker
        .heartbeat(
            "g",
            AssignmentStrategy::Sticky,
            beat(Some(&a_id), &a.partitions),
        )
        .unwrap();
    assert_eq!(a2.partitions.len(), 2);
    let revoked: Vec<_> = a.partitions.difference(&a2.partitions).cloned().collect();
    let as_a = Committer::member(a_id.clone(), Some(a2.generation));
    let commits: Vec<_> = revoked
        .iter()
        .map(|tp| OffsetCommit::new(tp.topic.clone(), tp.partition, 0))
        .collect();
    broker
        .commit_offsets_as("g", &as_a, commits.clone())
        .await
        .unwrap();

    // A releases; B gets them; A's commit on them is now refused.
    broker
        .heartbeat(
            "g",
            AssignmentStrategy::Sticky,
            beat(Some(&a_id), &a2.partitions),
        )
        .unwrap();
    let b2 = broker
        .heartbeat(
            "g",
            AssignmentStrategy::Sticky,
            beat(Some(&b.member_id), &none),
        )
        .unwrap();
    assert_eq!(b2.partitions, revoked.iter().cloned().collect());
    let fenced = broker
        .commit_offsets_as("g", &as_a, commits)
        .await
        .unwrap_err();
    assert_eq!(fenced.kind(), ErrorKind::FailedPrecondition, "{fenced}");
    assert!(fenced.to_string().contains("does not hold"), "{fenced}");

    let membership = broker.group_membership("g").unwrap().unwrap();
    assert_eq!(membership.members.len(), 2);

    // Both leave: the group is empty, and outside commits work again.
    broker.leave_group("g", &a_id).unwrap();
    broker.leave_group("g", &b.member_id).unwrap();
    broker
        .commit_offsets("g", vec![OffsetCommit::new("t", 0, 5)])
        .await
        .unwrap();
    let unknown = broker.leave_group("g", &a_id).unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::FailedPrecondition);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_member_expires_and_a_mismatched_strategy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::new(dir.path()).with_group_timeouts(MembershipTimeouts {
        session: Duration::from_millis(200),
        rebalance: Duration::from_secs(5),
    });
    let broker = Broker::open(config).await.unwrap();
    broker
        .create_topic("t", 2, TopicConfig::default())
        .await
        .unwrap();
    let none = BTreeSet::new();
    let a = broker
        .heartbeat("g", AssignmentStrategy::Sticky, beat(None, &none))
        .unwrap();

    let err = broker
        .heartbeat("g", AssignmentStrategy::Range, beat(None, &none))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("sticky"), "{err}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = broker
        .heartbeat("g", AssignmentStrategy::Sticky, beat(None, &none))
        .unwrap();
    assert_eq!(
        b.partitions.len(),
        2,
        "A expired, so B gets everything at once"
    );
    let err = broker
        .heartbeat(
            "g",
            AssignmentStrategy::Sticky,
            beat(Some(&a.member_id), &a.partitions),
        )
        .unwrap_err();
    assert!(err.to_string().contains("join again"), "{err}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeats_with_bad_fields_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).await.unwrap();
    let none = BTreeSet::new();
    let mut long = beat(None, &none);
    long.instance_id = Some("x".repeat(300));
    let err = broker
        .heartbeat("g", AssignmentStrategy::Sticky, long)
        .unwrap_err();
    assert!(err.to_string().contains("at most 255"), "{err}");
    let err = broker
        .heartbeat("", AssignmentStrategy::Sticky, beat(None, &none))
        .unwrap_err();
    assert!(err.to_string().contains("group name"), "{err}");
    let mut many = beat(None, &none);
    many.topics = (0..1_001).map(|i| format!("t{i}")).collect();
    let err = broker
        .heartbeat("g", AssignmentStrategy::Sticky, many)
        .unwrap_err();
    assert!(err.to_string().contains("at most 1000"), "{err}");
    let mut newline = beat(None, &none);
    newline.instance_id = Some("worker\n1".to_owned());
    let err = broker
        .heartbeat("g", AssignmentStrategy::Sticky, newline)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid instance id \"worker\\n1\"") && err.contains("no control"),
        "{err}"
    );
    broker.shutdown().await.unwrap();
}
