//! The orchestrator suite on MySQL / MariaDB: workers as tasks, each with its own store clone,
//! on one database with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);

/// The environment variable that makes this test binary the process-crash test's child.
const CHILD_DATABASE: &str = "PUP_ORCHESTRATOR_CHILD_DATABASE";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_process_is_replaced() {
    use common::read_model::store_with_model;
    if let Ok(database) = std::env::var(CHILD_DATABASE) {
        let (store, model) = store_with_model(&database).await.expect("the parent reached it");
        return pupsourcing_testkit::orchestrator::run_worker_until_killed(store, model).await;
    }
    let database = common::unique_database();
    let Some((store, model)) = store_with_model(&database).await else { return };
    pupsourcing_testkit::orchestrator::a_killed_worker_process_is_replaced(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["a_killed_worker_process_is_replaced", "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &database)
            .spawn()
            .unwrap()
    })
    .await;
}

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
