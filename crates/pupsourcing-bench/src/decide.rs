//! The workloads users run on the decision path: aggregate lifecycles (a stream created with
//! `NoStream`, then updated with `Exact`), read-decide-append loops on disjoint DCB boundaries,
//! and the command executor. Each task has its own streams or boundary, so no conflict is ever
//! real: every condition failure counted here is a false conflict.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pupsourcing_core::dcb::{
    AppendCondition, CommandExecutor, CommandHandler, DcbStore, DecisionModel, Handle, Query,
    QueryItem, ReadOptions, StateProjector, States,
};
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent, StreamId};
use pupsourcing_postgres::PgEventStore;
use uuid::Uuid;

use crate::BoxError;
use crate::append::Appender;
use crate::dcb::Outcomes;

/// Appends to streams of `length` events: the first with `NoStream`, the others with
/// `Exact(version)`, then a new stream.
pub struct LifecycleAppender<S> {
    store: S,
    length: i64,
    stream: StreamId,
    version: i64,
}

impl<S: EventStore> LifecycleAppender<S> {
    pub fn new(store: S, length: i64) -> Self {
        Self { store, length, stream: StreamId::new("Order", Uuid::now_v7()), version: 0 }
    }
}

impl<S: EventStore> Appender for LifecycleAppender<S> {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        if self.version + events.len() as i64 > self.length {
            self.stream = StreamId::new("Order", Uuid::now_v7());
            self.version = 0;
        }
        let expected = match self.version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let written = self.store.append(&self.stream, expected, events).await?;
        self.version += events.len() as i64;
        Ok(written.positions.len())
    }
}

/// One task's DCB boundary: events tagged with its own tag.
fn boundary(run: &str, task: usize) -> (String, Query) {
    let tag = format!("account:{run}-{task}");
    let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
    (tag, query)
}

/// Reads its boundary, decides (always to append), and appends under the condition "nothing
/// new in my boundary since my read". A failed condition is counted and the decision dropped.
pub struct DecisionAppender {
    store: PgEventStore,
    tag: String,
    query: Query,
    outcomes: Arc<Outcomes>,
}

impl DecisionAppender {
    pub fn new(store: PgEventStore, run: &str, task: usize, outcomes: Arc<Outcomes>) -> Self {
        let (tag, query) = boundary(run, task);
        Self { store, tag, query, outcomes }
    }
}

impl Appender for DecisionAppender {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        // The decision needs only the head (a real one would fold the events it reads).
        let read = self.store.read(&self.query, ReadOptions::new().backwards().limit(1)).await?;
        let events: Vec<NewEvent> =
            events.iter().map(|e| e.clone().with_tags([self.tag.clone()])).collect();
        let condition = AppendCondition::none_after(self.query.clone(), read.head);
        self.outcomes.attempts.fetch_add(1, Ordering::Relaxed);
        match self.store.append_if(&events, Some(&condition)).await {
            Ok(written) => Ok(written.positions.len()),
            Err(Error::ConditionFailed { .. }) => {
                self.outcomes.conflicts.fetch_add(1, Ordering::Relaxed);
                Ok(0)
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// What the bench's account handler is asked.
#[derive(serde::Serialize)]
enum Order {
    /// Opens the account: the first command on it, expected to find its boundary empty
    /// (`CommandHandler::expects_new_boundary`), so it is decided without a read.
    Open,
    /// Deposits an amount into the open account.
    Deposit(u32),
}

/// The task's current account: the handler folds the account's events (how many) and decides
/// one `Opened` or `Deposited` event.
struct Account {
    tag: String,
}

impl CommandHandler for Account {
    type Command = Order;
    type Error = &'static str;
    type Handles = Handle<u64>;

    fn command_type(&self, order: &Order) -> String {
        match order {
            Order::Open => "Open".into(),
            Order::Deposit(_) => "Deposit".into(),
        }
    }

    fn model(&self, _: &Order, model: &mut DecisionModel) -> Handle<u64> {
        let types = QueryItem::types(["Opened", "Deposited"]).with_tags([&self.tag]);
        model.add(StateProjector::new("events", Query::from_items([types]), 0, |n, _| n + 1))
    }

    fn decide(
        &self,
        order: &Order,
        events: &Handle<u64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Self::Error> {
        let opened = *states.get(*events) > 0;
        let (event_type, amount) = match order {
            Order::Open if opened => return Err("the account is open already"),
            Order::Open => ("Opened", 0),
            Order::Deposit(_) if !opened => return Err("no such account"),
            Order::Deposit(amount) => ("Deposited", *amount),
        };
        let event = NewEvent::json(event_type, &serde_json::json!({ "amount": amount }))
            .expect("a JSON object always serializes")
            .with_tags([self.tag.clone()]);
        Ok(vec![event])
    }

    fn expects_new_boundary(&self, order: &Order) -> bool {
        matches!(order, Order::Open)
    }
}

/// Runs one command per operation through the [`CommandExecutor`]; counts attempts beyond the
/// first as false conflicts. Every [`ACCOUNT_LENGTH`] commands it opens a new account (then
/// deposits into it), so that each decision folds a short history (as an aggregate's would),
/// not one that grows for the whole run.
pub struct ExecutorAppender {
    executor: CommandExecutor<PgEventStore>,
    handler: Account,
    outcomes: Arc<Outcomes>,
    run: String,
    task: usize,
    commands: usize,
}

/// Commands per account in the executor scenarios.
const ACCOUNT_LENGTH: usize = 10;

impl ExecutorAppender {
    pub fn new(
        store: PgEventStore,
        records: bool,
        cache: bool,
        run: &str,
        task: usize,
        outcomes: Arc<Outcomes>,
    ) -> Self {
        // Each task has its own executor (as each client would): its own boundaries only.
        let boundaries = if cache { 16 } else { 0 };
        let executor =
            CommandExecutor::new(store).record_commands(records).cache_boundaries(boundaries);
        let (tag, _) = boundary(run, task);
        let run = run.to_string();
        Self { executor, handler: Account { tag }, outcomes, run, task, commands: 0 }
    }
}

impl Appender for ExecutorAppender {
    async fn append<'a>(&'a mut self, _events: &'a [NewEvent]) -> Result<usize, BoxError> {
        let order = if self.commands.is_multiple_of(ACCOUNT_LENGTH) {
            let account = self.commands / ACCOUNT_LENGTH;
            self.handler.tag = boundary(&format!("{}-{account}", self.run), self.task).0;
            Order::Open
        } else {
            Order::Deposit(20)
        };
        self.commands += 1;
        let outcome = self
            .executor
            .execute(&self.handler, &order)
            .await
            .map_err(|e| -> BoxError { e.to_string().into() })?;
        self.outcomes.attempts.fetch_add(outcome.attempts as u64, Ordering::Relaxed);
        self.outcomes.conflicts.fetch_add(outcome.attempts as u64 - 1, Ordering::Relaxed);
        Ok(outcome.positions.len())
    }
}
