//! Group commit on MySQL/MariaDB: concurrent appends of the store's own, written by one
//! transaction (the queue and its grouping rules are `pupsourcing_core::group`'s).
//!
//! Every append holds the position counter from taking its positions to COMMIT (that is what
//! keeps reads gap-free, see the module docs of `append`), so appends alone run that section
//! one at a time, and the section's per-call work caps the whole server's appends. A group
//! runs it once for all its requests: one round trip of write statements ending with the
//! COMMIT. The transaction, on a writer connection of the store's own
//! ([`GroupLimits::writers`] at most):
//!
//! 1. the union of the requests' boundary locks (no key wanted in both modes: the queue's rule),
//!    their missing rows created first in autocommit statements (see `dcb::locks`), sent with
//!    BEGIN (a plain `START TRANSACTION`, see [`GROUP_BEGIN`]),
//! 2. the locking read of the head rows of the requests' streams, in key order, with their
//!    versions (`group_heads_lock.sql`; a missing row counts as version 0), and
//! 3. the requests' conditions, one statement of literals for all of them, after the locks
//!    (`dcb::conditions_statement`; when too long for the packet, a statement of its own after
//!    the round trip): one round trip; then every request's check as if alone, its expected
//!    version against its locked head, its condition's result; the requests that fail are left
//!    out, and their callers run them alone, which reports why;
//! 4. one round trip (`write.rs`): the heads of the appended streams moved to their new
//!    versions, the missing ones created at them (`group_heads_create.sql`: a concurrent creator
//!    fails it on the duplicate key, before the counter), then the write of the events of every
//!    appended request, in request order, so each request's block of positions is contiguous,
//!    and the COMMIT.
//!
//! Any error (a stored event id, a deadlock or a lock wait with a caller's transaction, a lost
//! connection, even at COMMIT) rolls the group back and answers every request `None`: its
//! caller runs it alone, which appends it, or recognises it as stored (a replay) if the COMMIT
//! went through after all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pupsourcing_core::dcb::{AppendCondition, LockKey};
use pupsourcing_core::group::{BoxFuture, GroupLimits, GroupWriter, Grouped};
use pupsourcing_core::{AppendResult, ExpectedVersion, Result, StreamId, Version};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlConnection, MySqlPool, Row};

use super::rows::{Chunk, Rows, stream_literals, stream_parts};
use super::write::Script;
use super::{AppendSql, Target, begin_with};
use crate::connection::OwnConnection;
use crate::dcb::locks::Locks;
use crate::dcb::{self, DcbSql};
use crate::error::db;

/// The bounds of a store's groups ([`WRITERS`]); a group's write must fit one packet, so its
/// size is counted in bytes against the packet budget of a chunk.
pub(crate) fn limits(chunk_bytes: usize, max_lock_keys: usize) -> GroupLimits {
    GroupLimits { writers: WRITERS, requests: 64, size: chunk_bytes, lock_keys: max_lock_keys }
}

/// Appends in flight at once (direct ones and writer tasks). Measured on MariaDB 10.11, 2 cores,
/// single-event appends at 8 and 32 tasks (docs/benchmarks.md): 1 writer 0.40x/0.77x the floor,
/// 2 writers 0.32x/0.66x, 4 writers 0.23x/0.44x, 8 writers 0.16x/0.28x; 100-event batches did
/// better with 2 than with 1. More writers make smaller groups that wait for each other on the
/// counter row (every group holds it from its write to its COMMIT).
const WRITERS: usize = 2;

/// How long a group waits for a row lock held by someone else, in seconds (InnoDB's least). A
/// group holds the locks of all its requests, so waiting on a caller's long transaction would
/// stall every request behind one busy stream or boundary; past this wait the group rolls
/// back and its requests run alone (each then waits as it would have without grouping).
const GROUP_LOCK_WAIT: &str = "SET SESSION innodb_lock_wait_timeout = 1";

/// Opens a group's transaction. Unlike `store::BEGIN`, it leaves the session's isolation level
/// and idle limit alone: the writer connections are the writer's only (never handed to callers,
/// never given a batch's lease, see `coordination`), set up READ COMMITTED when they connect
/// (`store::setup_session`), and nothing changes that afterwards.
const GROUP_BEGIN: &str = "START TRANSACTION";

/// A queued append, owned so that a writer task can run it: validated, its events rendered (one
/// chunk: it fits a packet) and its lock plan made.
#[derive(Debug)]
pub(crate) struct Request {
    stream: Option<StreamId>,
    expected: ExpectedVersion,
    condition: Option<AppendCondition>,
    chunk: Chunk,
    locks: Vec<LockKey>,
}

impl Request {
    pub(crate) fn new(target: Target<'_>, chunk: Chunk, locks: Vec<LockKey>) -> Self {
        let (stream, expected) = match target {
            Target::Stream(stream, expected) => (Some(stream.clone()), expected),
            Target::Dcb(_) => (None, ExpectedVersion::Any),
        };
        Self { stream, expected, condition: target.condition().cloned(), chunk, locks }
    }

    /// Whether the request may append on top of `current`, its stream's locked version:
    /// the expected version holds and the new versions fit.
    fn holds(&self, current: Version) -> bool {
        let fits = current.checked_add(self.chunk.len() as i64).is_some();
        fits && self.expected.allows(current)
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
        self.chunk.bytes
    }
}

/// The locking read of a group's head rows, rendered for one store (`{rows}` left to fill).
#[derive(Debug, Clone)]
pub(crate) struct HeadsSql {
    lock: String,
}

impl HeadsSql {
    pub(crate) fn new(config: &pupsourcing_core::StoreConfig) -> Self {
        Self { lock: super::write::template(include_str!("group_heads_lock.sql"), config) }
    }
}

/// The writer of a store's groups.
#[derive(Debug)]
pub(crate) struct MySqlGroupWriter {
    /// The writer connections: READ COMMITTED, strict, short lock waits ([`GROUP_LOCK_WAIT`]).
    writers: MySqlPool,
    /// Where missing lock rows are created when needed (see `dcb::locks`).
    side: MySqlPool,
    append_sql: AppendSql,
    dcb_sql: DcbSql,
    heads_sql: HeadsSql,
    locks: Arc<Locks>,
    /// Most bytes of one round trip's text (`rows::budget`).
    packet: usize,
}

impl MySqlGroupWriter {
    /// A writer whose connections are made lazily with `pool`'s connect options.
    pub(crate) fn new(
        pool: &MySqlPool,
        side: MySqlPool,
        append_sql: AppendSql,
        dcb_sql: DcbSql,
        heads_sql: HeadsSql,
        locks: Arc<Locks>,
        packet: usize,
    ) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let writers = MySqlPoolOptions::new()
            .max_connections(WRITERS as u32)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    crate::store::setup_session(conn).await?;
                    sqlx::raw_sql(GROUP_LOCK_WAIT).execute(conn).await.map(drop)
                })
            })
            .connect_lazy_with(options);
        Self { writers, side, append_sql, dcb_sql, heads_sql, locks, packet }
    }

    /// Closes the writer connections.
    pub(crate) async fn close(&self) {
        self.writers.close().await;
    }

    async fn write_group(&self, group: &[Request]) -> Result<Vec<Option<AppendResult>>> {
        let mut conn = OwnConnection::acquire(&self.writers).await?;
        let result = self.run(&mut conn, group).await;
        if result.is_err() {
            // Rolled back, the connection goes back to the pool; else dropping it closes it,
            // which ends the transaction on the server.
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.map_err(db)?;
        }
        conn.finish(result)
    }

    /// Steps 1 to 5 of the module docs on `conn`, which is in no transaction.
    async fn run(
        &self,
        conn: &mut MySqlConnection,
        group: &[Request],
    ) -> Result<Vec<Option<AppendResult>>> {
        let plan: BTreeMap<i64, bool> =
            group.iter().flat_map(|r| r.locks.iter().map(|k| (k.key, k.exclusive))).collect();
        let plan: Vec<LockKey> =
            plan.into_iter().map(|(key, exclusive)| LockKey { key, exclusive }).collect();
        self.locks.ensure_rows(Some(&mut *conn), &self.side, &plan).await?;
        let conditions: Vec<&AppendCondition> =
            group.iter().filter_map(|r| r.condition.as_ref()).collect();
        let (heads, checked) = self.begin(conn, group, &plan, &conditions).await?;
        let mut matched = match checked {
            Some(matched) => matched,
            None => dcb::conditions_matching(conn, &self.dcb_sql, &conditions).await?,
        };
        matched.reverse();
        // Each request's stream version before it (0 on the DCB path, and for a stream with
        // no head row), if it is appended.
        let current: Vec<Option<Version>> = group
            .iter()
            .map(|r| match &r.stream {
                Some(stream) => {
                    Some(heads.get(&key(stream)).copied().unwrap_or(0)).filter(|&v| r.holds(v))
                }
                None if r.condition.is_some() => (!matched.pop().unwrap_or(true)).then_some(0),
                None => Some(0),
            })
            .collect();
        if current.iter().all(Option::is_none) {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.map_err(db)?;
            return Ok(group.iter().map(|_| None).collect());
        }
        let mut script = Script::default();
        self.heads(&mut script, group, &current, &heads);
        let appended = || group.iter().zip(&current).filter_map(|(r, c)| Some((r, (*c)?)));
        let count = appended().map(|(r, _)| r.chunk.len()).sum();
        let mut rows = Rows::new(count, appended().map(|(r, _)| r.chunk.bytes).sum());
        for (request, current) in appended() {
            rows.push(&request.chunk, request.stream.as_ref().map(|_| current + 1));
        }
        self.append_sql.write.rows(&mut script, &rows);
        script.commit();
        let last = script.run(conn).await.map_err(|f| db(f.error))?;
        let first = last.first().copied().unwrap_or_default() - (count as i64 - 1);
        Ok(results(group, &current, first))
    }

    /// One round trip: BEGIN, the group's boundary locks, the locking read of the head rows
    /// of its streams (in key order) and the check of its `conditions` (after the locks; left
    /// out when too long for the packet: `None`, the caller checks after). Returns the
    /// versions of the head rows found and whether each condition matched.
    async fn begin(
        &self,
        conn: &mut MySqlConnection,
        group: &[Request],
        plan: &[LockKey],
        conditions: &[&AppendCondition],
    ) -> Result<(HashMap<HeadKey, Version>, Option<Vec<bool>>)> {
        let mut streams: Vec<&StreamId> = group.iter().filter_map(|r| r.stream.as_ref()).collect();
        streams.sort_by_key(|s| key(s));
        let read = (!streams.is_empty()).then(|| {
            let rows: Vec<String> = streams
                .iter()
                .map(|stream| {
                    let (kind, id) = stream_parts(stream);
                    format!("(aggregate_type = {kind} AND aggregate_id = {id})")
                })
                .collect();
            self.heads_sql.lock.replace("{rows}", &rows.join(" OR "))
        });
        let mut statements = self.locks.statements(plan);
        statements.extend(read.clone());
        let used: usize = statements.iter().map(|s| s.len() + 2).sum();
        let check = dcb::conditions_statement(
            &self.dcb_sql,
            conditions,
            self.packet.saturating_sub(used + GROUP_BEGIN.len()),
        );
        let checked = check.is_some();
        statements.extend(check);
        let last = usize::from(read.is_some()) + usize::from(checked);
        let mut rows = begin_with(conn, GROUP_BEGIN, statements, last).await?;
        let matched = match checked {
            true => {
                let row = rows.pop().unwrap_or_default();
                let row = row.first().ok_or_else(|| db(super::no_check_row()))?;
                Some(dcb::matches(row, conditions.len())?)
            }
            false => None,
        };
        let mut heads = HashMap::with_capacity(streams.len());
        if read.is_none() {
            return Ok((heads, matched));
        }
        for row in rows.pop().unwrap_or_default() {
            let kind: Vec<u8> = row.try_get(0).map_err(db)?;
            let id: Vec<u8> = row.try_get(1).map_err(db)?;
            let version: Version = row.try_get(2).map_err(db)?;
            if let Ok(id) = <[u8; 16]>::try_from(id) {
                heads.insert((kind, id), version);
            }
        }
        Ok((heads, matched))
    }

    /// Adds the head rows of the appended streams at their new versions, in key order: the
    /// locked ones moved, the missing ones created.
    fn heads(
        &self,
        script: &mut Script,
        group: &[Request],
        current: &[Option<Version>],
        locked: &HashMap<HeadKey, Version>,
    ) {
        let mut heads: Vec<(HeadKey, String, Version)> = group
            .iter()
            .zip(current)
            .filter_map(|(r, c)| {
                let stream = r.stream.as_ref()?;
                Some((key(stream), stream_literals(stream), (*c)? + r.chunk.len() as i64))
            })
            .collect();
        heads.sort();
        let (bump, create): (Vec<_>, Vec<_>) =
            heads.into_iter().partition(|(key, ..)| locked.contains_key(key));
        let rows = |heads: Vec<(HeadKey, String, Version)>| {
            heads.into_iter().map(|(_, stream, version)| (stream, version)).collect::<Vec<_>>()
        };
        self.append_sql.write.group_heads(script, &rows(create), &rows(bump));
    }
}

impl GroupWriter for MySqlGroupWriter {
    type Request = Request;

    fn write<'a>(&'a self, group: &'a [Request]) -> BoxFuture<'a, Vec<Option<AppendResult>>> {
        Box::pin(async move {
            match self.write_group(group).await {
                Ok(results) => results,
                Err(err) => {
                    tracing::debug!(%err, size = group.len(), "group append failed");
                    group.iter().map(|_| None).collect()
                }
            }
        })
    }
}

/// A stream's head row key: its aggregate type and id as stored.
type HeadKey = (Vec<u8>, [u8; 16]);

fn key(stream: &StreamId) -> HeadKey {
    (stream.aggregate_type.as_bytes().to_vec(), *stream.aggregate_id.as_bytes())
}

/// Each appended request's positions (its share of the block starting at `first`, in request
/// order) and versions.
fn results(
    group: &[Request],
    current: &[Option<Version>],
    first: i64,
) -> Vec<Option<AppendResult>> {
    let mut next = first;
    group
        .iter()
        .zip(current)
        .map(|(request, current)| {
            let current = (*current)?;
            let count = request.chunk.len() as i64;
            // Inclusive ends: a block may end at i64::MAX.
            let positions = (next..=next + (count - 1)).collect();
            next = next.saturating_add(count);
            let versions = match request.stream {
                Some(_) => (current + 1..=current + count).collect(),
                None => Vec::new(),
            };
            Some(AppendResult { positions, versions, replayed: false })
        })
        .collect()
}
