//! The only place in Rivulet that maps files into memory, and so the crate's `unsafe` code besides
//! one system call in `fsync` (see `docs/unsafe.md`).
//!
//! A file-backed map is undefined behaviour if the file changes underneath it. Soundness here
//! rests on an ownership rule that the rest of the storage crate keeps:
//!
//! - A **read-only map** is taken only of a sealed segment's log and index files. Nothing ever
//!   writes to, truncates or extends a sealed file in place: retention and truncation unlink the
//!   file (or rename a rewritten copy over it), and the kernel keeps the old inode alive for as
//!   long as a map of it exists, so readers holding a map keep seeing the same bytes.
//! - A **writable map** is taken only of the active segment's two index files, which only the
//!   partition's single writer touches, under the log's write lock. The files are filled with
//!   zeros through `write(2)` before they are mapped, so a store to the map never has to
//!   allocate a block (which on a full disk would raise `SIGBUS`).
//! - The active segment's log file is never mapped; readers use `pread`.

use std::fs::File;
use std::io;

use bytes::Bytes;
use memmap2::{Mmap, MmapMut};

/// Maps a sealed file read-only and returns its bytes.
///
/// An empty file maps to empty `Bytes` (a zero-length map is not portable).
#[expect(
    unsafe_code,
    reason = "mapping a file is unsafe; this module owns every map"
)]
pub(crate) fn map_sealed(file: &File) -> io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: `file` is a sealed segment or index file. Per the module's ownership rule, no code
    // in this process writes to, truncates or extends a sealed file after it is sealed; it is
    // only ever unlinked or replaced by rename, which leaves this map's inode intact.
    let map = unsafe { Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}

/// Maps the active segment's index file for writing.
///
/// The caller must have filled the file to its full length with `write(2)` first.
#[expect(
    unsafe_code,
    reason = "mapping a file is unsafe; this module owns every map"
)]
pub(crate) fn map_active_index(file: &File) -> io::Result<MmapMut> {
    // SAFETY: `file` is an index of the active segment. Only the partition's writer, holding the
    // log's write lock, stores to this map or changes the file's length, and it drops the map
    // before it trims the file when the segment is sealed. Readers only load through the map
    // while holding the read lock, so no load races with a store.
    unsafe { MmapMut::map_mut(file) }
}

/// Maps a segment's log file read-only for a recovery scan.
///
/// The caller must drop the returned bytes before it changes the file's length.
pub(crate) fn map_for_scan(file: &File) -> io::Result<Bytes> {
    // Recovery maps the same way as a sealed segment; the difference is only who owns the file.
    // While a log is opened or truncated, the file being scanned is not yet reachable by any
    // reader or writer, and recovery drops this map before it truncates a torn tail.
    map_sealed(file)
}
