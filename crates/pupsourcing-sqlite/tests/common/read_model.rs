//! The read-model table the projection and orchestrator suites write: one row per handled
//! event (see `pupsourcing_testkit::projections::ReadModel`), and fresh stores with it.

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_projection::HandlerError;
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::projections::ReadModel;
use sqlx::SqliteConnection;
use uuid::Uuid;

/// The `read_model` table: one row per handled event, without a unique constraint (see
/// `ReadModel`).
#[derive(Clone)]
pub struct Rows(SqliteEventStore);

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
pub async fn store_with_model(url: &str) -> (SqliteEventStore, Rows) {
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

pub async fn fresh() -> Option<(SqliteEventStore, Rows)> {
    let (_, url) = super::database_url();
    Some(store_with_model(&url).await)
}
