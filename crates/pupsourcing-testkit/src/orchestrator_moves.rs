//! Shard moves as workers join, leave and flap, and the downtime of a Recreate deployment.
//!
//! Workers are tasks (each with its own store clone, heartbeat 100 ms, stale threshold 3 s)
//! running two projections of 8 shards each, one per aggregate type, so that one plan covers
//! 16 shards and every event is handled by exactly one projection; a writer appends while they
//! run and the read model of [`crate::projections`] must receive every event exactly once.
//!
//! A *move* is a shard whose owner differs between two settled assignments (every shard owned
//! by a live worker, balanced). After each change of the pool the moves must be exactly the
//! fewest a balanced assignment needs (`minimum_moves`), each shard's epoch must show no
//! hidden moves (a shard that moved away and back), and nothing may move for 10 heartbeats
//! afterwards (no oscillation).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pupsourcing_core::coordination::{CoordinationStore, ShardId};
use pupsourcing_core::projection::Scope;
use pupsourcing_core::{EventStore, ExpectedVersion, StreamId};
use pupsourcing_orchestrator::{Orchestrator, Recreate};
use pupsourcing_projection::{CancellationToken, Projection};
use uuid::Uuid;

use crate::fixtures::event;
use crate::orchestrator::{
    Run, Timed, assert_exactly_once, config, finished, rows_at_least, spawn, wait_for,
};
use crate::projections::{ReadModel, Recorder};

/// Shards per projection.
const SHARDS: u32 = 8;

/// The aggregate types written; one projection each.
const KINDS: [&str; 2] = ["Account", "Order"];

/// Shards in all (both projections).
const TOTAL: usize = SHARDS as usize * KINDS.len();

/// How long the assignment must stay unchanged once settled: 10 heartbeats.
const QUIET: Duration = Duration::from_secs(1);

/// Heartbeat 100 ms; stale threshold 3 s, not the suite's 1 s: these tests keep five workers
/// and their processors busy for half a minute, and a worker evicted because a loaded machine
/// delayed its heartbeats would move shards that no change of the pool moved.
fn strategy() -> Recreate {
    crate::orchestrator::strategy().shards_per_projection(SHARDS).stale_threshold(STALE)
}

const STALE: Duration = Duration::from_secs(3);

/// One recorder per aggregate type, all writing `model`.
fn projections<M: Clone>(model: &M) -> Vec<Recorder<M>> {
    KINDS
        .iter()
        .map(|kind| {
            let name = format!("moves_{}", kind.to_lowercase());
            Recorder::new(&name, model.clone()).scoped(Scope::all().aggregate_types([*kind]))
        })
        .collect()
}

/// A worker running every one of `projections`.
fn pool_worker<S: CoordinationStore, P: Projection<S> + Clone>(
    store: &S,
    projections: &[P],
    strategy: Recreate,
) -> Orchestrator<S> {
    let builder = Orchestrator::builder(store.clone()).strategy(strategy);
    let builder = projections.iter().fold(builder, |b, p| b.projection(p.clone(), config()));
    builder.build().unwrap()
}

/// Appends `n` events, each to a new stream, alternating between the aggregate types, one
/// every `every` (all at once when zero), on a task.
fn write<S: EventStore>(store: &S, n: usize, every: Duration) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        for i in 0..n {
            let stream = StreamId::new(KINDS[i % KINDS.len()], Uuid::now_v7());
            store.append(&stream, ExpectedVersion::NoStream, &[event("Placed")]).await.unwrap();
            if !every.is_zero() {
                tokio::time::sleep(every).await;
            }
        }
    })
}

/// Each shard's owner and epoch.
type Assignment = BTreeMap<ShardId, (Option<String>, i64)>;

async fn assignment<S: CoordinationStore>(store: &S) -> Assignment {
    store.shards().await.unwrap().into_iter().map(|s| (s.id, (s.owner, s.epoch))).collect()
}

/// How many shards each of `live` owns; `None` when a shard is missing or not owned by one
/// of them.
fn held(now: &Assignment, live: &[String]) -> Option<BTreeMap<String, usize>> {
    let mut held: BTreeMap<String, usize> = live.iter().map(|w| (w.clone(), 0)).collect();
    for (owner, _) in now.values() {
        *owner.as_ref().and_then(|o| held.get_mut(o))? += 1;
    }
    (now.len() == TOTAL).then_some(held)
}

/// Every shard is owned by one of `live`, and no worker owns two more than another.
fn settled(now: &Assignment, live: &[String]) -> bool {
    held(now, live).is_some_and(|held| {
        let (min, max) = (held.values().min(), held.values().max());
        max.zip(min).is_some_and(|(max, min)| max - min <= 1)
    })
}

/// The fewest moves from `before` to a balanced assignment of [`TOTAL`] shards among `live`:
/// every shard not owned by a live worker must move, and so must each live worker's shards
/// beyond its share; the shares of one more are best given to those holding the most.
fn minimum_moves(before: &Assignment, live: &[String]) -> usize {
    let mut held: Vec<usize> = live
        .iter()
        .map(|w| before.values().filter(|(owner, _)| owner.as_ref() == Some(w)).count())
        .collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    let (base, extra) = (TOTAL / live.len(), TOTAL % live.len());
    let kept: usize =
        held.iter().enumerate().map(|(i, h)| (*h).min(base + usize::from(i < extra))).sum();
    TOTAL - kept
}

/// One shard's move: its owner before and after.
#[derive(Debug)]
struct Moved {
    from: Option<String>,
    to: Option<String>,
}

/// Workers as tasks sharing both projections, and the last settled assignment.
struct Pool<S: CoordinationStore, M> {
    store: S,
    projections: Vec<Recorder<M>>,
    workers: Vec<(String, CancellationToken, Run)>,
    settled: Assignment,
}

impl<S: CoordinationStore, M: ReadModel<S>> Pool<S, M> {
    fn new(store: &S, model: &M) -> Self {
        let projections = projections(model);
        Self { store: store.clone(), projections, workers: Vec::new(), settled: Assignment::new() }
    }

    fn live(&self) -> Vec<String> {
        self.workers.iter().map(|(id, _, _)| id.clone()).collect()
    }

    /// Starts a worker (a new id, like a restarted process); returns its id.
    fn join(&mut self) -> String {
        let worker = pool_worker(&self.store, &self.projections, strategy());
        let id = worker.worker_id().to_string();
        let stop = CancellationToken::new();
        let run = spawn(worker, &stop);
        self.workers.push((id.clone(), stop, run));
        id
    }

    fn take(&mut self, id: &str) -> (CancellationToken, Run) {
        let at = self.workers.iter().position(|(w, _, _)| w == id).expect("a running worker");
        let (_, stop, run) = self.workers.remove(at);
        (stop, run)
    }

    /// Stops worker `id` gracefully: it drains, releases its shards, removes its row.
    async fn leave(&mut self, id: &str) {
        let (stop, run) = self.take(id);
        stop.cancel();
        finished(run).await.expect("a graceful stop returns Ok");
    }

    /// Worker `id` vanishes: its task is aborted, no cleanup; its row stays until stale.
    async fn vanish(&mut self, id: &str) {
        let (_, run) = self.take(id);
        run.abort();
        let _ = run.await;
    }

    /// Waits until the assignment settles among the live workers (20 s at most) and returns
    /// its moves since the last settled one. Asserts that they are the fewest possible, that
    /// no shard moved and came back (epochs), and that nothing moves for [`QUIET`] after.
    async fn settle(&mut self, change: &str) -> Vec<Moved> {
        let live = self.live();
        let start = Instant::now();
        let now = loop {
            let now = assignment(&self.store).await;
            if settled(&now, &live) {
                break now;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{change}: never settled: {now:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let moves = moves(&self.settled, &now, &live, change);
        let fewest = minimum_moves(&self.settled, &live);
        let per_worker: Vec<usize> = held(&now, &live).expect("settled").into_values().collect();
        eprintln!(
            "{change}: {} shards moved (fewest possible {fewest}) in {:?}; per worker {per_worker:?}",
            moves.len(),
            start.elapsed()
        );
        assert_eq!(moves.len(), fewest, "{change}: more shards moved than a balanced plan needs");
        tokio::time::sleep(QUIET).await;
        let later = assignment(&self.store).await;
        // A worker removed as stale (its heartbeats late or failing: an overloaded machine,
        // no free database connection) moves shards no change of the pool moved: say so.
        let registered: Vec<String> =
            self.store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
        let evicted: Vec<&String> = live.iter().filter(|w| !registered.contains(w)).collect();
        assert!(evicted.is_empty(), "{change}: workers {evicted:?} were removed as stale");
        let again: Vec<_> =
            later.iter().filter(|(shard, now_)| now.get(*shard) != Some(now_)).collect();
        assert!(
            again.is_empty(),
            "{change}: shards moved again after settling in {now:?}: {again:?}"
        );
        self.settled = now;
        moves
    }

    /// Stops every worker gracefully.
    async fn stop(self) {
        for (_, stop, run) in self.workers {
            stop.cancel();
            finished(run).await.expect("a graceful stop returns Ok");
        }
    }
}

/// The shards whose owner changed from `before` to `now`. Checks each shard's epoch: unchanged
/// when its owner is (else it moved away and back); one bump for a move from a live worker
/// (one compare-and-set); one or two from a worker that left (its release, then the taking).
fn moves(before: &Assignment, now: &Assignment, live: &[String], change: &str) -> Vec<Moved> {
    let mut moves = Vec::new();
    for (shard, (owner, epoch)) in now {
        let (was, was_epoch) = before.get(shard).cloned().unwrap_or((None, 0));
        let bumps = epoch - was_epoch;
        if *owner == was {
            assert_eq!(bumps, 0, "{change}: {shard:?} moved and came back");
            continue;
        }
        let direct = was.as_ref().is_some_and(|w| live.contains(w));
        let allowed = if direct { 1..=1 } else { 1..=2 };
        assert!(allowed.contains(&bumps), "{change}: {shard:?} changed owner {bumps} times");
        moves.push(Moved { from: was, to: owner.clone() });
    }
    moves
}

/// Workers join one by one (1 to 4), then one leaves gracefully and one vanishes, while a
/// writer appends. After each change exactly the fewest shards move (16 shards: 8 to the
/// 2nd worker, 5 to the 3rd (8/8 to 6/5/5), 4 to the 4th, the leaver's 4, the vanished
/// worker's share), then nothing moves; every event is applied exactly once.
pub async fn joining_and_leaving_move_only_what_must<S, M>(store: S, model: M)
where
    S: CoordinationStore,
    M: ReadModel<S>,
{
    let writer = write(&store, 300, Duration::from_millis(20));
    let mut pool = Pool::new(&store, &model);
    let first = pool.join();
    assert_eq!(pool.settle("the 1st worker starts").await.len(), TOTAL);
    let second = pool.join();
    assert_eq!(pool.settle("a 2nd worker joins").await.len(), 8);
    let third = pool.join();
    let moves = pool.settle("a 3rd worker joins").await;
    assert_eq!(moves.len(), 5);
    assert!(moves.iter().all(|m| m.to.as_ref() == Some(&third)), "only to the newcomer");
    pool.join();
    assert_eq!(pool.settle("a 4th worker joins").await.len(), 4);
    pool.leave(&first).await;
    let moves = pool.settle("one of 4 workers leaves gracefully").await;
    assert_eq!(moves.len(), 4);
    assert!(moves.iter().all(|m| m.from.as_ref() == Some(&first)), "only the leaver's");
    pool.vanish(&second).await;
    let moves = pool.settle("one of 3 workers vanishes").await;
    assert!(moves.iter().all(|m| m.from.as_ref() == Some(&second)), "only the vanished one's");
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 300)).await;
    pool.stop().await;
    assert_exactly_once(&store, &model).await;
}

/// Three workers stay while a fourth joins and leaves four times (gracefully, then vanishing,
/// in turn), while a writer appends. Each time only the flapper's share moves (4 of 16
/// shards, to it and back from it), and nothing moves between flaps; every event is applied
/// exactly once.
pub async fn flapping_worker_causes_no_waves<S, M>(store: S, model: M)
where
    S: CoordinationStore,
    M: ReadModel<S>,
{
    let writer = write(&store, 400, Duration::from_millis(20));
    let mut pool = Pool::new(&store, &model);
    for n in 1..=3 {
        pool.join();
        pool.settle(&format!("stable worker {n} joins")).await;
    }
    for round in 1..=4 {
        let flapper = pool.join();
        let moves = pool.settle(&format!("flap {round}: the flapper joins")).await;
        assert_eq!(moves.len(), TOTAL / 4, "flap {round}: only the flapper's share moves");
        assert!(moves.iter().all(|m| m.to.as_ref() == Some(&flapper)), "all to the flapper");
        let how = if round % 2 == 1 {
            pool.leave(&flapper).await;
            "leaves gracefully"
        } else {
            pool.vanish(&flapper).await;
            "vanishes"
        };
        let moves = pool.settle(&format!("flap {round}: the flapper {how}")).await;
        assert_eq!(moves.len(), TOTAL / 4, "flap {round}: only the flapper's shards move");
        assert!(moves.iter().all(|m| m.from.as_ref() == Some(&flapper)), "all from the flapper");
    }
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 400)).await;
    pool.stop().await;
    assert_exactly_once(&store, &model).await;
}

/// When, by the test's clock, workers of generation 1 last and generation 2 first owned a
/// shard of each projection, as a watcher polling the shard rows saw it; and how many of its
/// snapshots showed both generations owning shards of one projection at once.
#[derive(Debug, Default)]
struct Ownership {
    last_old: HashMap<String, Instant>,
    first_new: HashMap<String, Instant>,
    overlaps: usize,
}

/// Polls the shard rows every 2 ms until `watching` is cancelled.
fn watch_ownership<S: CoordinationStore>(
    store: &S,
    old: Vec<String>,
    new: Vec<String>,
    watching: CancellationToken,
) -> tokio::task::JoinHandle<Ownership> {
    let store = store.clone();
    tokio::spawn(async move {
        let mut seen = Ownership::default();
        while !watching.is_cancelled() {
            let shards = store.shards().await.unwrap();
            let now = Instant::now();
            let mut both: HashMap<&str, (bool, bool)> = HashMap::new();
            for shard in &shards {
                let Some(owner) = &shard.owner else { continue };
                let name = shard.id.projection.as_str();
                let entry = both.entry(name).or_default();
                if old.contains(owner) {
                    seen.last_old.insert(name.to_string(), now);
                    entry.0 = true;
                }
                if new.contains(owner) {
                    seen.first_new.entry(name.to_string()).or_insert(now);
                    entry.1 = true;
                }
            }
            seen.overlaps += both.values().filter(|(o, n)| *o && *n).count();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen
    })
}

/// Batches of one projection: (generation, start, end).
type BatchLog = Arc<Mutex<Vec<(i64, Instant, Instant)>>>;

/// Recreate with two workers per generation and two projections, a writer appending
/// throughout, each shard busy with full batches when generation 2 starts. Recorded per projection: each batch's generation and times (handler start and
/// end), when every generation-1 worker had returned from `run` (its processors' last commits
/// are before: the drain waits for them; later commits are fenced out), and ownership as the
/// shard rows showed it. Asserts per projection: the last generation-1 batch ended, and every
/// old worker returned, before the first generation-2 batch started; no snapshot of the shard
/// rows shows both generations owning its shards; and the downtime (last old batch end to
/// first new batch start) is below the stale threshold: the old workers leave by themselves,
/// generation 2 does not wait for them to go stale. Prints the downtime of each projection.
pub async fn recreate_downtime_is_bounded<S, M>(store: S, model: M)
where
    S: CoordinationStore,
    M: ReadModel<S>,
{
    write(&store, 40, Duration::ZERO).await.unwrap();
    let recorders: Vec<Recorder<M>> =
        projections(&model).into_iter().map(|r| r.delayed(Duration::from_millis(20))).collect();
    let logs: Vec<BatchLog> = recorders.iter().map(|_| BatchLog::default()).collect();
    let timed = |generation| -> Vec<Timed<Recorder<M>>> {
        let pairs = recorders.iter().zip(&logs);
        pairs.map(|(r, log)| Timed { inner: r.clone(), generation, log: log.clone() }).collect()
    };
    let shutdown = CancellationToken::new();
    let build = |generation| -> Vec<Orchestrator<S>> {
        let strategy = strategy().generation(generation);
        (0..2).map(|_| pool_worker(&store, &timed(generation), strategy.clone())).collect()
    };
    let ids = |workers: &[Orchestrator<S>]| workers.iter().map(|w| w.worker_id().into()).collect();
    let old = build(1);
    let old_ids = ids(&old);
    let old: Vec<Run> = old.into_iter().map(|w| spawn(w, &shutdown)).collect();
    wait_for(Duration::from_secs(20), "generation 1 to handle events", || {
        rows_at_least(&model, 20)
    })
    .await;
    // A burst first: every shard has full batches (10 events, 200 ms) in hand when generation
    // 2 starts, so that a generation 2 that did not wait would overlap them.
    write(&store, 160, Duration::ZERO).await.unwrap();
    let writer = write(&store, 100, Duration::from_millis(10));
    let new = build(2);
    let watching = CancellationToken::new();
    let watcher = watch_ownership(&store, old_ids, ids(&new), watching.clone());
    let new: Vec<Run> = new.into_iter().map(|w| spawn(w, &shutdown)).collect();
    let mut old_gone = Instant::now();
    for run in old {
        let (outcome, returned) = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .expect("the old worker drains")
            .unwrap();
        outcome.expect("an old worker drains and returns Ok");
        old_gone = old_gone.max(returned);
    }
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 300)).await;
    watching.cancel();
    let seen = watcher.await.unwrap();
    shutdown.cancel();
    for run in new {
        finished(run).await.unwrap();
    }
    assert_eq!(seen.overlaps, 0, "both generations owned shards of one projection: {seen:?}");
    for (recorder, log) in recorders.iter().zip(&logs) {
        let name = Projection::<S>::name(recorder);
        let log = log.lock().unwrap().clone();
        let last_old = log.iter().filter(|b| b.0 == 1).map(|b| b.2).max().expect("gen 1 ran");
        let first_new = log.iter().filter(|b| b.0 == 2).map(|b| b.1).min().expect("gen 2 ran");
        assert!(last_old <= old_gone, "{name}: a generation-1 batch ended after its worker left");
        assert!(old_gone < first_new, "{name}: generation 2 ran before generation 1 was gone");
        let (Some(released), Some(taken)) = (seen.last_old.get(name), seen.first_new.get(name))
        else {
            panic!("{name}: the watcher did not see both generations own shards: {seen:?}");
        };
        assert!(released < taken, "{name}: ownership overlapped: {seen:?}");
        let downtime = first_new - last_old;
        eprintln!(
            "recreate downtime of {name}: {downtime:?} from the last generation-1 batch to the \
             first generation-2 batch ({:?} from the last old worker's return; heartbeat 100 ms)",
            first_new - old_gone
        );
        let threshold = strategy().stale_threshold;
        assert!(downtime < threshold, "{name}: downtime {downtime:?} reached the stale threshold");
    }
    assert_exactly_once(&store, &model).await;
}
