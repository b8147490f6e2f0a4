//! Appends to an aggregate stream: one read that checks idempotency and the expected version,
//! then two writes (the events, as one multi-row `INSERT`, and the stream's head).
//!
//! The checks run before any write, so a rejected append writes nothing. They are sound because
//! the connection holds SQLite's write lock while they run: the store's own transactions start
//! with `BEGIN IMMEDIATE`, so no other writer can move the stream's head between the check and
//! the write. In a caller's transaction that was begun as a plain (deferred) `BEGIN`, the first
//! write upgrades it to a writer; if another writer committed since the transaction's snapshot,
//! SQLite refuses that upgrade (`SQLITE_BUSY_SNAPSHOT`), so a stale check can never be written
//! either. Use [`crate::SqliteEventStore::begin`] to get a transaction that waits for the lock
//! instead.

use std::collections::HashMap;

use pupsourcing_core::{
    AppendResult, Error, ExpectedVersion, NewEvent, Position, Result, StoreConfig, StreamId,
    Version,
};
use serde::Serialize;
use sqlx::{Connection, Row, SqliteConnection};
use uuid::Uuid;
use uuid::fmt::Simple;

use crate::error::{CorruptRow, db};
use crate::sql::Statement;

/// The append statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct AppendSql {
    check: Statement,
    insert_events: Statement,
    upsert_head: Statement,
}

impl AppendSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            check: Statement::new(include_str!("check.sql"), config),
            insert_events: Statement::new(include_str!("insert_events.sql"), config),
            upsert_head: Statement::new(include_str!("upsert_head.sql"), config),
        }
    }
}

/// How the writes of an append are made atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atomicity {
    /// The connection is in a transaction of the store's own, rolled back on any error.
    OwnTransaction,
    /// The connection is in the caller's transaction: the writes go in a savepoint, so that a
    /// failure between them leaves nothing of this append behind.
    Savepoint,
}

/// Appends an already validated batch on `conn`, which must be in a transaction.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    atomicity: Atomicity,
) -> Result<AppendResult> {
    let current = match check(conn, sql, config, stream, expected, events).await? {
        Checked::Write { current } => current,
        Checked::Replayed(result) => return Ok(result),
    };
    match atomicity {
        Atomicity::OwnTransaction => write(conn, sql, config, stream, current, events).await,
        Atomicity::Savepoint => {
            let mut savepoint = conn.begin().await.map_err(db)?;
            let result = write(&mut savepoint, sql, config, stream, current, events).await?;
            savepoint.commit().await.map_err(db)?;
            Ok(result)
        }
    }
}

enum Checked {
    /// Every event id is stored already: the original append's result.
    Replayed(AppendResult),
    /// None is stored and the expected version holds: write after `current`.
    Write { current: Version },
}

/// Idempotency first (a retry of a stored batch is a replay even if its expected version would
/// now fail), then the expected version.
async fn check(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Checked> {
    let ids: Vec<Simple> = events.iter().map(|e| e.event_id.simple()).collect();
    let ids = serde_json::to_string(&ids).map_err(Error::database)?;
    let rows = sqlx::query(sql.check.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(stream.aggregate_id.as_bytes().as_slice())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;

    let table = config.tables.events.as_str();
    let mut current = 0;
    let mut stored: HashMap<Uuid, (Position, Version)> = HashMap::new();
    for row in &rows {
        let id: Option<Vec<u8>> = row.try_get("event_id").map_err(db)?;
        let version: Option<Version> = row.try_get("aggregate_version").map_err(db)?;
        match id {
            None => current = version.unwrap_or(0),
            Some(id) => {
                let id =
                    Uuid::from_slice(&id).map_err(|e| CorruptRow::error(table, "event_id", e))?;
                let position: Position = row.try_get("global_position").map_err(db)?;
                // An event appended outside any stream has no version; report 0 for it.
                stored.insert(id, (position, version.unwrap_or(0)));
            }
        }
    }

    if stored.len() == events.len() {
        let (positions, versions) =
            events.iter().map(|e| stored.get(&e.event_id).copied().unwrap_or_default()).unzip();
        return Ok(Checked::Replayed(AppendResult { positions, versions, replayed: true }));
    }
    if let Some(first) = events.iter().find(|e| stored.contains_key(&e.event_id)) {
        return Err(Error::PartialDuplicate {
            stored: stored.len(),
            total: events.len(),
            first: first.event_id,
        });
    }

    let holds = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current == 0,
        ExpectedVersion::Exact(version) => current == version,
    };
    if !holds {
        return Err(Error::Concurrency { stream: stream.clone(), expected, actual: current });
    }
    Ok(Checked::Write { current })
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
}

impl<'a> EventJson<'a> {
    fn new(event: &'a NewEvent) -> Self {
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
            at: event.created_at.timestamp_micros(),
        }
    }
}

/// Inserts the events after version `current` and moves the head; returns their positions.
async fn write(
    conn: &mut SqliteConnection,
    sql: &AppendSql,
    config: &StoreConfig,
    stream: &StreamId,
    current: Version,
    events: &[NewEvent],
) -> Result<AppendResult> {
    let batch: Vec<EventJson<'_>> = events.iter().map(EventJson::new).collect();
    let batch = serde_json::to_string(&batch).map_err(Error::database)?;
    let aggregate_id = stream.aggregate_id.as_bytes().as_slice();
    let rows = sqlx::query(sql.insert_events.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(aggregate_id)
        .bind(current)
        .bind(batch)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;

    // RETURNING does not promise an order: place each position by its version.
    let count = events.len();
    let last = current + count as Version;
    let mut positions = vec![0; count];
    for row in &rows {
        let position: Position = row.try_get("global_position").map_err(db)?;
        let version: Version = row.try_get("aggregate_version").map_err(db)?;
        let slot = usize::try_from(version - current - 1).ok().filter(|&i| i < count);
        match slot {
            Some(i) => positions[i] = position,
            None => return Err(unexpected(config, format!("version {version} was not assigned"))),
        }
    }
    if rows.len() != count || positions.contains(&0) {
        return Err(unexpected(config, format!("{} rows inserted for {count} events", rows.len())));
    }

    sqlx::query(sql.upsert_head.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(aggregate_id)
        .bind(last)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(db)?;

    Ok(AppendResult { positions, versions: (current + 1..=last).collect(), replayed: false })
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
        let json = serde_json::to_value(EventJson::new(&event)).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert_eq!(json["payload"], "dead");
        assert_eq!(json["id"].as_str().unwrap().len(), 32);
    }
}
