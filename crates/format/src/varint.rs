//! Kafka's variable-length integers: zigzag-encoded varints (`i32`) and varlongs (`i64`).
//!
//! The records inside a v2 batch store every length, delta and count this way. A value is first
//! zigzag-mapped so that small negative numbers stay small (`0, -1, 1, -2, ...` become
//! `0, 1, 2, 3, ...`), then written seven bits at a time, least significant group first, with the
//! high bit of each byte set when another byte follows.
//!
//! Invariants kept here:
//! - Encoders always write the shortest form: at most 5 bytes for a varint, 10 for a varlong.
//! - Decoders never read past the slice they are given, and reject an encoding that is longer
//!   than its type allows or whose last byte carries bits the type cannot hold. They accept a
//!   padded (non-minimal) encoding within that length, as Kafka's own reader does.
//!
//! This module knows nothing about records; callers turn its errors into record-level ones.

use bytes::BufMut;

use crate::FormatError;

/// Longest encoding of an `i32` varint.
pub const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of an `i64` varlong.
pub const MAX_VARLONG_LEN: usize = 10;

/// Appends `value` as a zigzag varint.
pub fn encode_varint(value: i32, out: &mut impl BufMut) {
    encode_unsigned(u64::from(zigzag32(value)), out);
}

/// Appends `value` as a zigzag varlong.
pub fn encode_varlong(value: i64, out: &mut impl BufMut) {
    encode_unsigned(zigzag64(value), out);
}

/// Number of bytes [`encode_varint`] writes for `value`.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(zigzag32(value)))
}

/// Number of bytes [`encode_varlong`] writes for `value`.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag64(value))
}

/// Decodes a zigzag varint from the start of `buf`, returning the value and the bytes it used.
///
/// # Errors
///
/// [`FormatError::BadVarint`] if `buf` ends inside the varint, if it runs past
/// [`MAX_VARINT_LEN`] bytes, or if its last byte holds bits beyond the 32 an `i32` has.
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), FormatError> {
    let (raw, used) = decode_unsigned(buf, MAX_VARINT_LEN, "varint")?;
    let Ok(raw) = u32::try_from(raw) else {
        return Err(bad("varint", used - 1, "value does not fit in 32 bits"));
    };
    Ok((unzigzag32(raw), used))
}

/// Decodes a zigzag varlong from the start of `buf`, returning the value and the bytes it used.
///
/// # Errors
///
/// [`FormatError::BadVarint`] if `buf` ends inside the varlong, if it runs past
/// [`MAX_VARLONG_LEN`] bytes, or if its last byte holds bits beyond the 64 an `i64` has.
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), FormatError> {
    let (raw, used) = decode_unsigned(buf, MAX_VARLONG_LEN, "varlong")?;
    Ok((unzigzag64(raw), used))
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn unzigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn encode_unsigned(mut raw: u64, out: &mut impl BufMut) {
    while raw >= 0x80 {
        out.put_u8((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

fn unsigned_len(raw: u64) -> usize {
    // One byte per started group of seven significant bits, and at least one byte for zero.
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Reads up to `max_len` bytes of base-128 groups. For a varint the result may still exceed 32
/// bits; the caller narrows it.
fn decode_unsigned(
    buf: &[u8],
    max_len: usize,
    kind: &'static str,
) -> Result<(u64, usize), FormatError> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().take(max_len).enumerate() {
        let shift = 7 * i as u32;

        // The tenth byte of a varlong has room for exactly one more bit.
        let group = u64::from(byte & 0x7f);
        if shift == 63 && group > 1 {
            return Err(bad(kind, i, "value does not fit in 64 bits"));
        }
        raw |= group << shift;

        if byte & 0x80 == 0 {
            return Ok((raw, i + 1));
        }
    }
    if buf.len() < max_len {
        Err(bad(kind, buf.len(), "input ends inside the value"))
    } else {
        Err(bad(kind, max_len - 1, "longer than the type allows"))
    }
}

fn bad(kind: &'static str, position: usize, reason: &'static str) -> FormatError {
    FormatError::BadVarint {
        kind,
        position,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(value, &mut out);
        out
    }

    fn varlong_bytes(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varlong(value, &mut out);
        out
    }

    #[test]
    fn small_values_zigzag_to_single_bytes() {
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(300), [0xd8, 0x04]);
    }

    #[test]
    fn extremes_use_the_maximum_length() {
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varlong_bytes(i64::MIN).len(), MAX_VARLONG_LEN);
        assert_eq!(varlong_bytes(i64::MIN).last(), Some(&0x01));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(decode_varint(&[]).is_err());
        assert!(decode_varint(&[0x80]).is_err());
        assert!(decode_varlong(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn overlong_input_is_an_error() {
        // Six bytes for a varint, eleven for a varlong.
        assert!(decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert!(decode_varlong(&[0x80; 11]).is_err());
    }

    #[test]
    fn bits_past_the_type_width_are_an_error() {
        assert!(decode_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        let mut eleven_bits = vec![0xff; 9];
        eleven_bits.push(0x02);
        assert!(decode_varlong(&eleven_bits).is_err());
    }

    #[test]
    fn padded_encodings_are_accepted_like_kafka_does() {
        assert_eq!(decode_varint(&[0x82, 0x80, 0x00]).unwrap(), (1, 3));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value: i32, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = varint_bytes(value);
            prop_assert_eq!(buf.len(), varint_len(value));
            let len = buf.len();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decode_varint(&buf).unwrap(), (value, len));
        }

        #[test]
        fn varlong_round_trips(value: i64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = varlong_bytes(value);
            prop_assert_eq!(buf.len(), varlong_len(value));
            let len = buf.len();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decode_varlong(&buf).unwrap(), (value, len));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            buf in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            if let Ok((_, used)) = decode_varint(&buf) {
                prop_assert!(used <= MAX_VARINT_LEN && used <= buf.len());
            }
            if let Ok((_, used)) = decode_varlong(&buf) {
                prop_assert!(used <= MAX_VARLONG_LEN && used <= buf.len());
            }
        }
    }
}
