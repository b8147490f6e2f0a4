//! The one error type every public call returns.

use crate::dcb::AppendCondition;
use crate::event::{StreamId, Version};
use crate::store::ExpectedVersion;

/// Result alias used throughout pupsourcing.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a store call. Nothing was written when an error is returned
/// (the store's own transaction is rolled back; in a caller's transaction nothing of the rejected
/// append is left behind).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was rejected before touching the database.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationError),

    /// The stream's version did not match the expected version: another writer got there first.
    /// Reload the stream and retry the command.
    #[error(
        "optimistic concurrency conflict on stream {stream}: expected {expected}, actual version {actual}"
    )]
    Concurrency {
        /// The stream that was appended to.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version when the append ran.
        actual: Version,
    },

    /// A DCB append condition failed: an event matching the condition's query was appended
    /// after its `after` position. Nothing was written; re-read and decide again.
    #[error(
        "append condition failed: {}; nothing was written, re-read and decide again",
        condition.failure()
    )]
    ConditionFailed {
        /// The condition that failed.
        condition: Box<AppendCondition>,
    },

    /// Some, but not all, of the batch's event ids are already stored. An idempotent retry must
    /// resend exactly the same events; a new batch must use new ids.
    #[error("{stored} of the {total} event ids in the batch are already stored; first: {first}")]
    PartialDuplicate {
        /// How many of the batch's ids are stored.
        stored: usize,
        /// Batch size.
        total: usize,
        /// One of the stored ids.
        first: uuid::Uuid,
    },

    /// The database aborted the transaction to resolve a conflict with another one (a deadlock
    /// or a serialization failure). Nothing was written; retry the whole transaction.
    #[error("the database aborted the transaction to resolve a conflict; retry it: {0}")]
    TransactionConflict(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The worker no longer owns the shard (it was given to another worker, or released when
    /// this worker was taken for dead): stop processing it; nothing of the batch was written.
    #[error("shard {shard} is no longer owned by this worker (fenced out): stop processing it")]
    ShardLost {
        /// The shard, as `projection k/n`.
        shard: String,
    },

    /// The call cannot run in this situation (the reason says what to change).
    #[error("unsupported: {reason}")]
    Unsupported {
        /// What to change.
        reason: &'static str,
    },

    /// A payload could not be (de)serialized by a JSON helper.
    #[error("payload is not valid JSON for this type: {0}")]
    Payload(#[source] serde_json::Error),

    /// The connection pool was closed; build a new store.
    #[error("the connection pool is closed")]
    PoolClosed,

    /// The database did not answer within the configured timeout ([`crate::Timeouts`]), or no
    /// pooled connection became free in time. Nothing was written: a time limit never covers
    /// a COMMIT already sent.
    #[error("the database call timed out")]
    Timeout,

    /// Any other database failure, with the driver's error as source.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why an input was rejected. Carried by [`Error::Validation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An append needs at least one event.
    #[error("the batch is empty: append at least one event")]
    EmptyBatch,
    /// The batch is larger than the configured maximum.
    #[error("the batch has {len} events, more than the configured maximum of {max}")]
    BatchTooLarge {
        /// Batch size.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A required name (event type, aggregate type, ...) is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A name or tag is longer than allowed.
    #[error("{field} is {len} bytes long, more than the maximum of {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The same tag appears twice on one event.
    #[error("tag {0:?} appears more than once on one event")]
    DuplicateTag(String),
    /// The same event id appears twice in one batch.
    #[error("event id {0} appears more than once in the batch")]
    DuplicateEventId(uuid::Uuid),
    /// A schema or table name is not a valid identifier.
    #[error(
        "{name:?} is not a valid identifier: use 1 to 63 ASCII letters, digits or underscores, not starting with a digit"
    )]
    InvalidIdentifier {
        /// The rejected name.
        name: String,
    },
    /// A query item has neither types nor tags. Use `Query::all()` to match every event.
    #[error(
        "a query item needs at least one event type or tag; use Query::all() to match all events"
    )]
    EmptyQueryItem,
    /// A numeric argument is out of range.
    #[error("{field} is out of range: {reason}")]
    OutOfRange {
        /// Which argument.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A list holds more entries than the configured maximum.
    #[error("{field} has {len} entries, more than the configured maximum of {max}")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text contains a NUL character, which PostgreSQL cannot store in text or JSON.
    #[error("{field} contains a NUL character (\\0), which the log cannot store")]
    NulCharacter {
        /// Which field (for metadata: the key or string value's path is not given).
        field: &'static str,
    },
    /// JSON metadata (or command data) nests arrays and objects deeper than allowed: it could
    /// be stored but not read back.
    #[error("{field} nests arrays and objects more than {max} levels deep")]
    TooDeep {
        /// Which field.
        field: &'static str,
        /// The configured maximum depth.
        max: usize,
    },
    /// A timestamp outside the range every backend stores (years 1 to 9999, UTC).
    #[error("created_at {at} is outside the range every backend stores (years 1 to 9999, UTC)")]
    TimestampOutOfRange {
        /// The rejected timestamp.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A [`crate::Limits`] field is set beyond what every backend can store or index.
    #[error("limit {field} = {value} is outside the supported range 1..={max}")]
    InvalidLimit {
        /// Which limit.
        field: &'static str,
        /// The configured value.
        value: usize,
        /// The largest supported value.
        max: usize,
    },
    /// A configuration's table names would collide in the database: a derived name
    /// (`<events>_tags`, `<events>_position_seq`, ...) would exceed 63 bytes and be truncated, or
    /// two tables of the store would get one name.
    #[error("invalid table names: {reason}")]
    TableNames {
        /// What collides, and the limit when one applies.
        reason: String,
    },
    /// A partition whose key is not below its count, or a count of 0 or above
    /// `Partition::MAX_COUNT`.
    #[error(
        "partition key {key} of {count} partitions is invalid: the count must be 1 to 2147483647 and the key 0 to count - 1"
    )]
    InvalidPartition {
        /// The rejected key.
        key: u32,
        /// The rejected count.
        count: u32,
    },
    /// A projection or runner setting that cannot work (an empty or duplicate projection name,
    /// a batch size of 0, ...).
    #[error("invalid projection setting: {reason}")]
    Projection {
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ValidationError {
    /// An append that would take a stream's version past `i64::MAX` (every backend reports
    /// it with this value).
    pub const VERSION_OVERFLOW: ValidationError = ValidationError::OutOfRange {
        field: "aggregate version",
        reason: "the stream's version would pass the largest 64-bit integer",
    };
}

impl Error {
    /// Wraps a driver error.
    pub fn database(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Database(Box::new(err))
    }

    /// True for errors a retry of the whole command may cure (a concurrency conflict or a
    /// failed append condition).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Concurrency { .. }
                | Error::ConditionFailed { .. }
                | Error::TransactionConflict(_)
        )
    }
}
