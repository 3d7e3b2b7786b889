//! Compression of a batch's records section, in the framings Kafka clients and brokers use.
//!
//! A compressed v2 batch keeps its 61-byte header in the clear and compresses only the bytes
//! after it, all records together, as one stream:
//!
//! - gzip: one or more RFC 1952 members (read as a concatenation, written as one member).
//! - Snappy: the xerial framing Kafka's Java client writes, a 16-byte header (`0x82`, `SNAPPY`,
//!   `0x00`, then two big-endian `i32`s, version and minimum compatible version, both 1)
//!   followed by blocks, each a big-endian `i32` length and that many bytes of raw Snappy. A
//!   stream without the header is read as a single raw Snappy block, as some clients send.
//! - LZ4: the LZ4 frame format, written with independent 64 KiB blocks and no checksums other
//!   than the header's, which is what Kafka's Java client writes. On reading, a frame whose
//!   4-byte end mark is missing is accepted as ended; the batch CRC already guards against
//!   bytes lost in storage or transit.
//! - zstd: standard Zstandard frames.
//!
//! Invariants kept here:
//! - Decompression never produces more than the caller's limit: the output is cut off one byte
//!   past it and reported as [`FormatError::DecompressedTooLarge`], so a small forged batch
//!   cannot make the process allocate gigabytes.
//! - No function here panics on arbitrary input.
//!
//! This module sees only the records section; it does not know about headers, CRCs or records.

use std::io::{Read, Write};

use crate::{Compression, FormatError};

/// Largest records section [`decode_batch`](crate::decode_batch) will decompress: 64 MiB.
///
/// Kafka's default maximum message size is 1 MiB and compression ratios on real data rarely pass
/// 20:1, so this leaves a wide margin while bounding what a forged batch can cost.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// The 8 bytes that open a xerial Snappy stream.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus the version and compatible-version fields.
const XERIAL_HEADER_LEN: usize = XERIAL_MAGIC.len() + 8;
/// Version and minimum compatible version the xerial header claims; both 1 everywhere.
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block, the xerial library's default.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// zstd level Kafka uses when none is configured.
const ZSTD_LEVEL: i32 = 3;

/// Compresses a records section with `codec`. [`Compression::None`] returns a copy.
///
/// An empty input still yields a valid stream of the codec (for Snappy, a bare xerial header).
///
/// # Errors
///
/// [`FormatError::Compression`] if the codec reports a failure.
pub fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    match codec {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => compress_gzip(raw),
        Compression::Snappy => compress_snappy(raw),
        Compression::Lz4 => compress_lz4(raw),
        Compression::Zstd => compress_zstd(raw),
    }
}

/// Decompresses a records section written with `codec`, refusing to produce more than
/// `max_decompressed_bytes`. [`Compression::None`] returns a copy, under the same limit.
///
/// # Errors
///
/// [`FormatError::DecompressedTooLarge`] if the output would pass the limit, and
/// [`FormatError::Compression`] if the input is not a valid stream of the codec.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<u8>, FormatError> {
    match codec {
        Compression::None => read_bounded(data, codec, max_decompressed_bytes),
        Compression::Gzip => read_bounded(
            flate2::read::MultiGzDecoder::new(data),
            codec,
            max_decompressed_bytes,
        ),
        Compression::Snappy => decompress_snappy(data, max_decompressed_bytes),
        Compression::Lz4 => read_bounded(
            lz4_flex::frame::FrameDecoder::new(data),
            codec,
            max_decompressed_bytes,
        ),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|err| failed(codec, "decompression", err))?;
            read_bounded(decoder, codec, max_decompressed_bytes)
        }
    }
}

fn compress_gzip(raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(raw)
        .and_then(|()| encoder.finish())
        .map_err(|err| failed(Compression::Gzip, "compression", err))
}

fn compress_snappy(raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + snap::raw::max_compress_len(raw.len()));

    // Header: magic, then version and minimum compatible version.
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());

    // Blocks: each independently compressed, prefixed by its compressed length.
    let mut encoder = snap::raw::Encoder::new();
    for chunk in raw.chunks(XERIAL_BLOCK_LEN) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|err| failed(Compression::Snappy, "compression", err))?;
        let Ok(block_len) = i32::try_from(block.len()) else {
            return Err(failed(
                Compression::Snappy,
                "compression",
                "block too large",
            ));
        };
        out.extend_from_slice(&block_len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

fn compress_lz4(raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Independent);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder
        .write_all(raw)
        .map_err(|err| failed(Compression::Lz4, "compression", err))?;
    encoder
        .finish()
        .map_err(|err| failed(Compression::Lz4, "compression", err))
}

fn compress_zstd(raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    zstd::stream::encode_all(raw, ZSTD_LEVEL)
        .map_err(|err| failed(Compression::Zstd, "compression", err))
}

fn decompress_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, FormatError> {
    let is_xerial = data.len() >= XERIAL_HEADER_LEN && data.starts_with(&XERIAL_MAGIC);
    if !is_xerial {
        let mut out = Vec::new();
        append_snappy_block(data, &mut out, limit)?;
        return Ok(out);
    }

    // The version fields are ignored: only one xerial layout exists, and some writers are known
    // to store these two fields little-endian.
    let mut rest = data.get(XERIAL_HEADER_LEN..).unwrap_or_default();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len_bytes, after)) = rest.split_first_chunk::<4>() else {
            return Err(failed(
                Compression::Snappy,
                "decompression",
                "block length cut off",
            ));
        };
        let block_len = i32::from_be_bytes(*len_bytes);
        let Some(block) = usize::try_from(block_len)
            .ok()
            .and_then(|len| after.get(..len))
        else {
            let reason = format!("block length {block_len} with {} bytes left", after.len());
            return Err(failed(Compression::Snappy, "decompression", reason));
        };
        append_snappy_block(block, &mut out, limit)?;
        rest = after.get(block.len()..).unwrap_or_default();
    }
    Ok(out)
}

/// Decompresses one raw Snappy block onto the end of `out`, checking the length the block
/// declares against `limit` before allocating for it.
fn append_snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), FormatError> {
    let len = snap::raw::decompress_len(block)
        .map_err(|err| failed(Compression::Snappy, "decompression", err))?;
    if len > limit.saturating_sub(out.len()) {
        return Err(FormatError::DecompressedTooLarge {
            codec: Compression::Snappy.name(),
            limit,
        });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|err| failed(Compression::Snappy, "decompression", err))?;
    out.truncate(start + written);
    Ok(())
}

/// Reads `reader` to its end, but never more than one byte past `limit`.
fn read_bounded(
    reader: impl Read,
    codec: Compression,
    limit: usize,
) -> Result<Vec<u8>, FormatError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|err| failed(codec, "decompression", err))?;
    if out.len() > limit {
        return Err(FormatError::DecompressedTooLarge {
            codec: codec.name(),
            limit,
        });
    }
    Ok(out)
}

fn failed(
    codec: Compression,
    operation: &'static str,
    reason: impl std::fmt::Display,
) -> FormatError {
    FormatError::Compression {
        codec: codec.name(),
        operation,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn snappy_is_written_with_the_xerial_header() {
        let out = compress(Compression::Snappy, b"hello hello hello").unwrap();
        assert_eq!(out[..8], XERIAL_MAGIC);
        assert_eq!(out[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn snappy_spans_several_xerial_blocks() {
        let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let out = compress(Compression::Snappy, &raw).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &out, raw.len()).unwrap(),
            raw
        );
    }

    #[test]
    fn raw_snappy_without_framing_is_read() {
        let raw = b"plain snappy, no xerial header".repeat(10);
        let block = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &block, 1 << 20).unwrap(),
            raw
        );
    }

    #[test]
    fn xerial_header_with_little_endian_versions_is_read() {
        let raw = b"abcabcabcabc".repeat(5);
        let mut out = compress(Compression::Snappy, &raw).unwrap();
        out[8..16].copy_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(decompress(Compression::Snappy, &out, 1 << 20).unwrap(), raw);
    }

    #[test]
    fn lz4_frames_use_independent_blocks() {
        let out = compress(Compression::Lz4, b"some records").unwrap();
        assert_eq!(out[..4], [0x04, 0x22, 0x4d, 0x18]);
        // FLG: version 01, block independence set, no checksums, no content size.
        assert_eq!(out[4], 0b0110_0000);
        // BD: 64 KiB maximum block size.
        assert_eq!(out[5], 0b0100_0000);
    }

    #[test]
    fn output_past_the_limit_is_refused_for_every_codec() {
        let raw = vec![0u8; 100_000];
        for codec in CODECS {
            let compressed = compress(codec, &raw).unwrap();
            let err = decompress(codec, &compressed, raw.len() - 1).unwrap_err();
            assert!(
                matches!(err, FormatError::DecompressedTooLarge { .. }),
                "{codec:?}: {err}"
            );
            assert_eq!(decompress(codec, &compressed, raw.len()).unwrap(), raw);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_read_whole() {
        let mut stream = compress(Compression::Gzip, b"first ").unwrap();
        stream.extend(compress(Compression::Gzip, b"second").unwrap());
        assert_eq!(
            decompress(Compression::Gzip, &stream, 100).unwrap(),
            b"first second"
        );
    }

    #[test]
    fn concatenated_zstd_frames_are_read_whole() {
        let mut stream = compress(Compression::Zstd, b"first ").unwrap();
        stream.extend(compress(Compression::Zstd, b"second").unwrap());
        assert_eq!(
            decompress(Compression::Zstd, &stream, 100).unwrap(),
            b"first second"
        );
    }

    #[test]
    fn truncated_streams_are_errors() {
        let raw = b"0123456789".repeat(100);
        for codec in CODECS.into_iter().skip(1) {
            let compressed = compress(codec, &raw).unwrap();
            // Past the LZ4 end mark (4 bytes), which the frame decoder does not insist on.
            for n in 5..12 {
                let cut = &compressed[..compressed.len() - n];
                assert!(
                    decompress(codec, cut, 1 << 20).is_err(),
                    "{codec:?} cut by {n}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(raw in proptest::collection::vec(any::<u8>(), 0..5000)) {
            for codec in CODECS {
                let compressed = compress(codec, &raw).unwrap();
                prop_assert_eq!(&decompress(codec, &compressed, raw.len()).unwrap(), &raw);
            }
        }

        #[test]
        fn decompressing_arbitrary_bytes_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            for codec in CODECS {
                if let Ok(out) = decompress(codec, &data, 4096) {
                    prop_assert!(out.len() <= 4096);
                }
            }
        }
    }
}
