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
