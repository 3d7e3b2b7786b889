//! The records inside a v2 batch: decoding a whole batch into [`Record`]s, checking one for a
//! writer ([`check_records`], and [`check_timestamps`] for the timestamp rule), and encoding one
//! record for the [`BatchBuilder`](crate::BatchBuilder).
//!
//! Each record is laid out as (see `docs/format/record-batch.md`):
//!
//! ```text
//! length          varint    bytes that follow, up to the end of the headers
//! attributes      int8      unused by Kafka; read and ignored
//! timestampDelta  varlong   added to the batch's baseTimestamp
//! offsetDelta     varint    added to the batch's baseOffset
//! key             varint length (-1 = null) + bytes
//! value           varint length (-1 = null) + bytes
//! headerCount     varint
//! headers         headerCount x (varint length + UTF-8 key, varint length (-1 = null) + bytes)
//! ```
//!
//! Invariants a decoded batch satisfies, each checked and reported rather than assumed:
//! - The header is valid and the CRC32C matches ([`validate_batch`] runs first).
//! - The records section holds exactly `recordCount` records, with no bytes left over, and
//!   each record ends exactly where its `length` says.
//! - Offsets are dense: record `i` has `offsetDelta == i`, and `lastOffsetDelta` is
//!   `recordCount - 1`. Kafka brokers demand this of every produced batch, and Rivulet never
//!   compacts, so a gap can only mean damage. Kafka's compacted topics do produce gaps; reading
//!   those would need this check relaxed.
//! - No length is trusted before it is compared with the bytes actually left, so forged lengths
//!   cause errors, never large allocations. Uncompressed keys, values and header values are
//!   zero-copy slices of the caller's buffer.
//!
//! This module does not touch the header's layout (that is [`crate::header`]'s) or codecs
//! (those are [`crate::compression`]'s).

use std::ops::{ControlFlow, Range};

use bytes::{Bytes, BytesMut};

use crate::compression::{DEFAULT_MAX_DECOMPRESSED_BYTES, decompress};
use crate::header::{BATCH_HEADER_LEN, LOG_OVERHEAD};
use crate::varint::{
    decode_varint, decode_varlong, encode_varint, encode_varlong, varint_len, varlong_len,
};
use crate::{
    BatchHeader, BatchLimits, Compression, FormatError, TimestampType, is_valid_timestamp,
    validate_batch,
};

/// Fewest bytes one record can take: seven one-byte fields (length, attributes, the two
/// deltas, null key, null value, zero headers).
const MIN_RECORD_LEN: usize = 7;
/// Fewest bytes one record header can take: an empty key and a null value.
const MIN_HEADER_LEN: usize = 2;
/// The length that marks a null key, value or header value.
const NULL_LEN: i32 = -1;

/// One record of a batch, with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's offset in its partition: `baseOffset + offsetDelta`.
    pub offset: i64,
    /// Milliseconds since the Unix epoch: `baseTimestamp + timestampDelta`, or the batch's
    /// `maxTimestamp` when the batch uses [`TimestampType::LogAppendTime`].
    pub timestamp: i64,
    /// The key, or `None` for a null key (distinct from an empty key).
    pub key: Option<Bytes>,
    /// The value, or `None` for a null value (a tombstone, in Kafka's terms).
    pub value: Option<Bytes>,
    /// Application headers, in the order they were written.
    pub headers: Vec<RecordHeader>,
}

/// One application header of a record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordHeader {
    /// The header's name; Kafka requires it to be present and valid UTF-8.
    pub key: String,
    /// The header's value, or `None` for null.
    pub value: Option<Bytes>,
}

/// Decodes one whole batch into its header and records, decompressing if needed.
///
/// `batch` must hold exactly one batch. It is validated first (header fields and CRC32C, via
/// [`validate_batch`] with no size limit beyond what `batchLength` can express), so the caller
/// need not have validated it. Offsets are `baseOffset + offsetDelta`; timestamps are
/// `baseTimestamp + timestampDelta`, except in [`TimestampType::LogAppendTime`] batches, where
/// every record gets the batch's `maxTimestamp`.
///
/// For an uncompressed batch the keys and values are zero-copy slices of `batch`. A compressed
/// batch's records section may decompress to at most [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
///
/// # Errors
///
/// Any [`FormatError`] from [`validate_batch`]; [`FormatError::UnknownCompression`];
/// [`FormatError::BadLastOffsetDelta`] unless `lastOffsetDelta == recordCount - 1`;
/// decompression errors; [`FormatError::MissingRecords`] and [`FormatError::TrailingBytes`] if
/// the records section holds fewer or more than `recordCount` records; and
/// [`FormatError::BadRecord`] for a malformed record, naming its index.
pub fn decode_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<Record>), FormatError> {
    let (header, section) = open_batch(batch)?;
    let mut records = Vec::with_capacity(record_capacity(&header, &section));
    walk_records(&header, &section, true, |_, raw| {
        records.push(resolve(&header, raw));
        Ok(())
    })?;
    Ok((header, records))
}

/// Decodes the records of one whole batch in order, handing each to `visit` as it is read,
/// until `visit` breaks. A reader that needs only some records of a large batch (a reply of
/// bounded size) so never holds the rest; the decompressed section is still whole, within
/// [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
///
/// Makes the checks of [`decode_batch`] on every record it reads; after a break the rest are
/// not read, so damage there goes unreported.
///
/// # Errors
///
/// As for [`decode_batch`], for the records read.
pub fn visit_records(
    batch: &Bytes,
    mut visit: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<(), FormatError> {
    let (header, section) = open_batch(batch)?;
    let cursor = Cursor::new(&section, 0, section.len());
    walk_until(&header, cursor, true, |_, raw| {
        Ok(visit(resolve(&header, raw)))
    })
}

/// Returns `(offset, timestamp)` for every record of one whole batch, in order.
///
/// Applies exactly the checks of [`decode_batch`] (so a batch one accepts, the other accepts
/// too) but builds no keys, values or headers. A compressed batch is still decompressed, since
/// the deltas live inside the compressed section.
///
/// # Errors
///
/// As for [`decode_batch`].
pub fn record_offsets_and_timestamps(batch: &Bytes) -> Result<Vec<(i64, i64)>, FormatError> {
    let (header, section) = open_batch(batch)?;
    let mut out = Vec::with_capacity(record_capacity(&header, &section));
    walk_records(&header, &section, false, |_, raw| {
        let record = resolve(&header, raw);
        out.push((record.offset, record.timestamp));
        Ok(())
    })?;
    Ok(out)
}

/// Validates the batch and returns its header with the (decompressed) records section.
fn open_batch(batch: &Bytes) -> Result<(BatchHeader, Bytes), FormatError> {
    // The caller's buffer already bounds the batch; `batchLength` is an i32.
    let limits = BatchLimits {
        max_batch_bytes: LOG_OVERHEAD + i32::MAX as usize,
    };
    let header = validate_batch(batch, &limits)?;
    let compression = check_counts(&header)?;

    let section = batch.slice(BATCH_HEADER_LEN..);
    let section = match compression {
        Compression::None => section,
        codec => Bytes::from(decompress(codec, &section, DEFAULT_MAX_DECOMPRESSED_BYTES)?),
    };
    Ok((header, section))
}

/// Header checks that need no records: a known codec, `lastOffsetDelta = recordCount - 1`, and
/// a last offset that fits an i64.
fn check_counts(header: &BatchHeader) -> Result<Compression, FormatError> {
    let Some(compression) = header.compression() else {
        return Err(FormatError::UnknownCompression {
            id: header.attributes & 0x07,
        });
    };
    if header.record_count > 0 && header.last_offset_delta != header.record_count - 1 {
        return Err(FormatError::BadLastOffsetDelta {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    if header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .is_none()
    {
        return Err(FormatError::OffsetOverflow {
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(compression)
}

/// Checks that the records section of `batch` holds exactly the records `header` declares,
/// each well formed, without checking the CRC again and without copying an uncompressed batch
/// (a compressed one is decompressed, within [`DEFAULT_MAX_DECOMPRESSED_BYTES`]).
///
/// For a writer that has already validated the header and CRC with
/// [`validate_batch`](crate::validate_batch) and must not assign offsets to records that are
/// not there.
///
/// # Errors
///
/// As for [`decode_batch`], bar the CRC.
pub fn check_records(batch: &[u8], header: &BatchHeader) -> Result<(), FormatError> {
    walk_borrowed(batch, header, |_, _| Ok(()))
}

/// Checks every timestamp of one whole batch against the timestamp rule
/// ([`TIMESTAMP_RULE`](crate::TIMESTAMP_RULE)), as a producer-facing writer must before it
/// stores the batch: `maxTimestamp` is allowed, and in a CreateTime batch each record's
/// `baseTimestamp + timestampDelta` neither overflows nor leaves the range, nor passes
/// `maxTimestamp`. A LogAppendTime
/// batch is read with `maxTimestamp` for every record, so its deltas are not looked at.
///
/// Makes the checks of [`check_records`] on the way (no CRC), decompressing a compressed
/// batch within [`DEFAULT_MAX_DECOMPRESSED_BYTES`]. The decoders do not apply this rule, so
/// batches stored before it still read back.
///
/// # Errors
///
/// [`FormatError::MaxTimestampOutOfRange`], [`FormatError::TimestampDeltaOverflow`] or
/// [`FormatError::TimestampOutOfRange`] for the first timestamp that breaks the rule, naming
/// the record, and [`FormatError::MaxTimestampTooLow`]; otherwise as for [`check_records`].
pub fn check_timestamps(batch: &[u8], header: &BatchHeader) -> Result<(), FormatError> {
    check_produced_records(batch, header, usize::MAX)
}

/// A batch that passed [`check_produced_batch`], holding its bytes: a writer may store it
/// without validating it again. The bytes can be changed only through
/// [`CheckedBatch::set_base_offset`], which leaves the check true (the base offset lies
/// outside the CRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBatch {
    bytes: BytesMut,
    header: BatchHeader,
}

impl CheckedBatch {
    /// The batch's header, as checked, with the base offset last set.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Assigns the batch its base offset, in the bytes and the header.
    pub fn set_base_offset(&mut self, base_offset: i64) {
        crate::header::set_base_offset(&mut self.bytes, base_offset);
        self.header.base_offset = base_offset;
    }

    /// The batch's bytes.
    pub fn into_inner(self) -> BytesMut {
        self.bytes
    }
}

/// Checks a whole batch a producer sent, before a writer stores it: [`validate_batch`] against
/// `limits` (the CRC included), then one walk over its records making the checks of
/// [`check_records`], the timestamp rule as [`check_timestamps`] applies it, and that no
/// record's key, value and header keys and values together exceed `max_record_bytes`. A
/// compressed batch is decompressed once, within [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
///
/// # Errors
///
/// As for [`validate_batch`]; [`FormatError::RecordTooLarge`] naming the first record over the
/// limit; otherwise as for [`check_timestamps`].
pub fn check_produced_batch(
    batch: BytesMut,
    limits: &BatchLimits,
    max_record_bytes: usize,
) -> Result<CheckedBatch, FormatError> {
    let header = validate_batch(&batch, limits)?;
    check_produced_records(&batch, &header, max_record_bytes)?;
    Ok(CheckedBatch {
        bytes: batch,
        header,
    })
}

/// The record checks of [`check_produced_batch`], on a batch already validated.
fn check_produced_records(
    batch: &[u8],
    header: &BatchHeader,
    max_record_bytes: usize,
) -> Result<(), FormatError> {
    if !is_valid_timestamp(header.max_timestamp) {
        return Err(FormatError::MaxTimestampOutOfRange {
            timestamp: header.max_timestamp,
        });
    }
    // In a LogAppendTime batch every record reads as `maxTimestamp`: the deltas are not used.
    let create_time = header.timestamp_type() == TimestampType::CreateTime;
    let base_timestamp = header.base_timestamp;
    let mut newest: Option<(usize, i64)> = None;
    walk_borrowed(batch, header, |index, raw| {
        if raw.payload_len > max_record_bytes {
            return Err(FormatError::RecordTooLarge {
                index,
                size: raw.payload_len,
                max: max_record_bytes,
            });
        }
        if !create_time {
            return Ok(());
        }
        let Some(timestamp) = base_timestamp.checked_add(raw.timestamp_delta) else {
            return Err(FormatError::TimestampDeltaOverflow {
                index,
                base_timestamp,
                timestamp_delta: raw.timestamp_delta,
            });
        };
        if !is_valid_timestamp(timestamp) {
            return Err(FormatError::TimestampOutOfRange { index, timestamp });
        }
        if newest.is_none_or(|(_, t)| timestamp > t) {
            newest = Some((index, timestamp));
        }
        Ok(())
    })?;
    // The time index trusts `maxTimestamp`: one below a record's timestamp would hide that
    // record from lookups by time.
    match newest {
        Some((index, timestamp)) if timestamp > header.max_timestamp => {
            Err(FormatError::MaxTimestampTooLow {
                max_timestamp: header.max_timestamp,
                index,
                timestamp,
            })
        }
        _ => Ok(()),
    }
}

/// Walks the records of `batch` without copying an uncompressed one, handing each to `sink`.
fn walk_borrowed(
    batch: &[u8],
    header: &BatchHeader,
    sink: impl FnMut(usize, RawRecord) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let compression = check_counts(header)?;
    let section = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    match compression {
        Compression::None => walk_cursor(header, Cursor::borrowed(section), false, sink),
        codec => {
            let raw = decompress(codec, section, DEFAULT_MAX_DECOMPRESSED_BYTES)?;
            walk_cursor(header, Cursor::borrowed(&raw), false, sink)
        }
    }
}

/// How many records to reserve room for: the declared count, but never more than could fit in
/// the bytes present, so a forged count cannot force a large allocation.
fn record_capacity(header: &BatchHeader, section: &[u8]) -> usize {
    let declared = usize::try_from(header.record_count).unwrap_or(0);
    declared.min(section.len() / MIN_RECORD_LEN)
}

/// Parses all `recordCount` records of `section`, handing each to `sink` with its index; the
/// first error `sink` returns ends the walk. With `keep_payload` false, keys, values and
/// headers are checked but left out of the records handed over.
fn walk_records(
    header: &BatchHeader,
    section: &Bytes,
    keep_payload: bool,
    sink: impl FnMut(usize, RawRecord) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    walk_cursor(
        header,
        Cursor::new(section, 0, section.len()),
        keep_payload,
        sink,
    )
}

fn walk_cursor(
    header: &BatchHeader,
    cursor: Cursor<'_>,
    keep_payload: bool,
    mut sink: impl FnMut(usize, RawRecord) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    walk_until(header, cursor, keep_payload, |index, raw| {
        sink(index, raw).map(|()| ControlFlow::Continue(()))
    })
}

/// As [`walk_cursor`], but `sink` may end the walk early with `Break`; the records after it
/// are then neither read nor checked.
fn walk_until(
    header: &BatchHeader,
    mut cursor: Cursor<'_>,
    keep_payload: bool,
    mut sink: impl FnMut(usize, RawRecord) -> Result<ControlFlow<()>, FormatError>,
) -> Result<(), FormatError> {
    let declared = usize::try_from(header.record_count).unwrap_or(0);

    for index in 0..declared {
        if cursor.is_empty() {
            return Err(FormatError::MissingRecords {
                declared: header.record_count,
                found: index,
            });
        }
        let record = read_record(&mut cursor, index, keep_payload)
            .map_err(|reason| FormatError::BadRecord { index, reason })?;
        if sink(index, record)?.is_break() {
            return Ok(());
        }
    }

    if !cursor.is_empty() {
        return Err(FormatError::TrailingBytes {
            record_count: header.record_count,
            extra: cursor.remaining(),
        });
    }
    Ok(())
}

/// A record as stored: deltas not yet applied.
struct RawRecord {
    timestamp_delta: i64,
    offset_delta: i32,
    /// Bytes of key, value, header keys and header values, kept or not.
    payload_len: usize,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<RecordHeader>,
}

/// Turns stored deltas into absolute offsets and timestamps.
fn resolve(header: &BatchHeader, raw: RawRecord) -> Record {
    // `open_batch` checked that the last offset fits, and every delta is at most the last one.
    let offset = header.base_offset + i64::from(raw.offset_delta);

    // Deltas wrap like Java's long arithmetic. Writers refuse batches whose sums overflow
    // (`check_timestamps`), but batches stored before that rule still read back.
    let timestamp = match header.timestamp_type() {
        TimestampType::CreateTime => header.base_timestamp.wrapping_add(raw.timestamp_delta),
        TimestampType::LogAppendTime => header.max_timestamp,
    };

    Record {
        offset,
        timestamp,
        key: raw.key,
        value: raw.value,
        headers: raw.headers,
    }
}

/// Reads record `index` at the cursor. Errors are the reason text of a
/// [`FormatError::BadRecord`].
fn read_record(
    outer: &mut Cursor<'_>,
    index: usize,
    keep_payload: bool,
) -> Result<RawRecord, String> {
    // Length: the body must fit in what is left, and is then read on its own so no field can
    // stray into the next record.
    let length = outer.varint("length")?;
    let body_len = usize::try_from(length).map_err(|_| format!("length {length} is negative"))?;
    let body = outer.take(body_len, "record body")?;
    let mut r = outer.sub(body.clone());

    // Attributes: Kafka defines no bits here yet.
    r.byte("attributes")?;

    let timestamp_delta = r.varlong("timestampDelta")?;

    let offset_delta = r.varint("offsetDelta")?;
    if usize::try_from(offset_delta).ok() != Some(index) {
        return Err(format!(
            "offsetDelta is {offset_delta}, expected {index}: offsets in a batch must be dense"
        ));
    }

    let key = r.nullable_bytes("key")?;
    let value = r.nullable_bytes("value")?;

    let header_count = r.varint("header count")?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| format!("header count {header_count} is negative"))?;
    let mut headers = Vec::new();
    if keep_payload {
        headers.reserve(header_count.min(r.remaining() / MIN_HEADER_LEN));
    }
    let range_len = |range: &Option<Range<usize>>| range.as_ref().map_or(0, ExactSizeIterator::len);
    let mut payload_len = range_len(&key) + range_len(&value);
    for h in 0..header_count {
        let (len, header) = read_header(&mut r, h, keep_payload)?;
        payload_len += len;
        headers.extend(header);
    }

    if !r.is_empty() {
        return Err(format!(
            "length is {body_len} but the fields end {} bytes earlier",
            r.remaining()
        ));
    }

    let slice = |range: Option<Range<usize>>| range.filter(|_| keep_payload).map(|x| r.slice(x));
    Ok(RawRecord {
        timestamp_delta,
        offset_delta,
        payload_len,
        key: slice(key),
        value: slice(value),
        headers,
    })
}

/// Reads header `h` of a record and returns the bytes of its key and value, and the header
/// itself only if `keep` is set; it is checked either way.
fn read_header(
    r: &mut Cursor<'_>,
    h: usize,
    keep: bool,
) -> Result<(usize, Option<RecordHeader>), String> {
    let key_len = r.varint("header key length")?;
    let key_len = usize::try_from(key_len)
        .map_err(|_| format!("header {h} key length {key_len} is negative; keys cannot be null"))?;
    let key = r.take(key_len, "header key")?;
    let key = std::str::from_utf8(r.bytes(key))
        .map_err(|err| format!("header {h} key is not UTF-8: {err}"))?;

    let value = r.nullable_bytes("header value")?;
    let len = key_len + value.as_ref().map_or(0, ExactSizeIterator::len);
    Ok((
        len,
        keep.then(|| RecordHeader {
            key: key.to_owned(),
            value: value.map(|range| r.slice(range)),
        }),
    ))
}

/// A read position within `section[..end]`. Ranges it hands out index `section` directly.
struct Cursor<'a> {
    section: &'a [u8],
    /// The buffer `section` borrows from, when ranges should be handed out as zero-copy `Bytes`.
    owner: Option<&'a Bytes>,
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(section: &'a Bytes, pos: usize, end: usize) -> Self {
        Cursor {
            section,
            owner: Some(section),
            pos,
            end,
        }
    }

    fn borrowed(section: &'a [u8]) -> Self {
        Cursor {
            section,
            owner: None,
            pos: 0,
            end: section.len(),
        }
    }

    /// A cursor over `range` of the same buffer.
    fn sub(&self, range: Range<usize>) -> Self {
        Cursor {
            section: self.section,
            owner: self.owner,
            pos: range.start,
            end: range.end,
        }
    }

    /// `range` as `Bytes`: a zero-copy slice of the owner, or a copy when there is none.
    fn slice(&self, range: Range<usize>) -> Bytes {
        match self.owner {
            Some(owner) => owner.slice(range),
            None => Bytes::copy_from_slice(self.bytes(range)),
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.section.get(self.pos..self.end).unwrap_or_default()
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn bytes(&self, range: Range<usize>) -> &'a [u8] {
        self.section.get(range).unwrap_or_default()
    }

    fn byte(&mut self, field: &str) -> Result<u8, String> {
        let Some(&b) = self.rest().first() else {
            return Err(format!("{field} is cut off"));
        };
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, field: &str) -> Result<i32, String> {
        let (value, used) = decode_varint(self.rest()).map_err(|err| format!("{field}: {err}"))?;
        self.pos += used;
        Ok(value)
    }

    fn varlong(&mut self, field: &str) -> Result<i64, String> {
        let (value, used) = decode_varlong(self.rest()).map_err(|err| format!("{field}: {err}"))?;
        self.pos += used;
        Ok(value)
    }

    fn take(&mut self, len: usize, field: &str) -> Result<Range<usize>, String> {
        if len > self.remaining() {
            return Err(format!(
                "{field} of {len} bytes overruns the {} bytes left",
                self.remaining()
            ));
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    /// A varint length, -1 for null, followed by that many bytes.
    fn nullable_bytes(&mut self, field: &str) -> Result<Option<Range<usize>>, String> {
        let len = self.varint(field)?;
        if len == NULL_LEN {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| format!("{field} length {len} is invalid"))?;
        self.take(len, field).map(Some)
    }
}

/// Appends one encoded record to `out`. Errors are the reason text of a
/// [`FormatError::BadRecord`]: a length that does not fit Kafka's `i32` fields.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> Result<(), String> {
    // Measure first: the body length leads the record.
    let header_count = len_i32(headers.len(), "header count")?;
    let mut body_len = 1
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + nullable_len(key, "key")?
        + nullable_len(value, "value")?
        + varint_len(header_count);
    for (name, header_value) in headers {
        body_len += nullable_len(Some(name.as_bytes()), "header key")?;
        body_len += nullable_len(*header_value, "header value")?;
    }
    let body_len_i32 = len_i32(body_len, "record")?;

    out.reserve(varint_len(body_len_i32) + body_len);
    encode_varint(body_len_i32, out);
    out.push(0);
    encode_varlong(timestamp_delta, out);
    encode_varint(offset_delta, out);
    put_nullable(out, key);
    put_nullable(out, value);
    encode_varint(header_count, out);
    for (name, header_value) in headers {
        put_nullable(out, Some(name.as_bytes()));
        put_nullable(out, *header_value);
    }
    Ok(())
}

fn len_i32(len: usize, field: &str) -> Result<i32, String> {
    i32::try_from(len).map_err(|_| format!("{field} of {len} exceeds Kafka's i32 limit"))
}

fn nullable_len(bytes: Option<&[u8]>, field: &str) -> Result<usize, String> {
    match bytes {
        None => Ok(varint_len(NULL_LEN)),
        Some(b) => Ok(varint_len(len_i32(b.len(), field)?) + b.len()),
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => encode_varint(NULL_LEN, out),
        Some(b) => {
            // `nullable_len` already checked that the length fits.
            encode_varint(b.len() as i32, out);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::header::{ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, compute_crc};
    use crate::{BatchBuilder, compress};

    /// A batch header around `section`, with a correct CRC, so tests reach the record checks.
    fn seal(record_count: i32, last_offset_delta: i32, attributes: i16, section: &[u8]) -> Bytes {
        let header = BatchHeader {
            base_offset: 100,
            batch_length: (BATCH_HEADER_LEN - LOG_OVERHEAD + section.len()) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta,
            base_timestamp: 1_000,
            max_timestamp: 2_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count,
        };
        let mut out = BytesMut::zeroed(BATCH_HEADER_LEN + section.len());
        header.write(&mut out);
        out[BATCH_HEADER_LEN..].copy_from_slice(section);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }

    /// offsetDelta, timestampDelta, key, value.
    type Fields<'a> = (i32, i64, Option<&'a [u8]>, Option<&'a [u8]>);

    fn encoded(records: &[Fields<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(offset_delta, timestamp_delta, key, value) in records {
            encode_record(&mut out, offset_delta, timestamp_delta, key, value, &[]).unwrap();
        }
        out
    }

    fn bad_record_reason(batch: &Bytes) -> String {
        match decode_batch(batch) {
            Err(FormatError::BadRecord { reason, .. }) => reason,
            other => panic!("expected BadRecord, got {other:?}"),
        }
    }

    /// A CreateTime batch (base timestamp 1 000) with `base_timestamp` and `max_timestamp`
    /// rewritten and the CRC recomputed.
    fn with_timestamps(section: &[u8], count: i32, base: i64, max: i64, attributes: i16) -> Bytes {
        let batch = seal(count, count - 1, attributes, section);
        let mut header = BatchHeader::read(&batch).unwrap();
        header.base_timestamp = base;
        header.max_timestamp = max;
        let mut out = BytesMut::from(&batch[..]);
        header.write(&mut out);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }

    fn timestamp_check(batch: &Bytes) -> Result<(), FormatError> {
        check_timestamps(batch, &BatchHeader::read(batch).unwrap())
    }

    #[test]
    fn record_sizes_count_key_value_and_headers_and_name_the_first_too_large() {
        // key 3 + value 10 + headers (1 + 4) + (2 + 0) = 20 bytes; the second record is 21.
        let headers: [(&str, Option<&[u8]>); 2] = [("h", Some(b"1234")), ("h2", None)];
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut builder = crate::BatchBuilder::new(codec);
            builder
                .push(5, Some(b"key"), Some(&[7; 10]), &headers)
                .push(6, Some(b"key"), Some(&[7; 11]), &headers)
                .push(7, None, None, &[]);
            let batch = builder.build().unwrap();
            let limits = BatchLimits::default();
            let check = |max| check_produced_batch(batch.clone(), &limits, max).map(|_| ());
            assert_eq!(check(21), Ok(()));
            assert_eq!(
                check(20),
                Err(FormatError::RecordTooLarge {
                    index: 1,
                    size: 21,
                    max: 20
                }),
                "{codec:?}"
            );
            assert!(matches!(
                check(19),
                Err(FormatError::RecordTooLarge {
                    index: 0,
                    size: 20,
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_checked_batch_keeps_its_header_in_step_with_its_base_offset() {
        let mut builder = crate::BatchBuilder::new(Compression::None);
        builder.push(5, Some(b"k"), Some(b"v"), &[]);
        let batch = builder.build().unwrap();
        let mut checked = check_produced_batch(batch, &BatchLimits::default(), 100).unwrap();
        checked.set_base_offset(4_242);
        let header = BatchHeader::read(checked.as_bytes()).unwrap();
        assert_eq!(&header, checked.header());
        assert_eq!(header.base_offset, 4_242);
        assert!(validate_batch(checked.as_bytes(), &BatchLimits::default()).is_ok());
    }

    #[test]
    fn timestamps_in_range_pass_the_timestamp_check() {
        let section = encoded(&[
            (0, 0, None, None),
            (1, -1_000, None, None),
            (2, 5, None, None),
        ]);
        assert_eq!(timestamp_check(&seal(3, 2, 0, &section)), Ok(()));
        let section = encoded(&[(0, 0, None, None), (1, i64::MAX, None, None)]);
        assert_eq!(
            timestamp_check(&with_timestamps(&section, 2, 0, i64::MAX, 0)),
            Ok(())
        );
        let section = encoded(&[(0, 0, None, None)]);
        assert_eq!(
            timestamp_check(&with_timestamps(&section, 1, -1, -1, 0)),
            Ok(())
        );
    }

    #[test]
    fn a_record_timestamp_below_minus_one_is_refused_naming_the_record() {
        // Base 1 000: the second record is at -1 (allowed), the third at -2.
        let section = encoded(&[
            (0, 0, None, None),
            (1, -1_001, None, None),
            (2, -1_002, None, None),
        ]);
        let err = timestamp_check(&seal(3, 2, 0, &section)).unwrap_err();
        assert_eq!(
            err,
            FormatError::TimestampOutOfRange {
                index: 2,
                timestamp: -2
            }
        );
        // The decoders still read such a batch, as they must for batches stored earlier.
        assert!(decode_batch(&seal(3, 2, 0, &section)).is_ok());
    }

    #[test]
    fn a_max_timestamp_below_a_record_is_refused_naming_the_record() {
        // Records at 5 000, 5 002, 5 001; maxTimestamp 1 002 would hide them from time lookups.
        let section = encoded(&[(0, 0, None, None), (1, 2, None, None), (2, 1, None, None)]);
        let low = with_timestamps(&section, 3, 5_000, 1_002, 0);
        assert_eq!(
            timestamp_check(&low),
            Err(FormatError::MaxTimestampTooLow {
                max_timestamp: 1_002,
                index: 1,
                timestamp: 5_002
            })
        );
        // Exactly the largest, or above it (written loosely), is fine.
        for max in [5_002, 9_000] {
            assert_eq!(
                timestamp_check(&with_timestamps(&section, 3, 5_000, max, 0)),
                Ok(())
            );
        }
        // LogAppendTime batches read every record as maxTimestamp.
        assert_eq!(
            timestamp_check(&with_timestamps(&section, 3, 5_000, 1_002, 0x08)),
            Ok(())
        );
    }

    #[test]
    fn a_delta_that_overflows_is_refused_not_wrapped() {
        // -1 + i64::MIN would wrap to i64::MAX for a reader with Java's arithmetic.
        let section = encoded(&[(0, 0, None, None), (1, i64::MIN, None, None)]);
        let batch = with_timestamps(&section, 2, -1, i64::MAX, 0);
        let err = timestamp_check(&batch).unwrap_err();
        assert_eq!(
            err,
            FormatError::TimestampDeltaOverflow {
                index: 1,
                base_timestamp: -1,
                timestamp_delta: i64::MIN
            }
        );
        assert!(err.to_string().contains("record 1"), "{err}");
    }

    #[test]
    fn max_timestamp_out_of_range_is_refused_even_for_log_append_time() {
        let section = encoded(&[(0, 0, None, None)]);
        for attributes in [0, 0x08] {
            let batch = with_timestamps(&section, 1, 0, i64::MIN, attributes);
            assert_eq!(
                timestamp_check(&batch),
                Err(FormatError::MaxTimestampOutOfRange {
                    timestamp: i64::MIN
                })
            );
        }
        // In LogAppendTime batches records read as maxTimestamp; their deltas are not checked.
        let section = encoded(&[(0, 0, None, None), (1, i64::MIN, None, None)]);
        let batch = with_timestamps(&section, 2, -1, 5, 0x08);
        assert_eq!(timestamp_check(&batch), Ok(()));
    }

    #[test]
    fn check_records_agrees_with_the_decoder_without_the_crc() {
        let section = encoded(&[(0, 0, None, Some(b"a")), (1, 3, Some(b"k"), None)]);
        let good = seal(2, 1, 0, &section);
        let header = BatchHeader::read(&good).unwrap();
        assert!(check_records(&good, &header).is_ok());

        // Claiming more records than present, or fewer, is refused like the decoder does.
        for (count, delta) in [(3, 2), (1, 0)] {
            let lying = seal(count, delta, 0, &section);
            let header = BatchHeader::read(&lying).unwrap();
            assert!(check_records(&lying, &header).is_err(), "count {count}");
            assert!(decode_batch(&lying).is_err(), "count {count}");
        }

        // The CRC is not its business: a damaged CRC still passes the record walk.
        let mut bad_crc = BytesMut::from(&good[..]);
        bad_crc[CRC_OFFSET] ^= 0xff;
        assert!(check_records(&bad_crc, &header).is_ok());
    }

    #[test]
    fn a_record_is_encoded_byte_for_byte_like_kafka() {
        let mut out = Vec::new();
        encode_record(&mut out, 0, 0, Some(b"k"), Some(b"v"), &[("h", None)]).unwrap();
        // length 11, attributes, timestampDelta, offsetDelta, key, value, 1 header: "h", null.
        let expected = [
            0x16, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x02, 0x02, b'h', 0x01,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn uncompressed_payloads_are_slices_of_the_input() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(5, Some(b"key"), Some(b"value"), &[("h", Some(b"hv"))]);
        let batch = builder.build().unwrap().freeze();
        let input = batch.as_ptr_range();

        let (_, records) = decode_batch(&batch).unwrap();
        let record = &records[0];
        for part in [
            record.key.as_ref().unwrap(),
            record.value.as_ref().unwrap(),
            record.headers[0].value.as_ref().unwrap(),
        ] {
            assert!(input.contains(&part.as_ptr()), "{part:?} was copied");
        }
    }

    #[test]
    fn offsets_and_timestamps_follow_the_header() {
        let section = encoded(&[(0, 0, None, Some(b"a")), (1, -5, Some(b""), None)]);
        let batch = seal(2, 1, 0, &section);

        let (header, records) = decode_batch(&batch).unwrap();
        assert_eq!(header.record_count, 2);
        assert_eq!((records[0].offset, records[0].timestamp), (100, 1_000));
        assert_eq!((records[1].offset, records[1].timestamp), (101, 995));
        assert_eq!(records[1].key.as_deref(), Some(&b""[..]));
        assert_eq!(records[1].value, None);
        assert_eq!(
            record_offsets_and_timestamps(&batch).unwrap(),
            [(100, 1_000), (101, 995)]
        );
    }

    #[test]
    fn log_append_time_gives_every_record_the_max_timestamp() {
        let section = encoded(&[(0, 0, None, None), (1, 7, None, None)]);
        let batch = seal(2, 1, 0x08, &section);
        let (_, records) = decode_batch(&batch).unwrap();
        assert!(records.iter().all(|r| r.timestamp == 2_000));
    }

    #[test]
    fn an_empty_batch_decodes_to_no_records() {
        let batch = seal(0, 0, 0, &[]);
        assert!(decode_batch(&batch).unwrap().1.is_empty());
        let batch = seal(0, 0, 0, &[0x00]);
        assert!(matches!(
            decode_batch(&batch),
            Err(FormatError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn fewer_records_than_declared_is_an_error() {
        let section = encoded(&[(0, 0, None, None)]);
        let batch = seal(2, 1, 0, &section);
        assert_eq!(
            decode_batch(&batch),
            Err(FormatError::MissingRecords {
                declared: 2,
                found: 1
            })
        );
    }

    #[test]
    fn a_forged_record_count_allocates_nothing_large() {
        let section = encoded(&[(0, 0, None, None)]);
        let batch = seal(i32::MAX, i32::MAX - 1, 0, &section);
        assert!(matches!(
            decode_batch(&batch),
            Err(FormatError::MissingRecords { .. })
        ));
    }

    #[test]
    fn bytes_after_the_last_record_are_an_error() {
        let mut section = encoded(&[(0, 0, None, None)]);
        section.push(0);
        let batch = seal(1, 0, 0, &section);
        assert_eq!(
            decode_batch(&batch),
            Err(FormatError::TrailingBytes {
                record_count: 1,
                extra: 1
            })
        );
    }

    #[test]
    fn last_offset_delta_must_match_the_record_count() {
        let section = encoded(&[(0, 0, None, None), (1, 0, None, None)]);
        let batch = seal(2, 2, 0, &section);
        assert!(matches!(
            decode_batch(&batch),
            Err(FormatError::BadLastOffsetDelta { .. })
        ));
    }

    #[test]
    fn offset_gaps_are_rejected() {
        let section = encoded(&[(0, 0, None, None), (2, 0, None, None)]);
        let batch = seal(2, 1, 0, &section);
        assert!(bad_record_reason(&batch).contains("dense"));
    }

    #[test]
    fn a_record_length_that_disagrees_with_its_fields_is_rejected() {
        let mut section = encoded(&[(0, 0, None, None)]);
        // Claim one byte more, and supply it, so the batch length still adds up.
        section[0] += 2;
        section.push(0);
        let batch = seal(1, 0, 0, &section);
        assert!(bad_record_reason(&batch).contains("fields end"));

        let mut section = encoded(&[(0, 0, None, None)]);
        section[0] = 0x7e; // length 63 of 6 bytes
        let batch = seal(1, 0, 0, &section);
        assert!(bad_record_reason(&batch).contains("overruns"));
    }

    #[test]
    fn key_lengths_are_bounded_by_the_record() {
        // length 6: attributes, deltas, key length 100 with no key bytes, ...
        let section = [0x0c, 0x00, 0x00, 0x00, 0xc8, 0x01, 0x01, 0x00];
        let batch = seal(1, 0, 0, &section[..7]);
        assert!(bad_record_reason(&batch).contains("key"));
        // A key length below -1.
        let section = [0x0c, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00];
        let batch = seal(1, 0, 0, &section);
        assert!(bad_record_reason(&batch).contains("key length -2"));
    }

    #[test]
    fn header_keys_must_be_present_and_utf8() {
        // One header whose key length is -1 (null).
        let section = [0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01];
        let batch = seal(1, 0, 0, &section[..9]);
        assert!(bad_record_reason(&batch).contains("cannot be null"));

        let mut section = Vec::new();
        encode_record(&mut section, 0, 0, None, None, &[("é", None)]).unwrap();
        let pos = section.iter().position(|&b| b == 0xc3).unwrap();
        section[pos] = 0xff;
        let batch = seal(1, 0, 0, &section);
        assert!(bad_record_reason(&batch).contains("UTF-8"));
    }

    #[test]
    fn an_unknown_codec_is_rejected() {
        let section = encoded(&[(0, 0, None, None)]);
        let batch = seal(1, 0, 5, &section);
        assert_eq!(
            decode_batch(&batch),
            Err(FormatError::UnknownCompression { id: 5 })
        );
    }

    #[test]
    fn a_base_offset_near_the_top_is_rejected_not_overflowed() {
        let section = encoded(&[(0, 0, None, None), (1, 0, None, None)]);
        let batch = seal(2, 1, 0, &section);
        let mut batch = BytesMut::from(&batch[..]);
        crate::header::set_base_offset(&mut batch, i64::MAX);
        assert_eq!(BASE_OFFSET_OFFSET, 0);
        assert!(matches!(
            decode_batch(&batch.freeze()),
            Err(FormatError::OffsetOverflow { .. })
        ));
    }

    #[test]
    fn a_zip_bomb_is_refused() {
        let raw = vec![0u8; DEFAULT_MAX_DECOMPRESSED_BYTES + 1];
        let section = compress(Compression::Zstd, &raw).unwrap();
        let batch = seal(1, 0, Compression::Zstd.id(), &section);
        assert!(matches!(
            decode_batch(&batch),
            Err(FormatError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn a_bad_crc_is_caught_before_the_records() {
        let section = encoded(&[(0, 0, None, None)]);
        let mut batch = BytesMut::from(&seal(1, 0, 0, &section)[..]);
        batch[ATTRIBUTES_OFFSET + 2] ^= 0x01;
        assert!(matches!(
            decode_batch(&batch.freeze()),
            Err(FormatError::CrcMismatch { .. })
        ));
    }
}
