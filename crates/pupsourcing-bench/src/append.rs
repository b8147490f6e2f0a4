//! Append scenarios: N tasks, each writing to its own aggregate, for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::BoxError;
use crate::events::EventFactory;
use crate::report::Measurement;

/// One writer's way of appending a batch of events to its aggregate.
pub trait Appender: Send + 'static {
    /// Appends `events` and returns how many were written.
    fn append<'a>(
        &'a mut self,
        events: &'a [NewEvent],
    ) -> impl Future<Output = Result<usize, BoxError>> + Send + 'a;
}

/// Through the library: `store.append(&stream, ExpectedVersion::Any, events)`.
pub struct LibraryAppender<S> {
    store: S,
    stream: StreamId,
}

impl<S: EventStore> LibraryAppender<S> {
    pub fn new(store: S) -> Self {
        Self { store, stream: StreamId::new("Order", Uuid::now_v7()) }
    }
}

impl<S: EventStore> Appender for LibraryAppender<S> {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        let written = self.store.append(&self.stream, ExpectedVersion::Any, events).await?;
        if written.positions.len() != events.len() || written.replayed {
            return Err(format!("library wrote {written:?} for {} events", events.len()).into());
        }
        Ok(events.len())
    }
}

/// The floor's statements for one floor schema.
pub struct FloorSql {
    insert_one: Arc<str>,
    insert_many: Arc<str>,
    rows_one: Arc<str>,
    rows_many: Arc<str>,
}

/// Which rows a floor writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FloorKind {
    /// The event rows only: the cheapest plain way to store events.
    Events,
    /// The rows the library writes: the event rows, the stream's head row (upserted, its
    /// version assigned from it) and one tag-index row per tag, in one CTE statement.
    SameRows,
}

const INSERT_COLUMNS: &str = "event_id, event_type, event_version, bounded_context, aggregate_type, \
     aggregate_id, aggregate_version, tags, payload, metadata, trace_id, correlation_id, \
     causation_id, created_at";

impl FloorSql {
    pub fn new(floor: &str) -> Self {
        let insert_one = format!(
            "INSERT INTO {floor}.events ({INSERT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11, $12, $13, $14)
             RETURNING global_position"
        );
        // Tags are one text[] per event; they travel as array literals because UNNEST cannot
        // produce an array-typed column from a two-dimensional array.
        let insert_many = format!(
            "INSERT INTO {floor}.events ({INSERT_COLUMNS})
             SELECT u.event_id, u.event_type, u.event_version, u.bounded_context, $1, $2,
                    u.aggregate_version, u.tags::text[], u.payload, u.metadata::json, u.trace_id,
                    u.correlation_id, u.causation_id, u.created_at
               FROM UNNEST($3::uuid[], $4::text[], $5::int[], $6::text[], $7::bigint[],
                           $8::text[], $9::bytea[], $10::text[], $11::uuid[], $12::uuid[],
                           $13::uuid[], $14::timestamptz[])
                    AS u(event_id, event_type, event_version, bounded_context, aggregate_version,
                         tags, payload, metadata, trace_id, correlation_id, causation_id,
                         created_at)
             RETURNING global_position"
        );
        let rows_one = format!(
            "WITH head AS (
                 INSERT INTO {floor}.aggregate_heads AS h (aggregate_type, aggregate_id, aggregate_version)
                 VALUES ($5, $6, 1)
                 ON CONFLICT (aggregate_type, aggregate_id)
                 DO UPDATE SET aggregate_version = h.aggregate_version + 1, updated_at = now()
                 RETURNING h.aggregate_version
             ), ev AS (
                 INSERT INTO {floor}.events ({INSERT_COLUMNS})
                 SELECT $1, $2, $3, $4, $5, $6, head.aggregate_version, $8, $9, $10::json, $11, $12, $13, $14
                   FROM head
                 RETURNING global_position, event_type, tags
             ), tagged AS (
                 INSERT INTO {floor}.events_tags (tag, global_position, event_type)
                 SELECT unnest(ev.tags), ev.global_position, ev.event_type FROM ev
             )
             SELECT global_position FROM ev"
        );
        let rows_many = format!(
            "WITH head AS (
                 INSERT INTO {floor}.aggregate_heads AS h (aggregate_type, aggregate_id, aggregate_version)
                 VALUES ($1, $2, cardinality($3::uuid[]))
                 ON CONFLICT (aggregate_type, aggregate_id)
                 DO UPDATE SET aggregate_version = h.aggregate_version + cardinality($3::uuid[]),
                               updated_at = now()
                 RETURNING h.aggregate_version
             ), ev AS (
                 INSERT INTO {floor}.events ({INSERT_COLUMNS})
                 SELECT u.event_id, u.event_type, u.event_version, u.bounded_context, $1, $2,
                        head.aggregate_version - cardinality($3::uuid[]) + u.ord, u.tags::text[],
                        u.payload, u.metadata::json, u.trace_id, u.correlation_id, u.causation_id,
                        u.created_at
                   FROM head, UNNEST($3::uuid[], $4::text[], $5::int[], $6::text[], $7::bigint[],
                               $8::text[], $9::bytea[], $10::text[], $11::uuid[], $12::uuid[],
                               $13::uuid[], $14::timestamptz[]) WITH ORDINALITY
                        AS u(event_id, event_type, event_version, bounded_context, aggregate_version,
                             tags, payload, metadata, trace_id, correlation_id, causation_id,
                             created_at, ord)
                 RETURNING global_position, event_type, tags
             ), tagged AS (
                 INSERT INTO {floor}.events_tags (tag, global_position, event_type)
                 SELECT unnest(ev.tags), ev.global_position, ev.event_type FROM ev
             )
             SELECT global_position FROM ev"
        );
        Self {
            insert_one: insert_one.into(),
            insert_many: insert_many.into(),
            rows_one: rows_one.into(),
            rows_many: rows_many.into(),
        }
    }
}

/// The raw-SQL floor: one autocommitted `INSERT` of the same rows (the cheapest plain way to
/// write them: one statement, one round trip), versions counted by the task itself (it is the
/// only writer of its aggregate), positions from the BIGSERIAL.
pub struct FloorAppender {
    pool: PgPool,
    sql: Arc<FloorSql>,
    kind: FloorKind,
    aggregate_type: String,
    aggregate_id: Uuid,
    version: i64,
}

impl FloorAppender {
    pub fn new(pool: PgPool, sql: Arc<FloorSql>, kind: FloorKind) -> Self {
        let (aggregate_type, aggregate_id) = ("Order".into(), Uuid::now_v7());
        Self { pool, sql, kind, aggregate_type, aggregate_id, version: 0 }
    }

    fn statement(&self, many: bool) -> Arc<str> {
        match (self.kind, many) {
            (FloorKind::Events, false) => self.sql.insert_one.clone(),
            (FloorKind::Events, true) => self.sql.insert_many.clone(),
            (FloorKind::SameRows, false) => self.sql.rows_one.clone(),
            (FloorKind::SameRows, true) => self.sql.rows_many.clone(),
        }
    }

    async fn insert_one(&mut self, e: &NewEvent) -> Result<usize, BoxError> {
        let _position: i64 = sqlx::query_scalar(AssertSqlSafe(self.statement(false)))
            .bind(e.event_id)
            .bind(&e.event_type)
            .bind(e.event_version)
            .bind(&e.bounded_context)
            .bind(&self.aggregate_type)
            .bind(self.aggregate_id)
            .bind(self.version + 1)
            .bind(&e.tags)
            .bind(&e.payload)
            .bind(e.metadata.as_ref().map(|m| m.to_string()))
            .bind(e.trace_id)
            .bind(e.correlation_id)
            .bind(e.causation_id)
            .bind(e.created_at)
            .fetch_one(&self.pool)
            .await?;
        self.version += 1;
        Ok(1)
    }

    async fn insert_many(&mut self, events: &[NewEvent]) -> Result<usize, BoxError> {
        let n = events.len() as i64;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let versions: Vec<i32> = events.iter().map(|e| e.event_version).collect();
        let contexts: Vec<Option<&str>> =
            events.iter().map(|e| e.bounded_context.as_deref()).collect();
        let aggregate_versions: Vec<i64> = (self.version + 1..=self.version + n).collect();
        let tags: Vec<String> = events.iter().map(|e| array_literal(&e.tags)).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
        // Metadata travels as text, as the library sends it, into a JSON column.
        let metadata: Vec<Option<String>> =
            events.iter().map(|e| e.metadata.as_ref().map(|m| m.to_string())).collect();
        let trace_ids: Vec<Option<Uuid>> = events.iter().map(|e| e.trace_id).collect();
        let correlation_ids: Vec<Option<Uuid>> = events.iter().map(|e| e.correlation_id).collect();
        let causation_ids: Vec<Option<Uuid>> = events.iter().map(|e| e.causation_id).collect();
        let created_at: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();

        let positions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(self.statement(true)))
            .bind(&self.aggregate_type)
            .bind(self.aggregate_id)
            .bind(&ids)
            .bind(&types)
            .bind(&versions)
            .bind(&contexts)
            .bind(&aggregate_versions)
            .bind(&tags)
            .bind(&payloads)
            .bind(&metadata)
            .bind(&trace_ids)
            .bind(&correlation_ids)
            .bind(&causation_ids)
            .bind(&created_at)
            .fetch_all(&self.pool)
            .await?;
        if positions.len() != events.len() {
            return Err(format!("floor wrote {} of {} events", positions.len(), n).into());
        }
        self.version += n;
        Ok(events.len())
    }
}

impl Appender for FloorAppender {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        match events {
            [one] => self.insert_one(one).await,
            many => self.insert_many(many).await,
        }
    }
}

/// A PostgreSQL array literal of text elements, every element quoted.
fn array_literal(items: &[String]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Runs one appender per task: `warmup` unmeasured, then `duration` measured. Only operations
/// that start inside the measured window count; the window ends when the last of them finishes.
pub async fn measure<A: Appender>(
    appenders: Vec<A>,
    batch: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Measurement, BoxError> {
    let start = Instant::now();
    let from = start + warmup;
    let end = from + duration;
    let handles: Vec<_> = appenders
        .into_iter()
        .enumerate()
        .map(|(task, mut appender)| {
            tokio::spawn(async move {
                let mut factory = EventFactory::new(task);
                let mut latencies = Vec::with_capacity(1 << 16);
                let (mut events, mut last) = (0_u64, from);
                loop {
                    let batch = factory.next_batch(batch);
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let written = appender.append(&batch).await?;
                    let t1 = Instant::now();
                    if t0 >= from {
                        latencies.push(t1 - t0);
                        events += written as u64;
                        last = last.max(t1);
                    }
                }
                Ok::<_, BoxError>((latencies, events, last))
            })
        })
        .collect();
    let mut total = Measurement::default();
    let mut last = from;
    for handle in handles {
        let (latencies, events, task_last) = handle.await??;
        total.latencies.extend(latencies);
        total.events += events;
        last = last.max(task_last);
    }
    total.elapsed = last - from;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(array_literal(&["a:1".into(), r#"q"\"#.into()]), r#"{"a:1","q\"\\"}"#);
    }
}
