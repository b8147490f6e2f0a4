//! Reads: aggregate streams, the stream head, and gap-free pages of the global log.

use pupsourcing_core::{Position, RecordedEvent, StreamId, Version, VersionRange};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgExecutor, Row};

use crate::sql::Statements;

/// Decodes one row of the column list shared by every read statement.
pub(crate) fn decode(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let aggregate_type: Option<String> = row.try_get(5)?;
    let aggregate_id = row.try_get(6)?;
    let aggregate_version: Option<i64> = row.try_get(7)?;
    let stream = match (aggregate_type, aggregate_id, aggregate_version) {
        (Some(t), Some(id), Some(v)) => Some((StreamId::new(t, id), v)),
        _ => None,
    };
    Ok(RecordedEvent {
        position: row.try_get(0)?,
        event_id: row.try_get(1)?,
        event_type: row.try_get(2)?,
        event_version: row.try_get(3)?,
        bounded_context: row.try_get(4)?,
        stream,
        tags: row.try_get(8)?,
        payload: row.try_get(9)?,
        metadata: row.try_get(10)?,
        trace_id: row.try_get(11)?,
        correlation_id: row.try_get(12)?,
        causation_id: row.try_get(13)?,
        created_at: row.try_get(14)?,
    })
}

/// Events of `stream` within `range`, in version order.
pub(crate) async fn read_stream<'c>(
    executor: impl PgExecutor<'c>,
    sql: &Statements,
    stream: &StreamId,
    range: VersionRange,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(AssertSqlSafe(sql.read_stream.clone()))
        .bind(&stream.aggregate_type)
        .bind(stream.aggregate_id)
        .bind(range.from.unwrap_or(1))
        .bind(range.to.unwrap_or(i64::MAX))
        .fetch_all(executor)
        .await?;
    rows.iter().map(decode).collect()
}

/// The stream's version, 0 when it has no head row.
pub(crate) async fn stream_version<'c>(
    executor: impl PgExecutor<'c>,
    sql: &Statements,
    stream: &StreamId,
) -> Result<Version, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql.stream_version.clone()))
        .bind(&stream.aggregate_type)
        .bind(stream.aggregate_id)
        .fetch_optional(executor)
        .await?;
    Ok(version.unwrap_or(0))
}

/// Up to `limit` events with `from <= position <= head`, in position order. `head` must come
/// from [`safe_head`] called before this statement starts.
pub(crate) async fn read_until<'c>(
    executor: impl PgExecutor<'c>,
    sql: &Statements,
    from: Position,
    head: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(AssertSqlSafe(sql.read_all.clone()))
        .bind(from)
        .bind(head)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(executor)
        .await?;
    rows.iter().map(decode).collect()
}

/// The gap-free head (see `{events}_safe_head` in `migrate/schema.sql`), and whether the
/// connection's transaction is READ COMMITTED.
///
/// The head is only safe for reads that take a newer snapshot than the head's statement: in an
/// autocommit connection, or a READ COMMITTED transaction. A REPEATABLE READ or SERIALIZABLE
/// transaction keeps an older snapshot, which may miss a writer that committed (and dropped
/// its marker) after the snapshot was taken.
pub(crate) async fn safe_head<'c>(
    executor: impl PgExecutor<'c>,
    sql: &Statements,
) -> Result<(Position, bool), sqlx::Error> {
    let (head, read_committed): (Option<i64>, bool) =
        sqlx::query_as(AssertSqlSafe(sql.safe_head.clone())).fetch_one(executor).await?;
    Ok((head.unwrap_or(0), read_committed))
}

/// The head of a DCB query whose lock keys are `keys`, or of the whole log without keys (see
/// `{events}_query_head` in
/// `migrate/schema.sql`): gap-free for that query only (with `skip_own`, for the session's open
/// transaction only), and whether the session is at READ COMMITTED.
pub(crate) async fn query_head<'c>(
    executor: impl PgExecutor<'c>,
    sql: &Statements,
    keys: Option<&[i64]>,
    global: i64,
    skip_own: bool,
) -> Result<(Position, bool), sqlx::Error> {
    let (head, read_committed): (Option<i64>, bool) =
        sqlx::query_as(AssertSqlSafe(sql.query_head.clone()))
            .bind(keys)
            .bind(global)
            .bind(skip_own)
            .fetch_one(executor)
            .await?;
    Ok((head.unwrap_or(0), read_committed))
}
