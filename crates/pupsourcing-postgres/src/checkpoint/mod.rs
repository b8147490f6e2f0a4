//! Projections on PostgreSQL: scoped, partitioned, gap-free batch reads; checkpoints moved by
//! compare-and-set in the caller's transaction; dead letters; lag and stall diagnostics.
//!
//! A batch read is two statements, as every global read is: the gap-free head first, then the
//! events up to it, so that the events' snapshot is newer than the head (see `read/mod.rs`). The
//! scope and the partition are filtered in SQL, with bind parameters only: a scope's strings
//! are never spliced into the statement.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::projection::{
    Batch, Checkpoint, DeadLetter, Partition, Pending, ProjectionStore, Scope, Stall,
    storable_text, validate_projection_name,
};
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{
    Error, Identifier, Position, RecordedEvent, Result, ValidationError, stored, validate_position,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgConnection, Postgres};

use crate::error::{column, db_error};
use crate::read::decode;
use crate::store::PgEventStore;

/// A bind value of a scope filter, in `$n` order after the statement's fixed parameters.
enum Bind<'q> {
    Texts(&'q [String]),
    Int(i64),
}

/// Adds the `AND ...` conditions selecting `scope`'s events of `partition` to `text`, for a
/// statement whose fixed parameters are `$1` to `$fixed` and whose events table is `e`.
fn scope_filter<'q>(
    scope: &'q Scope,
    partition: Partition,
    fixed: usize,
    text: &mut String,
) -> Vec<Bind<'q>> {
    let mut binds = Vec::new();
    let mut bind = |b: Bind<'q>| {
        binds.push(b);
        binds.len() + fixed
    };
    for (column, list) in [
        ("aggregate_type", &scope.aggregate_types),
        ("bounded_context", &scope.bounded_contexts),
        ("event_type", &scope.event_types),
    ] {
        if !list.is_empty() {
            // A NULL column (an event outside any stream, without a context) matches nothing.
            let n = bind(Bind::Texts(list));
            let _ = write!(text, "\n   AND e.{column} = ANY(${n}::text[])");
        }
    }
    if let Some(query) = scope.query.as_ref().filter(|q| !q.is_all()) {
        // DCB item semantics: an item matches an event of one of its types (any type when it
        // lists none) carrying all of its tags; the query matches when any item does.
        text.push_str("\n   AND (");
        for (i, item) in query.items.iter().enumerate() {
            if i > 0 {
                text.push_str(" OR ");
            }
            let mut parts = Vec::new();
            if !item.types.is_empty() {
                parts.push(format!(
                    "e.event_type = ANY(${}::text[])",
                    bind(Bind::Texts(&item.types))
                ));
            }
            if !item.tags.is_empty() {
                parts.push(format!("e.tags @> ${}::text[]", bind(Bind::Texts(&item.tags))));
            }
            if parts.is_empty() {
                // Validation rejects such an item; it would match every event.
                parts.push("TRUE".to_string());
            }
            let _ = write!(text, "({})", parts.join(" AND "));
        }
        text.push(')');
    }
    if partition.count() > 1 {
        let count = bind(Bind::Int(i64::from(partition.count())));
        let key = bind(Bind::Int(i64::from(partition.key())));
        let _ = write!(text, "\n   AND e.partition_hash % ${count} = ${key}");
    }
    binds
}

/// Binds a filter's values after the fixed parameters already bound on `query`.
fn bind_filter<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    binds: Vec<Bind<'q>>,
) -> Query<'q, Postgres, PgArguments> {
    for bind in binds {
        query = match bind {
            Bind::Texts(texts) => query.bind(texts),
            Bind::Int(n) => query.bind(n),
        };
    }
    query
}

/// A partition's key and count as the tables store them (core's, as on every backend).
pub(crate) use pupsourcing_core::stored::partition_columns as partition_args;

/// The partition stored in a row of `table`, checked again on the way out: a corrupt row
/// error, as on every backend, when its columns do not make one (core's).
pub(crate) fn stored_partition(table: &Identifier, key: i32, count: i32) -> Result<Partition> {
    stored::partition(table.as_str(), key.into(), count.into())
}

fn checkpoint_row(row: &PgRow, table: &Identifier) -> Result<Checkpoint> {
    Ok(Checkpoint {
        projection: column(row, 0)?,
        partition: stored_partition(table, column(row, 1)?, column(row, 2)?)?,
        position: column(row, 3)?,
        updated_at: column(row, 4)?,
        last_error: column(row, 5)?,
    })
}

fn dead_letter_row(row: &PgRow, table: &Identifier) -> Result<DeadLetter> {
    let attempts: i32 = column(row, 6)?;
    Ok(DeadLetter {
        projection: column(row, 0)?,
        partition: stored_partition(table, column(row, 1)?, column(row, 2)?)?,
        position: column(row, 3)?,
        event_id: column(row, 4)?,
        error: column(row, 5)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        recorded_at: column(row, 7)?,
    })
}

impl PgEventStore {
    /// [`ProjectionStore::read_batch`] without the time limit.
    async fn read_batch_unlimited(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
        limit: usize,
    ) -> Result<Batch> {
        scope.validate(&self.config().limits)?;
        if limit == 0 {
            let reason = "must be at least 1";
            return Err(ValidationError::OutOfRange { field: "batch limit", reason }.into());
        }
        // The head in one statement, the events in a later one (see read/mod.rs). A batch that
        // fills up below the cached head (heads only grow) skips the head query, as catch-up
        // reads of the log do; a short one asks for a newer head and reads on up to it.
        let known = self.known_head();
        let mut events = Vec::new();
        if known > after {
            events = self.batch_between(scope, partition, after, known, limit).await?;
            if events.len() == limit {
                return Ok(Batch { events, head: known });
            }
        }
        let head = self.refresh_head().await?;
        let next_after = after.max(known);
        if head > next_after {
            let rest = limit - events.len();
            events.extend(self.batch_between(scope, partition, next_after, head, rest).await?);
        }
        Ok(Batch { events, head })
    }

    /// Up to `limit` in-scope events of `partition` with `after < position <= head`; `head`
    /// must come from an earlier statement.
    async fn batch_between(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
        head: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let mut text = self.statements().checkpoint_batch.clone();
        let binds = scope_filter(scope, partition, 3, &mut text);
        text.push_str("\n ORDER BY e.global_position\n LIMIT $3");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = sqlx::query(AssertSqlSafe(text)).bind(after).bind(head).bind(limit);
        let rows = bind_filter(query, binds).fetch_all(self.pool()).await.map_err(db_error)?;
        rows.iter().map(decode).collect::<Result<_, _>>().map_err(db_error)
    }

    async fn pending_unlimited(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
    ) -> Result<Pending> {
        scope.validate(&self.config().limits)?;
        let head = self.refresh_head().await?;
        if head <= after {
            return Ok(Pending::default());
        }
        let mut text = self.statements().checkpoint_pending.clone();
        let binds = scope_filter(scope, partition, 2, &mut text);
        let query = sqlx::query(AssertSqlSafe(text)).bind(after).bind(head);
        let row = bind_filter(query, binds).fetch_one(self.pool()).await.map_err(db_error)?;
        let events: i64 = column(&row, 0)?;
        Ok(Pending { events: u64::try_from(events).unwrap_or(0), oldest: column(&row, 1)? })
    }

    async fn checkpoint_unlimited(
        &self,
        projection: &str,
        partition: Partition,
    ) -> Result<Checkpoint> {
        validate_projection_name(projection)?;
        let (key, count) = partition_args(partition);
        // No row only when a concurrent call created the checkpoint after this statement's
        // snapshot; the next statement sees it.
        for _ in 0..3 {
            let row = sqlx::query(AssertSqlSafe(self.statements().checkpoint_get.clone()))
                .bind(projection)
                .bind(key)
                .bind(count)
                .fetch_optional(self.pool())
                .await
                .map_err(db_error)?;
            if let Some(row) = row {
                return Ok(Checkpoint {
                    projection: projection.to_string(),
                    partition,
                    position: column(&row, 0)?,
                    updated_at: column::<DateTime<Utc>>(&row, 1)?,
                    last_error: column(&row, 2)?,
                });
            }
        }
        Err(Error::database(std::io::Error::other(format!(
            "the checkpoint of {projection} {partition} was removed while it was being created"
        ))))
    }

    async fn stall_unlimited(&self) -> Result<Option<Stall>> {
        let row = sqlx::query(AssertSqlSafe(self.statements().stall.clone()))
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let age: Option<i64> = column(&row, 2)?;
        Ok(Some(Stall {
            position: column(&row, 0)?,
            session: column(&row, 1)?,
            transaction_age: age.map(|micros| Duration::from_micros(micros.max(0) as u64)),
            application_name: column::<Option<String>>(&row, 3)?.filter(|name| !name.is_empty()),
        }))
    }
}

/// Projections on PostgreSQL. Reads, [`ProjectionStore::checkpoint`] and the listings honour
/// the configured query time limit (`StoreConfig::timeouts.query`); the calls taking a
/// connection run in the caller's transaction, which must be READ COMMITTED (the store's
/// [`begin`](pupsourcing_core::EventStore::begin) is) for a losing
/// [`advance_checkpoint_in`](ProjectionStore::advance_checkpoint_in) to return false rather
/// than fail with [`Error::TransactionConflict`].
///
/// Partition keys and counts are stored as 32-bit signed integers: a partition beyond
/// `i32::MAX` is rejected with a validation error.
impl ProjectionStore for PgEventStore {
    /// The gap-free head, then (a later statement) up to `limit` events above `after` and at
    /// or below it, filtered by scope and by `partition_hash % count = key`. A limit of 0 is
    /// refused.
    async fn read_batch(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
        limit: usize,
    ) -> Result<Batch> {
        let query = self.config().timeouts.query;
        limited(query, self.read_batch_unlimited(scope, partition, after, limit)).await
    }

    async fn checkpoint(&self, projection: &str, partition: Partition) -> Result<Checkpoint> {
        let query = self.config().timeouts.query;
        limited(query, self.checkpoint_unlimited(projection, partition)).await
    }

    async fn advance_checkpoint_in(
        &self,
        conn: &mut PgConnection,
        projection: &str,
        partition: Partition,
        from: Position,
        to: Position,
    ) -> Result<bool> {
        validate_projection_name(projection)?;
        validate_position("checkpoint position", to)?;
        let (key, count) = partition_args(partition);
        let done = sqlx::query(AssertSqlSafe(self.statements().checkpoint_advance.clone()))
            .bind(projection)
            .bind(key)
            .bind(count)
            .bind(from)
            .bind(to)
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates the checkpoint at position 0 when it has none. A NUL in `error` is stored as
    /// U+FFFD.
    async fn set_checkpoint_error(
        &self,
        projection: &str,
        partition: Partition,
        error: Option<&str>,
    ) -> Result<()> {
        validate_projection_name(projection)?;
        let (key, count) = partition_args(partition);
        sqlx::query(AssertSqlSafe(self.statements().checkpoint_error.clone()))
            .bind(projection)
            .bind(key)
            .bind(count)
            .bind(error.map(storable_text))
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Ordered by projection, then partition count, then partition key.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(AssertSqlSafe(self.statements().checkpoint_list.clone()))
                .fetch_all(self.pool())
                .await
                .map_err(db_error)?;
            let table = &self.config().tables.checkpoints;
            rows.iter().map(|row| checkpoint_row(row, table)).collect()
        })
        .await
    }

    /// Two statements: the projection's shard rows are locked first (in key order, as a
    /// reshard locks them), so that a reshard in flight commits before the rewind's statement
    /// starts. One statement alone would skip the rows the reshard deleted and, its snapshot
    /// taken before the reshard's commit, not see the rows it created: they would keep their
    /// position, and the replay the reset promises would not happen.
    async fn reset_checkpoints_in(&self, conn: &mut PgConnection, projection: &str) -> Result<()> {
        validate_projection_name(projection)?;
        let statements = self.statements();
        sqlx::query(AssertSqlSafe(statements.coordination_lock_shards.clone()))
            .bind(projection)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        sqlx::query(AssertSqlSafe(statements.checkpoint_reset.clone()))
            .bind(projection)
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// A second letter at the same projection and position replaces the first (its
    /// `recorded_at` too). A NUL in the error is stored as U+FFFD.
    async fn add_dead_letter_in(&self, conn: &mut PgConnection, letter: &DeadLetter) -> Result<()> {
        validate_projection_name(&letter.projection)?;
        let (key, count) = partition_args(letter.partition);
        let attempts = i32::try_from(letter.attempts).unwrap_or(i32::MAX);
        sqlx::query(AssertSqlSafe(self.statements().dead_letter_add.clone()))
            .bind(&letter.projection)
            .bind(key)
            .bind(count)
            .bind(letter.position)
            .bind(letter.event_id)
            .bind(storable_text(&letter.error))
            .bind(attempts)
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn remove_dead_letter_in(
        &self,
        conn: &mut PgConnection,
        projection: &str,
        position: Position,
    ) -> Result<bool> {
        validate_projection_name(projection)?;
        let done = sqlx::query(AssertSqlSafe(self.statements().dead_letter_remove.clone()))
            .bind(projection)
            .bind(position)
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn dead_letters(&self, projection: Option<&str>) -> Result<Vec<DeadLetter>> {
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(AssertSqlSafe(self.statements().dead_letter_list.clone()))
                .bind(projection)
                .fetch_all(self.pool())
                .await
                .map_err(db_error)?;
            let table = &self.config().tables.dead_letters;
            rows.iter().map(|row| dead_letter_row(row, table)).collect()
        })
        .await
    }

    /// The gap-free head, then (a later statement) the count and oldest `created_at` of the
    /// in-scope events of the partition above `after` and at or below it.
    async fn pending(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
    ) -> Result<Pending> {
        let query = self.config().timeouts.query;
        limited(query, self.pending_unlimited(scope, partition, after)).await
    }

    /// The lowest live in-flight marker below the position sequence's last value (the head
    /// stops at it: [`Stall::position`] is the head, and the stalled write holds positions
    /// above it), with the backend pid, transaction age and `application_name` of the session
    /// holding it (from `pg_stat_activity`: without the right to see that session, the age and
    /// name are `None`; a prepared transaction has no session). `None` when the head is the
    /// sequence's last value.
    async fn stall(&self) -> Result<Option<Stall>> {
        limited(self.config().timeouts.query, self.stall_unlimited()).await
    }
}

#[cfg(test)]
mod tests {
    use pupsourcing_core::dcb::{Query, QueryItem};

    use super::*;

    #[test]
    fn the_filter_binds_every_value_and_splices_none() {
        let scope = Scope::all()
            .aggregate_types(["Order'; DROP TABLE x; --"])
            .event_types(["Placed"])
            .query(Query::from_items([
                QueryItem::types(["A", "B"]).with_tags(["t:1"]),
                QueryItem::tags(["t:2", "t:3"]),
            ]));
        let mut text = String::new();
        let binds = scope_filter(&scope, Partition::new(2, 4).unwrap(), 3, &mut text);
        assert!(!text.contains("DROP"), "{text}");
        assert_eq!(binds.len(), 7);
        assert_eq!(
            text,
            "\n   AND e.aggregate_type = ANY($4::text[])\
             \n   AND e.event_type = ANY($5::text[])\
             \n   AND ((e.event_type = ANY($6::text[]) AND e.tags @> $7::text[]) OR \
             (e.tags @> $8::text[]))\
             \n   AND e.partition_hash % $9 = $10"
        );
    }

    #[test]
    fn the_whole_log_in_one_partition_has_no_filter() {
        let mut text = String::new();
        let scope = Scope::all().query(Query::all());
        assert!(scope_filter(&scope, Partition::all(), 2, &mut text).is_empty());
        assert!(text.is_empty());
    }
}
