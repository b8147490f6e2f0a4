//! DCB example: money transfers between accounts with no overdraft, even when many transfers
//! from one account race. A transfer is one event tagged with both accounts.
//!
//! Run with `cargo run --example money_transfer` (embedded SQLite).

use pupsourcing::dcb::{
    CommandExecutor, CommandHandler, DecisionModel, Handle, Query, QueryItem, StateProjector,
    States, tag,
};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::{NewEvent, RecordedEvent, StoreConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
enum Command {
    Open { account: String, initial: u64 },
    Transfer { from: String, to: String, amount: u64 },
}

#[derive(Debug, PartialEq)]
enum Refused {
    AccountExists,
    NoSuchAccount(String),
    SameAccount,
    ZeroAmount,
    InsufficientFunds { balance: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
struct Opened {
    account: String,
    initial: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Transferred {
    from: String,
    to: String,
    amount: u64,
}

/// One account's state.
#[derive(Debug, Default, Clone, Copy)]
struct Account {
    open: bool,
    balance: u64,
}

fn account_projector(account: &str) -> StateProjector<Account> {
    let me = account.to_string();
    let query = Query::from_items([QueryItem::types(["AccountOpened", "MoneyTransferred"])
        .with_tags([tag("account", account)])]);
    StateProjector::new(
        format!("account {account}"),
        query,
        Account::default(),
        move |mut a, e: &RecordedEvent| {
            if e.event_type == "AccountOpened" {
                if let Ok(opened) = e.json::<Opened>() {
                    a = Account { open: true, balance: opened.initial };
                }
            } else if let Ok(t) = e.json::<Transferred>() {
                if t.from == me {
                    a.balance -= t.amount;
                }
                if t.to == me {
                    a.balance += t.amount;
                }
            }
            a
        },
    )
}

struct Bank;

impl CommandHandler for Bank {
    type Command = Command;
    type Error = Refused;
    type Handles = (Handle<Account>, Option<Handle<Account>>);

    fn command_type(&self, command: &Command) -> String {
        match command {
            Command::Open { .. } => "OpenAccount".into(),
            Command::Transfer { .. } => "TransferMoney".into(),
        }
    }

    fn model(&self, command: &Command, model: &mut DecisionModel) -> Self::Handles {
        match command {
            Command::Open { account, .. } => (model.add(account_projector(account)), None),
            Command::Transfer { from, to, .. } => {
                (model.add(account_projector(from)), Some(model.add(account_projector(to))))
            }
        }
    }

    fn decide(
        &self,
        command: &Command,
        handles: &Self::Handles,
        states: &States,
    ) -> Result<Vec<NewEvent>, Refused> {
        let first = *states.get(handles.0);
        match command {
            Command::Open { account, initial } => {
                if first.open {
                    return Err(Refused::AccountExists);
                }
                let data = Opened { account: account.clone(), initial: *initial };
                Ok(vec![event("AccountOpened", &data, vec![tag("account", account)])])
            }
            Command::Transfer { from, to, amount } => {
                let target = handles.1.map(|h| *states.get(h)).unwrap_or_default();
                if from == to {
                    return Err(Refused::SameAccount);
                }
                if *amount == 0 {
                    return Err(Refused::ZeroAmount);
                }
                if !first.open {
                    return Err(Refused::NoSuchAccount(from.clone()));
                }
                if !target.open {
                    return Err(Refused::NoSuchAccount(to.clone()));
                }
                if first.balance < *amount {
                    return Err(Refused::InsufficientFunds { balance: first.balance });
                }
                let data = Transferred { from: from.clone(), to: to.clone(), amount: *amount };
                Ok(vec![event(
                    "MoneyTransferred",
                    &data,
                    vec![tag("account", from), tag("account", to)],
                )])
            }
        }
    }
}

/// A tagged event with a JSON payload (plain structs always serialise).
fn event<T: Serialize>(kind: &str, data: &T, tags: Vec<String>) -> NewEvent {
    NewEvent::json(kind, data).expect("plain structs serialise").with_tags(tags)
}

#[tokio::main]
async fn main() -> pupsourcing::Result<()> {
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
    store.migrate().await?;
    let bank = CommandExecutor::new(store.clone()).max_attempts(20);
    for (account, initial) in [("alice", 100), ("bob", 0)] {
        bank.execute(&Bank, &Command::Open { account: account.into(), initial }).await.ok();
    }
    // Ten transfers of 20 race to drain Alice's 100: exactly five go through.
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let bank = bank.clone();
            tokio::spawn(async move {
                let transfer =
                    Command::Transfer { from: "alice".into(), to: "bob".into(), amount: 20 };
                bank.execute(&Bank, &transfer).await.is_ok()
            })
        })
        .collect();
    let mut done = 0;
    for racer in racers {
        done += usize::from(racer.await.unwrap_or(false));
    }
    let mut model = DecisionModel::new();
    let alice = model.add(account_projector("alice"));
    let bob = model.add(account_projector("bob"));
    let (states, _) = pupsourcing::dcb::DcbStore::project(&store, model).await?;
    let (a, b) = (states.get(alice).balance, states.get(bob).balance);
    println!(
        "10 concurrent transfers of 20 from alice (opened with 100) to bob (opened with 0): \
         {done} went through, the rest were refused for lack of funds; alice has {a}, bob has {b}"
    );
    assert_eq!((done, a, b), (5, 0, 100));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pupsourcing::dcb::Scenario;

    /// The example itself, end to end on embedded SQLite (its races included).
    #[test]
    fn the_example_runs() {
        main().expect("the example runs");
    }

    fn opened(account: &str, initial: u64) -> NewEvent {
        event(
            "AccountOpened",
            &Opened { account: account.into(), initial },
            vec![tag("account", account)],
        )
    }

    fn transfer(from: &str, to: &str, amount: u64) -> Command {
        Command::Transfer { from: from.into(), to: to.into(), amount }
    }

    #[test]
    fn no_overdraft() {
        let given = [opened("a", 30), opened("b", 0)];
        Scenario::new(&Bank)
            .given(given.clone())
            .when(&transfer("a", "b", 30))
            .then_event_types(&["MoneyTransferred"]);
        Scenario::new(&Bank)
            .given(given)
            .when(&transfer("a", "b", 31))
            .then_error(|e| *e == Refused::InsufficientFunds { balance: 30 });
    }

    #[test]
    fn balances_follow_earlier_transfers() {
        let moved = event(
            "MoneyTransferred",
            &Transferred { from: "a".into(), to: "b".into(), amount: 25 },
            vec![tag("account", "a"), tag("account", "b")],
        );
        let given = [opened("a", 30), opened("b", 0), moved];
        Scenario::new(&Bank)
            .given(given.clone())
            .when(&transfer("a", "b", 10))
            .then_error(|e| *e == Refused::InsufficientFunds { balance: 5 });
        Scenario::new(&Bank)
            .given(given)
            .when(&transfer("b", "a", 25))
            .then_event_types(&["MoneyTransferred"]);
    }

    #[test]
    fn refuses_bad_transfers() {
        let given = [opened("a", 30)];
        Scenario::new(&Bank)
            .given(given.clone())
            .when(&transfer("a", "x", 1))
            .then_error(|e| *e == Refused::NoSuchAccount("x".into()));
        Scenario::new(&Bank)
            .given(given.clone())
            .when(&transfer("a", "a", 1))
            .then_error(|e| *e == Refused::SameAccount);
        Scenario::new(&Bank)
            .given(given.clone())
            .when(&transfer("a", "b", 0))
            .then_error(|e| *e == Refused::ZeroAmount);
        Scenario::new(&Bank)
            .given(given)
            .when(&Command::Open { account: "a".into(), initial: 1 })
            .then_error(|e| *e == Refused::AccountExists);
    }
}
