//! The global log: head, paged and streamed reads, and the gap-free guarantee under writers that
//! commit out of order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pupsourcing_core::{EventStore, ExpectedVersion, Position, StreamId};
use rand::Rng;
use uuid::Uuid;

use crate::fixtures::{event, new_stream, stress_duration};

/// An empty store has head 0 and reads nothing.
pub async fn empty_store<S: EventStore>(store: S) {
    assert_eq!(store.head().await.unwrap(), 0);
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    assert!(store.read_all(1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_all(1, 10).count().await, 0);
}

/// `read_all` pages from an inclusive position; `stream_all` yields the same events in order.
pub async fn read_all_pages_and_streams<S: EventStore>(store: S) {
    let mut written = Vec::new();
    for i in 0..7 {
        let batch: Vec<_> = (0..3).map(|_| event(&format!("E{i}"))).collect();
        let r = store.append(&new_stream(), ExpectedVersion::Any, &batch).await.unwrap();
        written.extend(r.positions);
    }
    assert_eq!(store.head().await.unwrap(), *written.last().unwrap());

    let mut paged = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        paged.extend(page.iter().map(|e| e.position));
    }
    assert_eq!(paged, written);

    let from_middle = store.read_all(written[5], 2).await.unwrap();
    assert_eq!(from_middle.iter().map(|e| e.position).collect::<Vec<_>>(), &written[5..7]);
    assert!(store.read_all(written[20] + 1, 10).await.unwrap().is_empty());
    assert!(store.read_all(1, 0).await.unwrap().is_empty(), "limit 0 reads nothing");

    let streamed: Vec<_> =
        store.stream_all(written[2], 5).map(|e| e.unwrap().position).collect().await;
    assert_eq!(streamed, &written[2..]);
}

/// Each append's positions form one contiguous block, even with concurrent batch writers.
pub async fn batch_positions_are_contiguous<S: EventStore>(store: S) {
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut blocks = Vec::new();
                for _ in 0..20 {
                    let batch: Vec<_> = (0..5).map(|_| event("Block")).collect();
                    let r =
                        store.append(&new_stream(), ExpectedVersion::Any, &batch).await.unwrap();
                    blocks.push(r.positions);
                }
                blocks
            })
        })
        .collect();
    for writer in writers {
        for block in writer.await.unwrap() {
            let expected: Vec<Position> = (block[0]..block[0] + 5).collect();
            assert_eq!(block, expected, "one append, one contiguous block");
        }
    }
}

/// Writers hold transactions open for random times and commit out of order (some roll back)
/// while a reader tails the log from its checkpoint. The reader must see every committed event
/// exactly once, in increasing order, and never a rolled-back one.
pub async fn out_of_order_commits_are_never_skipped<S: EventStore>(store: S) {
    const WRITERS: usize = 8;
    let deadline = Instant::now() + stress_duration();
    let writing = Arc::new(AtomicBool::new(true));

    let reader = crate::spawn_tail(store.clone(), writing.clone(), 50);

    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                let mut rolled_back = Vec::new();
                let streams: Vec<StreamId> = (0..3).map(|_| new_stream()).collect();
                while Instant::now() < deadline {
                    let (count, hold_ms, commit, stream) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(1..=3),
                            rng.random_range(0..8),
                            rng.random_bool(0.8),
                            rng.random_range(0..3),
                        )
                    };
                    let batch: Vec<_> = (0..count).map(|_| event("Tick")).collect();
                    let mut tx = store.begin().await.unwrap();
                    store
                        .append_in(&mut tx, &streams[stream], ExpectedVersion::Any, &batch)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    let ids = batch.iter().map(|e| e.event_id);
                    if commit {
                        store.commit(tx).await.unwrap();
                        committed.extend(ids);
                    } else {
                        drop(tx);
                        rolled_back.extend(ids);
                    }
                }
                (committed, rolled_back)
            })
        })
        .collect();

    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    for writer in writers {
        let (c, r) = writer.await.unwrap();
        committed.extend(c);
        rolled_back.extend(r);
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "positions strictly increase");
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for (_, id) in &seen {
        *counts.entry(*id).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "no event is seen twice");
    let seen_ids: HashSet<Uuid> = counts.into_keys().collect();
    assert!(seen_ids.is_disjoint(&rolled_back), "a rolled-back event was seen");
    let missed = committed.difference(&seen_ids).count();
    assert_eq!(missed, 0, "the reader missed {missed} of {} committed events", committed.len());
    assert_eq!(seen_ids.len(), committed.len());
    assert!(
        committed.len() > 100,
        "the test ran long enough to mean something ({})",
        committed.len()
    );
    eprintln!(
        "out-of-order test: {} committed, {} rolled back, all seen once",
        committed.len(),
        rolled_back.len()
    );
}
