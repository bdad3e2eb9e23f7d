//! Kafka's default key partitioner as a pure function: the 32-bit murmur2
//! hash of the record key (Kafka's `Utils.murmur2`), made non-negative by
//! masking the sign bit (`Utils.toPositive`), modulo the partition count.
//! Only producers that use Kafka's default partitioner place keyed records
//! this way: the Java client's default, and librdkafka (and its wrappers,
//! such as Python `confluent-kafka`) with `partitioner=murmur2_random` or
//! `murmur2`. librdkafka's own default, `consistent_random`, hashes with
//! CRC32 and puts the same key elsewhere. That is why key partition pruning
//! is opt-in: a route says `partitioner: murmur2` to promise that its
//! producers hash this way, and only then may a key filter read just the
//! one partition `partition_for_key` names.

/// Kafka's murmur2 seed (`0x9747b28c` in `Utils.murmur2`). Any other value
/// gives a different placement, so it is not tunable.
const SEED: u32 = 0x9747_b28c;

/// The murmur2 multiplier, from Austin Appleby's reference MurmurHash2.
const M: u32 = 0x5bd1_e995;

/// The murmur2 shift, from the same reference.
const R: u32 = 24;

/// Kafka's `Utils.murmur2` of `key`, as the unsigned bits of Java's `int`.
///
/// Kafka's Java version mixes in the length as an `int`; a key longer than
/// `u32::MAX` bytes (which Kafka cannot carry anyway: keys are sized by an
/// `int32`) would be hashed with its length truncated to 32 bits.
pub fn murmur2(key: &[u8]) -> u32 {
    let mut h = SEED ^ key.len() as u32;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // The 1 to 3 bytes after the last block, little-endian like the blocks,
    // then one multiply; Kafka's switch falls through 3 → 2 → 1 the same way.
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a record with `key`
/// in a topic of `partitions` partitions: `toPositive(murmur2(key)) %
/// partitions`. `toPositive` clears the sign bit (it does not take the
/// absolute value), which matters for the hashes of about half of all keys.
///
/// Records without a key are not placed by hash (Kafka spreads them), so
/// there is no answer for them here.
///
/// # Panics
///
/// When `partitions` is 0; every Kafka topic has at least one partition.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kafka_utils_test_vectors() {
        // Kafka's `UtilsTest.testMurmur2` (clients/src/test), as Java ints.
        for (key, want) in [
            (&b"21"[..], -973_932_308i32),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key) as i32, want, "{:?}", key.escape_ascii());
        }
    }

    /// Where Python `confluent-kafka` 2.16.1 (librdkafka 2.16.0) with
    /// `partitioner: murmur2_random` put these keys, read from its delivery
    /// reports against nisshi 0.8.1, for topics of 6, 7, 13 and 64
    /// partitions (tests/clients/produce_keys.py; every one of its 522 keys
    /// at each count matched, these are a sample). The binary keys have
    /// bytes >= 0x80 and every tail length.
    #[test]
    fn librdkafka_murmur2_random_placements() {
        const COUNTS: [u32; 4] = [6, 7, 13, 64];
        for (key, want) in [
            (&b"key-0"[..], [1, 0, 3, 57]),
            (b"key-1", [0, 5, 8, 56]),
            (b"key-2", [2, 4, 11, 6]),
            (b"key-3", [5, 4, 1, 27]),
            (b"key-4", [3, 5, 1, 57]),
            (b"key-5", [2, 4, 8, 32]),
            (b"key-6", [2, 5, 8, 20]),
            (b"key-7", [1, 3, 7, 27]),
            (b"key-8", [1, 4, 7, 59]),
            (b"key-9", [3, 2, 1, 13]),
            (b"key-10", [2, 3, 8, 46]),
            (b"key-11", [1, 3, 0, 1]),
            (b"key-12", [2, 2, 7, 40]),
            (b"key-13", [1, 2, 12, 13]),
            (b"key-14", [4, 2, 0, 48]),
            (b"key-15", [3, 1, 1, 19]),
            (b"key-99", [4, 6, 2, 34]),
            (b"key-255", [2, 6, 2, 44]),
            (b"key-499", [2, 6, 7, 48]),
            (b"\x00", [2, 0, 1, 60]),
            (b"\xff", [3, 5, 2, 27]),
            (b"\x80\x81\x82", [5, 6, 6, 3]),
            ("ключ".as_bytes(), [2, 4, 9, 48]),
            ("clé-ü".as_bytes(), [4, 2, 5, 18]),
            ("🔑".as_bytes(), [5, 5, 4, 39]),
            ("鍵-7".as_bytes(), [5, 3, 1, 19]),
            (b"\xf2", [5, 0, 4, 17]),
            (b"\xe5\xde", [2, 5, 1, 44]),
            (b"\xd8\xd1\xca", [1, 1, 12, 59]),
            (b"\xcb\xc4\xbd\xb6", [1, 4, 2, 41]),
            (b"\xbe\xb7\xb0\xa9\xa2", [5, 2, 2, 31]),
            (b"\xb1\xaa\xa3\x9c\x95\x8e", [5, 2, 12, 43]),
            (b"\xa4\x9d\x96\x8f\x88\x81\xfa", [1, 1, 12, 27]),
            (b"\x97\x90\x89\x82\xfb\xf4\xed\xe6", [0, 3, 7, 22]),
            (b"\x8a\x83\xfc\xf5\xee\xe7\xe0\xd9\xd2", [5, 6, 11, 5]),
            (b"\xfd\xf6\xef\xe8\xe1\xda\xd3\xcc\xc5\xbe", [2, 6, 9, 46]),
            (
                b"\xf0\xe9\xe2\xdb\xd4\xcd\xc6\xbf\xb8\xb1\xaa",
                [4, 2, 5, 12],
            ),
            (
                b"\xe3\xdc\xd5\xce\xc7\xc0\xb9\xb2\xab\xa4\x9d\x96",
                [3, 1, 4, 55],
            ),
            (
                b"\xd6\xcf\xc8\xc1\xba\xb3\xac\xa5\x9e\x97\x90\x89\x82",
                [0, 5, 2, 34],
            ),
            (
                b"\xc9\xc2\xbb\xb4\xad\xa6\x9f\x98\x91\x8a\x83\xfc\xf5\xee",
                [2, 2, 11, 4],
            ),
            (
                b"\xbc\xb5\xae\xa7\xa0\x99\x92\x8b\x84\xfd\xf6\xef\xe8\xe1\xda",
                [0, 1, 10, 8],
            ),
        ] {
            for (partitions, want) in COUNTS.into_iter().zip(want) {
                assert_eq!(
                    partition_for_key(key, partitions),
                    want,
                    "{:?} over {partitions} partitions",
                    key.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn to_positive_masks_the_sign_bit() {
        // murmur2("21") is negative as a Java int; Kafka clears bit 31, it
        // does not negate: 0xc5f2_f8ec & 0x7fff_ffff, not 973_932_308.
        assert_eq!(partition_for_key(b"21", 1 << 31), 1_173_551_340);
    }

    proptest! {
        #[test]
        fn partition_is_in_range(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            partitions in 1..=u32::MAX,
        ) {
            prop_assert!(partition_for_key(&key, partitions) < partitions);
        }
    }
}
