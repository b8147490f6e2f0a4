//! Projections on SQLite: scoped, partitioned batch reads, checkpoints and dead letters
//! ([`ProjectionStore`]).
//!
//! # Reads
//!
//! A batch is read in one read transaction (a deferred `BEGIN` on the read pool, which blocks no
//! writer): the head first, then the partition's in-scope events above the checkpoint and at or
//! below that head, in position order. Both statements read one snapshot, and SQLite commits in
//! position order (one writer at a time allocates positions under the write lock; see
//! `crate::read`), so the batch is a gap-free prefix: no event at or below the head can still
//! appear. For the same reason nothing ever holds the head back, and
//! [`ProjectionStore::stall`] is always `None`.
//!
//! The scope and the partition are filtered in SQL, on one scan of the log by position: the
//! scope's lists are JSON array binds, the partition is `partition_hash % count = key` on the
//! hash stored at append, and a DCB query is a condition on each row compiled by
//! [`DcbSql::row_filter`] (point lookups on the tag index). The scan stops at the batch's limit,
//! and a short batch moves the checkpoint to the head, so each event is scanned about once per
//! projection partition however selective the scope is.
//!
//! # Checkpoints
//!
//! A checkpoint advances by compare-and-set on the position its batch started from, in the
//! caller's transaction. That transaction is a write transaction from
//! [`pupsourcing_core::EventStore::begin`] (`BEGIN IMMEDIATE`): it holds SQLite's single write
//! lock from its start, so two processors of one partition run one after the other, and the
//! second one's compare-and-set finds the position moved and changes nothing.
//!
//! Timestamps (`updated_at`, `recorded_at`) are microseconds since the Unix epoch, UTC, as the
//! events' `created_at`; they come from the process's clock, which is the database's clock for an
//! embedded database.

use chrono::{DateTime, Utc};
use pupsourcing_core::projection::{
    Batch, Checkpoint, DeadLetter, Partition, Pending, ProjectionStore, Scope, Stall,
    storable_text, validate_projection_name,
};
use pupsourcing_core::stored;
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{Error, Position, Result, StoreConfig, ValidationError};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Connection, Row, Sqlite, SqliteConnection};

use crate::SqliteEventStore;
use crate::dcb::{Compiled, DcbSql};
use crate::error::{CorruptRow, db};
use crate::read;
use crate::sql::Statement;
use crate::store::BEGIN_WRITE;

/// The projection statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointSql {
    select_events: Statement,
    pending: Statement,
    scope: Statement,
    get: Statement,
    create: Statement,
    advance: Statement,
    set_error: Statement,
    all: Statement,
    reset_checkpoints: Statement,
    reset_shards: Statement,
    reset_dead_letters: Statement,
    add_dead_letter: Statement,
    remove_dead_letter: Statement,
    dead_letters: Statement,
}

/// How many binds `scope.sql` numbers (?1 to ?7); a batch read adds its limit as ?8.
const SCOPE_BINDS: usize = 7;

impl CheckpointSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        let s = |template| Statement::new(template, config);
        Self {
            // The event columns, as a DCB read selects them.
            select_events: s(include_str!("../dcb/select_events.sql")),
            pending: s(include_str!("pending.sql")),
            scope: s(include_str!("scope.sql")),
            get: s(include_str!("get.sql")),
            create: s(include_str!("create.sql")),
            advance: s(include_str!("advance.sql")),
            set_error: s(include_str!("set_error.sql")),
            all: s(include_str!("all.sql")),
            reset_checkpoints: s(include_str!("reset_checkpoints.sql")),
            reset_shards: s(include_str!("reset_shards.sql")),
            reset_dead_letters: s(include_str!("reset_dead_letters.sql")),
            add_dead_letter: s(include_str!("add_dead_letter.sql")),
            remove_dead_letter: s(include_str!("remove_dead_letter.sql")),
            dead_letters: s(include_str!("dead_letters.sql")),
        }
    }

    /// `head` filtered by `scope.sql` and the scope's query (its binds numbered after `fixed`),
    /// then `tail`.
    fn scoped(
        &self,
        dcb: &DcbSql,
        head: &Statement,
        scope: &Scope,
        fixed: usize,
        tail: &str,
    ) -> Result<Compiled> {
        let mut text = format!("{}\n{}", head.text(), self.scope.text());
        let mut binds = Vec::new();
        let filter = scope.query.as_ref().map(|q| dcb.row_filter(q, fixed)).transpose()?;
        if let Some(filter) = filter.flatten() {
            text.push_str("\n  AND ");
            text.push_str(&filter.text);
            binds = filter.binds;
        }
        text.push_str(tail);
        Ok(Compiled { text, binds })
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

/// Binds `scope.sql`'s ?1 to ?7.
fn bind_scope<'q>(
    q: SqliteQuery<'q>,
    scope: &Scope,
    partition: Partition,
    after: Position,
    head: Position,
) -> Result<SqliteQuery<'q>> {
    let list = |values: &[String]| -> Result<Option<String>> {
        if values.is_empty() {
            return Ok(None);
        }
        serde_json::to_string(values).map(Some).map_err(Error::database)
    };
    Ok(q.bind(after)
        .bind(head)
        .bind(list(&scope.aggregate_types)?)
        .bind(list(&scope.bounded_contexts)?)
        .bind(list(&scope.event_types)?)
        .bind(i64::from(partition.count()))
        .bind(i64::from(partition.key())))
}

/// A projection name must be non-empty and free of NUL characters (which PostgreSQL cannot
/// store), so that it works on every backend.
fn check_projection(name: &str) -> Result<()> {
    Ok(validate_projection_name(name)?)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// The partition of a checkpoint or dead letter row.
fn decode_partition(row: &SqliteRow, table: &str) -> Result<Partition> {
    let key: i64 = row.try_get("partition_key").map_err(db)?;
    let count: i64 = row.try_get("partition_count").map_err(db)?;
    stored::partition(table, key, count)
}

/// A timestamp column (microseconds since 1970), refused when out of chrono's range.
pub(crate) fn decode_time(
    row: &SqliteRow,
    table: &str,
    column: &'static str,
) -> Result<DateTime<Utc>> {
    stored::timestamp(table, column, row.try_get(column).map_err(db)?)
}

fn decode_checkpoint(row: &SqliteRow, table: &str) -> Result<Checkpoint> {
    Ok(Checkpoint {
        projection: row.try_get("projection_name").map_err(db)?,
        partition: decode_partition(row, table)?,
        position: row.try_get("position").map_err(db)?,
        updated_at: decode_time(row, table, "updated_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

fn decode_dead_letter(row: &SqliteRow, table: &str) -> Result<DeadLetter> {
    let id: Vec<u8> = row.try_get("event_id").map_err(db)?;
    let attempts: i64 = row.try_get("attempts").map_err(db)?;
    Ok(DeadLetter {
        projection: row.try_get("projection_name").map_err(db)?,
        partition: decode_partition(row, table)?,
        position: row.try_get("position").map_err(db)?,
        event_id: stored::id(table, "event_id", &id)?,
        error: row.try_get("error").map_err(db)?,
        attempts: u32::try_from(attempts).map_err(|e| CorruptRow::error(table, "attempts", e))?,
        recorded_at: decode_time(row, table, "recorded_at")?,
    })
}

/// Projections on the store's log: see the module documentation of `checkpoint` for how reads
/// stay gap-free and how checkpoints are fenced.
///
/// Every event's partition hash is stored at append, in the events table's `partition_hash`
/// column; events stored before a database got that column (added by
/// [`SqliteEventStore::migrate`]) hash to 0, so they all belong to partition 0 of any count.
impl ProjectionStore for SqliteEventStore {
    /// Reads in one read transaction of its own on the read pool: the head, then the events
    /// up to it. Fails with [`ValidationError::OutOfRange`] for a `limit` of 0 (an empty batch
    /// would move the checkpoint to the head).
    async fn read_batch(
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
        let sql = &self.checkpoint_sql;
        let tail = format!("\nORDER BY e.global_position\nLIMIT ?{}", SCOPE_BINDS + 1);
        let compiled =
            sql.scoped(&self.dcb_sql, &sql.select_events, scope, SCOPE_BINDS + 1, &tail)?;
        limited(self.config().timeouts.query, async {
            let mut conn = self.pool().acquire().await.map_err(db)?;
            let mut tx = conn.begin().await.map_err(db)?;
            let head = read::head(&mut *tx, &self.read_sql).await?;
            let mut q = sqlx::query(AssertSqlSafe(compiled.text));
            q = bind_scope(q, scope, partition, after, head)?;
            q = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
            for value in compiled.binds {
                q = q.bind(value);
            }
            let rows = q.fetch_all(&mut *tx).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(Batch { events: read::decode_all(&rows, self.config())?, head })
        })
        .await
    }

    /// Reads the checkpoint through the read pool; only a missing one is created, through the
    /// write pool.
    async fn checkpoint(&self, projection: &str, partition: Partition) -> Result<Checkpoint> {
        check_projection(projection)?;
        let sql = &self.checkpoint_sql;
        let table = self.config().tables.checkpoints.as_str();
        let get = || {
            sqlx::query(sql.get.sql())
                .bind(projection)
                .bind(i64::from(partition.key()))
                .bind(i64::from(partition.count()))
        };
        limited(self.config().timeouts.query, async {
            if let Some(row) = get().fetch_optional(self.pool()).await.map_err(db)? {
                return decode_checkpoint(&row, table);
            }
            let mut conn = self.write_pool().acquire().await.map_err(db)?;
            sqlx::query(sql.create.sql())
                .bind(projection)
                .bind(i64::from(partition.key()))
                .bind(i64::from(partition.count()))
                .bind(now_micros())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            let row = get().fetch_one(&mut *conn).await.map_err(db)?;
            decode_checkpoint(&row, table)
        })
        .await
    }

    /// One `UPDATE ... WHERE position = from` on `conn`: true iff it changed the row.
    async fn advance_checkpoint_in(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
        partition: Partition,
        from: Position,
        to: Position,
    ) -> Result<bool> {
        check_projection(projection)?;
        pupsourcing_core::validate_position("checkpoint position", to)?;
        let done = sqlx::query(self.checkpoint_sql.advance.sql())
            .bind(projection)
            .bind(i64::from(partition.key()))
            .bind(i64::from(partition.count()))
            .bind(from)
            .bind(to)
            .bind(now_micros())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes through the write pool (creating the checkpoint at 0 if it has none) and moves
    /// its `updated_at`.
    async fn set_checkpoint_error(
        &self,
        projection: &str,
        partition: Partition,
        error: Option<&str>,
    ) -> Result<()> {
        check_projection(projection)?;
        sqlx::query(self.checkpoint_sql.set_error.sql())
            .bind(projection)
            .bind(i64::from(partition.key()))
            .bind(i64::from(partition.count()))
            .bind(error.map(storable_text))
            .bind(now_micros())
            .execute(self.write_pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Ordered by projection name, then partition count and key.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let table = self.config().tables.checkpoints.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.checkpoint_sql.all.sql())
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_checkpoint(row, table)).collect()
        })
        .await
    }

    /// Two deletes and the rewind of the projection's shard rows on `conn`; a connection
    /// outside any transaction gets a write transaction of its own for them.
    async fn reset_checkpoints_in(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
    ) -> Result<()> {
        check_projection(projection)?;
        let sql = &self.checkpoint_sql;
        let reset = async |conn: &mut SqliteConnection| {
            for statement in [&sql.reset_checkpoints, &sql.reset_shards, &sql.reset_dead_letters] {
                sqlx::query(statement.sql())
                    .bind(projection)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
            }
            Ok::<_, Error>(())
        };
        if conn.is_in_transaction() {
            return reset(conn).await;
        }
        let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(db)?;
        reset(&mut tx).await?;
        tx.commit().await.map_err(db)
    }

    /// Replaces an earlier dead letter of the projection at the same position.
    async fn add_dead_letter_in(
        &self,
        conn: &mut SqliteConnection,
        letter: &DeadLetter,
    ) -> Result<()> {
        check_projection(&letter.projection)?;
        sqlx::query(self.checkpoint_sql.add_dead_letter.sql())
            .bind(letter.projection.as_str())
            .bind(i64::from(letter.partition.key()))
            .bind(i64::from(letter.partition.count()))
            .bind(letter.position)
            .bind(letter.event_id.as_bytes().as_slice())
            .bind(storable_text(&letter.error))
            .bind(i64::from(letter.attempts))
            .bind(now_micros())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn remove_dead_letter_in(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
        position: Position,
    ) -> Result<bool> {
        check_projection(projection)?;
        let done = sqlx::query(self.checkpoint_sql.remove_dead_letter.sql())
            .bind(projection)
            .bind(position)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn dead_letters(&self, projection: Option<&str>) -> Result<Vec<DeadLetter>> {
        let table = self.config().tables.dead_letters.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.checkpoint_sql.dead_letters.sql())
                .bind(projection)
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_dead_letter(row, table)).collect()
        })
        .await
    }

    /// One statement, so one snapshot: every event it sees is at or below the head.
    async fn pending(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
    ) -> Result<Pending> {
        scope.validate(&self.config().limits)?;
        let sql = &self.checkpoint_sql;
        let compiled = sql.scoped(&self.dcb_sql, &sql.pending, scope, SCOPE_BINDS, "")?;
        limited(self.config().timeouts.query, async {
            let mut q = sqlx::query(AssertSqlSafe(compiled.text));
            q = bind_scope(q, scope, partition, after, Position::MAX)?;
            for value in compiled.binds {
                q = q.bind(value);
            }
            let row = q.fetch_one(self.pool()).await.map_err(db)?;
            let events: i64 = row.try_get(0).map_err(db)?;
            let oldest: Option<i64> = row.try_get(1).map_err(db)?;
            let table = self.config().tables.events.as_str();
            let oldest =
                oldest.map(|micros| stored::timestamp(table, "created_at", micros)).transpose()?;
            Ok(Pending { events: u64::try_from(events).unwrap_or(0), oldest })
        })
        .await
    }

    /// Always `None`: SQLite commits in position order (one writer at a time allocates
    /// positions under the write lock), so no write in flight ever holds the head back.
    async fn stall(&self) -> Result<Option<Stall>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use pupsourcing_core::dcb::{Query, QueryItem};

    use super::*;

    /// A batch read is one range scan of the log by position, its query items point lookups
    /// on the tag index: never a scan of the whole log or of the tag index.
    #[tokio::test]
    async fn a_batch_is_one_range_scan_by_position() {
        let store =
            SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await.unwrap();
        store.migrate().await.unwrap();
        let scope = Scope::all()
            .aggregate_types(["Order"])
            .bounded_contexts(["sales"])
            .event_types(["Placed", "Paid"])
            .query(Query::from_items([
                QueryItem::types(["Placed"]).with_tags(["t1", "t2"]),
                QueryItem::types(["Paid"]),
            ]));
        let sql = &store.checkpoint_sql;
        let compiled = sql
            .scoped(&store.dcb_sql, &sql.select_events, &scope, SCOPE_BINDS + 1, "\nLIMIT ?8")
            .unwrap();
        let mut q = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", compiled.text)));
        q = bind_scope(q, &scope, Partition::new(1, 4).unwrap(), 10, 100).unwrap().bind(5);
        for value in compiled.binds {
            q = q.bind(value);
        }
        let rows = q.fetch_all(store.pool()).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get("detail")).collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH t USING PRIMARY KEY (tag=? AND global_position=?)"),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH o USING PRIMARY KEY (tag=? AND global_position=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN e") && !plan.contains("SCAN t") && !plan.contains("SCAN o"));
    }
}
