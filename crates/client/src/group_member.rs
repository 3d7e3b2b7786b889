//! [`GroupMember`]: a subscribed consumer's membership in its group: the member id and
//! generation the server gave it, when the next heartbeat is due, and the Heartbeat and
//! LeaveGroup calls.
//!
//! The server computes assignments. A heartbeat reports the partitions the consumer holds and
//! returns the ones it may consume; the consumer (in `consumer`) commits and drops any it holds
//! that the reply leaves out, and only after its next heartbeat reports them gone does the
//! server give them to another member. This module keeps no partitions itself.

use std::collections::BTreeSet;
use std::time::Duration;

use rivulet_proto::v1;
use tokio::time::Instant;
use tracing::debug;

use crate::client::Client;
use crate::error::ClientError;
use crate::record::TopicPartition;

/// Heartbeat interval until the server says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

/// How soon to heartbeat again while a rebalance is in progress (partitions to release, or
/// partitions still held by others), so hand-overs take milliseconds, not a whole interval.
const REBALANCE_INTERVAL: Duration = Duration::from_millis(50);

/// How partitions are divided among the members of a group; every member of a group must use
/// the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssignmentStrategy {
    /// Keep partitions with their owners where possible; a member joining or leaving moves the
    /// fewest partitions. The default.
    #[default]
    Sticky,
    /// Per topic, consecutive ranges of partitions to members in member-id order.
    Range,
    /// All partitions dealt to members in turn.
    RoundRobin,
}

impl AssignmentStrategy {
    fn to_proto(self) -> v1::AssignmentStrategy {
        match self {
            AssignmentStrategy::Sticky => v1::AssignmentStrategy::Sticky,
            AssignmentStrategy::Range => v1::AssignmentStrategy::Range,
            AssignmentStrategy::RoundRobin => v1::AssignmentStrategy::RoundRobin,
        }
    }
}

/// A change of a subscribed consumer's partitions, passed to the callback set with
/// [`ConsumerBuilder::on_rebalance`](crate::ConsumerBuilder::on_rebalance).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceEvent {
    /// These partitions are now this consumer's; reading starts at the group's committed
    /// offsets.
    Assigned(Vec<TopicPartition>),
    /// These partitions moved to another member. Their positions were committed first (when
    /// known), and nothing more is read from them.
    Revoked(Vec<TopicPartition>),
    /// This consumer was removed from the group (it missed heartbeats, or held a revoked
    /// partition too long) and lost these partitions without committing; it joins again.
    /// Records it returned since its last commit may be delivered to the new owner too.
    Lost(Vec<TopicPartition>),
}

/// What a heartbeat decided.
pub(crate) struct Heartbeat {
    /// The partitions the consumer may read now.
    pub(crate) assigned: BTreeSet<TopicPartition>,
}

/// A consumer's membership in its group.
#[derive(Debug)]
pub(crate) struct GroupMember {
    group: String,
    topics: Vec<String>,
    instance_id: Option<String>,
    strategy: AssignmentStrategy,
    member_id: Option<String>,
    generation: u64,
    interval: Duration,
    next_heartbeat: Instant,
}

impl GroupMember {
    pub(crate) fn new(
        group: String,
        topics: Vec<String>,
        instance_id: Option<String>,
        strategy: AssignmentStrategy,
    ) -> Self {
        GroupMember {
            group,
            topics,
            instance_id,
            strategy,
            member_id: None,
            generation: 0,
            interval: DEFAULT_INTERVAL,
            next_heartbeat: Instant::now(),
        }
    }

    /// The member id, once joined.
    pub(crate) fn member_id(&self) -> Option<&str> {
        self.member_id.as_deref()
    }

    /// The generation of the last heartbeat reply.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a heartbeat is due.
    pub(crate) fn is_due(&self) -> bool {
        Instant::now() >= self.next_heartbeat
    }

    /// Time left until the next heartbeat is due.
    pub(crate) fn until_due(&self) -> Duration {
        self.next_heartbeat
            .saturating_duration_since(Instant::now())
    }

    /// Makes the next heartbeat due at once.
    pub(crate) fn wake(&mut self) {
        self.next_heartbeat = Instant::now();
    }

    /// Sends a heartbeat reporting `owned`. A [`ClientError::NotMember`] means the member was
    /// removed: the member id is forgotten so the next heartbeat joins again.
    pub(crate) async fn heartbeat(
        &mut self,
        client: &Client,
        owned: impl Iterator<Item = &TopicPartition>,
    ) -> Result<Heartbeat, ClientError> {
        let owned: Vec<v1::TopicPartition> = owned
            .map(|tp| v1::TopicPartition {
                topic: tp.topic().to_owned(),
                partition: tp.partition(),
            })
            .collect();
        let request = v1::HeartbeatRequest {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            topics: self.topics.clone(),
            owned,
            strategy: self.strategy.to_proto() as i32,
            client_host: client_host(),
        };
        let reply = match client.log().heartbeat(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                let err = ClientError::from_status("Heartbeat", &status);
                if matches!(err, ClientError::NotMember { .. }) {
                    self.member_id = None;
                    self.next_heartbeat = Instant::now();
                } else {
                    self.next_heartbeat = Instant::now() + REBALANCE_INTERVAL;
                }
                return Err(err);
            }
        };
        if reply.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(u64::from(reply.heartbeat_interval_ms));
        }
        let assigned: BTreeSet<TopicPartition> = reply
            .partitions
            .into_iter()
            .map(|tp| TopicPartition::new(tp.topic, tp.partition))
            .collect();
        // Partitions still to receive: come back soon to finish the hand-over. (The consumer
        // wakes the next heartbeat itself when it has partitions to release.)
        self.next_heartbeat = Instant::now()
            + if reply.pending > 0 {
                REBALANCE_INTERVAL
            } else {
                self.interval
            };
        if self.generation != reply.generation {
            debug!(
                group = self.group,
                member = reply.member_id,
                generation = reply.generation,
                partitions = assigned.len(),
                pending = reply.pending,
                "group assignment"
            );
        }
        self.member_id = Some(reply.member_id);
        self.generation = reply.generation;
        Ok(Heartbeat { assigned })
    }

    /// Leaves the group at once, so the member's partitions move without waiting for the
    /// session timeout. Errors are ignored: the server removes a silent member anyway.
    pub(crate) async fn leave(&mut self, client: &Client) {
        let Some(member_id) = self.member_id.take() else {
            return;
        };
        let request = v1::LeaveGroupRequest {
            group: self.group.clone(),
            member_id,
        };
        if let Err(status) = client.log().leave_group(request).await {
            debug!(group = self.group, error = %status.message(), "leave failed");
        }
    }
}

/// The host name shown by DescribeGroup: `HOSTNAME`, else the kernel's host name, else empty.
fn client_host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}
