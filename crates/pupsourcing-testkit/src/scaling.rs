//! Measurements that must grow linearly: append time against the number of tags in a batch.
//! Slow, so backends run them as ignored tests (`-- --ignored --nocapture` prints the times).

use std::future::Future;
use std::time::Instant;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem};
use pupsourcing_core::{Limits, NewEvent, StoreConfig};

fn tagged(tags: usize) -> NewEvent {
    let tags: Vec<String> =
        (0..tags).map(|i| format!("tag-{i}-{}", uuid::Uuid::now_v7())).collect();
    NewEvent::new("Tagged", b"{}".to_vec()).with_tags(tags)
}

/// Batches of 10,000 to 100,000 events with one tag each, and one event with 100 and 1,000
/// tags (also under a condition): prints the time of each, and fails when ten times the tags
/// take over 30 times as long (quadratic growth takes 100 times as long). `make` builds a store
/// with the given configuration (`None` skips).
pub async fn append_time_is_linear_in_tags<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Option<S>>,
{
    let limits = Limits { max_batch_size: 100_000, max_tags_per_event: 1000, ..Limits::default() };
    let Some(store) = make(StoreConfig { limits, ..StoreConfig::default() }).await else {
        return;
    };
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
    for n in [100, 1_000] {
        let elapsed = time(vec![tagged(n)]).await;
        println!("1 event with {n} tags: {elapsed:?}");
        wide.push(elapsed);
    }
    for n in [100, 1_000] {
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
