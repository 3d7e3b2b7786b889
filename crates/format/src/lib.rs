//! Kafka's record batch format v2, the unit Rivulet stores, serves and sends.
//!
//! The storage engine, the broker and the client library all speak this format, so it lives in
//! a crate of its own with no I/O. Module map:
//!
//! - [`header`]: the fixed 61-byte batch header, validation ([`scan_batch`], [`validate_batch`])
//!   and the CRC32C. Cheap: never touches the records.
//!
//! The byte layout is documented in `docs/format/segment.md`.

mod error;
pub mod header;

pub use error::FormatError;
pub use header::{
    BatchHeader, BatchLimits, BatchScan, Compression, TimestampType, scan_batch, validate_batch,
};
