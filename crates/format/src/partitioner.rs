//! Kafka's default key partitioner: the 32-bit MurmurHash2 variant of Kafka's Java client.
//!
//! Producers that share a key-to-partition mapping keep per-key ordering across clients, so
//! this must match Kafka bit for bit: same seed (`0x9747b28c`), little-endian four-byte blocks,
//! the same tail handling, and the same finalisation. The partition is then the hash with its
//! sign bit cleared, modulo the partition count (clearing the bit rather than taking an absolute
//! value, so `i32::MIN` cannot stay negative).
//!
//! This module owns only the hash; choosing a partition for records without a key (Kafka's
//! sticky partitioning) is the producer's job.

/// Seed of Kafka's murmur2.
const SEED: u32 = 0x9747_b28c;
/// Multiplier of MurmurHash2.
const M: u32 = 0x5bd1_e995;
/// Shift of the block mix.
const R: u32 = 24;

/// Kafka's murmur2 hash of `data`, as its Java client's `Utils.murmur2` returns it (a signed
/// `i32`).
pub fn murmur2(data: &[u8]) -> i32 {
    // The length enters as Java's int; truncation only matters past 4 GiB keys, as in Java.
    let mut h = SEED ^ data.len() as u32;

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // Up to three tail bytes, last one highest, mixed in only if there are any.
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// # Panics
///
/// If `partitions` is 0; a topic always has at least one partition.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) as u32 % partitions
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Vectors from the murmur2 test of Kafka's Java client.
    #[test]
    fn matches_kafka_java_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn empty_key_hashes_like_kafka() {
        assert_eq!(murmur2(b""), 275_646_681);
    }

    #[test]
    fn partition_clears_the_sign_bit_before_the_modulo() {
        // murmur2("21") is negative; Kafka masks rather than negates it.
        let masked = (-973_932_308_i32 & 0x7fff_ffff) as u32;
        assert_eq!(partition_for_key(b"21", 7), masked % 7);
        assert_eq!(partition_for_key(b"21", 1), 0);
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn zero_partitions_panics() {
        partition_for_key(b"k", 0);
    }

    proptest! {
        #[test]
        fn partition_is_in_range(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            n in 1u32..10_000,
        ) {
            prop_assert!(partition_for_key(&key, n) < n);
        }
    }
}
