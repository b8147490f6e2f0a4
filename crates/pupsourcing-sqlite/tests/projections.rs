//! The projection suite on SQLite, each test on a new database file with a read-model table,
//! and the crash test with a real child process killed by SIGKILL.

mod common;

use common::read_model::{fresh, store_with_model};

pupsourcing_testkit::projection_conformance!(fresh);

/// The environment variable that makes this test binary the crash test's child.
const CHILD_DATABASE: &str = "PUP_CRASH_CHILD_DATABASE";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_processor_resumes_exactly_once() {
    if let Ok(url) = std::env::var(CHILD_DATABASE) {
        let (store, model) = store_with_model(&url).await;
        return pupsourcing_testkit::projections::run_until_killed(store, model).await;
    }
    let (_, url) = common::database_url();
    let (store, model) = store_with_model(&url).await;
    pupsourcing_testkit::projections::killed_processor_resumes_exactly_once(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["killed_processor_resumes_exactly_once", "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &url)
            .spawn()
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}
