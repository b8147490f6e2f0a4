//! Validation of worker ids and shard counts, shared by every backend so that they mean the
//! same everywhere.

use crate::error::ValidationError;

/// The longest worker id, in bytes: a host name (at most 253 bytes) and a UUID fit, and MySQL
/// can index it (its keys are bounded in bytes).
pub const MAX_WORKER_ID_LEN: usize = 512;

/// The most shards a projection may have (each is a row and, on its owner, a task).
pub const MAX_SHARDS: u32 = 4096;

/// Checks a projection's shard count: 1 to [`MAX_SHARDS`] (a store would otherwise create
/// that many rows, up to billions, when asked to).
pub fn validate_shard_count(count: u32) -> Result<(), ValidationError> {
    if count == 0 || count > MAX_SHARDS {
        let reason = "must be 1 to MAX_SHARDS (4096)";
        return Err(ValidationError::OutOfRange { field: "shard count", reason });
    }
    Ok(())
}

/// Checks a worker id: not empty, no NUL character (PostgreSQL text cannot hold one), at most
/// [`MAX_WORKER_ID_LEN`] bytes.
pub fn validate_worker_id(worker: &str) -> Result<(), ValidationError> {
    let field = "worker id";
    if worker.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if worker.contains('\0') {
        return Err(ValidationError::NulCharacter { field });
    }
    if worker.len() > MAX_WORKER_ID_LEN {
        return Err(ValidationError::TooLong { field, len: worker.len(), max: MAX_WORKER_ID_LEN });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_checked() {
        assert!(validate_worker_id("host-1/0198").is_ok());
        assert!(validate_worker_id(&"w".repeat(MAX_WORKER_ID_LEN)).is_ok());
        assert!(matches!(validate_worker_id(""), Err(ValidationError::Empty { .. })));
        assert!(matches!(validate_worker_id("a\0b"), Err(ValidationError::NulCharacter { .. })));
        let long = "w".repeat(MAX_WORKER_ID_LEN + 1);
        assert!(matches!(validate_worker_id(&long), Err(ValidationError::TooLong { .. })));
    }
}
