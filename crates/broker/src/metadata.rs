//! The topic metadata file (`topic.meta`): its codec and its durable replacement.
//!
//! One file per topic, in the topic's directory, holding the name, the partition count and the
//! [`TopicConfig`]. The layout is documented in `docs/format/metadata.md`; every integer is
//! little-endian and the CRC32 (crc32fast) covers every byte after the CRC field. A file is
//! written to a temporary name, fsynced, renamed into place, and its directory fsynced, so a
//! crash leaves either the old file or the new one, never a mix.
//!
//! This module owns the bytes of the file; it does not decide where topic directories live.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::config::{DurabilityPolicy, TopicConfig};

/// File name of a topic's metadata file, inside the topic directory.
pub(crate) const METADATA_FILE: &str = "topic.meta";

/// Magic at the start of a topic metadata file.
pub(crate) const METADATA_MAGIC: [u8; 4] = *b"RVTM";
/// The first (and current) version of the layout.
pub(crate) const METADATA_VERSION_1: u8 = 1;
/// The version written.
pub(crate) const METADATA_VERSION_CURRENT: u8 = METADATA_VERSION_1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + METADATA_MAGIC.len();
const CRC_OFFSET: usize = VERSION_OFFSET + 1;
const BODY_LEN_OFFSET: usize = CRC_OFFSET + 4;
/// Bytes before the body.
pub(crate) const METADATA_HEADER_LEN: usize = BODY_LEN_OFFSET + 4;

/// Marks an unset `Option<u64>` / `Option<Duration>` setting.
const UNSET: u64 = u64::MAX;

const DURABILITY_ALWAYS: u8 = 0;
const DURABILITY_INTERVAL: u8 = 1;
const DURABILITY_OS: u8 = 2;

/// Versions of the metadata layout this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataVersion {
    V1,
}

impl MetadataVersion {
    fn parse(byte: u8) -> Option<Self> {
        match byte {
            METADATA_VERSION_1 => Some(MetadataVersion::V1),
            _ => None,
        }
    }
}

/// Everything stored about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMetadata {
    pub(crate) name: String,
    pub(crate) partitions: u32,
    pub(crate) created_at_ms: u64,
    pub(crate) config: TopicConfig,
}

/// Encodes `meta` as a whole file.
pub(crate) fn encode(meta: &TopicMetadata) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + meta.name.len());
    let config = &meta.config;

    // partitions, created_at_ms
    body.extend_from_slice(&meta.partitions.to_le_bytes());
    body.extend_from_slice(&meta.created_at_ms.to_le_bytes());

    // segment_bytes, max_batch_bytes, max_record_bytes
    body.extend_from_slice(&config.segment_bytes.to_le_bytes());
    body.extend_from_slice(&config.max_batch_bytes.to_le_bytes());
    body.extend_from_slice(&config.max_record_bytes.to_le_bytes());

    // retention_ms, retention_bytes
    let retention_ms = config.retention_age.map_or(UNSET, duration_ms);
    body.extend_from_slice(&retention_ms.to_le_bytes());
    body.extend_from_slice(&config.retention_bytes.unwrap_or(UNSET).to_le_bytes());

    // durability tag and interval
    let (tag, interval_ms) = match config.durability {
        DurabilityPolicy::AlwaysDurable => (DURABILITY_ALWAYS, 0),
        DurabilityPolicy::SyncInterval(every) => (DURABILITY_INTERVAL, duration_ms(every)),
        DurabilityPolicy::OsDecides => (DURABILITY_OS, 0),
    };
    body.push(tag);
    body.extend_from_slice(&interval_ms.to_le_bytes());

    // name
    let name_len = meta.name.len() as u16;
    body.extend_from_slice(&name_len.to_le_bytes());
    body.extend_from_slice(meta.name.as_bytes());

    let body_len = body.len() as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body_len.to_le_bytes());
    crc.update(&body);

    let mut out = Vec::with_capacity(METADATA_HEADER_LEN + body.len());
    out.extend_from_slice(&METADATA_MAGIC);
    out.push(METADATA_VERSION_CURRENT);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a whole metadata file.
///
/// # Errors
///
/// A description of the first check that failed (magic, version, CRC, length, field range).
pub(crate) fn decode(bytes: &[u8]) -> Result<TopicMetadata, String> {
    let Some(header) = bytes.get(..METADATA_HEADER_LEN) else {
        return Err(format!(
            "file is {} bytes, shorter than the {METADATA_HEADER_LEN}-byte header",
            bytes.len()
        ));
    };

    // magic, version
    if header[MAGIC_OFFSET..VERSION_OFFSET] != METADATA_MAGIC {
        return Err("bad magic; not a topic metadata file".to_owned());
    }
    let version = header[VERSION_OFFSET];
    let Some(MetadataVersion::V1) = MetadataVersion::parse(version) else {
        return Err(format!(
            "unsupported version {version}; this build reads version 1"
        ));
    };

    // crc, body length
    let stored_crc = u32::from_le_bytes(le4(&header[CRC_OFFSET..BODY_LEN_OFFSET]));
    let actual_crc = crc32fast::hash(&bytes[BODY_LEN_OFFSET..]);
    if stored_crc != actual_crc {
        return Err(format!(
            "CRC mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
        ));
    }
    let body_len = u32::from_le_bytes(le4(&header[BODY_LEN_OFFSET..METADATA_HEADER_LEN]));
    let body = &bytes[METADATA_HEADER_LEN..];
    if body.len() as u64 != u64::from(body_len) {
        return Err(format!(
            "body is {} bytes but the header says {body_len}",
            body.len()
        ));
    }

    decode_body_v1(body)
}

fn decode_body_v1(body: &[u8]) -> Result<TopicMetadata, String> {
    let mut reader = Reader { rest: body };
    let partitions = reader.u32()?;
    let created_at_ms = reader.u64()?;
    let segment_bytes = reader.u64()?;
    let max_batch_bytes = reader.u32()?;
    let max_record_bytes = reader.u32()?;
    let retention_ms = reader.u64()?;
    let retention_bytes = reader.u64()?;
    let tag = reader.u8()?;
    let interval_ms = reader.u64()?;
    let name_len = usize::from(reader.u16()?);
    let name = reader.take(name_len)?;
    if !reader.rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the name",
            reader.rest.len()
        ));
    }

    if partitions == 0 {
        return Err("partition count is 0".to_owned());
    }
    let durability = match tag {
        DURABILITY_ALWAYS => DurabilityPolicy::AlwaysDurable,
        DURABILITY_INTERVAL => DurabilityPolicy::SyncInterval(Duration::from_millis(interval_ms)),
        DURABILITY_OS => DurabilityPolicy::OsDecides,
        other => return Err(format!("unknown durability policy tag {other}")),
    };
    let name = String::from_utf8(name.to_vec()).map_err(|_| "name is not UTF-8".to_owned())?;
    let config = TopicConfig::default()
        .with_segment_bytes(segment_bytes)
        .with_max_batch_bytes(max_batch_bytes)
        .with_max_record_bytes(max_record_bytes)
        .with_retention_age((retention_ms != UNSET).then(|| Duration::from_millis(retention_ms)))
        .with_retention_bytes((retention_bytes != UNSET).then_some(retention_bytes))
        .with_durability(durability);
    // Ranges only: a topic created before a rule between settings existed stays servable.
    config.validate_ranges().map_err(|err| err.to_string())?;
    Ok(TopicMetadata {
        name,
        partitions,
        created_at_ms,
        config,
    })
}

/// Writes `meta` into `dir` durably: temporary file, fsync, rename, fsync of `dir`.
pub(crate) fn write(dir: &Path, meta: &TopicMetadata) -> std::io::Result<()> {
    let bytes = encode(meta);
    let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(METADATA_FILE))?;
    sync_dir(dir)
}

/// Reads the metadata file in `dir`.
pub(crate) fn read(dir: &Path) -> std::io::Result<Result<TopicMetadata, String>> {
    let bytes = fs::read(dir.join(METADATA_FILE))?;
    Ok(decode(&bytes))
}

/// Fsyncs a directory, making renames and creations in it durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(UNSET - 1)
}

fn le4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0; 4];
    out.copy_from_slice(&bytes[..4]);
    out
}

/// Reads little-endian fields off the front of a slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "body ends early: {n} bytes needed, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(le4(self.take(4)?)))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut out = [0; 8];
        out.copy_from_slice(b);
        Ok(u64::from_le_bytes(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TopicMetadata {
        TopicMetadata {
            name: "orders.v1".to_owned(),
            partitions: 12,
            created_at_ms: 1_700_000_000_000,
            config: TopicConfig::default()
                .with_retention_age(Some(Duration::from_secs(3600)))
                .with_retention_bytes(Some(1 << 30))
                .with_segment_bytes(1 << 20)
                .with_max_record_bytes(1000)
                .with_durability(DurabilityPolicy::OsDecides),
        }
    }

    #[test]
    fn metadata_round_trips() {
        let meta = sample();
        assert_eq!(decode(&encode(&meta)).unwrap(), meta);
        let defaults = TopicMetadata {
            config: TopicConfig::default(),
            ..sample()
        };
        assert_eq!(decode(&encode(&defaults)).unwrap(), defaults);
    }

    #[test]
    fn a_topic_stored_with_a_record_limit_above_its_batch_limit_still_loads() {
        // Creation refuses this pair now; topics created before that must stay servable.
        let meta = TopicMetadata {
            config: TopicConfig::default()
                .with_max_record_bytes(4 << 20)
                .with_max_batch_bytes(1 << 20),
            ..sample()
        };
        assert!(meta.config.validate().is_err());
        assert_eq!(decode(&encode(&meta)).unwrap(), meta);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(decode(&damaged).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn truncated_files_are_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn write_replaces_the_file_durably() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample()).unwrap();
        let mut changed = sample();
        changed.partitions = 3;
        write(dir.path(), &changed).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap(), changed);
        assert!(!dir.path().join("topic.meta.tmp").exists());
    }
}
