//! Append time against the number of tags in a batch: it must grow linearly. Ignored by
//! default (it writes 160,000 events); run with
//! `cargo test --release -p pupsourcing-postgres --test tag_scaling -- --ignored --nocapture`.

mod common;

use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::{NewEvent, StoreConfig};

async fn store_with(config: StoreConfig) -> Option<pupsourcing_postgres::PgEventStore> {
    common::store_with(config.schema(&common::unique_schema()).unwrap()).await
}

/// See `pupsourcing_testkit::scaling`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a measurement"]
async fn append_time_is_linear_in_tags() {
    pupsourcing_testkit::scaling::append_time_is_linear_in_tags(store_with).await;
}

/// A batch keeps each event's tags, in order (the function zips the flattened tags with their
/// events): mixed counts (the general path), one tag per event and no tags at all (the two
/// shortcuts of `{events}_tags_by_event`). Each event's tags are its own, so a shift shows.
#[tokio::test]
async fn mixed_tag_counts_keep_each_events_tags() {
    use pupsourcing_core::EventStore;
    let Some(store) = common::fresh_store().await else { return };
    let shapes: [&[usize]; 4] = [&[0, 2, 0, 0, 1, 5, 0, 3], &[1; 8], &[0; 8], &[1]];
    let mut from = 1;
    for counts in shapes {
        let events: Vec<NewEvent> = counts
            .iter()
            .enumerate()
            .map(|(e, &n)| {
                NewEvent::new("Tagged", b"{}".to_vec())
                    .with_tags((0..n).map(|i| format!("tag-{e}-{i}")))
            })
            .collect();
        store.append_if(&events, None).await.unwrap();
        let read = store.read_all(from, 100).await.unwrap();
        let stored: Vec<&Vec<String>> = read.iter().map(|e| &e.tags).collect();
        let sent: Vec<&Vec<String>> = events.iter().map(|e| &e.tags).collect();
        assert_eq!(stored, sent, "tag counts {counts:?}");
        from = read.last().unwrap().position + 1;
    }
}
