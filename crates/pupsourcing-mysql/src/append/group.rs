//! Group commit on MySQL/MariaDB: concurrent appends of the store's own, written by one
//! transaction (the queue and its grouping rules are `pupsourcing_core::group`'s).
//!
//! Every append holds the position counter from taking its positions to COMMIT (that is what
//! keeps reads gap-free, see the module docs of `append`), so appends alone run that section
//! one at a time, and the section's per-call work caps the whole server's appends. A group
//! runs it once for all its requests: one call of the write procedure and one COMMIT. The
//! transaction, on a writer connection of the store's own ([`GroupLimits::writers`] at most):
//!
//! 1. the union of the requests' boundary locks (no key wanted in both modes: the queue's rule),
//!    their missing rows created first in autocommit statements (see `dcb::locks`);
//! 2. the head rows of the requests' streams, locked in key order with their versions read
//!    (`group_heads_lock.sql`), the missing ones created at version 0
//!    (`group_heads_create.sql`);
//! 3. every request's check as if alone: its expected version against its locked head, its
//!    condition (one statement for all of them, after the locks); the requests that fail are
//!    left out, and their callers run them alone, which reports why;
//! 4. the heads of the appended streams moved to their new versions;
//! 5. one call of the write procedure for the events of every appended request, in request
//!    order, so each request's block of positions is contiguous; then COMMIT.
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
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool, Row};

use super::rows::{Chunk, close_array};
use super::{AppendSql, Target, write_rows};
use crate::connection::OwnConnection;
use crate::dcb::locks::Locks;
use crate::dcb::{self, DcbSql};
use crate::error::db;
use crate::sql::repeated;
use crate::store::BEGIN;

/// The bounds of a store's groups ([`WRITERS`]); a group's events must fit one call of the write
/// procedure, so its size is counted in bytes against the packet budget of a chunk.
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

/// A queued append, owned so that a writer task can run it: validated, its events rendered (one
/// chunk: it fits a call of the write procedure) and its lock plan made.
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
        fits && match self.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(version) => current == version,
        }
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

/// The head rows statements of a group, rendered for one store (`{rows}` left to fill).
#[derive(Debug, Clone)]
pub(crate) struct HeadsSql {
    lock: String,
    create: String,
    bump: String,
}

impl HeadsSql {
    pub(crate) fn new(config: &pupsourcing_core::StoreConfig) -> Self {
        let render = |template: &str| crate::sql::render(template, config);
        Self {
            lock: render(include_str!("group_heads_lock.sql")),
            create: render(include_str!("group_heads_create.sql")),
            bump: render(include_str!("group_heads_bump.sql")),
        }
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
        Self { writers, side, append_sql, dcb_sql, heads_sql, locks }
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
        sqlx::raw_sql(BEGIN).execute(&mut *conn).await.map_err(db)?;
        self.locks.take(conn, &plan).await?;
        let now = chrono::Utc::now().timestamp_micros();
        let heads = self.lock_heads(conn, group, now).await?;
        let conditions: Vec<&AppendCondition> =
            group.iter().filter_map(|r| r.condition.as_ref()).collect();
        let mut matched = dcb::conditions_matching(conn, &self.dcb_sql, &conditions).await?;
        matched.reverse();
        // Each request's stream version before it (0 on the DCB path), if it is appended.
        let current: Vec<Option<Version>> = group
            .iter()
            .map(|r| match &r.stream {
                Some(stream) => heads.get(&key(stream)).copied().filter(|&v| r.holds(v)),
                None if r.condition.is_some() => (!matched.pop().unwrap_or(true)).then_some(0),
                None => Some(0),
            })
            .collect();
        if current.iter().all(Option::is_none) {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.map_err(db)?;
            return Ok(group.iter().map(|_| None).collect());
        }
        self.bump_heads(conn, group, &current, now).await?;
        let (mut array, mut count) = (String::new(), 0);
        for (request, current) in group.iter().zip(&current) {
            if let Some(current) = current {
                request.chunk.render(&mut array, request.stream.as_ref().map(|_| current + 1));
                count += request.chunk.len();
            }
        }
        close_array(&mut array);
        let first = write_rows(conn, &self.append_sql, array, count).await.map_err(db)?;
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await.map_err(db)?;
        Ok(results(group, &current, first))
    }

    /// Locks the head rows of the group's streams (creating the missing ones at version 0)
    /// and returns their versions.
    async fn lock_heads(
        &self,
        conn: &mut MySqlConnection,
        group: &[Request],
        now: i64,
    ) -> Result<HashMap<HeadKey, Version>> {
        let mut streams: Vec<HeadKey> =
            group.iter().filter_map(|r| r.stream.as_ref()).map(key).collect();
        if streams.is_empty() {
            return Ok(HashMap::new());
        }
        streams.sort();
        let rows = vec!["(aggregate_type = ? AND aggregate_id = ?)"; streams.len()].join(" OR ");
        let text = self.heads_sql.lock.replace("{rows}", &rows);
        let mut lock = sqlx::query(AssertSqlSafe(text));
        for (kind, id) in &streams {
            lock = lock.bind(kind.as_slice()).bind(id.as_slice());
        }
        let mut heads = HashMap::with_capacity(streams.len());
        for row in lock.fetch_all(&mut *conn).await.map_err(db)? {
            let kind: Vec<u8> = row.try_get(0).map_err(db)?;
            let id: Vec<u8> = row.try_get(1).map_err(db)?;
            let version: Version = row.try_get(2).map_err(db)?;
            if let Ok(id) = <[u8; 16]>::try_from(id) {
                heads.insert((kind, id), version);
            }
        }
        let missing: Vec<&HeadKey> = streams.iter().filter(|s| !heads.contains_key(*s)).collect();
        if !missing.is_empty() {
            let text =
                self.heads_sql.create.replace("{rows}", &repeated("(?, ?, 0, ?)", missing.len()));
            let mut create = sqlx::query(AssertSqlSafe(text));
            for (kind, id) in &missing {
                create = create.bind(kind.as_slice()).bind(id.as_slice()).bind(now);
            }
            create.execute(&mut *conn).await.map_err(db)?;
            heads.extend(missing.into_iter().map(|s| (s.clone(), 0)));
        }
        Ok(heads)
    }

    /// Moves the heads of the appended streams to their new versions, in key order.
    async fn bump_heads(
        &self,
        conn: &mut MySqlConnection,
        group: &[Request],
        current: &[Option<Version>],
        now: i64,
    ) -> Result<()> {
        let mut bumps: Vec<(HeadKey, Version)> = group
            .iter()
            .zip(current)
            .filter_map(|(r, c)| Some((key(r.stream.as_ref()?), (*c)? + r.chunk.len() as i64)))
            .collect();
        if bumps.is_empty() {
            return Ok(());
        }
        bumps.sort();
        let text = self.heads_sql.bump.replace("{rows}", &repeated("(?, ?, ?, ?)", bumps.len()));
        let mut bump = sqlx::query(AssertSqlSafe(text));
        for ((kind, id), version) in &bumps {
            bump = bump.bind(kind.as_slice()).bind(id.as_slice()).bind(*version).bind(now);
        }
        bump.execute(&mut *conn).await.map_err(db)?;
        Ok(())
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
