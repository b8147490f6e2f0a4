//! Append throughput against a raw-SQL floor on the same server, in the same run: what the
//! counter lock (appends serialised from allocation to commit) and the DCB locks cost.
//! The floor is one autocommitted plain `INSERT` of the same rows (AUTO_INCREMENT position, no
//! tag index, no heads) on the same pool. Ignored by default; run with
//! `cargo test --release -p pupsourcing-mysql --test throughput -- --ignored --nocapture`.
//! The pool has [`common::POOL_SIZE`] connections (the server's are shared with other tests),
//! so at 8 and 32 writers at most that many statements run at once, for the floor too.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem};
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent};
use pupsourcing_mysql::{MySqlEventStore, sqlx};

const RUN: Duration = Duration::from_secs(3);

/// Events per batch in the batch measurement.
const BATCH: usize = 100;

/// Runs `writers` tasks calling `op(task)` until [`RUN`] passes; returns calls per second.
async fn rate<F, Fut>(writers: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    op(task).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn tick() -> NewEvent {
    NewEvent::new("Tick", b"{\"n\":1}".to_vec())
}

/// The floor: `rows` rows in one autocommitted multi-row INSERT.
async fn floor(store: &MySqlEventStore, writers: usize, rows: usize) -> f64 {
    let values = vec!["(?, ?, ?)"; rows].join(", ");
    let insert = format!(
        "INSERT INTO `{}`.floor (event_id, event_type, payload) VALUES {values}",
        store.config().schema
    );
    let pool = store.pool().clone();
    rate(writers, move |_| {
        let (pool, sql) = (pool.clone(), insert.clone());
        async move {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for _ in 0..rows {
                query = query.bind(uuid::Uuid::now_v7().as_bytes().to_vec()).bind("Tick");
                query = query.bind(b"{\"n\":1}".to_vec());
            }
            query.execute(&pool).await.unwrap();
        }
    })
    .await
}

/// Appends of `events` events each to new streams.
async fn stream_appends(store: &MySqlEventStore, writers: usize, events: usize) -> f64 {
    let s = store.clone();
    rate(writers, move |_| {
        let s = s.clone();
        async move {
            let stream = pupsourcing_testkit::new_stream();
            let batch: Vec<_> = (0..events).map(|_| tick()).collect();
            s.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
        }
    })
    .await
}

/// Unconditional DCB appends of one event tagged with one hot tag.
async fn dcb_appends(store: &MySqlEventStore, writers: usize) -> f64 {
    let s = store.clone();
    rate(writers, move |_| {
        let s = s.clone();
        async move {
            s.append_if(&[tick().with_tags(["hot"])], None).await.unwrap();
        }
    })
    .await
}

/// Conditional DCB appends: each writer decides on its own boundary (a tag of its own),
/// "nothing tagged so after my last append", which always holds.
async fn conditional_appends(store: &MySqlEventStore, writers: usize) -> f64 {
    let s = store.clone();
    let lasts: Arc<Vec<AtomicI64>> = Arc::new((0..writers).map(|_| AtomicI64::new(0)).collect());
    let round = uuid::Uuid::now_v7().simple().to_string();
    rate(writers, move |task| {
        let (s, lasts) = (s.clone(), lasts.clone());
        let tag = format!("w:{round}:{task}");
        async move {
            let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
            let last = lasts[task].load(Ordering::Relaxed);
            let condition = AppendCondition::new(query, (last > 0).then_some(last));
            let event = tick().with_tags([tag.as_str()]);
            let written = s.append_if(&[event], Some(&condition)).await.unwrap();
            lasts[task].store(written.positions[0], Ordering::Relaxed);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: a measurement"]
async fn append_throughput_against_the_insert_floor() {
    let Some(store) = common::fresh_store().await else { return };
    let table = format!(
        "CREATE TABLE `{}`.floor (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id BINARY(16) \
         NOT NULL UNIQUE, event_type VARBINARY(2048) NOT NULL, payload BLOB NOT NULL) \
         ENGINE = InnoDB",
        store.config().schema
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(table)).execute(store.pool()).await.unwrap();
    for writers in [1, 8, 32] {
        let floor = floor(&store, writers, 1).await;
        let streams = stream_appends(&store, writers, 1).await;
        let dcb = dcb_appends(&store, writers).await;
        let conditional = conditional_appends(&store, writers).await;
        eprintln!(
            "{writers} writers: insert floor {floor:.0}/s, stream appends (new streams) \
             {streams:.0}/s ({:.2}x), DCB appends {dcb:.0}/s ({:.2}x), conditional DCB \
             appends {conditional:.0}/s ({:.2}x)",
            streams / floor,
            dcb / floor,
            conditional / floor,
        );
    }
    for writers in [1, 4] {
        let floor = floor(&store, writers, BATCH).await;
        let batches = stream_appends(&store, writers, BATCH).await;
        eprintln!(
            "{writers} writers, {BATCH}-event batches: insert floor {floor:.1}/s, stream \
             appends {batches:.1}/s ({:.2}x)",
            batches / floor
        );
    }
}
