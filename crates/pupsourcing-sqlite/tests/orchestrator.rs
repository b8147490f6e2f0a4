//! The orchestrator suite on SQLite: workers as tasks, each with its own store clone, on one
//! database file with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);

/// The environment variable that makes this test binary the process-crash test's child.
const CHILD_DATABASE: &str = "PUP_ORCHESTRATOR_CHILD_DATABASE";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_process_is_replaced() {
    use common::read_model::store_with_model;
    if let Ok(url) = std::env::var(CHILD_DATABASE) {
        let (store, model) = store_with_model(&url).await;
        return pupsourcing_testkit::orchestrator::run_worker_until_killed(store, model).await;
    }
    let (_, url) = common::database_url();
    let (store, model) = store_with_model(&url).await;
    pupsourcing_testkit::orchestrator::a_killed_worker_process_is_replaced(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["a_killed_worker_process_is_replaced", "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &url)
            .spawn()
            .unwrap()
    })
    .await;
}
