//! [`Broker`]: the single-node system behind the network layer. This module owns the data
//! directory, the set of live topics, the background task, start-up and shutdown; produce,
//! fetch and group offsets add their `impl Broker` blocks in their own modules.
//!
//! Data directory layout:
//!
//! ```text
//! <data>/topics/<name>/topic.meta     topic metadata (docs/format/metadata.md)
//! <data>/topics/<name>/<partition>/   one storage log per partition (docs/format/segment.md)
//! <data>/internal/offsets/            the group offsets log (docs/format/group-offsets.md)
//! <data>/staging/                     topics being created; emptied at start
//! <data>/trash/                       topics being deleted; emptied at start
//! <data>/lock                         locked (flock) by the broker that owns the directory
//! ```
//!
//! One broker per data directory: [`Broker::open`] takes an exclusive lock on `lock` and holds
//! it until the broker is dropped (the operating system releases it when the process dies), so
//! a second process on the same directory is refused instead of overwriting the first's
//! records.
//!
//! A topic becomes visible on disk in one rename (from `staging/` into `topics/`) and
//! disappears in one rename (into `trash/`), each followed by an fsync of `topics/`, so a crash
//! never leaves a half-created or half-deleted topic behind.
//!
//! A topic directory that start-up cannot load (its metadata file is missing, unreadable or
//! damaged, a partition directory is missing, or a partition log reports damage on open) does
//! not stop the broker: the topic is kept aside as *damaged*, with what is wrong. It is listed,
//! its name stays taken, every other operation on it fails with
//! [`BrokerError::TopicDamaged`], and deleting it is the one change allowed. Nothing in its
//! directory is written, and its committed offsets are kept. The metadata is not rebuilt from
//! the partition directories: the settings (retention, size limits, durability) and the
//! creation time are stored nowhere else, so a rebuilt file would silently change the topic.
//!
//! Storage calls block, so they run on tokio's blocking pool (`spawn_blocking`) rather than on
//! a thread per partition: a broker may hold 10 000 partitions, most of them idle, and a thread
//! each would cost memory and scheduling for nothing, while the pool grows only with the
//! requests actually running. Appends to different partitions then proceed in parallel, and
//! concurrent durable appends to one partition share fsyncs through the storage engine's group
//! commit. The produce byte bound (see `admission`) also bounds how many blocking threads
//! produce can occupy. No `parking_lot` lock is held across an `.await`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rivulet_storage::{PartitionLog, StorageError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::admission::Admission;
use crate::config::{BrokerConfig, DurabilityPolicy, TopicConfig};
use crate::error::{BrokerError, Result};
use crate::group_offsets::GroupOffsets;
use crate::membership::GroupMembers;
use crate::metadata::{self, METADATA_FILE, TopicMetadata};
use crate::topic::{Partition, Topic};
use crate::topic_name::{collision_key, validate_topic_name, validate_user_topic_name};

/// The broker: topics, produce, fetch, offsets. See the crate docs for an overview.
///
/// Methods take `&self`; share a broker between tasks with `Arc<Broker>`. Every method must be
/// called from within a tokio runtime. Call [`Broker::shutdown`] for a clean stop; dropping a
/// broker without it is like a crash (everything acknowledged as durable is kept).
pub struct Broker {
    pub(crate) shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// State shared with the background task.
pub(crate) struct Shared {
    /// The data directory's lock, held until shutdown has closed every log (or the broker is
    /// dropped).
    lock: fs::File,
    pub(crate) config: BrokerConfig,
    pub(crate) layout: Layout,
    pub(crate) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Topics found on disk at start that cannot be served, by name, with what is wrong
    /// (without file paths). Never in `topics` at the same time.
    damaged: RwLock<BTreeMap<String, String>>,
    /// Serialises topic creation and deletion.
    admin: tokio::sync::Mutex<()>,
    pub(crate) offsets: RwLock<Option<Arc<GroupOffsets>>>,
    pub(crate) admission: Admission,
    pub(crate) metrics: Counters,
    /// Consumer-group membership, by group name; a group with no members has no entry.
    pub(crate) groups: Mutex<BTreeMap<String, Arc<Mutex<GroupMembers>>>>,
}

/// Paths inside the data directory.
pub(crate) struct Layout {
    topics: PathBuf,
    staging: PathBuf,
    trash: PathBuf,
    offsets: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Self {
        Layout {
            topics: root.join("topics"),
            staging: root.join("staging"),
            trash: root.join("trash"),
            offsets: root.join("internal").join("offsets"),
        }
    }

    fn topic_dir(&self, name: &str) -> PathBuf {
        self.topics.join(name)
    }
}

/// Running totals, exposed through [`Broker::metrics`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) fsyncs: AtomicU64,
    pub(crate) records_appended: AtomicU64,
    pub(crate) bytes_appended: AtomicU64,
    pub(crate) busy_rejections: AtomicU64,
}

/// A snapshot of the broker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerMetrics {
    /// fsyncs of topic partitions that advanced a durable offset. Concurrent durable produces
    /// that share one fsync count once.
    pub fsyncs: u64,
    /// Records appended to topic partitions since start.
    pub records_appended: u64,
    /// Bytes of record batches appended since start.
    pub bytes_appended: u64,
    /// Produce requests refused with [`BrokerError::Busy`].
    pub busy_rejections: u64,
    /// Produce bytes in flight now.
    pub in_flight_bytes: u64,
    /// Compactions of the group offsets log since start.
    pub offsets_compactions: u64,
    /// Bytes of group offsets log on disk.
    pub offsets_log_bytes: u64,
}

/// One partition of [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Offset the next record will get.
    pub log_end_offset: u64,
    /// Every offset below this is fsynced.
    pub durable_offset: u64,
    /// Bytes of log on disk.
    pub size_bytes: u64,
}

/// What [`Broker::describe_topic`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Its settings.
    pub config: TopicConfig,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Each partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

impl Broker {
    /// Opens the broker on `config.data_dir`, creating it if needed: reloads every topic and
    /// every committed offset, recovering logs after an unclean stop, and starts the background
    /// task that syncs interval-policy topics and applies retention.
    ///
    /// Damage does not stop the start: a topic that cannot be loaded is kept aside as damaged
    /// (see [`BrokerError::TopicDamaged`]), and the offsets log is replayed around any range
    /// it cannot read, leaving the offsets that range may have superseded in doubt (see
    /// [`BrokerError::CommitsInDoubt`]). Both are logged with `error!`.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidConfig`]; I/O errors on the data directory, a partition log or
    /// the offsets log, and running out of file descriptors or memory.
    pub async fn open(config: BrokerConfig) -> Result<Broker> {
        config.validate()?;
        let layout = Layout::new(&config.data_dir);
        let compact_bytes = config.offsets_compact_bytes;
        let data_dir = config.data_dir.clone();
        let (lock, loaded, offsets, layout) = blocking(move || {
            let lock = lock_data_dir(&data_dir)?;
            prepare_dirs(&layout)?;
            let loaded = load_topics(&layout)?;
            let offsets = GroupOffsets::open(&layout.offsets, compact_bytes)?;
            // A damaged topic still exists: its committed offsets are kept.
            let stale: Vec<String> = offsets
                .topics()
                .into_iter()
                .filter(|t| !loaded.topics.contains_key(t) && !loaded.damaged.contains_key(t))
                .collect();
            if !stale.is_empty() {
                // A topic deletion was interrupted after its directory went away.
                offsets.remove_topics(|t| stale.iter().any(|s| s == t), now_ms())?;
            }
            Ok((lock, loaded, offsets, layout))
        })
        .await?;
        info!(
            data_dir = %config.data_dir.display(),
            topics = loaded.topics.len(),
            damaged_topics = loaded.damaged.len(),
            "broker opened"
        );

        let shared = Arc::new(Shared {
            lock,
            admission: Admission::new(config.max_in_flight_bytes, config.busy_retry_after),
            config,
            layout,
            topics: RwLock::new(loaded.topics),
            damaged: RwLock::new(loaded.damaged),
            admin: tokio::sync::Mutex::new(()),
            offsets: RwLock::new(Some(Arc::new(offsets))),
            metrics: Counters::default(),
            groups: Mutex::new(BTreeMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let background = tokio::spawn(background_task(Arc::clone(&shared), stop_rx));
        Ok(Broker {
            shared,
            stop,
            background: Mutex::new(Some(background)),
        })
    }

    /// Creates a topic with `partitions` partitions.
    ///
    /// The name must be 1 to [`crate::MAX_TOPIC_NAME_LEN`] bytes of `A-Z a-z 0-9 . _ -`, not
    /// `.` or `..`, and not start with `__`; it must not collide with an existing name ignoring
    /// ASCII case and treating `.` and `_` alike. The partition count must be between 1 and
    /// [`BrokerConfig::max_partitions`]. Everything is checked before any file is created, and
    /// the topic appears on disk atomically.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidTopicName`], [`BrokerError::InvalidPartitionCount`],
    /// [`BrokerError::InvalidConfig`], [`BrokerError::TopicExists`],
    /// [`BrokerError::DiskFull`], [`BrokerError::ShuttingDown`].
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<()> {
        validate_user_topic_name(name)?;
        let max = self.shared.config.max_partitions;
        if partitions == 0 || partitions > max {
            return Err(BrokerError::InvalidPartitionCount {
                topic: name.to_owned(),
                count: partitions,
                max,
            });
        }
        config.validate()?;
        let _ticket = self.shared.admission.admit(0)?;
        let _admin = self.shared.admin.lock().await;
        if let Some(existing) = self.colliding_topic(name) {
            return Err(BrokerError::TopicExists {
                topic: name.to_owned(),
                existing,
            });
        }

        let meta = TopicMetadata {
            name: name.to_owned(),
            partitions,
            created_at_ms: now_ms() as u64,
            config,
        };
        let shared = Arc::clone(&self.shared);
        let topic = blocking(move || create_on_disk(&shared.layout, meta)).await?;
        self.shared
            .topics
            .write()
            .insert(name.to_owned(), Arc::new(topic));
        info!(topic = name, partitions, "topic created");
        Ok(())
    }

    /// Deletes a topic: its data is removed from disk, its committed offsets are removed, and
    /// fetches waiting on it return [`BrokerError::UnknownTopic`]. A damaged topic (see
    /// [`BrokerError::TopicDamaged`]) is deleted the same way, files and all.
    ///
    /// # Errors
    ///
    /// [`BrokerError::UnknownTopic`]; I/O errors.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let _ticket = self.shared.admission.admit(0)?;
        let _admin = self.shared.admin.lock().await;
        let removed = self.shared.topics.write().remove(name);
        let Some(topic) = removed else {
            return self.delete_damaged_topic(name).await;
        };
        for partition in &topic.partitions {
            partition.close_signal();
        }
        let offsets = self.offsets()?;
        let shared = Arc::clone(&self.shared);
        let owned = name.to_owned();
        blocking(move || {
            // Retiring a log waits for its running file operations and stops new ones, so
            // nothing of this topic creates or removes files by path once its directory moves
            // away and the name may be reused. Requests still running get `UnknownTopic`.
            for partition in &topic.partitions {
                partition.log.retire();
            }
            remove_topic_files(&shared.layout, &owned)?;
            offsets.remove_topics(|t| t == owned, now_ms())
        })
        .await
        .inspect_err(|err| self.note_failed_deletion(name, err))?;
        info!(topic = name, "topic deleted");
        Ok(())
    }

    /// After a deletion failed: if the topic's directory is still in place, keeps the name
    /// taken as a damaged topic (its logs are retired), so that it is listed, can be deleted
    /// again, and is not created anew over files that would come back at the next start.
    fn note_failed_deletion(&self, name: &str, err: &BrokerError) {
        if self.shared.layout.topic_dir(name).exists() {
            error!(topic = name, error = %err, "topic deletion failed; its files are still in place");
            self.shared.damaged.write().insert(
                name.to_owned(),
                format!("its deletion failed ({err}); delete it again, or restart the server"),
            );
        }
    }

    /// Deletes a topic kept aside as damaged; the caller holds the admin lock.
    async fn delete_damaged_topic(&self, name: &str) -> Result<()> {
        if !self.shared.damaged.read().contains_key(name) {
            return Err(BrokerError::UnknownTopic {
                topic: name.to_owned(),
            });
        }
        let offsets = self.offsets()?;
        let shared = Arc::clone(&self.shared);
        let owned = name.to_owned();
        self.shared.damaged.write().remove(name);
        blocking(move || {
            remove_topic_files(&shared.layout, &owned)?;
            offsets.remove_topics(|t| t == owned, now_ms())
        })
        .await
        .inspect_err(|err| self.note_failed_deletion(name, err))?;
        info!(topic = name, "damaged topic deleted");
        Ok(())
    }

    /// Names of all topics, sorted, damaged ones included (see
    /// [`BrokerError::TopicDamaged`]). Internal topics are not listed.
    pub fn list_topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.topics.read().keys().cloned().collect();
        names.extend(self.shared.damaged.read().keys().cloned());
        names.sort();
        names
    }

    /// A topic's settings and, per partition, its offsets, durable offset and size.
    ///
    /// # Errors
    ///
    /// [`BrokerError::UnknownTopic`]; [`BrokerError::TopicDamaged`] for a topic whose files
    /// could not be loaded at start.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let topic = self.topic(name)?;
        let partitions = topic
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.index,
                log_start_offset: p.log.log_start_offset(),
                log_end_offset: p.log.log_end_offset(),
                durable_offset: p.log.durable_offset(),
                size_bytes: p.log.size_bytes(),
            })
            .collect();
        Ok(TopicDescription {
            name: topic.name.to_string(),
            config: topic.config.clone(),
            created_at_ms: topic.created_at_ms,
            partitions,
        })
    }

    /// The partition Kafka's default partitioner picks for `key` in `topic`.
    ///
    /// # Errors
    ///
    /// [`BrokerError::UnknownTopic`].
    pub fn partition_for_key(&self, topic: &str, key: &[u8]) -> Result<u32> {
        Ok(self.topic(topic)?.partition_for_key(key))
    }

    /// Applies every topic's retention settings now, instead of waiting for the background
    /// task. Returns how many segments were deleted.
    ///
    /// # Errors
    ///
    /// The first storage error met; other partitions are still processed.
    pub async fn enforce_retention(&self) -> Result<usize> {
        let _ticket = self.shared.admission.admit(0)?;
        let shared = Arc::clone(&self.shared);
        blocking(move || retention_pass(&shared)).await
    }

    /// The broker's counters.
    pub fn metrics(&self) -> BrokerMetrics {
        let m = &self.shared.metrics;
        let (offsets_compactions, offsets_log_bytes) = self
            .shared
            .offsets
            .read()
            .as_ref()
            .map_or((0, 0), |o| (o.compactions(), o.size_bytes()));
        BrokerMetrics {
            fsyncs: m.fsyncs.load(Ordering::Relaxed),
            records_appended: m.records_appended.load(Ordering::Relaxed),
            bytes_appended: m.bytes_appended.load(Ordering::Relaxed),
            busy_rejections: m.busy_rejections.load(Ordering::Relaxed),
            in_flight_bytes: self.shared.admission.in_flight_bytes(),
            offsets_compactions,
            offsets_log_bytes,
        }
    }

    /// Stops the broker cleanly: refuses new requests, wakes waiting fetches (they return what
    /// they have), waits for running requests, stops the background task, then syncs and
    /// closes every log so the next start needs no recovery scan. Calling it twice is harmless.
    ///
    /// # Errors
    ///
    /// The first error closing a log; the others are still closed, and the next start recovers
    /// any log not closed cleanly.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.admission.close();
        let partitions: Vec<Arc<Partition>> = self
            .shared
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        for partition in &partitions {
            partition.close_signal();
        }
        drop(partitions);
        self.shared.admission.drained().await;

        let _ = self.stop.send(true);
        let background = self.background.lock().take();
        if let Some(handle) = background
            && let Err(err) = handle.await
        {
            warn!(error = %err, "background task ended abnormally");
        }

        let topics = std::mem::take(&mut *self.shared.topics.write());
        let offsets = self.shared.offsets.write().take();
        let closed = blocking(move || close_all(topics, offsets)).await;
        // Every log is closed (or dropped): another broker may have the directory now.
        if let Err(err) = self.shared.lock.unlock() {
            warn!(error = %err, "could not release the data directory's lock");
        }
        closed?;
        info!("broker stopped");
        Ok(())
    }

    /// The live topic `name`; every operation on a topic goes through here (or
    /// [`Broker::partition`]), so a damaged topic is refused the same way everywhere.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(topic) = self.shared.topics.read().get(name) {
            return Ok(Arc::clone(topic));
        }
        match self.shared.damaged.read().get(name) {
            Some(detail) => Err(BrokerError::TopicDamaged {
                topic: name.to_owned(),
                detail: detail.clone(),
            }),
            None => Err(BrokerError::UnknownTopic {
                topic: name.to_owned(),
            }),
        }
    }

    pub(crate) fn partition(&self, name: &str, partition: u32) -> Result<Arc<Partition>> {
        let topic = self.topic(name)?;
        topic
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: name.to_owned(),
                partition,
                partitions: topic.partition_count(),
            })
    }

    pub(crate) fn offsets(&self) -> Result<Arc<GroupOffsets>> {
        self.shared
            .offsets
            .read()
            .clone()
            .ok_or(BrokerError::ShuttingDown)
    }

    /// An existing topic, live or damaged, whose name collides with `name`.
    fn colliding_topic(&self, name: &str) -> Option<String> {
        let key = collision_key(name);
        let collides = |existing: &&String| collision_key(existing) == key;
        let live = self.shared.topics.read().keys().find(collides).cloned();
        live.or_else(|| self.shared.damaged.read().keys().find(collides).cloned())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Without a shutdown the background task would keep the logs open.
        let _ = self.stop.send(true);
    }
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_failed)?
}

/// The error for a blocking task that panicked or was cancelled.
pub(crate) fn join_failed(err: tokio::task::JoinError) -> BrokerError {
    error!(error = %err, "blocking task failed");
    BrokerError::Internal {
        scope: "broker".to_owned(),
        detail: format!("blocking task failed: {err}"),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn topic_scope(name: &str) -> String {
    format!("topic {name:?}")
}

/// Creates the data directory if needed and takes its exclusive lock.
fn lock_data_dir(dir: &Path) -> Result<fs::File> {
    let scope = "the data directory";
    if dir.exists() && !dir.is_dir() {
        return Err(BrokerError::InvalidConfig {
            setting: "data_dir",
            value: dir.display().to_string(),
            rule: "must be a directory, or a path where one can be created; it is a file",
        });
    }
    fs::create_dir_all(dir).map_err(|e| BrokerError::io(scope, "create directory", e))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| BrokerError::io(scope, "open lock file", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(BrokerError::DataDirectoryInUse {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(BrokerError::io(scope, "lock data directory", e)),
    }
}

/// Creates the data directory's folders and clears leftovers of interrupted work.
fn prepare_dirs(layout: &Layout) -> Result<()> {
    let scope = "the data directory";
    for dir in [
        &layout.topics,
        &layout.staging,
        &layout.trash,
        &layout.offsets,
    ] {
        fs::create_dir_all(dir).map_err(|e| BrokerError::io(scope, "create directory", e))?;
    }
    for dir in [&layout.staging, &layout.trash] {
        let entries = fs::read_dir(dir).map_err(|e| BrokerError::io(scope, "list directory", e))?;
        for entry in entries.flatten() {
            debug!(leftover = %entry.path().display(), "removing leftover of interrupted work");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// The topics found under `topics/` at start.
struct LoadedTopics {
    topics: BTreeMap<String, Arc<Topic>>,
    /// Topics that cannot be served, with what is wrong.
    damaged: BTreeMap<String, String>,
}

/// What start-up made of one topic directory.
enum Found {
    Topic(Topic),
    /// The topic cannot be served; what is wrong, without file paths.
    Damaged(String),
}

/// Opens every topic under `topics/`, keeping aside the ones that cannot be loaded.
fn load_topics(layout: &Layout) -> Result<LoadedTopics> {
    let scope = "the data directory";
    let mut loaded = LoadedTopics {
        topics: BTreeMap::new(),
        damaged: BTreeMap::new(),
    };
    let entries =
        fs::read_dir(&layout.topics).map_err(|e| BrokerError::io(scope, "list topics", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BrokerError::io(scope, "list topics", e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            warn!(entry = ?entry.file_name(), "ignoring non-UTF-8 entry in topics directory");
            continue;
        };
        if validate_topic_name(&name).is_err() {
            warn!(entry = %name, "ignoring entry in topics directory that is not a topic name");
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            warn!(entry = %name, "ignoring entry in topics directory that is not a directory");
            continue;
        }
        match load_topic(&entry.path(), &name)? {
            Found::Topic(topic) => {
                loaded.topics.insert(name, Arc::new(topic));
            }
            Found::Damaged(detail) => {
                error!(
                    topic = %name,
                    damage = %detail,
                    "topic cannot be served: it is listed as damaged, every request on it \
                     answers DATA_LOSS, and its files are left as found; restore them from a \
                     backup and restart, or delete the topic"
                );
                loaded.damaged.insert(name, detail);
            }
        }
    }
    Ok(loaded)
}

/// Loads the topic in `dir`, or says why it cannot be served. Reads only: a damaged topic's
/// files are left exactly as found.
///
/// # Errors
///
/// Failures that are not the topic's own: running out of descriptors or memory, and I/O
/// errors opening a partition log (which every topic would meet).
fn load_topic(dir: &Path, name: &str) -> Result<Found> {
    let scope = topic_scope(name);
    let meta = match metadata::read(dir) {
        Ok(Ok(meta)) => meta,
        Ok(Err(detail)) => {
            return Ok(Found::Damaged(format!(
                "its metadata file ({METADATA_FILE}) is damaged: {detail}"
            )));
        }
        Err(err) if is_process_limit(&err) => {
            return Err(BrokerError::io(&scope, "read topic metadata", err));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found::Damaged(format!(
                "its metadata file ({METADATA_FILE}) is missing"
            )));
        }
        Err(err) => {
            return Ok(Found::Damaged(format!(
                "its metadata file ({METADATA_FILE}) cannot be read: {err}"
            )));
        }
    };
    if meta.name != name {
        return Ok(Found::Damaged(format!(
            "its metadata file ({METADATA_FILE}) names topic {:?}",
            meta.name
        )));
    }
    // Opening a log creates a missing directory: the partition would start again at offset 0
    // and hand out offsets it has served before.
    if let Some(missing) = (0..meta.partitions).find(|i| !dir.join(i.to_string()).is_dir()) {
        return Ok(Found::Damaged(format!(
            "partition {missing} of its {} has no directory",
            meta.partitions
        )));
    }
    match open_topic_logs(dir, meta) {
        Ok(topic) => Ok(Found::Topic(topic)),
        Err((index, err)) => match BrokerError::from_storage(name, index, err) {
            BrokerError::Corrupt { detail, .. } => Ok(Found::Damaged(format!(
                "partition {index} cannot be opened: {detail}"
            ))),
            err => Err(err),
        },
    }
}

/// Errors that say the process, not the file, is at fault.
fn is_process_limit(err: &std::io::Error) -> bool {
    // EMFILE (24), ENFILE (23), ENOMEM (12) on Linux.
    err.kind() == std::io::ErrorKind::OutOfMemory
        || matches!(err.raw_os_error(), Some(12) | Some(23) | Some(24))
}

/// A new, unique name in `trash/`: short, so that even a topic name of the longest allowed
/// length can be moved there (a name plus a suffix could pass the file system's limit).
fn trash_path(layout: &Layout) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    layout.trash.join(format!("{stamp:x}-{n}"))
}

/// Moves a topic's directory into `trash/` (durably), then removes it.
fn remove_topic_files(layout: &Layout, name: &str) -> Result<()> {
    let trash = trash_path(layout);
    let scope = topic_scope(name);
    fs::rename(layout.topic_dir(name), &trash)
        .map_err(|e| BrokerError::io(&scope, "move topic to trash", e))?;
    metadata::sync_dir(&layout.topics)
        .map_err(|e| BrokerError::io(&scope, "sync topics directory", e))?;
    if let Err(err) = fs::remove_dir_all(&trash) {
        warn!(topic = %name, error = %err, "could not remove deleted topic's files; they go at next start");
    }
    Ok(())
}

/// Opens the partition logs of a topic whose directory is in place.
fn open_topic(dir: &Path, meta: TopicMetadata) -> Result<Topic> {
    let name = meta.name.clone();
    open_topic_logs(dir, meta).map_err(|(index, err)| BrokerError::from_storage(&name, index, err))
}

/// [`open_topic`], failing with the partition whose log did not open.
fn open_topic_logs(dir: &Path, meta: TopicMetadata) -> Result<Topic, (u32, StorageError)> {
    let name: Arc<str> = Arc::from(meta.name.as_str());
    let log_config = meta.config.log_config();
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for index in 0..meta.partitions {
        let (log, report) = PartitionLog::open(dir.join(index.to_string()), log_config.clone())
            .map_err(|e| (index, e))?;
        if !report.clean_shutdown && report.log_end_offset > 0 {
            info!(
                topic = %name,
                partition = index,
                log_start = report.log_start_offset,
                log_end = report.log_end_offset,
                torn_tail = report.torn_tail.is_some(),
                "partition recovered after unclean shutdown"
            );
        }
        partitions.push(Arc::new(Partition::new(Arc::clone(&name), index, log)));
    }
    Ok(Topic::new(
        name,
        meta.config,
        meta.created_at_ms,
        partitions,
    ))
}

/// Creates a topic's directory atomically, then opens its logs.
fn create_on_disk(layout: &Layout, meta: TopicMetadata) -> Result<Topic> {
    let scope = topic_scope(&meta.name);
    let staged = layout.staging.join(&meta.name);
    let final_dir = layout.topic_dir(&meta.name);
    let scope = scope.as_str();
    let io = |operation| move |e| BrokerError::io(scope, operation, e);

    let stage = || -> Result<()> {
        let _ = fs::remove_dir_all(&staged);
        fs::create_dir(&staged).map_err(io("create topic directory"))?;
        for index in 0..meta.partitions {
            fs::create_dir(staged.join(index.to_string()))
                .map_err(io("create partition directory"))?;
        }
        metadata::write(&staged, &meta).map_err(io("write topic metadata"))?;
        fs::rename(&staged, &final_dir).map_err(io("publish topic directory"))?;
        metadata::sync_dir(&layout.topics).map_err(io("sync topics directory"))
    };
    if let Err(err) = stage() {
        let _ = fs::remove_dir_all(&staged);
        return Err(err);
    }

    match open_topic(&final_dir, meta.clone()) {
        Ok(topic) => Ok(topic),
        Err(err) => {
            // Take the topic back off disk so a failed create leaves nothing behind.
            let trash = trash_path(layout);
            if fs::rename(&final_dir, &trash).is_ok() {
                let _ = metadata::sync_dir(&layout.topics);
                let _ = fs::remove_dir_all(&trash);
            } else {
                error!(topic = %meta.name, "could not undo a failed topic creation");
            }
            Err(err)
        }
    }
}

/// Closes every log; used by shutdown once no request is running.
fn close_all(
    topics: BTreeMap<String, Arc<Topic>>,
    offsets: Option<Arc<GroupOffsets>>,
) -> Result<()> {
    let mut first_error = None;
    for topic in topics.into_values() {
        let Ok(topic) = Arc::try_unwrap(topic) else {
            warn!("topic still referenced at shutdown; its logs are synced, not closed");
            continue;
        };
        for partition in topic.partitions {
            let (name, index) = (Arc::clone(&partition.topic), partition.index);
            let result = match Arc::try_unwrap(partition).map(|p| Arc::try_unwrap(p.log)) {
                Ok(Ok(log)) => log.close(),
                Ok(Err(log)) => log.flush().map(|_| ()),
                Err(partition) => partition.log.flush().map(|_| ()),
            };
            if let Err(err) = result {
                first_error.get_or_insert(BrokerError::from_storage(&name, index, err));
            }
        }
    }
    if let Some(offsets) = offsets {
        match Arc::try_unwrap(offsets) {
            Ok(offsets) => {
                if let Err(err) = offsets.close() {
                    first_error.get_or_insert(err);
                }
            }
            Err(_) => warn!("group offsets still referenced at shutdown; not closed cleanly"),
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// For each interval-policy partition: starts the write-back of what it buffered since the
/// last pass (see `PartitionLog::start_writeback`), so its next sync finds little to write,
/// and syncs it if its interval has passed. `OsDecides` partitions are left to the kernel.
fn flush_pass(shared: &Shared) {
    for partition in interval_partitions(shared) {
        partition.log.start_writeback();
        let before = partition.log.durable_offset();
        match partition.log.flush_if_due() {
            Ok(()) => {
                let after = partition.log.durable_offset();
                if after > before && partition.note_durable(after) {
                    shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => {
                let err = BrokerError::from_storage(&partition.topic, partition.index, err);
                error!(topic = %partition.topic, partition = partition.index, error = %err, "background sync failed");
            }
        }
    }
}

fn interval_partitions(shared: &Shared) -> Vec<Arc<Partition>> {
    shared
        .topics
        .read()
        .values()
        .filter(|t| matches!(t.config.durability, DurabilityPolicy::SyncInterval(_)))
        .flat_map(|t| t.partitions.iter().cloned())
        .collect()
}

/// Applies retention to every partition; returns segments deleted.
fn retention_pass(shared: &Shared) -> Result<usize> {
    let partitions: Vec<Arc<Partition>> = shared
        .topics
        .read()
        .values()
        .filter(|t| t.config.retention_age.is_some() || t.config.retention_bytes.is_some())
        .flat_map(|t| t.partitions.iter().cloned())
        .collect();
    let now = SystemTime::now();
    let mut deleted = 0;
    let mut first_error = None;
    for partition in partitions {
        match partition.log.enforce_retention(now) {
            Ok(outcome) => deleted += outcome.segments_deleted,
            Err(err) => {
                let err = BrokerError::from_storage(&partition.topic, partition.index, err);
                warn!(topic = %partition.topic, partition = partition.index, error = %err, "retention failed");
                first_error.get_or_insert(err);
            }
        }
    }
    first_error.map_or(Ok(deleted), Err)
}

/// Syncs interval-policy topics and applies retention until told to stop.
async fn background_task(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let flush_every = shared.config.flush_check_interval;
    let retention_every = shared.config.retention_check_interval;
    let mut next_retention = Instant::now() + retention_every;
    loop {
        match tokio::time::timeout(flush_every, stop.changed()).await {
            Ok(_) => break,
            Err(_elapsed) => {}
        }
        let pass_shared = Arc::clone(&shared);
        let retention_due = Instant::now() >= next_retention;
        if retention_due {
            next_retention = Instant::now() + retention_every;
        }
        let pass = tokio::task::spawn_blocking(move || {
            flush_pass(&pass_shared);
            if retention_due {
                let _ = retention_pass(&pass_shared);
            }
        });
        if let Err(err) = pass.await {
            error!(error = %err, "background pass failed");
        }
    }
    debug!("background task stopped");
}
