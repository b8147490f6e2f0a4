//! The orchestrator suite on SQLite: workers as tasks, each with its own store clone, on one
//! database file with a read-model table.

mod common;

use common::read_model::{Rows, fresh};
use pupsourcing_sqlite::SqliteEventStore;

pupsourcing_testkit::orchestrator_conformance!(fresh);

/// A store with the read-model table on the database file `url`.
async fn open(url: &str) -> Option<(SqliteEventStore, Rows)> {
    Some(common::read_model::store_with_model(url).await)
}

pupsourcing_testkit::killed_child_process_test!(
    orchestrator::a_killed_worker_process_is_replaced, run_worker_until_killed;
    common::database_url().1, open
);
