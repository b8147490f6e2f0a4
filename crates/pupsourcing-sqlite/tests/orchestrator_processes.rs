//! The orchestrator suite with worker processes on SQLite
//! (`pupsourcing_testkit::orchestrator_processes`): this test binary re-runs itself as each
//! worker, on the parent's database file, with a ledger table beside the store.
//!
//! Only the three-process scenario runs here. Not the pause: a worker stopped mid-batch holds
//! the file's write lock (`BEGIN IMMEDIATE`), so every other worker's writes, heartbeats
//! included, wait for it; no takeover can happen until it resumes. Not the dropped
//! connections: there is no server to end a session.

mod common;

use pupsourcing_core::StoreConfig;
use pupsourcing_projection::HandlerError;
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::orchestrator_processes::{Entry, Ledger, LedgerRow};
use sqlx::{AssertSqlSafe, SqliteConnection};

/// The `ledger` table: one row per handled event, with the owner and epoch of its shard row
/// as the handling transaction saw them.
#[derive(Clone)]
struct Rows(SqliteEventStore);

impl Ledger<SqliteEventStore> for Rows {
    async fn insert(
        &self,
        conn: &mut SqliteConnection,
        entry: &Entry<'_>,
    ) -> Result<(), HandlerError> {
        let shards = &self.0.config().tables.shards;
        let sql = format!(
            "INSERT INTO ledger (projection, event_id, position, worker, shard, owner, epoch) \
             SELECT ?1, ?2, ?3, ?4, ?5, s.owner, s.epoch FROM (SELECT 1) AS one \
             LEFT JOIN {shards} AS s ON s.projection_name = ?1 AND s.shard = ?5 \
             AND s.shard_count = ?6"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(entry.projection)
            .bind(entry.event.event_id.to_string())
            .bind(entry.event.position)
            .bind(entry.worker)
            .bind(entry.shard)
            .bind(entry.count)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<LedgerRow> {
        let sql = "SELECT projection, event_id, position, worker, shard, owner, epoch \
                   FROM ledger ORDER BY seq";
        type Row = (String, String, i64, String, u32, Option<String>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(sql).fetch_all(self.0.pool()).await.unwrap();
        rows.into_iter()
            .map(|(projection, event_id, position, worker, shard, owner, epoch)| LedgerRow {
                projection,
                event_id: event_id.parse().unwrap(),
                position,
                worker,
                shard,
                owner,
                epoch,
            })
            .collect()
    }
}

/// A migrated store on the database file `url`, with the ledger table.
async fn store_with_ledger(url: &str) -> (SqliteEventStore, Rows) {
    let store = SqliteEventStore::connect(url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         projection TEXT NOT NULL, event_id TEXT NOT NULL, position INTEGER NOT NULL, \
         worker TEXT NOT NULL, shard INTEGER NOT NULL, owner TEXT, epoch INTEGER)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    (store.clone(), Rows(store))
}

/// The parent's store on a new database file, and the file's URL.
async fn parent() -> Option<(String, SqliteEventStore, Rows)> {
    let (_, url) = common::database_url();
    let (store, rows) = store_with_ledger(&url).await;
    Some((url, store, rows))
}

pupsourcing_testkit::orchestrator_process_tests!(parent, store_with_ledger;
    three_worker_processes_share_several_projections,
);
