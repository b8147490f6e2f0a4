//! The orchestrator suite with worker processes on PostgreSQL
//! (`pupsourcing_testkit::orchestrator_processes`): this test binary re-runs itself as each
//! worker, on the parent's schema, with a ledger table beside the store.

mod common;

use pupsourcing_core::StoreConfig;
use pupsourcing_postgres::PgEventStore;
use pupsourcing_projection::HandlerError;
use pupsourcing_testkit::orchestrator_processes::{
    CHILD_DATABASE, Entry, Ledger, LedgerRow, run_worker_process, spawner,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// The `ledger` table of a schema: one row per handled event, with the owner and epoch of its
/// shard row as the handling transaction saw them.
#[derive(Clone)]
struct Rows(PgEventStore);

impl Ledger<PgEventStore> for Rows {
    async fn insert(&self, conn: &mut PgConnection, entry: &Entry<'_>) -> Result<(), HandlerError> {
        let config = self.0.config();
        let (schema, shards) = (&config.schema, &config.tables.shards);
        let sql = format!(
            "INSERT INTO {schema}.ledger (projection, event_id, position, worker, shard, owner, \
             epoch) SELECT $1, $2, $3, $4, $5, s.owner, s.epoch FROM (SELECT 1) AS one \
             LEFT JOIN {schema}.{shards} AS s ON s.projection_name = $1 AND s.shard = $5 \
             AND s.shard_count = $6"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(entry.projection)
            .bind(entry.event.event_id)
            .bind(entry.event.position)
            .bind(entry.worker)
            .bind(entry.shard as i32)
            .bind(entry.count as i32)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn rows(&self) -> Vec<LedgerRow> {
        let sql = format!(
            "SELECT projection, event_id, position, worker, shard, owner, epoch FROM {}.ledger \
             ORDER BY seq",
            self.0.config().schema
        );
        type Row = (String, Uuid, i64, String, i32, Option<String>, Option<i64>);
        let rows: Vec<Row> =
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.0.pool()).await.unwrap();
        rows.into_iter()
            .map(|(projection, event_id, position, worker, shard, owner, epoch)| LedgerRow {
                projection,
                event_id,
                position,
                worker,
                shard: shard as u32,
                owner,
                epoch,
            })
            .collect()
    }
}

/// The application name of the worker processes' sessions on `schema` (so that a test can
/// find and end them).
fn application(schema: &str) -> String {
    format!("w_{schema}")
}

/// The parent's store in a new schema, with the ledger table; `None` when the server is
/// unreachable.
async fn parent() -> Option<(String, PgEventStore, Rows)> {
    let schema = common::unique_schema();
    let store = common::store_with(StoreConfig::default().schema(&schema).unwrap()).await?;
    let sql = format!(
        "CREATE TABLE {schema}.ledger (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         projection TEXT NOT NULL, event_id UUID NOT NULL, position BIGINT NOT NULL, \
         worker TEXT NOT NULL, shard INT NOT NULL, owner TEXT, epoch BIGINT)"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    Some((schema.clone(), store.clone(), Rows(store)))
}

/// A worker process's store on the parent's `schema`: its sessions named by [`application`].
async fn child(schema: &str) -> (PgEventStore, Rows) {
    let options: PgConnectOptions = common::url().parse().expect("a valid PUP_POSTGRES_URL");
    let options = options.application_name(&application(schema));
    // Few connections: the tests of this file run at once, with several workers each, and the
    // server's 100 connections are shared with the other test binaries. (Out of connections, a
    // worker whose heartbeat connection was ended cannot open another one and gets evicted.)
    let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
    let store = PgEventStore::new(pool, StoreConfig::default().schema(schema).unwrap());
    (store.clone(), Rows(store))
}

pupsourcing_testkit::orchestrator_process_tests!(parent, child);

/// Ends every session of the worker processes on `schema`; returns how many, and how many of
/// them had last run a heartbeat (the heartbeat task's own connection).
async fn end_sessions(killer: &PgEventStore, schema: &str) -> (usize, usize) {
    let sql = "SELECT pg_terminate_backend(pid), query LIKE '%last_heartbeat = now()%' \
               FROM pg_stat_activity WHERE application_name = $1";
    let ended: Vec<(bool, bool)> = sqlx::query_as(sql)
        .bind(application(schema))
        .fetch_all(killer.pool())
        .await
        .unwrap_or_default();
    (ended.len(), ended.iter().filter(|(_, heartbeat)| *heartbeat).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_connection_is_survived() {
    if let Ok(schema) = std::env::var(CHILD_DATABASE) {
        let (store, rows) = child(&schema).await;
        return run_worker_process(store, rows).await;
    }
    let Some((schema, store, rows)) = parent().await else { return };
    let spawn = spawner("a_dropped_connection_is_survived", &schema);
    let killer = store.clone();
    let kill = || end_sessions(&killer, &schema);
    pupsourcing_testkit::orchestrator_processes::a_dropped_connection_is_survived(
        store, rows, spawn, kill,
    )
    .await;
}
