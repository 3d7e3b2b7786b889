//! Feeds arbitrary bytes to the record batch decoders, which must return errors, never panic.
//!
//! Each input is decoded twice: as given, which exercises the header checks, and "resealed",
//! with `batchLength` and the CRC32C rewritten to fit, so that the fuzzer's bytes also reach the
//! record decoder and the decompressors instead of stopping at the CRC.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rivulet_format::header::{BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD};
use rivulet_format::{
    BatchLimits, decode_batch, header::compute_crc, record_offsets_and_timestamps, scan_batch,
    validate_batch,
};

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));

    if data.len() >= BATCH_HEADER_LEN {
        let mut resealed = BytesMut::from(data);
        let Ok(batch_length) = i32::try_from(data.len() - LOG_OVERHEAD) else {
            return;
        };
        resealed[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&batch_length.to_be_bytes());
        let crc = compute_crc(&resealed);
        resealed[CRC_OFFSET..][..4].copy_from_slice(&crc.to_be_bytes());
        check(resealed.freeze());
    }
});

fn check(batch: Bytes) {
    let _ = scan_batch(&batch, &BatchLimits::default());
    let _ = validate_batch(&batch, &BatchLimits::default());

    // The two decoders apply the same checks, so they must agree on what is valid.
    let decoded = decode_batch(&batch);
    let offsets = record_offsets_and_timestamps(&batch);
    assert_eq!(
        decoded.is_ok(),
        offsets.is_ok(),
        "{decoded:?} vs {offsets:?}"
    );
    if let (Ok((header, records)), Ok(offsets)) = (decoded, offsets) {
        assert_eq!(
            records.len(),
            usize::try_from(header.record_count).unwrap_or(0)
        );
        assert_eq!(records.len(), offsets.len());
    }
}
