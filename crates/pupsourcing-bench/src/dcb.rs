//! DCB scenarios: conditional single-event appends (each task on its own boundary, or with a
//! share of appends on one boundary all tasks contend for), and a tag query over the loaded log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{Error, NewEvent};
use pupsourcing_postgres::PgEventStore;
use sqlx::{AssertSqlSafe, PgPool};

use crate::BoxError;
use crate::append::Appender;
use crate::fixture::COLUMNS;
use crate::report::Measurement;

/// Counts of one conditional scenario, shared by its tasks.
#[derive(Default)]
pub struct Outcomes {
    pub attempts: AtomicU64,
    pub conflicts: AtomicU64,
}

impl Outcomes {
    /// Share of attempts whose condition failed.
    pub fn conflict_rate(&self) -> f64 {
        let attempts = self.attempts.load(Ordering::Relaxed);
        if attempts == 0 {
            0.0
        } else {
            self.conflicts.load(Ordering::Relaxed) as f64 / attempts as f64
        }
    }
}

/// Appends each event under "no event with my boundary's tag after the last position I know".
/// Every `hot_every`-th append (0: never) goes to one boundary shared by all tasks instead, with
/// the head this task last read for it: those conflict whenever another task got there first.
pub struct ConditionalAppender<S> {
    store: S,
    own: Boundary,
    hot: Boundary,
    hot_every: u64,
    count: u64,
    outcomes: Arc<Outcomes>,
}

/// A boundary: its tag, and the last position this task knows it at.
struct Boundary {
    tag: String,
    after: Option<i64>,
}

impl Boundary {
    fn query(&self) -> Query {
        Query::from_items([QueryItem::tags([self.tag.as_str()])])
    }
}

impl<S: DcbStore> ConditionalAppender<S> {
    pub fn new(store: S, run: &str, task: usize, hot_every: u64, outcomes: Arc<Outcomes>) -> Self {
        Self {
            store,
            own: Boundary { tag: format!("customer:{run}-{task}"), after: None },
            hot: Boundary { tag: format!("inventory:{run}"), after: None },
            hot_every,
            count: 0,
            outcomes,
        }
    }
}

impl<S: DcbStore> Appender for ConditionalAppender<S> {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        self.count += 1;
        let hot = self.hot_every > 0 && self.count.is_multiple_of(self.hot_every);
        let boundary = if hot { &mut self.hot } else { &mut self.own };
        let events: Vec<NewEvent> =
            events.iter().map(|e| e.clone().with_tags([boundary.tag.clone()])).collect();
        let condition =
            AppendCondition { fail_if_events_match: boundary.query(), after: boundary.after };
        self.outcomes.attempts.fetch_add(1, Ordering::Relaxed);
        match self.store.append_if(&events, Some(&condition)).await {
            Ok(written) => {
                boundary.after = Some(written.last_position());
                Ok(events.len())
            }
            Err(Error::ConditionFailed { .. }) => {
                self.outcomes.conflicts.fetch_add(1, Ordering::Relaxed);
                // Decide again later on a fresh view of the boundary.
                let read = self.store.read(&boundary.query(), ReadOptions::new().limit(0)).await?;
                boundary.after = Some(read.head);
                Ok(0)
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// How many tag queries each side runs.
pub const TAG_QUERIES: usize = 2000;

/// `store.read(tag order:N)` for random N: each returns the 10 events of one order (the loaded log
/// tags event g with `order:<g % 100000>`). Latency per query.
pub async fn tag_query_library(store: &PgEventStore, orders: u64) -> Result<Measurement, BoxError> {
    let mut m = Measurement::default();
    let start = Instant::now();
    for i in 0..TAG_QUERIES {
        let query = Query::from_items([QueryItem::tags([format!("order:{}", pick(i, orders))])]);
        let t0 = Instant::now();
        let read = store.read(&query, ReadOptions::new()).await?;
        m.latencies.push(t0.elapsed());
        m.events += read.events.len() as u64;
    }
    m.elapsed = start.elapsed();
    Ok(m)
}

/// The same query as plain SQL over the same tables (no head, no library code).
pub async fn tag_query_floor(
    pool: &PgPool,
    lib: &str,
    orders: u64,
) -> Result<Measurement, BoxError> {
    let columns =
        COLUMNS.split(", ").map(|c| format!("e.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let sql: Arc<str> = format!(
        "SELECT {columns} FROM {lib}.events_tags t JOIN {lib}.events e USING (global_position)
          WHERE t.tag = $1 ORDER BY t.global_position"
    )
    .into();
    let mut m = Measurement::default();
    let start = Instant::now();
    for i in 0..TAG_QUERIES {
        let tag = format!("order:{}", pick(i, orders));
        let t0 = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(sql.clone())).bind(tag).fetch_all(pool).await?;
        m.latencies.push(t0.elapsed());
        m.events += rows.len() as u64;
    }
    m.elapsed = start.elapsed();
    Ok(m)
}

/// A well-spread pseudo-random order number for query `i`.
fn pick(i: usize, orders: u64) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % orders.max(1)
}
