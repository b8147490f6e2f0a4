//! The projection suite on SQLite, each test on a new database file with a read-model table,
//! and the crash test with a real child process killed by SIGKILL.

mod common;

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_projection::HandlerError;
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::projections::ReadModel;
use sqlx::SqliteConnection;
use uuid::Uuid;

/// The `read_model` table: one row per handled event, without a unique constraint (see
/// `ReadModel`).
#[derive(Clone)]
struct Rows(SqliteEventStore);

impl ReadModel<SqliteEventStore> for Rows {
    async fn insert(
        &self,
        conn: &mut SqliteConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO read_model (event_id, position) VALUES (?1, ?2)")
            .bind(event.event_id.to_string())
            .bind(event.position)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn clear(&self, conn: &mut SqliteConnection) -> Result<(), HandlerError> {
        sqlx::query("DELETE FROM read_model").execute(&mut *conn).await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<(Uuid, Position)> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT event_id, position FROM read_model ORDER BY seq")
                .fetch_all(self.0.pool())
                .await
                .unwrap();
        rows.into_iter().map(|(id, p)| (id.parse().unwrap(), p)).collect()
    }
}

/// A store on the database file `url` with the read-model table.
async fn store_with_model(url: &str) -> (SqliteEventStore, Rows) {
    let store = SqliteEventStore::connect(url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS read_model (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         event_id TEXT NOT NULL, position INTEGER NOT NULL)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    (store.clone(), Rows(store))
}

async fn fresh() -> Option<(SqliteEventStore, Rows)> {
    let (_, url) = common::database_url();
    Some(store_with_model(&url).await)
}

pupsourcing_testkit::projection_conformance!(fresh);

/// The environment variable that makes this test binary the crash test's child.
const CHILD_DATABASE: &str = "PUP_CRASH_CHILD_DATABASE";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_processor_resumes_exactly_once() {
    if let Ok(url) = std::env::var(CHILD_DATABASE) {
        let (store, model) = store_with_model(&url).await;
        return pupsourcing_testkit::projections::run_until_killed(store, model).await;
    }
    let (_, url) = common::database_url();
    let (store, model) = store_with_model(&url).await;
    pupsourcing_testkit::projections::killed_processor_resumes_exactly_once(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["killed_processor_resumes_exactly_once", "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &url)
            .spawn()
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}
