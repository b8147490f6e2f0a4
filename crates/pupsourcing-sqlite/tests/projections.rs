//! The projection suite on SQLite, each test on a new database file with a read-model table,
//! and the crash test with a real child process killed by SIGKILL.

mod common;

use common::read_model::{Rows, fresh, store_with_model};
use pupsourcing_sqlite::SqliteEventStore;

pupsourcing_testkit::projection_conformance!(fresh);

/// A store with the read-model table on the database file `url`.
async fn open(url: &str) -> Option<(SqliteEventStore, Rows)> {
    Some(store_with_model(url).await)
}

pupsourcing_testkit::killed_child_process_test!(
    projections::killed_processor_resumes_exactly_once, run_until_killed;
    common::database_url().1, open
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}
