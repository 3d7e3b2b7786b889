//! The broker's consumer-group API: committing and reading offsets, listing and describing
//! groups. Checks offsets against the partitions' logs, then hands storage to
//! `group_offsets`.
//!
//! Rules: a committed offset is the next offset the group will read. It must be between 0 and
//! the partition's log end offset inclusive; an offset below the log start is accepted (the
//! consumer then gets an out-of-range error on fetch and resets). A commit is acknowledged only
//! once it is fsynced.

use std::time::Instant;

use tracing::instrument;

use crate::broker::{Broker, blocking, now_ms};
use crate::error::{BrokerError, Result};
use crate::group_offsets::{
    CommittedOffset, MAX_COMMIT_METADATA_BYTES, MAX_GROUP_NAME_BYTES, OffsetCommit,
};
use crate::membership::MembershipError;

/// Lag of a group on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset (next offset to read).
    pub committed: u64,
    /// The partition's log end offset now.
    pub log_end_offset: u64,
    /// Records not yet consumed: `log_end_offset - committed`, or 0 if the committed offset is
    /// past the log end (possible after data written without fsync was lost in a machine
    /// crash).
    pub lag: u64,
    /// Set when damage affects this entry, saying what: `committed` may be older than the
    /// group's last commit here (the group offsets log lost records written after it; reads of
    /// the group's offsets refuse the partition with [`BrokerError::CommitsInDoubt`] until the
    /// group commits it again), or the topic cannot be served ([`BrokerError::TopicDamaged`];
    /// `log_end_offset` and `lag` are then 0).
    pub damage: Option<String>,
}

/// Who commits: a member of the group, whose ownership of every partition committed is
/// checked, or (the default) a client outside group membership, allowed only while the group
/// has no live members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committer {
    /// The member id the group gave the committer.
    pub member_id: Option<String>,
    /// The generation of the assignment the committer works from, when it says.
    pub generation: Option<u64>,
}

impl Committer {
    /// A member of the group, optionally stating its generation.
    pub fn member(member_id: impl Into<String>, generation: Option<u64>) -> Self {
        Committer {
            member_id: Some(member_id.into()),
            generation,
        }
    }
}

impl Broker {
    /// Commits offsets for `group`, all in one durable write, as a client outside group
    /// membership; see [`Broker::commit_offsets_as`].
    ///
    /// # Errors
    ///
    /// As for [`Broker::commit_offsets_as`].
    pub async fn commit_offsets(&self, group: &str, commits: Vec<OffsetCommit>) -> Result<()> {
        self.commit_offsets_as(group, &Committer::default(), commits)
            .await
    }

    /// Commits offsets for `group`, all in one durable write, after checking that `committer`
    /// may: a member must be in the group and hold every partition it commits; a committer
    /// without a member id may commit only while the group has no live members.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a group name that breaks the naming rule (1 to
    /// [`MAX_GROUP_NAME_BYTES`] bytes, no control characters) or an over-long metadata
    /// string; [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`];
    /// [`BrokerError::InvalidCommitOffset`] for a negative offset or one past the log end;
    /// [`BrokerError::Membership`] when membership refuses the committer. Nothing is stored
    /// unless every entry is valid.
    #[instrument(skip_all, fields(group))]
    pub async fn commit_offsets_as(
        &self,
        group: &str,
        committer: &Committer,
        commits: Vec<OffsetCommit>,
    ) -> Result<()> {
        let _ticket = self.shared.admission.admit(0)?;
        validate_group(group)?;
        let mut entries = Vec::with_capacity(commits.len());
        for commit in commits {
            let partition = self.partition(&commit.topic, commit.partition)?;
            let log_end = partition.log.log_end_offset();
            let refuse = |rule| BrokerError::InvalidCommitOffset {
                group: group.to_owned(),
                topic: commit.topic.clone(),
                partition: commit.partition,
                offset: commit.offset,
                log_end,
                rule,
            };
            let Ok(offset) = u64::try_from(commit.offset) else {
                return Err(refuse("offsets cannot be negative"));
            };
            if offset > log_end {
                return Err(refuse(
                    "a committed offset is the next offset to read and cannot pass the log end",
                ));
            }
            if commit
                .metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_COMMIT_METADATA_BYTES)
            {
                return Err(BrokerError::InvalidArgument(format!(
                    "commit metadata for topic {:?} partition {} is longer than \
                     {MAX_COMMIT_METADATA_BYTES} bytes",
                    commit.topic, commit.partition
                )));
            }
            entries.push((commit.topic, commit.partition, offset, commit.metadata));
        }
        let offsets = self.offsets()?;
        let members = self.group_members(group);
        if members.is_none() && committer.member_id.is_some() {
            return Err(MembershipError::UnknownMember {
                group: group.to_owned(),
                member_id: committer.member_id.clone().unwrap_or_default(),
            }
            .into());
        }
        let committer = committer.clone();
        let timeouts = self.shared.config.group_timeouts;
        let group = group.to_owned();
        blocking(move || {
            // The group's lock is held through the fsync: a partition cannot change hands
            // between the ownership check and the write.
            let mut members = members.as_ref().map(|m| m.lock());
            if let Some(members) = members.as_mut() {
                members.expire(timeouts, Instant::now());
                members.check_commit(
                    committer.member_id.as_deref(),
                    committer.generation,
                    entries
                        .iter()
                        .map(|(topic, partition, ..)| (topic.as_str(), *partition)),
                )?;
            }
            let stored = offsets.commit(&group, &entries, now_ms());
            drop(members);
            stored
        })
        .await
    }

    /// Commits one offset for `group` on `topic`/`partition`; see [`Broker::commit_offsets`].
    ///
    /// # Errors
    ///
    /// As for [`Broker::commit_offsets`].
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: i64,
    ) -> Result<()> {
        self.commit_offsets(group, vec![OffsetCommit::new(topic, partition, offset)])
            .await
    }

    /// The committed offsets of `group`, of every topic or only `topic`, ordered by topic and
    /// partition. A group with no commits gives an empty list.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a group name no commit can have;
    /// [`BrokerError::CommitsInDoubt`] when damage to the offsets log may have lost a newer
    /// commit of one of them (none is returned then; committing the partitions named settles
    /// it); [`BrokerError::ShuttingDown`].
    pub fn committed_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>> {
        validate_group(group)?;
        self.offsets()?.fetch(group, topic)
    }

    /// The committed offset of `group` on one partition, if any.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a group name no commit can have;
    /// [`BrokerError::CommitsInDoubt`] as for [`Broker::committed_offsets`];
    /// [`BrokerError::ShuttingDown`].
    pub fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<CommittedOffset>> {
        validate_group(group)?;
        self.offsets()?.fetch_one(group, topic, partition)
    }

    /// Every group with at least one committed offset or a live member, sorted.
    ///
    /// # Errors
    ///
    /// [`BrokerError::ShuttingDown`].
    pub fn list_groups(&self) -> Result<Vec<String>> {
        let mut groups: std::collections::BTreeSet<String> =
            self.offsets()?.groups().into_iter().collect();
        let timeouts = self.shared.config.group_timeouts;
        for (name, members) in self.shared.groups.lock().iter() {
            let mut members = members.lock();
            members.expire(timeouts, Instant::now());
            if !members.is_empty() {
                groups.insert(name.clone());
            }
        }
        Ok(groups.into_iter().collect())
    }

    /// Per partition the group has committed on: committed offset, log end and lag, with a
    /// note on each entry damage affects ([`PartitionLag::damage`]). Unlike
    /// [`Broker::committed_offsets`] this does not refuse offsets in doubt: it is for
    /// inspection, so an operator can see them before committing new ones.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidArgument`] for a group name no commit can have;
    /// [`BrokerError::ShuttingDown`].
    pub fn describe_group(&self, group: &str) -> Result<Vec<PartitionLag>> {
        validate_group(group)?;
        let committed = self.offsets()?.fetch_flagged(group);
        Ok(committed
            .into_iter()
            .filter_map(|(c, in_doubt)| {
                let (log_end_offset, damage) = match self.partition(&c.topic, c.partition) {
                    Ok(partition) => (partition.log.log_end_offset(), in_doubt),
                    Err(err @ BrokerError::TopicDamaged { .. }) => (0, Some(err.to_string())),
                    // Deleted since the commit was read.
                    Err(_) => return None,
                };
                Some(PartitionLag {
                    lag: log_end_offset.saturating_sub(c.offset),
                    topic: c.topic,
                    partition: c.partition,
                    committed: c.offset,
                    log_end_offset,
                    damage,
                })
            })
            .collect())
    }
}

/// The group naming rule, applied by every operation that takes a group name: 1 to
/// [`MAX_GROUP_NAME_BYTES`] bytes of UTF-8 without control characters ([`is_unprintable`]), so
/// a name can be printed, logged and typed back as it is.
pub(crate) fn validate_group(group: &str) -> Result<()> {
    let length_ok = !group.is_empty() && group.len() <= MAX_GROUP_NAME_BYTES;
    if length_ok && !group.chars().any(is_unprintable) {
        return Ok(());
    }
    // Debug formatting escapes control characters; the cut keeps the message short.
    let shown: String = group.chars().take(MAX_GROUP_NAME_BYTES + 8).collect();
    Err(BrokerError::InvalidArgument(format!(
        "invalid group name {shown:?}: a group name must be 1 to {MAX_GROUP_NAME_BYTES} bytes \
         long and contain no control characters (such as NUL, tab, newline, the line separator \
         U+2028 or bidirectional marks)"
    )))
}

/// Characters a name may not hold: control characters (Unicode category Cc: NUL, tab,
/// newline, escape, DEL and the like), and the formatting characters that move or reorder the
/// text around them when printed (line and paragraph separators, bidirectional marks,
/// embeddings, overrides and isolates), so `a\u{2028}b` cannot pass for `a b`.
pub(crate) fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_one_to_255_bytes_without_control_characters() {
        for ok in [
            "g",
            "billing-v2",
            "Zürich east",
            "a.b_c:d/e",
            &"g".repeat(255),
        ] {
            assert!(validate_group(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a\0b",
            "a\nb",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
            "a\u{2028}b",
            "right\u{202E}to left",
            "mark\u{200F}",
        ] {
            let err = validate_group(bad).unwrap_err().to_string();
            assert!(err.contains("1 to 255 bytes"), "{err}");
            assert!(err.contains("no control characters"), "{err}");
            assert!(!err.contains('\n') && !err.contains('\0'), "{err:?}");
        }
        assert!(validate_group(&"g".repeat(256)).is_err());
        // Counted in bytes: 128 two-byte characters are 256 bytes.
        assert!(validate_group(&"ü".repeat(128)).is_err());
    }
}
