//! [`Orchestrator`]: one worker of a pool that runs projections shard by shard.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pupsourcing_core::coordination::{
    CoordinationStore, Fence, RecreatePhase, Shard, ShardId, WorkerState,
};
use pupsourcing_core::projection::{Partition, Scope};
use pupsourcing_projection::{
    CancellationToken, Processor, ProcessorConfig, Projection, ProjectionError,
};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::assignment::assign;
use crate::error::OrchestratorError;
use crate::fence::FencedShard;
use crate::strategy::Recreate;

/// Builds a processor of one projection for a given partition (the projection's type erased).
type MakeProcessor<S> =
    Arc<dyn Fn(S, ProcessorConfig) -> Result<Processor<S>, ProjectionError> + Send + Sync>;

/// One projection the orchestrator runs, with its processor settings.
pub(crate) struct Entry<S: CoordinationStore> {
    pub(crate) name: String,
    pub(crate) scope: Scope,
    pub(crate) config: ProcessorConfig,
    pub(crate) make: MakeProcessor<S>,
}

impl<S: CoordinationStore> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            scope: self.scope.clone(),
            config: self.config.clone(),
            make: self.make.clone(),
        }
    }
}

/// Settings of an [`Orchestrator`]: see [`Orchestrator::builder`].
pub struct OrchestratorBuilder<S: CoordinationStore> {
    store: S,
    strategy: Recreate,
    projections: Vec<Entry<S>>,
    worker_id: Option<String>,
}

impl<S: CoordinationStore> OrchestratorBuilder<S> {
    /// Sets the strategy (default: [`Recreate::default`]).
    pub fn strategy(mut self, strategy: Recreate) -> Self {
        self.strategy = strategy;
        self
    }

    /// Adds a projection, run with `config` on every shard this worker owns (the partition
    /// in `config` is ignored: the orchestrator chooses the shards).
    pub fn projection<P: Projection<S>>(mut self, projection: P, config: ProcessorConfig) -> Self {
        let projection = Arc::new(projection);
        let name = Projection::<S>::name(&*projection).to_string();
        let scope = Projection::<S>::scope(&*projection);
        let make: MakeProcessor<S> =
            Arc::new(move |store, config| Processor::new(store, projection.clone(), config));
        self.projections.push(Entry { name, scope, config, make });
        self
    }

    /// Uses `id` as this worker's id instead of host name + UUID (it must be unique among the
    /// running workers).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Checks the settings: at least one projection, unique names, valid projections and
    /// processor settings, a valid strategy.
    pub fn build(self) -> Result<Orchestrator<S>, OrchestratorError> {
        if self.projections.is_empty() {
            return Err(OrchestratorError::NoProjections);
        }
        self.strategy.validate()?;
        let mut names = HashSet::new();
        for entry in &self.projections {
            if !names.insert(entry.name.as_str()) {
                return Err(OrchestratorError::DuplicateProjection { name: entry.name.clone() });
            }
            let partition = Partition::new(0, self.strategy.shards_per_projection)
                .map_err(ProjectionError::from)?;
            (entry.make)(self.store.clone(), entry.config.clone().partition(partition))?;
        }
        let worker_id = match self.worker_id {
            Some(id) if id.is_empty() || id.contains('\0') => {
                let reason = "a worker id must be non-empty and without NUL characters".into();
                return Err(OrchestratorError::InvalidSettings { reason });
            }
            Some(id) => id,
            None => format!("{}-{}", host_name(), uuid::Uuid::new_v4()),
        };
        Ok(Orchestrator {
            store: self.store,
            strategy: self.strategy,
            projections: self.projections,
            worker_id,
        })
    }
}

/// The host name: `$HOSTNAME`, else `/etc/hostname`, else `worker`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains('\0'))
        .unwrap_or_else(|| "worker".to_string())
}

/// One worker of a pool of identical workers (processes, or tasks), coordinated only through
/// the database ([`CoordinationStore`]): it registers, heartbeats, takes its share of every
/// projection's shards and runs a fenced processor on each.
///
/// ```no_run
/// # async fn demo<S: pupsourcing_core::coordination::CoordinationStore>(
/// #     store: S, orders: impl pupsourcing_projection::Projection<S>)
/// #     -> Result<(), pupsourcing_orchestrator::OrchestratorError> {
/// use pupsourcing_orchestrator::{Orchestrator, Recreate};
/// use pupsourcing_projection::{CancellationToken, ProcessorConfig};
///
/// let shutdown = CancellationToken::new(); // cancel it on SIGTERM
/// Orchestrator::builder(store)
///     .strategy(Recreate::default())
///     .projection(orders, ProcessorConfig::default())
///     .build()?
///     .run(shutdown)
///     .await
/// # }
/// ```
///
/// Each heartbeat interval (on a task and a connection of its own,
/// [`CoordinationStore::dedicated`], so that neither a long batch nor a busy pool can delay it)
/// the worker heartbeats; separately it reconciles: removes stale workers, creates missing shard
/// rows, plans the owners of every shard among the live workers of the current generation
/// ([`assign`]: balanced and sticky), takes the shards the plan gives it by compare-and-set on
/// each one's epoch, starts a processor on each shard it owns (fenced by the row's owner and
/// epoch, see [`FencedShard`]) and stops those whose shard moved. Generations follow
/// [`Recreate`]. Every worker of a pool must run the same projections: the plan counts every
/// live worker for every projection, so a shard planned for a worker without that projection
/// would stay idle.
pub struct Orchestrator<S: CoordinationStore> {
    pub(crate) store: S,
    pub(crate) strategy: Recreate,
    pub(crate) projections: Vec<Entry<S>>,
    pub(crate) worker_id: String,
}

/// A task aborted when dropped, so that aborting the worker's own task (or dropping `run`)
/// leaves nothing of it running.
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A processor running one shard under `epoch`.
struct Running {
    epoch: i64,
    stop: CancellationToken,
    task: Task<Result<(), ProjectionError>>,
}

/// Why the reconcile loop ended.
enum Stop {
    Shutdown,
    Superseded,
    Evicted,
    Failed(OrchestratorError),
}

/// What the worker does in the loop.
struct Work {
    running: HashMap<ShardId, Running>,
    /// Processors told to stop, not yet ended.
    stopping: Vec<Running>,
    /// Shards whose processor failed under this epoch (not restarted until the shard moves).
    failed: HashSet<(ShardId, i64)>,
}

impl<S: CoordinationStore> Orchestrator<S> {
    /// Starts the settings of a worker on `store` (each worker its own store clone or
    /// process).
    pub fn builder(store: S) -> OrchestratorBuilder<S> {
        OrchestratorBuilder {
            store,
            strategy: Recreate::default(),
            projections: Vec::new(),
            worker_id: None,
        }
    }

    /// This worker's id (host name and a UUID unless set).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs the worker until `shutdown` is cancelled, then drains: its processors finish the
    /// batch in hand, it releases its shards and removes its row, and returns `Ok`. It also
    /// drains and returns `Ok` when a newer generation starts ([`Recreate`]). It returns an
    /// error when it was removed as stale ([`OrchestratorError::Evicted`]: its processors are
    /// stopped; run it again) or cannot register. Database errors while running are logged
    /// and retried on the next tick.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), OrchestratorError> {
        let Some(generation) = self.join_generation().await? else {
            tracing::warn!(worker = %self.worker_id, generation = ?self.strategy.generation,
                "a newer generation is running: this worker is outdated and stops");
            return Ok(());
        };
        let id = self.worker_id.as_str();
        self.store.register_worker(id, generation, WorkerState::Starting).await?;
        tracing::info!(worker = %id, generation, "worker registered");
        let state = Arc::new(Mutex::new(WorkerState::Starting));
        let evicted = CancellationToken::new();
        // Heartbeats on a connection of their own (see CoordinationStore::dedicated).
        let beating = self.store.dedicated().await?;
        let heartbeat = Task(tokio::spawn(heartbeats(
            beating,
            id.to_string(),
            state.clone(),
            self.strategy.heartbeat_interval,
            evicted.clone(),
        )));
        let mut work =
            Work { running: HashMap::new(), stopping: Vec::new(), failed: HashSet::new() };
        let mut ticker = tokio::time::interval(self.strategy.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stop = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Stop::Shutdown,
                _ = evicted.cancelled() => break Stop::Evicted,
                _ = ticker.tick() => {}
            }
            match self.tick(generation, &mut work, &state, &shutdown).await {
                Ok(true) => {}
                Ok(false) => break Stop::Superseded,
                Err(error @ OrchestratorError::ShardCountChanged { .. }) => {
                    break Stop::Failed(error);
                }
                Err(error) => {
                    tracing::warn!(worker = %id, %error, "reconcile failed; retrying next tick");
                }
            }
        };
        match stop {
            Stop::Evicted => {
                tracing::error!(worker = %id, "removed as stale: stopping every processor");
                stop_all(&mut work).await;
                drop(heartbeat);
                Err(OrchestratorError::Evicted {
                    worker: id.to_string(),
                    threshold: self.strategy.stale_threshold,
                })
            }
            Stop::Shutdown | Stop::Superseded => {
                self.drain(&mut work, &state).await?;
                drop(heartbeat);
                Ok(())
            }
            Stop::Failed(error) => {
                self.drain(&mut work, &state).await?;
                drop(heartbeat);
                Err(error)
            }
        }
    }

    /// The generation this worker belongs to, starting it if it is newer than the current
    /// one; `None` when the worker's generation is older than the current one.
    async fn join_generation(&self) -> Result<Option<i64>, OrchestratorError> {
        let mut current = self.store.generation().await?.number;
        let Some(wanted) = self.strategy.generation else { return Ok(Some(current)) };
        while current < wanted {
            match self.store.begin_generation(current).await? {
                Some(number) => {
                    tracing::info!(worker = %self.worker_id, generation = number,
                        "generation started: older workers drain");
                    current = number;
                }
                None => current = self.store.generation().await?.number,
            }
        }
        Ok((current == wanted).then_some(wanted))
    }

    /// One reconcile step; false when a newer generation started (the worker must drain).
    async fn tick(
        &self,
        generation: i64,
        work: &mut Work,
        state: &Mutex<WorkerState>,
        shutdown: &CancellationToken,
    ) -> Result<bool, OrchestratorError> {
        let store = &self.store;
        reap(work).await;
        let current = store.generation().await?;
        if current.number > generation {
            return Ok(false);
        }
        store.remove_stale_workers(self.strategy.stale_threshold).await?;
        if current.phase == RecreatePhase::Draining {
            let workers = store.workers().await?;
            set_state(state, WorkerState::Ready);
            let older = workers.iter().filter(|w| w.generation < current.number).count();
            if older > 0 {
                tracing::debug!(worker = %self.worker_id, older, "waiting for older workers");
                return Ok(true);
            }
            // One worker (the lowest id) changes shard counts while nothing runs; the others
            // wait for it to set the phase.
            let leader = workers.iter().find(|w| w.generation == current.number);
            if leader.is_none_or(|w| w.id != self.worker_id) || !self.reshard_all(shutdown).await? {
                return Ok(true);
            }
            if store.set_phase(current.number, RecreatePhase::Running).await? {
                tracing::info!(generation = current.number, "no older worker left: running");
            }
            return Ok(true); // assign from the next tick on, with the phase read again
        }
        // Shards before workers: a worker's row changes (it registers, drains, is removed)
        // before its shards do, so the workers read after the shards are never older than
        // them. Read the other way round, a planner could see a leaving worker's shards
        // released but the worker still live, and give them back to it (a wasted move each).
        let mut shards = self.shards_ensured().await?;
        let workers = store.workers().await?;
        let me = self.worker_id.as_str();
        let live: Vec<String> = workers
            .iter()
            .filter(|w| w.generation == current.number)
            .filter(|w| !matches!(w.state, WorkerState::Stopped | WorkerState::Draining))
            .map(|w| w.id.clone())
            .collect();
        if live.iter().any(|w| w == me) {
            let today: Vec<_> = shards.iter().map(|s| (s.id.clone(), s.owner.clone())).collect();
            let mut moved = false;
            // Each worker applies only the moves to itself: plans of other workers, made
            // from snapshots taken while moves were being applied, can differ (which worker
            // gets a share of one more depends on what each holds), and applying a mixture
            // of them moves shards that no single plan moves, then back (waves).
            let mine = assign(&today, &live).into_iter().filter(|m| m.to.as_deref() == Some(me));
            for step in mine {
                let epoch = shards.iter().find(|s| s.id == step.shard).map_or(0, |s| s.epoch);
                // A conflict means another worker applied a move first: read again next tick.
                moved |=
                    store.assign_shard(&step.shard, epoch, step.to.as_deref()).await?.is_some();
            }
            if moved {
                shards = self.my_shards(store.shards().await?)?;
            }
        }
        let owned: HashMap<ShardId, i64> = shards
            .into_iter()
            .filter(|s| s.owner.as_deref() == Some(me))
            .map(|s| (s.id, s.epoch))
            .collect();
        self.reconcile(work, &owned)?;
        set_state(state, if owned.is_empty() { WorkerState::Ready } else { WorkerState::Running });
        Ok(true)
    }

    /// The shard rows of this worker's projections, creating those of a projection that has
    /// none. The stored counts are checked first: a worker configured with another count
    /// stops without writing, since rows of its count beside the stored ones would stop every
    /// worker of the pool ([`Self::my_shards`]) and no reshard replaces rows of two counts.
    async fn shards_ensured(&self) -> Result<Vec<Shard>, OrchestratorError> {
        let shards = self.my_shards(self.store.shards().await?)?;
        let count = self.strategy.shards_per_projection;
        let mut created = false;
        for entry in &self.projections {
            let stored = shards.iter().filter(|s| s.id.projection == entry.name).count();
            if stored < count as usize {
                self.store.ensure_shards(&entry.name, count, 0).await?;
                created = true;
            }
        }
        if !created {
            return Ok(shards);
        }
        self.my_shards(self.store.shards().await?)
    }

    /// The shard rows of this worker's projections; an error when one is stored with another
    /// shard count.
    fn my_shards(&self, shards: Vec<Shard>) -> Result<Vec<Shard>, OrchestratorError> {
        let count = self.strategy.shards_per_projection;
        let mine: Vec<Shard> = shards
            .into_iter()
            .filter(|s| self.projections.iter().any(|e| e.name == s.id.projection))
            .collect();
        if let Some(other) = mine.iter().find(|s| s.id.count != count) {
            return Err(OrchestratorError::ShardCountChanged {
                projection: other.id.projection.clone(),
                stored: other.id.count,
                configured: count,
            });
        }
        Ok(mine)
    }

    /// Stops the processors of shards this worker no longer owns (or owns under a new epoch)
    /// and starts one on each owned shard without one.
    fn reconcile(
        &self,
        work: &mut Work,
        owned: &HashMap<ShardId, i64>,
    ) -> Result<(), OrchestratorError> {
        let gone: Vec<ShardId> = work
            .running
            .iter()
            .filter(|(shard, r)| owned.get(*shard) != Some(&r.epoch))
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in gone {
            let running = work.running.remove(&shard).expect("listed above");
            tracing::info!(worker = %self.worker_id, projection = %shard.projection,
                shard = shard.shard, "shard moved: stopping its processor");
            running.stop.cancel();
            work.stopping.push(running);
        }
        for (shard, &epoch) in owned {
            if work.running.contains_key(shard) || work.failed.contains(&(shard.clone(), epoch)) {
                continue;
            }
            let entry = self
                .projections
                .iter()
                .find(|e| e.name == shard.projection)
                .expect("my_shards keeps this worker's projections only");
            let fence = Fence { owner: self.worker_id.clone(), epoch };
            let processor = self.fenced_processor(entry, shard, fence)?;
            let stop = CancellationToken::new();
            let token = stop.clone();
            let task = Task(tokio::spawn(async move { processor.run(token).await }));
            tracing::info!(worker = %self.worker_id, projection = %shard.projection,
                shard = shard.shard, epoch, "shard taken: processor started");
            work.running.insert(shard.clone(), Running { epoch, stop, task });
        }
        Ok(())
    }

    /// A processor of `entry` on `shard` whose checkpoint is the shard row, fenced by `fence`,
    /// its batch transactions leased for the stale threshold ([`FencedShard`]).
    pub(crate) fn fenced_processor(
        &self,
        entry: &Entry<S>,
        shard: &ShardId,
        fence: Fence,
    ) -> Result<Processor<S>, OrchestratorError> {
        let partition = Partition::new(shard.shard, shard.count).map_err(ProjectionError::from)?;
        let lease = self.strategy.stale_threshold;
        let fenced = FencedShard { shard: shard.clone(), fence, lease };
        let config = entry.config.clone().partition(partition);
        Ok((entry.make)(self.store.clone(), config)?.with_checkpointing(fenced))
    }

    /// Shutdown or a newer generation: stop taking shards, let the processors finish the
    /// batch in hand, release this worker's shards and remove its row.
    async fn drain(
        &self,
        work: &mut Work,
        state: &Mutex<WorkerState>,
    ) -> Result<(), OrchestratorError> {
        let id = self.worker_id.as_str();
        set_state(state, WorkerState::Draining);
        if let Err(error) = self.store.heartbeat(id, WorkerState::Draining).await {
            tracing::warn!(worker = %id, %error, "could not report draining");
        }
        stop_all(work).await;
        for shard in self.store.shards().await? {
            if shard.owner.as_deref() == Some(id) {
                self.store.assign_shard(&shard.id, shard.epoch, None).await?;
            }
        }
        self.store.remove_worker(id).await?;
        tracing::info!(worker = %id, "worker drained and removed");
        Ok(())
    }
}

fn set_state(state: &Mutex<WorkerState>, new: WorkerState) {
    *state.lock().unwrap_or_else(|e| e.into_inner()) = new;
}

/// Drops the processors that ended (a lost shard is expected; another error is logged and
/// the shard is not restarted under the same epoch).
async fn reap(work: &mut Work) {
    let ended: Vec<ShardId> = work
        .running
        .iter()
        .filter(|(_, r)| r.task.0.is_finished())
        .map(|(s, _)| s.clone())
        .collect();
    for shard in ended {
        let running = work.running.remove(&shard).expect("listed above");
        let epoch = running.epoch;
        if let Err(()) = outcome(running).await {
            work.failed.insert((shard, epoch));
        }
    }
    let (done, busy): (Vec<_>, Vec<_>) =
        work.stopping.drain(..).partition(|r| r.task.0.is_finished());
    work.stopping = busy;
    for running in done {
        let _ = outcome(running).await;
    }
}

/// Awaits a processor; `Err` when it failed for another reason than losing its shard.
async fn outcome(running: Running) -> Result<(), ()> {
    let mut task = running.task;
    let result = (&mut task.0).await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ProjectionError::Store {
            source: pupsourcing_core::Error::ShardLost { .. },
            ..
        })) => Ok(()),
        Ok(Err(error)) => {
            tracing::error!(%error, "projection processor stopped");
            Err(())
        }
        Err(join) => {
            tracing::error!(error = %join, "projection processor task failed");
            Err(())
        }
    }
}

/// Cancels every processor and waits until each has finished its batch in hand.
async fn stop_all(work: &mut Work) {
    let all: Vec<Running> =
        work.running.drain().map(|(_, r)| r).chain(work.stopping.drain(..)).collect();
    for running in &all {
        running.stop.cancel();
    }
    for running in all {
        let _ = outcome(running).await;
    }
}

/// Heartbeats every `interval` with the worker's state; cancels `evicted` when the worker's
/// row is gone (it was removed as stale). Errors are logged and retried next interval.
async fn heartbeats<S: CoordinationStore>(
    store: S,
    id: String,
    state: Arc<Mutex<WorkerState>>,
    interval: Duration,
    evicted: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // the registration was the first heartbeat
    loop {
        ticker.tick().await;
        let now = *state.lock().unwrap_or_else(|e| e.into_inner());
        match store.heartbeat(&id, now).await {
            Ok(true) => {}
            Ok(false) => {
                evicted.cancel();
                return;
            }
            Err(error) => tracing::warn!(worker = %id, %error, "heartbeat failed; retrying"),
        }
    }
}
