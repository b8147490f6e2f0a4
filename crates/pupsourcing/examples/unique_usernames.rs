//! DCB example: usernames unique across all accounts, without a uniqueness table. A username
//! is free again once its account is closed or renamed.
//!
//! Run with `cargo run --example unique_usernames` (embedded SQLite).

use pupsourcing::dcb::{
    CommandExecutor, CommandHandler, DecisionModel, ExecuteError, Handle, Query, QueryItem,
    StateProjector, States, tag,
};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::{NewEvent, RecordedEvent, StoreConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
enum Command {
    Register { account: String, username: String },
    Rename { account: String, username: String },
    Close { account: String },
}

#[derive(Debug, PartialEq)]
enum Refused {
    UsernameTaken,
    NoSuchAccount,
    AccountExists,
}

/// Every event names the account and the usernames it claims or releases.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Change {
    account: String,
    claims: Option<String>,
    releases: Option<String>,
}

/// Whether a username is currently claimed.
fn username_projector(username: &str) -> StateProjector<bool> {
    let name = username.to_string();
    let query = Query::from_items([QueryItem::tags([tag("username", username)])]);
    StateProjector::new("username", query, false, move |claimed, e: &RecordedEvent| {
        match e.json::<Change>() {
            Ok(c) if c.claims.as_deref() == Some(&name) => true,
            Ok(c) if c.releases.as_deref() == Some(&name) => false,
            _ => claimed,
        }
    })
}

/// The account's current username, if it is open.
fn account_projector(account: &str) -> StateProjector<Option<String>> {
    let query = Query::from_items([QueryItem::tags([tag("account", account)])]);
    StateProjector::new("account", query, None, |current, e: &RecordedEvent| {
        match e.json::<Change>() {
            Ok(c) => c.claims.or(if c.releases.is_some() && e.event_type == "AccountClosed" {
                None
            } else {
                current
            }),
            Err(_) => current,
        }
    })
}

struct Accounts;

impl CommandHandler for Accounts {
    type Command = Command;
    type Error = Refused;
    type Handles = (Handle<Option<String>>, Option<Handle<bool>>);

    fn command_type(&self, command: &Command) -> String {
        format!("{command:?}").split_whitespace().next().unwrap_or_default().to_string()
    }

    fn model(&self, command: &Command, model: &mut DecisionModel) -> Self::Handles {
        match command {
            Command::Register { account, username } | Command::Rename { account, username } => (
                model.add(account_projector(account)),
                Some(model.add(username_projector(username))),
            ),
            Command::Close { account } => (model.add(account_projector(account)), None),
        }
    }

    fn decide(
        &self,
        command: &Command,
        h: &Self::Handles,
        states: &States,
    ) -> Result<Vec<NewEvent>, Refused> {
        let current = states.get(h.0).clone();
        let taken = h.1.is_some_and(|h| *states.get(h));
        let change =
            |kind: &str, account: &str, claims: Option<&String>, releases: Option<&String>| {
                let data = Change {
                    account: account.into(),
                    claims: claims.cloned(),
                    releases: releases.cloned(),
                };
                let mut tags = vec![tag("account", account)];
                tags.extend(claims.iter().chain(releases.iter()).map(|u| tag("username", u)));
                NewEvent::json(kind, &data).expect("plain structs serialise").with_tags(tags)
            };
        match command {
            Command::Register { account, username } => {
                if current.is_some() {
                    return Err(Refused::AccountExists);
                }
                if taken {
                    return Err(Refused::UsernameTaken);
                }
                Ok(vec![change("AccountRegistered", account, Some(username), None)])
            }
            Command::Rename { account, username } => {
                let Some(old) = current else { return Err(Refused::NoSuchAccount) };
                if taken {
                    return Err(Refused::UsernameTaken);
                }
                Ok(vec![change("UsernameChanged", account, Some(username), Some(&old))])
            }
            Command::Close { account } => {
                let Some(old) = current else { return Err(Refused::NoSuchAccount) };
                Ok(vec![change("AccountClosed", account, None, Some(&old))])
            }
        }
    }

    /// A registration usually finds its account and its username never used: it is decided
    /// without a read, under the condition that both still are (a name used before costs one
    /// failed append, then a read).
    fn expects_new_boundary(&self, command: &Command) -> bool {
        matches!(command, Command::Register { .. })
    }
}

#[tokio::main]
async fn main() -> pupsourcing::Result<()> {
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
    store.migrate().await?;
    let executor = CommandExecutor::new(store);
    let commands = [
        Command::Register { account: "1".into(), username: "ada".into() },
        Command::Register { account: "2".into(), username: "ada".into() },
        Command::Rename { account: "1".into(), username: "countess".into() },
        Command::Register { account: "2".into(), username: "ada".into() },
        Command::Close { account: "2".into() },
        Command::Register { account: "3".into(), username: "ada".into() },
    ];
    for command in commands {
        match executor.execute(&Accounts, &command).await {
            Ok(_) => println!("{command:?}: ok"),
            Err(ExecuteError::Rejected(why)) => println!("{command:?}: refused ({why:?})"),
            Err(ExecuteError::Store(err)) => return Err(err),
        }
    }
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

    fn register(account: &str, username: &str) -> Command {
        Command::Register { account: account.into(), username: username.into() }
    }

    fn decided(given: Vec<NewEvent>, command: Command) -> Vec<NewEvent> {
        Scenario::new(&Accounts).given(given).when(&command).result.expect("accepted")
    }

    #[test]
    fn claims_and_refuses_a_claimed_name() {
        let first = decided(vec![], register("1", "ada"));
        Scenario::new(&Accounts)
            .given(first)
            .when(&register("2", "ada"))
            .then_error(|e| *e == Refused::UsernameTaken);
    }

    #[test]
    fn a_closed_account_releases_its_name() {
        let mut history = decided(vec![], register("1", "ada"));
        history.extend(decided(history.clone(), Command::Close { account: "1".into() }));
        Scenario::new(&Accounts)
            .given(history)
            .when(&register("2", "ada"))
            .then_event_types(&["AccountRegistered"]);
    }

    #[test]
    fn a_rename_releases_the_old_name() {
        let mut history = decided(vec![], register("1", "ada"));
        history.extend(decided(
            history.clone(),
            Command::Rename { account: "1".into(), username: "bea".into() },
        ));
        Scenario::new(&Accounts)
            .given(history.clone())
            .when(&register("2", "ada"))
            .then_event_types(&["AccountRegistered"]);
        Scenario::new(&Accounts)
            .given(history)
            .when(&register("2", "bea"))
            .then_error(|e| *e == Refused::UsernameTaken);
    }
}
