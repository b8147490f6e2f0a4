//! Hash partitioning: which partition of a projection an event belongs to.
//!
//! Every event stores a 32-bit *partition hash*, computed once at append (see
//! [`partition_hash`]), and a partition `k` of `n` holds the events whose hash is `k` modulo `n`.
//! Readers filter on the stored column in SQL, so a partition fetches only its share, and
//! every backend agrees on the hash because it is computed here, not by the database.

use uuid::Uuid;

use crate::error::ValidationError;
use crate::event::{NewEvent, StreamId};

/// MurmurHash3 (x86, 32-bit) of `data` with seed 0: the partition hash of a key.
///
/// Platform-independent and fixed forever (changing it would move stored events between
/// partitions). The test vectors below are those of the reference implementation.
///
/// ```
/// use pupsourcing_core::projection::murmur3_32;
/// assert_eq!(murmur3_32(b""), 0);
/// assert_eq!(murmur3_32(b"order-42"), 0x4b11_a18e);
/// ```
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h: u32 = 0;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h = (h ^ scramble(k)).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, byte| (k << 8) | u32::from(*byte));
        h ^= scramble(k);
    }
    // The length is mixed in modulo 2^32, as the reference does.
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The partition hash stored with an event appended to `stream` (`None` for a DCB event
/// outside any stream): the hash of its explicit [`NewEvent::partition_key`] when it has one,
/// else of its aggregate id's 16 bytes, else of its event id's 16 bytes.
///
/// So every event of one aggregate lands in the same partition, and a partitioned projection
/// sees each aggregate's events in order. DCB events without a stream or a key are spread by
/// event id: give them a partition key (an entity's id, say) when a partitioned projection
/// must see one entity's events in order.
pub fn partition_hash(stream: Option<&StreamId>, event: &NewEvent) -> u32 {
    match (&event.partition_key, stream) {
        (Some(key), _) => murmur3_32(key.as_bytes()),
        (None, Some(stream)) => uuid_hash(stream.aggregate_id),
        (None, None) => uuid_hash(event.event_id),
    }
}

fn uuid_hash(id: Uuid) -> u32 {
    murmur3_32(id.as_bytes())
}

/// One partition of a projection: key `key` of `count` (`0 <= key < count`).
///
/// ```
/// use pupsourcing_core::projection::Partition;
/// let third = Partition::new(2, 4).unwrap();
/// assert!(third.contains(6) && !third.contains(7));
/// assert!(Partition::new(4, 4).is_err() && Partition::new(0, 0).is_err());
/// assert!(Partition::all().contains(12345));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    key: u32,
    count: u32,
}

impl Default for Partition {
    fn default() -> Self {
        Self::all()
    }
}

impl Partition {
    /// The most partitions a projection can have (the largest count every backend stores).
    pub const MAX_COUNT: u32 = i32::MAX as u32;

    /// Partition `key` of `count`. Fails when `count` is 0 or above [`Partition::MAX_COUNT`],
    /// or `key` is not below it.
    pub fn new(key: u32, count: u32) -> Result<Self, ValidationError> {
        if count == 0 || count > Self::MAX_COUNT || key >= count {
            return Err(ValidationError::InvalidPartition { key, count });
        }
        Ok(Self { key, count })
    }

    /// The one partition holding every event (key 0 of 1).
    pub const fn all() -> Self {
        Self { key: 0, count: 1 }
    }

    /// This partition's key.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// How many partitions there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether an event with partition hash `hash` belongs to this partition.
    pub fn contains(&self, hash: u32) -> bool {
        hash % self.count == self.key
    }

    /// Every partition of `count`, in key order (empty for 0).
    pub fn every(count: u32) -> impl Iterator<Item = Partition> {
        (0..count).map(move |key| Partition { key, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.key, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the reference MurmurHash3_x86_32 (seed 0), checked with Python's `mmh3`.
    #[test]
    fn murmur3_matches_the_reference_vectors() {
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(&[0, 0, 0, 0]), 0x2362_f9de);
        assert_eq!(murmur3_32(b"abc"), 0xb3dd_93fa);
        assert_eq!(murmur3_32(b"order-42"), 0x4b11_a18e);
        let id = Uuid::parse_str("0192e4a1-7b3c-7def-8abc-0123456789ab").unwrap();
        assert_eq!(murmur3_32(id.as_bytes()), 0x6112_5e76);
    }

    #[test]
    fn an_event_hashes_by_key_then_aggregate_then_id() {
        let id = Uuid::parse_str("0192e4a1-7b3c-7def-8abc-0123456789ab").unwrap();
        let stream = StreamId::new("Order", id);
        let event = NewEvent::new("Placed", b"{}".to_vec());
        assert_eq!(partition_hash(Some(&stream), &event), 0x6112_5e76);
        assert_eq!(partition_hash(None, &event), murmur3_32(event.event_id.as_bytes()));
        let keyed = event.with_partition_key("order-42");
        assert_eq!(partition_hash(Some(&stream), &keyed), 0x4b11_a18e);
    }

    #[test]
    fn partitions_cover_every_hash_once() {
        for hash in [0, 1, 7, 1 << 31, u32::MAX] {
            assert_eq!(Partition::every(5).filter(|p| p.contains(hash)).count(), 1);
        }
    }
}
