//! The check every backend's [`CoordinationStore::reshard`](crate::coordination::CoordinationStore::reshard)
//! makes on the locked rows before it replaces them.

use crate::coordination::{Fence, Shard, ShardId};
use crate::error::{Result, ValidationError};
use crate::event::Position;
use crate::projection::{Partition, validate_projection_name};

/// Checks the arguments of a reshard: a valid projection name, a valid new count, a position
/// not below 0, and old shards that are valid partitions of the projection with another count.
pub fn validate_reshard(
    projection: &str,
    old: &[(ShardId, Fence)],
    count: u32,
    at: Position,
) -> Result<()> {
    validate_projection_name(projection)?;
    super::validate_shard_count(count)?;
    crate::validate_position("reshard position", at)?;
    for (shard, _) in old {
        Partition::new(shard.shard, shard.count)?;
        if shard.projection != projection || shard.count == count {
            let reason = "old shards must be of the projection, with another count";
            return Err(ValidationError::OutOfRange { field: "reshard old shards", reason }.into());
        }
    }
    Ok(())
}

/// Whether `stored` (every row of the projection, locked) is exactly `old`, each row owned
/// under its fence and at position `at`; if so, the epoch the new shards get (above every old
/// one). `None`: the reshard must change nothing.
pub fn reshard_epoch(stored: &[Shard], old: &[(ShardId, Fence)], at: Position) -> Option<i64> {
    if stored.is_empty() || stored.len() != old.len() {
        return None;
    }
    let expected = |row: &Shard| {
        old.iter().any(|(id, fence)| {
            *id == row.id
                && row.owner.as_deref() == Some(fence.owner.as_str())
                && row.epoch == fence.epoch
                && row.position == at
        })
    };
    if !stored.iter().all(expected) {
        return None;
    }
    stored.iter().map(|row| row.epoch).max().map(|epoch| epoch + 1)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(shard: u32, owner: &str, epoch: i64, position: Position) -> Shard {
        Shard {
            id: ShardId { projection: "p".into(), shard, count: 2 },
            owner: Some(owner.into()),
            epoch,
            position,
            updated_at: Utc::now(),
            last_error: None,
        }
    }

    fn fence(shard: u32, epoch: i64) -> (ShardId, Fence) {
        let id = ShardId { projection: "p".into(), shard, count: 2 };
        (id, Fence { owner: "w".into(), epoch })
    }

    #[test]
    fn only_the_expected_rows_at_the_position_reshard() {
        let stored = [row(0, "w", 3, 10), row(1, "w", 5, 10)];
        let old = [fence(0, 3), fence(1, 5)];
        assert_eq!(reshard_epoch(&stored, &old, 10), Some(6));
        assert_eq!(reshard_epoch(&stored, &old, 9), None, "another position");
        assert_eq!(reshard_epoch(&stored, &old[..1], 10), None, "a row not expected");
        assert_eq!(reshard_epoch(&stored, &[fence(0, 3), fence(1, 4)], 10), None, "an epoch moved");
        let other = [row(0, "w", 3, 10), row(1, "v", 5, 10)];
        assert_eq!(reshard_epoch(&other, &old, 10), None, "another owner");
        assert_eq!(reshard_epoch(&[], &[], 10), None, "nothing to replace");
    }

    #[test]
    fn bad_arguments_are_refused() {
        let old = [fence(0, 3), fence(1, 5)];
        assert!(validate_reshard("p", &old, 4, 10).is_ok());
        assert!(validate_reshard("p", &old, 2, 10).is_err(), "same count");
        assert!(validate_reshard("p", &old, 0, 10).is_err(), "count 0");
        assert!(validate_reshard("p", &old, 4, -1).is_err(), "negative position");
        assert!(validate_reshard("q", &old, 4, 10).is_err(), "another projection");
        assert!(validate_reshard("", &old, 4, 10).is_err(), "empty name");
    }
}
