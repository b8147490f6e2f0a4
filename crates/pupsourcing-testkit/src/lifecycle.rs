//! Transactions and time limits: what an error or a rollback promises about what is stored.

use std::time::Duration;

use pupsourcing_core::{Error, EventStore, ExpectedVersion, VersionRange};

use crate::fixtures::{event, new_stream};

/// [`EventStore::rollback`] discards everything the transaction appended.
pub async fn rollback_discards_the_transaction<S: EventStore>(store: S) {
    let (kept, dropped) = (new_stream(), new_stream());
    store.append(&kept, ExpectedVersion::NoStream, &[event("Kept")]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &dropped, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    store.append_in(&mut tx, &kept, ExpectedVersion::Exact(1), &[event("B")]).await.unwrap();
    store.rollback(tx).await.unwrap();
    assert_eq!(store.stream_version(&dropped).await.unwrap(), 0);
    assert_eq!(store.stream_version(&kept).await.unwrap(), 1);
    assert!(store.read_stream(&dropped, VersionRange::all()).await.unwrap().is_empty());
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 1);
    // The streams are usable afterwards, at the versions before the transaction.
    store.append(&dropped, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    store.append(&kept, ExpectedVersion::Exact(1), &[event("B")]).await.unwrap();
}

/// The append time limits of the statistical test: from far below a round trip (every append
/// times out, at any step) to a few milliseconds (most finish, some while committing).
pub const APPEND_LIMITS: [Duration; 10] = [
    Duration::from_micros(1),
    Duration::from_micros(10),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(200),
    Duration::from_micros(400),
    Duration::from_micros(700),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(3),
];

/// What [`timed_out_appends_wrote_nothing`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeoutCounts {
    /// Appends that succeeded.
    pub appended: usize,
    /// Appends that failed with [`Error::Timeout`] (and wrote nothing).
    pub timed_out: usize,
}

/// Every [`Error::Timeout`] of `limited` (a store whose `append_timeout` is set) means that
/// nothing was written. Four tasks append `per_task` single events and pairs to new streams;
/// after each timeout the same events are appended again through `unlimited` (the same
/// database, no limit): idempotency decides, and a `replayed` result means the timed-out
/// append was written after all.
pub async fn timed_out_appends_wrote_nothing<S: EventStore>(
    limited: S,
    unlimited: S,
    per_task: usize,
) -> TimeoutCounts {
    let tasks = (0..4).map(|task| {
        let (limited, unlimited) = (limited.clone(), unlimited.clone());
        tokio::spawn(async move {
            let mut counts = TimeoutCounts::default();
            for i in 0..per_task {
                let stream = new_stream();
                let events: Vec<_> = (0..=(task + i) % 2).map(|_| event("Timed")).collect();
                match limited.append(&stream, ExpectedVersion::Any, &events).await {
                    Ok(_) => counts.appended += 1,
                    Err(Error::Timeout) => {
                        counts.timed_out += 1;
                        let again = unlimited
                            .append(&stream, ExpectedVersion::Any, &events)
                            .await
                            .expect("the retry appends");
                        assert!(
                            !again.replayed,
                            "an append that returned Timeout was written (stream {stream})"
                        );
                    }
                    Err(other) => panic!("unexpected error: {other:?}"),
                }
            }
            counts
        })
    });
    let mut total = TimeoutCounts::default();
    for task in tasks.collect::<Vec<_>>() {
        let counts = task.await.expect("the task ends without a panic");
        total.appended += counts.appended;
        total.timed_out += counts.timed_out;
    }
    total
}

/// [`EventStore::read_all_in`] reads the log on the caller's connection: inside a transaction
/// it sees that transaction's own appends (which other sessions do not see until it commits),
/// and pages continue from a position like `read_all`.
pub async fn read_all_in_reads_the_transactions_own_appends<S: EventStore>(store: S) {
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::NoStream, &[event("Before")]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let batch = [event("Mine"), event("Mine")];
    let written = store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &batch).await;
    let written = written.unwrap();
    let inside = store.read_all_in(&mut tx, 1, 10).await.unwrap();
    let ids: Vec<_> = inside.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 3, "the transaction reads the log and its own appends");
    assert_eq!(&ids[1..], [batch[0].event_id, batch[1].event_id]);
    let page = store.read_all_in(&mut tx, written.positions[1], 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 1, "others see only what committed");
    store.commit(tx).await.unwrap();
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 3);
}
