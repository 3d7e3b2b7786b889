//! Rivulet's small files of its own: the log-start checkpoint and the clean-shutdown marker.
//!
//! Both share one envelope (see `docs/format/segment.md`):
//!
//! ```text
//! 0   magic        [u8; 4]
//! 4   version      u8
//! 5   reserved     [u8; 3]  zero
//! 8   crc32        u32 LE   CRC32 (crc32fast) of every byte after this field
//! 12  reserved     u32      zero
//! 16  payload      u64 LE each
//! ```
//!
//! Files are replaced atomically: written to a temporary name, synced, renamed over the old one,
//! and the directory synced, so a crash leaves either the old file or the new one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::fsync;

/// Magic of the log-start checkpoint (`RVLS`).
pub(crate) const LOG_START_MAGIC: [u8; 4] = *b"RVLS";
/// Magic of the clean-shutdown marker (`RVCL`).
pub(crate) const CLEAN_SHUTDOWN_MAGIC: [u8; 4] = *b"RVCL";
/// The only version of both files so far.
pub(crate) const SMALL_FILE_VERSION_1: u8 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + 4;
const CRC_OFFSET: usize = VERSION_OFFSET + 4;
const PAYLOAD_OFFSET: usize = CRC_OFFSET + 8;

/// File name of the log-start checkpoint inside a partition directory.
pub(crate) const LOG_START_FILE: &str = "log-start.checkpoint";
/// File name of the clean-shutdown marker inside a partition directory.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// Encodes `values` in the envelope.
pub(crate) fn encode(magic: [u8; 4], values: &[u64]) -> Vec<u8> {
    let mut buf = vec![0u8; PAYLOAD_OFFSET + values.len() * 8];
    buf[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&magic);
    buf[VERSION_OFFSET] = SMALL_FILE_VERSION_1;
    for (i, value) in values.iter().enumerate() {
        let at = PAYLOAD_OFFSET + i * 8;
        buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    let crc = crc32fast::hash(&buf[CRC_OFFSET + 4..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Decodes an envelope holding exactly `count` values.
pub(crate) fn decode(magic: [u8; 4], bytes: &[u8], count: usize) -> Result<Vec<u64>, String> {
    if bytes.len() != PAYLOAD_OFFSET + count * 8 {
        return Err(format!(
            "length {} is not the expected {}",
            bytes.len(),
            PAYLOAD_OFFSET + count * 8
        ));
    }
    if bytes[MAGIC_OFFSET..VERSION_OFFSET] != magic {
        return Err("bad magic".to_string());
    }
    if bytes[VERSION_OFFSET] != SMALL_FILE_VERSION_1 {
        return Err(format!("unknown version {}", bytes[VERSION_OFFSET]));
    }
    if bytes[VERSION_OFFSET + 1..CRC_OFFSET]
        .iter()
        .any(|&b| b != 0)
    {
        return Err("reserved header bytes are not zero".to_string());
    }
    let stored = u32::from_le_bytes([
        bytes[CRC_OFFSET],
        bytes[CRC_OFFSET + 1],
        bytes[CRC_OFFSET + 2],
        bytes[CRC_OFFSET + 3],
    ]);
    let actual = crc32fast::hash(&bytes[CRC_OFFSET + 4..]);
    if stored != actual {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    Ok(bytes[PAYLOAD_OFFSET..]
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}

/// Reads and decodes `dir/name`; `Ok(None)` if it does not exist.
pub(crate) fn read(
    dir: &Path,
    name: &str,
    magic: [u8; 4],
    count: usize,
) -> Result<Option<Vec<u64>>> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(StorageError::io("read", path, err)),
    };
    decode(magic, &bytes, count)
        .map(Some)
        .map_err(|reason| StorageError::CorruptFile { path, reason })
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    fsync::sync_all(&file, &tmp, bytes.len() as u64)
        .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    drop(file);
    fsync::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &path, e))?;
    sync_dir(dir)
}

/// Removes `dir/name` if present and syncs the directory.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(StorageError::io("remove", path, err)),
    }
}

/// Syncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fsync::sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let bytes = encode(LOG_START_MAGIC, &[7, u64::MAX]);
        assert_eq!(
            decode(LOG_START_MAGIC, &bytes, 2).unwrap(),
            vec![7, u64::MAX]
        );
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let bytes = encode(CLEAN_SHUTDOWN_MAGIC, &[1, 2, 3]);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    decode(CLEAN_SHUTDOWN_MAGIC, &damaged, 3).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn wrong_magic_and_length_are_refused() {
        let bytes = encode(LOG_START_MAGIC, &[1]);
        assert!(decode(CLEAN_SHUTDOWN_MAGIC, &bytes, 1).is_err());
        assert!(decode(LOG_START_MAGIC, &bytes[..bytes.len() - 1], 1).is_err());
        assert!(decode(LOG_START_MAGIC, &bytes, 2).is_err());
    }
}
