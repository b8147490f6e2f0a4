//! Appends, on both write paths: to an aggregate stream (with an expected version) and DCB
//! appends (no stream, optionally under an append condition). Both run the same steps, in one
//! transaction, in this order:
//!
//! 1. the DCB boundary locks (`crate::dcb::locks`), in key order;
//! 2. for a stream, its head row, locked (created at version 0 if new), and the expected
//!    version check; for a condition, the check, in a statement after the locks;
//! 3. after a failed check: a replay (every event id already stored) returns the original
//!    positions, anything else the typed error;
//! 4. for a stream, the head's new version;
//! 5. the write, one call of the `<events>_write` procedure per packet-sized chunk (usually one):
//!    one contiguous block of positions from the counter row, whose lock is held until the
//!    transaction ends, the events and their tag index rows. It comes last, so that the
//!    section every append runs one at a time (from allocation to commit) holds no lock wait
//!    and no check: the call and the COMMIT, two round trips.
//!
//! A stored event id fails the insert on the unique index: the outcome is then a replay or a
//! partial duplicate, and the writes made so far are undone (the store's own transaction is
//! rolled back; in a caller's transaction, the append's savepoint).

pub(crate) mod group;
mod rows;

use std::collections::HashMap;

use pupsourcing_core::dcb::AppendCondition;
use pupsourcing_core::{
    AppendResult, Error, ExpectedVersion, NewEvent, Position, Result, StoreConfig, StreamId,
    ValidationError, Version, validate_batch,
};
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool, Row};
use uuid::Uuid;

use crate::dcb::{self, DcbSql};
use crate::error::{CorruptRow, DUPLICATE_KEY, db, number};
use crate::sql::{Statement, repeated};

pub(crate) use rows::{Chunks, budget};

/// Ids per idempotency lookup (MySQL allows 65,535 placeholders per statement).
const IDS_PER_LOOKUP: usize = 10_000;

/// MySQL error: a value out of range for its column type (the counter passing `i64::MAX`).
const OUT_OF_RANGE: u16 = 1690;

/// The append statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct AppendSql {
    head_create: Statement,
    head_insert: Statement,
    head_exists: Statement,
    head_read: Statement,
    head_bump: Statement,
    write: Statement,
    stored: Statement,
}

impl AppendSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            head_create: Statement::new(include_str!("head_create.sql"), config),
            head_insert: Statement::new(include_str!("head_insert.sql"), config),
            head_exists: Statement::new(include_str!("head_exists.sql"), config),
            head_read: Statement::new(include_str!("head_read.sql"), config),
            head_bump: Statement::new(include_str!("head_bump.sql"), config),
            write: Statement::new(include_str!("write.sql"), config),
            stored: Statement::new(include_str!("stored.sql"), config),
        }
    }
}

/// Where an append goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// An aggregate stream, with what the append expects of its version.
    Stream(&'a StreamId, ExpectedVersion),
    /// The DCB path: no stream, optionally under an append condition.
    Dcb(Option<&'a AppendCondition>),
}

impl Target<'_> {
    /// Checks the batch (and the condition) before anything reaches the database.
    pub(crate) fn validate(&self, events: &[NewEvent], config: &StoreConfig) -> Result<()> {
        let limits = &config.limits;
        match *self {
            Target::Stream(stream, expected) => {
                validate_batch(Some(stream), expected, events, limits)?;
            }
            Target::Dcb(condition) => {
                validate_batch(None, ExpectedVersion::Any, events, limits)?;
                if let Some(condition) = condition {
                    condition.validate(limits)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn stream(&self) -> Option<&StreamId> {
        match *self {
            Target::Stream(stream, _) => Some(stream),
            Target::Dcb(_) => None,
        }
    }

    pub(crate) fn condition(&self) -> Option<&AppendCondition> {
        match *self {
            Target::Stream(..) | Target::Dcb(None) => None,
            Target::Dcb(Some(condition)) => Some(condition),
        }
    }
}

/// What an append did, for the caller to end its transaction or savepoint accordingly.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The events were written: commit.
    Appended(AppendResult),
    /// Every event id was stored already: the original positions. Writes made on the way (a
    /// new head row, the counter) must be undone: roll back.
    Replayed(AppendResult),
    /// Another append created the stream's head row first (see `head_insert.sql`): nothing
    /// was decided; roll back and run the append again.
    Raced,
}

/// Everything an append needs besides the connection.
pub(crate) struct Append<'a> {
    pub(crate) sql: &'a AppendSql,
    pub(crate) dcb: &'a DcbSql,
    pub(crate) config: &'a StoreConfig,
    pub(crate) target: Target<'a>,
    pub(crate) events: &'a [NewEvent],
    /// The batch's rows, split to fit the server's packet (validated before the transaction).
    pub(crate) chunks: &'a Chunks,
    /// Where missing head rows are created (see `head_create.sql`).
    pub(crate) side: &'a MySqlPool,
    /// Whether the transaction is the store's own (READ COMMITTED for sure).
    pub(crate) own_transaction: bool,
}

impl Append<'_> {
    /// Runs steps 2 to 6 of the module docs on `conn`, inside a transaction whose boundary
    /// locks are held. On `Err` or [`Outcome::Replayed`] the caller rolls back.
    pub(crate) async fn run(&self, conn: &mut MySqlConnection) -> Result<Outcome> {
        let now = chrono::Utc::now().timestamp_micros();
        let current = match self.target {
            Target::Stream(stream, expected) => {
                let Some(current) = self.lock_head(conn, stream, now).await? else {
                    return Ok(Outcome::Raced);
                };
                let holds = match expected {
                    ExpectedVersion::Any => true,
                    ExpectedVersion::NoStream => current == 0,
                    ExpectedVersion::Exact(version) => current == version,
                };
                if !holds {
                    let stream = stream.clone();
                    let conflict = Error::Concurrency { stream, expected, actual: current };
                    return self.replay_or(conn, conflict).await;
                }
                current
            }
            Target::Dcb(Some(condition)) => {
                if dcb::condition_matches(conn, self.dcb, condition).await? {
                    let failed = Error::ConditionFailed { condition: Box::new(condition.clone()) };
                    return self.replay_or(conn, failed).await;
                }
                0
            }
            Target::Dcb(None) => 0,
        };
        let count = self.events.len() as i64;
        if self.target.stream().is_some() && current.checked_add(count).is_none() {
            return Err(ValidationError::VERSION_OVERFLOW.into());
        }
        // The head moves before the positions are taken, to keep the serialised section short;
        // a replay or a failure rolls it back with everything else.
        let versions = match self.target.stream() {
            Some(stream) => {
                let new_version = current + count;
                self.bump_head(conn, stream, new_version, now).await?;
                (current + 1..=new_version).collect()
            }
            None => Vec::new(),
        };
        match self.write(conn, current).await {
            Err(err) if number(&err) == Some(DUPLICATE_KEY) => {
                let duplicate = Error::database(err);
                self.replay_or(conn, duplicate).await
            }
            Err(err) if number(&err) == Some(OUT_OF_RANGE) => Err(ValidationError::OutOfRange {
                field: "global position",
                reason: "the position counter reached the largest 64-bit integer",
            }
            .into()),
            Err(err) => Err(db(err)),
            Ok(first) => {
                // Inclusive: the block may end at i64::MAX, one past which does not exist.
                let positions: Vec<Position> = (first..=first + (count - 1)).collect();
                Ok(Outcome::Appended(AppendResult { positions, versions, replayed: false }))
            }
        }
    }

    /// Locks the stream's head row and returns its version, creating the row at version 0
    /// first if it is missing; `None` when a concurrent append created it first.
    async fn lock_head(
        &self,
        conn: &mut MySqlConnection,
        stream: &StreamId,
        now: i64,
    ) -> Result<Option<Version>> {
        let (kind, id) =
            (stream.aggregate_type.as_str(), stream.aggregate_id.as_bytes().as_slice());
        if self.own_transaction {
            // READ COMMITTED: a locking read of a missing row locks nothing, and the new row
            // is inserted in this transaction (see head_insert.sql).
            if let Some(version) = self.read_head(conn, kind, id).await? {
                return Ok(Some(version));
            }
            let insert = sqlx::query(self.sql.head_insert.sql()).bind(kind).bind(id).bind(now);
            return match insert.execute(&mut *conn).await {
                Ok(_) => Ok(Some(0)),
                Err(err) if number(&err) == Some(DUPLICATE_KEY) => Ok(None),
                Err(err) => Err(db(err)),
            };
        }
        // A caller's transaction may be REPEATABLE READ, where a locking read of a missing row
        // takes a gap lock: a plain read asks first, and a missing row is created outside the
        // transaction (see head_create.sql), so that the caller's transaction never holds the
        // lock of a new row another creator would wait for.
        let exists = sqlx::query(self.sql.head_exists.sql())
            .bind(kind)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if exists.is_none() {
            let mut side = self.side.acquire().await.map_err(db)?;
            let create = sqlx::query(self.sql.head_create.sql()).bind(kind).bind(id).bind(now);
            create.execute(&mut *side).await.map_err(db)?;
        }
        match self.read_head(conn, kind, id).await? {
            Some(version) => Ok(Some(version)),
            None => Err(CorruptRow::error(
                self.config.tables.aggregate_heads.as_str(),
                "aggregate_version",
                "the head row just created is missing",
            )),
        }
    }

    /// The head row's version, locked until the transaction ends; `None` if there is no row.
    async fn read_head(
        &self,
        conn: &mut MySqlConnection,
        kind: &str,
        id: &[u8],
    ) -> Result<Option<Version>> {
        sqlx::query_scalar(self.sql.head_read.sql())
            .bind(kind)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)
    }

    async fn bump_head(
        &self,
        conn: &mut MySqlConnection,
        stream: &StreamId,
        version: Version,
        now: i64,
    ) -> Result<()> {
        sqlx::query(self.sql.head_bump.sql())
            .bind(version)
            .bind(now)
            .bind(stream.aggregate_type.as_str())
            .bind(stream.aggregate_id.as_bytes().as_slice())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Writes the batch, one procedure call per chunk (see `rows`): each takes its positions
    /// from the counter, whose lock the first call takes and the transaction keeps, so the
    /// chunks' blocks are contiguous. Returns the first position.
    async fn write(
        &self,
        conn: &mut MySqlConnection,
        current: Version,
    ) -> std::result::Result<Position, sqlx::Error> {
        let stream = self.target.stream();
        let mut first = None;
        for chunk in &self.chunks.0 {
            let version = stream.map(|_| current + chunk.start as i64 + 1);
            let mut array = String::with_capacity(chunk.bytes);
            chunk.render(&mut array, version);
            rows::close_array(&mut array);
            let position = write_rows(conn, self.sql, array, chunk.len()).await?;
            first.get_or_insert(position);
        }
        first.ok_or_else(|| sqlx::Error::Protocol("an empty batch reached the write".into()))
    }

    /// After a rejection: a replay when every event id is stored, a partial duplicate when
    /// some are and `rejection` is the insert's duplicate key, else `rejection`.
    async fn replay_or(&self, conn: &mut MySqlConnection, rejection: Error) -> Result<Outcome> {
        let stored = self.stored(conn).await?;
        if stored.len() == self.events.len() {
            let (positions, versions): (Vec<Position>, Vec<Version>) = self
                .events
                .iter()
                .map(|e| stored.get(&e.event_id).copied().unwrap_or_default())
                .unzip();
            // DCB appends report no versions, as when they were first written.
            let versions = if self.target.stream().is_some() { versions } else { Vec::new() };
            return Ok(Outcome::Replayed(AppendResult { positions, versions, replayed: true }));
        }
        let is_duplicate = matches!(&rejection, Error::Database(_));
        match self.events.iter().find(|e| stored.contains_key(&e.event_id)) {
            Some(first) if is_duplicate => Err(Error::PartialDuplicate {
                stored: stored.len(),
                total: self.events.len(),
                first: first.event_id,
            }),
            _ => Err(rejection),
        }
    }

    /// The batch's event ids that are stored, with their positions and versions (0 outside a
    /// stream).
    async fn stored(
        &self,
        conn: &mut MySqlConnection,
    ) -> Result<HashMap<Uuid, (Position, Version)>> {
        let table = self.config.tables.events.as_str();
        let mut stored = HashMap::new();
        for ids in self.events.chunks(IDS_PER_LOOKUP) {
            let text = format!(
                "{} ({}) LOCK IN SHARE MODE",
                self.sql.stored.text(),
                repeated("?", ids.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(text));
            for event in ids {
                query = query.bind(event.event_id.as_bytes().as_slice());
            }
            for row in query.fetch_all(&mut *conn).await.map_err(db)? {
                let id: Vec<u8> = row.try_get(0).map_err(db)?;
                let id =
                    Uuid::from_slice(&id).map_err(|e| CorruptRow::error(table, "event_id", e))?;
                let position: Position = row.try_get(1).map_err(db)?;
                let version: Option<Version> = row.try_get(2).map_err(db)?;
                stored.insert(id, (position, version.unwrap_or(0)));
            }
        }
        Ok(stored)
    }
}

/// One call of the write procedure: `count` events as a JSON `array` (see `rows`), written at
/// the next positions of the counter, whose row lock the transaction keeps. Returns the first.
pub(crate) async fn write_rows(
    conn: &mut MySqlConnection,
    sql: &AppendSql,
    array: String,
    count: usize,
) -> std::result::Result<Position, sqlx::Error> {
    let row = sqlx::query(sql.write.sql()).bind(array).bind(count as i64).fetch_one(conn).await?;
    row.try_get(0)
}
