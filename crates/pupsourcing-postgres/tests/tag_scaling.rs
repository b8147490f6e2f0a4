//! Append time against the number of tags in a batch: it must grow linearly. Ignored by
//! default (it writes 160,000 events); run with
//! `cargo test --release -p pupsourcing-postgres --test tag_scaling -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem};
use pupsourcing_core::{NewEvent, StoreConfig};

fn tagged(tags: usize) -> NewEvent {
    let tags: Vec<String> =
        (0..tags).map(|i| format!("tag-{i}-{}", uuid::Uuid::now_v7())).collect();
    NewEvent::new("Tagged", b"{}".to_vec()).with_tags(tags)
}

/// Batches of 10,000 to 100,000 events with one tag each, and one event with 300 to 3,000
/// tags (also under a condition): prints the time of each, and fails when ten times the tags take over 30 times as
/// long (quadratic growth takes 100 times as long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a measurement"]
async fn append_time_is_linear_in_tags() {
    let schema = common::unique_schema();
    let config = StoreConfig::default().schema(&schema).unwrap().max_batch_size(100_000);
    let Some(store) = common::store_with(config).await else { return };
    let time = |events: Vec<NewEvent>| {
        let store = store.clone();
        async move {
            let start = Instant::now();
            store.append_if(&events, None).await.unwrap();
            start.elapsed()
        }
    };
    let mut batch = Vec::new();
    for n in [10_000, 50_000, 100_000] {
        let elapsed = time((0..n).map(|_| tagged(1)).collect()).await;
        println!("{n} events with 1 tag each: {elapsed:?}");
        batch.push(elapsed);
    }
    let mut wide = Vec::new();
    for n in [300, 3_000] {
        let elapsed = time(vec![tagged(n)]).await;
        println!("1 event with {n} tags: {elapsed:?}");
        wide.push(elapsed);
    }
    for n in [300, 3_000] {
        let event = tagged(n);
        let query = Query::from_items([QueryItem::tags([event.tags[0].as_str()])]);
        let condition = AppendCondition::none_match(query);
        let start = Instant::now();
        store.append_if(&[event], Some(&condition)).await.unwrap();
        println!("1 event with {n} tags, conditional: {:?}", start.elapsed());
    }
    assert!(batch[2] < batch[0] * 30, "batches grow faster than linearly: {batch:?}");
    assert!(wide[1] < wide[0] * 30, "tags of one event grow faster than linearly: {wide:?}");
}

/// A batch mixing events without tags and with several keeps each event's tags, in order
/// (the function zips the flattened tags with their events).
#[tokio::test]
async fn mixed_tag_counts_keep_each_events_tags() {
    use pupsourcing_core::EventStore;
    let Some(store) = common::fresh_store().await else { return };
    let counts = [0, 2, 0, 0, 1, 5, 0, 3];
    let events: Vec<NewEvent> = counts.iter().map(|&n| tagged(n)).collect();
    store.append_if(&events, None).await.unwrap();
    let read = store.read_all(1, 100).await.unwrap();
    let stored: Vec<&Vec<String>> = read.iter().map(|e| &e.tags).collect();
    let sent: Vec<&Vec<String>> = events.iter().map(|e| &e.tags).collect();
    assert_eq!(stored, sent);
}
