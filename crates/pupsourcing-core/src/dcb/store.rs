//! [`DcbStore`]: conditional appends and query reads on the same log as the aggregate streams.

use std::future::Future;

use crate::error::{Result, ValidationError};
use crate::event::{NewEvent, Position, RecordedEvent};
use crate::store::{AppendResult, EventStore, EventStream};
use crate::validate::{Limits, check_json, check_name};

use super::{AppendCondition, DecisionModel, Query, ReadOptions, ReadResult, States};

/// A command as recorded by the [`super::CommandExecutor`] in the commands table, in the same
/// transaction as the events it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    /// The command's name.
    pub command_type: String,
    /// The command, as JSON.
    pub data: serde_json::Value,
    /// Optional JSON metadata (user, request id, ...).
    pub metadata: Option<serde_json::Value>,
    /// The positions of the events the command appended.
    pub positions: Vec<Position>,
}

impl CommandRecord {
    /// Checks what the commands table stores: a command type that is a valid name within
    /// `limits.max_name_len`, and data and metadata without NUL characters and within
    /// `limits.max_metadata_depth`.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        check_name("command type", &self.command_type, limits.max_name_len)?;
        check_json("command data", &self.data, limits.max_metadata_depth)?;
        match &self.metadata {
            Some(metadata) => check_json("command metadata", metadata, limits.max_metadata_depth),
            None => Ok(()),
        }
    }

    /// The record's JSON values as compact JSON text, as the commands tables of the backends
    /// without a JSON bind type (SQLite, MySQL) store them.
    ///
    /// ```
    /// use pupsourcing_core::dcb::CommandRecord;
    /// let record = CommandRecord {
    ///     command_type: "Subscribe".into(),
    ///     data: serde_json::json!({"course": "c1"}),
    ///     metadata: None,
    ///     positions: vec![4, 5],
    /// };
    /// let text = record.json_text();
    /// assert_eq!((text.data.as_str(), text.positions.as_str()), (r#"{"course":"c1"}"#, "[4,5]"));
    /// ```
    pub fn json_text(&self) -> CommandJson {
        CommandJson {
            data: self.data.to_string(),
            metadata: self.metadata.as_ref().map(ToString::to_string),
            positions: serde_json::Value::from(self.positions.clone()).to_string(),
        }
    }
}

/// A [`CommandRecord`]'s JSON columns as text ([`CommandRecord::json_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandJson {
    /// The command.
    pub data: String,
    /// Its metadata, if any.
    pub metadata: Option<String>,
    /// The positions of the events it appended, as a JSON array.
    pub positions: String,
}

/// Dynamic Consistency Boundary operations. Implemented by every backend on the same global log
/// as [`EventStore`]: a DCB query can select aggregate events and vice versa.
pub trait DcbStore: EventStore {
    /// Appends `events` (not bound to a stream; they may carry tags) in the caller's transaction.
    /// With a `condition`, fails with [`crate::Error::ConditionFailed`] and writes nothing when
    /// an event matching the condition's query exists after its `after` position. Events whose
    /// ids are all stored already return their original positions (`replayed`).
    ///
    /// Cancellation: as [`EventStore::append_in`], call it inside a transaction from
    /// [`EventStore::begin`].
    fn append_if_in(
        &self,
        conn: &mut Self::Connection,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> impl Future<Output = Result<AppendResult>> + Send;

    /// [`DcbStore::append_if_in`] in a transaction of the store's own.
    ///
    /// Errors and time limits mean what they mean for [`crate::EventStore::append`]:
    /// [`crate::Error::Timeout`] always means nothing was written. Dropping the returned future
    /// leaves the outcome unknown (an append already sent may still commit); append the same
    /// events again (same event ids) to find out: idempotency returns the original positions
    /// (`replayed`) if they were stored.
    fn append_if(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> impl Future<Output = Result<AppendResult>> + Send {
        async move {
            let mut tx = self.begin().await?;
            let result = self.append_if_in(&mut tx, events, condition).await?;
            self.commit(tx).await?;
            Ok(result)
        }
    }

    /// Reads the events matching `query`, gap-free, with the head of the same read.
    fn read_in(
        &self,
        conn: &mut Self::Connection,
        query: &Query,
        options: ReadOptions,
    ) -> impl Future<Output = Result<ReadResult>> + Send;

    /// [`DcbStore::read_in`] on the store's pool.
    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> impl Future<Output = Result<ReadResult>> + Send;

    /// Stores a command record in the caller's transaction.
    fn record_command_in(
        &self,
        conn: &mut Self::Connection,
        command: &CommandRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Appends `events` under `condition` and records `command` with them, atomically, in a
    /// transaction of the store's own: the command's `positions` are set to the events'
    /// positions, and nothing is recorded when the append fails. With no events, only the
    /// command is recorded. When every event id is already stored, the append is a replay
    /// (`replayed`, the original positions) and, on PostgreSQL, no second record is written. What [`super::CommandExecutor`] runs for each decision; backends
    /// may do it in a single statement. Not limited by `StoreConfig::append_timeout`.
    fn append_if_and_record(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
        command: &CommandRecord,
    ) -> impl Future<Output = Result<AppendResult>> + Send {
        async move {
            let mut tx = self.begin().await?;
            let result = if events.is_empty() {
                AppendResult { positions: Vec::new(), versions: Vec::new(), replayed: false }
            } else {
                self.append_if_in(&mut tx, events, condition).await?
            };
            let record = CommandRecord { positions: result.positions.clone(), ..command.clone() };
            self.record_command_in(&mut tx, &record).await?;
            self.commit(tx).await?;
            Ok(result)
        }
    }

    /// The events matching `query` from `from` (inclusive) as a stream read in pages of
    /// `page_size`; errors are yielded, never swallowed, and the stream ends once caught up.
    fn read_stream_of<'a>(
        &'a self,
        query: &'a Query,
        from: Position,
        page_size: usize,
    ) -> EventStream<'a> {
        crate::store::paged_stream(from, page_size, move |next, n| async move {
            Ok(self.read(query, ReadOptions::new().from(next).limit(n)).await?.events)
        })
    }

    /// Runs every projector of `model` over one combined read (in pages, so memory stays
    /// bounded) and returns their states with the condition to append under.
    fn project(
        &self,
        model: DecisionModel,
    ) -> impl Future<Output = Result<(States, AppendCondition)>> + Send {
        async move {
            let mut fold = PagedFold::new(model);
            loop {
                let read = self.read(&fold.query, fold.next_page()).await?;
                if let Some(done) = fold.feed(read) {
                    return Ok(done);
                }
            }
        }
    }

    /// [`DcbStore::project`] inside the caller's transaction.
    fn project_in(
        &self,
        conn: &mut Self::Connection,
        model: DecisionModel,
    ) -> impl Future<Output = Result<(States, AppendCondition)>> + Send {
        async move {
            let mut fold = PagedFold::new(model);
            loop {
                let read = self.read_in(conn, &fold.query, fold.next_page()).await?;
                if let Some(done) = fold.feed(read) {
                    return Ok(done);
                }
            }
        }
    }
}

/// [`DcbStore::project`] that also returns the events it read, when there are at most `keep`
/// of them (the command executor's boundary cache).
pub(crate) async fn project_keeping<S: DcbStore>(
    store: &S,
    model: DecisionModel,
    keep: usize,
) -> Result<(States, AppendCondition, Option<Vec<RecordedEvent>>)> {
    let mut fold = PagedFold::new(model);
    fold.kept = Some(Vec::new());
    loop {
        let read = store.read(&fold.query, fold.next_page()).await?;
        let kept = fold.kept.take();
        fold.kept = kept.and_then(|mut kept| {
            kept.extend(read.events.iter().cloned());
            (kept.len() <= keep).then_some(kept)
        });
        if let Some((states, condition)) = fold.feed(read) {
            return Ok((states, condition, fold.kept));
        }
    }
}

/// Feeds a decision model page by page.
struct PagedFold {
    model: DecisionModel,
    query: Query,
    from: Position,
    /// The events fed so far, while [`project_keeping`] wants them.
    kept: Option<Vec<RecordedEvent>>,
}

impl PagedFold {
    const PAGE: usize = 1000;

    fn new(model: DecisionModel) -> Self {
        Self { query: model.query(), model, from: 1, kept: None }
    }

    fn next_page(&self) -> ReadOptions {
        ReadOptions::new().from(self.from).limit(Self::PAGE)
    }

    /// Applies a page; returns the result once a short page shows the read has caught up. The
    /// last page's head is the condition's `after`: it covers every page read before it.
    fn feed(&mut self, read: ReadResult) -> Option<(States, AppendCondition)> {
        for event in &read.events {
            self.model.apply(event);
        }
        // The next page starts after the last event; nothing can follow the largest position.
        let next = read.events.last().map(|e| e.position.checked_add(1));
        if let Some(Some(next)) = next {
            self.from = next;
        }
        if read.events.len() < Self::PAGE || next == Some(None) {
            let model = std::mem::take(&mut self.model);
            return Some(model.finish(read.head));
        }
        None
    }
}
