//! Append throughput against a raw-SQL floor on the same server, in the same run: what the
//! counter lock (appends serialised from allocation to commit) and the DCB locks cost.
//! Ignored by default; run with
//! `cargo test -p pupsourcing-mysql --test throughput -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent};
use pupsourcing_mysql::sqlx;

const RUN: Duration = Duration::from_secs(3);

/// Runs `writers` tasks calling `op` until [`RUN`] passes; returns calls per second.
async fn rate<F, Fut>(writers: usize, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    op().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: a measurement"]
async fn append_throughput_against_the_insert_floor() {
    let Some(store) = common::fresh_store().await else { return };
    let floor = format!(
        "CREATE TABLE `{}`.floor (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id BINARY(16) \
         NOT NULL UNIQUE, payload BLOB NOT NULL) ENGINE = InnoDB",
        store.config().schema
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(floor)).execute(store.pool()).await.unwrap();
    let insert =
        format!("INSERT INTO `{}`.floor (event_id, payload) VALUES (?, ?)", store.config().schema);
    for writers in [1, 4] {
        let pool = store.pool().clone();
        let sql = insert.clone();
        let floor = rate(writers, move || {
            let (pool, sql) = (pool.clone(), sql.clone());
            async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(uuid::Uuid::now_v7().as_bytes().to_vec())
                    .bind(b"{\"n\":1}".to_vec())
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        })
        .await;
        let s = store.clone();
        let streams = rate(writers, move || {
            let s = s.clone();
            async move {
                let stream = pupsourcing_testkit::new_stream();
                let event = NewEvent::new("Tick", b"{\"n\":1}".to_vec());
                s.append(&stream, ExpectedVersion::NoStream, &[event]).await.unwrap();
            }
        })
        .await;
        let s = store.clone();
        let dcb = rate(writers, move || {
            let s = s.clone();
            async move {
                let event = NewEvent::new("Tick", b"{\"n\":1}".to_vec()).with_tags(["hot"]);
                s.append_if(&[event], None).await.unwrap();
            }
        })
        .await;
        eprintln!(
            "{writers} writers: insert floor {floor:.0}/s, stream appends (new streams) \
             {streams:.0}/s ({:.2}x), DCB appends {dcb:.0}/s ({:.2}x)",
            streams / floor,
            dcb / floor
        );
    }
}
