//! Appends, on both write paths: to an aggregate stream (with an expected version) and DCB
//! appends (no stream, optionally under an append condition). Both run the same steps, in one
//! transaction, in this order:
//!
//! 1. the DCB boundary locks (`crate::dcb::locks`), in key order;
//! 2. for a stream, its head row, locked, and the expected version check (a missing row means
//!    version 0, see below); for a condition, the check, in a statement after the locks;
//! 3. after a failed check: a replay (every event id already stored) returns the original
//!    positions, anything else the typed error;
//! 4. the write (`write.rs`), text statements of literals sent together, one round trip per
//!    packet-sized chunk (usually one): for a stream, its head row moved to the new version (or
//!    created at it); then one contiguous block of positions from the counter row, whose lock
//!    is held until the transaction ends, the events and their tag index rows; and in the
//!    store's own transaction, the COMMIT. The counter comes last, so that the section every
//!    append runs one at a time (from allocation to commit) holds no lock wait and no client
//!    decision: one round trip.
//!
//! In the store's own transaction, BEGIN, the locks and the head's locking read (or the
//! condition check, a text statement of literals after the lock statements) travel in one
//! round trip too ([`Append::run_own`]): a lone stream or conditional append is two round trips.
//! A DCB append without a condition has nothing to decide: BEGIN and its lock statements go
//! first in the write's round trip, one round trip in all (the failure rules below still hold:
//! a statement that fails before the COMMIT leaves the transaction open). Under READ
//! COMMITTED a locking read of a missing head row locks nothing; the row is then inserted by the
//! write, before the counter statement: a concurrent creator of the same stream makes that
//! insert wait and then fail on the duplicate key, so the check against version 0 is never
//! wrong ([`Outcome::Raced`], the append runs again). In a caller's transaction (maybe
//! REPEATABLE READ) a missing head row is created on the side pool first, then locked.
//!
//! The server stops a multi-statement round trip at the first statement that fails. A stored
//! event id fails the events insert on the unique index, so the COMMIT after it never runs: the
//! outcome is then a replay or a partial duplicate, and the writes made so far are undone (the
//! store's own transaction is rolled back; in a caller's transaction, the append's savepoint).
//! A failed COMMIT (or a lost connection) leaves the outcome unknown, as any COMMIT does.

pub(crate) mod group;
pub(crate) mod literal;
mod rows;
mod write;

use futures_util::TryStreamExt;
use pupsourcing_core::append::{self, StoredIds};
use pupsourcing_core::stored;
use pupsourcing_core::{
    AppendResult, Error, NewEvent, Position, Result, StoreConfig, StreamId, ValidationError,
    Version,
};
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, Either, MySqlConnection, MySqlPool, Row};

use crate::dcb::locks::Locks;
use crate::dcb::{self, DcbSql};
use crate::error::{CorruptRow, DUPLICATE_KEY, db, number};
use crate::sql::{Statement, repeated};
use crate::store::BEGIN;

pub(crate) use rows::{Chunks, budget};
use rows::{Rows, stream_parts};
use write::{Failure, Script, Step, WriteSql};

/// Ids per idempotency lookup (MySQL allows 65,535 placeholders per statement).
const IDS_PER_LOOKUP: usize = 10_000;

/// MySQL error: a value out of range for its column type (the counter passing `i64::MAX`).
const OUT_OF_RANGE: u16 = 1690;

/// The append statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct AppendSql {
    head_create: Statement,
    head_exists: Statement,
    /// `head_read.sql`, the stream's literals left to fill.
    head_read: String,
    stored: Statement,
    write: WriteSql,
}

impl AppendSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            head_create: Statement::new(include_str!("head_create.sql"), config),
            head_exists: Statement::new(include_str!("head_exists.sql"), config),
            head_read: write::template(include_str!("head_read.sql"), config),
            stored: Statement::new(include_str!("stored.sql"), config),
            write: WriteSql::new(config),
        }
    }

    /// The locking read of `stream`'s head row (`head_read.sql`).
    fn head_read(&self, stream: &StreamId) -> String {
        let (kind, id) = stream_parts(stream);
        self.head_read.replace("{type}", &kind).replace("{id}", &id)
    }
}

/// A stream's head row as an append found it, locked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Head {
    /// The row, at this version, locked until the transaction ends.
    Locked(Version),
    /// No row (version 0): the write creates it (see `write_head_insert.sql`).
    Missing,
}

/// Where an append goes, validated and read as on every backend (core's).
pub(crate) use pupsourcing_core::append::Target;

/// What an append did, for the caller to end its transaction or savepoint accordingly.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The events were written: committed if [`Append::commit`], else to commit.
    Appended(AppendResult),
    /// Every event id was stored already: the original positions. Writes made on the way (a
    /// head row, the counter) must be undone: roll back.
    Replayed(AppendResult),
    /// Another append created the stream's head row first (see `write_head_insert.sql`):
    /// nothing was decided; roll back and run the append again.
    Raced,
}

/// What an append of the store's own learned in BEGIN's round trip, and what it left to the
/// write's.
#[derive(Debug, Default)]
struct Opened {
    /// For a stream, its head row, locked.
    head: Option<Head>,
    /// For a condition checked in that round trip, whether an event matched it.
    matched: Option<bool>,
    /// When nothing was sent yet (nothing to decide): the lock statements, which the write's
    /// first round trip sends after BEGIN.
    begin: Option<Vec<String>>,
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
    /// Where missing head rows are created in a caller's transaction (see `head_create.sql`).
    pub(crate) side: &'a MySqlPool,
    /// Whether the write's last round trip ends with COMMIT: an append in a transaction of
    /// the store's own that nothing follows (no command record, no time limit: a COMMIT sent
    /// may not be cut short).
    pub(crate) commit: bool,
    /// Most bytes of a statement sent as text besides the write's (the condition check sent
    /// with BEGIN's round trip): the packet's budget (`rows::budget`), 0 when unknown.
    pub(crate) packet: usize,
}

impl Append<'_> {
    /// The append in a transaction of the store's own, opened here on `conn` (which is in
    /// none): BEGIN, the boundary locks and the head's locking read or the condition check in
    /// one round trip, then the rest; an append with nothing to decide (no stream, no
    /// condition) sends BEGIN and the locks with its write instead: one round trip in all. On
    /// `Err`, [`Outcome::Replayed`] or [`Outcome::Raced`] the caller rolls back.
    pub(crate) async fn run_own(
        &self,
        conn: &mut MySqlConnection,
        locks: &Locks,
        plan: &[pupsourcing_core::dcb::LockKey],
    ) -> Result<Outcome> {
        let opened = match self.target {
            Target::Dcb(None) => {
                Opened { begin: Some(locks.statements(plan)), ..Opened::default() }
            }
            _ => self.begin(conn, locks, plan).await?,
        };
        self.run(conn, opened).await
    }

    /// The append in a caller's transaction on `conn`, in its savepoint: the locks, the head
    /// (created at version 0 on the side pool if missing, then locked), then the rest. On `Err`
    /// or anything but [`Outcome::Appended`] the caller rolls back to the savepoint.
    pub(crate) async fn run_in(
        &self,
        conn: &mut MySqlConnection,
        locks: &Locks,
        plan: &[pupsourcing_core::dcb::LockKey],
    ) -> Result<Outcome> {
        locks.take(conn, plan).await?;
        let head = match self.target.stream() {
            Some(stream) => Some(Head::Locked(self.lock_head_in(conn, stream).await?)),
            None => None,
        };
        self.run(conn, Opened { head, ..Opened::default() }).await
    }

    /// One round trip: BEGIN, the lock statements, then for a stream its head's locking read,
    /// or for a condition its check (after the locks: see `dcb::conditions_statement`), whose
    /// rows come last. A check too long for a packet is left to [`Append::run`].
    async fn begin(
        &self,
        conn: &mut MySqlConnection,
        locks: &Locks,
        plan: &[pupsourcing_core::dcb::LockKey],
    ) -> Result<Opened> {
        let last = match self.target {
            Target::Stream(stream, _) => Some(self.sql.head_read(stream)),
            Target::Dcb(Some(condition)) => {
                dcb::conditions_statement(self.dcb, &[condition], self.packet)
            }
            Target::Dcb(None) => None,
        };
        let statements = locks.statements(plan).into_iter().chain(last.clone());
        let rows = begin_with(conn, BEGIN, statements, 1).await?.pop().unwrap_or_default();
        let mut opened = Opened::default();
        match (self.target, last) {
            (_, None) => {}
            (Target::Stream(..), Some(_)) => {
                opened.head = Some(match rows.first() {
                    Some(row) => Head::Locked(row.try_get(0).map_err(db)?),
                    None => Head::Missing,
                });
            }
            (Target::Dcb(_), Some(_)) => {
                let row = rows.first().ok_or_else(|| db(no_check_row()))?;
                opened.matched = dcb::matches(row, 1)?.first().copied();
            }
        }
        Ok(opened)
    }

    /// Steps 2 to 4 of the module docs, the locks held (or, when `opened.begin`, to be taken
    /// by the write's first round trip) and, for a stream, its head locked.
    async fn run(&self, conn: &mut MySqlConnection, opened: Opened) -> Result<Outcome> {
        let head = opened.head;
        let current = match self.target {
            Target::Stream(stream, expected) => {
                let current = match head {
                    Some(Head::Locked(version)) => version,
                    Some(Head::Missing) | None => 0,
                };
                let holds = expected.allows(current);
                if !holds {
                    let stream = stream.clone();
                    let conflict = Error::Concurrency { stream, expected, actual: current };
                    return self.replay_or(conn, conflict, 0).await;
                }
                current
            }
            Target::Dcb(Some(condition)) => {
                let matched = match opened.matched {
                    Some(matched) => matched,
                    None => dcb::condition_matches(conn, self.dcb, condition).await?,
                };
                if matched {
                    let failed = Error::ConditionFailed { condition: Box::new(condition.clone()) };
                    return self.replay_or(conn, failed, 0).await;
                }
                0
            }
            Target::Dcb(None) => 0,
        };
        let count = self.events.len() as i64;
        if self.target.stream().is_some() && current.checked_add(count).is_none() {
            return Err(ValidationError::VERSION_OVERFLOW.into());
        }
        let versions = match self.target.stream() {
            Some(_) => (current + 1..=current + count).collect(),
            None => Vec::new(),
        };
        match self.write(conn, head, current, opened.begin).await {
            Ok(first) => {
                // Inclusive: the block may end at i64::MAX, one past which does not exist.
                let positions: Vec<Position> = (first..=first + (count - 1)).collect();
                Ok(Outcome::Appended(AppendResult { positions, versions, replayed: false }))
            }
            Err((Failure { step: Some(Step::Head), error }, _))
                if number(&error) == Some(DUPLICATE_KEY) =>
            {
                Ok(Outcome::Raced)
            }
            // Only the events insert can meet a stored id. A duplicate in the tag index comes
            // after this chunk's events went in: they were not stored before, so it is no replay
            // (and the lookup would find them, in this very transaction).
            Err((Failure { step: Some(Step::Events), error }, written))
                if number(&error) == Some(DUPLICATE_KEY) =>
            {
                self.replay_or(conn, Error::database(error), written).await
            }
            Err((Failure { step: Some(Step::Counter), error }, _))
                if number(&error) == Some(OUT_OF_RANGE) =>
            {
                Err(ValidationError::OutOfRange {
                    field: "global position",
                    reason: "the position counter reached the largest 64-bit integer",
                }
                .into())
            }
            Err((failure, _)) => Err(db(failure.error)),
        }
    }

    /// Writes the batch (`write.rs`), one round trip per chunk (see `rows`): the first also
    /// opens the transaction with BEGIN and `begin`'s lock statements when given, and moves or
    /// creates the stream's head; the last commits if [`Append::commit`]. Each chunk takes its
    /// positions from the counter, whose lock the first takes and the transaction keeps, so the
    /// chunks' blocks are contiguous. Returns the first position; on failure, how many of the
    /// batch's events the earlier chunks inserted (in the transaction still).
    async fn write(
        &self,
        conn: &mut MySqlConnection,
        head: Option<Head>,
        current: Version,
        mut begin: Option<Vec<String>>,
    ) -> std::result::Result<Position, (Failure, usize)> {
        let stream = self.target.stream();
        let chunks = &self.chunks.0;
        let mut first = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let mut script = Script::default();
            if let Some(locks) = begin.take() {
                script.begin(BEGIN, locks);
            }
            if let (0, Some(stream), Some(head)) = (i, stream, head) {
                let version = current + self.events.len() as i64;
                let (kind, id) = stream_parts(stream);
                match head {
                    Head::Locked(_) => self.sql.write.head_bump(&mut script, &kind, &id, version),
                    Head::Missing => {
                        self.sql.write.head_insert(&mut script, &format!("{kind},{id}"), version);
                    }
                }
            }
            let mut rows = Rows::new(chunk.len(), chunk.bytes);
            rows.push(chunk, stream.map(|_| current + chunk.start as i64 + 1));
            self.sql.write.rows(&mut script, &rows);
            if self.commit && i + 1 == chunks.len() {
                script.commit();
            }
            let lasts = script.run(conn).await.map_err(|failure| (failure, chunk.start))?;
            let last = lasts.first().copied().unwrap_or_default();
            first.get_or_insert(last - (chunk.len() as i64 - 1));
        }
        first.ok_or_else(|| {
            let error = sqlx::Error::Protocol("an empty batch reached the write".into());
            (Failure { step: None, error }, 0)
        })
    }

    /// In a caller's transaction: locks the stream's head row and returns its version,
    /// creating the row at version 0 first if it is missing.
    ///
    /// The transaction may be REPEATABLE READ, where a locking read of a missing row takes a
    /// gap lock: a plain read asks first, and a missing row is created outside the transaction
    /// (see head_create.sql), so that the caller's transaction never holds the lock of a new
    /// row another creator would wait for.
    async fn lock_head_in(&self, conn: &mut MySqlConnection, stream: &StreamId) -> Result<Version> {
        let (kind, id) =
            (stream.aggregate_type.as_str(), stream.aggregate_id.as_bytes().as_slice());
        let exists = sqlx::query(self.sql.head_exists.sql())
            .bind(kind)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if exists.is_none() {
            let now = chrono::Utc::now().timestamp_micros();
            let mut side = self.side.acquire().await.map_err(db)?;
            let create = sqlx::query(self.sql.head_create.sql()).bind(kind).bind(id).bind(now);
            create.execute(&mut *side).await.map_err(db)?;
        }
        let read = AssertSqlSafe(self.sql.head_read(stream));
        match sqlx::raw_sql(read).fetch_optional(&mut *conn).await.map_err(db)? {
            Some(row) => row.try_get(0).map_err(db),
            None => Err(CorruptRow::error(
                self.config.tables.aggregate_heads.as_str(),
                "aggregate_version",
                "the head row just created is missing",
            )),
        }
    }

    /// After a rejection: a replay when every event id is stored, a partial duplicate when
    /// some are and `rejection` is the insert's duplicate key, else `rejection`.
    ///
    /// The batch's first `written` events were inserted by this append's own earlier chunks:
    /// the lookup finds them (in this transaction) but they were not stored before, so the
    /// batch is no replay, and they do not count as stored.
    async fn replay_or(
        &self,
        conn: &mut MySqlConnection,
        rejection: Error,
        written: usize,
    ) -> Result<Outcome> {
        let mut stored = self.stored(conn).await?;
        // Removing them also rules out a replay once any chunk was written: fewer ids than
        // the batch's are then left.
        for event in &self.events[..written] {
            stored.remove(&event.event_id);
        }
        // A partial duplicate only explains a failed insert: a failed expected version or
        // condition is reported as such, as on PostgreSQL.
        let is_duplicate = matches!(&rejection, Error::Database(_));
        match append::replay(self.target, self.events, &stored) {
            Ok(Some(replayed)) => Ok(Outcome::Replayed(replayed)),
            Err(partial) if is_duplicate => Err(partial),
            Ok(None) | Err(_) => Err(rejection),
        }
    }

    /// The batch's event ids that are stored, with their positions and versions (0 outside a
    /// stream).
    async fn stored(&self, conn: &mut MySqlConnection) -> Result<StoredIds> {
        let table = self.config.tables.events.as_str();
        let mut stored = StoredIds::new();
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
                let id = stored::id(table, "event_id", &id)?;
                let position: Position = row.try_get(1).map_err(db)?;
                let version: Option<Version> = row.try_get(2).map_err(db)?;
                stored.insert(id, (position, version.unwrap_or(0)));
            }
        }
        Ok(stored)
    }
}

/// Runs `begin` (`store::BEGIN`, or a plain `START TRANSACTION` on a session known to be set
/// up) and `statements` in one round trip, and returns the rows of the last `last` statements,
/// in order. The server stops at the first statement that fails; the caller rolls back.
pub(crate) async fn begin_with(
    conn: &mut MySqlConnection,
    begin: &str,
    statements: impl IntoIterator<Item = String>,
    last: usize,
) -> Result<Vec<Vec<MySqlRow>>> {
    let mut text = String::from(begin);
    for statement in statements {
        text.push_str(";\n");
        text.push_str(&statement);
    }
    let mut results = sqlx::raw_sql(AssertSqlSafe(text)).fetch_many(&mut *conn);
    // The rows of the statement running, and of the last ones ended (BEGIN's count varies).
    let (mut pending, mut ended) = (Vec::new(), std::collections::VecDeque::new());
    while let Some(result) = results.try_next().await.map_err(db)? {
        match result {
            Either::Left(_) => {
                ended.push_back(std::mem::take(&mut pending));
                if ended.len() > last {
                    ended.pop_front();
                }
            }
            Either::Right(row) => pending.push(row),
        }
    }
    Ok(ended.into())
}

/// The condition check of a round trip returned no row (an `EXISTS` select always returns one).
fn no_check_row() -> sqlx::Error {
    sqlx::Error::Protocol("the condition check returned no row".into())
}
