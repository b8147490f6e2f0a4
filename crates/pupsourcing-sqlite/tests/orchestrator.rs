//! The orchestrator suite on SQLite: workers as tasks, each with its own store clone, on one
//! database file with a read-model table.

mod common;

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_projection::HandlerError;
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::projections::ReadModel;
use sqlx::SqliteConnection;
use uuid::Uuid;

/// The `read_model` table: one row per handled event, no unique constraint.
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

/// A migrated store on a new database file with the read-model table.
async fn fresh() -> Option<(SqliteEventStore, Rows)> {
    let (_, url) = common::database_url();
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS read_model (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         event_id TEXT NOT NULL, position INTEGER NOT NULL)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    Some((store.clone(), Rows(store)))
}

pupsourcing_testkit::orchestrator_conformance!(fresh);
