//! DCB reads: a query compiled to one SQL statement over the events and the tag index, capped at
//! the gap-free head.

use std::fmt::Write;

use pupsourcing_core::dcb::{Query, QueryItem, ReadOptions, global_key, query_keys};
use pupsourcing_core::{Error, Position, Result};
use sqlx::{AssertSqlSafe, PgConnection};

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
pub(crate) async fn read(
    conn: &mut PgConnection,
    sql: &Statements,
    query: &Query,
    options: ReadOptions,
    session: Session,
    max_keys: usize,
) -> Result<(Vec<pupsourcing_core::RecordedEvent>, Position)> {
    // Only appends that could add a matching event hold this read back (read-your-writes
    // while unrelated writers are in flight); see `{events}_query_head`.
    let keys = query_keys(sql.lock_namespace, query, max_keys);
    let global = global_key(sql.lock_namespace);
    let (head, read_committed) =
        query_head(&mut *conn, sql, Some(&keys), global, session == Session::Callers)
            .await
            .map_err(db_error)?;
    if session == Session::Callers && !read_committed {
        return Err(READS_NEED_READ_COMMITTED);
    }
    let limit = options.limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    if limit == 0 || head == 0 {
        return Ok((Vec::new(), head));
    }
    let (low, high) = match (options.backwards, options.from) {
        (false, from) => (from.unwrap_or(1), head),
        (true, from) => (1, from.map_or(head, |f| f.min(head))),
    };
    let (text, binds) = compile(sql, query, options.backwards);
    let mut q = sqlx::query(AssertSqlSafe(text)).bind(low).bind(high).bind(limit);
    for bind in binds {
        q = match bind {
            Bind::Text(t) => q.bind(t),
            Bind::Texts(ts) => q.bind(ts),
        };
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(db_error)?;
    let events = rows.iter().map(decode).collect::<Result<_, _>>().map_err(db_error)?;
    Ok((events, head))
}
