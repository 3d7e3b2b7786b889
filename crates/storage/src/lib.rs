//! Rivulet's storage engine: one partition's append-only log of Kafka v2 record batches.
//!
//! A [`PartitionLog`] lives in one directory and holds a run of segments. Each segment is a log
//! file of whole record batches, stored byte for byte as producers sent them apart from the
//! base offset the log assigns, plus a sparse offset index and a time index, both preallocated
//! and memory-mapped. Offsets are dense and never reused.
//!
//! This crate knows nothing of topics, networking or async runtimes: callers are plain threads.
//!
//! Module map:
//! - `log`: [`PartitionLog`], appends, reads, flushes, retention, truncation, open and close.
//! - `segment`: one segment's files, sealing, and collecting batches for a read.
//! - `index`: the offset and time index files.
//! - `recovery`: scanning a segment, telling a torn tail from corruption.
//! - `checkpoint`: Rivulet's small files (log start, clean shutdown marker).
//! - `fsync`: every sync and rename that makes a segment or small file durable.
//! - `mmap`: every memory map, and the crate's only `unsafe` code.
//! - `power_loss` (feature `fault-injection`, for tests): a record of what those syncs made
//!   durable, and `DurabilityWatch::power_loss_image`, the directory a machine crash at a
//!   given moment could leave behind.
//!
//! File formats are documented in `docs/format/segment.md`.

mod checkpoint;
mod config;
mod error;
mod fsync;
mod index;
mod log;
mod mmap;
#[cfg(feature = "fault-injection")]
mod power_loss;
mod read;
mod recovery;
mod segment;

pub use config::{FlushPolicy, LogConfig, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
pub use error::{Result, StorageError};
pub use fsync::WRITEBACK_CHUNK;
pub use log::{AppendInfo, PartitionLog, RecoveryReport, RetentionOutcome};
#[cfg(feature = "fault-injection")]
pub use power_loss::{
    DurabilityWatch, FileFate, ImageOptions, IndexImage, PowerLossImage, SyncRecord, UnsyncedTail,
};
pub use read::LogRead;
pub use recovery::{CorruptRange, TornTail};
