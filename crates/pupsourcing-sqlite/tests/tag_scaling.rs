//! Append time against the number of tags in a batch: it must grow linearly. Ignored by
//! default (it writes 160,000 events); run with
//! `cargo test --release -p pupsourcing-sqlite --test tag_scaling -- --ignored --nocapture`.

mod common;

use pupsourcing_core::StoreConfig;

async fn store_with(config: StoreConfig) -> Option<pupsourcing_sqlite::SqliteEventStore> {
    Some(common::file_store(config).await)
}

/// See `pupsourcing_testkit::scaling`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a measurement"]
async fn append_time_is_linear_in_tags() {
    pupsourcing_testkit::scaling::append_time_is_linear_in_tags(store_with).await;
}
