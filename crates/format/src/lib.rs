//! Kafka's record batch format v2, the unit Rivulet stores, serves and sends.
//!
//! The storage engine, the broker and the client library all speak this format, so it lives in
//! a crate of its own with no I/O. Every decoder here takes untrusted bytes: it returns a
//! [`FormatError`] for anything malformed and never panics. Module map:
//!
//! - [`header`]: the fixed 61-byte batch header, validation ([`scan_batch`], [`validate_batch`])
//!   and the CRC32C. Cheap: never touches the records.
//! - `record`: the records inside a batch; [`decode_batch`] and
//!   [`record_offsets_and_timestamps`] turn a whole batch into [`Record`]s or offsets.
//! - `builder`: [`BatchBuilder`], which encodes records into a sealed batch.
//! - `compression`: [`compress`] and [`decompress`] for the records section (gzip, xerial
//!   Snappy, LZ4 frames, zstd), with a bound on decompressed size.
//! - `timestamp`: which record timestamps a batch may carry ([`TIMESTAMP_RULE`]); the builder
//!   and [`check_timestamps`] apply it.
//! - `varint`: Kafka's zigzag varints and varlongs.
//! - `partitioner`: Kafka's [`murmur2`] and [`partition_for_key`].
//!
//! The byte layout is documented in `docs/format/record-batch.md`.
//!
//! ```
//! use rivulet_format::{BatchBuilder, BatchLimits, Compression, decode_batch, validate_batch};
//!
//! let mut builder = BatchBuilder::new(Compression::Zstd);
//! builder.push(1_000, Some(b"key"), Some(b"value"), &[]);
//! let batch = builder.build()?.freeze();
//!
//! validate_batch(&batch, &BatchLimits::default())?;
//! let (_, records) = decode_batch(&batch)?;
//! assert_eq!(records[0].key.as_deref(), Some(&b"key"[..]));
//! # Ok::<(), rivulet_format::FormatError>(())
//! ```

mod builder;
mod compression;
mod error;
pub mod header;
mod partitioner;
mod record;
mod timestamp;
mod varint;

pub use builder::BatchBuilder;
pub use compression::{DEFAULT_MAX_DECOMPRESSED_BYTES, compress, decompress};
pub use error::FormatError;
pub use header::{
    BatchHeader, BatchLimits, BatchScan, Compression, TimestampType, scan_batch, validate_batch,
};
pub use partitioner::{murmur2, partition_for_key};
pub use record::{
    CheckedBatch, Record, RecordHeader, check_produced_batch, check_records, check_timestamps,
    decode_batch, record_offsets_and_timestamps, visit_records,
};
pub use timestamp::{NO_TIMESTAMP, TIMESTAMP_RULE, is_valid_timestamp};
pub use varint::{
    MAX_VARINT_LEN, MAX_VARLONG_LEN, decode_varint, decode_varlong, encode_varint, encode_varlong,
    varint_len, varlong_len,
};
