//! Projections on MySQL / MariaDB ([`ProjectionStore`]): scoped, partitioned, gap-free batch
//! reads; checkpoints moved by compare-and-set in the caller's transaction; dead letters; lag,
//! and what holds the head back.
//!
//! # Reads
//!
//! A batch read is two statements on one connection outside any transaction, as every global
//! read is (see `crate::read`): the gap-free head (the counter's committed value) first, then
//! the partition's in-scope events above the checkpoint and at or below that head, in position
//! order. The second statement's read view is newer than the head, and every append below the
//! head has ended before the head was committed, so the batch is a gap-free prefix: no event at
//! or below the head can still appear. The scope and the partition are filtered in SQL
//! ([`scope`]): the scope's lists are `IN` lists of binds, a DCB query is a condition per row
//! (point lookups on the tag index), the partition is `partition_hash % count = key` on the
//! hash stored at append.
//!
//! # Checkpoints
//!
//! A checkpoint advances by `UPDATE ... WHERE position = from` in the caller's transaction. An
//! InnoDB UPDATE reads the latest committed row (at any isolation level) and keeps its lock
//! until the transaction ends, so a second processor of the partition waits for the first,
//! then matches nothing. Times are the database clock (`crate::sql::NOW`).
//!
//! # Stall
//!
//! The head is held back only by an append in flight: it holds the counter row's lock from its
//! allocation to its commit. [`ProjectionStore::stall`] names that transaction (see [`stall`]).

mod scope;
mod stall;

use chrono::{DateTime, Utc};
use pupsourcing_core::projection::{
    Batch, Checkpoint, DeadLetter, Partition, Pending, ProjectionStore, Scope, Stall,
    storable_text, validate_projection_name,
};
use pupsourcing_core::stored;
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{Error, Position, Result, StoreConfig, ValidationError};
use sqlx::mysql::MySqlRow;
use sqlx::{Connection, MySqlConnection, Row};

use crate::MySqlEventStore;
use crate::dcb::{Bind, Compiled};
use crate::error::{CorruptRow, db};
use crate::read::{self, COLUMNS};
use crate::sql::Statement;
use crate::store::BEGIN;

/// The projection statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointSql {
    batch: Statement,
    pending: Statement,
    tag_count: Statement,
    create: Statement,
    get: Statement,
    advance: Statement,
    set_error: Statement,
    all: Statement,
    lock_shards: Statement,
    reset_checkpoints: Statement,
    reset_shards: Statement,
    reset_dead_letters: Statement,
    add_dead_letter: Statement,
    remove_dead_letter: Statement,
    dead_letters: Statement,
    pub(crate) stall: stall::StallSql,
}

impl CheckpointSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        let s = |template| Statement::new(template, config);
        let columns = COLUMNS.trim().split(',').map(|c| format!("e.{}", c.trim()));
        let batch =
            include_str!("batch.sql").replace("{columns}", &columns.collect::<Vec<_>>().join(", "));
        Self {
            batch: s(&batch),
            pending: s(include_str!("pending.sql")),
            tag_count: s(include_str!("tag_count.sql")),
            create: s(include_str!("create.sql")),
            get: s(include_str!("get.sql")),
            advance: s(include_str!("advance.sql")),
            set_error: s(include_str!("set_error.sql")),
            all: s(include_str!("all.sql")),
            lock_shards: s(include_str!("lock_shards.sql")),
            reset_checkpoints: s(include_str!("reset_checkpoints.sql")),
            reset_shards: s(include_str!("reset_shards.sql")),
            reset_dead_letters: s(include_str!("reset_dead_letters.sql")),
            add_dead_letter: s(include_str!("add_dead_letter.sql")),
            remove_dead_letter: s(include_str!("remove_dead_letter.sql")),
            dead_letters: s(include_str!("dead_letters.sql")),
            stall: stall::StallSql::new(config),
        }
    }

    /// `head` (a statement whose binds are `after` and `head`) filtered by scope and
    /// partition, then `tail`.
    fn scoped(
        &self,
        head: &Statement,
        scope: &Scope,
        partition: Partition,
        (after, upto): (Position, Position),
        tail: &str,
    ) -> Compiled {
        let mut c = Compiled {
            text: head.text().to_owned(),
            binds: vec![Bind::Int(after), Bind::Int(upto)],
        };
        scope::push_filter(scope, partition, self.tag_count.text(), &mut c);
        c.text.push_str(tail);
        c
    }
}

/// A partition's key and count as the tables store them (core's, as on every backend).
pub(crate) use pupsourcing_core::stored::partition_columns as partition_args;

/// A projection name as every backend checks it.
pub(crate) fn check_projection(name: &str) -> Result<()> {
    Ok(validate_projection_name(name)?)
}

/// A stored timestamp (microseconds since the Unix epoch, UTC).
pub(crate) fn decode_time(
    row: &MySqlRow,
    table: &str,
    column: &'static str,
) -> Result<DateTime<Utc>> {
    stored::timestamp(table, column, row.try_get(column).map_err(db)?)
}

/// A name stored as VARBINARY (written as UTF-8 by the store).
pub(crate) fn decode_name(row: &MySqlRow, table: &str, column: &'static str) -> Result<String> {
    let bytes: Vec<u8> = row.try_get(column).map_err(db)?;
    read::text(table, column, bytes)
}

/// The partition of a checkpoint or dead letter row.
fn decode_partition(row: &MySqlRow, table: &str) -> Result<Partition> {
    let key: i32 = row.try_get("partition_key").map_err(db)?;
    let count: i32 = row.try_get("partition_count").map_err(db)?;
    stored::partition(table, key.into(), count.into())
}

fn decode_checkpoint(row: &MySqlRow, table: &str) -> Result<Checkpoint> {
    Ok(Checkpoint {
        projection: decode_name(row, table, "projection_name")?,
        partition: decode_partition(row, table)?,
        position: row.try_get("position").map_err(db)?,
        updated_at: decode_time(row, table, "updated_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

fn decode_dead_letter(row: &MySqlRow, table: &str) -> Result<DeadLetter> {
    let id: Vec<u8> = row.try_get("event_id").map_err(db)?;
    let attempts: i64 = row.try_get("attempts").map_err(db)?;
    Ok(DeadLetter {
        projection: decode_name(row, table, "projection_name")?,
        partition: decode_partition(row, table)?,
        position: row.try_get("position").map_err(db)?,
        event_id: stored::id(table, "event_id", &id)?,
        error: row.try_get("error").map_err(db)?,
        attempts: u32::try_from(attempts).map_err(|e| CorruptRow::error(table, "attempts", e))?,
        recorded_at: decode_time(row, table, "recorded_at")?,
    })
}

impl MySqlEventStore {
    async fn read_batch_unlimited(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
        limit: usize,
    ) -> Result<Batch> {
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let head = read::head(&mut *conn, self.read_sql()).await?;
        if head <= after {
            return Ok(Batch { events: Vec::new(), head });
        }
        let sql = self.checkpoint_sql();
        let tail = "\nORDER BY e.global_position\nLIMIT ?";
        let mut c = sql.scoped(&sql.batch, scope, partition, (after, head), tail);
        c.binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let rows = c.query().fetch_all(&mut *conn).await.map_err(db)?;
        Ok(Batch { events: read::decode_all(&rows, self.config())?, head })
    }

    async fn pending_unlimited(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
    ) -> Result<Pending> {
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let head = read::head(&mut *conn, self.read_sql()).await?;
        if head <= after {
            return Ok(Pending::default());
        }
        let sql = self.checkpoint_sql();
        let c = sql.scoped(&sql.pending, scope, partition, (after, head), "");
        let row = c.query().fetch_one(&mut *conn).await.map_err(db)?;
        let events: i64 = row.try_get(0).map_err(db)?;
        let oldest: Option<i64> = row.try_get(1).map_err(db)?;
        let table = self.config().tables.events.as_str();
        let oldest =
            oldest.map(|micros| stored::timestamp(table, "created_at", micros)).transpose()?;
        Ok(Pending { events: u64::try_from(events).unwrap_or(0), oldest })
    }

    async fn checkpoint_unlimited(
        &self,
        projection: &str,
        partition: Partition,
    ) -> Result<Checkpoint> {
        let sql = self.checkpoint_sql();
        let table = self.config().tables.checkpoints.as_str();
        let (key, count) = partition_args(partition);
        let mut conn = self.pool().acquire().await.map_err(db)?;
        // A plain read first: the row of a partition with a batch in flight is locked by its
        // advance until the batch commits, and an insert that finds it would wait for that.
        // No row after the insert only when a reset removed it in between; the next try
        // creates it again.
        for attempt in 0..4 {
            let q = |s: &Statement| sqlx::query(s.sql()).bind(projection).bind(key).bind(count);
            if let Some(row) = q(&sql.get).fetch_optional(&mut *conn).await.map_err(db)? {
                return decode_checkpoint(&row, table);
            }
            if attempt < 3 {
                q(&sql.create).execute(&mut *conn).await.map_err(db)?;
            }
        }
        Err(Error::database(std::io::Error::other(format!(
            "the checkpoint of {projection} {partition} was removed while it was being created"
        ))))
    }

    /// The statements of a reset, on `conn` (in a transaction).
    async fn reset_on(&self, conn: &mut MySqlConnection, projection: &str) -> Result<()> {
        let sql = self.checkpoint_sql();
        sqlx::query(sql.lock_shards.sql())
            .bind(projection)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        for statement in [&sql.reset_checkpoints, &sql.reset_shards, &sql.reset_dead_letters] {
            sqlx::query(statement.sql()).bind(projection).execute(&mut *conn).await.map_err(db)?;
        }
        Ok(())
    }
}

/// Projections on MySQL / MariaDB: see the module documentation of `checkpoint` for how reads
/// stay gap-free and how checkpoints are fenced. Reads, [`ProjectionStore::checkpoint`] and the
/// listings honour the configured query time limit (`StoreConfig::timeouts.query`).
impl ProjectionStore for MySqlEventStore {
    /// The gap-free head, then (a later statement) up to `limit` events above `after` and at
    /// or below it, filtered by scope and partition. A limit of 0 is refused.
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
        let read = self.read_batch_unlimited(scope, partition, after, limit);
        limited(self.config().timeouts.query, read).await
    }

    /// Reads the checkpoint (a plain read: it never waits for a batch in flight); creates it
    /// (autocommit, `INSERT IGNORE`) when it has none.
    async fn checkpoint(&self, projection: &str, partition: Partition) -> Result<Checkpoint> {
        check_projection(projection)?;
        let get = self.checkpoint_unlimited(projection, partition);
        limited(self.config().timeouts.query, get).await
    }

    /// One `UPDATE ... WHERE position = from` on `conn`: true iff it matched the row.
    async fn advance_checkpoint_in(
        &self,
        conn: &mut MySqlConnection,
        projection: &str,
        partition: Partition,
        from: Position,
        to: Position,
    ) -> Result<bool> {
        check_projection(projection)?;
        pupsourcing_core::validate_position("checkpoint position", to)?;
        let (key, count) = partition_args(partition);
        let done = sqlx::query(self.checkpoint_sql().advance.sql())
            .bind(to)
            .bind(projection)
            .bind(key)
            .bind(count)
            .bind(from)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
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
        check_projection(projection)?;
        let (key, count) = partition_args(partition);
        sqlx::query(self.checkpoint_sql().set_error.sql())
            .bind(projection)
            .bind(key)
            .bind(count)
            .bind(error.map(storable_text))
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Ordered by projection (bytes), then partition count and key.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let table = self.config().tables.checkpoints.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.checkpoint_sql().all.sql())
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_checkpoint(row, table)).collect()
        })
        .await
    }

    /// Four statements on `conn`: the projection's shard rows are locked first (in key order,
    /// as a reshard locks them), so that a reshard in flight commits before the rewind; then
    /// the checkpoints and dead letters are deleted and the shard rows rewound. A connection
    /// outside any transaction gets a transaction of its own for them.
    async fn reset_checkpoints_in(
        &self,
        conn: &mut MySqlConnection,
        projection: &str,
    ) -> Result<()> {
        check_projection(projection)?;
        if conn.is_in_transaction() {
            return self.reset_on(conn, projection).await;
        }
        let mut tx = conn.begin_with(BEGIN).await.map_err(db)?;
        match self.reset_on(&mut tx, projection).await {
            Ok(()) => tx.commit().await.map_err(db),
            Err(err) => {
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// A second letter at the same projection and position replaces the first (its
    /// `recorded_at` too). A NUL in the error is stored as U+FFFD.
    async fn add_dead_letter_in(
        &self,
        conn: &mut MySqlConnection,
        letter: &DeadLetter,
    ) -> Result<()> {
        check_projection(&letter.projection)?;
        let (key, count) = partition_args(letter.partition);
        sqlx::query(self.checkpoint_sql().add_dead_letter.sql())
            .bind(letter.projection.as_str())
            .bind(key)
            .bind(count)
            .bind(letter.position)
            .bind(letter.event_id.as_bytes().as_slice())
            .bind(storable_text(&letter.error))
            .bind(i64::from(letter.attempts))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn remove_dead_letter_in(
        &self,
        conn: &mut MySqlConnection,
        projection: &str,
        position: Position,
    ) -> Result<bool> {
        check_projection(projection)?;
        let done = sqlx::query(self.checkpoint_sql().remove_dead_letter.sql())
            .bind(projection)
            .bind(position)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn dead_letters(&self, projection: Option<&str>) -> Result<Vec<DeadLetter>> {
        let table = self.config().tables.dead_letters.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.checkpoint_sql().dead_letters.sql())
                .bind(projection)
                .bind(projection)
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_dead_letter(row, table)).collect()
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
        scope.validate(&self.config().limits)?;
        let pending = self.pending_unlimited(scope, partition, after);
        limited(self.config().timeouts.query, pending).await
    }

    /// The transaction holding the counter row (an append in flight), see the `stall` module: the head
    /// as [`Stall::position`] (the write holds positions above it), the holder's connection id
    /// (`CONNECTION_ID()`, what `KILL` takes) as the session, its transaction's age, and its
    /// `user@host` as the application name (MySQL sessions have no application name). `None`
    /// when no transaction holds the counter.
    async fn stall(&self) -> Result<Option<Stall>> {
        limited(self.config().timeouts.query, stall::stall(self)).await
    }
}
