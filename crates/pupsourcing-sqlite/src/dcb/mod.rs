//! Dynamic Consistency Boundary on SQLite: query reads, append condition checks and the
//! commands table.
//!
//! # No locks needed
//!
//! SQLite lets one writer at a time hold the database's write lock. Every append of the store
//! (stream or DCB) runs in a write transaction: [`EventStore::begin`](pupsourcing_core::EventStore::begin) and the
//! store's own appends start with `BEGIN IMMEDIATE` on the one-connection write pool, and the
//! condition check runs inside that transaction, before the insert. No other writer can commit
//! between the check and the insert, so a conditional append is serialised with every other
//! append by SQLite itself: the advisory locks the PostgreSQL backend takes to make overlapping
//! boundaries collide (`pupsourcing_core::dcb::lock_plan`) are not needed here, and the check
//! sees every event committed before it.
//!
//! In a caller's transaction begun as a plain (deferred) `BEGIN`, the check reads the
//! transaction's snapshot; the insert that follows upgrades it to a writer, which SQLite refuses
//! (`SQLITE_BUSY_SNAPSHOT`) if another writer committed since that snapshot. A stale check is
//! therefore never written either; use [`EventStore::begin`](pupsourcing_core::EventStore::begin) for a transaction that
//! waits for the lock instead of failing.
//!
//! # Compiling queries
//!
//! A [`Query`] becomes one statement, built from the static fragments below with `?` binds
//! only: values are never spliced into the SQL text. Each item is a scan of positions within
//! `[?1, ?2]`:
//!
//! - an item with tags: a range scan of its first tag on the tag index, filtered by the item's
//!   types and by point lookups of its other tags, without touching the events table;
//! - an item with types only: a range scan per type on the `(event_type, global_position)`
//!   index of the events table.
//!
//! A read selects the events whose position is in the union of the items' scans (each limited
//! to the read's limit, in the read's direction); a condition check asks whether the union of
//! the scans after `after` has any row. [`Query::all`] is a range of positions.
//!
//! A projection's read filters one scan of positions by its whole scope instead (see
//! `crate::checkpoint`), so it needs a query as a condition on one row: [`DcbSql::row_filter`]
//! compiles each item to a check of that row (its type, and point lookups of its tags on the tag
//! index), OR-ed.

use std::fmt::Write;

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, Query, QueryItem, ReadOptions, ReadResult,
};
use pupsourcing_core::{Error, Position, Result, StoreConfig};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use crate::error::db;
use crate::read::{self, ReadSql};
use crate::sql::Statement;

/// The marker in a fragment that is replaced by the number of the fragment's one bind.
const BIND: &str = "?#";

/// An item of types only: positions of events of any of the types in the JSON array bind.
/// `INDEXED BY` keeps SQLite from scanning the whole log by position instead (which it would
/// otherwise prefer for a read with a limit, however rare the types are).
const BY_TYPE: &str = "SELECT x.global_position FROM {events} AS x INDEXED BY {events_type_index} \
     WHERE x.event_type IN (SELECT value FROM json_each(?#)) \
     AND x.global_position BETWEEN ?1 AND ?2";

/// An item with tags: positions of events carrying the item's first tag (the bind).
const BY_TAG: &str = "SELECT t.global_position FROM {events_tags} AS t \
     WHERE t.tag = ?# AND t.global_position BETWEEN ?1 AND ?2";

/// Narrows [`BY_TAG`] to events of any of the types in the JSON array bind.
const TAG_TYPES: &str = " AND t.event_type IN (SELECT value FROM json_each(?#))";

/// Narrows [`BY_TAG`] to events that also carry every tag of the JSON array bind.
const OTHER_TAGS: &str = " AND NOT EXISTS (SELECT 1 FROM json_each(?#) AS w \
     WHERE NOT EXISTS (SELECT 1 FROM {events_tags} AS o \
     WHERE o.tag = w.value AND o.global_position = t.global_position))";

/// An item of types only as a condition on the events row `e`: its type is in the JSON array
/// bind.
const ROW_TYPES: &str = "e.event_type IN (SELECT value FROM json_each(?#))";

/// An item with tags as a condition on the events row `e`: it carries the item's first tag (the
/// bind; a point lookup on the tag index), narrowed by [`TAG_TYPES`] and [`OTHER_TAGS`] and
/// closed by a `)`.
const ROW_TAG: &str = "EXISTS (SELECT 1 FROM {events_tags} AS t \
     WHERE t.tag = ?# AND t.global_position = e.global_position";

/// [`Query::all`]: every position within `[?1, ?2]`.
const ALL: &str = "SELECT x.global_position FROM {events} AS x \
     WHERE x.global_position BETWEEN ?1 AND ?2";

/// What a query item compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A scan of matching positions within `[?1, ?2]` ([`BY_TYPE`], [`BY_TAG`]).
    Scan,
    /// A condition on the events row `e` ([`ROW_TYPES`], [`ROW_TAG`]).
    Row,
}

/// The DCB statements and fragments, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct DcbSql {
    select_events: Statement,
    record_command: Statement,
    by_type: Statement,
    by_tag: Statement,
    tag_types: Statement,
    other_tags: Statement,
    all: Statement,
    row_types: Statement,
    row_tag: Statement,
}

/// A statement (or a condition) compiled from a query, with the binds of its items in order.
pub(crate) struct Compiled {
    /// The SQL text.
    pub(crate) text: String,
    /// The items' binds, numbered after the statement's fixed ones.
    pub(crate) binds: Vec<String>,
}

impl Compiled {
    /// Appends `fragment` with its one bind, `value`, numbered after the `fixed` binds and
    /// those pushed so far.
    fn push(&mut self, fragment: &Statement, value: String, fixed: usize) {
        self.binds.push(value);
        let number = format!("?{}", fixed + self.binds.len());
        self.text.push_str(&fragment.text().replacen(BIND, &number, 1));
    }
}

impl DcbSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            select_events: Statement::new(include_str!("select_events.sql"), config),
            record_command: Statement::new(include_str!("record_command.sql"), config),
            by_type: Statement::new(BY_TYPE, config),
            by_tag: Statement::new(BY_TAG, config),
            tag_types: Statement::new(TAG_TYPES, config),
            other_tags: Statement::new(OTHER_TAGS, config),
            all: Statement::new(ALL, config),
            row_types: Statement::new(ROW_TYPES, config),
            row_tag: Statement::new(ROW_TAG, config),
        }
    }

    /// `query` as a condition on the events row aliased `e` (an event matches an item when its
    /// type is among the item's types, or the item has none, and it carries all of the item's
    /// tags; it matches the query when it matches any item), with its binds numbered after the
    /// `fixed` ones; `None` for [`Query::all`]. The items are OR-ed as a balanced tree, which
    /// keeps the expression within SQLite's depth limit for any number of items.
    pub(crate) fn row_filter(&self, query: &Query, fixed: usize) -> Result<Option<Compiled>> {
        if query.is_all() {
            return Ok(None);
        }
        let mut c = Compiled { text: String::new(), binds: Vec::new() };
        self.or_tree(&query.items, fixed, &mut c)?;
        Ok(Some(c))
    }

    fn or_tree(&self, items: &[QueryItem], fixed: usize, c: &mut Compiled) -> Result<()> {
        if let [item] = items {
            return self.push_item(item, Form::Row, fixed, c);
        }
        let (left, right) = items.split_at(items.len() / 2);
        c.text.push('(');
        self.or_tree(left, fixed, c)?;
        c.text.push_str(" OR ");
        self.or_tree(right, fixed, c)?;
        c.text.push(')');
        Ok(())
    }

    /// The read of `query`: binds ?1 low and ?2 high position (inclusive), ?3 the limit, then
    /// the items' binds. Without a limit, the item scans are not ordered or limited.
    fn read_statement(&self, query: &Query, backwards: bool, limited: bool) -> Result<Compiled> {
        let dir = if backwards { "DESC" } else { "ASC" };
        let mut c = Compiled { text: self.select_events.text().to_owned(), binds: Vec::new() };
        if query.is_all() {
            c.text.push_str("\nWHERE e.global_position BETWEEN ?1 AND ?2");
        } else {
            c.text.push_str("\nWHERE e.global_position IN (");
            union(&query.items, &mut c, &mut |item, c| {
                if !limited {
                    return self.push_item(item, Form::Scan, 3, c);
                }
                // Each item's first `limit` positions hold the union's first `limit`.
                c.text.push_str("SELECT global_position FROM (");
                self.push_item(item, Form::Scan, 3, c)?;
                let _ = write!(c.text, " ORDER BY 1 {dir} LIMIT ?3)");
                Ok(())
            })?;
            c.text.push(')');
        }
        let _ = write!(c.text, "\nORDER BY e.global_position {dir} LIMIT ?3");
        Ok(c)
    }

    /// Whether any event matching `query` lies within `[?1, ?2]`: one statement that stops at
    /// the first match. The items' binds follow ?1 and ?2.
    fn condition_statement(&self, query: &Query) -> Result<Compiled> {
        let mut c = Compiled { text: String::from("SELECT EXISTS ("), binds: Vec::new() };
        if query.is_all() {
            c.text.push_str(self.all.text());
        }
        union(&query.items, &mut c, &mut |item, c| self.push_item(item, Form::Scan, 2, c))?;
        c.text.push(')');
        Ok(c)
    }

    /// Appends one item in `form`; its binds are numbered after the `fixed` ones. Both forms
    /// narrow an item with tags by the same fragments; only how it starts (and, on a row,
    /// ends) differs.
    fn push_item(
        &self,
        item: &QueryItem,
        form: Form,
        fixed: usize,
        c: &mut Compiled,
    ) -> Result<()> {
        let (by_type, by_tag) = match form {
            Form::Scan => (&self.by_type, &self.by_tag),
            Form::Row => (&self.row_types, &self.row_tag),
        };
        match item.tags.split_first() {
            None => c.push(by_type, json_array(&item.types)?, fixed),
            Some((first, others)) => {
                c.push(by_tag, first.clone(), fixed);
                if !item.types.is_empty() {
                    c.push(&self.tag_types, json_array(&item.types)?, fixed);
                }
                if !others.is_empty() {
                    c.push(&self.other_tags, json_array(others)?, fixed);
                }
                if form == Form::Row {
                    // Closes the `EXISTS (` that [`ROW_TAG`] opens.
                    c.text.push(')');
                }
            }
        }
        Ok(())
    }
}

/// The most terms one compound `SELECT` gets: SQLite refuses more than 500
/// (`SQLITE_MAX_COMPOUND_SELECT`).
const UNION_TERMS: usize = 250;

/// The `UNION ALL` of one scan per item, written by `arm`. A union of more than
/// [`UNION_TERMS`] items is split into groups, each a subquery of its own.
fn union(
    items: &[QueryItem],
    c: &mut Compiled,
    arm: &mut dyn FnMut(&QueryItem, &mut Compiled) -> Result<()>,
) -> Result<()> {
    if items.len() <= UNION_TERMS {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                c.text.push_str(" UNION ALL ");
            }
            arm(item, c)?;
        }
        return Ok(());
    }
    let group = UNION_TERMS.max(items.len().div_ceil(UNION_TERMS));
    for (i, items) in items.chunks(group).enumerate() {
        if i > 0 {
            c.text.push_str(" UNION ALL ");
        }
        c.text.push_str("SELECT global_position FROM (");
        union(items, c, arm)?;
        c.text.push(')');
    }
    Ok(())
}

fn json_array(values: &[String]) -> Result<String> {
    serde_json::to_string(values).map_err(Error::database)
}

/// Reads the events matching `query` (already validated) and the head, both in one snapshot:
/// in the transaction `conn` is in, or else in a read transaction of its own (a deferred
/// `BEGIN`, which takes no lock and blocks no writer).
pub(crate) async fn read(
    conn: &mut SqliteConnection,
    sql: &DcbSql,
    read_sql: &ReadSql,
    config: &StoreConfig,
    query: &Query,
    options: ReadOptions,
) -> Result<ReadResult> {
    if conn.is_in_transaction() {
        return read_snapshot(conn, sql, read_sql, config, query, options).await;
    }
    let mut tx = conn.begin().await.map_err(db)?;
    let result = read_snapshot(&mut tx, sql, read_sql, config, query, options).await?;
    tx.commit().await.map_err(db)?;
    Ok(result)
}

/// The head first, then the events up to it. Both statements read the transaction's snapshot,
/// and SQLite commits in position order, so the events are a gap-free prefix of the log.
async fn read_snapshot(
    conn: &mut SqliteConnection,
    sql: &DcbSql,
    read_sql: &ReadSql,
    config: &StoreConfig,
    query: &Query,
    options: ReadOptions,
) -> Result<ReadResult> {
    let head = read::head(&mut *conn, read_sql).await?;
    let limit = options.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    if head == 0 || limit == Some(0) {
        return Ok(ReadResult { events: Vec::new(), head });
    }
    let (low, high): (Position, Position) = match (options.backwards, options.from) {
        (false, from) => (from.unwrap_or(1), head),
        (true, from) => (1, from.map_or(head, |f| f.min(head))),
    };
    let compiled = sql.read_statement(query, options.backwards, limit.is_some())?;
    // SQLite reads a negative limit as no limit.
    let mut q =
        sqlx::query(AssertSqlSafe(compiled.text)).bind(low).bind(high).bind(limit.unwrap_or(-1));
    for value in compiled.binds {
        q = q.bind(value);
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
    Ok(ReadResult { events: read::decode_all(&rows, config)?, head })
}

/// Whether an event matching `condition` exists after its `after` position. `conn` must hold
/// the write lock (see the module documentation) for the answer to stay true until the insert.
pub(crate) async fn condition_matches(
    conn: &mut SqliteConnection,
    sql: &DcbSql,
    condition: &AppendCondition,
) -> Result<bool> {
    let compiled = sql.condition_statement(&condition.fail_if_events_match)?;
    let low = condition.after.unwrap_or(0).saturating_add(1);
    let mut q = sqlx::query_scalar(AssertSqlSafe(compiled.text)).bind(low).bind(Position::MAX);
    for value in compiled.binds {
        q = q.bind(value);
    }
    q.fetch_one(&mut *conn).await.map_err(db)
}

/// Stores `command` in the commands table on `conn`.
pub(crate) async fn record_command(
    conn: &mut SqliteConnection,
    sql: &DcbSql,
    command: &CommandRecord,
) -> Result<()> {
    let json = command.json_text();
    sqlx::query(sql.record_command.sql())
        .bind(&command.command_type)
        .bind(json.data)
        .bind(json.metadata)
        .bind(json.positions)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql() -> DcbSql {
        DcbSql::new(&StoreConfig::default())
    }

    #[test]
    fn binds_are_numbered_in_order_and_values_never_spliced() {
        let query = Query::from_items([
            QueryItem::types(["A", "B"]).with_tags(["t1", "t2", "t3"]),
            QueryItem::types(["C"]),
        ]);
        let c = sql().read_statement(&query, false, true).unwrap();
        assert_eq!(c.binds, [r#"t1"#, r#"["A","B"]"#, r#"["t2","t3"]"#, r#"["C"]"#]);
        for n in 4..=7 {
            assert!(c.text.contains(&format!("?{n})")) || c.text.contains(&format!("?{n} ")));
        }
        assert!(!c.text.contains("?#") && !c.text.contains("?8"));
        for value in ["t1", "t2", "\"A\"", "\"C\""] {
            assert!(!c.text.contains(value), "{value} spliced into {}", c.text);
        }

        let c = sql().condition_statement(&query).unwrap();
        assert_eq!(c.binds.len(), 4);
        assert!(c.text.contains("?3") && c.text.contains("?6") && !c.text.contains("?7"));
        assert!(!c.text.contains("LIMIT"));
    }

    #[test]
    fn row_filters_or_items_in_a_balanced_tree() {
        let query = Query::from_items([
            QueryItem::types(["A", "B"]).with_tags(["t1", "t2"]),
            QueryItem::types(["C"]),
            QueryItem::tags(["t3"]),
        ]);
        let c = sql().row_filter(&query, 8).unwrap().unwrap();
        assert_eq!(c.binds, [r#"t1"#, r#"["A","B"]"#, r#"["t2"]"#, r#"["C"]"#, "t3"]);
        assert!(c.text.starts_with("(EXISTS (SELECT 1 FROM \"events_tags\" AS t"), "{}", c.text);
        assert!(c.text.contains("?9") && c.text.contains("?13") && !c.text.contains("?14"));
        assert!(!c.text.contains("?#") && !c.text.contains("BETWEEN"), "{}", c.text);
        assert!(sql().row_filter(&Query::all(), 8).unwrap().is_none());
        let many = Query::from_items((0..1000).map(|i| QueryItem::tags([format!("t{i}")])));
        let c = sql().row_filter(&many, 0).unwrap().unwrap();
        let depth = c.text.chars().fold((0, 0), |(d, max), ch| match ch {
            '(' => (d + 1, max.max(d + 1)),
            ')' => (d - 1, max),
            _ => (d, max),
        });
        assert!(depth.1 < 20, "nesting depth {}", depth.1);
    }

    #[test]
    fn all_needs_no_binds() {
        let read = sql().read_statement(&Query::all(), true, false).unwrap();
        assert!(read.binds.is_empty());
        assert!(read.text.ends_with("ORDER BY e.global_position DESC LIMIT ?3"), "{}", read.text);
        let cond = sql().condition_statement(&Query::all()).unwrap();
        assert!(cond.binds.is_empty());
        assert!(cond.text.starts_with("SELECT EXISTS (SELECT x.global_position"), "{}", cond.text);
    }

    /// The plan SQLite picks for a compiled statement, one detail per line.
    async fn plan(conn: &mut SqliteConnection, c: Compiled, fixed: &[i64]) -> String {
        use sqlx::Row;
        let mut q = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", c.text)));
        for value in fixed {
            q = q.bind(*value);
        }
        for value in c.binds {
            q = q.bind(value);
        }
        let rows = q.fetch_all(&mut *conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
    }

    /// Items of types use the type index, items with tags the tag index (and point lookups for
    /// their other tags): never a scan of the whole log or of the tag index.
    #[tokio::test]
    async fn plans_use_the_indexes() {
        let store = crate::SqliteEventStore::connect("sqlite::memory:", StoreConfig::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let query = Query::from_items([
            QueryItem::types(["A", "B"]),
            QueryItem::types(["A"]).with_tags(["t1", "t2"]),
        ]);
        let read = sql().read_statement(&query, true, true).unwrap();
        let read = plan(&mut conn, read, &[1, 100, 10]).await;
        let condition = sql().condition_statement(&query).unwrap();
        let condition = plan(&mut conn, condition, &[5, i64::MAX]).await;
        for plan in [&read, &condition] {
            let by_type = r#"SEARCH x USING COVERING INDEX "events_event_type_idx" (event_type=? AND global_position>? AND global_position<?)"#;
            let by_type_unquoted = by_type.replace('"', "");
            assert!(plan.contains(by_type) || plan.contains(&by_type_unquoted), "{plan}");
            assert!(
                plan.contains(
                    "SEARCH t USING PRIMARY KEY (tag=? AND global_position>? AND global_position<?)"
                ),
                "{plan}"
            );
            assert!(
                plan.contains("SEARCH o USING PRIMARY KEY (tag=? AND global_position=?)"),
                "{plan}"
            );
            assert!(
                !plan.contains("SCAN x") && !plan.contains("SCAN t ") && !plan.contains("SCAN e"),
                "{plan}"
            );
        }
        assert!(read.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"), "{read}");
    }
}
