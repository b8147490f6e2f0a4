//! Dynamic Consistency Boundary on MySQL: query reads, append condition checks, the boundary
//! locks ([`locks`]) and the commands table.
//!
//! # Compiling queries
//!
//! A [`Query`] becomes one statement with `?` binds only, pushed in the order they appear:
//! values are never spliced into the SQL text. Each item is a scan of positions within a
//! range:
//!
//! - an item with tags: a range scan of its first tag on the tag index's primary key
//!   `(tag, global_position)`, filtered by the item's types (stored in the tag index) and by a
//!   count of point lookups of its other tags (one correlated subquery, not one join per tag:
//!   MySQL refuses more than 61 tables in one join);
//! - an item with types only: a range scan on the `(event_type, global_position)` index.
//!
//! A read joins the events to the union of the items' scans (each ordered and limited to the
//! read's limit, in the read's direction: each item's first `limit` positions hold the union's
//! first `limit`); a condition check asks whether the union of the scans after `after` has any
//! row. [`Query::all`] is a range of positions.

pub(crate) mod locks;

use std::fmt::Write;

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, Query, QueryItem, ReadOptions, ReadResult,
};
use pupsourcing_core::{Position, Result, StoreConfig};
use sqlx::mysql::MySqlArguments;
use sqlx::query::Query as SqlxQuery;
use sqlx::{AssertSqlSafe, MySql, MySqlConnection};

use crate::append::literal;
use crate::error::db;
use crate::read::{self, COLUMNS, ReadSql};
use crate::sql::{Statement, repeated};

/// An item of types only: positions of events of the item's types (`IN` list follows).
const BY_TYPE: &str = "SELECT x.global_position FROM {events} AS x \
     WHERE x.global_position BETWEEN ? AND ? AND x.event_type IN ";

/// An item with tags: positions of events carrying the item's first tag.
const BY_TAG: &str = "SELECT t.global_position FROM {events_tags} AS t \
     WHERE t.global_position BETWEEN ? AND ? AND t.tag = ?";

/// Narrows [`BY_TAG`] to the item's types (`IN` list follows).
const TAG_TYPES: &str = " AND t.event_type IN ";

/// Narrows [`BY_TAG`] to events carrying all the other tags of the item: the count of them
/// found by point lookups (`IN` list follows, then `) = n`).
const OTHER_TAGS: &str = " AND (SELECT COUNT(*) FROM {events_tags} AS o \
     WHERE o.global_position = t.global_position AND o.tag IN ";

/// A value bound to a compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// A statement compiled from a query, with its binds in textual order.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
}

impl Compiled {
    /// Appends an `IN` list of `values`.
    fn push_list(&mut self, values: &[String]) {
        let _ = write!(self.text, "({})", repeated("?", values.len()));
        self.binds.extend(values.iter().cloned().map(Bind::Text));
    }

    /// The statement with its binds written in as literals (`append::literal`: integers in
    /// decimal, text as hex literals, compared byte for byte with the `VARBINARY` columns as the
    /// bound values are), for a round trip of text statements. The fragments compiled hold no
    /// `?` but their placeholders (their only other text is table names, which are
    /// identifiers), so each `?` is the next bind's.
    pub(crate) fn inline(&self) -> String {
        let extra: usize = self
            .binds
            .iter()
            .map(|b| match b {
                Bind::Int(_) => 20,
                Bind::Text(v) => literal::bytes_len(v.len()),
            })
            .sum();
        let mut out = String::with_capacity(self.text.len() + extra);
        let mut binds = self.binds.iter().peekable();
        for c in self.text.chars() {
            match (c, binds.next_if(|_| c == '?')) {
                (_, Some(Bind::Int(v))) => literal::int(&mut out, *v),
                (_, Some(Bind::Text(v))) => literal::bytes(&mut out, v.as_bytes()),
                (c, None) => out.push(c),
            }
        }
        out
    }

    /// The statement with its binds, ready to run.
    pub(crate) fn query(&self) -> SqlxQuery<'_, MySql, MySqlArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.text.as_str()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }
}

/// The DCB statements and fragments, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct DcbSql {
    select_events: Statement,
    record_command: Statement,
    by_type: Statement,
    by_tag: Statement,
    other_tags: Statement,
}

impl DcbSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        let select = include_str!("select_events.sql").replace("{columns}", &e_columns());
        Self {
            select_events: Statement::new(&select, config),
            record_command: Statement::new(include_str!("record_command.sql"), config),
            by_type: Statement::new(BY_TYPE, config),
            by_tag: Statement::new(BY_TAG, config),
            other_tags: Statement::new(OTHER_TAGS, config),
        }
    }

    /// Appends one item's scan of positions within `[low, high]`.
    fn push_item(&self, item: &QueryItem, low: Position, high: Position, c: &mut Compiled) {
        match item.tags.split_first() {
            None => {
                c.text.push_str(self.by_type.text());
                c.binds.extend([Bind::Int(low), Bind::Int(high)]);
                c.push_list(&item.types);
            }
            Some((first, others)) => {
                c.text.push_str(self.by_tag.text());
                c.binds.extend([Bind::Int(low), Bind::Int(high), Bind::Text(first.clone())]);
                if !item.types.is_empty() {
                    c.text.push_str(TAG_TYPES);
                    c.push_list(&item.types);
                }
                if !others.is_empty() {
                    c.text.push_str(self.other_tags.text());
                    c.push_list(others);
                    let _ = write!(c.text, ") = {}", others.len());
                }
            }
        }
    }

    /// The read of `query` within `[low, high]`, up to `limit` events.
    fn read_statement(
        &self,
        query: &Query,
        (low, high): (Position, Position),
        backwards: bool,
        limit: i64,
    ) -> Compiled {
        let dir = if backwards { "DESC" } else { "ASC" };
        let mut c = Compiled { text: self.select_events.text().to_owned(), binds: Vec::new() };
        if query.is_all() {
            c.text.push_str("\nWHERE e.global_position BETWEEN ? AND ?");
            c.binds.extend([Bind::Int(low), Bind::Int(high)]);
        } else {
            c.text.push_str("\nJOIN (");
            for (i, item) in query.items.iter().enumerate() {
                if i > 0 {
                    c.text.push_str(" UNION ");
                }
                c.text.push('(');
                self.push_item(item, low, high, &mut c);
                let _ = write!(c.text, " ORDER BY 1 {dir} LIMIT ?)");
                c.binds.push(Bind::Int(limit));
            }
            c.text.push_str(") AS m ON m.global_position = e.global_position");
        }
        let _ = write!(c.text, "\nORDER BY e.global_position {dir} LIMIT ?");
        c.binds.push(Bind::Int(limit));
        c
    }

    /// Appends whether any event matching `query` lies after `after` (an `EXISTS` that stops at
    /// the first match) to `c`, a select list being built.
    fn push_condition(&self, query: &Query, after: Position, c: &mut Compiled) {
        let (low, high) = (after.saturating_add(1), Position::MAX);
        c.text.push_str(if c.text.is_empty() { "SELECT EXISTS (" } else { ", EXISTS (" });
        if query.is_all() {
            c.text.push_str(&self.by_type.text().replace(" AND x.event_type IN ", ""));
            c.binds.extend([Bind::Int(low), Bind::Int(high)]);
        }
        for (i, item) in query.items.iter().enumerate() {
            if i > 0 {
                c.text.push_str(" UNION ALL ");
            }
            self.push_item(item, low, high, c);
        }
        c.text.push(')');
    }
}

/// The event columns qualified with the alias `e`.
fn e_columns() -> String {
    COLUMNS.trim().split(',').map(|c| format!("e.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// Reads the events matching `query` (already validated) up to the gap-free head, read first
/// in a statement of its own (see `crate::read`), and that head.
pub(crate) async fn read(
    conn: &mut MySqlConnection,
    sql: &DcbSql,
    read_sql: &ReadSql,
    config: &StoreConfig,
    query: &Query,
    options: ReadOptions,
) -> Result<ReadResult> {
    let head = read::head(&mut *conn, read_sql).await?;
    let limit = options.limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    if head == 0 || limit == 0 {
        return Ok(ReadResult { events: Vec::new(), head });
    }
    let range = match (options.backwards, options.from) {
        (false, from) => (from.unwrap_or(1), head),
        (true, from) => (1, from.map_or(head, |f| f.min(head))),
    };
    if range.0 > range.1 {
        return Ok(ReadResult { events: Vec::new(), head });
    }
    let compiled = sql.read_statement(query, range, options.backwards, limit);
    let rows = compiled.query().fetch_all(&mut *conn).await.map_err(db)?;
    Ok(ReadResult { events: read::decode_all(&rows, config)?, head })
}

/// Whether an event matching `condition` exists after its `after` position. Sound only after
/// the condition's exclusive locks are held (see `locks`), in a statement of its own (READ
/// COMMITTED: it sees every commit made while the locks were awaited).
pub(crate) async fn condition_matches(
    conn: &mut MySqlConnection,
    sql: &DcbSql,
    condition: &AppendCondition,
) -> Result<bool> {
    let matched = conditions_matching(conn, sql, &[condition]).await?;
    Ok(matched.first().copied().unwrap_or(true))
}

/// Most binds in one condition statement (MySQL allows 65,535 placeholders per statement).
const BINDS_PER_CHECK: usize = 60_000;

/// [`condition_matches`] for several conditions (a group's), in as few statements as the
/// placeholder limit allows: one row of one `EXISTS` per condition. In order of `conditions`.
pub(crate) async fn conditions_matching(
    conn: &mut MySqlConnection,
    sql: &DcbSql,
    conditions: &[&AppendCondition],
) -> Result<Vec<bool>> {
    let mut matched = Vec::with_capacity(conditions.len());
    let mut rest = conditions;
    while !rest.is_empty() {
        let mut c = Compiled::default();
        let mut taken = 0;
        for condition in rest {
            let before = (c.text.len(), c.binds.len());
            sql.push_condition(
                &condition.fail_if_events_match,
                condition.after.unwrap_or(0),
                &mut c,
            );
            if taken > 0 && c.binds.len() > BINDS_PER_CHECK {
                c.text.truncate(before.0);
                c.binds.truncate(before.1);
                break;
            }
            taken += 1;
        }
        let row = c.query().fetch_one(&mut *conn).await.map_err(db)?;
        matched.extend(matches(&row, taken)?);
        rest = &rest[taken..];
    }
    Ok(matched)
}

/// The check of `conditions` as one text statement of literals ([`Compiled::inline`]), to run
/// after the boundary locks in the same round trip as them (READ COMMITTED: a statement of its
/// own, so it sees every commit made while the locks were awaited); its one row holds one
/// `EXISTS` per condition, in order ([`matches()`]). `None` when the text would pass `max` bytes:
/// the caller then checks with [`conditions_matching`] after the round trip.
pub(crate) fn conditions_statement(
    sql: &DcbSql,
    conditions: &[&AppendCondition],
    max: usize,
) -> Option<String> {
    let mut c = Compiled::default();
    for condition in conditions {
        sql.push_condition(&condition.fail_if_events_match, condition.after.unwrap_or(0), &mut c);
        if c.text.len() > max {
            return None;
        }
    }
    let text = c.inline();
    (!conditions.is_empty() && text.len() <= max).then_some(text)
}

/// The results of `count` conditions from a row of their check: whether each matched.
pub(crate) fn matches(row: &sqlx::mysql::MySqlRow, count: usize) -> Result<Vec<bool>> {
    use sqlx::Row;
    (0..count).map(|i| row.try_get::<i64, _>(i).map(|found| found != 0).map_err(db)).collect()
}

/// Stores `command` in the commands table on `conn`.
pub(crate) async fn record_command(
    conn: &mut MySqlConnection,
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
    fn binds_follow_the_text_and_values_are_never_spliced() {
        let query = Query::from_items([
            QueryItem::types(["A", "B"]).with_tags(["t1", "t2", "t3"]),
            QueryItem::types(["C"]),
        ]);
        let c = sql().read_statement(&query, (1, 9), false, 5);
        assert_eq!(c.text.matches('?').count(), c.binds.len(), "{}", c.text);
        let text = |s: &str| Bind::Text(s.into());
        assert_eq!(
            c.binds,
            [
                Bind::Int(1),
                Bind::Int(9),
                text("t1"),
                text("A"),
                text("B"),
                text("t2"),
                text("t3"),
                Bind::Int(5),
                Bind::Int(1),
                Bind::Int(9),
                text("C"),
                Bind::Int(5),
                Bind::Int(5),
            ]
        );
        assert!(c.text.contains(") = 2"), "{}", c.text);
        for value in ["t1", "\"A\"", "'C'"] {
            assert!(!c.text.contains(value), "{value} spliced into {}", c.text);
        }
        let mut cond = Compiled::default();
        sql().push_condition(&query, 4, &mut cond);
        assert_eq!(cond.text.matches('?').count(), cond.binds.len(), "{}", cond.text);
        assert_eq!(cond.binds[0], Bind::Int(5));
        assert!(!cond.text.contains("LIMIT"));
        let one = cond.binds.len();
        sql().push_condition(&query, 7, &mut cond);
        assert!(cond.text.starts_with("SELECT EXISTS (") && cond.text.contains("), EXISTS ("));
        assert_eq!(cond.binds.len(), 2 * one);
        assert_eq!(cond.binds[one], Bind::Int(8));
    }

    #[test]
    fn inlined_conditions_carry_their_binds_as_literals() {
        let query = Query::from_items([
            QueryItem::types(["A", "B"]).with_tags(["t1", "t2", "t3"]),
            QueryItem::types(["C"]),
        ]);
        let mut c = Compiled::default();
        sql().push_condition(&query, 4, &mut c);
        let text = c.inline();
        assert!(!text.contains('?'), "{text}");
        // t1, A, t2: hex literals; after = 4: from 5 on.
        for literal in ["X'7431'", "X'41'", "X'7432'", "BETWEEN 5 AND 9223372036854775807"] {
            assert!(text.contains(literal), "{literal} missing from {text}");
        }
        let condition = AppendCondition { fail_if_events_match: query, after: Some(4) };
        let both = conditions_statement(&sql(), &[&condition, &condition], usize::MAX).unwrap();
        assert_eq!(both, format!("{text}, {}", &text["SELECT ".len()..]));
        assert!(conditions_statement(&sql(), &[&condition], text.len() - 1).is_none());
        assert!(conditions_statement(&sql(), &[], usize::MAX).is_none());
    }

    #[test]
    fn all_is_a_range() {
        let read = sql().read_statement(&Query::all(), (1, 9), true, 3);
        assert_eq!(read.binds, [Bind::Int(1), Bind::Int(9), Bind::Int(3)]);
        assert!(read.text.ends_with("ORDER BY e.global_position DESC LIMIT ?"), "{}", read.text);
        let mut cond = Compiled::default();
        sql().push_condition(&Query::all(), 0, &mut cond);
        assert_eq!(cond.text.matches('?').count(), 2, "{}", cond.text);
    }
}
