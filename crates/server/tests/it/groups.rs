//! Consumer-group membership over gRPC: heartbeats share partitions, commits are fenced, and
//! DescribeGroup shows members.

use rivulet_proto::v1;
use tonic::Code;

use crate::harness::TestServer;

fn heartbeat(member_id: Option<&str>, owned: &[v1::TopicPartition]) -> v1::HeartbeatRequest {
    v1::HeartbeatRequest {
        group: "g".into(),
        member_id: member_id.map(str::to_owned),
        topics: vec!["t".into()],
        owned: owned.to_vec(),
        client_host: "127.0.0.1".into(),
        ..Default::default()
    }
}

fn commit(
    member_id: Option<&str>,
    generation: Option<u64>,
    partition: u32,
) -> v1::CommitOffsetsRequest {
    v1::CommitOffsetsRequest {
        group: "g".into(),
        offsets: vec![v1::OffsetCommit {
            topic: "t".into(),
            partition,
            offset: 0,
            metadata: None,
        }],
        member_id: member_id.map(str::to_owned),
        generation,
    }
}

#[tokio::test]
async fn members_share_partitions_and_a_moved_partition_cannot_be_committed() {
    let mut server = TestServer::start().await;
    server.create_topic("t", 4).await;

    let a = server
        .log
        .heartbeat(heartbeat(None, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.partitions.len(), 4);
    assert!(a.heartbeat_interval_ms > 0);
    let status = server
        .log
        .commit_offsets(commit(None, None, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let b = server
        .log
        .heartbeat(heartbeat(None, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.pending, 2);
    let a2 = server
        .log
        .heartbeat(heartbeat(Some(&a.member_id), &a.partitions))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a2.partitions.len(), 2);
    let moved = a
        .partitions
        .iter()
        .find(|tp| !a2.partitions.contains(tp))
        .unwrap()
        .partition;
    // A commits on revoke, then releases.
    server
        .log
        .commit_offsets(commit(Some(&a.member_id), Some(a2.generation), moved))
        .await
        .unwrap();
    server
        .log
        .heartbeat(heartbeat(Some(&a.member_id), &a2.partitions))
        .await
        .unwrap();
    let b2 = server
        .log
        .heartbeat(heartbeat(Some(&b.member_id), &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b2.partitions.len(), 2);
    let status = server
        .log
        .commit_offsets(commit(Some(&a.member_id), Some(a2.generation), moved))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("does not hold"), "{status:?}");

    let described = server
        .admin
        .describe_group(v1::DescribeGroupRequest { group: "g".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.members.len(), 2);
    assert_eq!(described.strategy, "sticky");
    assert!(described.members.iter().all(|m| m.owned.len() == 2));
    let groups = server
        .admin
        .list_groups(v1::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(groups, vec!["g".to_owned()]);

    server
        .log
        .leave_group(v1::LeaveGroupRequest {
            group: "g".into(),
            member_id: a.member_id.clone(),
        })
        .await
        .unwrap();
    let status = server
        .log
        .heartbeat(heartbeat(Some(&a.member_id), &[]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("join again"), "{status:?}");
    let mut bad = heartbeat(None, &[]);
    bad.strategy = 42;
    let status = server.log.heartbeat(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("round-robin"), "{status:?}");
}
