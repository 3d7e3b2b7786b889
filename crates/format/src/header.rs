//! The fixed 61-byte header of a Kafka v2 record batch.
//!
//! This module owns the byte layout of the header (see `docs/format/record-batch.md`), the CRC32C
//! check, and the one in-place edit the log makes to a stored batch: patching the base offset.
//! It never looks inside the records section, so it costs the same for a compressed batch as
//! for a plain one.
//!
//! Invariants kept here:
//! - All integers are big-endian, as Kafka writes them.
//! - The CRC covers the bytes from `attributes` to the end of the batch. The base offset, the
//!   batch length and the partition leader epoch lie outside it, which is what lets the log
//!   assign offsets without recomputing the CRC.

use crate::FormatError;

/// Offset of `baseOffset` (int64).
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Offset of `batchLength` (int32): the number of bytes that follow this field.
pub const BATCH_LENGTH_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Offset of `partitionLeaderEpoch` (int32).
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = BATCH_LENGTH_OFFSET + 4;
/// Offset of `magic` (int8), always 2 for this format.
pub const MAGIC_OFFSET: usize = PARTITION_LEADER_EPOCH_OFFSET + 4;
/// Offset of `crc` (uint32, CRC32C of everything from `attributes` to the end).
pub const CRC_OFFSET: usize = MAGIC_OFFSET + 1;
/// Offset of `attributes` (int16): compression, timestamp type, transactional, control.
pub const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of `lastOffsetDelta` (int32).
pub const LAST_OFFSET_DELTA_OFFSET: usize = ATTRIBUTES_OFFSET + 2;
/// Offset of `baseTimestamp` (int64), the timestamp of the first record.
pub const BASE_TIMESTAMP_OFFSET: usize = LAST_OFFSET_DELTA_OFFSET + 4;
/// Offset of `maxTimestamp` (int64).
pub const MAX_TIMESTAMP_OFFSET: usize = BASE_TIMESTAMP_OFFSET + 8;
/// Offset of `producerId` (int64), -1 when the producer is not idempotent.
pub const PRODUCER_ID_OFFSET: usize = MAX_TIMESTAMP_OFFSET + 8;
/// Offset of `producerEpoch` (int16).
pub const PRODUCER_EPOCH_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// Offset of `baseSequence` (int32).
pub const BASE_SEQUENCE_OFFSET: usize = PRODUCER_EPOCH_OFFSET + 2;
/// Offset of `recordCount` (int32).
pub const RECORD_COUNT_OFFSET: usize = BASE_SEQUENCE_OFFSET + 4;
/// Length of the whole batch header; the records section starts here.
pub const BATCH_HEADER_LEN: usize = RECORD_COUNT_OFFSET + 4;
/// Bytes before `batchLength`'s count starts: the base offset and the length field itself.
pub const LOG_OVERHEAD: usize = BATCH_LENGTH_OFFSET + 4;
/// The only record batch version Rivulet stores.
pub const MAGIC_V2: i8 = 2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The compression codec named by a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Records are stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, in the xerial framing Kafka's Java client writes (raw Snappy is also read).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard frame format.
    Zstd,
}

impl Compression {
    /// The codec id stored in the low three bits of the attributes.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id, if it is one Kafka defines.
    pub fn from_id(id: i16) -> Option<Self> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The name Kafka uses for the codec (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How the timestamps in a batch were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer when it created the record.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch; every record then carries `maxTimestamp`.
    LogAppendTime,
}

/// The decoded fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the whole batch is `LOG_OVERHEAD + batch_length`.
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended (outside the CRC).
    pub partition_leader_epoch: i32,
    /// Format version; always [`MAGIC_V2`] once validated.
    pub magic: i8,
    /// CRC32C stored in the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (milliseconds since the Unix epoch).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header fields from the start of `buf`, without validating them.
    ///
    /// # Errors
    ///
    /// [`FormatError::Truncated`] if `buf` is shorter than [`BATCH_HEADER_LEN`].
    pub fn read(buf: &[u8]) -> Result<Self, FormatError> {
        let Some(h) = buf.get(..BATCH_HEADER_LEN) else {
            return Err(FormatError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        };
        Ok(BatchHeader {
            base_offset: be_i64(h, BASE_OFFSET_OFFSET),
            batch_length: be_i32(h, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: be_i32(h, PARTITION_LEADER_EPOCH_OFFSET),
            magic: h[MAGIC_OFFSET] as i8,
            crc: be_i32(h, CRC_OFFSET) as u32,
            attributes: be_i16(h, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(h, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(h, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(h, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(h, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(h, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(h, BASE_SEQUENCE_OFFSET),
            record_count: be_i32(h, RECORD_COUNT_OFFSET),
        })
    }

    /// Writes the header into the first [`BATCH_HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than [`BATCH_HEADER_LEN`]; callers size their buffers first.
    pub fn write(&self, out: &mut [u8]) {
        let h = &mut out[..BATCH_HEADER_LEN];
        h[BASE_OFFSET_OFFSET..][..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&self.batch_length.to_be_bytes());
        h[PARTITION_LEADER_EPOCH_OFFSET..][..4]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[MAGIC_OFFSET] = self.magic as u8;
        h[CRC_OFFSET..][..4].copy_from_slice(&self.crc.to_be_bytes());
        h[ATTRIBUTES_OFFSET..][..2].copy_from_slice(&self.attributes.to_be_bytes());
        h[LAST_OFFSET_DELTA_OFFSET..][..4].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[BASE_TIMESTAMP_OFFSET..][..8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[MAX_TIMESTAMP_OFFSET..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[PRODUCER_ID_OFFSET..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        h[PRODUCER_EPOCH_OFFSET..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[BASE_SEQUENCE_OFFSET..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[RECORD_COUNT_OFFSET..][..4].copy_from_slice(&self.record_count.to_be_bytes());
    }

    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch. Saturates at `i64::MAX`, so a header read from
    /// damaged bytes (not yet validated) never overflows.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset right after this batch; saturates like [`BatchHeader::last_offset`].
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec, or `None` if the attributes name an unknown codec.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }

    /// How the batch's timestamps were assigned.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch (transaction markers), not user data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Builds the attributes field from its parts.
pub fn attributes(compression: Compression, timestamp_type: TimestampType) -> i16 {
    let ts = match timestamp_type {
        TimestampType::CreateTime => 0,
        TimestampType::LogAppendTime => TIMESTAMP_TYPE_BIT,
    };
    compression.id() | ts
}

/// The limits a batch is validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Largest whole batch accepted, header included.
    pub max_batch_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_batch_bytes: 1 << 20,
        }
    }
}

/// What a scan of the bytes at one position of a log found.
///
/// Recovery tells a torn tail (the process died while writing; safe to cut off) from corruption
/// (bytes that were once whole have changed; must be reported) by where the outcome occurs,
/// so this type only says what the bytes look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchScan {
    /// A whole batch whose header and CRC check out.
    Complete(BatchHeader),
    /// The bytes end before the batch does.
    Incomplete {
        /// Bytes the batch needs (or the header, if even that is cut).
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The bytes cannot be a valid batch.
    Invalid(FormatError),
}

/// Looks at the batch starting at `buf[0]`: is it whole, cut off, or invalid?
///
/// Checks, in order: the header is present; `batchLength` is within
/// `[BATCH_HEADER_LEN - LOG_OVERHEAD, limits.max_batch_bytes - LOG_OVERHEAD]`; the magic is 2;
/// the whole batch is present; `lastOffsetDelta` and `recordCount` are sane; the CRC32C matches.
pub fn scan_batch(buf: &[u8], limits: &BatchLimits) -> BatchScan {
    if buf.len() < BATCH_HEADER_LEN {
        return BatchScan::Incomplete {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        };
    }
    let header = match BatchHeader::read(buf) {
        Ok(header) => header,
        Err(err) => return BatchScan::Invalid(err),
    };
    if let Err(err) = check_header(&header, limits) {
        return BatchScan::Invalid(err);
    }
    let total = header.total_len();
    if buf.len() < total {
        return BatchScan::Incomplete {
            needed: total,
            available: buf.len(),
        };
    }
    match verify_crc(&buf[..total], &header) {
        Ok(()) => BatchScan::Complete(header),
        Err(err) => BatchScan::Invalid(err),
    }
}

/// Validates one whole batch: `buf` must hold exactly one batch, nothing more or less.
///
/// # Errors
///
/// The first check that fails, as a [`FormatError`] that says what was wrong and what is allowed.
pub fn validate_batch(buf: &[u8], limits: &BatchLimits) -> Result<BatchHeader, FormatError> {
    match scan_batch(buf, limits) {
        BatchScan::Complete(header) if header.total_len() == buf.len() => Ok(header),
        BatchScan::Complete(header) => Err(FormatError::LengthMismatch {
            declared: header.total_len(),
            actual: buf.len(),
        }),
        BatchScan::Incomplete { needed, available } => {
            Err(FormatError::Truncated { needed, available })
        }
        BatchScan::Invalid(err) => Err(err),
    }
}

fn check_header(header: &BatchHeader, limits: &BatchLimits) -> Result<(), FormatError> {
    let min_length = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64;
    let max_length = limits.max_batch_bytes.saturating_sub(LOG_OVERHEAD) as i64;
    let length = i64::from(header.batch_length);
    if length < min_length {
        return Err(FormatError::BatchLengthTooSmall {
            length: header.batch_length,
            min: min_length as i32,
        });
    }
    if length > max_length {
        return Err(FormatError::BatchTooLarge {
            size: header.total_len(),
            max: limits.max_batch_bytes,
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(FormatError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    if header.last_offset_delta < 0 {
        return Err(FormatError::BadLastOffsetDelta {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    if header.record_count < 0 {
        return Err(FormatError::BadRecordCount {
            record_count: header.record_count,
        });
    }
    Ok(())
}

/// Checks the batch's CRC32C against the stored value.
///
/// # Errors
///
/// [`FormatError::CrcMismatch`] with both values.
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), FormatError> {
    let actual = compute_crc(batch);
    if actual == header.crc {
        Ok(())
    } else {
        Err(FormatError::CrcMismatch {
            expected: header.crc,
            actual,
        })
    }
}

/// CRC32C of a whole batch's covered bytes (`attributes` to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]))
}

/// Overwrites the base offset of the batch at the start of `batch`. The CRC stays valid because
/// the base offset lies outside it.
///
/// # Panics
///
/// If `batch` is shorter than 8 bytes; callers validate the batch first.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..][..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites the partition leader epoch (outside the CRC).
///
/// # Panics
///
/// If `batch` is shorter than the header's first 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..][..4].copy_from_slice(&epoch.to_be_bytes());
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_a_damaged_header_saturate_instead_of_overflowing() {
        // Found by the `log_recovery` fuzz target: a read walked onto bytes whose base offset and
        // last offset delta add past `i64::MAX`.
        let mut bytes = [0u8; BATCH_HEADER_LEN];
        bytes[BASE_OFFSET_OFFSET..][..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        bytes[LAST_OFFSET_DELTA_OFFSET..][..4].copy_from_slice(&i32::MAX.to_be_bytes());
        let header = BatchHeader::read(&bytes).unwrap();
        assert_eq!(header.last_offset(), i64::MAX);
        assert_eq!(header.next_offset(), i64::MAX);
    }
}
