//! The orchestrator suite on PostgreSQL: workers as tasks, each with its own store clone, on
//! one schema with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);

/// The environment variable that makes this test binary the process-crash test's child.
const CHILD_SCHEMA: &str = "PUP_ORCHESTRATOR_CHILD_SCHEMA";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_process_is_replaced() {
    use common::read_model::store_with_model;
    if let Ok(schema) = std::env::var(CHILD_SCHEMA) {
        let (store, model) = store_with_model(&schema).await.expect("the parent reached it");
        return pupsourcing_testkit::orchestrator::run_worker_until_killed(store, model).await;
    }
    let schema = common::unique_schema();
    let Some((store, model)) = store_with_model(&schema).await else { return };
    pupsourcing_testkit::orchestrator::a_killed_worker_process_is_replaced(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["a_killed_worker_process_is_replaced", "--exact", "--nocapture"])
            .env(CHILD_SCHEMA, &schema)
            .spawn()
            .unwrap()
    })
    .await;
}
