//! Appends, on both write paths: to an aggregate stream (with an expected version) and DCB
//! appends (no stream, optionally under an append condition). Both share one code path:
//!
//! 1. one read that checks idempotency (and, for a stream, the expected version);
//! 2. for a DCB append with a condition, one read that checks the condition;
//! 3. the writes: the events as one multi-row `INSERT`, their tags into the tag index, and, for a
//!    stream, the stream's head.
//!
//! The checks run before any write, so a rejected append writes nothing. They are sound because
//! the connection holds SQLite's write lock while they run: the store's own transactions start
//! with `BEGIN IMMEDIATE`, so no other writer can move the stream's head or append an event that
//! matches the condition between the check and the write (no advisory locks are needed: SQLite
//! has one writer at a time). In a caller's transaction that was begun as a plain (deferred)
//! `BEGIN`, the first write upgrades it to a writer; if another writer committed since the
//! transaction's snapshot, SQLite refuses that upgrade (`SQLITE_BUSY_SNAPSHOT`), so a stale check
//! can never be written either. Use [`EventStore::begin`](pupsourcing_core::EventStore::begin) to get a transaction that
//! waits for the lock instead.

use std::collections::HashMap;

use pupsourcing_core::append::{self, StoredIds};
use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::stored;
use pupsourcing_core::{
    AppendResult, Error, NewEvent, Position, Result, StoreConfig, StreamId, Version,
};
use serde::Serialize;
use sqlx::{Connection, Row, SqliteConnection};
use uuid::Uuid;
use uuid::fmt::Simple;

use crate::dcb::{self, DcbSql};
use crate::error::{CorruptRow, db};
use crate::sql::Statement;
use crate::store::BEGIN_WRITE;

/// The append statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct AppendSql {
    check: Statement,
    insert_events: Statement,
    insert_tags: Statement,
    upsert_head: Statement,
    dcb: DcbSql,
}

impl AppendSql {
    /// Renders the statements for `config`; `dcb` holds the condition check's fragments.
    pub(crate) fn new(config: &StoreConfig, dcb: DcbSql) -> Self {
        Self {
            check: Statement::new(include_str!("check.sql"), config),
            insert_events: Statement::new(include_str!("insert_events.sql"), config),
            insert_tags: Statement::new(include_str!("insert_tags.sql"), config),
            upsert_head: Statement::new(include_str!("upsert_head.sql"), config),
            dcb,
        }
    }
}

/// Where an append goes, validated and read as on every backend (core's).
pub(crate) use pupsourcing_core::append::Target;

/// How the writes of an append are made atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atomicity {
    /// The connection is in a transaction of the store's own, rolled back on any error.
    OwnTransaction,
    /// The connection is in the caller's transaction: the writes go in a savepoint, so that a
    /// failure between them leaves nothing of this append behind.
    Savepoint,
}

/// Validates and appends on `conn` in whatever state it is: in the caller's transaction the
/// writes go in a savepoint; a connection outside any transaction gets a write transaction of
/// its own (`BEGIN IMMEDIATE`), committed on success.
pub(crate) async fn append_in(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    target: Target<'_>,
    events: &[NewEvent],
) -> Result<AppendResult> {
    target.validate(events, &config.limits)?;
    if conn.is_in_transaction() {
        return append(conn, sql, config, target, events, Atomicity::Savepoint).await;
    }
    let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(db)?;
    let result = append(&mut tx, sql, config, target, events, Atomicity::OwnTransaction).await?;
    tx.commit().await.map_err(db)?;
    Ok(result)
}

/// Appends an already validated batch on `conn`, which must be in a transaction.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    target: Target<'_>,
    events: &[NewEvent],
    atomicity: Atomicity,
) -> Result<AppendResult> {
    let current = match check(conn, sql, config, target, events).await? {
        Checked::Write { current } => current,
        Checked::Replayed(result) => return Ok(result),
    };
    match atomicity {
        Atomicity::OwnTransaction => write(conn, sql, config, target, current, events).await,
        Atomicity::Savepoint => {
            let mut savepoint = conn.begin().await.map_err(db)?;
            let result = write(&mut savepoint, sql, config, target, current, events).await?;
            savepoint.commit().await.map_err(db)?;
            Ok(result)
        }
    }
}

enum Checked {
    /// Every event id is stored already: the original append's result.
    Replayed(AppendResult),
    /// None is stored and the expected version or the condition holds: write after `current`
    /// (the stream's version; 0 for a DCB append).
    Write { current: Version },
}

/// Idempotency first (a retry of a stored batch is a replay even if its expected version or its
/// condition would now fail), then the expected version or the append condition, then a batch
/// with only some ids stored is refused as a partial duplicate.
async fn check(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    target: Target<'_>,
    events: &[NewEvent],
) -> Result<Checked> {
    let stream = target.stream();
    let ids: Vec<Simple> = events.iter().map(|e| e.event_id.simple()).collect();
    let ids = serde_json::to_string(&ids).map_err(Error::database)?;
    let rows = sqlx::query(sql.check.sql())
        .bind(stream.map(|s| s.aggregate_type.as_str()))
        .bind(stream.map(|s| s.aggregate_id.as_bytes().as_slice()))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;

    let table = config.tables.events.as_str();
    let mut current = 0;
    let mut stored = StoredIds::new();
    for row in &rows {
        let id: Option<Vec<u8>> = row.try_get("event_id").map_err(db)?;
        let version: Option<Version> = row.try_get("aggregate_version").map_err(db)?;
        match id {
            None => current = version.unwrap_or(0),
            Some(id) => {
                let id = stored::id(table, "event_id", &id)?;
                let position: Position = row.try_get("global_position").map_err(db)?;
                // An event appended outside any stream has no version; report 0 for it.
                stored.insert(id, (position, version.unwrap_or(0)));
            }
        }
    }
    // Every id stored: a replay, whatever the check would say now. Some stored: the check
    // first, so a refused batch reports its conflict as on the server backends (which find
    // stored ids only when their insert fails), and a partial duplicate only when it holds.
    let replay = append::replay(target, events, &stored);
    if let Ok(Some(replayed)) = replay {
        return Ok(Checked::Replayed(replayed));
    }
    refuse_if_unmet(conn, sql, target, current).await?;
    replay?;
    Ok(Checked::Write { current })
}

/// The expected version or the append condition, checked against `current` (the stream's
/// version) or the store.
async fn refuse_if_unmet(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    target: Target<'_>,
    current: Version,
) -> Result<()> {
    match target {
        Target::Stream(stream, expected) => {
            let holds = expected.allows(current);
            if !holds {
                let stream = stream.clone();
                return Err(Error::Concurrency { stream, expected, actual: current });
            }
        }
        Target::Dcb(Some(condition)) => {
            if dcb::condition_matches(conn, &sql.dcb, condition).await? {
                return Err(Error::ConditionFailed { condition: Box::new(condition.clone()) });
            }
        }
        Target::Dcb(None) => {}
    }
    Ok(())
}

/// One event of the insert's JSON array parameter.
#[derive(Serialize)]
struct EventJson<'a> {
    id: Simple,
    #[serde(rename = "type")]
    event_type: &'a str,
    version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a str>,
    tags: &'a [String],
    payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<Simple>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation: Option<Simple>,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation: Option<Simple>,
    at: i64,
    /// The partition hash (see [`partition_hash`]), computed here rather than in SQL so that
    /// every backend stores the same value.
    hash: u32,
}

impl<'a> EventJson<'a> {
    /// The event as appended to `stream` (`None` for a DCB append).
    fn new(event: &'a NewEvent, stream: Option<&StreamId>) -> Self {
        Self {
            id: event.event_id.simple(),
            event_type: &event.event_type,
            version: event.event_version,
            context: event.bounded_context.as_deref(),
            tags: &event.tags,
            payload: hex(&event.payload),
            metadata: event.metadata.as_ref(),
            trace: event.trace_id.map(Uuid::simple),
            correlation: event.correlation_id.map(Uuid::simple),
            causation: event.causation_id.map(Uuid::simple),
            at: event.stored_created_at().timestamp_micros(),
            hash: partition_hash(stream, event),
        }
    }
}

/// Inserts the events (after version `current` of a stream, or outside any stream), fills the
/// tag index and, for a stream, moves its head; returns the events' positions.
async fn write(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    target: Target<'_>,
    current: Version,
    events: &[NewEvent],
) -> Result<AppendResult> {
    let stream = target.stream();
    // Checked before the insert, which numbers the events from `current` in SQL.
    let new_version = current
        .checked_add(events.len() as Version)
        .ok_or(pupsourcing_core::ValidationError::VERSION_OVERFLOW)?;
    let batch: Vec<EventJson<'_>> = events.iter().map(|e| EventJson::new(e, stream)).collect();
    let batch = serde_json::to_string(&batch).map_err(Error::database)?;
    let aggregate_id = stream.map(|s| s.aggregate_id.as_bytes().as_slice());
    let rows = sqlx::query(sql.insert_events.sql())
        .bind(stream.map(|s| s.aggregate_type.as_str()))
        .bind(aggregate_id)
        .bind(stream.map(|_| current))
        .bind(batch)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let positions = placed(config, events, &rows)?;
    let (first, last) = (positions[0], positions[positions.len() - 1]);

    if events.iter().any(|e| !e.tags.is_empty()) {
        sqlx::query(sql.insert_tags.sql())
            .bind(first)
            .bind(last)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }

    let Some(stream) = stream else {
        return Ok(AppendResult { positions, versions: Vec::new(), replayed: false });
    };
    sqlx::query(sql.upsert_head.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(aggregate_id)
        .bind(new_version)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(AppendResult { positions, versions: (current + 1..=new_version).collect(), replayed: false })
}

/// The position of each event, in batch order, from the insert's returned rows (`RETURNING`
/// does not promise an order, so each is placed by its event id). Checks that the batch got one
/// contiguous, increasing block: the insert statement and the write lock promise it, and the
/// tag index insert relies on it.
fn placed(
    config: &StoreConfig,
    events: &[NewEvent],
    rows: &[sqlx::sqlite::SqliteRow],
) -> Result<Vec<Position>> {
    let table = config.tables.events.as_str();
    let mut by_id = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Vec<u8> = row.try_get("event_id").map_err(db)?;
        let id = stored::id(table, "event_id", &id)?;
        let position: Position = row.try_get("global_position").map_err(db)?;
        by_id.insert(id, position);
    }
    let count = events.len();
    if rows.len() != count || by_id.len() != count {
        return Err(unexpected(config, format!("{} rows inserted for {count} events", rows.len())));
    }
    let mut positions = Vec::with_capacity(count);
    for event in events {
        match by_id.get(&event.event_id) {
            Some(&position) => positions.push(position),
            None => {
                return Err(unexpected(config, format!("event {} not inserted", event.event_id)));
            }
        }
    }
    if positions.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(unexpected(config, format!("positions {positions:?} are not one block")));
    }
    Ok(positions)
}

fn unexpected(config: &StoreConfig, reason: String) -> Error {
    CorruptRow::error(config.tables.events.as_str(), "global_position", reason)
}

/// Lower-case hex, as SQLite's `unhex` reads it.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encodes_every_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0, 1, 0x7f, 0x80, 0xab, 0xff]), "00017f80abff");
    }

    #[test]
    fn absent_fields_are_left_out_of_the_json() {
        let event = NewEvent::new("Happened", vec![0xde, 0xad]);
        let json = serde_json::to_value(EventJson::new(&event, None)).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert_eq!(json["hash"], partition_hash(None, &event));
        assert_eq!(json["payload"], "dead");
        assert_eq!(json["id"].as_str().unwrap().len(), 32);
    }
}
