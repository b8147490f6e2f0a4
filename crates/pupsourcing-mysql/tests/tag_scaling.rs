//! Append time against the number of tags in a batch: it must grow linearly. Ignored by
//! default; run with
//! `cargo test --release -p pupsourcing-mysql --test tag_scaling -- --ignored --nocapture`.

mod common;

/// See `pupsourcing_testkit::scaling`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a measurement"]
async fn append_time_is_linear_in_tags() {
    pupsourcing_testkit::scaling::append_time_is_linear_in_tags(common::store_with).await;
}
