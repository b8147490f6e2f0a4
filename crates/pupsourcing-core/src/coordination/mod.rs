//! The storage side of the orchestrator: workers with heartbeats, the Recreate generation, and
//! projection shards owned by at most one worker under an epoch that fences every commit. The
//! orchestrator that uses it lives in the `pupsourcing-orchestrator` crate; each backend
//! implements [`CoordinationStore`] in its `coordination` module, in plain transactional SQL
//! (no advisory locks, no SERIALIZABLE).

mod names;
mod reshard;
mod store;
mod types;

pub use names::{MAX_SHARDS, MAX_WORKER_ID_LEN, validate_shard_count, validate_worker_id};
pub use reshard::{reshard_epoch, validate_reshard};
pub use store::CoordinationStore;
pub use types::{Fence, Generation, RecreatePhase, Shard, ShardId, Worker, WorkerState};
