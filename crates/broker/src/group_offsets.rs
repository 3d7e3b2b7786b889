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
//! Invariants: records reach the log in the order their values reach the in-memory map (both
//! happen under the writer lock), so the replayed map equals the map before a restart; a
//! commit is acknowledged only after its record is fsynced. The writer lock is held during
//! appends and compaction, only on blocking threads; the map lock is held only for in-memory
//! work. This module does not check offsets against topic logs; the broker does that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{FlushPolicy, LogConfig, MIN_SEGMENT_BYTES, PartitionLog};
use tracing::{debug, info};

use crate::error::{BrokerError, Result};

/// Scope named in errors about the offsets log.
const SCOPE: &str = "the group offsets log";

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
    map: RwLock<BTreeMap<OffsetKey, CommittedValue>>,
    compact_bytes: u64,
    compactions: AtomicU64,
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
        if !report.clean_shutdown {
            info!(
                log_start = report.log_start_offset,
                log_end = report.log_end_offset,
                "group offsets log recovered after unclean shutdown"
            );
        }
        let map = replay(&log)?;
        let size = log.size_bytes();
        debug!(keys = map.len(), bytes = size, "group offsets loaded");
        Ok(GroupOffsets {
            log,
            writer: Mutex::new(WriterState {
                size_after_compaction: size,
            }),
            map: RwLock::new(map),
            compact_bytes,
            compactions: AtomicU64::new(0),
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
                map.insert(
                    (group.to_owned(), topic.clone(), *partition),
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
        let keys: Vec<OffsetKey> = self
            .map
            .read()
            .keys()
            .filter(|(_, topic, _)| doomed(topic))
            .cloned()
            .collect();
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
                map.remove(key);
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
    pub(crate) fn fetch(&self, group: &str, topic: Option<&str>) -> Vec<CommittedOffset> {
        let map = self.map.read();
        let lower = (group.to_owned(), String::new(), 0);
        map.range(lower..)
            .take_while(|((g, _, _), _)| g == group)
            .filter(|((_, t, _), _)| topic.is_none_or(|wanted| wanted == t))
            .map(|((_, t, p), v)| CommittedOffset {
                topic: t.clone(),
                partition: *p,
                offset: v.offset,
                metadata: v.metadata.clone(),
                commit_timestamp_ms: v.commit_timestamp_ms,
            })
            .collect()
    }

    /// Every group with at least one committed offset.
    pub(crate) fn groups(&self) -> Vec<String> {
        let map = self.map.read();
        let groups: BTreeSet<&String> = map.keys().map(|(g, _, _)| g).collect();
        groups.into_iter().cloned().collect()
    }

    /// Topics with at least one committed offset.
    pub(crate) fn topics(&self) -> BTreeSet<String> {
        self.map.read().keys().map(|(_, t, _)| t.clone()).collect()
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
        let snapshot: Vec<(OffsetKey, CommittedValue)> = self
            .map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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

/// Rebuilds the latest value per key from the log.
fn replay(log: &PartitionLog) -> Result<BTreeMap<OffsetKey, CommittedValue>> {
    let mut map = BTreeMap::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log
            .read(offset, 1 << 20)
            .map_err(|e| BrokerError::from_storage_in(SCOPE, e))?;
        if read.is_empty() {
            break;
        }
        let records = read.records().map_err(|e| BrokerError::Corrupt {
            scope: SCOPE.to_owned(),
            detail: format!("batch at or after offset {offset} cannot be decoded: {e}"),
        })?;
        for record in records {
            apply(&mut map, record.offset as u64, record.key, record.value)?;
        }
        offset = read.next_offset();
    }
    Ok(map)
}

fn apply(
    map: &mut BTreeMap<OffsetKey, CommittedValue>,
    offset: u64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Result<()> {
    let corrupt = |what: &str| BrokerError::Corrupt {
        scope: SCOPE.to_owned(),
        detail: format!("record at offset {offset}: {what}"),
    };
    let key = key.ok_or_else(|| corrupt("null key"))?;
    let key = decode_key(&key).ok_or_else(|| corrupt("undecodable key"))?;
    match value {
        None => {
            map.remove(&key);
        }
        Some(value) => {
            let value = decode_value(&value).ok_or_else(|| corrupt("undecodable value"))?;
            map.insert(key, value);
        }
    }
    Ok(())
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

fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
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

fn decode_value(bytes: &[u8]) -> Option<CommittedValue> {
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
        let got = offsets.fetch("g", None);
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
            .map(|g| offsets.fetch(g, None))
            .collect();
        offsets.close().unwrap();
        let reopened = GroupOffsets::open(dir.path(), 8 << 10).unwrap();
        let after: Vec<_> = ["g0", "g1", "g2"]
            .iter()
            .map(|g| reopened.fetch(g, None))
            .collect();
        assert_eq!(before, after);
        assert_eq!(after.iter().map(Vec::len).sum::<usize>(), 12);
    }
}
