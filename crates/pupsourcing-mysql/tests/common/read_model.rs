//! The read-model table the projection and orchestrator suites write: one row per handled
//! event (see `pupsourcing_testkit::projections::ReadModel`), and fresh stores with it.

use pupsourcing_core::{Position, RecordedEvent, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx::{self, AssertSqlSafe, MySqlConnection};
use pupsourcing_projection::HandlerError;
use pupsourcing_testkit::projections::ReadModel;
use uuid::Uuid;

/// The store's `read_model` table: one row per handled event, without a unique constraint (see
/// `ReadModel`).
#[derive(Clone)]
pub struct Rows(MySqlEventStore);

impl Rows {
    fn table(&self) -> String {
        format!("`{}`.read_model", self.0.config().schema)
    }
}

impl ReadModel<MySqlEventStore> for Rows {
    async fn insert(
        &self,
        conn: &mut MySqlConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let sql = format!("INSERT INTO {} (event_id, position) VALUES (?, ?)", self.table());
        sqlx::query(AssertSqlSafe(sql))
            .bind(event.event_id.as_bytes().as_slice())
            .bind(event.position)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn clear(&self, conn: &mut MySqlConnection) -> Result<(), HandlerError> {
        let sql = format!("DELETE FROM {}", self.table());
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<(Uuid, Position)> {
        let sql = format!("SELECT event_id, position FROM {} ORDER BY seq", self.table());
        let rows: Vec<(Vec<u8>, i64)> =
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.0.pool()).await.unwrap();
        rows.into_iter().map(|(id, p)| (Uuid::from_slice(&id).unwrap(), p)).collect()
    }
}

/// A migrated store in database `database` with the read-model table, or `None` when the
/// server is unreachable.
pub async fn store_with_model(database: &str) -> Option<(MySqlEventStore, Rows)> {
    let store = super::connect(StoreConfig::default().schema(database).unwrap()).await?;
    store.migrate().await.expect("migration applies");
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.read_model (seq BIGINT AUTO_INCREMENT PRIMARY \
         KEY, event_id BINARY(16) NOT NULL, position BIGINT NOT NULL) ENGINE = InnoDB"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    Some((store.clone(), Rows(store)))
}

pub async fn fresh() -> Option<(MySqlEventStore, Rows)> {
    store_with_model(&super::unique_database()).await
}
