//! The broker's consumer-group membership API: heartbeats (which also join), clean leaves, and
//! the membership part of describing a group. The rules live in `membership`; this module
//! holds one [`GroupMembers`] per group behind its own lock, feeds it the topics' partition
//! counts and the clock, and checks sizes of what members send.
//!
//! A group's lock is also held while one of its commits is fsynced (see `groups`), so a member
//! that loses a partition cannot have a commit for it land after the hand-over.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::groups::validate_group;
use crate::membership::{
    Assignment, AssignmentStrategy, GroupMembers, GroupMembership, Heartbeat, MembershipError,
    MembershipTimeouts,
};
use crate::topic_name::MAX_TOPIC_NAME_LEN;

/// Most topics one member may subscribe to.
pub const MAX_SUBSCRIBED_TOPICS: usize = 1_000;

/// Longest member id, instance id or client host accepted.
pub const MAX_MEMBER_ID_BYTES: usize = 255;

impl Broker {
    /// Handles a heartbeat from a member of `group` (a join when it has no member id) and
    /// returns the member's assignment. `strategy` is the assignment strategy the member asks
    /// for; a group takes the strategy of its first member, and a member asking for another
    /// while the group has members is refused.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a bad group name, too many topics, over-long ids or
    /// a strategy that differs from the group's; [`BrokerError::Membership`] when the member id
    /// is unknown (it left, expired or was fenced: join again without one).
    pub fn heartbeat(
        &self,
        group: &str,
        strategy: AssignmentStrategy,
        heartbeat: Heartbeat,
    ) -> Result<Assignment> {
        let _ticket = self.shared.admission.admit(0)?;
        validate_group(group)?;
        validate_heartbeat(&heartbeat)?;
        let members = self.group_members_or_insert(group);
        let mut members = members.lock();
        members.expire(self.shared.config.group_timeouts, Instant::now());
        if members.strategy() != strategy {
            if members.is_empty() {
                members.set_strategy(strategy);
            } else {
                return Err(BrokerError::InvalidArgument(format!(
                    "group {group:?} assigns partitions with the {} strategy; this member asked \
                     for {}; all members of a group must use the same strategy",
                    members.strategy().name(),
                    strategy.name()
                )));
            }
        }
        let topics = self.shared.topics.read();
        let partition_count = |topic: &str| {
            topics
                .get(topic)
                .and_then(|t| u32::try_from(t.partitions.len()).ok())
        };
        Ok(members.heartbeat(
            heartbeat,
            self.shared.config.group_timeouts,
            &partition_count,
            Instant::now(),
        )?)
    }

    /// Removes `member_id` from `group` at once; its partitions go to the others on their
    /// next heartbeats.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a bad group name; [`BrokerError::Membership`] for
    /// an unknown member.
    pub fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        validate_group(group)?;
        let Some(members) = self.group_members(group) else {
            return Err(MembershipError::UnknownMember {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
            }
            .into());
        };
        Ok(members.lock().leave(member_id)?)
    }

    /// The live members of `group`, their partitions and targets; `None` for a group that has
    /// never had members.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a bad group name.
    pub fn group_membership(&self, group: &str) -> Result<Option<GroupMembership>> {
        validate_group(group)?;
        Ok(self.group_members(group).map(|members| {
            let mut members = members.lock();
            members.expire(self.shared.config.group_timeouts, Instant::now());
            members.describe()
        }))
    }

    /// The session and rebalance timeouts of consumer groups.
    pub fn group_timeouts(&self) -> MembershipTimeouts {
        self.shared.config.group_timeouts
    }

    /// The membership state of `group`, if it ever had members.
    pub(crate) fn group_members(&self, group: &str) -> Option<Arc<Mutex<GroupMembers>>> {
        self.shared.groups.lock().get(group).map(Arc::clone)
    }

    fn group_members_or_insert(&self, group: &str) -> Arc<Mutex<GroupMembers>> {
        // TODO(broker): a group's entry stays after its last member leaves; a broker that sees
        // millions of distinct group names keeps one small entry for each until restart.
        let mut groups = self.shared.groups.lock();
        Arc::clone(groups.entry(group.to_owned()).or_insert_with(|| {
            Arc::new(Mutex::new(GroupMembers::new(
                group,
                AssignmentStrategy::default(),
            )))
        }))
    }
}

fn validate_heartbeat(heartbeat: &Heartbeat) -> Result<()> {
    let too_long = |what: &str, value: &str| {
        BrokerError::InvalidArgument(format!(
            "{what} is {} bytes; at most {MAX_MEMBER_ID_BYTES} are allowed",
            value.len()
        ))
    };
    for (what, value) in [
        ("member id", heartbeat.member_id.as_deref()),
        ("instance id", heartbeat.instance_id.as_deref()),
        ("client host", Some(heartbeat.client_host.as_str())),
    ] {
        if let Some(value) = value
            && value.len() > MAX_MEMBER_ID_BYTES
        {
            return Err(too_long(what, value));
        }
    }
    if heartbeat.member_id.as_deref() == Some("") || heartbeat.instance_id.as_deref() == Some("") {
        return Err(BrokerError::InvalidArgument(
            "member and instance ids, when given, must not be empty".to_owned(),
        ));
    }
    // Ids and hosts are printed (in group listings) and typed back like group names, so they
    // follow the same character rule.
    for (what, value) in [
        ("member id", heartbeat.member_id.as_deref()),
        ("instance id", heartbeat.instance_id.as_deref()),
        ("client host", Some(heartbeat.client_host.as_str())),
    ] {
        if let Some(value) = value
            && value.chars().any(crate::groups::is_unprintable)
        {
            return Err(BrokerError::InvalidArgument(format!(
                "invalid {what} {value:?}: it must contain no control characters (such as NUL, \
                 tab, newline, the line separator U+2028 or bidirectional marks)"
            )));
        }
    }
    if heartbeat.topics.len() > MAX_SUBSCRIBED_TOPICS {
        return Err(BrokerError::InvalidArgument(format!(
            "a member subscribes to {} topics; at most {MAX_SUBSCRIBED_TOPICS} are allowed",
            heartbeat.topics.len()
        )));
    }
    if let Some(topic) = heartbeat
        .topics
        .iter()
        .find(|t| t.is_empty() || t.len() > MAX_TOPIC_NAME_LEN)
    {
        return Err(BrokerError::InvalidArgument(format!(
            "subscribed topic name {topic:?} must be 1 to {MAX_TOPIC_NAME_LEN} characters"
        )));
    }
    Ok(())
}
