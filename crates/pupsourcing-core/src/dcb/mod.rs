//! Dynamic Consistency Boundary (DCB): tagged events, queries, conditional appends, decision
//! models and a command executor, on the same global log as the aggregate streams.
//!
//! A decision reads the events its rules depend on (a [`Query`]), decides, and appends under an
//! [`AppendCondition`] built from the same query and the head of the read: the append fails if
//! anything matching was appended meanwhile. Backends make overlapping conditions serialise with
//! the advisory lock plan of [`lock_plan`].

mod cache;
mod command;
mod condition;
mod locks;
mod projector;
mod query;
mod scenario;
mod store;

pub use command::{CommandExecutor, CommandHandler, CommandOutcome, ExecuteError};
pub use condition::{AppendCondition, ReadOptions, ReadResult};
pub use locks::{LockKey, global_key, lock_plan, query_keys};
pub use projector::{DecisionModel, Handle, StateProjector, States};
pub use query::{Query, QueryItem, tag};
pub use scenario::{Scenario, Then, project_events};
pub use store::{CommandJson, CommandRecord, DcbStore};
