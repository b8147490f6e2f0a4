//! Values as the backends' tables store them, and their checks on the way back out.
//!
//! Backends store some model values in plainer column types (a partition as two 32-bit
//! integers, a timestamp as microseconds since the Unix epoch, an id as 16 bytes). Reading one
//! back can fail only if the row was written by something else, or damaged: that is a
//! [`CorruptRow`], reported as [`Error::Database`] and never a panic. Every backend decodes
//! through these functions, so a damaged row reads as the same error on each.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::projection::Partition;

/// A stored row that a backend cannot turn back into the model (written by something else, or
/// damaged). Carried by [`Error::Database`]; names the table and column to inspect.
#[derive(Debug, thiserror::Error)]
#[error("unreadable {column} in table {table}: {reason}")]
pub struct CorruptRow {
    /// The table holding the row.
    pub table: String,
    /// The column whose value is unreadable.
    pub column: &'static str,
    /// What is wrong with the value.
    pub reason: String,
}

impl CorruptRow {
    /// The [`Error::Database`] reporting that `column` of a row of `table` is unreadable, and
    /// why.
    ///
    /// ```
    /// use pupsourcing_core::stored::CorruptRow;
    /// let err = CorruptRow::error("events", "tags", "not a JSON array");
    /// assert_eq!(err.to_string(), "database error: unreadable tags in table events: not a JSON array");
    /// ```
    pub fn error(table: &str, column: &'static str, reason: impl ToString) -> Error {
        Error::database(CorruptRow { table: table.to_string(), column, reason: reason.to_string() })
    }
}

/// A partition's key and count as the tables store them: 32-bit integer columns, which hold
/// both because [`Partition::MAX_COUNT`] is `i32::MAX`.
///
/// ```
/// use pupsourcing_core::projection::Partition;
/// use pupsourcing_core::stored::partition_columns;
/// assert_eq!(partition_columns(Partition::new(2, 4).unwrap()), (2, 4));
/// ```
pub fn partition_columns(partition: Partition) -> (i32, i32) {
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    (int(partition.key()), int(partition.count()))
}

/// The partition stored in the `partition_key` and `partition_count` columns of a row of
/// `table`; a [`CorruptRow`] (naming `partition_key`) when they do not make a partition.
///
/// ```
/// use pupsourcing_core::projection::Partition;
/// use pupsourcing_core::stored::partition;
/// assert_eq!(partition("checkpoints", 1, 3).unwrap(), Partition::new(1, 3).unwrap());
/// assert!(partition("checkpoints", 3, 3).is_err() && partition("checkpoints", -1, 3).is_err());
/// ```
pub fn partition(table: &str, key: i64, count: i64) -> Result<Partition> {
    let corrupt = |reason: String| CorruptRow::error(table, "partition_key", reason);
    match (u32::try_from(key), u32::try_from(count)) {
        (Ok(key), Ok(count)) => Partition::new(key, count).map_err(|e| corrupt(e.to_string())),
        _ => Err(corrupt(format!("partition {key} of {count} is out of range"))),
    }
}

/// The timestamp stored in `column` of a row of `table` as microseconds since the Unix epoch
/// (UTC); a [`CorruptRow`] when it is outside what [`DateTime`] represents.
///
/// ```
/// use pupsourcing_core::stored::timestamp;
/// assert_eq!(timestamp("events", "created_at", 1_000_000).unwrap().timestamp(), 1);
/// assert!(timestamp("events", "created_at", i64::MAX).is_err());
/// ```
pub fn timestamp(table: &str, column: &'static str, micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| CorruptRow::error(table, column, format!("{micros} µs is out of range")))
}

/// The id stored in `column` of a row of `table` as 16 bytes; a [`CorruptRow`] for any other
/// length.
///
/// ```
/// let event_id = uuid::Uuid::now_v7();
/// let stored = pupsourcing_core::stored::id("events", "event_id", event_id.as_bytes());
/// assert_eq!(stored.unwrap(), event_id);
/// assert!(pupsourcing_core::stored::id("events", "event_id", &[1, 2, 3]).is_err());
/// ```
pub fn id(table: &str, column: &'static str, bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| CorruptRow::error(table, column, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt_row(err: Error) -> CorruptRow {
        match err {
            Error::Database(source) => *source.downcast::<CorruptRow>().expect("a CorruptRow"),
            other => panic!("expected a database error, got {other:?}"),
        }
    }

    #[test]
    fn partition_columns_round_trip_through_partition() {
        for p in [Partition::all(), Partition::new(6, 7).unwrap()] {
            let (key, count) = partition_columns(p);
            assert_eq!(partition("t", key.into(), count.into()).unwrap(), p);
        }
        let largest = Partition::new(Partition::MAX_COUNT - 1, Partition::MAX_COUNT).unwrap();
        assert_eq!(partition_columns(largest), (i32::MAX - 1, i32::MAX));
    }

    #[test]
    fn an_unreadable_partition_names_its_table_and_column() {
        let row = corrupt_row(partition("checkpoints", 0, 0).unwrap_err());
        assert_eq!((row.table.as_str(), row.column), ("checkpoints", "partition_key"));
        let row = corrupt_row(partition("shards", 1, i64::from(u32::MAX) + 1).unwrap_err());
        assert_eq!(row.reason, "partition 1 of 4294967296 is out of range");
    }

    #[test]
    fn an_unreadable_timestamp_says_its_value() {
        let row = corrupt_row(timestamp("workers", "started_at", i64::MIN).unwrap_err());
        assert_eq!(row.column, "started_at");
        assert_eq!(row.reason, format!("{} µs is out of range", i64::MIN));
    }
}
