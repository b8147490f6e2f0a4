//! The append path: validate, turn the batch into column arrays, and run it in one round trip:
//! the one-statement direct path for a single event in autocommit mode, else the store's
//! `{events}_append` function. Concurrent single-event appends are merged by [`group`].

pub(crate) mod group;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pupsourcing_core::dcb::{AppendCondition, CommandRecord, LockKey, lock_plan};
use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::{AppendResult, Error, ExpectedVersion, Limits, NewEvent, Result, StreamId};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Row};
use uuid::Uuid;

use crate::error::{append_error, column, db_error};
use crate::sql::Statements;

/// The batch as one array per column, the shape the append function and the group statement
/// take.
pub(crate) struct Columns<'a> {
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
    /// Each event's partition hash, a u32 stored as a non-negative bigint.
    partition_hashes: Vec<i64>,
}

impl<'a> Columns<'a> {
    /// The columns of `events`, each with the stream it is appended to (`None` for a DCB
    /// event), which its partition hash depends on.
    pub(crate) fn new(
        events: impl IntoIterator<Item = (Option<&'a StreamId>, &'a NewEvent)>,
    ) -> Self {
        let (streams, events): (Vec<Option<&'a StreamId>>, Vec<&'a NewEvent>) =
            events.into_iter().unzip();
        Self {
            partition_hashes: streams
                .iter()
                .zip(&events)
                .map(|(stream, event)| i64::from(partition_hash(*stream, event)))
                .collect(),
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
            created_at: events.iter().map(|e| e.stored_created_at()).collect(),
        }
    }
}

impl Columns<'_> {
    /// Binds the columns as the append statements' parameters $4 to $16.
    pub(crate) fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.types)
            .bind(&self.versions)
            .bind(&self.contexts)
            .bind(&self.tags)
            .bind(&self.tag_counts)
            .bind(&self.payloads)
            .bind(&self.metadata)
            .bind(&self.trace_ids)
            .bind(&self.correlation_ids)
            .bind(&self.causation_ids)
            .bind(&self.created_at)
            .bind(&self.partition_hashes)
    }
}

/// Where an append goes, validated and read as on every backend (core's).
pub(crate) use pupsourcing_core::append::Target;

/// The advisory lock plan as the function takes it: 32-bit halves and modes.
pub(crate) struct Locks {
    hi: Vec<i32>,
    lo: Vec<i32>,
    exclusive: Vec<bool>,
}

impl Locks {
    pub(crate) fn new(plan: impl IntoIterator<Item = LockKey>) -> Self {
        let plan: Vec<LockKey> = plan.into_iter().collect();
        Self {
            hi: plan.iter().map(|k| (k.key >> 32) as i32).collect(),
            lo: plan.iter().map(|k| k.key as i32).collect(),
            exclusive: plan.iter().map(|k| k.exclusive).collect(),
        }
    }
}

impl Locks {
    /// Binds the lock plan as the append statements' parameters $17 to $19 (the direct
    /// statements' $16 to $18).
    pub(crate) fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        query.bind(&self.hi).bind(&self.lo).bind(&self.exclusive)
    }
}

/// Conditions' items flattened into arrays with per-item counts (one condition for an append,
/// several for a group).
#[derive(Default)]
pub(crate) struct ConditionArrays<'a> {
    all: bool,
    after: Option<i64>,
    pub(crate) types: Vec<&'a str>,
    pub(crate) type_counts: Vec<i32>,
    pub(crate) tags: Vec<&'a str>,
    pub(crate) tag_counts: Vec<i32>,
}

/// Where one condition's items lie in [`ConditionArrays`]: 1-based inclusive bounds, as SQL
/// array slices take them (`hi < lo` is an empty slice).
pub(crate) struct ConditionSlices {
    pub items: (i32, i32),
    pub types: (i32, i32),
    pub tags: (i32, i32),
}

impl<'a> ConditionArrays<'a> {
    fn new(condition: &'a AppendCondition) -> Self {
        let mut arrays = Self {
            all: condition.fail_if_events_match.is_all(),
            after: condition.after,
            ..Self::default()
        };
        arrays.push(condition);
        arrays
    }

    /// Appends `condition`'s items and says where they are. Validation bounds the counts, so
    /// they fit in i32.
    pub(crate) fn push(&mut self, condition: &'a AppendCondition) -> ConditionSlices {
        let bounds = |start: usize, end: usize| (start as i32 + 1, end as i32);
        let (items, types, tags) = (self.type_counts.len(), self.types.len(), self.tags.len());
        for item in &condition.fail_if_events_match.items {
            self.types.extend(item.types.iter().map(String::as_str));
            self.type_counts.push(item.types.len() as i32);
            self.tags.extend(item.tags.iter().map(String::as_str));
            self.tag_counts.push(item.tags.len() as i32);
        }
        ConditionSlices {
            items: bounds(items, self.type_counts.len()),
            types: bounds(types, self.types.len()),
            tags: bounds(tags, self.tags.len()),
        }
    }
}

/// Which statement an append may use, on what kind of connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The `{events}_append` function in a transaction that is already open (the caller's,
    /// or the store's own): it runs at that transaction's isolation.
    Function,
    /// The function on a connection of the store's own in autocommit mode.
    Own,
    /// Like [`Route::Own`], but first the one-statement direct path
    /// (`append/direct_*.sql`) when the batch is one event.
    Direct,
}

/// How a transaction of the store's own starts: the condition checks and version re-checks
/// need READ COMMITTED whatever the server, role or session default is.
pub(crate) const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// Appends `events` to `target` on `conn`.
pub(crate) async fn append(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    target: Target<'_>,
    events: &[NewEvent],
    route: Route,
) -> Result<AppendResult> {
    let args = Arguments::new(sql, limits, target, events)?;
    if route == Route::Direct
        && events.len() == 1
        && let Some(result) = try_direct(conn, sql, &args, target, events, None).await?
    {
        return Ok(result);
    }
    let autocommit = route != Route::Function;
    run(conn, || args.query(&sql.append), autocommit, target, events).await
}

/// Runs a statement answering with the append function's columns and decodes its outcome.
/// In `autocommit` mode a session defaulting to REPEATABLE READ or SERIALIZABLE runs the
/// statement at that level, which the answer shows (nothing was written then): it runs again
/// in a READ COMMITTED transaction of its own; the default case never gets there.
async fn run<'q>(
    conn: &mut PgConnection,
    query: impl Fn() -> Query<'q, Postgres, PgArguments>,
    autocommit: bool,
    target: Target<'_>,
    events: &[NewEvent],
) -> Result<AppendResult> {
    let row = query().fetch_one(&mut *conn).await;
    if autocommit && above_read_committed(&row) {
        return append_read_committed(conn, query, target, events).await;
    }
    outcome(&row.map_err(append_error)?, target, events)
}

/// A DCB append and the record of `command` in one statement (`append/recorded.sql`) on
/// `conn`, in autocommit mode: the command is recorded, with its events' positions, only when
/// they are appended. With [`Route::Direct`], a single event first tries the direct statement
/// with the record (`append/direct_recorded.sql`), which writes both or nothing.
pub(crate) async fn append_recorded(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    events: &[NewEvent],
    condition: Option<&AppendCondition>,
    command: &CommandRecord,
    route: Route,
) -> Result<AppendResult> {
    command.validate(limits)?;
    let target = Target::Dcb(condition);
    let args = Arguments::new(sql, limits, target, events)?;
    if route == Route::Direct
        && events.len() == 1
        && let Some(result) = try_direct(conn, sql, &args, target, events, Some(command)).await?
    {
        return Ok(result);
    }
    let query = || {
        args.query(&sql.append_recorded)
            .bind(&command.command_type)
            .bind(&command.data)
            .bind(&command.metadata)
    };
    run(conn, query, true, target, events).await
}

/// [`append_recorded`] with a command `record` (DCB targets only), else [`append`].
pub(crate) async fn append_maybe_recorded(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    target: Target<'_>,
    events: &[NewEvent],
    record: Option<&CommandRecord>,
    route: Route,
) -> Result<AppendResult> {
    match (target, record) {
        (Target::Dcb(condition), Some(command)) => {
            append_recorded(conn, sql, limits, events, condition, command, route).await
        }
        _ => append(conn, sql, limits, target, events, route).await,
    }
}

/// Whether the function's answer says the session's isolation is above READ COMMITTED: the
/// 'isolation' outcome of a condition, a serialization failure of a version check, or a
/// unique violation of an event id (READ COMMITTED raises neither here: there the function
/// looks the stored ids up again in a new snapshot and answers replay or partial duplicate;
/// above it, its one snapshot can miss the row of a concurrent append of the same id that
/// committed meanwhile, found by test `concurrent_replays_are_recognised`).
fn above_read_committed(row: &Result<PgRow, sqlx::Error>) -> bool {
    match row {
        Ok(row) => row.try_get::<String, _>(0).is_ok_and(|kind| kind == "isolation"),
        Err(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("40001" | "23505")),
        Err(_) => false,
    }
}

/// An append statement (`query`, built again for its second run) in a READ COMMITTED
/// transaction of its own on `conn`, committed when the append succeeds and rolled back (by
/// dropping it) otherwise.
async fn append_read_committed<'q>(
    conn: &mut PgConnection,
    query: impl Fn() -> Query<'q, Postgres, PgArguments>,
    target: Target<'_>,
    events: &[NewEvent],
) -> Result<AppendResult> {
    let mut tx = conn.begin_with(BEGIN_READ_COMMITTED).await.map_err(db_error)?;
    let row = query().fetch_one(&mut *tx).await.map_err(append_error)?;
    let result = outcome(&row, target, events)?;
    tx.commit().await.map_err(db_error)?;
    Ok(result)
}

/// The direct path: the result when the event was appended; `None` when it was not (a failed
/// expected version or condition, a stored event id, an isolation level above READ COMMITTED,
/// under which a version check may also fail to serialize), and nothing was written.
/// The function then tells why. With a `record` (a DCB target only), the command's row is
/// inserted with the event, or not at all (`append/direct_recorded.sql`).
pub(crate) async fn try_direct(
    conn: &mut PgConnection,
    sql: &Statements,
    args: &Arguments<'_>,
    target: Target<'_>,
    events: &[NewEvent],
    record: Option<&CommandRecord>,
) -> Result<Option<AppendResult>> {
    let [event] = events else { return Ok(None) };
    let query = match (target, record) {
        (Target::Stream(..), None) => args.direct_query(&sql.append_direct_stream, event),
        (Target::Dcb(_), None) => args.direct_query(&sql.append_direct_dcb, event),
        (Target::Dcb(_), Some(record)) => args
            .direct_query(&sql.append_direct_recorded, event)
            .bind(record.command_type.as_str())
            .bind(record.data.to_string())
            .bind(record.metadata.as_ref().map(ToString::to_string)),
        // Commands record DCB appends only.
        (Target::Stream(..), Some(_)) => return Ok(None),
    };
    match query.fetch_optional(conn).await {
        Ok(Some(row)) => outcome(&row, target, events).map(Some),
        Ok(None) => Ok(None),
        // A unique violation comes from a stored event id: a replay, which the function
        // recognises. (Any other cause fails there again and is reported from there.)
        // A serialization failure comes from a session default above READ COMMITTED.
        Err(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("23505" | "40001")) =>
        {
            Ok(None)
        }
        Err(err) => Err(append_error(err)),
    }
}

/// The expected version as the statements take it: NULL = any, 0 = no stream, n = exactly n.
pub(crate) fn expected_arg(stream: Option<&StreamId>, expected: ExpectedVersion) -> Option<i64> {
    match (stream, expected) {
        (None, _) | (_, ExpectedVersion::Any) => None,
        (_, ExpectedVersion::NoStream) => Some(0),
        (_, ExpectedVersion::Exact(v)) => Some(v),
    }
}

/// Everything an append statement binds, in the order of its parameters ($1 to $26).
pub(crate) struct Arguments<'a> {
    stream: Option<&'a StreamId>,
    /// NULL = any version, 0 = no stream, n = exactly n.
    expected: Option<i64>,
    columns: Columns<'a>,
    locks: Locks,
    condition: ConditionArrays<'a>,
    check: bool,
}

impl<'a> Arguments<'a> {
    /// Validates the append and turns it into arguments.
    pub(crate) fn new(
        sql: &Statements,
        limits: &Limits,
        target: Target<'a>,
        events: &'a [NewEvent],
    ) -> Result<Self> {
        target.validate(events, limits)?;
        let (stream, condition) = (target.stream(), target.condition());
        Ok(Self {
            stream,
            expected: expected_arg(stream, target.expected()),
            columns: Columns::new(events.iter().map(|event| (stream, event))),
            locks: Locks::new(lock_plan(
                sql.lock_namespace,
                events,
                condition,
                limits.max_lock_keys,
            )),
            condition: condition.map(ConditionArrays::new).unwrap_or_default(),
            check: condition.is_some(),
        })
    }

    /// The direct statement's parameters: like [`Arguments::query`], but `event`'s columns as
    /// scalars, and no condition arrays unless there is a condition.
    fn direct_query<'q>(
        &'q self,
        sql: &Arc<str>,
        event: &'q NewEvent,
    ) -> Query<'q, Postgres, PgArguments> {
        let (c, cond) = (&self.columns, &self.condition);
        let query = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(self.stream.map(|s| s.aggregate_type.as_str()))
            .bind(self.stream.map(|s| s.aggregate_id))
            .bind(self.expected)
            .bind(event.event_id)
            .bind(event.event_type.as_str())
            .bind(event.event_version)
            .bind(event.bounded_context.as_deref())
            .bind(&c.tags)
            .bind(event.payload.as_slice())
            .bind(c.metadata.first().and_then(|m| m.as_deref()))
            .bind(event.trace_id)
            .bind(event.correlation_id)
            .bind(event.causation_id)
            .bind(event.stored_created_at())
            .bind(i64::from(partition_hash(self.stream, event)));
        let check = self.check.then_some(cond);
        self.locks
            .bind(query)
            .bind(self.check)
            .bind(cond.all)
            .bind(cond.after)
            .bind(check.map(|c| &c.types))
            .bind(check.map(|c| &c.type_counts))
            .bind(check.map(|c| &c.tags))
            .bind(check.map(|c| &c.tag_counts))
    }

    fn query<'q>(&'q self, sql: &Arc<str>) -> Query<'q, Postgres, PgArguments> {
        let (c, cond) = (&self.columns, &self.condition);
        let query = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(self.stream.map(|s| s.aggregate_type.as_str()))
            .bind(self.stream.map(|s| s.aggregate_id))
            .bind(self.expected);
        self.locks
            .bind(c.bind(query))
            .bind(self.check)
            .bind(cond.all)
            .bind(cond.after)
            .bind(&cond.types)
            .bind(&cond.type_counts)
            .bind(&cond.tags)
            .bind(&cond.tag_counts)
    }
}

/// Interprets the function's answer (see `{events}_append` in `migrate/schema.sql`).
fn outcome(row: &PgRow, target: Target<'_>, events: &[NewEvent]) -> Result<AppendResult> {
    let kind: String = column(row, 0)?;
    let actual: Option<i64> = column(row, 1)?;
    match kind.as_str() {
        "appended" => {
            // The batch got consecutive positions (and versions) from the first ones. The last
            // ones were stored, so counting up to them (inclusive) cannot overflow.
            let n = events.len() as i64;
            let first = column::<Option<i64>>(row, 5)?.unwrap_or_default();
            let first_version: Option<i64> = column(row, 6)?;
            Ok(AppendResult {
                positions: (first..=first + (n - 1)).collect(),
                versions: match target {
                    Target::Stream(..) => {
                        first_version.map(|v| (v..=v + (n - 1)).collect()).unwrap_or_default()
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
            reason: "conditional appends need a READ COMMITTED transaction (PostgreSQL's \
                     default); under REPEATABLE READ or SERIALIZABLE the condition check keeps \
                     the snapshot taken before it waited, and could miss a concurrent append",
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
