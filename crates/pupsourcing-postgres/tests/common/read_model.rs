//! The read-model table the projection and orchestrator suites write: one row per handled
//! event (see `pupsourcing_testkit::projections::ReadModel`), and fresh stores with it.

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_projection::HandlerError;
use pupsourcing_testkit::projections::ReadModel;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// The store's `read_model` table: one row per handled event, without a unique constraint (see
/// `ReadModel`).
#[derive(Clone)]
pub struct Rows(PgEventStore);

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

/// A migrated store in `schema` with the read-model table, or `None` when the server is
/// unreachable.
pub async fn store_with_model(schema: &str) -> Option<(PgEventStore, Rows)> {
    let store = super::store_with(StoreConfig::default().schema(schema).unwrap()).await?;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {schema}.read_model (seq BIGINT GENERATED ALWAYS AS IDENTITY \
         PRIMARY KEY, event_id UUID NOT NULL, position BIGINT NOT NULL)"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    Some((store.clone(), Rows(store)))
}

pub async fn fresh() -> Option<(PgEventStore, Rows)> {
    store_with_model(&super::unique_schema()).await
}
