//! The orchestrator suite on PostgreSQL: workers as tasks, each with its own store clone, on
//! one schema with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);

pupsourcing_testkit::killed_child_process_test!(
    orchestrator::a_killed_worker_process_is_replaced, run_worker_until_killed;
    common::unique_schema(), common::read_model::store_with_model
);

/// PostgreSQL only: SQLite's dedicated store is the store itself (one writer at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_survive_an_exhausted_pool() {
    use pupsourcing_core::StoreConfig;
    use pupsourcing_postgres::PgEventStore;
    use sqlx::postgres::PgPoolOptions;
    let schema = common::unique_schema();
    let Some((observer, model)) = common::read_model::store_with_model(&schema).await else {
        return;
    };
    let small = PgPoolOptions::new().max_connections(2).connect(&common::url()).await.unwrap();
    let config = StoreConfig::default().schema(&schema).unwrap();
    let store = PgEventStore::new(small.clone(), config);
    let hold = |how_long| async move {
        let (first, second) = (small.acquire().await.unwrap(), small.acquire().await.unwrap());
        tokio::time::sleep(how_long).await;
        drop((first, second));
    };
    pupsourcing_testkit::orchestrator::heartbeats_survive_an_exhausted_pool(
        store, model, observer, hold,
    )
    .await;
}
