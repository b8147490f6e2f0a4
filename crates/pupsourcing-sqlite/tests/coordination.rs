//! The orchestrator's coordination store on SQLite: workers and heartbeats, stale-worker cleanup
//! by the database clock, the Recreate generation (compare-and-set, raced), shard assignment
//! (compare-and-set, raced) and fencing of batch commits, on database files shared by several
//! stores as several worker processes would share them. The testkit's backend-generic
//! coordination suite runs here too, but for one test (see [`testkit`]).

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{database_url, file_store};
use pupsourcing_core::coordination::{
    CoordinationStore, Fence, RecreatePhase, ShardId, WorkerState,
};
use pupsourcing_core::projection::{Partition, ProjectionStore};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, ValidationError,
};
use pupsourcing_sqlite::{SqliteEventStore, sqlx};

/// The idle limit of a batch transaction in these tests (long: no test sits idle that long).
const LEASE: Duration = Duration::from_secs(60);

// The testkit's coordination suite (without `a_fenced_out_owner_cannot_commit`, which
// reassigns a shard while the old owner's write transaction is open: SQLite's single writer
// cannot interleave that; `a_reassigned_shard_fences_out_its_old_owner` below covers the same
// assertions with the owner pausing outside its transaction).
pupsourcing_testkit::coordination_conformance!(common::fresh_store);

fn shard(projection: &str, shard: u32, count: u32) -> ShardId {
    ShardId { projection: projection.to_string(), shard, count }
}

/// Two stores (two pools, as two processes would have) on one new, migrated database file.
async fn two_stores() -> (SqliteEventStore, SqliteEventStore) {
    let (_, url) = database_url();
    let a = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    (a, b)
}

async fn store() -> SqliteEventStore {
    file_store(StoreConfig::default()).await
}

/// The shard row of `id`.
async fn shard_row(
    store: &SqliteEventStore,
    id: &ShardId,
) -> pupsourcing_core::coordination::Shard {
    store.shards().await.unwrap().into_iter().find(|s| &s.id == id).expect("the shard exists")
}

/// The fence of a shard assigned to `owner` from its current epoch.
async fn take(store: &SqliteEventStore, id: &ShardId, owner: &str) -> Fence {
    let epoch = shard_row(store, id).await.epoch;
    store.assign_shard(id, epoch, Some(owner)).await.unwrap().expect("the epoch did not move")
}

/// A batch commit as the orchestrator makes it: the handler's write (an event here) and the
/// shard's checkpoint in one write transaction, committed only if the fence holds.
async fn commit_batch(
    store: &SqliteEventStore,
    id: &ShardId,
    fence: &Fence,
    from: i64,
    to: i64,
) -> bool {
    let mut tx = store.begin().await.unwrap();
    let event = NewEvent::new("Handled", b"{}".to_vec());
    store
        .append_in(
            &mut tx,
            &StreamId::new("ReadModel", uuid::Uuid::new_v4()),
            ExpectedVersion::Any,
            &[event],
        )
        .await
        .unwrap();
    if store.advance_shard_in(&mut tx, id, fence, from, to, LEASE).await.unwrap() {
        store.commit(tx).await.unwrap();
        true
    } else {
        store.rollback(tx).await.unwrap();
        false
    }
}

#[tokio::test]
async fn workers_register_heartbeat_and_leave() {
    let store = store().await;
    assert!(store.workers().await.unwrap().is_empty());

    let before = Utc::now() - chrono::Duration::seconds(1);
    store.register_worker("host-a", 3, WorkerState::Starting).await.unwrap();
    let workers = store.workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    let w = &workers[0];
    assert_eq!((w.id.as_str(), w.generation, w.state), ("host-a", 3, WorkerState::Starting));
    assert_eq!(w.started_at, w.last_heartbeat);
    let after = Utc::now() + chrono::Duration::seconds(1);
    assert!(w.started_at > before && w.started_at < after, "the database clock is this host's");

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.heartbeat("host-a", WorkerState::Running).await.unwrap());
    let beat = store.workers().await.unwrap().remove(0);
    assert_eq!(beat.state, WorkerState::Running);
    assert_eq!(beat.started_at, w.started_at);
    assert!(beat.last_heartbeat > w.last_heartbeat, "{beat:?} after {w:?}");

    // Registering again replaces the row.
    store.register_worker("host-b", 3, WorkerState::Ready).await.unwrap();
    store.register_worker("host-a", 4, WorkerState::Ready).await.unwrap();
    let workers = store.workers().await.unwrap();
    let ids: Vec<_> = workers.iter().map(|w| (w.id.as_str(), w.generation, w.state)).collect();
    assert_eq!(ids, [("host-a", 4, WorkerState::Ready), ("host-b", 3, WorkerState::Ready)]);

    store.remove_worker("host-a").await.unwrap();
    assert!(!store.heartbeat("host-a", WorkerState::Running).await.unwrap(), "it was removed");
    assert!(store.heartbeat("host-b", WorkerState::Running).await.unwrap());
    let ids: Vec<_> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["host-b"]);
    store.remove_worker("nobody").await.unwrap();
}

#[tokio::test]
async fn bad_input_is_a_validation_error() {
    let store = store().await;
    fn invalid<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(Error::Validation(_)))
    }
    assert!(matches!(
        store.register_worker("", 1, WorkerState::Starting).await,
        Err(Error::Validation(ValidationError::Empty { field: "worker id" }))
    ));
    assert!(matches!(
        store.heartbeat("a\0b", WorkerState::Running).await,
        Err(Error::Validation(ValidationError::NulCharacter { field: "worker id" }))
    ));
    assert!(invalid(store.remove_worker("").await));
    assert!(invalid(store.ensure_shards("", 2, 0).await));
    assert!(invalid(store.ensure_shards("p", 0, 0).await));
    assert!(invalid(store.ensure_shards("p", Partition::MAX_COUNT + 1, 0).await));
    assert!(invalid(store.ensure_shards("p", 2, -1).await));
    assert!(invalid(store.assign_shard(&shard("p", 2, 2), 0, Some("w")).await));
    assert!(invalid(store.assign_shard(&shard("p", 0, 2), 0, Some("")).await));
    let mut tx = store.begin().await.unwrap();
    let fence = Fence { owner: "w".into(), epoch: 1 };
    assert!(invalid(store.advance_shard_in(&mut tx, &shard("p", 0, 0), &fence, 0, 1, LEASE).await));
    assert!(invalid(
        store.advance_shard_in(&mut tx, &shard("p\0", 0, 1), &fence, 0, 1, LEASE).await
    ));
    store.rollback(tx).await.unwrap();
    assert!(store.shards().await.unwrap().is_empty(), "nothing was written");
}

#[tokio::test]
async fn stale_workers_are_removed_by_the_database_clock_and_their_shards_released() {
    let store = store().await;
    store.register_worker("gone", 1, WorkerState::Running).await.unwrap();
    store.register_worker("alive", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("p", 3, 0).await.unwrap();
    let (s0, s1, s2) = (shard("p", 0, 3), shard("p", 1, 3), shard("p", 2, 3));
    let gone = take(&store, &s0, "gone").await;
    take(&store, &s1, "gone").await;
    let alive = take(&store, &s2, "alive").await;
    assert_eq!(gone.epoch, 1);

    // Nobody is stale yet.
    assert!(store.remove_stale_workers(Duration::from_secs(30)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.heartbeat("alive", WorkerState::Running).await.unwrap());
    let removed = store.remove_stale_workers(Duration::from_millis(200)).await.unwrap();
    assert_eq!(removed, ["gone"]);
    let ids: Vec<_> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["alive"]);

    for id in [&s0, &s1] {
        let row = shard_row(&store, id).await;
        assert_eq!((row.owner, row.epoch), (None, 2), "{id:?} released with its epoch bumped");
    }
    let row = shard_row(&store, &s2).await;
    assert_eq!((row.owner.as_deref(), row.epoch), (Some("alive"), 1), "untouched");

    // The stale worker cannot commit any more, even once it comes back under the same id.
    assert!(!store.heartbeat("gone", WorkerState::Running).await.unwrap());
    assert!(!commit_batch(&store, &s0, &gone, 0, 5).await);
    store.register_worker("gone", 1, WorkerState::Running).await.unwrap();
    assert!(!commit_batch(&store, &s0, &gone, 0, 5).await);
    assert!(commit_batch(&store, &s2, &alive, 0, 5).await);
    assert_eq!(shard_row(&store, &s0).await.position, 0);
    assert_eq!(shard_row(&store, &s2).await.position, 5);
}

/// The cutoff is SQLite's clock: a heartbeat stored in the future by the database's measure
/// is not stale, one stored an hour ago is, whatever this process thinks.
#[tokio::test]
async fn the_stale_cutoff_is_the_database_clock() {
    let store = store().await;
    store.register_worker("past", 1, WorkerState::Running).await.unwrap();
    store.register_worker("future", 1, WorkerState::Running).await.unwrap();
    for (id, shift) in [("past", "-3600 seconds"), ("future", "+3600 seconds")] {
        let sql = format!(
            "UPDATE workers SET last_heartbeat = \
             CAST(ROUND((julianday('now', '{shift}') - 2440587.5) * 86400000.0) AS INTEGER) * 1000 \
             WHERE worker_id = ?1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(store.write_pool()).await.unwrap();
    }
    let removed = store.remove_stale_workers(Duration::from_secs(1800)).await.unwrap();
    assert_eq!(removed, ["past"]);
    let removed = store.remove_stale_workers(Duration::ZERO).await.unwrap();
    assert!(removed.is_empty());
}

#[tokio::test]
async fn removing_a_worker_releases_its_shards() {
    let store = store().await;
    store.register_worker("a", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("p", 2, 0).await.unwrap();
    let (s0, s1) = (shard("p", 0, 2), shard("p", 1, 2));
    let fence = take(&store, &s0, "a").await;
    take(&store, &s1, "b").await;
    store.remove_worker("a").await.unwrap();
    let row = shard_row(&store, &s0).await;
    assert_eq!((row.owner, row.epoch), (None, 2));
    let row = shard_row(&store, &s1).await;
    assert_eq!((row.owner.as_deref(), row.epoch), (Some("b"), 1));
    assert!(!commit_batch(&store, &s0, &fence, 0, 1).await);
}

#[tokio::test]
async fn generations_move_by_compare_and_set() {
    let store = store().await;
    let g = store.generation().await.unwrap();
    assert_eq!((g.number, g.phase), (0, RecreatePhase::Running));

    assert_eq!(store.begin_generation(0).await.unwrap(), Some(1));
    let g = store.generation().await.unwrap();
    assert_eq!((g.number, g.phase), (1, RecreatePhase::Draining));
    assert_eq!(store.begin_generation(0).await.unwrap(), None, "generation 0 is over");
    assert_eq!(store.begin_generation(2).await.unwrap(), None, "generation 2 has not begun");
    assert!(!store.set_phase(0, RecreatePhase::Running).await.unwrap());
    assert!(store.set_phase(1, RecreatePhase::Running).await.unwrap());
    let g = store.generation().await.unwrap();
    assert_eq!((g.number, g.phase), (1, RecreatePhase::Running));
    assert_eq!(store.begin_generation(1).await.unwrap(), Some(2));
    assert_eq!(store.generation().await.unwrap().number, 2);

    // Migrating again leaves the generation alone.
    store.migrate().await.unwrap();
    assert_eq!(store.generation().await.unwrap().number, 2);
}

/// A database whose lock row is missing reads generation 0, running, and the first
/// generation still begins exactly once.
#[tokio::test]
async fn a_missing_lock_row_is_generation_zero() {
    let store = store().await;
    sqlx::query("DELETE FROM recreate_lock").execute(store.write_pool()).await.unwrap();
    let g = store.generation().await.unwrap();
    assert_eq!((g.number, g.phase), (0, RecreatePhase::Running));
    assert!(!store.set_phase(1, RecreatePhase::Draining).await.unwrap());
    assert_eq!(store.begin_generation(3).await.unwrap(), None);
    assert_eq!(store.generation().await.unwrap().number, 0);
    assert_eq!(store.begin_generation(0).await.unwrap(), Some(1));
    assert_eq!(store.begin_generation(0).await.unwrap(), None);

    sqlx::query("DELETE FROM recreate_lock").execute(store.write_pool()).await.unwrap();
    assert!(store.set_phase(0, RecreatePhase::Draining).await.unwrap());
    let g = store.generation().await.unwrap();
    assert_eq!((g.number, g.phase), (0, RecreatePhase::Draining));
}

/// Two workers (two stores on one file) race to begin the next generation from the same one,
/// 20 times: exactly one wins each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_generations_have_one_winner() {
    let (a, b) = two_stores().await;
    for round in 0..20 {
        let current = a.generation().await.unwrap().number;
        assert_eq!(current, round);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let race = |store: SqliteEventStore| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.begin_generation(current).await.unwrap()
            })
        };
        let (ra, rb) = (race(a.clone()), race(b.clone()));
        let results = [ra.await.unwrap(), rb.await.unwrap()];
        let winners: Vec<_> = results.iter().flatten().collect();
        assert_eq!(winners, [&(current + 1)], "round {round}: {results:?}");
    }
    assert_eq!(b.generation().await.unwrap().number, 20);
}

/// Two workers race to take the same shard from the epoch they both read, 20 times: exactly
/// one wins, and the shard ends with the winner at the epoch it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_assignments_have_one_winner() {
    let (a, b) = two_stores().await;
    let id = shard("p", 0, 1);
    a.ensure_shards("p", 1, 0).await.unwrap();
    for round in 0..20 {
        let epoch = shard_row(&a, &id).await.epoch;
        assert_eq!(epoch, round);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let race = |store: SqliteEventStore, owner: &'static str| {
            let (barrier, id) = (barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.assign_shard(&id, epoch, Some(owner)).await.unwrap()
            })
        };
        let (ra, rb) = (race(a.clone(), "a"), race(b.clone(), "b"));
        let results = [ra.await.unwrap(), rb.await.unwrap()];
        let winners: Vec<_> = results.iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(winners[0].epoch, epoch + 1);
        let row = shard_row(&b, &id).await;
        assert_eq!((row.owner.as_deref(), row.epoch), (Some(winners[0].owner.as_str()), epoch + 1));
    }
}

#[tokio::test]
async fn shards_are_created_once() {
    let store = store().await;
    store.ensure_shards("p", 3, 7).await.unwrap();
    store.ensure_shards("q", 1, 0).await.unwrap();
    let id = shard("p", 1, 3);
    store.register_worker("w", 1, WorkerState::Running).await.unwrap();
    let fence = take(&store, &id, "w").await;
    assert!(commit_batch(&store, &id, &fence, 7, 9).await);
    store.ensure_shards("p", 3, 0).await.unwrap();
    store.ensure_shards("p", 2, 9).await.unwrap();
    let rows: Vec<_> = store
        .shards()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.projection, s.id.count, s.id.shard, s.owner, s.epoch, s.position))
        .collect();
    let p = || "p".to_string();
    let w = Some("w".to_string());
    assert_eq!(
        rows,
        [
            // No rows of count 2 beside those of count 3: only a reshard changes a count.
            (p(), 3, 0, None, 0, 7),
            (p(), 3, 1, w, 1, 9),
            (p(), 3, 2, None, 0, 7),
            ("q".to_string(), 1, 0, None, 0, 0),
        ]
    );
    assert!(store.assign_shard(&shard("nope", 0, 1), 0, Some("w")).await.unwrap().is_none());
}

/// A worker that paused past its lease and lost its shard cannot commit its batch after the
/// new owner took over: its checkpoint move fails and its writes roll back.
#[tokio::test]
async fn a_reassigned_shard_fences_out_its_old_owner() {
    let (a, b) = two_stores().await;
    let id = shard("p", 0, 2);
    a.ensure_shards("p", 2, 0).await.unwrap();
    for worker in ["a", "b"] {
        a.register_worker(worker, 1, WorkerState::Running).await.unwrap();
    }
    let old = take(&a, &id, "a").await;
    assert!(commit_batch(&a, &id, &old, 0, 10).await);

    // Worker a pauses; its shard is given to b, which commits a batch.
    let new = b.assign_shard(&id, old.epoch, Some("b")).await.unwrap().unwrap();
    assert_eq!(new, Fence { owner: "b".into(), epoch: old.epoch + 1 });
    let head = a.head().await.unwrap();
    assert!(!commit_batch(&a, &id, &old, 10, 20).await, "the old owner is fenced out");
    assert_eq!(a.head().await.unwrap(), head, "its writes rolled back");
    assert!(commit_batch(&b, &id, &new, 10, 20).await);
    assert!(!commit_batch(&a, &id, &old, 20, 30).await);
    assert_eq!(shard_row(&a, &id).await.position, 20);

    // The shard comes back to a under a new assignment: only the new fence commits, even
    // though the owner is the same (the epoch moved).
    let released = b.assign_shard(&id, new.epoch, None).await.unwrap().unwrap();
    assert!(!commit_batch(&b, &id, &released, 20, 25).await, "nobody owns it");
    let again = take(&a, &id, "a").await;
    assert_eq!(again.epoch, old.epoch + 3);
    assert!(!commit_batch(&a, &id, &old, 20, 30).await, "the old epoch is fenced out");
    assert!(!commit_batch(&b, &id, &new, 20, 30).await);
    assert!(commit_batch(&a, &id, &again, 20, 30).await);
    // A stale start position fails too (the compare-and-set on the checkpoint).
    assert!(!commit_batch(&a, &id, &again, 20, 40).await);
    let row = shard_row(&b, &id).await;
    assert_eq!((row.owner.as_deref(), row.epoch, row.position), (Some("a"), again.epoch, 30));

    // The shard's checkpoint is its own: the projection checkpoints are untouched.
    assert!(a.checkpoints().await.unwrap().is_empty());
}

#[tokio::test]
async fn custom_table_names_hold_the_coordination() {
    let config = StoreConfig::default()
        .workers_table("order")
        .unwrap()
        .shards_table("group")
        .unwrap()
        .recreate_lock_table("select")
        .unwrap();
    let store = file_store(config).await;
    store.register_worker("w", 1, WorkerState::Ready).await.unwrap();
    store.ensure_shards("p", 1, 0).await.unwrap();
    let fence = take(&store, &shard("p", 0, 1), "w").await;
    assert!(commit_batch(&store, &shard("p", 0, 1), &fence, 0, 1).await);
    assert_eq!(store.begin_generation(0).await.unwrap(), Some(1));
    for (table, rows) in [("order", 1), ("group", 1), ("select", 1)] {
        let sql = format!(r#"SELECT count(*) FROM "{table}""#);
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
        assert_eq!(n, rows, "{table}");
    }
    store.remove_worker("w").await.unwrap();
    assert!(store.workers().await.unwrap().is_empty());
}
