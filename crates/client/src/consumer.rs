//! [`Consumer`]: reads assigned partitions as raw record batches, checks and decodes them in
//! the client, and tracks and commits a consumer group's offsets.
//!
//! Ownership: a consumer owns, per assigned partition, its position (the next offset to fetch),
//! the records fetched but not yet returned by [`Consumer::poll`], and whether it is paused.
//! Nothing is shared between consumers; group offsets live on the server.
//!
//! Invariants:
//! - A partition's *position* is the offset of the first record `poll` has not returned: the
//!   first buffered record, or the fetch position when nothing is buffered. Commits send
//!   positions, so a commit never covers a record `poll` has not returned, and auto-commit
//!   only ever commits what earlier polls returned.
//! - Records reach the caller in offset order per partition, with no gaps except where the
//!   log itself has none to give (a reset after an out-of-range position, which is logged).
//! - Every batch is CRC-checked before any of its records is used.
//!
//! - A subscribed consumer (a group member) reads only partitions the server assigned it. When
//!   a heartbeat reply leaves out a partition it holds, it commits that partition's position
//!   and drops it before its next heartbeat reports it released; the server hands it to the
//!   next owner only then. Heartbeats are sent from `poll`, so a consumer must poll at least
//!   once per session timeout (10 s by default) to stay in its group.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rivulet_format::decode_batch;
use rivulet_proto::v1;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::Client;
use crate::error::ClientError;
use crate::group_member::{AssignmentStrategy, GroupMember, RebalanceEvent};
use crate::record::{Record, TopicPartition};

/// Slack on top of a long-poll's wait before a fetch counts as timed out.
const FETCH_DEADLINE_SLACK: Duration = Duration::from_secs(10);

/// After one fetch returns data, how long the others may take to be included in the same poll.
const FETCH_GRACE: Duration = Duration::from_millis(2);

/// Pause after a fetch failed with a retryable error, so a dead server is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where a consumer starts on a partition without a usable offset: no committed offset, or a
/// position outside the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The first offset still stored.
    Earliest,
    /// The log end: only records produced from now on. The default.
    #[default]
    Latest,
    /// Fail the poll with [`ClientError::NoOffset`] or [`ClientError::OutOfRange`].
    Fail,
}

/// Settings of a [`Consumer`], set through [`ConsumerBuilder`].
#[derive(Debug, Clone)]
struct ConsumerConfig {
    group: Option<String>,
    instance_id: Option<String>,
    strategy: AssignmentStrategy,
    reset: OffsetReset,
    auto_commit: Option<Duration>,
    max_poll_records: usize,
    fetch_max_bytes: u32,
}

/// Builds a [`Consumer`]; start with [`Client::consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    client: Client,
    config: ConsumerConfig,
    listener: Option<RebalanceListener>,
}

/// The callback of [`ConsumerBuilder::on_rebalance`].
#[derive(Clone)]
struct RebalanceListener(std::sync::Arc<parking_lot::Mutex<dyn FnMut(RebalanceEvent) + Send>>);

impl std::fmt::Debug for RebalanceListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RebalanceListener")
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(client: Client) -> Self {
        ConsumerBuilder {
            client,
            config: ConsumerConfig {
                group: None,
                instance_id: None,
                strategy: AssignmentStrategy::default(),
                reset: OffsetReset::default(),
                auto_commit: Some(Duration::from_secs(5)),
                max_poll_records: 500,
                fetch_max_bytes: 1 << 20,
            },
            listener: None,
        }
    }

    /// A stable id for this consumer across restarts (static membership): a consumer that
    /// comes back with the same instance id within the session timeout gets its partitions
    /// back without a rebalance.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.instance_id = Some(id.into());
        self
    }

    /// How the group divides partitions among members; default
    /// [`AssignmentStrategy::Sticky`]. Every member of a group must use the same strategy.
    pub fn assignment_strategy(mut self, strategy: AssignmentStrategy) -> Self {
        self.config.strategy = strategy;
        self
    }

    /// Calls `listener` from inside [`Consumer::poll`] whenever a subscribed consumer's
    /// partitions change: assigned, revoked (after their positions were committed), or lost.
    pub fn on_rebalance(mut self, listener: impl FnMut(RebalanceEvent) + Send + 'static) -> Self {
        self.listener = Some(RebalanceListener(std::sync::Arc::new(
            parking_lot::Mutex::new(listener),
        )));
        self
    }

    /// The consumer group whose offsets this consumer starts from and commits.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.config.group = Some(group.into());
        self
    }

    /// Where to start without a usable offset; default [`OffsetReset::Latest`].
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.config.reset = reset;
        self
    }

    /// Commit positions every `interval` during [`Consumer::poll`], and on
    /// [`Consumer::close`]; `None` turns auto-commit off. Default every 5 s. Only consumers
    /// with a group commit.
    pub fn auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.config.auto_commit = interval;
        self
    }

    /// Most records one [`Consumer::poll`] returns; default 500.
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.config.max_poll_records = records.max(1);
        self
    }

    /// Bytes asked for in one fetch from one partition; default 1 MiB. At least one batch is
    /// always returned, however large.
    pub fn fetch_max_bytes(mut self, bytes: u32) -> Self {
        self.config.fetch_max_bytes = bytes.max(1);
        self
    }

    /// Builds the consumer. It has no partitions until [`Consumer::assign`] or
    /// [`Consumer::subscribe`].
    pub fn build(self) -> Consumer {
        let next_auto_commit = self.config.auto_commit.map(|every| Instant::now() + every);
        Consumer {
            client: self.client,
            config: self.config,
            partitions: BTreeMap::new(),
            next_auto_commit,
            last_committed: HashMap::new(),
            member: None,
            listener: self.listener,
            next_first: 0,
        }
    }
}

/// The consumer's view of one partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// The next offset to fetch; `None` until looked up.
    fetch_offset: Option<u64>,
    /// Fetched records not yet returned, in offset order, all below `fetch_offset`.
    buffer: VecDeque<Record>,
    paused: bool,
}

impl PartitionState {
    /// The offset of the first record not yet returned by `poll`.
    fn position(&self) -> Option<u64> {
        self.buffer
            .front()
            .map(Record::offset)
            .or(self.fetch_offset)
    }

    fn seek(&mut self, offset: u64) {
        self.buffer.clear();
        self.fetch_offset = Some(offset);
    }
}

/// What one fetch task reports.
struct Fetched {
    tp: TopicPartition,
    offset: u64,
    result: Result<v1::FetchResponse, ClientError>,
}

/// Reads records from assigned partitions and commits a group's offsets.
///
/// ```no_run
/// # async fn run() -> Result<(), rivulet_client::ClientError> {
/// use std::time::Duration;
/// use rivulet_client::{Client, OffsetReset};
///
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let mut consumer = client
///     .consumer()
///     .group("billing")
///     .offset_reset(OffsetReset::Earliest)
///     .build();
/// consumer.subscribe(["orders"]).await?;
/// loop {
///     for record in consumer.poll(Duration::from_secs(1)).await? {
///         println!("{} {:?}", record.offset(), record.value());
///     }
///     consumer.commit().await?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    next_auto_commit: Option<Instant>,
    /// Positions as last committed by this consumer.
    last_committed: HashMap<TopicPartition, u64>,
    /// Group membership, once subscribed.
    member: Option<GroupMember>,
    listener: Option<RebalanceListener>,
    /// Where the next [`Consumer::poll`] starts taking buffered records, in partition order:
    /// each poll starts one partition further, so a partition that always has records buffered
    /// cannot keep the others waiting when polls are capped by `max_poll_records`.
    next_first: usize,
}

impl Consumer {
    /// Reads exactly these partitions from now on, replacing any earlier assignment. Positions
    /// of partitions kept from the earlier assignment are kept; new ones start from the
    /// group's committed offset, or else the reset policy, on the next poll.
    ///
    /// A consumer that was subscribed stops heartbeating; the group removes it after the
    /// session timeout (use [`Consumer::close`] to leave at once).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        self.member = None;
        self.set_partitions(partitions);
    }

    fn set_partitions(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = self.partitions.remove(&tp).unwrap_or_default();
            next.insert(tp, state);
        }
        self.partitions = next;
    }

    /// Joins the consumer's group as a member consuming `topics`. The server shares the
    /// topics' partitions among the group's members and rebalances them as members join,
    /// leave or die; this consumer reads the partitions assigned to it, each from the group's
    /// committed offset (else the reset policy). Partitions added to a topic later are picked
    /// up. Heartbeats go out from [`Consumer::poll`].
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGroup`] without a group; errors of the first Heartbeat call, except
    /// retryable ones (the next poll tries again).
    pub async fn subscribe<I, S>(&mut self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let group = self.group("subscribe")?.to_owned();
        let mut topics: Vec<String> = topics.into_iter().map(|t| t.as_ref().to_owned()).collect();
        topics.sort();
        topics.dedup();
        if let Some(mut old) = self.member.take() {
            old.leave(&self.client).await;
        }
        self.set_partitions([]);
        self.member = Some(GroupMember::new(
            group,
            topics,
            self.config.instance_id.clone(),
            self.config.strategy,
        ));
        match self.heartbeat().await {
            Err(err) if !err.is_retryable() => Err(err),
            _ => Ok(()),
        }
    }

    /// The member id the group gave this consumer, once subscribed and joined.
    pub fn member_id(&self) -> Option<&str> {
        self.member.as_ref().and_then(GroupMember::member_id)
    }

    /// The group generation of the consumer's current assignment, once joined.
    pub fn generation(&self) -> Option<u64> {
        self.member
            .as_ref()
            .filter(|m| m.member_id().is_some())
            .map(GroupMember::generation)
    }

    /// The assigned partitions, in order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// The offset of the next record `poll` will return from `tp`, once known (it is looked up
    /// on the first poll after assignment).
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.partitions.get(tp).and_then(PartitionState::position)
    }

    /// Waits up to `timeout` for records from the assigned, unpaused partitions and returns
    /// at most `max_poll_records` of them; an empty vector when none arrived in time.
    ///
    /// Fetches raw batches from every partition with nothing buffered at once (long-polling
    /// for the rest of `timeout`), checks each batch's CRC, and skips records below the
    /// position. Commits first if auto-commit is due. A position outside the log is reset by
    /// the reset policy, with a warning.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoOffset`] or [`ClientError::OutOfRange`] with [`OffsetReset::Fail`];
    /// [`ClientError::CorruptBatch`] for a batch that fails its checks;
    /// [`ClientError::NotFound`] for a deleted topic; other non-retryable fetch errors.
    /// Retryable errors (an unreachable server) are logged and the poll returns what it has.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>, ClientError> {
        let deadline = Instant::now() + timeout;
        self.auto_commit_if_due().await;
        loop {
            self.heartbeat_if_due().await?;
            let records = self.take_buffered();
            if !records.is_empty() {
                return Ok(records);
            }
            self.init_positions().await?;
            let mut remaining = deadline.saturating_duration_since(Instant::now());
            if let Some(member) = &self.member {
                remaining = remaining.min(member.until_due());
            }
            self.fetch(remaining).await?;
            if Instant::now() >= deadline {
                return Ok(self.take_buffered());
            }
        }
    }

    /// Commits the position of every assigned partition whose position is known, in one
    /// durable write, and waits for it.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGroup`] without a group; errors of the CommitOffsets call.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let offsets = self.positions();
        let group = self.group("commit")?.to_owned();
        let member = self.committer();
        let result = commit_offsets(&self.client, &group, member, &offsets).await;
        self.after_commit(result, offsets)
    }

    /// Starts committing the positions of every assigned partition in the background and
    /// returns a handle to await or drop; a failure is logged either way.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGroup`] without a group.
    pub fn commit_async(&mut self) -> Result<CommitHandle, ClientError> {
        let offsets = self.positions();
        let group = self.group("commit_async")?.to_owned();
        let client = self.client.clone();
        let member = self.committer();
        self.last_committed.extend(offsets.iter().cloned());
        let task = tokio::spawn(async move {
            let result = commit_offsets(&client, &group, member, &offsets).await;
            if let Err(err) = &result {
                warn!(group, error = %err, "asynchronous commit failed");
            }
            result
        });
        Ok(CommitHandle { task })
    }

    /// Commits explicit positions (the next offset to read on each partition) for the group.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGroup`] without a group; errors of the CommitOffsets call.
    pub async fn commit_offsets(
        &mut self,
        offsets: impl IntoIterator<Item = (TopicPartition, u64)>,
    ) -> Result<(), ClientError> {
        let offsets: Vec<_> = offsets.into_iter().collect();
        let group = self.group("commit_offsets")?.to_owned();
        let member = self.committer();
        let result = commit_offsets(&self.client, &group, member, &offsets).await;
        self.after_commit(result, offsets)
    }

    /// The group's committed offset on `tp`, if any.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGroup`] without a group; errors of the FetchOffsets call.
    pub async fn committed(&self, tp: &TopicPartition) -> Result<Option<u64>, ClientError> {
        let group = self.group("committed")?;
        let committed = fetch_committed(&self.client, group, tp.topic()).await?;
        Ok(committed.get(tp).copied())
    }

    /// Moves `tp`'s position to `offset`; the next poll reads from there. Buffered records of
    /// the partition are dropped.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`] if `tp` is not assigned.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<(), ClientError> {
        self.state_mut(tp)?.seek(offset);
        debug!(
            topic = tp.topic(),
            partition = tp.partition(),
            offset,
            "seek"
        );
        Ok(())
    }

    /// Moves each partition's position to its first stored offset.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`]; errors of the ListOffsets call.
    pub async fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in tps {
            self.state_mut(tp)?;
            let offset = list_offset(&self.client, tp, OffsetSpec::Earliest).await?;
            self.seek(tp, offset.unwrap_or(0))?;
        }
        Ok(())
    }

    /// Moves each partition's position to its log end, so only new records are read.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`]; errors of the ListOffsets call.
    pub async fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in tps {
            self.state_mut(tp)?;
            let offset = list_offset(&self.client, tp, OffsetSpec::Latest).await?;
            self.seek(tp, offset.unwrap_or(0))?;
        }
        Ok(())
    }

    /// Moves `tp`'s position to the first record whose timestamp is at or after
    /// `timestamp_ms` (ms since the epoch), or to the log end if every record is older.
    /// Returns the new position.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`]; errors of the ListOffsets call.
    pub async fn seek_to_timestamp(
        &mut self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<u64, ClientError> {
        self.state_mut(tp)?;
        let offset = match list_offset(&self.client, tp, OffsetSpec::Time(timestamp_ms)).await? {
            Some(offset) => offset,
            None => list_offset(&self.client, tp, OffsetSpec::Latest)
                .await?
                .unwrap_or(0),
        };
        self.seek(tp, offset)?;
        Ok(offset)
    }

    /// Stops fetching and returning records from these partitions until they are resumed.
    /// Their positions and buffered records are kept.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`] for a partition not assigned; earlier ones stay paused.
    pub fn pause(&mut self, tps: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in tps {
            self.state_mut(tp)?.paused = true;
        }
        Ok(())
    }

    /// Resumes paused partitions.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAssigned`] for a partition not assigned; earlier ones are resumed.
    pub fn resume(&mut self, tps: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in tps {
            self.state_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Commits the positions if auto-commit is on, then drops the consumer. Dropping a
    /// consumer without `close` commits nothing.
    ///
    /// # Errors
    ///
    /// Errors of the final commit.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let committed = if self.config.auto_commit.is_some() && self.config.group.is_some() {
            self.commit_changed().await
        } else {
            Ok(())
        };
        if let Some(mut member) = self.member.take() {
            member.leave(&self.client).await;
        }
        committed
    }

    /// The member id and generation to commit with, when subscribed and joined.
    fn committer(&self) -> Option<(String, u64)> {
        let member = self.member.as_ref()?;
        Some((member.member_id()?.to_owned(), member.generation()))
    }

    /// Records a commit's positions, or, when membership refused it, asks for a heartbeat at
    /// once so the consumer learns what it still holds.
    fn after_commit(
        &mut self,
        result: Result<(), ClientError>,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<(), ClientError> {
        match result {
            Ok(()) => {
                self.last_committed.extend(offsets);
                Ok(())
            }
            Err(err) => {
                if matches!(err, ClientError::NotMember { .. })
                    && let Some(member) = &mut self.member
                {
                    member.wake();
                }
                Err(err)
            }
        }
    }

    async fn heartbeat_if_due(&mut self) -> Result<(), ClientError> {
        if self.member.as_ref().is_some_and(GroupMember::is_due) {
            match self.heartbeat().await {
                Err(err) if !err.is_retryable() => return Err(err),
                Err(err) => debug!(error = %err, "heartbeat failed; will retry"),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// One heartbeat and its consequences: partitions revoked (committed, then dropped),
    /// assigned, or lost when the member was removed (then it joins again at once).
    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let Some(member) = &mut self.member else {
            return Ok(());
        };
        let reply = match member.heartbeat(&self.client, self.partitions.keys()).await {
            Ok(reply) => reply,
            Err(ClientError::NotMember { message, .. }) => {
                let lost: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
                warn!(%message, partitions = lost.len(), "removed from the group; joining again");
                self.set_partitions([]);
                if !lost.is_empty() {
                    self.notify(RebalanceEvent::Lost(lost));
                }
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let revoked: Vec<TopicPartition> = self
            .partitions
            .keys()
            .filter(|tp| !reply.assigned.contains(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            let positions: Vec<(TopicPartition, u64)> = revoked
                .iter()
                .filter_map(|tp| Some((tp.clone(), self.partitions.get(tp)?.position()?)))
                .filter(|(tp, p)| self.last_committed.get(tp) != Some(p))
                .collect();
            if let Some(group) = self.config.group.clone() {
                let member = self.committer();
                let result = commit_offsets(&self.client, &group, member, &positions).await;
                if let Err(err) = self.after_commit(result, positions) {
                    warn!(error = %err, "commit of revoked partitions failed");
                }
            }
            for tp in &revoked {
                self.partitions.remove(tp);
                self.last_committed.remove(tp);
            }
            if let Some(member) = &mut self.member {
                member.wake();
            }
            self.notify(RebalanceEvent::Revoked(revoked));
        }
        let assigned: Vec<TopicPartition> = reply
            .assigned
            .into_iter()
            .filter(|tp| !self.partitions.contains_key(tp))
            .collect();
        if !assigned.is_empty() {
            for tp in &assigned {
                self.partitions
                    .insert(tp.clone(), PartitionState::default());
            }
            self.notify(RebalanceEvent::Assigned(assigned));
        }
        Ok(())
    }

    fn notify(&self, event: RebalanceEvent) {
        debug!(?event, "rebalance");
        if let Some(listener) = &self.listener {
            (listener.0.lock())(event);
        }
    }

    fn group(&self, operation: &'static str) -> Result<&str, ClientError> {
        self.config
            .group
            .as_deref()
            .ok_or(ClientError::NoGroup { operation })
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState, ClientError> {
        self.partitions
            .get_mut(tp)
            .ok_or_else(|| ClientError::NotAssigned {
                topic: tp.topic().to_owned(),
                partition: tp.partition(),
            })
    }

    /// Every known position.
    fn positions(&self) -> Vec<(TopicPartition, u64)> {
        self.partitions
            .iter()
            .filter_map(|(tp, s)| s.position().map(|p| (tp.clone(), p)))
            .collect()
    }

    async fn auto_commit_if_due(&mut self) {
        let (Some(every), Some(due)) = (self.config.auto_commit, self.next_auto_commit) else {
            return;
        };
        if self.config.group.is_none() || Instant::now() < due {
            return;
        }
        self.next_auto_commit = Some(Instant::now() + every);
        if let Err(err) = self.commit_changed().await {
            warn!(error = %err, "auto-commit failed; retrying at the next interval");
        }
    }

    /// Commits the positions that moved since this consumer last committed them.
    async fn commit_changed(&mut self) -> Result<(), ClientError> {
        let changed: Vec<_> = self
            .positions()
            .into_iter()
            .filter(|(tp, p)| self.last_committed.get(tp) != Some(p))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let group = self.group("auto-commit")?.to_owned();
        let member = self.committer();
        let count = changed.len();
        let result = commit_offsets(&self.client, &group, member, &changed).await;
        self.after_commit(result, changed)?;
        debug!(group, partitions = count, "auto-committed");
        Ok(())
    }

    /// Takes up to `max_poll_records` buffered records of unpaused partitions.
    fn take_buffered(&mut self) -> Vec<Record> {
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        let count = self.partitions.len();
        if count == 0 {
            return out;
        }
        let first = self.next_first % count;
        self.next_first = first + 1;
        let mut states: Vec<_> = self.partitions.values_mut().collect();
        states.rotate_left(first);
        for state in states {
            if state.paused {
                continue;
            }
            while out.len() < max {
                let Some(record) = state.buffer.pop_front() else {
                    break;
                };
                out.push(record);
            }
        }
        out
    }

    /// Looks up a starting position for every unpaused partition without one.
    async fn init_positions(&mut self) -> Result<(), ClientError> {
        let missing: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.fetch_offset.is_none() && !s.paused)
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }

        let mut committed = HashMap::new();
        if let Some(group) = &self.config.group {
            let mut topics: Vec<&str> = missing.iter().map(TopicPartition::topic).collect();
            topics.dedup();
            for topic in topics {
                committed.extend(fetch_committed(&self.client, group, topic).await?);
            }
        }

        for tp in missing {
            let offset = match committed.get(&tp) {
                Some(&offset) => offset,
                None => self.reset_offset(&tp, None).await?,
            };
            debug!(
                topic = tp.topic(),
                partition = tp.partition(),
                offset,
                "starting position"
            );
            self.state_mut(&tp)?.fetch_offset = Some(offset);
        }
        Ok(())
    }

    /// The offset the reset policy picks for `tp`. `range` is the log's (start, end) when an
    /// out-of-range error reported it.
    async fn reset_offset(
        &self,
        tp: &TopicPartition,
        range: Option<(Option<u64>, Option<u64>)>,
    ) -> Result<u64, ClientError> {
        let (start, end) = range.unwrap_or((None, None));
        let (known, spec) = match self.config.reset {
            OffsetReset::Earliest => (start, OffsetSpec::Earliest),
            OffsetReset::Latest => (end, OffsetSpec::Latest),
            OffsetReset::Fail => {
                return Err(ClientError::NoOffset {
                    topic: tp.topic().to_owned(),
                    partition: tp.partition(),
                });
            }
        };
        if let Some(offset) = known {
            return Ok(offset);
        }
        Ok(list_offset(&self.client, tp, spec).await?.unwrap_or(0))
    }

    /// Fetches from every unpaused partition with nothing buffered, waiting up to `wait`, and
    /// buffers what comes back.
    async fn fetch(&mut self, wait: Duration) -> Result<(), ClientError> {
        let targets: Vec<(TopicPartition, u64)> = self
            .partitions
            .iter()
            .filter(|(_, s)| !s.paused && s.buffer.is_empty())
            .filter_map(|(tp, s)| s.fetch_offset.map(|o| (tp.clone(), o)))
            .collect();
        if targets.is_empty() {
            tokio::time::sleep(wait).await;
            return Ok(());
        }

        let mut tasks = JoinSet::new();
        for (tp, offset) in targets {
            let log = self.client.log();
            let max_bytes = self.config.fetch_max_bytes;
            tasks.spawn(fetch_one(log, tp, offset, max_bytes, wait));
        }

        // Take the first reply with records, plus whatever else is ready right after it; the
        // remaining long-polls are cancelled when `tasks` drops, losing nothing since
        // positions only move for replies handled here.
        let mut got_records = false;
        let mut retryable = None;
        loop {
            let next = if got_records {
                match tokio::time::timeout(FETCH_GRACE, tasks.join_next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                tasks.join_next().await
            };
            let Some(joined) = next else {
                break;
            };
            let Ok(fetched) = joined else {
                continue;
            };
            match self.handle_fetched(fetched).await {
                Ok(true) => got_records = true,
                Ok(false) => {}
                Err(err) if err.is_retryable() => retryable = Some(err),
                Err(err) => return Err(err),
            }
        }
        if let Some(err) = retryable
            && !got_records
        {
            debug!(error = %err, "fetch failed; will retry");
            tokio::time::sleep(RETRY_PAUSE.min(wait)).await;
        }
        Ok(())
    }

    /// Buffers the records of one fetch reply, or resets an out-of-range position. Returns
    /// whether records were buffered.
    async fn handle_fetched(&mut self, fetched: Fetched) -> Result<bool, ClientError> {
        let Fetched { tp, offset, result } = fetched;
        // A seek while the fetch was in flight makes its reply stale.
        let current = self.partitions.get(&tp).and_then(|s| s.fetch_offset);
        if current != Some(offset) {
            return Ok(false);
        }
        let reply = match result {
            Ok(reply) => reply,
            Err(ClientError::OutOfRange {
                log_start,
                log_end,
                message,
                operation,
                requested,
            }) => {
                if self.config.reset == OffsetReset::Fail {
                    return Err(ClientError::OutOfRange {
                        log_start,
                        log_end,
                        message,
                        operation,
                        requested,
                    });
                }
                let reset = self.reset_offset(&tp, Some((log_start, log_end))).await?;
                warn!(
                    topic = tp.topic(),
                    partition = tp.partition(),
                    offset,
                    log_start,
                    log_end,
                    reset_to = reset,
                    policy = ?self.config.reset,
                    "position out of range; reset by policy"
                );
                self.state_mut(&tp)?.seek(reset);
                return Ok(false);
            }
            Err(err) => return Err(err),
        };

        let mut records = Vec::new();
        let mut next = offset;
        for batch in &reply.batches {
            let (header, decoded) =
                decode_batch(batch).map_err(|source| ClientError::CorruptBatch {
                    topic: tp.topic().to_owned(),
                    partition: tp.partition(),
                    offset,
                    source,
                })?;
            let batch_end = u64::try_from(header.next_offset()).unwrap_or(0);
            next = next.max(batch_end);
            if header.is_control() {
                continue;
            }
            records.extend(
                decoded
                    .into_iter()
                    .filter(|r| u64::try_from(r.offset).is_ok_and(|o| o >= offset))
                    .map(|r| Record::from_format(tp.topic(), tp.partition(), r)),
            );
        }
        let state = self.state_mut(&tp)?;
        state.fetch_offset = Some(next.max(reply.next_offset));
        let got = !records.is_empty();
        state.buffer.extend(records);
        Ok(got)
    }
}

/// Resolves when an asynchronous commit finishes; see [`Consumer::commit_async`].
#[derive(Debug)]
#[must_use = "await the handle to learn whether the commit succeeded, or drop it"]
pub struct CommitHandle {
    task: JoinHandle<Result<(), ClientError>>,
}

impl Future for CommitHandle {
    type Output = Result<(), ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map(|joined| {
            joined.unwrap_or_else(|err| {
                Err(ClientError::Transport {
                    operation: "CommitOffsets",
                    message: format!("commit task ended abnormally: {err}"),
                })
            })
        })
    }
}

/// One long-poll fetch of raw batches.
async fn fetch_one(
    mut log: v1::log_client::LogClient<tonic::transport::Channel>,
    tp: TopicPartition,
    offset: u64,
    max_bytes: u32,
    wait: Duration,
) -> Fetched {
    let max_wait_ms = u32::try_from(wait.as_millis())
        .unwrap_or(u32::MAX)
        .min(60_000);
    let mut request = tonic::Request::new(v1::FetchRequest {
        topic: tp.topic().to_owned(),
        partition: tp.partition(),
        offset,
        max_bytes,
        max_wait_ms,
        min_bytes: 0,
        format: v1::FetchFormat::RawBatches as i32,
    });
    request.set_timeout(wait + FETCH_DEADLINE_SLACK);
    let result = log
        .fetch(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| ClientError::from_status("Fetch", &status));
    Fetched { tp, offset, result }
}

/// Which offset [`list_offset`] asks for.
#[derive(Debug, Clone, Copy)]
enum OffsetSpec {
    Earliest,
    Latest,
    Time(i64),
}

async fn list_offset(
    client: &Client,
    tp: &TopicPartition,
    spec: OffsetSpec,
) -> Result<Option<u64>, ClientError> {
    use v1::list_offsets_request::Spec;
    let spec = match spec {
        OffsetSpec::Earliest => Spec::Position(v1::StartPosition::Earliest as i32),
        OffsetSpec::Latest => Spec::Position(v1::StartPosition::Latest as i32),
        OffsetSpec::Time(ms) => Spec::TimestampMs(ms),
    };
    let request = v1::ListOffsetsRequest {
        topic: tp.topic().to_owned(),
        partition: tp.partition(),
        spec: Some(spec),
    };
    let reply = client
        .log()
        .list_offsets(request)
        .await
        .map_err(|status| ClientError::from_status("ListOffsets", &status))?;
    Ok(reply.into_inner().offset)
}

async fn fetch_committed(
    client: &Client,
    group: &str,
    topic: &str,
) -> Result<HashMap<TopicPartition, u64>, ClientError> {
    let request = v1::FetchOffsetsRequest {
        group: group.to_owned(),
        topic: Some(topic.to_owned()),
    };
    let reply = client
        .log()
        .fetch_offsets(request)
        .await
        .map_err(|status| ClientError::from_status("FetchOffsets", &status))?;
    Ok(reply
        .into_inner()
        .offsets
        .into_iter()
        .map(|c| (TopicPartition::new(c.topic, c.partition), c.offset))
        .collect())
}

async fn commit_offsets(
    client: &Client,
    group: &str,
    member: Option<(String, u64)>,
    offsets: &[(TopicPartition, u64)],
) -> Result<(), ClientError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let request = v1::CommitOffsetsRequest {
        group: group.to_owned(),
        offsets: offsets
            .iter()
            .map(|(tp, offset)| v1::OffsetCommit {
                topic: tp.topic().to_owned(),
                partition: tp.partition(),
                offset: i64::try_from(*offset).unwrap_or(i64::MAX),
                metadata: None,
            })
            .collect(),
        generation: member.as_ref().map(|(_, generation)| *generation),
        member_id: member.map(|(id, _)| id),
    };
    client
        .log()
        .commit_offsets(request)
        .await
        .map_err(|status| ClientError::from_status("CommitOffsets", &status))?;
    Ok(())
}
