//! The append path: validate, turn the batch into column arrays, and call the store's
//! `{events}_append` function in one round trip.

use chrono::{DateTime, Utc};
use pupsourcing_core::{
    AppendResult, Error, ExpectedVersion, Limits, NewEvent, Result, StreamId, validate_batch,
};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::error::db_error;
use crate::statements::Statements;

/// The batch as one array per column, the shape the append function takes.
struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    contexts: Vec<Option<&'a str>>,
    tags: Vec<&'a str>,
    tag_counts: Vec<i32>,
    payloads: Vec<&'a [u8]>,
    metadata: Vec<Option<String>>,
    trace_ids: Vec<Option<Uuid>>,
    correlation_ids: Vec<Option<Uuid>>,
    causation_ids: Vec<Option<Uuid>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn new(events: &'a [NewEvent]) -> Self {
        Self {
            ids: events.iter().map(|e| e.event_id).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            versions: events.iter().map(|e| e.event_version).collect(),
            contexts: events.iter().map(|e| e.bounded_context.as_deref()).collect(),
            tags: events.iter().flat_map(|e| e.tags.iter().map(String::as_str)).collect(),
            // Validation bounds tags by count of bytes, so a count always fits in i32.
            tag_counts: events.iter().map(|e| e.tags.len() as i32).collect(),
            payloads: events.iter().map(|e| e.payload.as_slice()).collect(),
            metadata: events.iter().map(|e| e.metadata.as_ref().map(|m| m.to_string())).collect(),
            trace_ids: events.iter().map(|e| e.trace_id).collect(),
            correlation_ids: events.iter().map(|e| e.correlation_id).collect(),
            causation_ids: events.iter().map(|e| e.causation_id).collect(),
            created_at: events.iter().map(|e| e.created_at).collect(),
        }
    }
}

/// Appends `events` to `stream` on `conn` (the caller's transaction or the store's own).
pub(crate) async fn append(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult> {
    validate_batch(Some(stream), expected, events, limits)?;
    let expected_arg: Option<i64> = match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(v) => Some(v),
    };
    let c = Columns::new(events);
    let row = sqlx::query(AssertSqlSafe(sql.append.clone()))
        .bind(&stream.aggregate_type)
        .bind(stream.aggregate_id)
        .bind(expected_arg)
        .bind(&c.ids)
        .bind(&c.types)
        .bind(&c.versions)
        .bind(&c.contexts)
        .bind(&c.tags)
        .bind(&c.tag_counts)
        .bind(&c.payloads)
        .bind(&c.metadata)
        .bind(&c.trace_ids)
        .bind(&c.correlation_ids)
        .bind(&c.causation_ids)
        .bind(&c.created_at)
        .fetch_one(conn)
        .await
        .map_err(db_error)?;
    outcome(row, stream, expected, events).map_err(|e| match e {
        Decode::Db(err) => db_error(err),
        Decode::Store(err) => err,
    })
}

enum Decode {
    Db(sqlx::Error),
    Store(Error),
}

impl From<sqlx::Error> for Decode {
    fn from(err: sqlx::Error) -> Self {
        Decode::Db(err)
    }
}

/// Interprets the function's answer (see `{events}_append` in `sql/schema.sql`).
fn outcome(
    row: sqlx::postgres::PgRow,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> std::result::Result<AppendResult, Decode> {
    let kind: String = row.try_get(0)?;
    let actual: Option<i64> = row.try_get(1)?;
    let positions: Option<Vec<i64>> = row.try_get(2)?;
    let versions: Option<Vec<Option<i64>>> = row.try_get(3)?;
    let result = |replayed| AppendResult {
        positions: positions.clone().unwrap_or_default(),
        versions: versions.clone().unwrap_or_default().into_iter().flatten().collect(),
        replayed,
    };
    match kind.as_str() {
        "appended" => Ok(result(false)),
        "replayed" => Ok(result(true)),
        "conflict" => {
            let actual = actual.unwrap_or_default();
            tracing::debug!(%stream, %expected, actual, "optimistic concurrency conflict");
            Err(Decode::Store(Error::Concurrency { stream: stream.clone(), expected, actual }))
        }
        "partial_duplicate" => Err(Decode::Store(Error::PartialDuplicate {
            stored: actual.unwrap_or_default() as usize,
            total: events.len(),
            first: row.try_get::<Option<Uuid>, _>(4)?.unwrap_or_default(),
        })),
        other => Err(Decode::Store(Error::database(std::io::Error::other(format!(
            "unexpected append outcome {other:?}: is the schema migrated to this version?"
        ))))),
    }
}
