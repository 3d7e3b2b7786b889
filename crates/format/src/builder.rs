//! Building a v2 record batch from records, as a producer would send it.
//!
//! The builder encodes each record as it is pushed, so its memory is the encoded batch and
//! nothing more, then compresses the records section and seals the header in
//! [`BatchBuilder::build`].
//!
//! Invariants of every batch it builds:
//! - `baseOffset` is 0 and offsets are dense (record `i` has `offsetDelta == i`); the log
//!   assigns the real base offset later with [`set_base_offset`](crate::header::set_base_offset).
//! - `partitionLeaderEpoch` is -1, as Kafka's Java producer sends it; the broker sets it.
//! - `baseTimestamp` is the first record's timestamp and `maxTimestamp` the largest one.
//! - Every timestamp follows the timestamp rule ([`TIMESTAMP_RULE`](crate::TIMESTAMP_RULE)) and
//!   is exactly `baseTimestamp + timestampDelta`: a record that breaks this is not added, and
//!   the build fails naming it, so no reader ever sees a wrapped timestamp.
//! - The CRC32C is correct, so the result passes [`validate_batch`](crate::validate_batch).

use bytes::BytesMut;

use crate::header::{
    BATCH_HEADER_LEN, CRC_OFFSET, LOG_OVERHEAD, MAGIC_V2, attributes, compute_crc,
};
use crate::record::encode_record;
use crate::{
    BatchHeader, Compression, FormatError, TimestampType, compression, is_valid_timestamp,
};

/// `producerId`, `producerEpoch` and `baseSequence` of a producer that is not idempotent.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;
const NO_SEQUENCE: i32 = -1;
/// What producers put in `partitionLeaderEpoch`; the broker overwrites it.
const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Accumulates records and builds them into one v2 batch.
///
/// ```
/// use rivulet_format::{BatchBuilder, Compression, decode_batch};
///
/// let mut builder = BatchBuilder::new(Compression::Lz4);
/// builder
///     .push(1_700_000_000_000, Some(b"user-1"), Some(b"signed up"), &[("trace", None)])
///     .push(1_700_000_000_005, None, Some(b"heartbeat"), &[]);
/// let batch = builder.build()?.freeze();
///
/// let (header, records) = decode_batch(&batch)?;
/// assert_eq!(header.record_count, 2);
/// assert_eq!(records[1].offset, 1);
/// assert_eq!(records[1].value.as_deref(), Some(&b"heartbeat"[..]));
/// # Ok::<(), rivulet_format::FormatError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    timestamp_type: TimestampType,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// The encoded, uncompressed records section.
    records: Vec<u8>,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// The first record that could not be encoded; [`BatchBuilder::build`] reports it.
    error: Option<FormatError>,
}

impl BatchBuilder {
    /// An empty builder for a batch compressed with `compression`, with create-time timestamps
    /// and no producer id.
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            timestamp_type: TimestampType::CreateTime,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            records: Vec::new(),
            record_count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            error: None,
        }
    }

    /// Sets the timestamp type flag. With [`TimestampType::LogAppendTime`], readers give every
    /// record the batch's `maxTimestamp`.
    pub fn timestamp_type(&mut self, timestamp_type: TimestampType) -> &mut Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Marks the batch as sent by an idempotent producer: its id, epoch and the sequence number
    /// of the first record.
    pub fn producer(&mut self, id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Appends a record. `None` is a null key, value or header value, which Kafka tells apart
    /// from an empty one.
    ///
    /// A record that cannot be encoded (a timestamp outside
    /// [`TIMESTAMP_RULE`](crate::TIMESTAMP_RULE) or too far from the first record's, a field
    /// longer than `i32::MAX` bytes, more than `i32::MAX` records) is not added;
    /// [`BatchBuilder::build`] then reports the first such failure.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let index = self.record_count;
        let timestamp_delta = match self.timestamp_delta(timestamp) {
            Ok(delta) => delta,
            Err(err) => {
                self.error = Some(err);
                return self;
            }
        };

        let encoded = match index.checked_add(1) {
            None => Err("the batch already holds i32::MAX records".to_owned()),
            Some(next) => encode_record(
                &mut self.records,
                index,
                timestamp_delta,
                key,
                value,
                headers,
            )
            .map(|()| next),
        };
        match encoded {
            Ok(next) => {
                // The first record fixes the base timestamp; later ones are stored relative to it.
                if index == 0 {
                    self.base_timestamp = timestamp;
                }
                self.record_count = next;
                self.max_timestamp = self.max_timestamp.max(timestamp);
            }
            Err(reason) => {
                self.error = Some(FormatError::BadRecord {
                    index: index as usize,
                    reason,
                });
            }
        }
        self
    }

    /// Whether a record with `timestamp` can be pushed without failing the batch on its
    /// timestamp: the timestamp follows [`TIMESTAMP_RULE`](crate::TIMESTAMP_RULE) and lies
    /// within a 64-bit delta of the first record's. A producer that gets `false` for an allowed
    /// timestamp starts a new batch for the record.
    pub fn accepts_timestamp(&self, timestamp: i64) -> bool {
        self.timestamp_delta(timestamp).is_ok()
    }

    /// The `timestampDelta` of a record pushed now with `timestamp`.
    fn timestamp_delta(&self, timestamp: i64) -> Result<i64, FormatError> {
        let index = self.record_count as usize;
        if !is_valid_timestamp(timestamp) {
            return Err(FormatError::TimestampOutOfRange { index, timestamp });
        }
        if index == 0 {
            return Ok(0);
        }
        timestamp
            .checked_sub(self.base_timestamp)
            .ok_or(FormatError::TimestampsTooFarApart {
                index,
                timestamp,
                base_timestamp: self.base_timestamp,
            })
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// Size of the batch if it were built now without compression; compression usually makes
    /// the real batch smaller, though it can add a few bytes to a tiny one.
    pub fn estimated_size(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    /// Builds the batch: compresses the records, writes the header and seals it with its CRC.
    /// The builder is left as it was, so the same records can be built again.
    ///
    /// # Errors
    ///
    /// [`FormatError::EmptyBatch`] if no record was pushed; the
    /// [`FormatError::TimestampOutOfRange`], [`FormatError::TimestampsTooFarApart`] or
    /// [`FormatError::BadRecord`] of a record that could not be encoded;
    /// [`FormatError::Compression`] if the codec fails;
    /// [`FormatError::BatchTooLarge`] if the batch would not fit `batchLength`'s `i32`.
    pub fn build(&self) -> Result<BytesMut, FormatError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        if self.record_count == 0 {
            return Err(FormatError::EmptyBatch);
        }

        let section = match self.compression {
            Compression::None => None,
            codec => Some(compression::compress(codec, &self.records)?),
        };
        let section = section.as_deref().unwrap_or(&self.records);

        let total = BATCH_HEADER_LEN + section.len();
        let max = LOG_OVERHEAD + i32::MAX as usize;
        let Some(batch_length) = total
            .checked_sub(LOG_OVERHEAD)
            .and_then(|len| i32::try_from(len).ok())
        else {
            return Err(FormatError::BatchTooLarge { size: total, max });
        };

        let header = BatchHeader {
            base_offset: 0,
            batch_length,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            magic: MAGIC_V2,
            crc: 0,
            attributes: attributes(self.compression, self.timestamp_type),
            last_offset_delta: self.record_count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count,
        };

        // The CRC covers the header from `attributes` on, so it goes in last.
        let mut out = BytesMut::zeroed(total);
        header.write(&mut out);
        out[BATCH_HEADER_LEN..].copy_from_slice(section);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    use super::*;
    use crate::header::ATTRIBUTES_OFFSET;
    use crate::{
        BatchLimits, Record, check_produced_batch, check_timestamps, decode_batch,
        record_offsets_and_timestamps, validate_batch, visit_records,
    };

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// What a test pushes: timestamp, key, value, headers.
    type Spec = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            Just(Some(Vec::new())),
            proptest::collection::vec(any::<u8>(), 1..40).prop_map(Some),
            // Repetitive, so that compression has something to do.
            (any::<u8>(), 100..3000usize).prop_map(|(b, n)| Some(vec![b; n])),
        ]
    }

    /// Allowed timestamps only, both ends included.
    fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![
            4 => 1_600_000_000_000i64..1_800_000_000_000,
            1 => 0i64..1_000,
            1 => 0..=i64::MAX,
            1 => Just(-1i64),
            1 => Just(i64::MAX),
        ]
    }

    /// Records that fit one batch: where -1 and `i64::MAX` would meet, -1 becomes 0.
    fn specs(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Spec>> {
        proptest::collection::vec(spec(), len).prop_map(|mut specs| {
            if specs.iter().any(|s| s.0 == i64::MAX) {
                for spec in specs.iter_mut().filter(|s| s.0 == -1) {
                    spec.0 = 0;
                }
            }
            specs
        })
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let header = ("\\PC{0,8}", payload());
        (
            timestamp(),
            payload(),
            payload(),
            proptest::collection::vec(header, 0..4),
        )
    }

    fn build(codec: Compression, specs: &[Spec]) -> BatchBuilder {
        let mut builder = BatchBuilder::new(codec);
        for (ts, key, value, headers) in specs {
            let headers: Vec<(&str, Option<&[u8]>)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            builder.push(*ts, key.as_deref(), value.as_deref(), &headers);
        }
        builder
    }

    fn expected(specs: &[Spec]) -> Vec<Record> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (ts, key, value, headers))| Record {
                offset: i as i64,
                timestamp: *ts,
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: headers
                    .iter()
                    .map(|(k, v)| crate::RecordHeader {
                        key: k.clone(),
                        value: v.clone().map(Bytes::from),
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn an_empty_builder_does_not_build() {
        assert_eq!(
            BatchBuilder::new(Compression::None).build(),
            Err(FormatError::EmptyBatch)
        );
    }

    #[test]
    fn header_fields_are_set_like_a_kafka_producer_sets_them() {
        let mut builder = BatchBuilder::new(Compression::Gzip);
        builder
            .producer(42, 3, 17)
            .push(500, None, Some(b"x"), &[])
            .push(900, None, None, &[])
            .push(100, None, None, &[]);
        let batch = builder.build().unwrap();
        let header = validate_batch(&batch, &BatchLimits::default()).unwrap();

        assert_eq!(header.base_offset, 0);
        assert_eq!(header.partition_leader_epoch, -1);
        assert_eq!(header.compression(), Some(Compression::Gzip));
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        assert_eq!((header.base_timestamp, header.max_timestamp), (500, 900));
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (42, 3, 17)
        );
        assert_eq!((header.record_count, header.last_offset_delta), (3, 2));
        assert!(!header.is_transactional() && !header.is_control());
    }

    #[test]
    fn defaults_mark_no_producer() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(1, None, None, &[]);
        let header = validate_batch(&builder.build().unwrap(), &BatchLimits::default()).unwrap();
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (-1, -1, -1)
        );
    }

    #[test]
    fn estimated_size_is_exact_without_compression() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(1, Some(b"k"), Some(b"v"), &[("a", Some(b"b"))]);
        builder.push(2, None, Some(&[7; 300]), &[]);
        assert_eq!(builder.record_count(), 2);
        assert_eq!(builder.estimated_size(), builder.build().unwrap().len());
    }

    #[test]
    fn log_append_time_is_flagged_and_applied() {
        let mut builder = BatchBuilder::new(Compression::Snappy);
        builder
            .timestamp_type(TimestampType::LogAppendTime)
            .push(10, None, None, &[])
            .push(30, None, None, &[]);
        let (header, records) = decode_batch(&builder.build().unwrap().freeze()).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert!(records.iter().all(|r| r.timestamp == 30));
    }

    #[test]
    fn timestamps_outside_the_rule_are_refused_naming_the_record() {
        for bad in [-2, i64::MIN] {
            let mut builder = BatchBuilder::new(Compression::None);
            builder
                .push(0, None, Some(b"ok"), &[])
                .push(bad, None, None, &[]);
            let err = builder.build().unwrap_err();
            assert_eq!(
                err,
                FormatError::TimestampOutOfRange {
                    index: 1,
                    timestamp: bad
                }
            );
            let message = err.to_string();
            assert!(message.contains("record 1"), "{message}");
            assert!(message.contains(&bad.to_string()), "{message}");
            assert!(message.contains("0 to 9223372036854775807"), "{message}");
        }
    }

    #[test]
    fn a_refused_record_leaves_the_builder_as_it_was() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(-5, None, None, &[]);
        assert_eq!(builder.record_count(), 0);
        assert!(!builder.accepts_timestamp(-5));
        assert!(builder.accepts_timestamp(-1));
    }

    #[test]
    fn both_ends_of_the_range_build_but_not_into_one_batch() {
        for (first, second) in [(-1, i64::MAX), (0, i64::MAX), (i64::MAX, -1), (-1, 0)] {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(first, None, None, &[]);
            let fits = second.checked_sub(first).is_some();
            assert_eq!(builder.accepts_timestamp(second), fits, "{first} {second}");
            builder.push(second, None, None, &[]);
            match builder.build() {
                Ok(batch) => {
                    assert!(fits);
                    let (header, records) = decode_batch(&batch.freeze()).unwrap();
                    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
                    assert_eq!(timestamps, [first, second]);
                    assert_eq!(header.max_timestamp, first.max(second));
                }
                Err(err) => {
                    assert!(!fits);
                    assert_eq!(
                        err,
                        FormatError::TimestampsTooFarApart {
                            index: 1,
                            timestamp: second,
                            base_timestamp: first
                        }
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_codec_round_trips_records(
            specs in specs(1..20),
            codec in proptest::sample::select(CODECS.to_vec()),
        ) {
            let batch = build(codec, &specs).build().unwrap().freeze();
            let validated = validate_batch(&batch, &BatchLimits::default()).unwrap();

            let (header, records) = decode_batch(&batch).unwrap();
            prop_assert_eq!(header, validated);
            prop_assert_eq!(header.compression(), Some(codec));
            prop_assert_eq!(header.base_timestamp, specs[0].0);
            prop_assert_eq!(header.max_timestamp, specs.iter().map(|s| s.0).max().unwrap());
            prop_assert_eq!(&records, &expected(&specs));

            let pairs: Vec<(i64, i64)> = records.iter().map(|r| (r.offset, r.timestamp)).collect();
            prop_assert_eq!(record_offsets_and_timestamps(&batch).unwrap(), pairs);
            prop_assert_eq!(check_timestamps(&batch, &header), Ok(()));

            // Visiting yields the decoder's records in order, and stops where asked.
            let mut visited = Vec::new();
            prop_assert_eq!(
                visit_records(&batch, |r| {
                    visited.push(r);
                    std::ops::ControlFlow::Continue(())
                }),
                Ok(())
            );
            prop_assert_eq!(&visited, &records);
            let stop = specs.len().div_ceil(2);
            let mut first = Vec::new();
            prop_assert_eq!(
                visit_records(&batch, |r| {
                    first.push(r);
                    if first.len() == stop {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                }),
                Ok(())
            );
            prop_assert_eq!(&first[..], &records[..stop]);

            // The record-size limit: worked out from the specs, the largest passes and one
            // byte less names the first record of that size.
            let sizes: Vec<usize> = specs
                .iter()
                .map(|(_, key, value, headers)| {
                    key.as_ref().map_or(0, Vec::len)
                        + value.as_ref().map_or(0, Vec::len)
                        + headers
                            .iter()
                            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                            .sum::<usize>()
                })
                .collect();
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let limits = BatchLimits::default();
            let checked = check_produced_batch(BytesMut::from(&batch[..]), &limits, largest);
            prop_assert_eq!(checked.map(|c| *c.header()), Ok(header));
            if largest > 0 {
                let index = sizes.iter().position(|&s| s == largest).unwrap_or(0);
                prop_assert_eq!(
                    check_produced_batch(BytesMut::from(&batch[..]), &limits, largest - 1).map(|_| ()),
                    Err(FormatError::RecordTooLarge { index, size: largest, max: largest - 1 })
                );
            }
        }

        #[test]
        fn flipping_any_crc_covered_byte_fails_validation(
            specs in specs(1..5),
            codec in proptest::sample::select(CODECS.to_vec()),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut batch = build(codec, &specs).build().unwrap();
            let i = ATTRIBUTES_OFFSET + at.index(batch.len() - ATTRIBUTES_OFFSET);
            batch[i] ^= flip;
            prop_assert!(validate_batch(&batch, &BatchLimits::default()).is_err());
            prop_assert!(decode_batch(&batch.freeze()).is_err());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let batch = Bytes::from(bytes);
            let _ = decode_batch(&batch);
            let _ = record_offsets_and_timestamps(&batch);
        }

        /// Damage behind a correct CRC, so the record decoder itself meets the bad bytes.
        #[test]
        fn decoding_resealed_damage_never_panics(
            specs in specs(1..5),
            codec in proptest::sample::select(CODECS.to_vec()),
            edits in proptest::collection::vec(
                (any::<proptest::sample::Index>(), any::<u8>()),
                1..6,
            ),
        ) {
            let mut batch = build(codec, &specs).build().unwrap();
            for (at, byte) in edits {
                let i = ATTRIBUTES_OFFSET + at.index(batch.len() - ATTRIBUTES_OFFSET);
                batch[i] = byte;
            }
            let crc = compute_crc(&batch);
            batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            let batch = batch.freeze();

            let decoded = decode_batch(&batch);
            let offsets = record_offsets_and_timestamps(&batch);
            prop_assert_eq!(decoded.is_ok(), offsets.is_ok());
            if let Ok((header, records)) = decoded {
                prop_assert_eq!(records.len(), header.record_count as usize);
            }
        }
    }
}
