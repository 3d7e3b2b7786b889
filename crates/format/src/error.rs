//! The one error type of the format crate.

/// Why bytes are not a valid record batch (or could not be built into one).
///
/// Every message says what was found and what is allowed, so it can be passed to a client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes end before the structure does.
    #[error("record batch is truncated: {available} bytes present, {needed} needed")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The buffer holds more or fewer bytes than the batch declares.
    #[error(
        "record batch declares {declared} bytes but {actual} were given; send exactly one whole batch"
    )]
    LengthMismatch {
        /// Size from the `batchLength` field.
        declared: usize,
        /// Size of the buffer.
        actual: usize,
    },
    /// `batchLength` is smaller than a header.
    #[error("record batch length {length} is smaller than the {min}-byte minimum")]
    BatchLengthTooSmall {
        /// The declared length.
        length: i32,
        /// The smallest valid length.
        min: i32,
    },
    /// The batch is larger than the configured limit.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge {
        /// Size of the whole batch.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Not a v2 batch.
    #[error("record batch magic {magic} is not supported; only magic 2 (Kafka record batch v2) is")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The stored CRC32C does not match the bytes.
    #[error("record batch CRC32C mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch.
        expected: u32,
        /// CRC computed over the bytes.
        actual: u32,
    },
    /// `lastOffsetDelta` is negative or disagrees with the record count.
    #[error(
        "record batch lastOffsetDelta {last_offset_delta} does not fit its record count \
         {record_count}; it must be recordCount - 1"
    )]
    BadLastOffsetDelta {
        /// The field's value.
        last_offset_delta: i32,
        /// The batch's record count.
        record_count: i32,
    },
    /// `recordCount` is negative or disagrees with the records present.
    #[error("record batch record count {record_count} is invalid")]
    BadRecordCount {
        /// The field's value.
        record_count: i32,
    },
    /// The attributes name a codec Kafka does not define.
    #[error("unknown compression codec id {id}; allowed: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd")]
    UnknownCompression {
        /// Codec id from the attributes.
        id: i16,
    },
    /// Compressing or decompressing the records failed.
    #[error("{codec} {operation} failed: {reason}")]
    Compression {
        /// Codec name.
        codec: &'static str,
        /// `compression` or `decompression`.
        operation: &'static str,
        /// What the codec said.
        reason: String,
    },
    /// A varint or varlong is cut off or longer than its type allows.
    #[error("malformed {kind} at byte {position}: {reason}")]
    BadVarint {
        /// `varint` (32-bit) or `varlong` (64-bit).
        kind: &'static str,
        /// Byte position of the problem, counted from where decoding started.
        position: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Decompressing the records would produce more bytes than allowed.
    #[error("{codec} records decompress to more than the {limit}-byte limit")]
    DecompressedTooLarge {
        /// Codec name.
        codec: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The records section ends before `recordCount` records were read.
    #[error("record batch declares {declared} records but only {found} are present")]
    MissingRecords {
        /// The `recordCount` field.
        declared: i32,
        /// Whole records found before the section ended.
        found: usize,
    },
    /// Bytes remain in the records section after the last declared record.
    #[error("record batch has {extra} bytes after its {record_count} declared records")]
    TrailingBytes {
        /// The `recordCount` field.
        record_count: i32,
        /// Bytes left over.
        extra: usize,
    },
    /// The batch's last offset does not fit in an `i64`.
    #[error(
        "record batch base offset {base_offset} plus lastOffsetDelta {last_offset_delta} overflows"
    )]
    OffsetOverflow {
        /// The `baseOffset` field.
        base_offset: i64,
        /// The `lastOffsetDelta` field.
        last_offset_delta: i32,
    },
    /// A batch must hold at least one record to be built.
    #[error("cannot build a record batch with no records")]
    EmptyBatch,
    /// A record's timestamp is outside the allowed range
    /// ([`TIMESTAMP_RULE`](crate::TIMESTAMP_RULE)).
    #[error(
        "record {index} has timestamp {timestamp}, which is out of range: a timestamp must be \
         {rule}",
        rule = crate::TIMESTAMP_RULE
    )]
    TimestampOutOfRange {
        /// Index of the record within the batch.
        index: usize,
        /// The timestamp, in milliseconds since the Unix epoch.
        timestamp: i64,
    },
    /// The batch's `maxTimestamp` is outside the allowed range.
    #[error(
        "record batch maxTimestamp {timestamp} is out of range: a timestamp must be {rule}",
        rule = crate::TIMESTAMP_RULE
    )]
    MaxTimestampOutOfRange {
        /// The `maxTimestamp` field.
        timestamp: i64,
    },
    /// A CreateTime batch's `maxTimestamp` is below one of its records' timestamps, so lookups
    /// by time would miss that record.
    #[error(
        "record batch maxTimestamp {max_timestamp} is below the timestamp {timestamp} of record \
         {index}: it must be at least every record's timestamp"
    )]
    MaxTimestampTooLow {
        /// The batch's `maxTimestamp`.
        max_timestamp: i64,
        /// Index of the record with the largest timestamp.
        index: usize,
        /// That record's timestamp.
        timestamp: i64,
    },
    /// A record's `baseTimestamp + timestampDelta` does not fit an `i64`: only a reader that
    /// wraps would read a timestamp, and not the one meant.
    #[error(
        "record {index}: baseTimestamp {base_timestamp} plus timestampDelta {timestamp_delta} \
         overflows a 64-bit timestamp; a timestamp must be {rule}",
        rule = crate::TIMESTAMP_RULE
    )]
    TimestampDeltaOverflow {
        /// Index of the record within the batch.
        index: usize,
        /// The batch's `baseTimestamp`.
        base_timestamp: i64,
        /// The record's `timestampDelta`.
        timestamp_delta: i64,
    },
    /// A record's key, value and header keys and values together are larger than a writer's
    /// limit ([`check_produced_batch`](crate::check_produced_batch)).
    #[error(
        "record {index} is {size} bytes (key, value and headers), larger than the limit of \
         {max}"
    )]
    RecordTooLarge {
        /// Index of the record within the batch.
        index: usize,
        /// Its key, value and header bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record pushed to a builder lies further from the batch's base timestamp (its first
    /// record's) than a 64-bit `timestampDelta` reaches.
    #[error(
        "record {index} has timestamp {timestamp}, more than 9223372036854775807 ms after the \
         batch's first timestamp {base_timestamp}, which a 64-bit timestampDelta cannot hold; \
         put it in another batch"
    )]
    TimestampsTooFarApart {
        /// Index of the record within the batch.
        index: usize,
        /// Its timestamp.
        timestamp: i64,
        /// The batch's base timestamp.
        base_timestamp: i64,
    },
    /// A record inside the batch is malformed.
    #[error("record {index} of the batch is malformed: {reason}")]
    BadRecord {
        /// Index of the record within the batch.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}
