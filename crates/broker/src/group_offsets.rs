//! Consumer-group committed offsets, kept in an internal log of the storage engine.
//!
//! Every commit appends one record per partition to the offsets log: the key names
//! `(group, topic, partition)`, the value holds the committed offset (the next offset the group
//! will read), an optional metadata string and the commit time. A record with a null value (a
//! tombstone) removes the key. Opening replays the log from its start; the latest record per
//! key wins. The record layout is documented in `docs/format/group-offsets.md`; record batches
//! carry their own CRC32C, so no extra checksum is added.
//!
//! Compaction keeps the log from growing forever. Once the log is larger than the configured
//! size (and at least twice its size after the last compaction), the writer, with commits
//! held off:
//! 1. rolls the log, so the snapshot starts a fresh segment;
//! 2. appends every live key's current value (a snapshot) at offsets `S..`;
//! 3. fsyncs;
//! 4. moves the log start to `S`, deleting the segments before it.
//!
//! A crash before step 4 leaves the old records followed by part or all of the snapshot, whose
//! values equal the latest ones, so replay gives the same map; after step 4 the snapshot alone
//! holds every live key. Nothing is lost at any point.
//!
//! Damage: replay (`offsets_replay`) steps over a range of the log it cannot read and restores
//! every commit it can. A key whose last readable record comes before such a range is *in
//! doubt*: the lost records may have held a newer commit for it, so serving the older one would
//! re-deliver records without anyone being told. Reads of a group's offsets that meet a key in
//! doubt fail with [`BrokerError::CommitsInDoubt`] instead, until the group commits that
//! partition again (or its topic is deleted). Compaction waits while any key is in doubt: the
//! snapshot would record the older value as if it were the latest and drop the damaged range,
//! so the next start could no longer tell.
//!
//! Invariants: records reach the log in the order their values reach the in-memory map (both
//! happen under the writer lock), so the replayed map equals the map before a restart; a
//! commit is acknowledged only after its record is fsynced. The writer lock is held during
//! appends and compaction, only on blocking threads; the map lock is held only for in-memory
//! work. This module does not check offsets against topic logs; the broker does that.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{FlushPolicy, LogConfig, MIN_SEGMENT_BYTES, PartitionLog};
use tracing::{debug, error, info, warn};

use crate::error::{BrokerError, Result};
use crate::offsets_replay;

/// Scope named in errors about the offsets log.
pub(crate) const SCOPE: &str = "the group offsets log";
/// Most partitions an in-doubt error or log line names one by one.
const LISTED_IN_DOUBT: usize = 8;

/// Version byte at the start of every key and value.
const RECORD_VERSION_1: u8 = 1;
/// Marks an absent metadata string.
const NO_METADATA: u32 = u32::MAX;
/// Longest metadata string stored with a commit, in bytes.
pub const MAX_COMMIT_METADATA_BYTES: usize = 4096;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME_BYTES: usize = 255;
/// Target size of one batch when writing many records (snapshots, tombstones).
const CHUNK_BYTES: usize = 256 << 10;

/// `(group, topic, partition)`.
pub(crate) type OffsetKey = (String, String, u32);

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedValue {
    pub(crate) offset: u64,
    pub(crate) metadata: Option<String>,
    pub(crate) commit_timestamp_ms: i64,
}

/// Offsets of the offsets log, `first` to `last` inclusive, that cannot be read: the commits
/// stored there are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DamagedRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl fmt::Display for DamagedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offsets {} to {}", self.first, self.last)
    }
}

/// The latest readable value per key, and the keys whose latest value may have been lost.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) values: BTreeMap<OffsetKey, CommittedValue>,
    /// Keys whose last readable record precedes a damaged range of the log (the range after
    /// it is kept): a newer commit may be lost. A key may be in doubt with no value (its last
    /// readable record was a tombstone, or its only record is unreadable).
    pub(crate) in_doubt: BTreeMap<OffsetKey, DamagedRange>,
}

/// One partition's offset in a commit request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffsetCommit {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset the group will read. Must be between 0 and the log end offset.
    pub offset: i64,
    /// Free-form metadata stored with the offset, at most 4096 bytes.
    pub metadata: Option<String>,
}

impl OffsetCommit {
    /// A commit of `offset` for `topic`/`partition` with no metadata.
    pub fn new(topic: impl Into<String>, partition: u32, offset: i64) -> Self {
        OffsetCommit {
            topic: topic.into(),
            partition,
            offset,
            metadata: None,
        }
    }

    /// Attaches a metadata string.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }
}

/// A group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset the group will read.
    pub offset: u64,
    /// The metadata string committed with it.
    pub metadata: Option<String>,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

/// The offsets store: the internal log plus the latest value per key.
pub(crate) struct GroupOffsets {
    log: PartitionLog,
    /// Serialises writes to the log with updates of the map.
    writer: Mutex<WriterState>,
    map: RwLock<Committed>,
    compact_bytes: u64,
    compactions: AtomicU64,
    /// Whether a compaction put off because of keys in doubt has been logged.
    deferral_logged: AtomicBool,
}

struct WriterState {
    /// Log size right after the last compaction (or open).
    size_after_compaction: u64,
}

impl GroupOffsets {
    /// Opens (or creates) the offsets log in `dir` and rebuilds the latest values. Blocking.
    pub(crate) fn open(dir: &Path, compact_bytes: u64) -> Result<Self> {
        let segment_bytes = (compact_bytes / 4).clamp(MIN_SEGMENT_BYTES, 64 << 20);
        let config = LogConfig::default()
            .with_segment_bytes(segment_bytes)
            .with_max_batch_bytes(4 << 20)
            .with_flush(FlushPolicy::Os);
        let (log, report) =
            PartitionLog::open(dir, config).map_err(|e| BrokerError::from_storage_in(SCOPE, e))?;
        // A log just created has no clean-shutdown marker either, and nothing to recover.
        if !report.clean_shutdown && (report.log_end_offset > 0 || report.torn_tail.is_some()) {
            info!(
                log_start = report.log_start_offset,
                log_end = report.log_end_offset,
                "group offsets log recovered after unclean shutdown"
            );
        }
        let map = offsets_replay::replay(&log)?;
        log_in_doubt(&map);
        let size = log.size_bytes();
        debug!(
            keys = map.values.len(),
            in_doubt = map.in_doubt.len(),
            bytes = size,
            "group offsets loaded"
        );
        Ok(GroupOffsets {
            log,
            writer: Mutex::new(WriterState {
                size_after_compaction: size,
            }),
            map: RwLock::new(map),
            compact_bytes,
            compactions: AtomicU64::new(0),
            deferral_logged: AtomicBool::new(false),
        })
    }

    /// Stores `entries` for `group` durably. Blocking. Offsets must already be checked.
    pub(crate) fn commit(
        &self,
        group: &str,
        entries: &[(String, u32, u64, Option<String>)],
        now_ms: i64,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let last = {
            let _writer = self.writer.lock();
            let mut builder = BatchBuilder::new(Compression::None);
            for (topic, partition, offset, metadata) in entries {
                let key = encode_key(group, topic, *partition);
                let value = encode_value(*offset, metadata.as_deref(), now_ms);
                builder.push(now_ms, Some(&key), Some(&value), &[]);
            }
            let last = self.append(&builder)?;
            let mut map = self.map.write();
            for (topic, partition, offset, metadata) in entries {
                let key = (group.to_owned(), topic.clone(), *partition);
                if map.in_doubt.remove(&key).is_some() {
                    info!(
                        group,
                        topic = %topic,
                        partition,
                        offset,
                        "committed offset no longer in doubt: committed again"
                    );
                }
                map.values.insert(
                    key,
                    CommittedValue {
                        offset: *offset,
                        metadata: metadata.clone(),
                        commit_timestamp_ms: now_ms,
                    },
                );
            }
            last
        };
        self.log
            .flush_to(last + 1)
            .map_err(|e| BrokerError::from_storage_in(SCOPE, e))?;
        self.compact_if_due(now_ms)
    }

    /// Removes every committed offset whose topic satisfies `doomed`, durably. Blocking.
    pub(crate) fn remove_topics(&self, doomed: impl Fn(&str) -> bool, now_ms: i64) -> Result<()> {
        let _writer = self.writer.lock();
        // Keys in doubt get a tombstone too, so the next start knows they are settled.
        let keys: Vec<OffsetKey> = {
            let map = self.map.read();
            let doomed_keys: BTreeSet<&OffsetKey> = map
                .values
                .keys()
                .chain(map.in_doubt.keys())
                .filter(|(_, topic, _)| doomed(topic))
                .collect();
            doomed_keys.into_iter().cloned().collect()
        };
        if keys.is_empty() {
            return Ok(());
        }
        for chunk in chunk_keys(&keys) {
            let mut builder = BatchBuilder::new(Compression::None);
            for (group, topic, partition) in chunk {
                let key = encode_key(group, topic, *partition);
                builder.push(now_ms, Some(&key), None, &[]);
            }
            self.append(&builder)?;
        }
        {
            let mut map = self.map.write();
            for key in &keys {
                map.values.remove(key);
                map.in_doubt.remove(key);
            }
        }
        self.log
            .flush()
            .map_err(|e| BrokerError::from_storage_in(SCOPE, e))?;
        info!(
            removed = keys.len(),
            "removed committed offsets of deleted topics"
        );
        Ok(())
    }

    /// The committed offsets of `group`, optionally of one topic only.
    ///
    /// # Errors
    ///
    /// [`BrokerError::CommitsInDoubt`] if any of them is in doubt; none is returned then, so a
    /// consumer cannot resume from an offset that may be older than its last commit.
    pub(crate) fn fetch(&self, group: &str, topic: Option<&str>) -> Result<Vec<CommittedOffset>> {
        let map = self.map.read();
        let in_scope = |t: &str| topic.is_none_or(|wanted| wanted == t);
        let doubts: Vec<_> = group_range(&map.in_doubt, group)
            .filter(|((_, t, _), _)| in_scope(t))
            .collect();
        if !doubts.is_empty() {
            return Err(BrokerError::CommitsInDoubt {
                group: group.to_owned(),
                detail: in_doubt_detail(&map, &doubts),
            });
        }
        Ok(group_range(&map.values, group)
            .filter(|((_, t, _), _)| in_scope(t))
            .map(|(key, value)| committed_offset(key, value))
            .collect())
    }

    /// The committed offset of `group` on one partition, if any.
    ///
    /// # Errors
    ///
    /// [`BrokerError::CommitsInDoubt`] if it is in doubt.
    pub(crate) fn fetch_one(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<CommittedOffset>> {
        let map = self.map.read();
        let key = (group.to_owned(), topic.to_owned(), partition);
        if let Some((key, range)) = map.in_doubt.get_key_value(&key) {
            return Err(BrokerError::CommitsInDoubt {
                group: group.to_owned(),
                detail: in_doubt_detail(&map, &[(key, range)]),
            });
        }
        Ok(map
            .values
            .get(&key)
            .map(|value| committed_offset(&key, value)))
    }

    /// Every committed offset of `group`, each with a note when it is in doubt. For
    /// inspection: it shows what a read of the group's offsets would refuse.
    pub(crate) fn fetch_flagged(&self, group: &str) -> Vec<(CommittedOffset, Option<String>)> {
        let map = self.map.read();
        group_range(&map.values, group)
            .map(|(key, value)| {
                let note = map.in_doubt.get(key).map(|range| {
                    format!(
                        "the group offsets log cannot read its {range}, written after this \
                         commit; a newer commit of this partition may be lost there"
                    )
                });
                (committed_offset(key, value), note)
            })
            .collect()
    }

    /// Every group with at least one committed offset (or one in doubt).
    pub(crate) fn groups(&self) -> Vec<String> {
        let map = self.map.read();
        let groups: BTreeSet<&String> = map
            .values
            .keys()
            .chain(map.in_doubt.keys())
            .map(|(g, _, _)| g)
            .collect();
        groups.into_iter().cloned().collect()
    }

    /// Topics with at least one committed offset (or one in doubt).
    pub(crate) fn topics(&self) -> BTreeSet<String> {
        let map = self.map.read();
        map.values
            .keys()
            .chain(map.in_doubt.keys())
            .map(|(_, t, _)| t.clone())
            .collect()
    }

    /// Compactions run since open.
    pub(crate) fn compactions(&self) -> u64 {
        self.compactions.load(Ordering::Relaxed)
    }

    /// Bytes of offsets log on disk.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Closes the log cleanly. Blocking.
    pub(crate) fn close(self) -> Result<()> {
        self.log
            .close()
            .map_err(|e| BrokerError::from_storage_in(SCOPE, e))
    }

    /// Appends the built batch; returns its last offset. Caller holds the writer lock.
    fn append(&self, builder: &BatchBuilder) -> Result<u64> {
        let mut batch = builder.build().map_err(|e| BrokerError::Internal {
            scope: SCOPE.to_owned(),
            detail: format!("encoding commit records failed: {e}"),
        })?;
        let info = self
            .log
            .append(&mut batch)
            .map_err(|e| BrokerError::from_storage_in(SCOPE, e))?;
        Ok(info.last_offset)
    }

    fn compact_if_due(&self, now_ms: i64) -> Result<()> {
        if !self.compaction_due(self.writer.lock().size_after_compaction) {
            return Ok(());
        }
        let mut writer = self.writer.lock();
        // Another committer may have compacted while we waited for the lock.
        if !self.compaction_due(writer.size_after_compaction) {
            return Ok(());
        }
        let before = self.log.size_bytes();
        let snapshot: Vec<(OffsetKey, CommittedValue)> = {
            let map = self.map.read();
            if !map.in_doubt.is_empty() {
                // TODO(broker): the log has no record for "in doubt", so compaction waits
                // until every key in doubt is committed again or its topic deleted; meanwhile
                // the offsets log grows past offsets_compact_bytes.
                if !self.deferral_logged.swap(true, Ordering::Relaxed) {
                    warn!(
                        in_doubt = map.in_doubt.len(),
                        bytes = before,
                        "group offsets log compaction put off while committed offsets are in \
                         doubt; it runs once they are committed again"
                    );
                }
                return Ok(());
            }
            map.values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let storage = |e| BrokerError::from_storage_in(SCOPE, e);

        self.log.roll().map_err(storage)?;
        let snapshot_start = self.log.log_end_offset();
        for chunk in chunk_entries(&snapshot) {
            let mut builder = BatchBuilder::new(Compression::None);
            for ((group, topic, partition), value) in chunk {
                let key = encode_key(group, topic, *partition);
                let value_bytes = encode_value(
                    value.offset,
                    value.metadata.as_deref(),
                    value.commit_timestamp_ms,
                );
                builder.push(now_ms, Some(&key), Some(&value_bytes), &[]);
            }
            self.append(&builder)?;
        }
        // The snapshot must be on disk before the records it replaces are dropped.
        self.log.flush().map_err(storage)?;
        self.log.delete_before(snapshot_start).map_err(storage)?;

        writer.size_after_compaction = self.log.size_bytes();
        self.compactions.fetch_add(1, Ordering::Relaxed);
        info!(
            keys = snapshot.len(),
            bytes_before = before,
            bytes_after = writer.size_after_compaction,
            log_start = snapshot_start,
            "group offsets log compacted"
        );
        Ok(())
    }

    fn compaction_due(&self, size_after_compaction: u64) -> bool {
        let size = self.log.size_bytes();
        size > self.compact_bytes && size > size_after_compaction.saturating_mul(2)
    }
}

/// The entries of `map` whose key belongs to `group`.
fn group_range<'a, V>(
    map: &'a BTreeMap<OffsetKey, V>,
    group: &str,
) -> impl Iterator<Item = (&'a OffsetKey, &'a V)> {
    let lower = (group.to_owned(), String::new(), 0);
    map.range(lower..)
        .take_while(move |((g, _, _), _)| g == group)
}

fn committed_offset((_, topic, partition): &OffsetKey, value: &CommittedValue) -> CommittedOffset {
    CommittedOffset {
        topic: topic.clone(),
        partition: *partition,
        offset: value.offset,
        metadata: value.metadata.clone(),
        commit_timestamp_ms: value.commit_timestamp_ms,
    }
}

/// Says which partitions are in doubt, what each last read as, and which ranges of the log are
/// lost; names at most [`LISTED_IN_DOUBT`] partitions.
fn in_doubt_detail(map: &Committed, doubts: &[(&OffsetKey, &DamagedRange)]) -> String {
    let ranges: BTreeSet<&DamagedRange> = doubts.iter().map(|(_, range)| *range).collect();
    let ranges: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    let mut partitions: Vec<String> = doubts
        .iter()
        .take(LISTED_IN_DOUBT)
        .map(|(key, _)| {
            let (_, topic, partition) = key;
            let last = match map.values.get(*key) {
                Some(value) => format!("offset {}", value.offset),
                None => "none".to_owned(),
            };
            format!("topic {topic:?} partition {partition} (last readable commit: {last})")
        })
        .collect();
    if doubts.len() > LISTED_IN_DOUBT {
        partitions.push(format!("and {} more", doubts.len() - LISTED_IN_DOUBT));
    }
    format!(
        "the group offsets log cannot read its {}, where newer commits of these partitions may \
         have been lost: {}",
        ranges.join(" and "),
        partitions.join(", ")
    )
}

/// Logs, once per group, the committed offsets found in doubt at start.
fn log_in_doubt(map: &Committed) {
    let mut groups: BTreeMap<&str, Vec<(&OffsetKey, &DamagedRange)>> = BTreeMap::new();
    for (key, range) in &map.in_doubt {
        groups.entry(key.0.as_str()).or_default().push((key, range));
    }
    for (group, doubts) in groups {
        error!(
            group,
            partitions = doubts.len(),
            detail = %in_doubt_detail(map, &doubts),
            "committed offsets in doubt after damage to the group offsets log; reads of them \
             answer DATA_LOSS until the group commits them again"
        );
    }
}

fn chunk_keys(keys: &[OffsetKey]) -> impl Iterator<Item = &[OffsetKey]> {
    let per = (CHUNK_BYTES / 300).max(1);
    keys.chunks(per)
}

fn chunk_entries(
    entries: &[(OffsetKey, CommittedValue)],
) -> impl Iterator<Item = &[(OffsetKey, CommittedValue)]> {
    // Names are at most 255 + 249 bytes and metadata 4 KiB: a few hundred entries per batch
    // stays far below the log's 4 MiB batch limit.
    let per = (CHUNK_BYTES / 600).max(1);
    entries.chunks(per)
}

/// `[version u8][group_len u16][group][topic_len u16][topic][partition u32]`, little-endian.
fn encode_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 + group.len() + 2 + topic.len() + 4);
    out.push(RECORD_VERSION_1);
    out.extend_from_slice(&(group.len() as u16).to_le_bytes());
    out.extend_from_slice(group.as_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&partition.to_le_bytes());
    out
}

pub(crate) fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    let mut rest = bytes;
    if take(&mut rest, 1)? != [RECORD_VERSION_1] {
        return None;
    }
    let group_len = u16::from_le_bytes(take(&mut rest, 2)?.try_into().ok()?);
    let group = String::from_utf8(take(&mut rest, usize::from(group_len))?.to_vec()).ok()?;
    let topic_len = u16::from_le_bytes(take(&mut rest, 2)?.try_into().ok()?);
    let topic = String::from_utf8(take(&mut rest, usize::from(topic_len))?.to_vec()).ok()?;
    let partition = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
    rest.is_empty().then_some((group, topic, partition))
}

/// `[version u8][offset u64][commit_timestamp_ms i64][metadata_len u32][metadata]`; a length
/// of `u32::MAX` means no metadata.
fn encode_value(offset: u64, metadata: Option<&str>, commit_timestamp_ms: i64) -> Vec<u8> {
    let meta_len = metadata.map_or(0, str::len);
    let mut out = Vec::with_capacity(1 + 8 + 8 + 4 + meta_len);
    out.push(RECORD_VERSION_1);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&commit_timestamp_ms.to_le_bytes());
    match metadata {
        None => out.extend_from_slice(&NO_METADATA.to_le_bytes()),
        Some(meta) => {
            out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            out.extend_from_slice(meta.as_bytes());
        }
    }
    out
}

pub(crate) fn decode_value(bytes: &[u8]) -> Option<CommittedValue> {
    let mut rest = bytes;
    if take(&mut rest, 1)? != [RECORD_VERSION_1] {
        return None;
    }
    let offset = u64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let commit_timestamp_ms = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let meta_len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
    let metadata = if meta_len == NO_METADATA {
        None
    } else {
        let len = usize::try_from(meta_len).ok()?;
        Some(String::from_utf8(take(&mut rest, len)?.to_vec()).ok()?)
    };
    rest.is_empty().then_some(CommittedValue {
        offset,
        metadata,
        commit_timestamp_ms,
    })
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rivulet_format::decode_batch;

    use super::*;

    /// Decodes one stored batch of the offsets log.
    fn decode_stored(batch: &Bytes) -> Vec<(Option<OffsetKey>, Option<CommittedValue>)> {
        let (_, records) = decode_batch(batch).unwrap();
        records
            .into_iter()
            .map(|r| {
                (
                    r.key.as_deref().and_then(decode_key),
                    r.value.as_deref().and_then(decode_value),
                )
            })
            .collect()
    }

    #[test]
    fn keys_and_values_round_trip() {
        let key = encode_key("g", "orders.v1", 7);
        assert_eq!(
            decode_key(&key),
            Some(("g".to_owned(), "orders.v1".to_owned(), 7))
        );
        for metadata in [None, Some(""), Some("consumer-1")] {
            let value = encode_value(42, metadata, 1_700_000_000_000);
            let decoded = decode_value(&value).unwrap();
            assert_eq!(decoded.offset, 42);
            assert_eq!(decoded.metadata.as_deref(), metadata);
            assert_eq!(decoded.commit_timestamp_ms, 1_700_000_000_000);
        }
    }

    #[test]
    fn truncated_or_padded_records_are_refused() {
        let key = encode_key("group", "topic", 1);
        for len in 0..key.len() {
            assert_eq!(decode_key(&key[..len]), None, "{len}");
        }
        let mut padded = key.clone();
        padded.push(0);
        assert_eq!(decode_key(&padded), None);
        let value = encode_value(1, Some("m"), 0);
        for len in 0..value.len() {
            assert_eq!(decode_value(&value[..len]), None, "{len}");
        }
    }

    #[test]
    fn commits_and_tombstones_replay_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
            offsets
                .commit(
                    "g",
                    &[
                        ("a".into(), 0, 5, Some("m".into())),
                        ("b".into(), 1, 9, None),
                    ],
                    1,
                )
                .unwrap();
            offsets.commit("g", &[("a".into(), 0, 6, None)], 2).unwrap();
            offsets.remove_topics(|t| t == "b", 3).unwrap();
            // Dropped without close: reopening must recover from the log alone.
        }
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
        let got = offsets.fetch("g", None).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].topic.as_str(), got[0].partition, got[0].offset),
            ("a", 0, 6)
        );
        assert_eq!(got[0].metadata, None);
        assert_eq!(offsets.groups(), ["g"]);
    }

    #[test]
    fn compaction_keeps_only_live_values_and_bounds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = GroupOffsets::open(dir.path(), 8 << 10).unwrap();
        for round in 0..2_000u64 {
            let entries = [("t".to_owned(), (round % 4) as u32, round, None)];
            offsets
                .commit(&format!("g{}", round % 3), &entries, round as i64)
                .unwrap();
        }
        assert!(offsets.compactions() > 0);
        assert!(offsets.size_bytes() < 32 << 10, "{}", offsets.size_bytes());

        // Everything in the log from its start decodes to current values only.
        let read = offsets
            .log
            .read(offsets.log.log_start_offset(), 1 << 20)
            .unwrap();
        assert!(
            read.batches()
                .flat_map(|b| decode_stored(&b))
                .all(|(k, v)| k.is_some() && v.is_some())
        );

        let before: Vec<_> = ["g0", "g1", "g2"]
            .iter()
            .map(|g| offsets.fetch(g, None).unwrap())
            .collect();
        offsets.close().unwrap();
        let reopened = GroupOffsets::open(dir.path(), 8 << 10).unwrap();
        let after: Vec<_> = ["g0", "g1", "g2"]
            .iter()
            .map(|g| reopened.fetch(g, None).unwrap())
            .collect();
        assert_eq!(before, after);
        assert_eq!(after.iter().map(Vec::len).sum::<usize>(), 12);
    }

    /// Flips a byte inside the records of batch `index` of the log's first segment, where the
    /// batch CRC covers it.
    fn garble_batch(dir: &Path, index: usize) {
        let segment = dir.join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&segment).unwrap();
        let mut pos = 0;
        for _ in 0..index {
            let len = u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            pos += 12 + len as usize;
        }
        bytes[pos + 70] ^= 0x5a;
        std::fs::write(&segment, bytes).unwrap();
    }

    fn one(topic: &str, partition: u32, offset: u64) -> [(String, u32, u64, Option<String>); 1] {
        [(topic.to_owned(), partition, offset, None)]
    }

    /// Commits at log offsets 0 to 3; the one at offset 2 (g1, t/0 → 6) is then garbled.
    fn log_with_a_damaged_commit(dir: &Path) {
        let offsets = GroupOffsets::open(dir, 1 << 20).unwrap();
        offsets.commit("g1", &one("t", 0, 5), 1).unwrap();
        offsets.commit("g2", &one("t", 0, 7), 2).unwrap();
        offsets.commit("g1", &one("t", 0, 6), 3).unwrap();
        offsets.commit("g2", &one("t", 1, 3), 4).unwrap();
        offsets.close().unwrap();
        garble_batch(dir, 2);
    }

    #[test]
    fn offsets_committed_before_a_damaged_range_are_in_doubt_and_the_rest_restored() {
        let dir = tempfile::tempdir().unwrap();
        log_with_a_damaged_commit(dir.path());
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();

        // Both keys last written before the damage may have a newer commit in it.
        let err = offsets.fetch("g1", None).unwrap_err();
        assert!(matches!(err, BrokerError::CommitsInDoubt { .. }), "{err}");
        let message = err.to_string();
        for words in [
            "offsets 2 to 2",
            "topic \"t\" partition 0",
            "commit: offset 5",
        ] {
            assert!(message.contains(words), "{message}");
        }
        assert!(offsets.fetch("g2", Some("t")).is_err());
        assert!(offsets.fetch_one("g2", "t", 0).is_err());

        // A key written after the damage is exact.
        let exact = offsets.fetch_one("g2", "t", 1).unwrap().unwrap();
        assert_eq!(exact.offset, 3);
        assert_eq!(offsets.groups(), ["g1", "g2"]);

        // Inspection shows the older value with a note.
        let flagged = offsets.fetch_flagged("g2");
        assert_eq!(flagged.len(), 2);
        assert_eq!(flagged[0].0.offset, 7);
        assert!(flagged[0].1.as_deref().unwrap().contains("offsets 2 to 2"));
        assert_eq!(flagged[1].1, None);
    }

    #[test]
    fn a_new_commit_settles_a_key_in_doubt_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        log_with_a_damaged_commit(dir.path());
        {
            let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
            offsets.commit("g1", &one("t", 0, 8), 5).unwrap();
            assert_eq!(offsets.fetch("g1", None).unwrap()[0].offset, 8);
            // Dropped without close: the commit is durable on its own.
        }
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(offsets.fetch("g1", None).unwrap()[0].offset, 8);
        assert!(
            offsets.fetch("g2", None).is_err(),
            "g2 was not committed again"
        );

        // Deleting the topic settles the rest, durably.
        offsets.remove_topics(|t| t == "t", 6).unwrap();
        assert_eq!(offsets.fetch("g2", None).unwrap(), []);
        offsets.close().unwrap();
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(offsets.fetch("g2", None).unwrap(), []);
        assert!(offsets.fetch("g1", None).unwrap().is_empty());
    }

    #[test]
    fn damage_before_every_commit_of_a_key_leaves_nothing_to_doubt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
            offsets.commit("lost", &one("t", 0, 1), 1).unwrap();
            offsets.commit("kept", &one("t", 0, 2), 2).unwrap();
            offsets.close().unwrap();
        }
        garble_batch(dir.path(), 0);
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
        // The lost group's name was in the damaged batch: it reads as never committed. This is
        // the documented limit; the damaged range is logged at start.
        assert_eq!(offsets.fetch("lost", None).unwrap(), []);
        assert_eq!(offsets.fetch("kept", None).unwrap()[0].offset, 2);
    }

    #[test]
    fn compaction_waits_while_offsets_are_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        log_with_a_damaged_commit(dir.path());
        let offsets = GroupOffsets::open(dir.path(), 8 << 10).unwrap();
        for round in 0..500u64 {
            offsets.commit("busy", &one("u", 0, round), 10).unwrap();
        }
        assert_eq!(offsets.compactions(), 0);
        assert!(offsets.size_bytes() > 16 << 10);

        offsets.commit("g1", &one("t", 0, 9), 11).unwrap();
        offsets.commit("g2", &one("t", 0, 9), 11).unwrap();
        for round in 0..500u64 {
            offsets.commit("busy", &one("u", 0, round), 12).unwrap();
        }
        assert!(offsets.compactions() > 0);
        offsets.close().unwrap();
        let offsets = GroupOffsets::open(dir.path(), 8 << 10).unwrap();
        assert_eq!(offsets.fetch("g1", None).unwrap()[0].offset, 9);
        assert_eq!(offsets.fetch("g2", None).unwrap().len(), 2);
        assert_eq!(offsets.fetch("busy", None).unwrap()[0].offset, 499);
    }

    #[test]
    fn a_commit_whose_value_does_not_decode_puts_only_its_key_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
            offsets.commit("g", &one("t", 0, 4), 1).unwrap();
            offsets.commit("other", &one("t", 0, 2), 1).unwrap();
            // A record with a readable key and a value of an unknown version, CRC intact.
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(
                2,
                Some(&encode_key("g", "t", 0)),
                Some(&[9u8, 9, 9][..]),
                &[],
            );
            offsets.append(&builder).unwrap();
            offsets.close().unwrap();
        }
        let offsets = GroupOffsets::open(dir.path(), 1 << 20).unwrap();
        let err = offsets.fetch("g", None).unwrap_err().to_string();
        assert!(err.contains("offsets 2 to 2"), "{err}");
        assert!(err.contains("last readable commit: offset 4"), "{err}");
        // The key was readable, so no other key is in doubt.
        assert_eq!(offsets.fetch("other", None).unwrap()[0].offset, 2);
    }
}
