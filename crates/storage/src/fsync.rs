//! Every sync that makes a segment or checkpoint durable, and every rename that replaces one:
//! the crate's log files and small files reach the disk only through these functions.
//!
//! Each function takes the length of the file that the caller knows to be wholly written
//! before the sync starts (for a segment, the bytes of whole batches under the log's lock).
//! That is the length the sync makes durable; bytes written concurrently with the sync may or
//! may not be covered, and no caller may count them as durable.
//!
//! With the `fault-injection` feature, each call also tells `power_loss` what it made durable,
//! so a test can build the directory a machine crash would leave. Without the feature these are
//! plain system calls. Index files are not synced through here: they are caches of the log,
//! rebuilt at open whenever they do not fit it (see `index`).

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// [`PartitionLog::start_writeback`](crate::PartitionLog::start_writeback) does nothing until
/// this many bytes were appended since its last call, so slow logs are left to their syncs.
pub const WRITEBACK_CHUNK: u64 = 1 << 20;

/// Write-back is started for whole pages of this size.
pub(crate) const WRITEBACK_PAGE: u64 = 4096;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting for it and without making anything durable (no metadata, no device cache flush).
///
/// See [`PartitionLog::start_writeback`](crate::PartitionLog::start_writeback) for why. A
/// failure here is only a lost hint: the next sync writes the pages anyway, and reports any
/// error then.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "sync_file_range(2) has no safe wrapper in std or the crates we use"
)]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;

    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is borrowed
    // from `file`, which stays open for the whole call, and no memory is passed to the kernel.
    let done = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if done != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "starting write-back failed");
    }
}

/// Elsewhere write-back is left to the operating system.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Syncs a file's data (and the metadata needed to read it back, such as its length).
/// `len` bytes of `path` are durable once this returns.
pub(crate) fn sync_data(file: &File, path: &Path, len: u64) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    let started = std::time::Instant::now();
    file.sync_data()?;
    #[cfg(feature = "fault-injection")]
    crate::power_loss::file_synced(path, len, started);
    #[cfg(not(feature = "fault-injection"))]
    let _ = (path, len);
    Ok(())
}

/// Syncs a file's data and all its metadata. `len` bytes of `path` are durable once this
/// returns.
pub(crate) fn sync_all(file: &File, path: &Path, len: u64) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    let started = std::time::Instant::now();
    file.sync_all()?;
    #[cfg(feature = "fault-injection")]
    crate::power_loss::file_synced(path, len, started);
    #[cfg(not(feature = "fault-injection"))]
    let _ = (path, len);
    Ok(())
}

/// Syncs a directory, so that every creation, rename and removal in it that finished before
/// the call is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    // The names present before the sync starts are the ones it covers.
    #[cfg(feature = "fault-injection")]
    let listing = crate::power_loss::dir_listing(dir);
    #[cfg(feature = "fault-injection")]
    let started = std::time::Instant::now();
    File::open(dir)?.sync_all()?;
    #[cfg(feature = "fault-injection")]
    crate::power_loss::dir_synced(dir, listing, started);
    Ok(())
}

/// Renames `from` over `to`. The new name is durable only after the next [`sync_dir`] of the
/// directory.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    #[cfg(feature = "fault-injection")]
    crate::power_loss::renamed(from, to);
    Ok(())
}
