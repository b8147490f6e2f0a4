//! The append path: validate, turn the batch into column arrays, and run it in one round trip:
//! the one-statement direct path for a single event in autocommit mode, else the store's
//! `{events}_append` function.

use chrono::{DateTime, Utc};
use pupsourcing_core::dcb::{AppendCondition, lock_plan};
use pupsourcing_core::{
    AppendResult, Error, ExpectedVersion, Limits, NewEvent, Result, StreamId, validate_batch,
};
use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row};
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

/// Where an append goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// An aggregate stream, with an expected version.
    Stream(&'a StreamId, ExpectedVersion),
    /// The DCB path: no stream, optionally under a condition.
    Dcb(Option<&'a AppendCondition>),
}

/// The advisory lock plan as the function takes it: 32-bit halves and modes.
struct Locks {
    hi: Vec<i32>,
    lo: Vec<i32>,
    exclusive: Vec<bool>,
}

impl Locks {
    fn new(
        namespace: u64,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
        max: usize,
    ) -> Self {
        let plan = lock_plan(namespace, events, condition, max);
        Self {
            hi: plan.iter().map(|k| (k.key >> 32) as i32).collect(),
            lo: plan.iter().map(|k| k.key as i32).collect(),
            exclusive: plan.iter().map(|k| k.exclusive).collect(),
        }
    }
}

/// A condition's items flattened into arrays with per-item counts.
#[derive(Default)]
struct ConditionArrays<'a> {
    all: bool,
    after: Option<i64>,
    types: Vec<&'a str>,
    type_counts: Vec<i32>,
    tags: Vec<&'a str>,
    tag_counts: Vec<i32>,
}

impl<'a> ConditionArrays<'a> {
    fn new(condition: &'a AppendCondition) -> Self {
        let items = &condition.fail_if_events_match.items;
        Self {
            all: condition.fail_if_events_match.is_all(),
            after: condition.after,
            types: items.iter().flat_map(|i| i.types.iter().map(String::as_str)).collect(),
            type_counts: items.iter().map(|i| i.types.len() as i32).collect(),
            tags: items.iter().flat_map(|i| i.tags.iter().map(String::as_str)).collect(),
            tag_counts: items.iter().map(|i| i.tags.len() as i32).collect(),
        }
    }
}

/// How the connection an append runs on is used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// Inside a transaction (the caller's, or the store's own): one function call.
    Transaction,
    /// In autocommit mode: the statement is its own transaction, so a single-event append can
    /// take the one-statement direct path (`sql/append_direct.sql`).
    Autocommit,
}

/// Appends `events` to `target` on `conn`.
pub(crate) async fn append(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    target: Target<'_>,
    events: &[NewEvent],
    session: Session,
) -> Result<AppendResult> {
    let (stream, expected, condition) = match target {
        Target::Stream(stream, expected) => (Some(stream), expected, None),
        Target::Dcb(condition) => (None, ExpectedVersion::Any, condition),
    };
    validate_batch(stream, expected, events, limits)?;
    if let Some(condition) = condition {
        condition.validate(limits)?;
    }
    let args = Arguments {
        stream,
        expected: match (stream, expected) {
            (None, _) | (_, ExpectedVersion::Any) => None,
            (_, ExpectedVersion::NoStream) => Some(0),
            (_, ExpectedVersion::Exact(v)) => Some(v),
        },
        columns: Columns::new(events),
        locks: Locks::new(sql.lock_namespace, events, condition, limits.max_lock_keys),
        condition: condition.map(ConditionArrays::new).unwrap_or_default(),
        check: condition.is_some(),
    };
    if session == Session::Autocommit && events.len() == 1 {
        match args.query(&sql.append_direct).fetch_one(&mut *conn).await {
            Ok(row) if column::<Option<String>>(&row, 0)?.is_some() => {
                return outcome(&row, target, events);
            }
            // Not appended: the function below tells why.
            Ok(_) => {}
            // A unique violation, from a stored event id: the function below recognises a
            // replay. (Any other cause fails there again and is reported from there.)
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {}
            Err(err) => return Err(db_error(err)),
        }
    }
    let row = args.query(&sql.append).fetch_one(conn).await.map_err(db_error)?;
    outcome(&row, target, events)
}

/// Everything an append statement binds, in the order of its parameters ($1 to $25).
struct Arguments<'a> {
    stream: Option<&'a StreamId>,
    /// NULL = any version, 0 = no stream, n = exactly n.
    expected: Option<i64>,
    columns: Columns<'a>,
    locks: Locks,
    condition: ConditionArrays<'a>,
    check: bool,
}

impl Arguments<'_> {
    fn query<'q>(&'q self, sql: &Arc<str>) -> Query<'q, Postgres, PgArguments> {
        let (c, cond) = (&self.columns, &self.condition);
        sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(self.stream.map(|s| s.aggregate_type.as_str()))
            .bind(self.stream.map(|s| s.aggregate_id))
            .bind(self.expected)
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
            .bind(&self.locks.hi)
            .bind(&self.locks.lo)
            .bind(&self.locks.exclusive)
            .bind(self.check)
            .bind(cond.all)
            .bind(cond.after)
            .bind(&cond.types)
            .bind(&cond.type_counts)
            .bind(&cond.tags)
            .bind(&cond.tag_counts)
    }
}

fn column<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    index: usize,
) -> Result<T> {
    row.try_get(index).map_err(db_error)
}

/// Interprets the function's answer (see `{events}_append` in `sql/schema.sql`).
fn outcome(row: &PgRow, target: Target<'_>, events: &[NewEvent]) -> Result<AppendResult> {
    let kind: String = column(row, 0)?;
    let actual: Option<i64> = column(row, 1)?;
    match kind.as_str() {
        "appended" => {
            // The batch got consecutive positions (and versions) from the first ones.
            let n = events.len() as i64;
            let first = column::<Option<i64>>(row, 5)?.unwrap_or_default();
            let first_version: Option<i64> = column(row, 6)?;
            Ok(AppendResult {
                positions: (first..first + n).collect(),
                versions: match target {
                    Target::Stream(..) => {
                        first_version.map(|v| (v..v + n).collect()).unwrap_or_default()
                    }
                    Target::Dcb(_) => Vec::new(),
                },
                replayed: false,
            })
        }
        "replayed" => Ok(AppendResult {
            positions: column::<Option<Vec<i64>>>(row, 2)?.unwrap_or_default(),
            versions: column::<Option<Vec<Option<i64>>>>(row, 3)?
                .into_iter()
                .flatten()
                .flatten()
                .collect(),
            replayed: true,
        }),
        "conflict" => match target {
            Target::Stream(stream, expected) => {
                let actual = actual.unwrap_or_default();
                tracing::debug!(%stream, %expected, actual, "optimistic concurrency conflict");
                Err(Error::Concurrency { stream: stream.clone(), expected, actual })
            }
            Target::Dcb(_) => Err(unexpected(&kind)),
        },
        "condition_failed" => match target {
            Target::Dcb(Some(condition)) => {
                tracing::debug!(%condition, "append condition failed");
                Err(Error::ConditionFailed { condition: Box::new(condition.clone()) })
            }
            _ => Err(unexpected(&kind)),
        },
        "isolation" => Err(Error::Unsupported {
            reason: "conditional appends need a READ COMMITTED or SERIALIZABLE transaction; \
                     under REPEATABLE READ the condition check could miss a concurrent append",
        }),
        "partial_duplicate" => Err(Error::PartialDuplicate {
            stored: actual.unwrap_or_default() as usize,
            total: events.len(),
            first: column::<Option<Uuid>>(row, 4)?.unwrap_or_default(),
        }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(outcome: &str) -> Error {
    Error::database(std::io::Error::other(format!(
        "unexpected append outcome {outcome:?}: is the schema migrated to this version?"
    )))
}
