//! Quickstart: an event-sourced bank account on embedded SQLite, no server needed.
//!
//! Run with `cargo run --example quickstart`. Set `PUP_QUICKSTART_DB` to keep the database in a
//! file of your choice (default: a fresh in-memory database).

use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::{
    Error, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, VersionRange,
};
use serde::{Deserialize, Serialize};

/// The account's events, stored as JSON payloads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl AccountEvent {
    fn name(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "AccountOpened",
            AccountEvent::Deposited { .. } => "MoneyDeposited",
            AccountEvent::Withdrawn { .. } => "MoneyWithdrawn",
        }
    }

    fn to_new_event(&self) -> pupsourcing::Result<NewEvent> {
        Ok(NewEvent::json(self.name(), self)?.with_bounded_context("banking"))
    }
}

/// Current balance, folded from the stream.
fn balance(events: &[AccountEvent]) -> u64 {
    events.iter().fold(0, |sum, e| match e {
        AccountEvent::Opened { .. } => sum,
        AccountEvent::Deposited { amount } => sum + amount,
        AccountEvent::Withdrawn { amount } => sum - amount,
    })
}

#[tokio::main]
async fn main() -> pupsourcing::Result<()> {
    let url = std::env::var("PUP_QUICKSTART_DB").unwrap_or_else(|_| "sqlite::memory:".into());
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await?;
    store.migrate().await?;

    // 1. Open an account: the stream must not exist yet.
    let account = StreamId::new("Account", uuid::Uuid::now_v7());
    let opened = AccountEvent::Opened { owner: "Ada".into() }.to_new_event()?;
    let written = store.append(&account, ExpectedVersion::NoStream, &[opened]).await?;
    println!("opened {account} at position {}", written.last_position());

    // 2. Two deposits in one batch; the store assigns versions 2 and 3.
    let deposits = [
        AccountEvent::Deposited { amount: 100 }.to_new_event()?,
        AccountEvent::Deposited { amount: 50 }.to_new_event()?,
    ];
    let written = store.append(&account, ExpectedVersion::Exact(1), &deposits).await?;
    println!("deposited twice: versions {:?}", written.versions);

    // 3. A writer with a stale version is refused with a typed error.
    let stale = AccountEvent::Withdrawn { amount: 10 }.to_new_event()?;
    match store.append(&account, ExpectedVersion::Exact(1), &[stale]).await {
        Err(Error::Concurrency { expected, actual, .. }) => {
            println!("stale write refused: expected {expected}, stream is at version {actual}")
        }
        other => panic!("expected a concurrency conflict, got {other:?}"),
    }

    // 4. Rebuild state from the stream.
    let history: Vec<AccountEvent> = store
        .read_stream(&account, VersionRange::all())
        .await?
        .iter()
        .map(|e| e.json())
        .collect::<pupsourcing::Result<_>>()?;
    println!("balance after {} events: {}", history.len(), balance(&history));
    assert_eq!(balance(&history), 150);

    // 5. Tail the global log from the start, as a projection would.
    for event in store.read_all(1, 100).await? {
        println!(
            "  #{} {} (version {:?})",
            event.position,
            event.event_type,
            event.aggregate_version()
        );
    }
    Ok(())
}
