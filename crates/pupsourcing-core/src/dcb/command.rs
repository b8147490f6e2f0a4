//! The command executor: decide on projected state, append under the condition, record the
//! command, all in one transaction; retry when the condition fails.

use serde::Serialize;

use std::sync::Arc;

use crate::error::Error;
use crate::event::{NewEvent, Position};
use crate::store::AppendResult;

use super::cache::{BoundaryCache, Snapshot};
use super::store::project_keeping;
use super::{AppendCondition, CommandRecord, DcbStore, DecisionModel, Query, States};

/// Business logic for one kind of command: which state it needs and what it decides.
///
/// `decide` is a pure function of the command and the projected states, so it can be tested
/// without a database (see [`super::Scenario`]).
pub trait CommandHandler: Send + Sync {
    /// The command type.
    type Command: Serialize + Send + Sync;
    /// Why a command is refused (a business rule).
    type Error: std::fmt::Debug + Send;

    /// The command's name, recorded in the commands table.
    fn command_type(&self, command: &Self::Command) -> String;

    /// The typed handles `model` returns, for `decide` to read the states with: usually a
    /// small struct of [`super::Handle`]s, or a single handle.
    type Handles: Send;

    /// Adds the projectors the decision needs to `model` and returns their handles.
    fn model(&self, command: &Self::Command, model: &mut DecisionModel) -> Self::Handles;

    /// The events to append, or why the command is refused.
    fn decide(
        &self,
        command: &Self::Command,
        handles: &Self::Handles,
        states: &States,
    ) -> Result<Vec<NewEvent>, Self::Error>;

    /// Metadata to record with the command.
    fn metadata(&self, _command: &Self::Command) -> Option<serde_json::Value> {
        None
    }

    /// Whether `command` is expected to find its boundary empty: it opens an account, claims
    /// a unique name, starts a process (default: no).
    ///
    /// When the executor's cache has no entry for the boundary, it then decides the command
    /// on the model's initial states, without reading the boundary, and appends under the
    /// condition that no event matches the model's query at all. When the boundary had events
    /// after all, the condition fails, nothing is written, and the command is decided again on
    /// a fresh read (one more attempt in [`CommandOutcome::attempts`], not counted against
    /// `max_attempts`). A decision on the initial states to refuse, or to append nothing, is
    /// not trusted: it is made again on a fresh read, since it could be wrong for a boundary
    /// that has events. (As for any append, events with ids already stored come back as a
    /// replay, with their first positions, whatever the boundary holds.)
    ///
    /// Saves the read (one round trip) of each command that starts a boundary; costs one
    /// failed append for each one that did not.
    fn expects_new_boundary(&self, _command: &Self::Command) -> bool {
        false
    }
}

/// Why [`CommandExecutor::execute`] did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::fmt::Debug> {
    /// The handler refused the command.
    #[error("command rejected: {0:?}")]
    Rejected(E),
    /// The store failed, or the condition still failed after every attempt
    /// ([`Error::ConditionFailed`]).
    #[error(transparent)]
    Store(#[from] Error),
}

/// What an executed command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Positions of the appended events (empty when the decision was to append nothing).
    pub positions: Vec<Position>,
    /// How many attempts it took (1 without conflicts).
    pub attempts: usize,
}

/// Runs [`CommandHandler`]s against a [`DcbStore`].
///
/// Each attempt projects the handler's model (one read of its boundary), asks the handler to
/// decide, and appends the decided events under the model's condition together with the
/// command's record in the commands table (unless turned off with
/// [`CommandExecutor::record_commands`]), atomically ([`DcbStore::append_if_and_record`]). When
/// the condition fails (another writer changed the boundary), nothing was written and the
/// command is re-decided on fresh state, up to `max_attempts`.
///
/// The executor keeps the events of the boundaries it decided on recently (the
/// [`DEFAULT_CACHED_BOUNDARIES`](Self::DEFAULT_CACHED_BOUNDARIES) last ones, see
/// [`CommandExecutor::cache_boundaries`]) and decides the next command on one of them without
/// reading it; the append's condition then confirms that nothing changed since. Clones share
/// the cache. A command whose handler expects its boundary to be new
/// ([`CommandHandler::expects_new_boundary`]) is decided on the empty boundary without a read
/// in the same way.
#[derive(Clone)]
pub struct CommandExecutor<S> {
    store: S,
    max_attempts: usize,
    record_commands: bool,
    cache: Option<Arc<BoundaryCache>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CommandExecutor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandExecutor")
            .field("store", &self.store)
            .field("max_attempts", &self.max_attempts)
            .field("record_commands", &self.record_commands)
            .field("cache_boundaries", &self.cache.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

impl<S: DcbStore> CommandExecutor<S> {
    /// How many boundaries a new executor keeps in its cache.
    pub const DEFAULT_CACHED_BOUNDARIES: usize = 256;

    /// An executor making at most 5 attempts per command, recording every command, and caching
    /// the last [`DEFAULT_CACHED_BOUNDARIES`](Self::DEFAULT_CACHED_BOUNDARIES) boundaries it
    /// decided on.
    pub fn new(store: S) -> Self {
        let cache = Some(Arc::new(BoundaryCache::new(Self::DEFAULT_CACHED_BOUNDARIES)));
        Self { store, max_attempts: 5, record_commands: true, cache }
    }

    /// Whether executed commands are recorded in the commands table (default: yes). Without
    /// records, an attempt is one statement less and the commands table is never written.
    pub fn record_commands(mut self, record: bool) -> Self {
        self.record_commands = record;
        self
    }

    /// Sets the number of attempts on freshly read state (at least 1).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Keeps, in memory, the events of up to `boundaries` recently decided boundaries (each of
    /// at most 1,000 events; default [`DEFAULT_CACHED_BOUNDARIES`](Self::DEFAULT_CACHED_BOUNDARIES),
    /// 0 turns the cache off), so that the next command on one of them is decided without a
    /// read: one round trip instead of two or three. The cached events are those read, plus
    /// those this executor (or a clone) appended since under its condition, so they are every
    /// event of the boundary up to the last of them; the append's condition ("nothing new after
    /// that") confirms the decision. When another writer changed the boundary meanwhile, the
    /// condition fails, nothing is written, and the command runs again on a fresh read (not
    /// counted against `max_attempts`). A decision that appends nothing, or a rejection, is
    /// never trusted to the cache: it is made again on a fresh read.
    ///
    /// Worth it when one process decides most commands of a boundary (a single service, or
    /// requests routed by boundary), which is why it is on by default. With many processes
    /// writing the same boundaries, a stale entry costs one failed append (counted in
    /// [`CommandOutcome::attempts`]) before the fresh read: turn it off there with
    /// `cache_boundaries(0)`.
    ///
    /// Memory: up to `boundaries` × 1,000 events, payloads included (the bound counts events,
    /// not bytes). Like the store's cached head, the cache assumes the log only grows: an
    /// entry still holds events deleted from the table since, and after a restore from an
    /// older backup (positions handed out again) its condition misses events at or below its
    /// head. Build new executors after such maintenance.
    pub fn cache_boundaries(mut self, boundaries: usize) -> Self {
        self.cache = (boundaries > 0).then(|| Arc::new(BoundaryCache::new(boundaries)));
        self
    }

    /// Executes `command` with `handler`.
    pub async fn execute<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
    ) -> Result<CommandOutcome, ExecuteError<H::Error>> {
        let data = serde_json::to_value(command).map_err(Error::Payload)?;
        let mut attempts = 0;
        match self.unread_attempt(handler, command, &data).await? {
            Unread::Appended(positions) => return Ok(CommandOutcome { positions, attempts: 1 }),
            Unread::Stale => attempts += 1,
            Unread::Skipped => {}
        }
        let mut fresh = 0;
        loop {
            attempts += 1;
            fresh += 1;
            match self.attempt(handler, command, &data).await {
                Ok(positions) => return Ok(CommandOutcome { positions, attempts }),
                // Someone changed the boundary meanwhile: decide again on fresh state.
                Err(ExecuteError::Store(Error::ConditionFailed { .. }))
                    if fresh < self.max_attempts => {}
                Err(other) => return Err(other),
            }
        }
    }

    /// A decision on what the executor knows of the model's boundary without reading it (see
    /// [`Self::known_state`]), if it knows anything and the decision is to append; otherwise
    /// (nothing known, nothing to append, a rejection) it is made on a fresh read.
    async fn unread_attempt<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
        data: &serde_json::Value,
    ) -> Result<Unread, ExecuteError<H::Error>> {
        let mut model = DecisionModel::new();
        let handles = handler.model(command, &mut model);
        let query = model.query();
        let Some(Snapshot { events: known, head }) = self.known_state(handler, command, &query)
        else {
            return Ok(Unread::Skipped);
        };
        for event in known.iter() {
            model.apply(event);
        }
        // Released before the entry is extended: a reference held here would make `extend`
        // copy every cached event (`Arc::make_mut`), under the cache's lock.
        drop(known);
        let (states, condition) = model.finish(head);
        let events = match handler.decide(command, &handles, &states) {
            Ok(events) if !events.is_empty() => events,
            _ => return Ok(Unread::Skipped),
        };
        if head == 0
            && let Some(cache) = &self.cache
        {
            // The assumed empty boundary, entered so that a success extends it; only now that
            // the decision is to append (a refusal's entry would outlive it when the fresh
            // read is too long to cache), and never over a fresher entry.
            cache.put_if_absent(&query, Snapshot { events: Arc::new(Vec::new()), head });
        }
        match self.append(handler, command, data, &events, &condition).await {
            Ok(result) => {
                if let Some(cache) = &self.cache {
                    self.remember(cache, &query, head, &events, &result);
                }
                Ok(Unread::Appended(result.positions))
            }
            Err(error) => {
                if let Some(cache) = &self.cache {
                    cache.forget(&query, head);
                }
                match error {
                    Error::ConditionFailed { .. } => Ok(Unread::Stale),
                    other => Err(other.into()),
                }
            }
        }
    }

    /// The boundary of `query` as far as the executor knows it without a read: its cache
    /// entry; else, for a command expected to start its boundary, the empty boundary up to
    /// position 0 (true of every boundary: positions start at 1).
    fn known_state<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
        query: &Query,
    ) -> Option<Snapshot> {
        if let Some(snapshot) = self.cache.as_ref().and_then(|cache| cache.get(query)) {
            return Some(snapshot);
        }
        if !handler.expects_new_boundary(command) {
            return None;
        }
        Some(Snapshot { events: Arc::new(Vec::new()), head: 0 })
    }

    /// One attempt: a read of the model's boundary (outside any transaction: the condition
    /// built from it guards the decision), the decision, and one atomic append of the events
    /// under that condition, with the command's record when records are on.
    async fn attempt<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
        data: &serde_json::Value,
    ) -> Result<Vec<Position>, ExecuteError<H::Error>> {
        let store = &self.store;
        let mut model = DecisionModel::new();
        let handles = handler.model(command, &mut model);
        let (states, condition) = match &self.cache {
            None => store.project(model).await?,
            Some(cache) => {
                let (states, condition, events) =
                    project_keeping(store, model, BoundaryCache::MAX_EVENTS).await?;
                if let Some(events) = events {
                    let head = condition.after.unwrap_or_default();
                    let snapshot = Snapshot { events: Arc::new(events), head };
                    cache.put(&condition.fail_if_events_match, snapshot);
                }
                (states, condition)
            }
        };
        let events = handler.decide(command, &handles, &states).map_err(ExecuteError::Rejected)?;
        let result = self.append(handler, command, data, &events, &condition).await?;
        if let Some(cache) = &self.cache {
            let query = &condition.fail_if_events_match;
            let head = condition.after.unwrap_or_default();
            self.remember(cache, query, head, &events, &result);
        }
        Ok(result.positions)
    }

    /// Appends a decision under its condition, with the command's record when records are on.
    async fn append<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
        data: &serde_json::Value,
        events: &[NewEvent],
        condition: &AppendCondition,
    ) -> Result<AppendResult, Error> {
        if !self.record_commands {
            if events.is_empty() {
                return Ok(AppendResult {
                    positions: Vec::new(),
                    versions: Vec::new(),
                    replayed: false,
                });
            }
            return self.store.append_if(events, Some(condition)).await;
        }
        let record = CommandRecord {
            command_type: handler.command_type(command),
            data: data.clone(),
            metadata: handler.metadata(command),
            positions: Vec::new(),
        };
        self.store.append_if_and_record(events, Some(condition), &record).await
    }

    /// Brings the cached boundary up to the events just appended under "nothing after `head`".
    fn remember(
        &self,
        cache: &BoundaryCache,
        query: &Query,
        head: Position,
        events: &[NewEvent],
        result: &AppendResult,
    ) {
        if result.replayed {
            // Positions of an earlier append of the same ids: not known to follow `head`.
            cache.forget(query, head);
        } else if !events.is_empty() {
            cache.extend(query, head, events, &result.positions);
        }
    }
}

/// What a decision without a read came to.
enum Unread {
    /// Appended at these positions.
    Appended(Vec<Position>),
    /// The boundary had changed, or was not new: nothing was written.
    Stale,
    /// Not tried, or not trusted (nothing known, nothing to append, a rejection).
    Skipped,
}
