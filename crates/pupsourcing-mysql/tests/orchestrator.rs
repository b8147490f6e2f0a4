//! The orchestrator suite on MySQL / MariaDB: workers as tasks, each with its own store clone,
//! on one database with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);

pupsourcing_testkit::killed_child_process_test!(
    orchestrator::a_killed_worker_process_is_replaced, run_worker_until_killed;
    common::unique_database(), common::read_model::store_with_model
);

/// Heartbeats go through the dedicated store's own connection while processors hold every
/// pooled one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_survive_an_exhausted_pool() {
    use pupsourcing_core::{ConnectOptions, StoreConfig};
    use pupsourcing_mysql::MySqlEventStore;
    let database = common::unique_database();
    let Some((observer, model)) = common::read_model::store_with_model(&database).await else {
        return;
    };
    let config = StoreConfig::default().schema(&database).unwrap();
    let options = ConnectOptions::new().max_connections(2);
    let store = MySqlEventStore::connect_with(&common::url(), config, options).await.unwrap();
    let small = store.pool().clone();
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
