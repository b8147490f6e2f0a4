//! Reads: a stream's events, a stream's version, pages of the global log and its head.
//!
//! # Gap-free by construction
//!
//! SQLite lets one writer at a time hold the database's write lock, from the first write of a
//! transaction (from `BEGIN IMMEDIATE`, for [`EventStore::begin`](pupsourcing_core::EventStore::begin)) until commit
//! or rollback. An append allocates its positions while holding that lock, so a later append
//! gets higher positions *and* commits later: commits happen in position order. A reader in WAL
//! mode sees one committed snapshot per statement, which therefore is always a prefix of the log
//! that can no longer change below its highest position. No in-flight markers are needed, and
//! the head is simply the highest stored position.

use pupsourcing_core::stored;
use pupsourcing_core::{
    Position, RecordedEvent, Result, StoreConfig, StreamId, Version, VersionRange,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteExecutor};
use uuid::Uuid;

use crate::error::{CorruptRow, db};
use crate::sql::Statement;

/// The read statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct ReadSql {
    stream: Statement,
    all: Statement,
    head: Statement,
    stream_version: Statement,
}

impl ReadSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            stream: Statement::new(include_str!("stream.sql"), config),
            all: Statement::new(include_str!("all.sql"), config),
            head: Statement::new(include_str!("head.sql"), config),
            stream_version: Statement::new(include_str!("stream_version.sql"), config),
        }
    }
}

/// The events of `stream` within `range`, in version order.
pub(crate) async fn read_stream<'c>(
    exec: impl SqliteExecutor<'c>,
    sql: &ReadSql,
    config: &StoreConfig,
    stream: &StreamId,
    range: VersionRange,
) -> Result<Vec<RecordedEvent>> {
    let rows = sqlx::query(sql.stream.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(stream.aggregate_id.as_bytes().as_slice())
        .bind(range.from.unwrap_or(Version::MIN))
        .bind(range.to.unwrap_or(Version::MAX))
        .fetch_all(exec)
        .await
        .map_err(db)?;
    decode_all(&rows, config)
}

/// The current version of `stream`, 0 when it does not exist.
pub(crate) async fn stream_version<'c>(
    exec: impl SqliteExecutor<'c>,
    sql: &ReadSql,
    stream: &StreamId,
) -> Result<Version> {
    let version: Option<Version> = sqlx::query_scalar(sql.stream_version.sql())
        .bind(stream.aggregate_type.as_str())
        .bind(stream.aggregate_id.as_bytes().as_slice())
        .fetch_optional(exec)
        .await
        .map_err(db)?;
    Ok(version.unwrap_or(0))
}

/// Up to `limit` events from position `from` (inclusive), in position order.
pub(crate) async fn read_all<'c>(
    exec: impl SqliteExecutor<'c>,
    sql: &ReadSql,
    config: &StoreConfig,
    from: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql.all.sql())
        .bind(from)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(exec)
        .await
        .map_err(db)?;
    decode_all(&rows, config)
}

/// The highest stored position, 0 for an empty log.
pub(crate) async fn head<'c>(exec: impl SqliteExecutor<'c>, sql: &ReadSql) -> Result<Position> {
    sqlx::query_scalar(sql.head.sql()).fetch_one(exec).await.map_err(db)
}

pub(crate) fn decode_all(rows: &[SqliteRow], config: &StoreConfig) -> Result<Vec<RecordedEvent>> {
    let table = config.tables.events.as_str();
    rows.iter().map(|row| decode_event(row, table)).collect()
}

/// Turns a row of the events table back into an event; a malformed value is an error naming
/// the column, never a panic.
fn decode_event(row: &SqliteRow, table: &str) -> Result<RecordedEvent> {
    let corrupt = |column: &'static str, reason: &dyn std::fmt::Display| {
        CorruptRow::error(table, column, reason)
    };
    let get_uuid = |column: &'static str| -> Result<Option<Uuid>> {
        let bytes: Option<Vec<u8>> = row.try_get(column).map_err(db)?;
        bytes.map(|b| stored::id(table, column, &b)).transpose()
    };

    let aggregate_type: Option<String> = row.try_get("aggregate_type").map_err(db)?;
    let aggregate_id = get_uuid("aggregate_id")?;
    let aggregate_version: Option<Version> = row.try_get("aggregate_version").map_err(db)?;
    let stream = match (aggregate_type, aggregate_id, aggregate_version) {
        (Some(kind), Some(id), Some(version)) => Some((StreamId::new(kind, id), version)),
        (None, None, None) => None,
        _ => {
            let reason = "aggregate type, id and version must be all set or all NULL";
            return Err(corrupt("aggregate_type", &reason));
        }
    };

    let tags: String = row.try_get("tags").map_err(db)?;
    let tags: Vec<String> = serde_json::from_str(&tags).map_err(|e| corrupt("tags", &e))?;
    let metadata: Option<String> = row.try_get("metadata").map_err(db)?;
    let metadata = metadata
        .map(|m| serde_json::from_str(&m).map_err(|e| corrupt("metadata", &e)))
        .transpose()?;
    let created_at =
        stored::timestamp(table, "created_at", row.try_get("created_at").map_err(db)?)?;

    Ok(RecordedEvent {
        position: row.try_get("global_position").map_err(db)?,
        event_id: get_uuid("event_id")?.ok_or_else(|| corrupt("event_id", &"NULL"))?,
        event_type: row.try_get("event_type").map_err(db)?,
        event_version: row.try_get("event_version").map_err(db)?,
        bounded_context: row.try_get("bounded_context").map_err(db)?,
        stream,
        tags,
        payload: row.try_get("payload").map_err(db)?,
        metadata,
        trace_id: get_uuid("trace_id")?,
        correlation_id: get_uuid("correlation_id")?,
        causation_id: get_uuid("causation_id")?,
        created_at,
    })
}
