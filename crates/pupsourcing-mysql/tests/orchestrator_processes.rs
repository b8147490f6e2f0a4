//! The orchestrator suite with worker processes on MySQL / MariaDB
//! (`pupsourcing_testkit::orchestrator_processes`): this test binary re-runs itself as each
//! worker, on the parent's database, with a ledger table beside the store.
//!
//! Not `a_dropped_connection_is_survived`: it must tell the heartbeat connections among the
//! sessions it ends, by their last statement, which MariaDB shows only with the
//! performance schema (off by default, and off on the test server); its `PROCESSLIST` shows only
//! a statement still running.

mod common;

use pupsourcing_core::{ConnectOptions, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx::{self, AssertSqlSafe, MySqlConnection};
use pupsourcing_projection::HandlerError;
use pupsourcing_testkit::orchestrator_processes::{Entry, Ledger, LedgerRow};
use uuid::Uuid;

/// The `ledger` table of a database: one row per handled event, with the owner and epoch of its
/// shard row as the handling transaction saw them.
#[derive(Clone)]
struct Rows(MySqlEventStore);

impl Ledger<MySqlEventStore> for Rows {
    async fn insert(
        &self,
        conn: &mut MySqlConnection,
        entry: &Entry<'_>,
    ) -> Result<(), HandlerError> {
        let config = self.0.config();
        let (database, shards) = (&config.schema, &config.tables.shards);
        let sql = format!(
            "INSERT INTO `{database}`.ledger (projection, event_id, position, worker, shard, \
             owner, epoch) SELECT ?, ?, ?, ?, ?, s.owner, s.epoch FROM (SELECT 1) AS one \
             LEFT JOIN `{database}`.`{shards}` AS s ON s.projection_name = ? AND s.shard = ? \
             AND s.shard_count = ?"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(entry.projection)
            .bind(entry.event.event_id.as_bytes().as_slice())
            .bind(entry.event.position)
            .bind(entry.worker)
            .bind(entry.shard)
            .bind(entry.projection)
            .bind(entry.shard)
            .bind(entry.count)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<LedgerRow> {
        let sql = format!(
            "SELECT projection, event_id, position, worker, shard, owner, epoch \
             FROM `{}`.ledger ORDER BY seq",
            self.0.config().schema
        );
        type Row = (Vec<u8>, Vec<u8>, i64, Vec<u8>, u32, Option<Vec<u8>>, Option<i64>);
        let rows: Vec<Row> =
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.0.pool()).await.unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        rows.into_iter()
            .map(|(projection, event_id, position, worker, shard, owner, epoch)| LedgerRow {
                projection: text(projection),
                event_id: Uuid::from_slice(&event_id).unwrap(),
                position,
                worker: text(worker),
                shard,
                owner: owner.map(text),
                epoch,
            })
            .collect()
    }
}

/// The parent's store in a new database, with the ledger table; `None` when the server is
/// unreachable.
async fn parent() -> Option<(String, MySqlEventStore, Rows)> {
    let database = common::unique_database();
    let store = common::connect(StoreConfig::default().schema(&database).unwrap()).await?;
    store.migrate().await.expect("migration applies");
    let sql = format!(
        "CREATE TABLE `{database}`.ledger (seq BIGINT AUTO_INCREMENT PRIMARY KEY, \
         projection VARBINARY(255) NOT NULL, event_id BINARY(16) NOT NULL, \
         position BIGINT NOT NULL, worker VARBINARY(512) NOT NULL, shard INT UNSIGNED NOT NULL, \
         owner VARBINARY(512), epoch BIGINT) ENGINE = InnoDB"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    Some((database, store.clone(), Rows(store)))
}

/// A worker process's store on the parent's `database`.
async fn child(database: &str) -> (MySqlEventStore, Rows) {
    // Few connections: the tests of this file run at once, with several workers each, and the
    // server's connections are shared with the other test binaries.
    let options = ConnectOptions::new().max_connections(4);
    let config = StoreConfig::default().schema(database).unwrap();
    let store = MySqlEventStore::connect_with(&common::url(), config, options).await.unwrap();
    (store.clone(), Rows(store))
}

pupsourcing_testkit::orchestrator_process_tests!(parent, child);
