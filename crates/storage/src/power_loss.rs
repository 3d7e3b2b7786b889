//! Simulated power loss, for tests (feature `fault-injection`): a ledger of what the crate's
//! syncs made durable, and the directory a machine crash at a chosen moment could leave.
//!
//! Killing a process loses nothing that reached the page cache, so crash tests that kill the
//! writer say nothing about fsync. A power loss keeps only what was synced. This module keeps,
//! for every file under a watched directory, the length that its last sync made durable (the
//! caller's length of wholly written bytes, see `fsync`), and whether a directory sync has made
//! its name durable. [`DurabilityWatch::power_loss_image`] copies the directory as a crash at
//! that instant could leave it:
//!
//! - a file whose name no directory sync has covered (a segment created since the last one, a
//!   file renamed into place since) is absent;
//! - any other file the crate synced is cut to its last synced length, followed by as much of
//!   the unsynced rest as [`UnsyncedTail`] asks for (nothing, torn bytes, or zeros);
//! - index files are absent or copied as they are in the page cache ([`IndexImage`]): they are
//!   never synced while a segment is active, and recovery must cope with either;
//! - in a directory the crate has synced anything in, every other file is absent (created and
//!   never made durable); elsewhere under the watched root, files the crate does not own (a
//!   broker's topic metadata) are copied as they are.
//!
//! Invariants: the ledger only ever records a length after the sync covering it returned, so an
//! image never holds more than the disk was promised. Hooks do nothing unless a watch exists,
//! and files outside every watched root are never recorded. Watched roots do not overlap.
//!
//! The model is pessimistic in one place a real file system is not: a rename whose directory
//! sync has not happened yet leaves neither the old nor the new file under the target name.
//! TODO(storage): keep the replaced file's durable bytes until the directory sync, so an image
//! can show the old file as a real crash could; meanwhile no test takes an image between a
//! rename and its directory sync (every rename in the crate is followed by one at once).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::segment::{OFFSET_INDEX_EXT, TIME_INDEX_EXT};

/// Number of live watches; the hooks return at once while it is zero.
static WATCHES: AtomicUsize = AtomicUsize::new(0);

static LEDGER: Mutex<Ledger> = parking_lot::const_mutex(Ledger {
    next_id: 0,
    watches: Vec::new(),
});

struct Ledger {
    next_id: u64,
    watches: Vec<Watched>,
}

impl Ledger {
    fn watch_for(&mut self, path: &Path) -> Option<&mut Watched> {
        self.watches.iter_mut().find(|w| path.starts_with(&w.root))
    }
}

/// What the ledger knows under one watched root.
struct Watched {
    id: u64,
    root: PathBuf,
    files: BTreeMap<PathBuf, FileRecord>,
    /// Directories the crate has synced something in: files there that the ledger does not
    /// know were never made durable.
    owned_dirs: BTreeSet<PathBuf>,
    syncs: Vec<SyncRecord>,
}

#[derive(Debug, Clone, Copy)]
struct FileRecord {
    synced_len: u64,
    name_durable: bool,
    /// When the sync that set `synced_len` returned; `None` before any sync.
    synced_at: Option<Instant>,
}

/// One sync seen under a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncRecord {
    /// The file or directory synced.
    pub path: PathBuf,
    /// Bytes of the file made durable; `None` for a directory.
    pub synced_len: Option<u64>,
    /// When the sync was called.
    pub started: Instant,
    /// How long it took.
    pub duration: Duration,
}

/// What a power-loss image does with index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexImage {
    /// Every index file is absent, so recovery rebuilds them all.
    #[default]
    Missing,
    /// Index files are copied as they are in the page cache, possibly ahead of the cut log or
    /// holding a half-written entry.
    AsWritten,
}

/// How much of what was written after a file's last sync a power-loss image keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnsyncedTail {
    /// Nothing: the file ends at its last synced length. The most a crash can lose.
    #[default]
    Dropped,
    /// Up to `keep` bytes of it, as written: write-back that stopped part way, tearing a batch.
    Torn {
        /// Bytes kept after the synced length, at most what was written.
        keep: u64,
    },
    /// The file grew by up to `len` bytes but their data never reached the disk: zeros.
    Zeroed {
        /// Zero bytes after the synced length, at most what was written.
        len: u64,
    },
}

/// How [`DurabilityWatch::power_loss_image`] builds an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImageOptions {
    /// Index files. Default [`IndexImage::Missing`].
    pub indexes: IndexImage,
    /// Unsynced bytes. Default [`UnsyncedTail::Dropped`].
    pub unsynced_tail: UnsyncedTail,
}

impl ImageOptions {
    /// Sets [`ImageOptions::indexes`].
    pub fn with_indexes(mut self, indexes: IndexImage) -> Self {
        self.indexes = indexes;
        self
    }

    /// Sets [`ImageOptions::unsynced_tail`].
    pub fn with_unsynced_tail(mut self, tail: UnsyncedTail) -> Self {
        self.unsynced_tail = tail;
        self
    }
}

/// What a power-loss image did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFate {
    /// A file the crate synced: `kept` bytes of the `written` ones survive, `synced` of them
    /// because a sync covered them.
    Cut {
        /// Length the last sync made durable.
        synced: u64,
        /// Length in the page cache when the image was copied.
        written: u64,
        /// Length in the image.
        kept: u64,
    },
    /// No directory sync covered the file's name: absent.
    NotDurable {
        /// Length in the page cache when the image was copied.
        written: u64,
    },
    /// An index file: absent (`None`) or copied as written.
    Index {
        /// Length in the image.
        kept: Option<u64>,
    },
    /// A file outside the directories the crate syncs in, copied as it is.
    Foreign {
        /// Length copied.
        len: u64,
    },
}

/// A directory as a power loss could leave it, and what became of each file.
#[derive(Debug, Clone)]
pub struct PowerLossImage {
    taken_at: Instant,
    files: Vec<(PathBuf, FileFate)>,
}

impl PowerLossImage {
    /// The moment of the simulated power loss: the ledger's state at this instant decided what
    /// survived. Every sync that returned before it is honoured, and none that started after.
    pub fn taken_at(&self) -> Instant {
        self.taken_at
    }

    /// Every file found under the watched root, by path relative to it, in path order.
    pub fn files(&self) -> &[(PathBuf, FileFate)] {
        &self.files
    }

    /// Bytes written to the page cache that the image does not hold, index files aside.
    pub fn bytes_dropped(&self) -> u64 {
        self.files
            .iter()
            .map(|(_, fate)| match *fate {
                FileFate::Cut { written, kept, .. } => written.saturating_sub(kept),
                FileFate::NotDurable { written } => written,
                FileFate::Index { .. } | FileFate::Foreign { .. } => 0,
            })
            .sum()
    }
}

/// Records what the crate's syncs make durable under one directory, until dropped.
///
/// Start it before opening logs under `root`, with paths spelled the same way (the ledger
/// compares paths, not inodes). Files already under `root` count as durable at their current
/// length. While an image is copied, logs under `root` may append but must not delete, rename
/// or shorten files; an image of a file that shrank below its synced length fails.
///
/// ```
/// use rivulet_format::{BatchBuilder, Compression};
/// use rivulet_storage::{
///     DurabilityWatch, FlushPolicy, ImageOptions, LogConfig, PartitionLog,
/// };
///
/// let dir = tempfile::tempdir()?;
/// let watch = DurabilityWatch::start(dir.path())?;
/// let config = LogConfig::default().with_flush(FlushPolicy::Os);
/// let (log, _) = PartitionLog::open(dir.path(), config.clone())?;
/// let mut batch = BatchBuilder::new(Compression::None);
/// batch.push(0, None, Some(b"unsynced"), &[]);
/// log.append(&mut batch.build()?)?;
///
/// let crashed = tempfile::tempdir()?;
/// watch.power_loss_image(crashed.path(), ImageOptions::default())?;
/// let (after, _) = PartitionLog::open(crashed.path(), config)?;
/// assert_eq!(after.log_end_offset(), 0, "nothing was synced");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DurabilityWatch {
    id: u64,
    root: PathBuf,
}

impl DurabilityWatch {
    /// Starts recording under `root`, which need not exist yet.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] if `root` is inside, or holds, a directory already
    /// watched; an I/O error listing `root`.
    pub fn start(root: impl AsRef<Path>) -> io::Result<DurabilityWatch> {
        let root = root.as_ref().to_path_buf();
        let mut files = BTreeMap::new();
        if root.exists() {
            walk_files(&root, &mut |path, len| {
                files.insert(
                    path,
                    FileRecord {
                        synced_len: len,
                        name_durable: true,
                        synced_at: None,
                    },
                );
            })?;
        }
        let mut ledger = LEDGER.lock();
        if let Some(other) = ledger
            .watches
            .iter()
            .find(|w| w.root.starts_with(&root) || root.starts_with(&w.root))
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} overlaps {}, which is already watched",
                    root.display(),
                    other.root.display()
                ),
            ));
        }
        let id = ledger.next_id;
        ledger.next_id += 1;
        ledger.watches.push(Watched {
            id,
            root: root.clone(),
            files,
            owned_dirs: BTreeSet::new(),
            syncs: Vec::new(),
        });
        WATCHES.fetch_add(1, Ordering::AcqRel);
        Ok(DurabilityWatch { id, root })
    }

    /// The watched directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every sync seen so far, in the order they returned.
    pub fn syncs(&self) -> Vec<SyncRecord> {
        let ledger = LEDGER.lock();
        ledger
            .watches
            .iter()
            .find(|w| w.id == self.id)
            .map(|w| w.syncs.clone())
            .unwrap_or_default()
    }

    /// Copies the watched directory into `dest` as a power loss right now could leave it (see
    /// the module docs for the rules), and returns the moment taken and each file's fate.
    ///
    /// # Errors
    ///
    /// I/O errors reading the watched files or writing `dest`; [`io::ErrorKind::InvalidData`]
    /// if a file became shorter than its synced length before it was copied.
    pub fn power_loss_image(
        &self,
        dest: impl AsRef<Path>,
        options: ImageOptions,
    ) -> io::Result<PowerLossImage> {
        let (files, owned_dirs, taken_at) = {
            let ledger = LEDGER.lock();
            let Some(watched) = ledger.watches.iter().find(|w| w.id == self.id) else {
                return Err(io::Error::other("the watch is no longer registered"));
            };
            (
                watched.files.clone(),
                watched.owned_dirs.clone(),
                Instant::now(),
            )
        };
        let snapshot = Snapshot {
            root: &self.root,
            files: &files,
            owned_dirs: &owned_dirs,
            options,
        };
        let dest = dest.as_ref();
        fs::create_dir_all(dest)?;
        let mut fates = Vec::new();
        if self.root.exists() {
            snapshot.copy_dir(&self.root, dest, &mut fates)?;
        }
        Ok(PowerLossImage {
            taken_at,
            files: fates,
        })
    }
}

impl Drop for DurabilityWatch {
    fn drop(&mut self) {
        let mut ledger = LEDGER.lock();
        let before = ledger.watches.len();
        ledger.watches.retain(|w| w.id != self.id);
        if ledger.watches.len() < before {
            WATCHES.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The ledger's state at the moment of an image, and how to apply it.
struct Snapshot<'a> {
    root: &'a Path,
    files: &'a BTreeMap<PathBuf, FileRecord>,
    owned_dirs: &'a BTreeSet<PathBuf>,
    options: ImageOptions,
}

impl Snapshot<'_> {
    fn copy_dir(
        &self,
        src: &Path,
        dest: &Path,
        fates: &mut Vec<(PathBuf, FileFate)>,
    ) -> io::Result<()> {
        let mut entries = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let target = dest.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                fs::create_dir_all(&target)?;
                self.copy_dir(&path, &target, fates)?;
            } else if kind.is_file() {
                let fate = self.copy_file(&path, &target)?;
                let relative = path.strip_prefix(self.root).unwrap_or(&path).to_path_buf();
                fates.push((relative, fate));
            }
        }
        Ok(())
    }

    fn copy_file(&self, path: &Path, target: &Path) -> io::Result<FileFate> {
        let written = fs::metadata(path)?.len();
        if is_index(path) {
            return Ok(match self.options.indexes {
                IndexImage::Missing => FileFate::Index { kept: None },
                IndexImage::AsWritten => FileFate::Index {
                    kept: Some(fs::copy(path, target)?),
                },
            });
        }
        let Some(record) = self.files.get(path) else {
            let owned = path.parent().is_some_and(|p| self.owned_dirs.contains(p));
            if owned {
                return Ok(FileFate::NotDurable { written });
            }
            return Ok(FileFate::Foreign {
                len: fs::copy(path, target)?,
            });
        };
        if !record.name_durable {
            return Ok(FileFate::NotDurable { written });
        }
        let synced = record.synced_len;
        if written < synced {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {written} bytes, shorter than the {synced} its last sync made \
                     durable; it changed while the image was taken",
                    path.display()
                ),
            ));
        }
        let unsynced = written - synced;
        let (tail, zeros) = match self.options.unsynced_tail {
            UnsyncedTail::Dropped => (0, 0),
            UnsyncedTail::Torn { keep } => (keep.min(unsynced), 0),
            UnsyncedTail::Zeroed { len } => (0, len.min(unsynced)),
        };
        let mut out = File::create(target)?;
        let copied = io::copy(&mut File::open(path)?.take(synced + tail), &mut out)?;
        if copied != synced + tail {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} ended after {copied} bytes while {} were being copied",
                    path.display(),
                    synced + tail
                ),
            ));
        }
        out.write_all(&vec![0u8; zeros as usize])?;
        Ok(FileFate::Cut {
            synced,
            written,
            kept: synced + tail + zeros,
        })
    }
}

fn is_index(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == OFFSET_INDEX_EXT || ext == TIME_INDEX_EXT)
}

/// Calls `found` with every file under `dir` and its length.
fn walk_files(dir: &Path, found: &mut dyn FnMut(PathBuf, u64)) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_files(&entry.path(), found)?;
        } else if kind.is_file() {
            found(entry.path(), entry.metadata()?.len());
        }
    }
    Ok(())
}

/// `fsync` hook: a sync of `path` covering `len` bytes, called at `started`, returned.
pub(crate) fn file_synced(path: &Path, len: u64, started: Instant) {
    if WATCHES.load(Ordering::Acquire) == 0 {
        return;
    }
    let duration = started.elapsed();
    let mut ledger = LEDGER.lock();
    let Some(watched) = ledger.watch_for(path) else {
        return;
    };
    let record = watched
        .files
        .entry(path.to_path_buf())
        .or_insert(FileRecord {
            synced_len: 0,
            name_durable: false,
            synced_at: None,
        });
    // A sync makes durable everything written before it started. Two syncs of one file can
    // overlap (a flush of an earlier length still running when a roll syncs a longer one):
    // the one returning last then knows no less than the other, so the length only grows. A
    // sync that started after the last one returned sees the file as it is, truncations too.
    let returned = started + duration;
    let overlapped = record.synced_at.is_some_and(|at| started < at);
    record.synced_len = if overlapped {
        record.synced_len.max(len)
    } else {
        len
    };
    record.synced_at = Some(record.synced_at.map_or(returned, |at| at.max(returned)));
    if let Some(parent) = path.parent() {
        watched.owned_dirs.insert(parent.to_path_buf());
    }
    watched.syncs.push(SyncRecord {
        path: path.to_path_buf(),
        synced_len: Some(len),
        started,
        duration,
    });
}

/// `fsync` hook, before a directory sync: the files in `dir` now, if it is watched.
pub(crate) fn dir_listing(dir: &Path) -> Option<Vec<PathBuf>> {
    if WATCHES.load(Ordering::Acquire) == 0 || LEDGER.lock().watch_for(dir).is_none() {
        return None;
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        if entry.file_type().ok()?.is_file() {
            names.push(entry.path());
        }
    }
    Some(names)
}

/// `fsync` hook, after a directory sync: every name in `listing` is durable, and so is the
/// removal of every durable name missing from it.
pub(crate) fn dir_synced(dir: &Path, listing: Option<Vec<PathBuf>>, started: Instant) {
    let Some(listing) = listing else {
        return;
    };
    let duration = started.elapsed();
    let mut ledger = LEDGER.lock();
    let Some(watched) = ledger.watch_for(dir) else {
        return;
    };
    let present: BTreeSet<&PathBuf> = listing.iter().collect();
    // A name not durable yet and missing from the listing was created after it was taken.
    watched.files.retain(|path, record| {
        path.parent() != Some(dir) || present.contains(path) || !record.name_durable
    });
    for path in &listing {
        watched
            .files
            .entry(path.clone())
            .or_insert(FileRecord {
                synced_len: 0,
                name_durable: false,
                synced_at: None,
            })
            .name_durable = true;
    }
    watched.owned_dirs.insert(dir.to_path_buf());
    watched.syncs.push(SyncRecord {
        path: dir.to_path_buf(),
        synced_len: None,
        started,
        duration,
    });
}

/// `fsync` hook: `from` was renamed over `to`. Its synced bytes move with it; the new name is
/// not durable until the directory is synced, and the file it replaced is gone.
pub(crate) fn renamed(from: &Path, to: &Path) {
    if WATCHES.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut ledger = LEDGER.lock();
    let Some(watched) = ledger.watch_for(to) else {
        return;
    };
    let moved = watched.files.remove(from);
    watched.files.insert(
        to.to_path_buf(),
        FileRecord {
            synced_len: moved.map_or(0, |r| r.synced_len),
            name_durable: false,
            synced_at: moved.and_then(|r| r.synced_at),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsync;

    fn write(path: &Path, bytes: &[u8]) -> File {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn image(
        watch: &DurabilityWatch,
        options: ImageOptions,
    ) -> (tempfile::TempDir, PowerLossImage) {
        let dest = tempfile::tempdir().unwrap();
        let image = watch.power_loss_image(dest.path(), options).unwrap();
        (dest, image)
    }

    #[test]
    fn a_file_is_absent_until_a_directory_sync_covers_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let path = dir.path().join("a.log");
        let file = write(&path, b"0123456789");
        fsync::sync_data(&file, &path, 10).unwrap();

        let (dest, _) = image(&watch, ImageOptions::default());
        assert!(!dest.path().join("a.log").exists());

        fsync::sync_dir(dir.path()).unwrap();
        let (dest, _) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap(), b"0123456789");
    }

    #[test]
    fn a_file_keeps_only_what_its_last_sync_covered() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let path = dir.path().join("a.log");
        let file = write(&path, b"synced");
        fsync::sync_dir(dir.path()).unwrap();
        fsync::sync_data(&file, &path, 6).unwrap();
        drop(write(&path, b"-unsynced"));

        let (dest, image) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap(), b"synced");
        assert_eq!(image.bytes_dropped(), 9);
        assert_eq!(
            image.files(),
            [(
                PathBuf::from("a.log"),
                FileFate::Cut {
                    synced: 6,
                    written: 15,
                    kept: 6
                }
            )]
        );
        let syncs = watch.syncs();
        assert_eq!(syncs.len(), 2);
        assert_eq!(syncs[1].synced_len, Some(6));
    }

    #[test]
    fn an_overlapping_shorter_sync_does_not_undo_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let path = dir.path().join("a.log");
        let file = write(&path, b"0123456789abcdefghij");
        fsync::sync_dir(dir.path()).unwrap();

        // A flush of the first 10 bytes starts, a sync of all 20 starts and returns, then the
        // flush returns: both made their bytes durable, so 20 stay.
        let flush_started = Instant::now();
        fsync::sync_data(&file, &path, 20).unwrap();
        file_synced(&path, 10, flush_started);
        let (dest, _) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap().len(), 20);

        // A sync that starts after the others returned sees the file as it is: cut to 5.
        file.set_len(5).unwrap();
        fsync::sync_all(&file, &path, 5).unwrap();
        let (dest, _) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap(), b"01234");
    }

    #[test]
    fn torn_and_zeroed_tails_keep_at_most_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let path = dir.path().join("a.log");
        let file = write(&path, b"abc");
        fsync::sync_dir(dir.path()).unwrap();
        fsync::sync_data(&file, &path, 3).unwrap();
        drop(write(&path, b"defg"));

        let torn = ImageOptions::default().with_unsynced_tail(UnsyncedTail::Torn { keep: 2 });
        let (dest, _) = image(&watch, torn);
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap(), b"abcde");

        let zeroed = ImageOptions::default().with_unsynced_tail(UnsyncedTail::Zeroed { len: 99 });
        let (dest, _) = image(&watch, zeroed);
        assert_eq!(fs::read(dest.path().join("a.log")).unwrap(), b"abc\0\0\0\0");
    }

    #[test]
    fn files_there_when_watching_began_count_as_durable_and_strangers_as_not() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(&dir.path().join("old.log"), b"old"));
        fs::create_dir(dir.path().join("meta")).unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        drop(write(&dir.path().join("old.log"), b"+new"));
        drop(write(&dir.path().join("meta").join("topic.meta"), b"meta"));
        // A sync in the root makes it a directory the crate owns.
        let path = dir.path().join("b.log");
        let file = write(&path, b"b");
        fsync::sync_data(&file, &path, 1).unwrap();
        drop(write(&dir.path().join("stray.tmp"), b"stray"));

        let (dest, _) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("old.log")).unwrap(), b"old");
        assert_eq!(
            fs::read(dest.path().join("meta").join("topic.meta")).unwrap(),
            b"meta"
        );
        assert!(!dest.path().join("b.log").exists());
        assert!(!dest.path().join("stray.tmp").exists());
    }

    #[test]
    fn a_renamed_file_needs_a_directory_sync_and_removals_become_durable_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let (tmp, path) = (dir.path().join("c.tmp"), dir.path().join("c"));
        let file = write(&tmp, b"new");
        fsync::sync_all(&file, &tmp, 3).unwrap();
        fsync::rename(&tmp, &path).unwrap();
        let (dest, _) = image(&watch, ImageOptions::default());
        assert!(!dest.path().join("c").exists());

        fsync::sync_dir(dir.path()).unwrap();
        let (dest, _) = image(&watch, ImageOptions::default());
        assert_eq!(fs::read(dest.path().join("c")).unwrap(), b"new");

        fs::remove_file(&path).unwrap();
        fsync::sync_dir(dir.path()).unwrap();
        drop(write(&path, b"again"));
        let (dest, _) = image(&watch, ImageOptions::default());
        assert!(
            !dest.path().join("c").exists(),
            "a new file under an old name"
        );
    }

    #[test]
    fn index_files_are_absent_or_copied_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        drop(write(
            &dir.path().join("00000000000000000000.index"),
            b"idx",
        ));
        fsync::sync_dir(dir.path()).unwrap();
        let (dest, _) = image(&watch, ImageOptions::default());
        assert!(!dest.path().join("00000000000000000000.index").exists());
        let as_written = ImageOptions::default().with_indexes(IndexImage::AsWritten);
        let (dest, _) = image(&watch, as_written);
        assert_eq!(
            fs::read(dest.path().join("00000000000000000000.index")).unwrap(),
            b"idx"
        );
    }

    #[test]
    fn overlapping_watches_are_refused_and_a_dropped_watch_frees_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DurabilityWatch::start(dir.path()).unwrap();
        let inner = DurabilityWatch::start(dir.path().join("inner")).unwrap_err();
        assert_eq!(inner.kind(), io::ErrorKind::AlreadyExists);
        drop(watch);
        DurabilityWatch::start(dir.path().join("inner")).unwrap();
    }
}
