//! The command executor: decide on projected state, append under the condition, record the
//! command, all in one transaction; retry when the condition fails.

use serde::Serialize;

use crate::error::Error;
use crate::event::{NewEvent, Position};

use super::{CommandRecord, DcbStore, DecisionModel, States};

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
#[derive(Debug, Clone)]
pub struct CommandExecutor<S> {
    store: S,
    max_attempts: usize,
    record_commands: bool,
}

impl<S: DcbStore> CommandExecutor<S> {
    /// An executor making at most 5 attempts per command and recording every command.
    pub fn new(store: S) -> Self {
        Self { store, max_attempts: 5, record_commands: true }
    }

    /// Whether executed commands are recorded in the commands table (default: yes). Without
    /// records, an attempt is one statement less and the commands table is never written.
    pub fn record_commands(mut self, record: bool) -> Self {
        self.record_commands = record;
        self
    }

    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Executes `command` with `handler`.
    pub async fn execute<H: CommandHandler>(
        &self,
        handler: &H,
        command: &H::Command,
    ) -> Result<CommandOutcome, ExecuteError<H::Error>> {
        let data = serde_json::to_value(command).map_err(Error::Payload)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(handler, command, &data).await {
                Ok(positions) => return Ok(CommandOutcome { positions, attempts: attempt }),
                // Someone changed the boundary meanwhile: decide again on fresh state.
                Err(ExecuteError::Store(Error::ConditionFailed { .. }))
                    if attempt < self.max_attempts => {}
                Err(other) => return Err(other),
            }
        }
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
        let (states, condition) = store.project(model).await?;
        let events = handler.decide(command, &handles, &states).map_err(ExecuteError::Rejected)?;
        if !self.record_commands {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(store.append_if(&events, Some(&condition)).await?.positions);
        }
        let record = CommandRecord {
            command_type: handler.command_type(command),
            data: data.clone(),
            metadata: handler.metadata(command),
            positions: Vec::new(),
        };
        Ok(store.append_if_and_record(&events, Some(&condition), &record).await?.positions)
    }
}
