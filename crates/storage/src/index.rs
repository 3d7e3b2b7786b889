//! Sparse offset and time indexes of one segment.
//!
//! Each index file opens with a 32-byte header (see `docs/format/segment.md`) followed by
//! fixed-size little-endian entries:
//!
//! - offset index (`.index`): `relative offset: u32, file position: u32`, the start of a batch
//!   whose base offset is `segment base + relative offset`;
//! - time index (`.timeindex`): `max timestamp: i64, relative offset: u32`, meaning "every record
//!   before `segment base + relative offset` has a timestamp of at most `max timestamp`", with
//!   the relative offset a batch start that the offset index also holds (or the segment's end).
//!
//! Invariants: entries are added only for batches after the segment's first, so every valid
//! entry has a relative offset above zero, and a zero entry marks the end of a preallocated file;
//! relative offsets strictly increase; time index timestamps never decrease. An index is only a
//! cache of what the log says: any file that breaks these rules is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::MmapMut;

use crate::error::{Result, StorageError};
use crate::mmap;

/// Magic of an offset index file (`RVOI`).
pub(crate) const OFFSET_INDEX_MAGIC: [u8; 4] = *b"RVOI";
/// Magic of a time index file (`RVTI`).
pub(crate) const TIME_INDEX_MAGIC: [u8; 4] = *b"RVTI";
/// The only index version so far.
pub(crate) const INDEX_VERSION_1: u8 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + 4;
const CRC_OFFSET: usize = VERSION_OFFSET + 4;
const BASE_OFFSET_OFFSET: usize = CRC_OFFSET + 8;
const CREATED_AT_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Length of an index header; entries start here.
pub(crate) const INDEX_HEADER_LEN: usize = CREATED_AT_OFFSET + 8;

/// One kind of index entry.
pub(crate) trait IndexKind {
    /// Bytes per entry.
    const ENTRY_LEN: usize;
    /// File magic.
    const MAGIC: [u8; 4];
    /// The relative offset an entry names; zero marks an unused slot.
    fn relative_offset(entry: &[u8]) -> u32;
}

/// `.index`: relative offset -> file position.
pub(crate) struct OffsetKind;
/// `.timeindex`: max timestamp so far -> relative offset.
pub(crate) struct TimeKind;

impl IndexKind for OffsetKind {
    const ENTRY_LEN: usize = 8;
    const MAGIC: [u8; 4] = OFFSET_INDEX_MAGIC;
    fn relative_offset(entry: &[u8]) -> u32 {
        le_u32(entry, 0)
    }
}

impl IndexKind for TimeKind {
    const ENTRY_LEN: usize = 12;
    const MAGIC: [u8; 4] = TIME_INDEX_MAGIC;
    fn relative_offset(entry: &[u8]) -> u32 {
        le_u32(entry, 8)
    }
}

/// The fields of an index header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub(crate) base_offset: u64,
    pub(crate) created_at_ms: u64,
}

fn encode_header(magic: [u8; 4], header: IndexHeader) -> [u8; INDEX_HEADER_LEN] {
    let mut buf = [0u8; INDEX_HEADER_LEN];
    buf[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&magic);
    buf[VERSION_OFFSET] = INDEX_VERSION_1;
    buf[BASE_OFFSET_OFFSET..][..8].copy_from_slice(&header.base_offset.to_le_bytes());
    buf[CREATED_AT_OFFSET..][..8].copy_from_slice(&header.created_at_ms.to_le_bytes());
    let crc = crc32fast::hash(&buf[CRC_OFFSET + 4..]);
    buf[CRC_OFFSET..][..4].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode_header(magic: [u8; 4], bytes: &[u8]) -> Result<IndexHeader, String> {
    let Some(h) = bytes.get(..INDEX_HEADER_LEN) else {
        return Err(format!(
            "only {} bytes, shorter than the header",
            bytes.len()
        ));
    };
    if h[MAGIC_OFFSET..VERSION_OFFSET] != magic {
        return Err("bad magic".to_string());
    }
    if h[VERSION_OFFSET] != INDEX_VERSION_1 {
        return Err(format!("unknown version {}", h[VERSION_OFFSET]));
    }
    let stored = le_u32(h, CRC_OFFSET);
    let actual = crc32fast::hash(&h[CRC_OFFSET + 4..]);
    if stored != actual {
        return Err(format!(
            "header CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    Ok(IndexHeader {
        base_offset: le_u64(h, BASE_OFFSET_OFFSET),
        created_at_ms: le_u64(h, CREATED_AT_OFFSET),
    })
}

/// Counts the valid entries at the start of `entries`, or says why the index is inconsistent.
fn count_entries<K: IndexKind>(entries: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    let mut last_relative = 0u32;
    let mut last_ts = i64::MIN;
    let mut last_position = 0u32;
    for entry in entries.chunks_exact(K::ENTRY_LEN) {
        let relative = K::relative_offset(entry);
        if relative == 0 {
            break;
        }
        if relative <= last_relative {
            return Err(format!("entry {count} does not increase the offset"));
        }
        if K::ENTRY_LEN == TimeKind::ENTRY_LEN {
            let ts = le_i64(entry, 0);
            if ts < last_ts {
                return Err(format!("entry {count} lowers the maximum timestamp"));
            }
            last_ts = ts;
        } else {
            let position = le_u32(entry, 4);
            if count > 0 && position <= last_position {
                return Err(format!("entry {count} does not increase the file position"));
            }
            last_position = position;
        }
        last_relative = relative;
        count += 1;
    }
    Ok(count)
}

/// Binary search: index of the last entry for which `below(entry)` holds, given that the
/// predicate holds for a prefix of the entries.
fn last_matching(entries: &[u8], entry_len: usize, below: impl Fn(&[u8]) -> bool) -> Option<usize> {
    let count = entries.len() / entry_len;
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(&entries[mid * entry_len..][..entry_len]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// Lookups shared by the active and the sealed form of an index.
pub(crate) trait IndexRead {
    /// The valid entries, back to back.
    fn entries(&self) -> &[u8];

    /// Number of valid entries.
    fn len(&self) -> usize;
}

/// Offset index lookups.
pub(crate) trait OffsetLookup: IndexRead {
    /// The last indexed batch start at or before `relative`: `(relative offset, position)`.
    fn floor(&self, relative: u32) -> Option<(u32, u32)> {
        let entries = self.entries();
        let at = last_matching(entries, OffsetKind::ENTRY_LEN, |e| le_u32(e, 0) <= relative)?;
        let e = &entries[at * OffsetKind::ENTRY_LEN..];
        Some((le_u32(e, 0), le_u32(e, 4)))
    }

    /// The last entry, if any.
    fn last(&self) -> Option<(u32, u32)> {
        let n = self.len();
        let e = self
            .entries()
            .get((n.checked_sub(1)?) * OffsetKind::ENTRY_LEN..)?;
        Some((le_u32(e, 0), le_u32(e, 4)))
    }
}

/// Time index lookups.
pub(crate) trait TimeLookup: IndexRead {
    /// The last entry whose maximum timestamp is below `timestamp`: `(max ts, relative offset)`.
    /// Every record before that relative offset is older than `timestamp`.
    fn last_below(&self, timestamp: i64) -> Option<(i64, u32)> {
        let entries = self.entries();
        let at = last_matching(entries, TimeKind::ENTRY_LEN, |e| le_i64(e, 0) < timestamp)?;
        let e = &entries[at * TimeKind::ENTRY_LEN..];
        Some((le_i64(e, 0), le_u32(e, 8)))
    }

    /// The last entry, if any.
    fn last(&self) -> Option<(i64, u32)> {
        let n = self.len();
        let e = self
            .entries()
            .get((n.checked_sub(1)?) * TimeKind::ENTRY_LEN..)?;
        Some((le_i64(e, 0), le_u32(e, 8)))
    }
}

/// The writable index of the active segment, preallocated and mapped.
pub(crate) struct ActiveIndex<K> {
    path: PathBuf,
    map: MmapMut,
    len: usize,
    capacity: usize,
    _kind: PhantomData<K>,
}

impl<K: IndexKind> ActiveIndex<K> {
    /// Creates a new empty index file of `capacity_bytes`, replacing any file at `path`.
    pub(crate) fn create(path: &Path, header: IndexHeader, capacity_bytes: u64) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StorageError::io("create index", path, e))?;
        file.write_all(&encode_header(K::MAGIC, header))
            .map_err(|e| StorageError::io("write index", path, e))?;
        fill_with_zeros(
            &mut file,
            capacity_bytes.saturating_sub(INDEX_HEADER_LEN as u64),
        )
        .map_err(|e| StorageError::io("preallocate index", path, e))?;
        Self::map(path, &file, 0)
    }

    /// Opens an existing index of an active segment, extending it back to `capacity_bytes`.
    ///
    /// Returns the index and its header, or `Ok(None)` if the file is missing or inconsistent
    /// and must be rebuilt.
    pub(crate) fn open(path: &Path, capacity_bytes: u64) -> Result<Option<(Self, IndexHeader)>> {
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StorageError::io("open index", path, err)),
        };
        let current = file
            .metadata()
            .map_err(|e| StorageError::io("stat index", path, e))?
            .len();
        let mut head = [0u8; INDEX_HEADER_LEN];
        if current < INDEX_HEADER_LEN as u64 {
            return Ok(None);
        }
        std::io::Read::read_exact(&mut file, &mut head)
            .map_err(|e| StorageError::io("read index", path, e))?;
        let Ok(header) = decode_header(K::MAGIC, &head) else {
            return Ok(None);
        };
        if current < capacity_bytes {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::End(0))
                .map_err(|e| StorageError::io("seek index", path, e))?;
            fill_with_zeros(&mut file, capacity_bytes - current)
                .map_err(|e| StorageError::io("preallocate index", path, e))?;
        }
        let mut index = Self::map(path, &file, 0)?;
        match count_entries::<K>(&index.map[INDEX_HEADER_LEN..]) {
            Ok(len) => {
                index.len = len;
                Ok(Some((index, header)))
            }
            Err(_) => Ok(None),
        }
    }

    fn map(path: &Path, file: &File, len: usize) -> Result<Self> {
        let map =
            mmap::map_active_index(file).map_err(|e| StorageError::io("map index", path, e))?;
        let capacity = map.len().saturating_sub(INDEX_HEADER_LEN) / K::ENTRY_LEN;
        Ok(ActiveIndex {
            path: path.to_path_buf(),
            map,
            len,
            capacity,
            _kind: PhantomData,
        })
    }

    /// Whether another entry fits.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Free entry slots.
    pub(crate) fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.len)
    }

    /// Appends one encoded entry. The caller keeps the ordering invariants and checks
    /// [`ActiveIndex::is_full`] first.
    fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), K::ENTRY_LEN);
        if self.is_full() {
            return;
        }
        let at = INDEX_HEADER_LEN + self.len * K::ENTRY_LEN;
        self.map[at..at + K::ENTRY_LEN].copy_from_slice(entry);
        self.len += 1;
    }

    /// Syncs the entries written so far.
    pub(crate) fn sync(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| StorageError::io("fsync index", &self.path, e))
    }

    /// Seals the index: syncs it, trims the file to its entries and maps it read-only.
    pub(crate) fn seal(self) -> Result<SealedIndex<K>> {
        self.sync()?;
        let ActiveIndex { path, map, len, .. } = self;
        drop(map);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("open index", &path, e))?;
        file.set_len((INDEX_HEADER_LEN + len * K::ENTRY_LEN) as u64)
            .map_err(|e| StorageError::io("trim index", &path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("fsync index", &path, e))?;
        SealedIndex::<K>::open(&path, None)?.ok_or_else(|| StorageError::CorruptFile {
            path,
            reason: "index changed while it was being sealed".to_string(),
        })
    }
}

impl ActiveIndex<OffsetKind> {
    /// Records that a batch with base offset `segment base + relative` starts at `position`.
    pub(crate) fn append(&mut self, relative: u32, position: u32) {
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&relative.to_le_bytes());
        entry[4..].copy_from_slice(&position.to_le_bytes());
        self.push(&entry);
    }
}

impl ActiveIndex<TimeKind> {
    /// Records that every record before `segment base + relative` is at most `max_timestamp`.
    pub(crate) fn append(&mut self, max_timestamp: i64, relative: u32) {
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&max_timestamp.to_le_bytes());
        entry[8..].copy_from_slice(&relative.to_le_bytes());
        self.push(&entry);
    }
}

impl<K> IndexRead for ActiveIndex<K>
where
    K: IndexKind,
{
    fn entries(&self) -> &[u8] {
        &self.map[INDEX_HEADER_LEN..INDEX_HEADER_LEN + self.len * K::ENTRY_LEN]
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl OffsetLookup for ActiveIndex<OffsetKind> {}
impl TimeLookup for ActiveIndex<TimeKind> {}

/// The read-only index of a sealed segment.
pub(crate) struct SealedIndex<K> {
    bytes: Bytes,
    len: usize,
    _kind: PhantomData<K>,
}

impl<K: IndexKind> SealedIndex<K> {
    /// Maps a sealed index. `Ok(None)` if it is missing or inconsistent (or, when
    /// `expected_base` is given, names another segment) and must be rebuilt.
    pub(crate) fn open(path: &Path, expected_base: Option<u64>) -> Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StorageError::io("open index", path, err)),
        };
        let bytes = mmap::map_sealed(&file).map_err(|e| StorageError::io("map index", path, e))?;
        let Ok(header) = decode_header(K::MAGIC, &bytes) else {
            return Ok(None);
        };
        if expected_base.is_some_and(|base| base != header.base_offset) {
            return Ok(None);
        }
        let Ok(len) = count_entries::<K>(&bytes[INDEX_HEADER_LEN..]) else {
            return Ok(None);
        };
        Ok(Some(SealedIndex {
            bytes,
            len,
            _kind: PhantomData,
        }))
    }

    /// Writes a complete sealed index from encoded entries and maps it.
    pub(crate) fn write(path: &Path, header: IndexHeader, entries: &[u8]) -> Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StorageError::io("create index", path, e))?;
        file.write_all(&encode_header(K::MAGIC, header))
            .and_then(|()| file.write_all(entries))
            .map_err(|e| StorageError::io("write index", path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("fsync index", path, e))?;
        drop(file);
        Self::open(path, Some(header.base_offset))?.ok_or_else(|| StorageError::CorruptFile {
            path: path.to_path_buf(),
            reason: "index just written does not read back".to_string(),
        })
    }
}

impl<K: IndexKind> IndexRead for SealedIndex<K> {
    fn entries(&self) -> &[u8] {
        &self.bytes[INDEX_HEADER_LEN..INDEX_HEADER_LEN + self.len * K::ENTRY_LEN]
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl OffsetLookup for SealedIndex<OffsetKind> {}
impl TimeLookup for SealedIndex<TimeKind> {}

/// Reads the header of an index file, for the segment's creation time.
pub(crate) fn read_header<K: IndexKind>(path: &Path) -> Option<IndexHeader> {
    let bytes = std::fs::read(path).ok()?;
    decode_header(K::MAGIC, &bytes).ok()
}

/// Encodes an offset index entry (for rebuilding a sealed index in memory).
pub(crate) fn offset_entry(relative: u32, position: u32) -> [u8; 8] {
    let mut entry = [0u8; 8];
    entry[..4].copy_from_slice(&relative.to_le_bytes());
    entry[4..].copy_from_slice(&position.to_le_bytes());
    entry
}

/// Encodes a time index entry (for rebuilding a sealed index in memory).
pub(crate) fn time_entry(max_timestamp: i64, relative: u32) -> [u8; 12] {
    let mut entry = [0u8; 12];
    entry[..8].copy_from_slice(&max_timestamp.to_le_bytes());
    entry[8..].copy_from_slice(&relative.to_le_bytes());
    entry
}

fn fill_with_zeros(file: &mut File, mut remaining: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];
    while remaining > 0 {
        let n = remaining.min(ZEROS.len() as u64) as usize;
        file.write_all(&ZEROS[..n])?;
        remaining -= n as u64;
    }
    Ok(())
}

fn le_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

fn le_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> IndexHeader {
        IndexHeader {
            base_offset: 100,
            created_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn offset_index_floor_finds_the_last_entry_at_or_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = ActiveIndex::<OffsetKind>::create(&path, header(), 4096).unwrap();
        index.append(10, 4100);
        index.append(20, 8200);
        index.append(35, 12300);
        assert_eq!(index.floor(0), None);
        assert_eq!(index.floor(9), None);
        assert_eq!(index.floor(10), Some((10, 4100)));
        assert_eq!(index.floor(34), Some((20, 8200)));
        assert_eq!(index.floor(1000), Some((35, 12300)));

        let sealed = index.seal().unwrap();
        assert_eq!(sealed.len(), 3);
        assert_eq!(sealed.floor(21), Some((20, 8200)));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (INDEX_HEADER_LEN + 24) as u64
        );
    }

    #[test]
    fn time_index_last_below_skips_entries_at_or_above_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = ActiveIndex::<TimeKind>::create(&path, header(), 4096).unwrap();
        index.append(1000, 5);
        index.append(2000, 9);
        index.append(2000, 12);
        index.append(3000, 20);
        assert_eq!(index.last_below(1000), None);
        assert_eq!(index.last_below(1001), Some((1000, 5)));
        assert_eq!(index.last_below(2001), Some((2000, 12)));
        assert_eq!(index.last_below(i64::MAX), Some((3000, 20)));
    }

    #[test]
    fn reopened_active_index_keeps_its_entries_and_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = ActiveIndex::<OffsetKind>::create(&path, header(), 8192).unwrap();
        index.append(1, 100);
        index.append(2, 200);
        index.sync().unwrap();
        drop(index);
        let (index, read) = ActiveIndex::<OffsetKind>::open(&path, 8192)
            .unwrap()
            .unwrap();
        assert_eq!(read, header());
        assert_eq!(index.len(), 2);
        assert_eq!(index.capacity, (8192 - INDEX_HEADER_LEN) / 8);
    }

    #[test]
    fn damaged_header_or_unordered_entries_ask_for_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = ActiveIndex::<OffsetKind>::create(&path, header(), 4096).unwrap();
        index.append(5, 100);
        index.append(3, 200);
        drop(index);
        assert!(
            ActiveIndex::<OffsetKind>::open(&path, 4096)
                .unwrap()
                .is_none()
        );

        let path = dir.path().join("1.index");
        SealedIndex::<OffsetKind>::write(&path, header(), &offset_entry(1, 10)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[BASE_OFFSET_OFFSET] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            SealedIndex::<OffsetKind>::open(&path, Some(100))
                .unwrap()
                .is_none()
        );
    }
}
