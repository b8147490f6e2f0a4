//! DCB reads: a query compiled to one SQL statement over the events and the tag index, capped at
//! the gap-free head.

use std::fmt::Write;

use pupsourcing_core::dcb::{Query, QueryItem, ReadOptions, global_key, query_keys};
use pupsourcing_core::{Error, Position, RecordedEvent, Result};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::error::db_error;
use crate::read::{decode, query_head};
use crate::sql::Statements;

/// A bind value of a compiled query, in `$n` order after the fixed `$1` (low), `$2` (high) and
/// `$3` (limit).
enum Bind<'q> {
    Text(&'q str),
    Texts(&'q [String]),
}

/// Compiles `query` into SQL text and its binds. Items become index range scans (by first tag on
/// the tag index, or by type), each limited, merged by a semi-join ordered by position.
fn compile<'q>(sql: &Statements, query: &'q Query, backwards: bool) -> (String, Vec<Bind<'q>>) {
    let dir = if backwards { "DESC" } else { "ASC" };
    let mut text = sql.select_events.clone();
    let mut binds = Vec::new();
    if query.is_all() {
        text.push_str(" WHERE e.global_position BETWEEN $1 AND $2");
    } else {
        text.push_str(" WHERE e.global_position IN (");
        for (i, item) in query.items.iter().enumerate() {
            if i > 0 {
                text.push_str(" UNION ALL ");
            }
            item_scan(sql, item, dir, &mut text, &mut binds);
        }
        text.push(')');
    }
    let _ = write!(text, " ORDER BY e.global_position {dir} LIMIT $3");
    (text, binds)
}

/// One item's position scan, in parentheses: by type on the events table, or by the first tag
/// on the tag index (filtered by type and by the other tags).
fn item_scan<'q>(
    sql: &Statements,
    item: &'q QueryItem,
    dir: &str,
    text: &mut String,
    binds: &mut Vec<Bind<'q>>,
) {
    // $1..$3 are fixed, so the next bind is number len + 4.
    let mut bind = |b: Bind<'q>| {
        binds.push(b);
        binds.len() + 3
    };
    let Some(first_tag) = item.tags.first() else {
        let types = bind(Bind::Texts(&item.types));
        let _ = write!(
            text,
            "(SELECT x.global_position FROM {} x WHERE x.event_type = ANY(${types}) \
             AND x.global_position BETWEEN $1 AND $2 ORDER BY x.global_position {dir} LIMIT $3)",
            sql.events_table
        );
        return;
    };
    let tag = bind(Bind::Text(first_tag));
    let _ = write!(
        text,
        "(SELECT t.global_position FROM {} t WHERE t.tag = ${tag} \
         AND t.global_position BETWEEN $1 AND $2",
        sql.tags_table
    );
    if !item.types.is_empty() {
        let types = bind(Bind::Texts(&item.types));
        let _ = write!(text, " AND t.event_type = ANY(${types})");
    }
    if item.tags.len() > 1 {
        let tags = bind(Bind::Texts(&item.tags));
        let _ = write!(
            text,
            " AND EXISTS (SELECT 1 FROM {} x WHERE x.global_position = t.global_position \
             AND x.tags @> ${tags})",
            sql.events_table
        );
    }
    let _ = write!(text, " ORDER BY t.global_position {dir} LIMIT $3)");
}

/// Why a read in a caller's REPEATABLE READ or SERIALIZABLE transaction is refused.
pub(crate) const READS_NEED_READ_COMMITTED: Error = Error::Unsupported {
    reason: "reads in your transaction need READ COMMITTED (PostgreSQL's default); under \
             REPEATABLE READ or SERIALIZABLE the snapshot may miss an event below the head, \
             which a reader would then skip for good",
};

/// The connection a DCB read runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// The store's own, in autocommit: every statement has a fresh snapshot.
    Autocommit,
    /// The caller's, possibly inside a transaction of any isolation level.
    Callers,
}

/// Reads the events matching `query` on `conn`: first the gap-free head, then (in a later
/// statement, so its snapshot is newer than the head) the events up to it. In a caller's
/// transaction that keeps one snapshot (REPEATABLE READ, SERIALIZABLE) the later statement
/// would not be newer, so such a read is refused.
///
/// `known` is the store's cached head of the whole log, for reads on the store's own
/// autocommit connection (`None` in a caller's transaction): when the read can be answered
/// below it, it costs one statement and no head query (see [`Below::read`]).
pub(crate) async fn read(
    conn: &mut PgConnection,
    sql: &Statements,
    query: &Query,
    options: ReadOptions,
    session: Session,
    max_keys: usize,
    known: Option<Position>,
) -> Result<(Vec<RecordedEvent>, Position)> {
    let limit = options.limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    // Only appends that could add a matching event hold this read back (read-your-writes
    // while unrelated writers are in flight); see `{events}_query_head`.
    let keys = query_keys(sql.lock_namespace, query, max_keys);
    let global = global_key(sql.lock_namespace);
    let (mut prefix, mut head_found) = (None, None);
    if let Some(known) = known.filter(|_| session == Session::Autocommit) {
        let below = Below::read(&mut *conn, sql, query, options, limit, known, &keys, global);
        match below.await? {
            Below::Answered(events) => return Ok((events, known)),
            Below::Prefix(events, head) => (prefix, head_found) = (Some((events, known)), head),
            Below::Untried => {}
        }
    }
    let head = match head_found {
        Some(head) => head,
        None => {
            let skip_own = session == Session::Callers;
            let (head, read_committed) = query_head(&mut *conn, sql, Some(&keys), global, skip_own)
                .await
                .map_err(db_error)?;
            if session == Session::Callers && !read_committed {
                return Err(READS_NEED_READ_COMMITTED);
            }
            head
        }
    };
    if limit == 0 || head == 0 {
        return Ok((Vec::new(), head));
    }
    let (mut low, high) = match (options.backwards, options.from) {
        (false, from) => (from.unwrap_or(1), head),
        (true, from) => (1, from.map_or(head, |f| f.min(head))),
    };
    // A forward read already has every matching event up to the cached head: it goes on after
    // it. Unless the query's head is below the cached one: an append reads the sequence for
    // its marker before it takes the marker's lock, so a writer that read it before the cached
    // head was computed and registered after holds a marker below that head (its events land
    // above it). Then what was found is dropped and the read ends at the query's head, else it
    // would return events above the head it returns (test
    // `a_query_head_below_the_cached_head_caps_the_read`).
    let (mut events, mut limit) = (Vec::new(), limit);
    if let Some((found, known)) = prefix.filter(|(_, known)| *known <= head) {
        low = low.max(known.saturating_add(1));
        limit -= i64::try_from(found.len()).unwrap_or(i64::MAX);
        events = found;
    }
    if limit > 0 && low <= high {
        events.extend(select(conn, sql, query, options.backwards, low, high, limit).await?);
    }
    Ok((events, head))
}

/// What a read below the cached head found (see [`Below::read`]).
enum Below {
    /// The whole read: every event found lies at or below the cached head.
    Answered(Vec<RecordedEvent>),
    /// A forward read found an event above the cached head: the events at or below it (every
    /// matching one from `from` up to it), for the read to continue after it, and the query's
    /// head, computed in the same statement (good for a later statement only).
    Prefix(Vec<RecordedEvent>, Option<Position>),
    /// Not tried, or a backward read found an event above the cached head.
    Untried,
}

impl Below {
    /// The read answered below `known`, a gap-free head of the whole log computed by a
    /// statement that ended before this one started, when it can be.
    ///
    /// One statement selects the matching events from `from` with no upper bound. Every event
    /// at or below `known` had committed (or will never exist) before that statement's
    /// snapshot was taken, so the statement sees all of them. If every event it returns lies at
    /// or below `known`, the result is therefore exactly the read capped at `known`, and
    /// `known` is a sound head: gap-free for the whole log, hence for this query, so a
    /// condition with `after = known` catches any matching event still to commit above it. An
    /// event above `known` may sit above a matching append still in flight below it, so such an
    /// event is never returned from here (nor is a head raised to it): the same statement then
    /// computes the query's head (`{events}_query_head`, its `pg_locks` scan paid only then),
    /// which the caller reads on to in a later statement. Read-your-writes holds: the client's
    /// own earlier append is committed, so the statement sees it, and if it lies above `known`
    /// the read goes on to the query's head.
    ///
    /// Tried only when the head returned cannot fall below what the caller has already read:
    /// forward reads starting at most just after `known` (a tail continuing after a newer head
    /// would otherwise be sent back to re-read events), and backward reads. A limit of 0 asks
    /// for the head alone, which this path would return stale: it is not tried either.
    #[allow(clippy::too_many_arguments)]
    async fn read(
        conn: &mut PgConnection,
        sql: &Statements,
        query: &Query,
        options: ReadOptions,
        limit: i64,
        known: Position,
        keys: &[i64],
        global: i64,
    ) -> Result<Below> {
        let (low, high) = match (options.backwards, options.from) {
            (false, from) => (from.unwrap_or(1), Position::MAX),
            (true, from) => (1, from.unwrap_or(Position::MAX)),
        };
        if limit == 0 || (!options.backwards && low > known.saturating_add(1)) {
            return Ok(Below::Untried);
        }
        let dir = if options.backwards { "DESC" } else { "ASC" };
        let (found, binds) = compile(sql, query, options.backwards);
        let next = binds.len() + 4;
        let (k, g, h) = (next, next + 1, next + 2);
        // The found events at or below `known`, each carrying the query's head when one lies
        // above it (an init plan, run once; CASE runs the volatile function only when needed).
        // Of the events above `known`, only the last is sent, to carry that head: the rest
        // would be read again after `known` anyway.
        let text = format!(
            "WITH found AS ({found}), top AS (SELECT max(global_position) AS p FROM found) \
             SELECT f.*, (SELECT CASE WHEN top.p > ${h} THEN {}(${k}, ${g}, FALSE) END \
             FROM top) FROM found f WHERE f.global_position <= ${h} \
             OR f.global_position = (SELECT p FROM top) ORDER BY f.global_position {dir}",
            sql.query_head_fn
        );
        let rows = bound(&text, low, high, limit, binds)
            .bind(keys)
            .bind(global)
            .bind(known)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut events: Vec<RecordedEvent> =
            rows.iter().map(decode).collect::<Result<_, _>>().map_err(db_error)?;
        if events.iter().all(|e| e.position <= known) {
            return Ok(Below::Answered(events));
        }
        if options.backwards {
            return Ok(Below::Untried);
        }
        let head: Option<Position> =
            rows.first().map(|r| r.try_get(15)).transpose().map_err(db_error)?.flatten();
        events.retain(|e| e.position <= known);
        Ok(Below::Prefix(events, head))
    }
}

/// `text` with the read's fixed binds (`$1` low, `$2` high, `$3` limit) and the query's.
fn bound<'q>(
    text: &'q str,
    low: Position,
    high: Position,
    limit: i64,
    binds: Vec<Bind<'q>>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(AssertSqlSafe(text)).bind(low).bind(high).bind(limit);
    for bind in binds {
        q = match bind {
            Bind::Text(t) => q.bind(t),
            Bind::Texts(ts) => q.bind(ts),
        };
    }
    q
}

/// The events matching `query` with `low <= position <= high`, at most `limit`, in the read's
/// direction.
async fn select(
    conn: &mut PgConnection,
    sql: &Statements,
    query: &Query,
    backwards: bool,
    low: Position,
    high: Position,
    limit: i64,
) -> Result<Vec<RecordedEvent>> {
    let (text, binds) = compile(sql, query, backwards);
    let rows =
        bound(&text, low, high, limit, binds).fetch_all(&mut *conn).await.map_err(db_error)?;
    rows.iter().map(decode).collect::<Result<_, _>>().map_err(db_error)
}
