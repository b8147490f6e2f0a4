//! The catch-up read: the whole log from position 1 in pages of 1000.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use pupsourcing_core::EventStore;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row};
use uuid::Uuid;

use crate::BoxError;
use crate::fixture::COLUMNS;
use crate::report::Measurement;

pub const PAGE: usize = 1000;

/// What the floor decodes a row into: the same field types as the library's `RecordedEvent`
/// (both backends' floors decode into it).
#[allow(dead_code)] // decoded to be paid for, not looked at
#[derive(Debug)]
pub(crate) struct FloorEvent {
    pub(crate) position: i64,
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) event_version: i32,
    pub(crate) bounded_context: Option<String>,
    pub(crate) aggregate_type: Option<String>,
    pub(crate) aggregate_id: Option<Uuid>,
    pub(crate) aggregate_version: Option<i64>,
    pub(crate) tags: Vec<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) metadata: Option<serde_json::Value>,
    pub(crate) trace_id: Option<Uuid>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) created_at: DateTime<Utc>,
}

fn decode(row: &PgRow) -> Result<FloorEvent, sqlx::Error> {
    Ok(FloorEvent {
        position: row.try_get(0)?,
        event_id: row.try_get(1)?,
        event_type: row.try_get(2)?,
        event_version: row.try_get(3)?,
        bounded_context: row.try_get(4)?,
        aggregate_type: row.try_get(5)?,
        aggregate_id: row.try_get(6)?,
        aggregate_version: row.try_get(7)?,
        tags: row.try_get(8)?,
        payload: row.try_get(9)?,
        metadata: row.try_get(10)?,
        trace_id: row.try_get(11)?,
        correlation_id: row.try_get(12)?,
        causation_id: row.try_get(13)?,
        created_at: row.try_get(14)?,
    })
}

/// Reads everything through `store.read_all(from, 1000)` on a fresh store (no cached head).
pub async fn library<S: EventStore>(store: S, expected: u64) -> Result<Measurement, BoxError> {
    pages(expected, "library", |after| {
        let store = &store;
        async move {
            let page = store.read_all(after + 1, PAGE).await?;
            let read = Page { events: page.len(), last: page.last().map(|e| e.position) };
            black_box(page);
            Ok(read)
        }
    })
    .await
}

/// Reads everything with a plain keyset-paged SELECT of the same columns.
pub async fn floor(pool: &PgPool, floor: &str, expected: u64) -> Result<Measurement, BoxError> {
    let sql: std::sync::Arc<str> = format!(
        "SELECT {COLUMNS} FROM {floor}.events WHERE global_position > $1 \
         ORDER BY global_position LIMIT $2"
    )
    .into();
    pages(expected, "floor", |after| {
        let sql = sql.clone();
        async move {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(after)
                .bind(PAGE as i64)
                .fetch_all(pool)
                .await?;
            floor_page(rows, decode)
        }
    })
    .await
}

/// Decodes a page of the floor's rows into [`FloorEvent`]s, as the library decodes its own
/// (paid for, then dropped), and says what the page held.
pub(crate) fn floor_page<R, E: Into<BoxError>>(
    rows: Vec<R>,
    decode: impl Fn(&R) -> Result<FloorEvent, E>,
) -> Result<Page, BoxError> {
    let page = rows.iter().map(decode).collect::<Result<Vec<_>, _>>().map_err(Into::into)?;
    drop(rows);
    let read = Page { events: page.len(), last: page.last().map(|e| e.position) };
    black_box(page);
    Ok(read)
}

/// One page of a catch-up read: how many events, and the last one's position.
pub(crate) struct Page {
    pub events: usize,
    pub last: Option<i64>,
}

/// Reads the whole log page by page, `read(after)` returning the page after position `after`
/// (0 first), timing each page, until a short page; fails unless `expected` events were read.
pub(crate) async fn pages<F, Fut>(
    expected: u64,
    side: &str,
    mut read: F,
) -> Result<Measurement, BoxError>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<Page, BoxError>>,
{
    let mut m = Measurement::default();
    let start = Instant::now();
    let mut after = 0_i64;
    loop {
        let t0 = Instant::now();
        let page = read(after).await?;
        m.latencies.push(t0.elapsed());
        m.events += page.events as u64;
        if let Some(last) = page.last {
            after = last;
        }
        if page.events < PAGE {
            break;
        }
    }
    m.elapsed = start.elapsed();
    check(m, expected, side)
}

fn check(m: Measurement, expected: u64, side: &str) -> Result<Measurement, BoxError> {
    if m.events != expected {
        return Err(format!("{side} read {} events, expected {expected}", m.events).into());
    }
    Ok(m)
}

/// Adds `more` to `total` (several rounds of one side).
pub fn accumulate(total: &mut Measurement, more: Measurement) {
    total.events += more.events;
    total.elapsed += more.elapsed;
    total.latencies.extend(more.latencies);
}
