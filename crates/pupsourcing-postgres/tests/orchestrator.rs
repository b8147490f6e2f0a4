//! The orchestrator suite on PostgreSQL: workers as tasks, each with its own store clone, on
//! one schema with a read-model table.

mod common;

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_projection::HandlerError;
use pupsourcing_testkit::projections::ReadModel;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// The store's `read_model` table: one row per handled event, no unique constraint.
#[derive(Clone)]
struct Rows(PgEventStore);

impl Rows {
    fn table(&self) -> String {
        format!("{}.read_model", self.0.config().schema)
    }
}

impl ReadModel<PgEventStore> for Rows {
    async fn insert(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let sql = format!("INSERT INTO {} (event_id, position) VALUES ($1, $2)", self.table());
        sqlx::query(AssertSqlSafe(sql))
            .bind(event.event_id)
            .bind(event.position)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn clear(&self, conn: &mut PgConnection) -> Result<(), HandlerError> {
        let sql = format!("DELETE FROM {}", self.table());
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<(Uuid, Position)> {
        let sql = format!("SELECT event_id, position FROM {} ORDER BY seq", self.table());
        sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.0.pool()).await.unwrap()
    }
}

/// A migrated store in a new schema with the read-model table, or `None` when the server is
/// unreachable.
async fn fresh() -> Option<(PgEventStore, Rows)> {
    let schema = common::unique_schema();
    let store = common::store_with(StoreConfig::default().schema(&schema).unwrap()).await?;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {schema}.read_model (seq BIGINT GENERATED ALWAYS AS IDENTITY \
         PRIMARY KEY, event_id UUID NOT NULL, position BIGINT NOT NULL)"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    Some((store.clone(), Rows(store)))
}

pupsourcing_testkit::orchestrator_conformance!(fresh);
