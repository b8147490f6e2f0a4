//! Reads: a stream's events, a stream's version, pages of the global log and its head.
//!
//! # Gap-free by the counter lock
//!
//! Every append takes its positions from the one row of `<events>_counter` (`UPDATE ... SET
//! last_position = last_position + n`), whose exclusive row lock it holds until its transaction
//! ends. So the appends that allocate, insert and commit run one after another from that
//! allocation on: the holder of positions up to `n` has committed (or rolled back, and then its
//! counter update with it) before anyone else can allocate above `n`. InnoDB makes a commit
//! visible before it releases the transaction's locks.
//!
//! A reader reads the counter's committed value `h` in one statement and the events up to `h`
//! in a later one. The writer whose commit made `h` visible committed before the first statement
//! ended; every writer of a position below `h` ended before that writer could allocate. So when
//! the second statement starts (READ COMMITTED: a new read view per statement) all of them have
//! ended, and every event at or below `h` that will ever exist is visible to it. Events above
//! `h` are read by a later read, after `h`. Nothing is skipped, and `h` is never held back by
//! anything but an append in flight, which holds no position at or below it.

use pupsourcing_core::stored;
use pupsourcing_core::{
    Error, Position, RecordedEvent, Result, StoreConfig, StreamId, Version, VersionRange,
};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, MySqlExecutor, Row};
use uuid::Uuid;

use crate::error::{CorruptRow, db};
use crate::sql::Statement;

/// The event columns, in the order [`decode_event`] reads them.
pub(crate) const COLUMNS: &str = include_str!("columns.sql");

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
        let with_columns = |t: &str| t.replace("{columns}", COLUMNS.trim());
        Self {
            stream: Statement::new(&with_columns(include_str!("stream.sql")), config),
            all: Statement::new(&with_columns(include_str!("all.sql")), config),
            head: Statement::new(include_str!("head.sql"), config),
            stream_version: Statement::new(include_str!("stream_version.sql"), config),
        }
    }
}

/// The events of `stream` within `range`, in version order.
pub(crate) async fn read_stream<'c>(
    exec: impl MySqlExecutor<'c>,
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
    exec: impl MySqlExecutor<'c>,
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

/// Up to `limit` events from position `from` (inclusive), in position order, gap-free: the
/// head in one statement, then the events up to it in the next (see the module docs).
pub(crate) async fn read_all(
    conn: &mut MySqlConnection,
    sql: &ReadSql,
    config: &StoreConfig,
    from: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>> {
    let from = from.max(1);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let head = head(&mut *conn, sql).await?;
    if head < from {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql.all.sql())
        .bind(from)
        .bind(head)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    decode_all(&rows, config)
}

/// The gap-free head (see the module docs), 0 for an empty log.
pub(crate) async fn head<'c>(exec: impl MySqlExecutor<'c>, sql: &ReadSql) -> Result<Position> {
    let head: Option<Position> =
        sqlx::query_scalar(sql.head.sql()).fetch_optional(exec).await.map_err(db)?;
    head.ok_or_else(|| {
        Error::database(CorruptRow {
            table: "<events>_counter".into(),
            column: "last_position",
            reason: "the counter row is missing: run migrate".into(),
        })
    })
}

/// Whether the session `conn` runs transactions at READ COMMITTED (or READ UNCOMMITTED, which
/// InnoDB runs like it for locking reads but which reads uncommitted rows: refused too).
pub(crate) async fn is_read_committed(conn: &mut MySqlConnection) -> Result<bool> {
    let level: String =
        match sqlx::query_scalar(include_str!("isolation.sql")).fetch_one(&mut *conn).await {
            Ok(level) => level,
            // MySQL 8 knows only @@transaction_isolation (an error leaves the transaction open).
            Err(_) => sqlx::query_scalar("SELECT @@transaction_isolation")
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?,
        };
    Ok(level.eq_ignore_ascii_case("READ-COMMITTED"))
}

pub(crate) fn decode_all(rows: &[MySqlRow], config: &StoreConfig) -> Result<Vec<RecordedEvent>> {
    let table = config.tables.events.as_str();
    rows.iter().map(|row| decode_event(row, table)).collect()
}

/// Text stored as VARBINARY (always written as UTF-8 by the store).
pub(crate) fn text(table: &str, column: &'static str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| CorruptRow::error(table, column, e))
}

/// Turns a row of the events table back into an event; a malformed value is an error naming
/// the column, never a panic.
fn decode_event(row: &MySqlRow, table: &str) -> Result<RecordedEvent> {
    let corrupt = |column: &'static str, reason: &dyn std::fmt::Display| {
        CorruptRow::error(table, column, reason)
    };
    let get_uuid = |column: &'static str| -> Result<Option<Uuid>> {
        let bytes: Option<Vec<u8>> = row.try_get(column).map_err(db)?;
        bytes.map(|b| stored::id(table, column, &b)).transpose()
    };
    let get_text = |column: &'static str| -> Result<Option<String>> {
        let bytes: Option<Vec<u8>> = row.try_get(column).map_err(db)?;
        bytes.map(|b| text(table, column, b)).transpose()
    };

    let aggregate_type = get_text("aggregate_type")?;
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
        event_type: get_text("event_type")?.ok_or_else(|| corrupt("event_type", &"NULL"))?,
        event_version: row.try_get("event_version").map_err(db)?,
        bounded_context: get_text("bounded_context")?,
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
