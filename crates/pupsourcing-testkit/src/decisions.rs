//! The command executor's boundary cache (`CommandExecutor::cache_boundaries`): a decision on
//! cached events is the one a fresh read would give, a stale cache never lets a decision
//! through, and refusals are never made on cached state alone.

use std::convert::Infallible;

use pupsourcing_core::NewEvent;
use pupsourcing_core::dcb::{
    CommandExecutor, CommandHandler, DcbStore, DecisionModel, ExecuteError, Handle, Query,
    QueryItem, ReadOptions, StateProjector, States,
};
use uuid::Uuid;

fn boundary(tag: &str) -> Query {
    Query::from_items([QueryItem::tags([tag])])
}

fn event(event_type: &str, tag: &str, value: i64) -> NewEvent {
    NewEvent::json(event_type, &serde_json::json!({ "value": value }))
        .expect("a JSON object serializes")
        .with_tags([tag.to_string()])
}

fn value(event: &pupsourcing_core::RecordedEvent) -> i64 {
    event.json::<serde_json::Value>().unwrap()["value"].as_i64().unwrap()
}

/// Appends the next number of a boundary: the state is how many numbers it holds.
struct Next {
    tag: String,
}

impl CommandHandler for Next {
    type Command = ();
    type Error = Infallible;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &()) -> String {
        "Next".into()
    }

    fn model(&self, _: &(), model: &mut DecisionModel) -> Handle<i64> {
        model.add(StateProjector::new("count", boundary(&self.tag), 0, |n, _| n + 1))
    }

    fn decide(
        &self,
        _: &(),
        count: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Infallible> {
        Ok(vec![event("Numbered", &self.tag, states.get(*count) + 1)])
    }
}

async fn numbers<S: DcbStore>(store: &S, tag: &str) -> Vec<i64> {
    let read = store.read(&boundary(tag), ReadOptions::new()).await.unwrap();
    read.events.iter().map(value).collect()
}

/// Numbers a boundary from executors with caches of their own (as separate processes would
/// have) and without: sequentially, a warm cache decides in one attempt and a cache made stale
/// by another executor costs exactly one failed attempt; concurrently, the numbers still come
/// out 1, 2, 3, ... with no repeat. A cache missing its own appends, or a decision on cached
/// events appended without its condition, repeats numbers.
pub async fn cached_decisions_number_without_repeats<S: DcbStore>(store: S) {
    let tag = format!("counter:{}", Uuid::new_v4());
    let next = Next { tag: tag.clone() };
    let a = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let b = CommandExecutor::new(store.clone()).cache_boundaries(8).record_commands(false);
    let plain = CommandExecutor::new(store.clone());
    let attempts = |outcome: Result<_, ExecuteError<Infallible>>| match outcome {
        Ok(pupsourcing_core::dcb::CommandOutcome { attempts, .. }) => attempts,
        Err(e) => panic!("the executor failed: {e}"),
    };
    for i in 0..5 {
        assert_eq!(attempts(a.execute(&next, &()).await), 1, "command {i} of a lone executor");
    }
    assert_eq!(attempts(b.execute(&next, &()).await), 1, "a cold cache reads");
    assert_eq!(attempts(a.execute(&next, &()).await), 2, "a stale cache fails once, then reads");
    assert_eq!(attempts(a.execute(&next, &()).await), 1, "warm again");
    assert_eq!(attempts(plain.execute(&next, &()).await), 1);
    assert_eq!(numbers(&store, &tag).await, (1..=9).collect::<Vec<_>>());

    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let executor = if i % 2 == 0 { a.clone() } else { b.clone() }.max_attempts(50);
            let next = Next { tag: tag.clone() };
            tokio::spawn(async move {
                for _ in 0..8 {
                    executor.execute(&next, &()).await.expect("fifty attempts suffice");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(numbers(&store, &tag).await, (1..=57).collect::<Vec<_>>());
}

/// An account: deposits and withdrawals of one tag.
struct Account {
    tag: String,
}

/// What to do with an [`Account`].
#[derive(serde::Serialize)]
enum Order {
    Deposit(i64),
    /// Refused when the balance is lower.
    Withdraw(i64),
    /// Withdraws the whole balance; nothing when it is zero.
    Empty,
}

impl CommandHandler for Account {
    type Command = Order;
    type Error = &'static str;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &Order) -> String {
        "Account".into()
    }

    fn model(&self, _: &Order, model: &mut DecisionModel) -> Handle<i64> {
        let balance = |b: i64, e: &pupsourcing_core::RecordedEvent| match e.event_type.as_str() {
            "Deposited" => b + value(e),
            _ => b - value(e),
        };
        model.add(StateProjector::new("balance", boundary(&self.tag), 0, balance))
    }

    fn decide(
        &self,
        order: &Order,
        h: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        let balance = *states.get(*h);
        match *order {
            Order::Deposit(n) => Ok(vec![event("Deposited", &self.tag, n)]),
            Order::Withdraw(n) if n > balance => Err("insufficient funds"),
            Order::Withdraw(n) => Ok(vec![event("Withdrawn", &self.tag, n)]),
            Order::Empty if balance == 0 => Ok(Vec::new()),
            Order::Empty => Ok(vec![event("Withdrawn", &self.tag, balance)]),
        }
    }
}

/// A refusal, or a decision to append nothing, made on cached state that another writer has
/// since changed would be wrong without any failed condition to tell: the executor makes both
/// again on a fresh read.
pub async fn cached_refusals_are_made_again_on_fresh_state<S: DcbStore>(store: S) {
    let account = Account { tag: format!("account:{}", Uuid::new_v4()) };
    let cached = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let other = CommandExecutor::new(store.clone());
    let run = |executor: &CommandExecutor<S>, order: Order| {
        let (executor, account) = (executor.clone(), &account);
        async move { executor.execute(account, &order).await }
    };
    run(&cached, Order::Deposit(10)).await.unwrap();
    run(&cached, Order::Withdraw(10)).await.unwrap();
    // The cache now says 0; another writer deposits 5.
    run(&other, Order::Deposit(5)).await.unwrap();
    let withdrawn = run(&cached, Order::Withdraw(5)).await;
    assert!(withdrawn.is_ok(), "a refusal on stale cached state: {withdrawn:?}");
    run(&other, Order::Deposit(7)).await.unwrap();
    let emptied = run(&cached, Order::Empty).await.unwrap();
    assert_eq!(emptied.positions.len(), 1, "nothing to withdraw, decided on stale cached state");
    let refused = run(&cached, Order::Withdraw(1)).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected("insufficient funds"))), "{refused:?}");
}
