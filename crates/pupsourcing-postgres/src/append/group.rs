//! Group commit on PostgreSQL: concurrent single-event appends of the store's own, written by
//! one statement in one transaction (`append/group.sql`). The queue, its writer slots and the
//! rule of which requests share a group are `pupsourcing_core::group`'s (shared with MySQL).
//!
//! On a small machine many concurrent appends are bound by per-statement and per-commit work,
//! not by the disk: merging queued appends into one statement per transaction roughly doubles
//! what 32 writers get through (see docs/benchmarks.md). A group only holds requests that cannot
//! observe each other, so the statement checks each exactly as if it ran alone, after the
//! locks, against what committed before; one that is not appended in its group is run again
//! alone by its caller through the append function, which tells the outcomes apart.
//!
//! A request may carry the record of the command that decided it (the command executor's
//! single-event decisions, [`GroupCommit::append_recorded`]): its command row is inserted by the
//! same statement exactly when its event is, so a request whose condition fails writes neither,
//! and its group mates are unaffected. Run alone, it goes through the same statements with the
//! record (`append/direct_recorded.sql`, then `append/recorded.sql`).

use std::collections::BTreeMap;
use std::sync::Arc;

use pupsourcing_core::dcb::{AppendCondition, CommandRecord, LockKey, lock_plan};
use pupsourcing_core::group::{BoxFuture, Entry, GroupLimits, GroupQueue, GroupWriter, Grouped};
use pupsourcing_core::{AppendResult, Error, ExpectedVersion, Limits, NewEvent, Result, StreamId};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row};
use uuid::Uuid;

use crate::append::{self, Arguments, Columns, ConditionArrays, Locks, Route, Target};
use crate::connection::KeptConnections;
use crate::error::db_error;
use crate::sql::Statements;

/// Writer tasks running groups at once. Two keep both cores of a small server busy (one group
/// commits while the next executes) without splitting the queue into small groups.
pub(crate) const MAX_WRITERS: usize = 2;

/// Most requests in one group: bounds the statement's size and a group's latency.
const MAX_GROUP: usize = 64;

/// How long a group waits for a lock held by someone else (the writers' `lock_timeout`). A
/// group holds the locks of all its requests, so waiting on a long transaction could deadlock
/// with it where each request alone would not, or stall every queued append behind one busy
/// stream. Past this wait the group gives up, rolls back, and its requests run alone (each
/// then waits as it would have without grouping). Groups and direct statements hold their
/// locks for one statement and its commit, far below this.
const GROUP_LOCK_TIMEOUT: &str = "200ms";

/// The group-commit queue of one store, and the appends that run alone.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    /// The store's pool and kept connections: appends that run alone use them.
    pool: PgPool,
    kept: Arc<KeptConnections>,
    sql: Arc<Statements>,
    limits: Limits,
    queue: Arc<GroupQueue<PgGroupWriter>>,
}

/// The writer of a store's groups.
#[derive(Debug)]
pub(crate) struct PgGroupWriter {
    /// The writer tasks' own connections, one per slot, opened on first use from the store's
    /// connect options and kept (not pooled: a pool pings each connection given back, a round
    /// trip per group). Their sessions run at READ COMMITTED, force generic plans (the group
    /// statement's custom plans are estimated cheaper, so PostgreSQL would plan it again on
    /// every call: 0.3 ms, as much as executing it) and bound lock waits (see
    /// [`GROUP_LOCK_TIMEOUT`]). A group that finds no working connection is not appended:
    /// its requests run alone.
    writers: KeptConnections,
    sql: Arc<Statements>,
    limits: Limits,
}

/// A queued single-event append, owned so that a writer task can run it.
#[derive(Debug)]
pub(crate) struct Request {
    stream: Option<StreamId>,
    expected: ExpectedVersion,
    condition: Option<AppendCondition>,
    event: NewEvent,
    locks: Vec<LockKey>,
    /// The record of the command that decided this append, written with it (DCB only).
    record: Option<CommandRecord>,
}

impl GroupCommit {
    pub(crate) fn new(
        pool: PgPool,
        kept: Arc<KeptConnections>,
        sql: Arc<Statements>,
        limits: Limits,
    ) -> Self {
        let writers = KeptConnections::new(&pool, MAX_WRITERS).with_settings(&[
            ("plan_cache_mode", "force_generic_plan"),
            ("lock_timeout", GROUP_LOCK_TIMEOUT),
            // The checks need it, whatever the server or role default (see append.rs).
            ("default_transaction_isolation", "read committed"),
        ]);
        let writer = PgGroupWriter { writers, sql: sql.clone(), limits };
        let bounds = GroupLimits {
            writers: MAX_WRITERS,
            requests: MAX_GROUP,
            // One event per request: the statement's size is bounded by the request count.
            size: usize::MAX,
            lock_keys: limits.max_lock_keys,
        };
        let queue = Arc::new(GroupQueue::new(writer, bounds));
        Self { pool, kept, sql, limits, queue }
    }

    /// Closes the writers' connections (the store's pool is closed by its owner), waiting for
    /// the groups in flight; no writer task opens a new one afterwards.
    pub(crate) async fn close(&self) {
        self.queue.writer().writers.close().await;
    }

    /// Appends one event on a connection of the pool, in its own transaction.
    pub(crate) async fn append(
        &self,
        target: Target<'_>,
        event: &NewEvent,
    ) -> Result<AppendResult> {
        self.submit(target, event, None).await
    }

    /// Appends one DCB event under `condition` and records `command` (its `positions` set to
    /// the event's) in the same transaction, or writes neither.
    pub(crate) async fn append_recorded(
        &self,
        condition: Option<&AppendCondition>,
        event: &NewEvent,
        command: &CommandRecord,
    ) -> Result<AppendResult> {
        command.validate(&self.limits)?;
        self.submit(Target::Dcb(condition), event, Some(command)).await
    }

    async fn submit(
        &self,
        target: Target<'_>,
        event: &NewEvent,
        record: Option<&CommandRecord>,
    ) -> Result<AppendResult> {
        let events = std::slice::from_ref(event);
        target.validate(events, &self.limits)?;
        if self.pool.is_closed() {
            // The writers' and the kept connections follow the store's pool: closing it stops
            // the appends and closes them (test `a_store_whose_pool_was_closed_serves_no_call`).
            self.close().await;
            self.kept.close().await;
            return Err(Error::PoolClosed);
        }
        let entry =
            self.queue.enter(|| Request::new(&self.sql, &self.limits, target, event, record));
        match entry {
            Entry::Direct(_slot) => self.alone(target, events, record, Route::Direct).await,
            Entry::Queued(reply) => match reply.await {
                Ok(Some(result)) => Ok(result),
                // The writer task is gone (the runtime is shutting down) or the group did not
                // append it: the append function decides, and recognises it if it was stored.
                Ok(None) | Err(_) => self.alone(target, events, record, Route::Own).await,
            },
        }
    }

    /// Runs the append alone, on a kept connection when one is free (see connection.rs).
    async fn alone(
        &self,
        target: Target<'_>,
        events: &[NewEvent],
        record: Option<&CommandRecord>,
        route: Route,
    ) -> Result<AppendResult> {
        let context = (self, target, events, record, route);
        self.kept
            .run(&self.pool, &context, |&(group, target, events, record, route), conn| {
                let (sql, limits) = (&group.sql, &group.limits);
                Box::pin(append::append_maybe_recorded(
                    conn, sql, limits, target, events, record, route,
                ))
            })
            .await
    }
}

impl PgGroupWriter {
    async fn run_one(&self, request: &Request) -> Option<AppendResult> {
        let context = (self, request);
        let appended = self.writers.try_run(&context, |&(writer, request), conn| {
            Box::pin(async move {
                let (sql, limits) = (&writer.sql, &writer.limits);
                let target = request.target();
                let events = std::slice::from_ref(&request.event);
                let args = Arguments::new(sql, limits, target, events)?;
                let record = request.record.as_ref();
                append::try_direct(conn, sql, &args, target, events, record).await
            })
        });
        appended.await?.ok().flatten()
    }

    async fn run_many(&self, requests: &[Request]) -> Vec<Option<AppendResult>> {
        let args = GroupArguments::new(requests);
        let context = (self, &args);
        let rows = self.writers.try_run(&context, |&(writer, args), conn| {
            Box::pin(async move {
                let rows = args.query(&writer.sql.append_group).fetch_all(conn).await;
                rows.map_err(db_error)
            })
        });
        match rows.await {
            Some(Ok(rows)) if rows.len() == requests.len() => {
                rows.iter().map(Request::reply).collect()
            }
            outcome => {
                // A stored event id, a deadlock with a caller's transaction, a lost
                // connection, no connection: every request gets its own look.
                if let Some(Err(err)) = outcome {
                    tracing::debug!(%err, size = requests.len(), "group append failed");
                }
                requests.iter().map(|_| None).collect()
            }
        }
    }
}

impl GroupWriter for PgGroupWriter {
    type Request = Request;

    fn write<'a>(&'a self, group: &'a [Request]) -> BoxFuture<'a, Vec<Option<AppendResult>>> {
        Box::pin(async move {
            match group {
                [one] => vec![self.run_one(one).await],
                _ => self.run_many(group).await,
            }
        })
    }
}

impl Grouped for Request {
    fn stream(&self) -> Option<&StreamId> {
        self.stream.as_ref()
    }

    fn locks(&self) -> &[LockKey] {
        &self.locks
    }

    fn size(&self) -> usize {
        1
    }
}

impl Request {
    fn new(
        sql: &Statements,
        limits: &Limits,
        target: Target<'_>,
        event: &NewEvent,
        record: Option<&CommandRecord>,
    ) -> Self {
        let condition = target.condition();
        let events = std::slice::from_ref(event);
        Self {
            stream: target.stream().cloned(),
            expected: target.expected(),
            condition: condition.cloned(),
            event: event.clone(),
            locks: lock_plan(sql.lock_namespace, events, condition, limits.max_lock_keys),
            record: record.cloned(),
        }
    }

    fn target(&self) -> Target<'_> {
        match &self.stream {
            Some(stream) => Target::Stream(stream, self.expected),
            None => Target::Dcb(self.condition.as_ref()),
        }
    }

    /// A request's answer in the group's result row: its position and version, or NULLs.
    fn reply(row: &sqlx::postgres::PgRow) -> Option<AppendResult> {
        let position: Option<i64> = row.try_get(0).unwrap_or_default();
        let version: Option<i64> = row.try_get(1).unwrap_or_default();
        Some(AppendResult {
            positions: vec![position?],
            versions: version.into_iter().collect(),
            replayed: false,
        })
    }
}

/// The group statement's parameters ($1 to $35, see `append/group.sql`).
struct GroupArguments<'a> {
    stream_types: Vec<Option<&'a str>>,
    stream_ids: Vec<Option<Uuid>>,
    expected: Vec<Option<i64>>,
    columns: Columns<'a>,
    locks: Locks,
    checks: Vec<bool>,
    check_all: Vec<bool>,
    after: Vec<Option<i64>>,
    conditions: ConditionArrays<'a>,
    slices: [Vec<i32>; 6],
    /// The requests' command records: types (NULL without a record), data and metadata as
    /// JSON text.
    command_types: Vec<Option<&'a str>>,
    command_data: Vec<Option<String>>,
    command_metadata: Vec<Option<String>>,
}

impl<'a> GroupArguments<'a> {
    fn new(requests: &'a [Request]) -> Self {
        let mut conditions = ConditionArrays::default();
        let mut slices: [Vec<i32>; 6] = Default::default();
        for request in requests {
            let bounds = match &request.condition {
                Some(condition) => {
                    let s = conditions.push(condition);
                    [s.items.0, s.items.1, s.types.0, s.types.1, s.tags.0, s.tags.1]
                }
                None => [1, 0, 1, 0, 1, 0],
            };
            for (column, bound) in slices.iter_mut().zip(bounds) {
                column.push(bound);
            }
        }
        // The union of the lock plans: sorted, and no key is wanted in both modes (see Fit).
        let locks: BTreeMap<i64, bool> =
            requests.iter().flat_map(|r| r.locks.iter().map(|k| (k.key, k.exclusive))).collect();
        let condition = |r: &'a Request| r.condition.as_ref();
        Self {
            stream_types: requests
                .iter()
                .map(|r| r.stream.as_ref().map(|s| s.aggregate_type.as_str()))
                .collect(),
            stream_ids: requests
                .iter()
                .map(|r| r.stream.as_ref().map(|s| s.aggregate_id))
                .collect(),
            expected: requests
                .iter()
                .map(|r| append::expected_arg(r.stream.as_ref(), r.expected))
                .collect(),
            columns: Columns::new(requests.iter().map(|r| (r.stream.as_ref(), &r.event))),
            locks: Locks::new(locks.into_iter().map(|(key, exclusive)| LockKey { key, exclusive })),
            checks: requests.iter().map(|r| r.condition.is_some()).collect(),
            check_all: requests
                .iter()
                .map(|r| condition(r).is_some_and(|c| c.fail_if_events_match.is_all()))
                .collect(),
            after: requests.iter().map(|r| condition(r).and_then(|c| c.after)).collect(),
            conditions,
            slices,
            command_types: requests
                .iter()
                .map(|r| r.record.as_ref().map(|c| c.command_type.as_str()))
                .collect(),
            command_data: requests
                .iter()
                .map(|r| r.record.as_ref().map(|c| c.data.to_string()))
                .collect(),
            command_metadata: requests
                .iter()
                .map(|r| r.record.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| m.to_string()))
                .collect(),
        }
    }

    fn query<'q>(&'q self, sql: &Arc<str>) -> Query<'q, Postgres, PgArguments> {
        let (c, cond) = (&self.columns, &self.conditions);
        let [item_lo, item_hi, type_lo, type_hi, tag_lo, tag_hi] = &self.slices;
        let query = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(&self.stream_types)
            .bind(&self.stream_ids)
            .bind(&self.expected);
        self.locks
            .bind(c.bind(query))
            .bind(&self.checks)
            .bind(&self.check_all)
            .bind(&self.after)
            .bind(&cond.types)
            .bind(&cond.type_counts)
            .bind(&cond.tags)
            .bind(&cond.tag_counts)
            .bind(item_lo)
            .bind(item_hi)
            .bind(type_lo)
            .bind(type_hi)
            .bind(tag_lo)
            .bind(tag_hi)
            .bind(&self.command_types)
            .bind(&self.command_data)
            .bind(&self.command_metadata)
    }
}
