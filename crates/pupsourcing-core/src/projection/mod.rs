//! The storage side of projections: scopes, hash partitions, batches, checkpoints and dead
//! letters. The processor and runner that use them live in the `pupsourcing-projection` crate.

mod names;
mod partition;
mod scope;
mod store;

pub use names::{MAX_PROJECTION_NAME_LEN, storable_text, validate_projection_name};
pub use partition::{Partition, murmur3_32, partition_hash};
pub use scope::Scope;
pub use store::{Batch, Checkpoint, DeadLetter, Pending, ProjectionStore, Stall};
