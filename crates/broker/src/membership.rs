//! Consumer-group membership: who is in a group, which partitions each member should own, and
//! the hand-over of partitions between members. Pure state with the clock passed in; no I/O,
//! no async, so every transition is testable step by step.
//!
//! The protocol is heartbeat-driven and the broker computes the assignment, in the manner of
//! Kafka's newer consumer protocol:
//!
//! 1. A member sends a heartbeat with its subscribed topics and the partitions it holds now.
//!    The first heartbeat has no member id; the reply gives one.
//! 2. When members, subscriptions or partition counts change, the group's generation goes up
//!    and a new *target* assignment is computed by the group's [`AssignmentStrategy`].
//! 3. The reply lists the partitions the member may consume. A partition it holds but that is
//!    missing from the reply is being revoked: the member commits its progress, stops reading
//!    it, and says so by leaving it out of its next heartbeat.
//! 4. A partition is granted to its new owner only once the previous owner has released it,
//!    left, or been removed. So no partition is ever held by two members at once, and the new
//!    owner starts from the offset the old owner committed.
//!
//! Invariants kept here:
//! - `owners` maps each partition to at most one member, and only to a member of the group.
//! - A member is removed when it misses heartbeats for the session timeout, or when it keeps a
//!   revoked partition longer than the rebalance timeout (it is *fenced*); its partitions are
//!   then free for others. A removed member's next heartbeat or commit is refused, and it must
//!   join again with no member id.
//! - A member with a static instance id that comes back (with a new member id) within the
//!   session timeout takes over its old identity and assignment without a rebalance.
//!
//! Membership lives in memory: after a broker restart every member's heartbeat is refused as
//! unknown and the members join again, resuming from committed offsets, which are durable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Default time without a heartbeat after which a member is considered dead.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a member has to release a revoked partition before it is fenced.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// How a group's partitions are divided among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssignmentStrategy {
    /// Keep every partition with its current owner where possible and move only what balance
    /// requires. The default: a member joining or leaving moves the fewest partitions.
    #[default]
    Sticky,
    /// Per topic, consecutive ranges of partitions to members in member-id order.
    Range,
    /// All partitions of all topics dealt to members in turn.
    RoundRobin,
}

impl AssignmentStrategy {
    /// The strategy's name as used in requests and configuration.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Sticky => "sticky",
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "round-robin",
        }
    }

    /// Parses [`AssignmentStrategy::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sticky" => Some(AssignmentStrategy::Sticky),
            "range" => Some(AssignmentStrategy::Range),
            "round-robin" | "roundrobin" => Some(AssignmentStrategy::RoundRobin),
            _ => None,
        }
    }
}

/// Timeouts of group membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipTimeouts {
    /// A member without a heartbeat for this long is removed.
    pub session: Duration,
    /// A member holding a revoked partition for this long is fenced (removed).
    pub rebalance: Duration,
}

impl Default for MembershipTimeouts {
    fn default() -> Self {
        MembershipTimeouts {
            session: DEFAULT_SESSION_TIMEOUT,
            rebalance: DEFAULT_REBALANCE_TIMEOUT,
        }
    }
}

/// A heartbeat (or a first join) from one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// The id the broker gave this member; `None` to join.
    pub member_id: Option<String>,
    /// A stable id across restarts of the same consumer (static membership).
    pub instance_id: Option<String>,
    /// Where the member runs, for display.
    pub client_host: String,
    /// Topics the member consumes.
    pub topics: BTreeSet<String>,
    /// Partitions the member holds right now (it reads them and may commit them).
    pub owned: BTreeSet<TopicPartition>,
}

/// The reply to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The member's id, to send with every later heartbeat and commit.
    pub member_id: String,
    /// The group's generation.
    pub generation: u64,
    /// The partitions the member may consume now. One it holds that is not here is revoked:
    /// commit, stop reading it, and leave it out of the next heartbeat.
    pub partitions: BTreeSet<TopicPartition>,
    /// Partitions meant for this member that another member still holds; they arrive in a
    /// later reply once released.
    pub pending: usize,
}

/// Why a heartbeat or commit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The member id is not (or no longer) in the group.
    #[error(
        "member {member_id:?} is not in group {group:?}: it left, missed heartbeats for the \
         session timeout, or held a revoked partition past the rebalance timeout; join again \
         without a member id"
    )]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id sent.
        member_id: String,
    },
    /// A commit for a partition the member does not hold.
    #[error(
        "member {member_id:?} of group {group:?} does not hold topic {topic:?} partition \
         {partition}; the partition was reassigned, so this commit is refused"
    )]
    NotOwner {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A commit from a generation older than the member's current assignment.
    #[error(
        "commit from generation {sent} refused for member {member_id:?} of group {group:?}: its \
         assignment changed in generation {current}; heartbeat for the current assignment"
    )]
    StaleGeneration {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
        /// The generation sent.
        sent: u64,
        /// The generation of the member's current assignment.
        current: u64,
    },
    /// A commit without a member id while the group has members.
    #[error(
        "group {group:?} has {members} live member(s); commits and offset resets without a \
         member id are refused while it does (stop its consumers first)"
    )]
    GroupActive {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
}

/// One member, as the group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// Where it runs.
    pub client_host: String,
    /// What it subscribes to.
    pub topics: BTreeSet<String>,
    /// What it holds now.
    pub owned: BTreeSet<TopicPartition>,
    /// What it should hold once the current rebalance completes.
    pub target: BTreeSet<TopicPartition>,
}

/// A group's membership state, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembership {
    /// The generation.
    pub generation: u64,
    /// The strategy.
    pub strategy: AssignmentStrategy,
    /// The members, by member id.
    pub members: Vec<MemberDescription>,
}

#[derive(Debug)]
struct Member {
    instance_id: Option<String>,
    client_host: String,
    topics: BTreeSet<String>,
    last_heartbeat: Instant,
    /// Set while the member holds a partition that is no longer in its target.
    revoking_since: Option<Instant>,
    /// Generation in which the member's granted partitions last changed.
    epoch: u64,
}

/// One group's membership and assignment.
#[derive(Debug)]
pub struct GroupMembers {
    name: String,
    strategy: AssignmentStrategy,
    generation: u64,
    members: BTreeMap<String, Member>,
    /// What each member should hold, from the last computation.
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Who holds each partition now. The heart of the no-two-owners guarantee.
    owners: BTreeMap<TopicPartition, String>,
    /// Partition counts the target was computed with.
    partition_counts: BTreeMap<String, u32>,
    next_member: u64,
}

impl GroupMembers {
    /// An empty group.
    pub fn new(name: impl Into<String>, strategy: AssignmentStrategy) -> Self {
        GroupMembers {
            name: name.into(),
            strategy,
            generation: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            next_member: 0,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the group assigns partitions.
    pub fn strategy(&self) -> AssignmentStrategy {
        self.strategy
    }

    /// Changes the strategy; the next membership change computes the target with it.
    pub fn set_strategy(&mut self, strategy: AssignmentStrategy) {
        self.strategy = strategy;
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many members the group has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Handles one heartbeat at `now`. `partition_count` gives a topic's partition count, or
    /// `None` for a topic that does not exist (it contributes no partitions).
    ///
    /// # Errors
    ///
    /// [`MembershipError::UnknownMember`] for a member id the group does not have.
    pub fn heartbeat(
        &mut self,
        heartbeat: Heartbeat,
        timeouts: MembershipTimeouts,
        partition_count: &dyn Fn(&str) -> Option<u32>,
        now: Instant,
    ) -> Result<Assignment, MembershipError> {
        self.expire(timeouts, now);
        let mut changed = false;

        let member_id = match heartbeat.member_id {
            Some(id) if self.members.contains_key(&id) => id,
            Some(id) => {
                return Err(MembershipError::UnknownMember {
                    group: self.name.clone(),
                    member_id: id,
                });
            }
            None => {
                let id = self.new_member_id();
                let returning = heartbeat.instance_id.as_ref().and_then(|instance| {
                    self.members
                        .iter()
                        .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                        .map(|(old, _)| old.clone())
                });
                match returning {
                    // Static membership: the new id takes over the old one's place and
                    // partitions, with no rebalance.
                    Some(old) => self.rename_member(&old, &id),
                    None => {
                        self.members.insert(
                            id.clone(),
                            Member {
                                instance_id: heartbeat.instance_id.clone(),
                                client_host: String::new(),
                                topics: BTreeSet::new(),
                                last_heartbeat: now,
                                revoking_since: None,
                                epoch: self.generation,
                            },
                        );
                        changed = true;
                    }
                }
                id
            }
        };

        let member = self
            .members
            .get_mut(&member_id)
            .expect("the member was found or inserted above");
        member.last_heartbeat = now;
        member.client_host = heartbeat.client_host;
        if member.topics != heartbeat.topics {
            member.topics = heartbeat.topics;
            changed = true;
        }

        // Partitions the member no longer reports are released and free for their next owner.
        self.owners
            .retain(|tp, owner| *owner != member_id || heartbeat.owned.contains(tp));

        let counts = self.subscribed_counts(partition_count);
        if counts != self.partition_counts {
            self.partition_counts = counts;
            changed = true;
        }
        if changed {
            self.rebalance();
        }
        Ok(self.grant(&member_id, now))
    }

    /// Removes a member that leaves cleanly; its partitions are free at once.
    ///
    /// # Errors
    ///
    /// [`MembershipError::UnknownMember`].
    pub fn leave(&mut self, member_id: &str) -> Result<(), MembershipError> {
        if self.members.contains_key(member_id) {
            self.remove(member_id);
            Ok(())
        } else {
            Err(MembershipError::UnknownMember {
                group: self.name.clone(),
                member_id: member_id.to_owned(),
            })
        }
    }

    /// Removes members whose session expired or who kept a revoked partition too long.
    /// Returns the removed member ids.
    pub fn expire(&mut self, timeouts: MembershipTimeouts, now: Instant) -> Vec<String> {
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.saturating_duration_since(m.last_heartbeat) > timeouts.session
                    || m.revoking_since.is_some_and(|since| {
                        now.saturating_duration_since(since) > timeouts.rebalance
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            self.remove(id);
        }
        dead
    }

    /// Checks that `member_id` (from `generation`) may commit offsets of `partitions`; without
    /// a member id, only while the group has no members.
    ///
    /// # Errors
    ///
    /// [`MembershipError`] saying why the commit is refused.
    pub fn check_commit<'a>(
        &self,
        member_id: Option<&str>,
        generation: Option<u64>,
        partitions: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<(), MembershipError> {
        let Some(member_id) = member_id else {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(MembershipError::GroupActive {
                group: self.name.clone(),
                members: self.members.len(),
            });
        };
        let Some(member) = self.members.get(member_id) else {
            return Err(MembershipError::UnknownMember {
                group: self.name.clone(),
                member_id: member_id.to_owned(),
            });
        };
        if let Some(sent) = generation
            && (sent < member.epoch || sent > self.generation)
        {
            return Err(MembershipError::StaleGeneration {
                group: self.name.clone(),
                member_id: member_id.to_owned(),
                sent,
                current: member.epoch,
            });
        }
        for (topic, partition) in partitions {
            let tp = TopicPartition::new(topic, partition);
            if self.owners.get(&tp).map(String::as_str) != Some(member_id) {
                return Err(MembershipError::NotOwner {
                    group: self.name.clone(),
                    member_id: member_id.to_owned(),
                    topic: tp.topic,
                    partition: tp.partition,
                });
            }
        }
        Ok(())
    }

    /// The group's members, their holdings and targets.
    pub fn describe(&self) -> GroupMembership {
        let members = self
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                client_host: m.client_host.clone(),
                topics: m.topics.clone(),
                owned: self.owned_by(id),
                target: self.target.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        GroupMembership {
            generation: self.generation,
            strategy: self.strategy,
            members,
        }
    }

    fn new_member_id(&mut self) -> String {
        self.next_member += 1;
        // Unique within this broker's lifetime; the nanoseconds keep ids from an earlier run
        // (membership is not durable) from being mistaken for new ones.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{}-{}-{nonce:08x}", self.name, self.next_member)
    }

    fn rename_member(&mut self, old: &str, new: &str) {
        if let Some(member) = self.members.remove(old) {
            self.members.insert(new.to_owned(), member);
        }
        if let Some(target) = self.target.remove(old) {
            self.target.insert(new.to_owned(), target);
        }
        for owner in self.owners.values_mut() {
            if owner == old {
                *owner = new.to_owned();
            }
        }
    }

    fn remove(&mut self, member_id: &str) {
        self.members.remove(member_id);
        self.owners.retain(|_, owner| owner != member_id);
        self.rebalance();
    }

    fn owned_by(&self, member_id: &str) -> BTreeSet<TopicPartition> {
        self.owners
            .iter()
            .filter(|(_, owner)| *owner == member_id)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn subscribed_counts(
        &self,
        partition_count: &dyn Fn(&str) -> Option<u32>,
    ) -> BTreeMap<String, u32> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter())
            .filter_map(|topic| partition_count(topic).map(|n| (topic.clone(), n)))
            .collect()
    }

    /// A new generation and target assignment.
    fn rebalance(&mut self) {
        self.generation += 1;
        let subscriptions: BTreeMap<&str, &BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.as_str(), &m.topics))
            .collect();
        let target = assign(
            self.strategy,
            &subscriptions,
            &self.partition_counts,
            &self.target,
        );
        self.target = target;
    }

    /// Grants the member every target partition nobody else holds, and computes its reply.
    fn grant(&mut self, member_id: &str, now: Instant) -> Assignment {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let before = self.owned_by(member_id);
        let mut pending = 0;
        for tp in &target {
            match self.owners.get(tp) {
                Some(owner) if owner != member_id => pending += 1,
                Some(_) => {}
                None => {
                    self.owners.insert(tp.clone(), member_id.to_owned());
                }
            }
        }
        let owned = self.owned_by(member_id);
        let generation = self.generation;
        let member = self
            .members
            .get_mut(member_id)
            .expect("grant is called for a present member");
        let revoking = owned.iter().any(|tp| !target.contains(tp));
        if !revoking {
            member.revoking_since = None;
        } else if member.revoking_since.is_none() {
            member.revoking_since = Some(now);
        }
        let partitions: BTreeSet<TopicPartition> = owned.intersection(&target).cloned().collect();
        if partitions != before {
            member.epoch = generation;
        }
        Assignment {
            member_id: member_id.to_owned(),
            generation,
            partitions,
            pending,
        }
    }
}

/// Computes a target assignment. `previous` guides [`AssignmentStrategy::Sticky`].
pub fn assign(
    strategy: AssignmentStrategy,
    subscriptions: &BTreeMap<&str, &BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    previous: &BTreeMap<String, BTreeSet<TopicPartition>>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut result: BTreeMap<String, BTreeSet<TopicPartition>> = subscriptions
        .keys()
        .map(|id| ((*id).to_owned(), BTreeSet::new()))
        .collect();
    let subscribers = |topic: &str| -> Vec<&str> {
        subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(id, _)| *id)
            .collect()
    };
    match strategy {
        AssignmentStrategy::Range => {
            for (topic, &count) in partition_counts {
                let members = subscribers(topic);
                if members.is_empty() {
                    continue;
                }
                let per = count as usize / members.len();
                let extra = count as usize % members.len();
                let mut next = 0u32;
                for (i, member) in members.iter().enumerate() {
                    let take = per + usize::from(i < extra);
                    for _ in 0..take {
                        if let Some(set) = result.get_mut(*member) {
                            set.insert(TopicPartition::new(topic.clone(), next));
                        }
                        next += 1;
                    }
                }
            }
        }
        AssignmentStrategy::RoundRobin => {
            let members: Vec<&str> = subscriptions.keys().copied().collect();
            let mut turn = 0usize;
            for (topic, &count) in partition_counts {
                for partition in 0..count {
                    // The next member in turn that subscribes to this topic.
                    let chosen = (0..members.len())
                        .map(|step| members[(turn + step) % members.len()])
                        .position(|m| subscriptions[m].contains(topic));
                    if let Some(step) = chosen {
                        let member = members[(turn + step) % members.len()];
                        if let Some(set) = result.get_mut(member) {
                            set.insert(TopicPartition::new(topic.clone(), partition));
                        }
                        turn = (turn + step + 1) % members.len();
                    }
                }
            }
        }
        AssignmentStrategy::Sticky => {
            let eligible = |member: &str, tp: &TopicPartition| {
                subscriptions
                    .get(member)
                    .is_some_and(|topics| topics.contains(&tp.topic))
                    && partition_counts
                        .get(&tp.topic)
                        .is_some_and(|&n| tp.partition < n)
            };
            // Keep what each member had and may still have.
            for (member, set) in &mut result {
                if let Some(had) = previous.get(member) {
                    set.extend(had.iter().filter(|tp| eligible(member, tp)).cloned());
                }
            }
            let taken: BTreeSet<TopicPartition> = result.values().flatten().cloned().collect();
            // Give every partition nobody has to the eligible member with the fewest.
            for (topic, &count) in partition_counts {
                for partition in 0..count {
                    let tp = TopicPartition::new(topic.clone(), partition);
                    if taken.contains(&tp) {
                        continue;
                    }
                    let least = result
                        .iter()
                        .filter(|(m, _)| eligible(m, &tp))
                        .min_by_key(|(m, set)| (set.len(), (*m).clone()))
                        .map(|(m, _)| m.clone());
                    if let Some(member) = least
                        && let Some(set) = result.get_mut(&member)
                    {
                        set.insert(tp);
                    }
                }
            }
            // Balance: move one partition at a time from the fullest member that can give one
            // to the emptiest member that may take it, while they differ by two or more. Each
            // move lowers the sum of squared counts, so this ends; the bound only guards
            // against a mistake.
            let total: usize = result.values().map(BTreeSet::len).sum();
            for _ in 0..=total {
                let mut by_size: Vec<(usize, String)> = result
                    .iter()
                    .map(|(m, set)| (set.len(), m.clone()))
                    .collect();
                by_size.sort();
                let mut chosen = None;
                'search: for (from_len, from) in by_size.iter().rev() {
                    for (to_len, to) in &by_size {
                        if *from_len < to_len + 2 {
                            break;
                        }
                        if let Some(tp) = result[from].iter().rev().find(|tp| eligible(to, tp)) {
                            chosen = Some((from.clone(), to.clone(), tp.clone()));
                            break 'search;
                        }
                    }
                }
                let Some((from, to, tp)) = chosen else {
                    break;
                };
                if let Some(set) = result.get_mut(&from) {
                    set.remove(&tp);
                }
                if let Some(set) = result.get_mut(&to) {
                    set.insert(tp);
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMEOUTS: MembershipTimeouts = MembershipTimeouts {
        session: Duration::from_secs(10),
        rebalance: Duration::from_secs(30),
    };

    fn six_partitions(topic: &str) -> Option<u32> {
        (topic == "t").then_some(6)
    }

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    /// A well-behaved consumer: holds exactly what its last reply gave it.
    struct Consumer {
        id: Option<String>,
        instance: Option<String>,
        held: BTreeSet<TopicPartition>,
    }

    impl Consumer {
        fn new() -> Self {
            Consumer {
                id: None,
                instance: None,
                held: BTreeSet::new(),
            }
        }

        fn beat(
            &mut self,
            group: &mut GroupMembers,
            counts: &dyn Fn(&str) -> Option<u32>,
            now: Instant,
        ) -> Assignment {
            let reply = group
                .heartbeat(
                    Heartbeat {
                        member_id: self.id.clone(),
                        instance_id: self.instance.clone(),
                        client_host: "127.0.0.1".into(),
                        topics: topics(&["t"]),
                        owned: self.held.clone(),
                    },
                    TIMEOUTS,
                    counts,
                    now,
                )
                .unwrap();
            self.id = Some(reply.member_id.clone());
            self.held = reply.partitions.clone();
            reply
        }
    }

    /// Heartbeats every consumer until nobody's holdings change.
    fn settle(group: &mut GroupMembers, consumers: &mut [Consumer], now: Instant) {
        for _ in 0..10 {
            let before: Vec<_> = consumers.iter().map(|c| c.held.clone()).collect();
            let mut pending = 0;
            for c in consumers.iter_mut() {
                pending += c.beat(group, &six_partitions, now).pending;
            }
            if pending == 0
                && consumers.iter().map(|c| c.held.clone()).collect::<Vec<_>>() == before
            {
                return;
            }
        }
        panic!("the group did not settle in 10 rounds");
    }

    fn counts(consumers: &[Consumer]) -> Vec<usize> {
        consumers.iter().map(|c| c.held.len()).collect()
    }

    #[test]
    fn three_members_share_six_partitions_and_a_fourth_moves_only_what_it_needs() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut consumers: Vec<Consumer> = (0..3).map(|_| Consumer::new()).collect();
        settle(&mut group, &mut consumers, now);
        assert_eq!(counts(&consumers), vec![2, 2, 2]);
        let before: Vec<_> = consumers.iter().map(|c| c.held.clone()).collect();

        consumers.push(Consumer::new());
        settle(&mut group, &mut consumers, now);
        let mut sizes = counts(&consumers);
        sizes.sort_unstable();
        assert_eq!(sizes, vec![1, 1, 2, 2]);
        // Only the partitions the new member got moved; everyone else kept theirs.
        for (c, had) in consumers.iter().zip(&before) {
            assert!(c.held.is_subset(had), "{:?} not within {had:?}", c.held);
        }
        let moved: usize = before
            .iter()
            .zip(&consumers)
            .map(|(had, c)| had.len() - c.held.len())
            .sum();
        // 2/2/2 plus one member: one partition moves, to the newcomer, and nothing else.
        assert_eq!(moved, 1);
        assert_eq!(consumers[3].held.len(), 1);
    }

    #[test]
    fn a_partition_is_granted_only_after_its_owner_releases_it() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut a = Consumer::new();
        assert_eq!(a.beat(&mut group, &six_partitions, now).partitions.len(), 6);

        // B joins: its share is still held by A, so it gets nothing yet.
        let mut b = Consumer::new();
        let reply = b.beat(&mut group, &six_partitions, now);
        assert!(reply.partitions.is_empty());
        assert_eq!(reply.pending, 3);
        // A committing with its old generation is still allowed for what it holds.
        let a_id = a.id.clone().unwrap();
        for tp in &a.held {
            group
                .check_commit(Some(&a_id), None, [(tp.topic.as_str(), tp.partition)])
                .unwrap();
        }
        // A's next heartbeat revokes three; the model consumer releases at once.
        let reply = a.beat(&mut group, &six_partitions, now);
        assert_eq!(reply.partitions.len(), 3);
        // But the broker saw A release only now, on A's next heartbeat.
        a.beat(&mut group, &six_partitions, now);
        let reply = b.beat(&mut group, &six_partitions, now);
        assert_eq!(reply.partitions.len(), 3);
        assert!(reply.partitions.is_disjoint(&a.held));
        // A can no longer commit what moved.
        let moved = b.held.iter().next().unwrap();
        let err = group
            .check_commit(Some(&a_id), None, [(moved.topic.as_str(), moved.partition)])
            .unwrap_err();
        assert!(matches!(err, MembershipError::NotOwner { .. }), "{err}");
    }

    #[test]
    fn a_member_that_does_not_release_is_fenced_after_the_rebalance_timeout() {
        let start = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut a = Consumer::new();
        a.beat(&mut group, &six_partitions, start);
        let a_id = a.id.clone().unwrap();
        let mut b = Consumer::new();
        b.beat(&mut group, &six_partitions, start);

        // A keeps heartbeating but claims all six partitions throughout.
        let stubborn = |group: &mut GroupMembers, at| {
            group.heartbeat(
                Heartbeat {
                    member_id: Some(a_id.clone()),
                    topics: topics(&["t"]),
                    owned: (0..6).map(|p| TopicPartition::new("t", p)).collect(),
                    ..Heartbeat::default()
                },
                TIMEOUTS,
                &six_partitions,
                at,
            )
        };
        for secs in [1, 10, 20, 30] {
            stubborn(&mut group, start + Duration::from_secs(secs)).unwrap();
            b.beat(
                &mut group,
                &six_partitions,
                start + Duration::from_secs(secs),
            );
            assert!(b.held.is_empty());
        }
        let later = start + Duration::from_secs(32);
        let err = stubborn(&mut group, later).unwrap_err();
        assert!(
            matches!(err, MembershipError::UnknownMember { .. }),
            "{err}"
        );
        assert_eq!(
            b.beat(&mut group, &six_partitions, later).partitions.len(),
            6
        );
        let err = group
            .check_commit(Some(&a_id), None, [("t", 0)])
            .unwrap_err();
        assert!(err.to_string().contains("join again"), "{err}");
    }

    #[test]
    fn a_dead_member_loses_its_partitions_after_the_session_timeout() {
        let start = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut consumers: Vec<Consumer> = (0..3).map(|_| Consumer::new()).collect();
        settle(&mut group, &mut consumers, start);
        let dead = consumers.pop().unwrap();

        // Within the session timeout nothing moves.
        let soon = start + Duration::from_secs(9);
        settle(&mut group, &mut consumers, soon);
        assert_eq!(counts(&consumers), vec![2, 2]);
        let later = start + Duration::from_secs(11);
        settle(&mut group, &mut consumers, later);
        assert_eq!(counts(&consumers), vec![3, 3]);
        assert!(
            group
                .describe()
                .members
                .iter()
                .all(|m| Some(&m.member_id) != dead.id.as_ref())
        );
    }

    #[test]
    fn a_clean_leave_frees_partitions_at_once_and_an_idle_member_takes_over() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        // Seven members, six partitions: one stays idle.
        let mut consumers: Vec<Consumer> = (0..7).map(|_| Consumer::new()).collect();
        settle(&mut group, &mut consumers, now);
        let mut sizes = counts(&consumers);
        sizes.sort_unstable();
        assert_eq!(sizes, vec![0, 1, 1, 1, 1, 1, 1]);
        let busy = consumers.iter().position(|c| c.held.len() == 1).unwrap();
        let leaver = consumers.remove(busy);
        group.leave(leaver.id.as_deref().unwrap()).unwrap();
        settle(&mut group, &mut consumers, now);
        assert_eq!(counts(&consumers), vec![1; 6]);
    }

    #[test]
    fn a_static_member_returning_in_time_gets_its_partitions_back_without_a_rebalance() {
        let start = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut consumers: Vec<Consumer> = (0..2).map(|_| Consumer::new()).collect();
        consumers[0].instance = Some("worker-0".into());
        settle(&mut group, &mut consumers, start);
        let generation = group.generation();
        let held = consumers[0].held.clone();

        // The process restarts: a new consumer with the same instance id and no member id.
        let mut restarted = Consumer::new();
        restarted.instance = Some("worker-0".into());
        let reply = restarted.beat(&mut group, &six_partitions, start + Duration::from_secs(5));
        assert_eq!(reply.partitions, held);
        assert_eq!(group.generation(), generation);
        assert_eq!(group.len(), 2);
    }

    #[test]
    fn commits_without_a_member_id_are_refused_while_the_group_has_members() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        group.check_commit(None, None, [("t", 0)]).unwrap();
        let mut a = Consumer::new();
        a.beat(&mut group, &six_partitions, now);
        let err = group.check_commit(None, None, [("t", 0)]).unwrap_err();
        assert!(err.to_string().contains("1 live member"), "{err}");
        group.leave(a.id.as_deref().unwrap()).unwrap();
        group.check_commit(None, None, [("t", 0)]).unwrap();
    }

    #[test]
    fn a_commit_from_an_older_generation_than_the_assignment_is_refused() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut a = Consumer::new();
        let first = a.beat(&mut group, &six_partitions, now).generation;
        let mut b = Consumer::new();
        b.beat(&mut group, &six_partitions, now);
        a.beat(&mut group, &six_partitions, now);
        let a_id = a.id.clone().unwrap();
        let kept = a.held.iter().next().unwrap().clone();
        let err = group
            .check_commit(
                Some(&a_id),
                Some(first),
                [(kept.topic.as_str(), kept.partition)],
            )
            .unwrap_err();
        assert!(
            matches!(err, MembershipError::StaleGeneration { .. }),
            "{err}"
        );
        group
            .check_commit(
                Some(&a_id),
                Some(group.generation()),
                [(kept.topic.as_str(), kept.partition)],
            )
            .unwrap();
    }

    #[test]
    fn new_partitions_of_a_subscribed_topic_are_picked_up() {
        let now = Instant::now();
        let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
        let mut a = Consumer::new();
        let four = |topic: &str| (topic == "t").then_some(4);
        assert_eq!(a.beat(&mut group, &four, now).partitions.len(), 4);
        assert_eq!(a.beat(&mut group, &six_partitions, now).partitions.len(), 6);
    }

    #[test]
    fn range_and_round_robin_follow_their_rules() {
        let subs_a = topics(&["x", "y"]);
        let subs_b = topics(&["x", "y"]);
        let subscriptions: BTreeMap<&str, &BTreeSet<String>> =
            [("a", &subs_a), ("b", &subs_b)].into_iter().collect();
        let counts: BTreeMap<String, u32> = [("x".into(), 3), ("y".into(), 3)].into();
        let range = assign(
            AssignmentStrategy::Range,
            &subscriptions,
            &counts,
            &BTreeMap::new(),
        );
        let parts = |m: &str, r: &BTreeMap<String, BTreeSet<TopicPartition>>| {
            r[m].iter()
                .map(|tp| format!("{}{}", tp.topic, tp.partition))
                .collect::<Vec<_>>()
        };
        assert_eq!(parts("a", &range), ["x0", "x1", "y0", "y1"]);
        assert_eq!(parts("b", &range), ["x2", "y2"]);
        let rr = assign(
            AssignmentStrategy::RoundRobin,
            &subscriptions,
            &counts,
            &BTreeMap::new(),
        );
        assert_eq!(parts("a", &rr), ["x0", "x2", "y1"]);
        assert_eq!(parts("b", &rr), ["x1", "y0", "y2"]);
    }

    fn arb_group() -> impl Strategy<Value = (Vec<BTreeSet<String>>, BTreeMap<String, u32>)> {
        let topic_names = ["a", "b", "c"];
        (
            prop::collection::vec(prop::sample::subsequence(topic_names.to_vec(), 0..=3), 0..8),
            prop::collection::vec(0u32..12, 3),
        )
            .prop_map(move |(subs, counts)| {
                let subs = subs
                    .into_iter()
                    .map(|s| s.into_iter().map(str::to_owned).collect())
                    .collect();
                let counts = topic_names
                    .iter()
                    .zip(counts)
                    .map(|(t, n)| ((*t).to_owned(), n))
                    .collect();
                (subs, counts)
            })
    }

    proptest! {
        /// Every strategy gives each partition of a subscribed topic to exactly one member
        /// that subscribes to it; with equal subscriptions, counts differ by at most one.
        #[test]
        fn every_strategy_covers_each_partition_once((subs, counts) in arb_group()) {
            let ids: Vec<String> = (0..subs.len()).map(|i| format!("m{i}")).collect();
            let subscriptions: BTreeMap<&str, &BTreeSet<String>> =
                ids.iter().map(String::as_str).zip(subs.iter()).collect();
            for strategy in [
                AssignmentStrategy::Sticky,
                AssignmentStrategy::Range,
                AssignmentStrategy::RoundRobin,
            ] {
                let result = assign(strategy, &subscriptions, &counts, &BTreeMap::new());
                let mut seen = BTreeSet::new();
                for (member, set) in &result {
                    for tp in set {
                        prop_assert!(subscriptions[member.as_str()].contains(&tp.topic));
                        prop_assert!(seen.insert(tp.clone()), "{tp:?} given twice");
                    }
                }
                let wanted: usize = counts
                    .iter()
                    .filter(|(t, _)| subs.iter().any(|s| s.contains(*t)))
                    .map(|(_, &n)| n as usize)
                    .sum();
                prop_assert_eq!(seen.len(), wanted);
                if subs.windows(2).all(|w| w[0] == w[1]) && strategy != AssignmentStrategy::Range {
                    let sizes: Vec<usize> = result.values().map(BTreeSet::len).collect();
                    let spread = sizes.iter().max().zip(sizes.iter().min()).map_or(0, |(a, b)| a - b);
                    prop_assert!(spread <= 1, "{strategy:?}: {sizes:?}");
                }
            }
        }

        /// Adding one member to a balanced sticky assignment with equal subscriptions moves
        /// exactly the partitions the newcomer receives.
        #[test]
        fn sticky_moves_only_what_a_newcomer_takes(members in 1usize..7, partitions in 0u32..40) {
            let subs = topics(&["t"]);
            let counts: BTreeMap<String, u32> = [("t".into(), partitions)].into();
            let ids: Vec<String> = (0..=members).map(|i| format!("m{i}")).collect();
            let before_subs: BTreeMap<&str, &BTreeSet<String>> =
                ids[..members].iter().map(|id| (id.as_str(), &subs)).collect();
            let before = assign(AssignmentStrategy::Sticky, &before_subs, &counts, &BTreeMap::new());
            let after_subs: BTreeMap<&str, &BTreeSet<String>> =
                ids.iter().map(|id| (id.as_str(), &subs)).collect();
            let after = assign(AssignmentStrategy::Sticky, &after_subs, &counts, &before);
            let newcomer = &ids[members];
            let moved: usize = before
                .iter()
                .map(|(m, had)| had.difference(&after[m]).count())
                .sum();
            prop_assert_eq!(moved, after[newcomer].len());
            prop_assert_eq!(after[newcomer].len(), partitions as usize / (members + 1));
        }

        /// Random joins, leaves, deaths and heartbeats of well-behaved consumers: no partition
        /// is ever held by two live consumers, and after eight rounds of heartbeats from all of
        /// them every partition is held.
        #[test]
        fn no_partition_is_ever_held_twice(steps in prop::collection::vec((0u8..4, 0usize..6), 1..80)) {
            let start = Instant::now();
            let mut now = start;
            let mut group = GroupMembers::new("g", AssignmentStrategy::Sticky);
            let mut consumers: Vec<Consumer> = Vec::new();
            for (action, which) in steps {
                match action {
                    0 if consumers.len() < 6 => consumers.push(Consumer::new()),
                    1 if !consumers.is_empty() => {
                        let c = consumers.remove(which % consumers.len());
                        if let Some(id) = c.id {
                            let _ = group.leave(&id);
                        }
                    }
                    2 => now += Duration::from_secs(4),
                    _ => {}
                }
                if !consumers.is_empty() {
                    let i = which % consumers.len();
                    if group.heartbeat(
                        Heartbeat {
                            member_id: consumers[i].id.clone(),
                            topics: topics(&["t"]),
                            owned: consumers[i].held.clone(),
                            ..Heartbeat::default()
                        },
                        TIMEOUTS,
                        &six_partitions,
                        now,
                    ).map(|reply| {
                        consumers[i].id = Some(reply.member_id);
                        consumers[i].held = reply.partitions;
                    }).is_err() {
                        // Expired: a real consumer drops everything and joins again.
                        consumers[i] = Consumer::new();
                    }
                }
                // A consumer whose session expired still believes it holds partitions until
                // its next heartbeat; only live members count.
                let live: BTreeSet<String> =
                    group.describe().members.into_iter().map(|m| m.member_id).collect();
                let mut held = BTreeSet::new();
                for c in consumers.iter().filter(|c| c.id.as_ref().is_some_and(|id| live.contains(id))) {
                    for tp in &c.held {
                        prop_assert!(held.insert(tp.clone()), "{tp:?} held twice");
                    }
                }
            }
            if !consumers.is_empty() {
                for _ in 0..8 {
                    for c in &mut consumers {
                        match group.heartbeat(
                            Heartbeat {
                                member_id: c.id.clone(),
                                topics: topics(&["t"]),
                                owned: c.held.clone(),
                                ..Heartbeat::default()
                            },
                            TIMEOUTS,
                            &six_partitions,
                            now,
                        ) {
                            Ok(reply) => {
                                c.id = Some(reply.member_id);
                                c.held = reply.partitions;
                            }
                            Err(_) => *c = Consumer::new(),
                        }
                    }
                }
                let total: usize = consumers.iter().map(|c| c.held.len()).sum();
                prop_assert_eq!(total, 6);
            }
        }
    }
}
