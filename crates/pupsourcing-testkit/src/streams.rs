//! Aggregate streams: versioning, expected versions, idempotency, atomicity, validation and
//! concurrent writers.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, NewEvent, StreamId, ValidationError, VersionRange,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::{event, new_stream};

fn types(events: &[pupsourcing_core::RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// Every field of the event model survives a round trip.
pub async fn round_trip_of_every_field<S: EventStore>(store: S) {
    let stream = new_stream();
    let created_at: DateTime<Utc> = "2024-02-29T12:34:56.123456Z".parse().unwrap();
    let full = NewEvent::new("Opened", vec![0u8, 159, 146, 150, 255])
        .with_event_version(3)
        .with_bounded_context("banking")
        .with_tags(["account:1", "customer:7"])
        .with_metadata(serde_json::json!({ "user": "ada", "n": [1, 2] }))
        .with_trace_id(Uuid::now_v7())
        .with_correlation_id(Uuid::now_v7())
        .with_causation_id(Uuid::now_v7())
        .with_created_at(created_at);
    let bare = NewEvent::new("Closed", Vec::new());
    let result = store
        .append(&stream, ExpectedVersion::NoStream, &[full.clone(), bare.clone()])
        .await
        .unwrap();
    assert_eq!(result.versions, vec![1, 2]);
    assert!(!result.replayed);

    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(read.len(), 2);
    let (got, got_bare) = (&read[0], &read[1]);
    assert_eq!(got.position, result.positions[0]);
    assert_eq!(got.event_id, full.event_id);
    assert_eq!(got.event_type, "Opened");
    assert_eq!(got.event_version, 3);
    assert_eq!(got.bounded_context.as_deref(), Some("banking"));
    assert_eq!(got.stream, Some((stream.clone(), 1)));
    assert_eq!(got.tags, full.tags);
    assert_eq!(got.payload, full.payload);
    assert_eq!(got.metadata, full.metadata);
    assert_eq!(got.trace_id, full.trace_id);
    assert_eq!(got.correlation_id, full.correlation_id);
    assert_eq!(got.causation_id, full.causation_id);
    assert_eq!(got.created_at, created_at);

    assert_eq!(got_bare.event_id, bare.event_id);
    assert_eq!(got_bare.bounded_context, None);
    assert!(got_bare.tags.is_empty() && got_bare.payload.is_empty());
    assert_eq!(got_bare.metadata, None);
    assert_eq!(got_bare.trace_id, None);
    assert_eq!(got_bare.created_at, bare.created_at.trunc_subsecs(6));
    assert_eq!(got_bare.aggregate_version(), Some(2));

    #[derive(serde::Deserialize, Debug)]
    struct Shape {
        #[allow(dead_code)]
        n: u32,
    }
    assert!(matches!(got.json::<Shape>(), Err(Error::Payload(_))), "bytes are not JSON");
    let typed = store.append(&stream, ExpectedVersion::Any, &[event("Typed")]).await.unwrap();
    let back = store.read_stream(&stream, VersionRange::from(3)).await.unwrap();
    assert_eq!(back[0].position, typed.positions[0]);
    back[0].json::<Shape>().expect("the JSON helper reads back what it wrote");
}

/// Versions start at 1, follow the stream's head, and positions grow across appends.
pub async fn versions_are_assigned_in_order<S: EventStore>(store: S) {
    let stream = new_stream();
    let other = new_stream();
    let a = store.append(&stream, ExpectedVersion::Any, &[event("A"), event("B")]).await.unwrap();
    let b = store.append(&other, ExpectedVersion::Any, &[event("X")]).await.unwrap();
    let c = store.append(&stream, ExpectedVersion::Any, &[event("C")]).await.unwrap();
    assert_eq!(a.versions, vec![1, 2]);
    assert_eq!(b.versions, vec![1]);
    assert_eq!(c.versions, vec![3]);
    assert!(a.positions[0] >= 1);
    assert!(a.last_position() < b.positions[0] && b.last_position() < c.positions[0]);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 3);
    assert_eq!(store.stream_version(&new_stream()).await.unwrap(), 0);
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(types(&read), ["A", "B", "C"]);
    let versions: Vec<_> = read.iter().map(|e| e.aggregate_version().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3]);
}

fn assert_conflict(
    result: pupsourcing_core::Result<impl std::fmt::Debug>,
    want_expected: ExpectedVersion,
    want_actual: i64,
) {
    match result {
        Err(Error::Concurrency { expected, actual, .. }) => {
            assert_eq!((expected, actual), (want_expected, want_actual));
        }
        other => panic!("expected a concurrency error, got {other:?}"),
    }
}

/// `NoStream`, `Exact(n)` and `Any`, each matching and not.
pub async fn expected_version_cases<S: EventStore>(store: S) {
    let stream = new_stream();
    assert_conflict(
        store.append(&stream, ExpectedVersion::Exact(2), &[event("A")]).await,
        ExpectedVersion::Exact(2),
        0,
    );
    store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    assert_conflict(
        store.append(&stream, ExpectedVersion::NoStream, &[event("B")]).await,
        ExpectedVersion::NoStream,
        1,
    );
    assert_conflict(
        store.append(&stream, ExpectedVersion::Exact(0), &[event("B")]).await,
        ExpectedVersion::Exact(0),
        1,
    );
    store.append(&stream, ExpectedVersion::Exact(1), &[event("B"), event("C")]).await.unwrap();
    assert_conflict(
        store.append(&stream, ExpectedVersion::Exact(2), &[event("D")]).await,
        ExpectedVersion::Exact(2),
        3,
    );
    assert_conflict(
        store.append(&stream, ExpectedVersion::Exact(4), &[event("D")]).await,
        ExpectedVersion::Exact(4),
        3,
    );
    store.append(&stream, ExpectedVersion::Any, &[event("D")]).await.unwrap();
    let fresh = new_stream();
    let r = store.append(&fresh, ExpectedVersion::Exact(0), &[event("A")]).await.unwrap();
    assert_eq!(r.versions, vec![1]);
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(types(&read), ["A", "B", "C", "D"], "failed appends wrote nothing");
    let err = store.append(&stream, ExpectedVersion::NoStream, &[event("E")]).await.unwrap_err();
    assert!(err.is_conflict());
    assert!(err.to_string().contains("expected no stream, actual version 4"), "{err}");
}

/// `from`/`to` are inclusive; empty and out-of-range ranges return nothing.
pub async fn version_range_reads<S: EventStore>(store: S) {
    let stream = new_stream();
    let batch: Vec<_> = (1..=6).map(|i| event(&format!("E{i}"))).collect();
    store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    let read = |range| {
        let store = store.clone();
        let stream = stream.clone();
        async move {
            types(&store.read_stream(&stream, range).await.unwrap())
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(read(VersionRange::from(5)).await, ["E5", "E6"]);
    assert_eq!(read(VersionRange::between(2, 4)).await, ["E2", "E3", "E4"]);
    assert_eq!(read(VersionRange::between(3, 3)).await, ["E3"]);
    assert_eq!(read(VersionRange { from: None, to: Some(2) }).await, ["E1", "E2"]);
    assert!(read(VersionRange::between(4, 3)).await.is_empty());
    assert!(read(VersionRange::from(7)).await.is_empty());
    assert!(store.read_stream(&new_stream(), VersionRange::all()).await.unwrap().is_empty());
}

/// Re-appending stored events returns the original positions and writes nothing new; a batch
/// mixing stored and new ids is refused whole.
pub async fn idempotent_reappend<S: EventStore>(store: S) {
    let stream = new_stream();
    let batch = [event("A"), event("B")];
    let first = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    store.append(&stream, ExpectedVersion::Any, &[event("C")]).await.unwrap();
    let stored = store.read_all(1, 100).await.unwrap();

    // Same ids, even with an expected version that would now fail: a replay, not a conflict.
    let again = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.positions, again.versions),
        (first.positions.clone(), first.versions.clone())
    );

    let mixed = [batch[0].clone(), event("New")];
    match store.append(&stream, ExpectedVersion::Any, &mixed).await {
        Err(Error::PartialDuplicate { stored: 1, total: 2, first }) => {
            assert_eq!(first, batch[0].event_id)
        }
        other => panic!("expected PartialDuplicate, got {other:?}"),
    }
    // Some ids stored and a failed expected version: the conflict is reported, on every
    // backend alike (the server backends find stored ids only when an insert fails).
    match store.append(&stream, ExpectedVersion::NoStream, &mixed).await {
        Err(Error::Concurrency { actual: 3, .. }) => {}
        other => panic!("expected the conflict, got {other:?}"),
    }
    // The same ids appended to another stream are still the same events.
    let elsewhere = store.append(&new_stream(), ExpectedVersion::Any, &batch).await.unwrap();
    assert!(elsewhere.replayed);
    assert_eq!(elsewhere.positions, first.positions);

    assert_eq!(store.read_all(1, 100).await.unwrap(), stored, "no event was written");
    assert_eq!(store.stream_version(&stream).await.unwrap(), 3);
}

/// A batch refused by the database side (conflict, duplicate ids) leaves no trace.
pub async fn rejected_batches_write_nothing<S: EventStore>(store: S) {
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    let big: Vec<_> = (0..50).map(|_| event("Big")).collect();
    assert!(store.append(&stream, ExpectedVersion::Exact(7), &big).await.is_err());
    let stored = store.read_stream(&stream, VersionRange::from(1)).await.unwrap();
    let mut partial = big.clone();
    partial[49] = NewEvent { event_id: stored[0].event_id, ..partial[49].clone() };
    assert!(matches!(
        store.append(&stream, ExpectedVersion::Any, &partial).await,
        Err(Error::PartialDuplicate { .. })
    ));
    // Rejected appends may leave gaps in positions, never events.
    assert_eq!(store.read_all(1, 1000).await.unwrap().len(), 1);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);
}

/// Invalid input is refused with a typed error before anything is written.
pub async fn validation_errors_write_nothing<S: EventStore>(store: S) {
    let stream = new_stream();
    let invalid = |err: Error| match err {
        Error::Validation(v) => v,
        other => panic!("expected a validation error, got {other:?}"),
    };
    let e = |r: pupsourcing_core::Result<_>| invalid(r.unwrap_err());
    assert_eq!(
        e(store.append(&stream, ExpectedVersion::Any, &[]).await),
        ValidationError::EmptyBatch
    );
    let too_many: Vec<_> = (0..1001).map(|_| event("X")).collect();
    assert!(matches!(
        e(store.append(&stream, ExpectedVersion::Any, &too_many).await),
        ValidationError::BatchTooLarge { len: 1001, max: 1000 }
    ));
    assert_eq!(
        e(store
            .append(&stream, ExpectedVersion::Any, &[event("ok"), NewEvent::new("", vec![])])
            .await),
        ValidationError::Empty { field: "event type" }
    );
    assert!(matches!(
        e(store
            .append(&stream, ExpectedVersion::Any, &[NewEvent::new("x".repeat(300), vec![])])
            .await),
        ValidationError::TooLong { .. }
    ));
    assert!(matches!(
        e(store
            .append(&StreamId::new("", Uuid::now_v7()), ExpectedVersion::Any, &[event("A")])
            .await),
        ValidationError::Empty { .. }
    ));
    assert!(matches!(
        e(store.append(&stream, ExpectedVersion::Any, &[event("A").with_tags(["t", "t"])]).await),
        ValidationError::DuplicateTag(_)
    ));
    assert!(matches!(
        e(store.append(&stream, ExpectedVersion::Exact(-3), &[event("A")]).await),
        ValidationError::OutOfRange { .. }
    ));
    assert_eq!(store.head().await.unwrap(), 0);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);
}

/// Appends join the caller's transaction: two streams commit together or not at all.
pub async fn caller_transaction_spans_streams<S: EventStore>(store: S) {
    let (a, b) = (new_stream(), new_stream());
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &a, ExpectedVersion::NoStream, &[event("A1")]).await.unwrap();
    store.append_in(&mut tx, &b, ExpectedVersion::NoStream, &[event("B1")]).await.unwrap();
    let inside = store.read_stream_in(&mut tx, &a, VersionRange::all()).await.unwrap();
    assert_eq!(types(&inside), ["A1"], "the transaction sees its own append");
    drop(tx); // rolled back
    assert_eq!(store.stream_version(&a).await.unwrap(), 0);
    assert_eq!(store.stream_version(&b).await.unwrap(), 0);
    assert!(store.read_all(1, 10).await.unwrap().is_empty(), "nothing of the rollback is visible");

    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &a, ExpectedVersion::NoStream, &[event("A1")]).await.unwrap();
    store.append_in(&mut tx, &b, ExpectedVersion::NoStream, &[event("B1")]).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(store.stream_version(&a).await.unwrap(), 1);
    assert_eq!(store.stream_version(&b).await.unwrap(), 1);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
}

const RACERS: usize = 8;
const ROUNDS: usize = 25;

/// 8 tasks append with the same `Exact(v)` at once, many rounds: exactly one wins each round,
/// every loser gets the typed conflict, and the stream's versions have no gap or duplicate.
pub async fn concurrent_exact_appends_have_one_winner<S: EventStore>(store: S) {
    let stream = new_stream();
    for round in 0..ROUNDS as i64 {
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.append(&stream, ExpectedVersion::Exact(round), &[event("Raced")]).await
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(r) => {
                    wins += 1;
                    assert_eq!(r.versions, vec![round + 1]);
                }
                Err(Error::Concurrency { expected, actual, .. }) => {
                    assert_eq!(expected, ExpectedVersion::Exact(round));
                    assert_eq!(actual, round + 1);
                }
                Err(other) => panic!("round {round}: unexpected error {other}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one racer wins");
    }
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    let versions: Vec<_> = read.iter().map(|e| e.aggregate_version().unwrap()).collect();
    assert_eq!(versions, (1..=ROUNDS as i64).collect::<Vec<_>>());
}

/// 8 tasks append with `Any` at once: all succeed and versions stay dense and unique.
pub async fn concurrent_any_appends_never_skip_a_version<S: EventStore>(store: S) {
    let stream = new_stream();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                for _ in 0..ROUNDS {
                    let r = store
                        .append(&stream, ExpectedVersion::Any, &[event("A"), event("B")])
                        .await
                        .unwrap();
                    assert_eq!(
                        r.versions[1],
                        r.versions[0] + 1,
                        "a batch gets consecutive versions"
                    );
                    mine.extend(r.versions);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for racer in racers {
        all.extend(racer.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=(RACERS * ROUNDS * 2) as i64).collect::<Vec<_>>());
    assert_eq!(store.stream_version(&stream).await.unwrap(), (RACERS * ROUNDS * 2) as i64);
}
