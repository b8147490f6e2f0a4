//! The coordination suite: workers and heartbeats on the database clock, stale-worker cleanup,
//! the Recreate generation's compare-and-set, shard assignment by epoch, and fencing of a
//! batch's commit by owner and epoch. Backend-generic: each test takes a fresh, empty store
//! implementing [`CoordinationStore`]. A backend's test file instantiates them with
//! [`crate::coordination_conformance!`].

use std::sync::Arc;
use std::time::Duration;

use pupsourcing_core::coordination::{
    CoordinationStore, Fence, RecreatePhase, Shard, ShardId, WorkerState,
};
use pupsourcing_core::{Error, ExpectedVersion, Position};
use tokio::sync::Barrier;

use crate::fixtures::{event, new_stream};

/// How many times the racing tests race.
const RACES: usize = 30;

/// The idle limit of a batch transaction in these tests (long: no test sits idle that long).
const LEASE: Duration = Duration::from_secs(60);

fn shard(projection: &str, shard: u32, count: u32) -> ShardId {
    ShardId { projection: projection.to_string(), shard, count }
}

async fn shard_row<S: CoordinationStore>(store: &S, id: &ShardId) -> Shard {
    let shards = store.shards().await.unwrap();
    shards.into_iter().find(|s| &s.id == id).unwrap_or_else(|| panic!("no row for {id:?}"))
}

fn is_validation<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Validation(_)))
}

/// Registration, heartbeats and states read back; re-registering replaces the row; a removed
/// worker's heartbeat returns false and its shards are released with a bumped epoch; bad ids
/// are validation errors.
pub async fn workers_round_trip<S: CoordinationStore>(store: S) {
    assert!(store.workers().await.unwrap().is_empty());
    store.register_worker("b-worker", 1, WorkerState::Ready).await.unwrap();
    store.register_worker("a-worker", 1, WorkerState::Starting).await.unwrap();
    let workers = store.workers().await.unwrap();
    let ids: Vec<_> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["a-worker", "b-worker"], "by id");
    let a = &workers[0];
    assert_eq!((a.generation, a.state), (1, WorkerState::Starting));
    assert!(a.last_heartbeat >= a.started_at);

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.heartbeat("a-worker", WorkerState::Running).await.unwrap());
    let after = store.workers().await.unwrap();
    assert_eq!(after[0].state, WorkerState::Running);
    assert!(after[0].last_heartbeat > a.last_heartbeat, "the heartbeat moved");
    assert_eq!(after[0].started_at, a.started_at, "a heartbeat keeps the registration time");

    // Re-registering replaces generation and state.
    store.register_worker("a-worker", 2, WorkerState::Draining).await.unwrap();
    let again = store.workers().await.unwrap();
    assert_eq!((again[0].generation, again[0].state), (2, WorkerState::Draining));
    assert_eq!(again.len(), 2);

    // Removal releases the worker's shards, bumping their epochs.
    let id = shard("totals", 0, 1);
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let fence = store.assign_shard(&id, 0, Some("a-worker")).await.unwrap().unwrap();
    assert_eq!(fence, Fence { owner: "a-worker".into(), epoch: 1 });
    store.remove_worker("a-worker").await.unwrap();
    assert!(!store.heartbeat("a-worker", WorkerState::Running).await.unwrap());
    let ids: Vec<_> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["b-worker"]);
    let row = shard_row(&store, &id).await;
    assert_eq!((row.owner, row.epoch), (None, 2), "released with a new epoch");
    // Removing a worker that is gone is not an error.
    store.remove_worker("a-worker").await.unwrap();

    for bad in ["", "nul\0id"] {
        assert!(is_validation(store.register_worker(bad, 1, WorkerState::Ready).await));
        assert!(is_validation(store.heartbeat(bad, WorkerState::Ready).await));
        assert!(is_validation(store.remove_worker(bad).await));
        assert!(is_validation(store.assign_shard(&id, 2, Some(bad)).await));
    }
}

/// A worker whose last heartbeat is older than the threshold by the database's clock is
/// removed and its shards released (epoch bumped, its old fence useless); a worker that
/// heartbeat within the threshold stays, with its shard. The test only sleeps: the ages are
/// the database's.
pub async fn stale_workers_are_removed_by_the_database_clock<S: CoordinationStore>(store: S) {
    store.register_worker("old", 1, WorkerState::Running).await.unwrap();
    store.register_worker("fresh", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("totals", 2, 0).await.unwrap();
    let (old_id, fresh_id) = (shard("totals", 0, 2), shard("totals", 1, 2));
    let old_fence = store.assign_shard(&old_id, 0, Some("old")).await.unwrap().unwrap();
    store.assign_shard(&fresh_id, 0, Some("fresh")).await.unwrap().unwrap();

    let threshold = Duration::from_secs(1);
    assert!(store.remove_stale_workers(threshold).await.unwrap().is_empty(), "nobody is stale");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.heartbeat("fresh", WorkerState::Running).await.unwrap());
    assert!(
        store.remove_stale_workers(Duration::from_secs(60)).await.unwrap().is_empty(),
        "a longer threshold finds nobody"
    );
    assert_eq!(store.remove_stale_workers(threshold).await.unwrap(), ["old"]);
    assert!(store.remove_stale_workers(threshold).await.unwrap().is_empty(), "removed once");

    let ids: Vec<_> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["fresh"]);
    assert!(!store.heartbeat("old", WorkerState::Running).await.unwrap(), "it must re-register");
    let released = shard_row(&store, &old_id).await;
    assert_eq!((released.owner, released.epoch), (None, 2), "released with a new epoch");
    let kept = shard_row(&store, &fresh_id).await;
    assert_eq!((kept.owner.as_deref(), kept.epoch), (Some("fresh"), 1), "untouched");

    // The stale worker's fence no longer commits anything.
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_shard_in(&mut tx, &old_id, &old_fence, 0, 5, LEASE).await.unwrap());
    store.rollback(tx).await.unwrap();
}

/// Two workers racing to start the next generation from the same current one: exactly one
/// wins, every time. `set_phase` changes only the current generation.
pub async fn generation_compare_and_set_has_one_winner<S: CoordinationStore>(store: S) {
    let first = store.generation().await.unwrap();
    assert_eq!((first.number, first.phase), (0, RecreatePhase::Running));
    for round in 0..RACES {
        let current = store.generation().await.unwrap().number;
        assert_eq!(current, round as i64);
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.begin_generation(current).await.unwrap()
                })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            won.extend(racer.await.unwrap());
        }
        assert_eq!(won, [current + 1], "round {round}: exactly one winner");
        let now = store.generation().await.unwrap();
        assert_eq!((now.number, now.phase), (current + 1, RecreatePhase::Draining));
        assert_eq!(store.begin_generation(current).await.unwrap(), None, "a stale current");

        assert!(!store.set_phase(current, RecreatePhase::Running).await.unwrap(), "an old one");
        assert_eq!(store.generation().await.unwrap().phase, RecreatePhase::Draining);
        assert!(store.set_phase(current + 1, RecreatePhase::Running).await.unwrap());
        assert_eq!(store.generation().await.unwrap().phase, RecreatePhase::Running);
    }
}

/// `ensure_shards` creates the missing rows only: an existing shard keeps its owner, epoch and
/// checkpoint; it creates no row of another count beside a projection's rows (only a reshard
/// changes the count).
pub async fn ensure_shards_is_idempotent<S: CoordinationStore>(store: S) {
    store.ensure_shards("totals", 4, 10).await.unwrap();
    let rows = store.shards().await.unwrap();
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.id, shard("totals", i as u32, 4), "by projection, count, shard");
        assert_eq!((row.owner.as_deref(), row.epoch, row.position), (None, 0, 10));
    }
    let id = shard("totals", 2, 4);
    register(&store, &["w"]).await;
    let fence = store.assign_shard(&id, 0, Some("w")).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 10, 20, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();

    store.ensure_shards("totals", 4, 99).await.unwrap();
    let again = store.shards().await.unwrap();
    assert_eq!(again.len(), 4);
    let row = shard_row(&store, &id).await;
    assert_eq!((row.owner.as_deref(), row.epoch, row.position), (Some("w"), 1, 20), "kept");
    assert_eq!(shard_row(&store, &shard("totals", 0, 4)).await.position, 10, "kept");

    store.ensure_shards("totals", 2, 0).await.unwrap();
    store.ensure_shards("other", 1, 0).await.unwrap();
    let all: Vec<_> = store.shards().await.unwrap().into_iter().map(|s| s.id).collect();
    let expected = [
        shard("other", 0, 1),
        shard("totals", 0, 4),
        shard("totals", 1, 4),
        shard("totals", 2, 4),
        shard("totals", 3, 4),
    ];
    assert_eq!(all, expected);

    assert!(is_validation(store.ensure_shards("totals", 0, 0).await));
    assert!(is_validation(store.ensure_shards(" ", 1, 0).await));
    assert!(is_validation(store.ensure_shards("totals", 4, -1).await));
    let too_many = pupsourcing_core::coordination::MAX_SHARDS + 1;
    assert!(is_validation(store.ensure_shards("huge", too_many, 0).await), "refused up front");
    assert!(is_validation(store.assign_shard(&shard("totals", 4, 4), 0, Some("w")).await));
    // A negative position is refused before the database, alike on every backend, and the
    // batch's transaction stays usable.
    let fence = shard_row(&store, &id).await;
    let fence = Fence { owner: "w".into(), epoch: fence.epoch };
    let mut tx = store.begin().await.unwrap();
    assert!(is_validation(store.advance_shard_in(&mut tx, &id, &fence, 20, -1, LEASE).await));
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 20, 21, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
}

/// Two workers configured with different shard counts start at once on a projection without
/// shard rows: `ensure_shards` creates the rows of one count only ("none while the projection
/// has rows of another count"), whichever runs first, every time. A check that reads no row of
/// another count cannot lock rows that do not exist yet, and rows of different counts have
/// different keys: only something taken before the check serializes the two. Rows of two
/// counts would stop every worker of the pool, and no reshard replaces them.
pub async fn concurrent_ensures_of_two_counts_create_one_count<S: CoordinationStore>(store: S) {
    for round in 0..RACES {
        let counts = ensure_two_counts_at_once(&store, &format!("p{round}")).await;
        assert_eq!(counts.len(), 1, "round {round}: rows of counts {counts:?}");
    }
}

/// Runs `ensure_shards(projection, 2)` and `ensure_shards(projection, 3)` at once and returns
/// the counts of the projection's rows afterwards.
pub async fn ensure_two_counts_at_once<S: CoordinationStore>(
    store: &S,
    projection: &str,
) -> std::collections::BTreeSet<u32> {
    let start = Arc::new(Barrier::new(2));
    let ensure = |count: u32| {
        let (store, projection, start) = (store.clone(), projection.to_string(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            store.ensure_shards(&projection, count, 0).await
        })
    };
    let (a, b) = (ensure(2), ensure(3));
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let shards = store.shards().await.unwrap();
    shards.into_iter().filter(|s| s.id.projection == projection).map(|s| s.id.count).collect()
}

/// An `ensure_shards` of the old count while a reshard is in flight creates nothing once the
/// reshard commits. Without a lock taken before its check, the ensure's snapshot still has the
/// old rows (so no row of another count), and its insert waits for the reshard, which deleted
/// those rows, then succeeds once they are gone: the old count comes back beside the new.
///
/// `hold` runs in a transaction left open while the reshard of projection `totals` from 2 to 3
/// shards starts: it must insert the row of shard 0 of count 3, uncommitted, which holds the
/// reshard at its insert (on that row's key). On MySQL the reshard has deleted the old rows by
/// then, so the ensure surely runs in the window. PostgreSQL's reshard is one statement whose
/// delete runs after its insert, so there the hold does not open the window: what the test
/// shows there is that the ensure waits for the reshard (the lock that closes the window), and
/// it fails when `ensure_shards` or `reshard` skips that lock. Not in the macro: `hold` needs
/// the backend's SQL.
pub async fn an_ensure_racing_a_reshard_creates_nothing<S, F>(store: S, hold: F)
where
    S: CoordinationStore,
    F: AsyncFnOnce(&mut S::Transaction),
{
    register(&store, &["w"]).await;
    store.ensure_shards("totals", 2, 0).await.unwrap();
    let mut old = Vec::new();
    for k in 0..2 {
        let id = shard("totals", k, 2);
        let fence = store.assign_shard(&id, 0, Some("w")).await.unwrap().unwrap();
        old.push((id, fence));
    }
    let mut blocker = store.begin().await.unwrap();
    hold(&mut blocker).await;
    let reshard = {
        let store = store.clone();
        tokio::spawn(async move { store.reshard("totals", &old, 3, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ensure = {
        let store = store.clone();
        tokio::spawn(async move { store.ensure_shards("totals", 2, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reshard.is_finished() && !ensure.is_finished(), "both wait");
    store.rollback(blocker).await.unwrap();
    assert!(reshard.await.unwrap().unwrap(), "the reshard commits");
    ensure.await.unwrap().unwrap();
    let counts: Vec<u32> = store.shards().await.unwrap().iter().map(|s| s.id.count).collect();
    assert_eq!(counts, [3, 3, 3], "only the new count's rows");
}

/// Two assignments of one shard from the same epoch: exactly one wins, every time, and the
/// row names the winner under the bumped epoch; an assignment from an old epoch does nothing.
pub async fn assignment_compare_and_set_has_one_winner<S: CoordinationStore>(store: S) {
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    for round in 0..RACES {
        let epoch = shard_row(&store, &id).await.epoch;
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = ["w1", "w2"]
            .into_iter()
            .map(|owner| {
                let (store, barrier, id) = (store.clone(), barrier.clone(), id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.assign_shard(&id, epoch, Some(owner)).await.unwrap()
                })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            won.extend(racer.await.unwrap());
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one winner, got {won:?}");
        assert_eq!(won[0].epoch, epoch + 1);
        let row = shard_row(&store, &id).await;
        assert_eq!((row.owner.as_deref(), row.epoch), (Some(won[0].owner.as_str()), epoch + 1));
        assert_eq!(store.assign_shard(&id, epoch, Some("w3")).await.unwrap(), None, "stale");
    }
    // A release clears the owner and bumps the epoch too.
    let epoch = shard_row(&store, &id).await.epoch;
    let released = store.assign_shard(&id, epoch, None).await.unwrap().unwrap();
    assert_eq!(released.epoch, epoch + 1);
    let row = shard_row(&store, &id).await;
    assert_eq!((row.owner, row.epoch), (None, epoch + 1));
}

/// Registers `workers` (only a registered owner commits under its fence).
async fn register<S: CoordinationStore>(store: &S, workers: &[&str]) {
    for worker in workers {
        store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
    }
}

/// Appends a batch marker in `tx` (standing for a batch's read-model writes) and returns its
/// event id.
async fn write_batch<S: CoordinationStore>(store: &S, tx: &mut S::Transaction) -> uuid::Uuid {
    let batch = event("BatchApplied");
    let id = batch.event_id;
    store.append_in(tx, &new_stream(), ExpectedVersion::NoStream, &[batch]).await.unwrap();
    id
}

async fn logged<S: CoordinationStore>(store: &S, id: uuid::Uuid) -> bool {
    store.read_all(0, 1000).await.unwrap().iter().any(|e| e.event_id == id)
}

/// The paused-owner race: A holds its fence, the shard is reassigned to B meanwhile, and A's
/// commit (its checkpoint advance under the old fence) is rejected, so A rolls back and none of
/// its batch is stored; B continues from the checkpoint A never moved. A fence of the same
/// owner from an earlier assignment is rejected too (the epoch, not only the owner, fences).
pub async fn a_fenced_out_owner_cannot_commit<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a", "worker-b"]).await;
    store.ensure_shards("totals", 2, 0).await.unwrap();
    let id = shard("totals", 1, 2);
    let a = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();

    // A starts its batch, then pauses (GC, network, a slow handler).
    let mut tx = store.begin().await.unwrap();
    let a_batch = write_batch(&store, &mut tx).await;
    // Meanwhile the shard moves to B.
    let b = store.assign_shard(&id, a.epoch, Some("worker-b")).await.unwrap().unwrap();
    assert_eq!(b.epoch, a.epoch + 1);
    // A resumes: its commit is rejected.
    assert!(!store.advance_shard_in(&mut tx, &id, &a, 0, 7, LEASE).await.unwrap(), "fenced out");
    store.rollback(tx).await.unwrap();
    assert!(!logged(&store, a_batch).await, "nothing of A's batch is stored");
    assert_eq!(shard_row(&store, &id).await.position, 0);

    // B commits from the untouched checkpoint.
    let mut tx = store.begin().await.unwrap();
    let b_batch = write_batch(&store, &mut tx).await;
    assert!(store.advance_shard_in(&mut tx, &id, &b, 0, 7, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    assert!(logged(&store, b_batch).await);
    let row = shard_row(&store, &id).await;
    assert_eq!((row.owner.as_deref(), row.epoch, row.position), (Some("worker-b"), b.epoch, 7));

    // The shard comes back to A under a new epoch: A's old fence (a batch of the paused
    // incarnation) still cannot commit; the new one can.
    let a2 = store.assign_shard(&id, b.epoch, Some("worker-a")).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_shard_in(&mut tx, &id, &a, 7, 9, LEASE).await.unwrap(), "old epoch");
    assert!(!store.advance_shard_in(&mut tx, &id, &a2, 0, 9, LEASE).await.unwrap(), "old position");
    assert!(store.advance_shard_in(&mut tx, &id, &a2, 7, 9, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    let other = shard_row(&store, &shard("totals", 0, 2)).await;
    assert_eq!((other.owner, other.epoch, other.position), (None, 0, 0), "the other shard");
}

/// The in-flight race: A's batch has advanced the checkpoint (the row is locked until A's
/// transaction ends) when the shard is reassigned to B. The reassignment waits for A's commit,
/// then bumps the epoch; A's commit stands (it was the owner) and B continues from A's
/// position, while A's old fence commits nothing more.
pub async fn a_reassignment_waits_for_the_batch_in_flight<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a", "worker-b"]).await;
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    let a = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();

    let mut tx = store.begin().await.unwrap();
    let a_batch = write_batch(&store, &mut tx).await;
    assert!(store.advance_shard_in(&mut tx, &id, &a, 0, 5, LEASE).await.unwrap());

    let reassign = tokio::spawn({
        let (store, id) = (store.clone(), id.clone());
        async move { store.assign_shard(&id, a.epoch, Some("worker-b")).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reassign.is_finished(), "the reassignment waits for A's transaction");
    store.commit(tx).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(10), reassign)
        .await
        .expect("the reassignment proceeds after A's commit")
        .unwrap()
        .expect("the epoch was still A's");
    assert_eq!(b, Fence { owner: "worker-b".into(), epoch: a.epoch + 1 });
    assert!(logged(&store, a_batch).await, "A's batch stands");
    let row = shard_row(&store, &id).await;
    assert_eq!((row.owner.as_deref(), row.epoch, row.position), (Some("worker-b"), b.epoch, 5));

    // A's next batch is fenced out; B goes on from A's position.
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_shard_in(&mut tx, &id, &a, 5, 8, LEASE).await.unwrap());
    store.rollback(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &b, 5, 8, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    assert_eq!(shard_row(&store, &id).await.position, 8 as Position);
}

/// How long a heartbeat may take while a batch of its worker is in flight: a statement on a
/// warmed connection takes a few milliseconds; a heartbeat queued behind the batch's locks
/// would wait for the batch's commit (here: never, since the batch waits for the heartbeat).
const PROMPT: Duration = Duration::from_millis(500);

/// A long batch must not hold up its own worker's heartbeat, or the worker is found stale (and
/// removed while alive) once a batch outlasts the stale threshold. A's batch has advanced its
/// checkpoint (taking whatever its commit holds until it ends) when A heartbeats on a
/// connection of its own, as the orchestrator does: the heartbeat returns at once, moves the
/// worker's heartbeat, and the batch still commits afterwards. Not for a backend with one
/// writer at a time (SQLite), where every write queues behind the batch.
pub async fn a_heartbeat_does_not_wait_for_the_batch_in_flight<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a"]).await;
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    let beating = store.dedicated().await.unwrap();
    // The dedicated connection opens now, so that its connect time is not counted below.
    assert!(beating.heartbeat("worker-a", WorkerState::Running).await.unwrap());
    let before = store.workers().await.unwrap().remove(0).last_heartbeat;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut tx = store.begin().await.unwrap();
    let batch = write_batch(&store, &mut tx).await;
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 0, 5, LEASE).await.unwrap());
    let alive = tokio::time::timeout(PROMPT, beating.heartbeat("worker-a", WorkerState::Running))
        .await
        .expect("the heartbeat waited for the batch in flight")
        .unwrap();
    assert!(alive, "the worker is registered");
    let after = store.workers().await.unwrap().remove(0).last_heartbeat;
    assert!(after > before, "the heartbeat is stored while the batch runs");

    store.commit(tx).await.unwrap();
    assert!(logged(&store, batch).await, "the batch committed after the heartbeat");
    assert_eq!(shard_row(&store, &id).await.position, 5);
}

/// A planner's race: worker A's row is removed (stale, or it drained), but another worker that
/// listed the workers just before reads the shards just after (released, new epoch) and gives
/// one to A. A, alive but slow, still runs: under that fresh fence its batch must not commit,
/// since A is no longer registered (else a removed worker, or a generation-1 worker after
/// generation 2 went running, keeps committing until someone moves the shard again). A worker
/// that registers again commits under a fence it is then given.
pub async fn a_removed_worker_cannot_commit<S: CoordinationStore>(store: S) {
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    // The planner read the workers here: A listed.
    store.remove_worker("worker-a").await.unwrap();
    // It reads the shards after the removal and gives the shard to A from that epoch.
    let epoch = shard_row(&store, &id).await.epoch;
    let late = store.assign_shard(&id, epoch, Some("worker-a")).await.unwrap().unwrap();

    let mut tx = store.begin().await.unwrap();
    let batch = write_batch(&store, &mut tx).await;
    let moved = store.advance_shard_in(&mut tx, &id, &late, 0, 5, LEASE).await.unwrap();
    if moved {
        store.commit(tx).await.unwrap();
    } else {
        store.rollback(tx).await.unwrap();
    }
    assert!(!moved, "a worker without a row committed a batch");
    assert!(!logged(&store, batch).await);
    assert_eq!(shard_row(&store, &id).await.position, 0);

    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    let epoch = shard_row(&store, &id).await.epoch;
    let fence = store.assign_shard(&id, epoch, Some("worker-a")).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 0, 5, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    assert_eq!(shard_row(&store, &id).await.position, 5);
}

/// A removal and a batch of the removed worker, in both orders. A removal of the owner waits
/// for its batch in flight, which commits, then the shards are released. A batch that starts
/// while a removal is in flight (the worker row deleted, not yet committed) waits for it, then
/// finds no worker row and commits nothing, even under a fence given after a planner listed
/// the worker: a batch's snapshot taken before the removal commits still has the row, so only
/// a lock on it (PostgreSQL `FOR KEY SHARE`, InnoDB `LOCK IN SHARE MODE`) makes the batch wait
/// and see the delete.
///
/// `delete` runs in a transaction left open: it must delete the row of worker `worker-a`, as a
/// removal does first. Not in the macro: it needs the backend's SQL.
pub async fn a_removal_waits_for_the_batch_in_flight<S, F>(store: S, delete: F)
where
    S: CoordinationStore,
    F: AsyncFnOnce(&mut S::Transaction),
{
    register(&store, &["worker-a"]).await;
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();

    let mut batch = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut batch, &id, &fence, 0, 5, LEASE).await.unwrap());
    let removal = {
        let store = store.clone();
        tokio::spawn(async move { store.remove_worker("worker-a").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!removal.is_finished(), "the removal waits for the batch in flight");
    store.commit(batch).await.unwrap();
    removal.await.unwrap().unwrap();
    let row = shard_row(&store, &id).await;
    assert_eq!((row.position, row.owner), (5, None), "the batch committed, then the release");

    // The worker registers again and a planner gives it the shard; then a removal starts.
    register(&store, &["worker-a"]).await;
    let fence = store.assign_shard(&id, row.epoch, Some("worker-a")).await.unwrap().unwrap();
    let mut removing = store.begin().await.unwrap();
    delete(&mut removing).await;
    let late = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let moved = store.advance_shard_in(&mut tx, &id, &fence, 5, 9, LEASE).await.unwrap();
            if moved {
                store.commit(tx).await.unwrap();
            } else {
                store.rollback(tx).await.unwrap();
            }
            moved
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!late.is_finished(), "the batch waits for the removal in flight");
    store.commit(removing).await.unwrap();
    assert!(!late.await.unwrap(), "a batch after the removal commits nothing");
    assert_eq!(shard_row(&store, &id).await.position, 5);
}

/// Moves `id` from `from` to `to` under `fence` in a transaction of its own; whether it moved.
async fn advance<S: CoordinationStore>(
    store: &S,
    id: &ShardId,
    fence: &Fence,
    from: Position,
    to: Position,
) -> bool {
    let mut tx = store.begin().await.unwrap();
    let moved = store.advance_shard_in(&mut tx, id, fence, from, to, LEASE).await.unwrap();
    store.commit(tx).await.unwrap();
    moved
}

/// A reshard replaces the projection's rows only when they are exactly the expected shards,
/// each under its fence, all at the given position; then the new shards start there, unowned,
/// with epochs above the old ones, and an old fence commits nothing. Other projections are
/// untouched; bad arguments are validation errors.
pub async fn reshard_replaces_only_the_expected_shards<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a", "worker-b"]).await;
    store.ensure_shards("totals", 2, 0).await.unwrap();
    store.ensure_shards("other", 2, 0).await.unwrap();
    let (s0, s1) = (shard("totals", 0, 2), shard("totals", 1, 2));
    let f0 = store.assign_shard(&s0, 0, Some("worker-a")).await.unwrap().unwrap();
    let f1 = store.assign_shard(&s1, 0, Some("worker-a")).await.unwrap().unwrap();
    assert!(advance(&store, &s0, &f0, 0, 8).await);
    let old = [(s0.clone(), f0.clone()), (s1.clone(), f1.clone())];

    assert!(!store.reshard("totals", &old, 4, 8).await.unwrap(), "shard 1 is still at 0");
    assert!(advance(&store, &s1, &f1, 0, 8).await);
    assert!(!store.reshard("totals", &old[..1], 4, 8).await.unwrap(), "a row not expected");
    let stolen = store.assign_shard(&s1, f1.epoch, Some("worker-b")).await.unwrap().unwrap();
    assert!(!store.reshard("totals", &old, 4, 8).await.unwrap(), "a fence that moved");
    let back = store.assign_shard(&s1, stolen.epoch, Some("worker-a")).await.unwrap().unwrap();
    let old = [(s0.clone(), f0.clone()), (s1.clone(), back.clone())];
    assert_eq!(store.shards().await.unwrap().len(), 4, "the failed tries changed nothing");

    assert!(store.reshard("totals", &old, 4, 8).await.unwrap());
    let rows = store.shards().await.unwrap();
    let totals: Vec<_> = rows.iter().filter(|s| s.id.projection == "totals").collect();
    assert_eq!(totals.len(), 4);
    for (k, row) in totals.iter().enumerate() {
        assert_eq!(row.id, shard("totals", k as u32, 4));
        assert_eq!((row.owner.as_deref(), row.position), (None, 8), "unowned, at 8");
        assert!(row.epoch > back.epoch, "epochs grow past the old ones");
    }
    assert_eq!(rows.iter().filter(|s| s.id.projection == "other").count(), 2, "untouched");
    assert!(!advance(&store, &s0, &f0, 8, 9).await, "an old fence commits nothing");
    assert!(!store.reshard("totals", &old, 4, 8).await.unwrap(), "done once only");

    let bad = store.reshard("totals", &[(shard("totals", 0, 4), f0.clone())], 4, 8).await;
    assert!(is_validation(bad), "same count");
    assert!(is_validation(store.reshard("totals", &old, 0, 8).await), "count 0");
    assert!(is_validation(store.reshard("totals", &old, 3, -1).await), "negative position");
    assert!(is_validation(store.reshard("", &old, 3, 8).await), "no name");
}

/// A shard's last error is stored only under the owner's current fence, read back with the
/// row, and cleared when the shard is next assigned; NUL characters are stored as U+FFFD.
/// The database clock is near the heartbeats it stamps.
pub async fn shard_errors_follow_the_fence<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a"]).await;
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    assert_eq!(shard_row(&store, &id).await.last_error, None);
    assert!(store.set_shard_error(&id, &fence, "handler failed\0here").await.unwrap());
    let row = shard_row(&store, &id).await;
    assert_eq!(row.last_error.as_deref(), Some("handler failed\u{fffd}here"));

    let stale = Fence { owner: "worker-a".into(), epoch: fence.epoch - 1 };
    assert!(!store.set_shard_error(&id, &stale, "old").await.unwrap(), "an old fence");
    let moved = store.assign_shard(&id, fence.epoch, Some("worker-a")).await.unwrap().unwrap();
    assert_eq!(shard_row(&store, &id).await.last_error, None, "cleared by the move");
    assert!(!store.set_shard_error(&id, &fence, "late").await.unwrap(), "fenced out");
    assert_eq!(shard_row(&store, &id).await.last_error, None);
    assert!(store.set_shard_error(&id, &moved, "again").await.unwrap());

    let now = store.clock().await.unwrap();
    let worker = &store.workers().await.unwrap()[0];
    let skew = (now - worker.last_heartbeat).num_milliseconds();
    assert!((0..60_000).contains(&skew), "clock {now} vs heartbeat {}", worker.last_heartbeat);
}

/// A reset racing a reshard: the reshard has locked the projection's one old row (waiting
/// behind a batch in flight) when a reset starts. Whichever commits last, the projection ends
/// rewound: every shard row at 0, so its next run replays the log its reset hook cleared.
/// (A reset whose rewind skipped the deleted old rows and missed the new ones, inserted after
/// its statement began, left them at the old position: the events below it were lost.)
pub async fn a_reset_racing_a_reshard_rewinds_the_new_shards<S: CoordinationStore>(store: S) {
    register(&store, &["worker-a"]).await;
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = shard("totals", 0, 1);
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    assert!(advance(&store, &id, &fence, 0, 8).await);
    // A batch in flight holds the row, so that the reshard and then the reset queue behind it.
    let mut batch = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut batch, &id, &fence, 8, 8, LEASE).await.unwrap());
    let reshard = tokio::spawn({
        let (store, old) = (store.clone(), [(id.clone(), fence.clone())]);
        async move { store.reshard("totals", &old, 2, 8).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reset = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            store.reset_checkpoints_in(&mut tx, "totals").await.unwrap();
            store.commit(tx).await.unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.rollback(batch).await.unwrap();
    let limit = Duration::from_secs(10);
    let resharded = tokio::time::timeout(limit, reshard).await.expect("reshard ends").unwrap();
    tokio::time::timeout(limit, reset).await.expect("reset ends").unwrap();
    let rows = store.shards().await.unwrap();
    println!("resharded first: {resharded}; rows after both: {rows:?}");
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!((row.owner.as_deref(), row.position), (None, 0), "rewound: {row:?}");
    }
}
