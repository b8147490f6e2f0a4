//! `pup projection list|reset`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use pupsourcing_core::RecordedEvent;
use pupsourcing_core::coordination::CoordinationStore;
use pupsourcing_core::projection::ProjectionStore;
use pupsourcing_projection::{HandlerError, Projection};
use serde_json::json;

use crate::backend::{Backend, OnStore};
use crate::error::CliError;
use crate::output::Table;

#[derive(Subcommand)]
pub enum ProjectionCommand {
    /// List the projections the database knows: those with checkpoints, orchestrator shards
    /// or dead letters.
    List(List),
    /// Reset a projection: remove its checkpoints and dead letters and rewind its
    /// orchestrator shards to position 0 (unowned, under a new epoch), in one transaction,
    /// so its next run replays the log from the start.
    ///
    /// The CLI does not have the projection's code, so it cannot run its `reset` hook: clear
    /// the read model yourself (or reset from the application with
    /// `pupsourcing_projection::reset`, which clears both in one transaction). Stop the
    /// projection's processors first.
    Reset(Reset),
}

impl OnStore for ProjectionCommand {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        match self {
            ProjectionCommand::List(list) => list.run(store).await,
            ProjectionCommand::Reset(reset) => reset.run(store).await,
        }
    }
}

/// What the database holds of one projection.
#[derive(Default)]
struct Known {
    partitions: usize,
    shards: usize,
    dead_letters: usize,
}

/// Every projection name the store has rows for.
async fn known<B: Backend>(store: &B) -> Result<BTreeMap<String, Known>, CliError> {
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    for checkpoint in ProjectionStore::checkpoints(store).await? {
        known.entry(checkpoint.projection).or_default().partitions += 1;
    }
    for shard in CoordinationStore::shards(store).await? {
        known.entry(shard.id.projection).or_default().shards += 1;
    }
    for letter in store.dead_letters(None).await? {
        known.entry(letter.projection).or_default().dead_letters += 1;
    }
    Ok(known)
}

#[derive(Args)]
pub struct List {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl List {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let known = known(store).await?;
        if self.json {
            let list: Vec<_> = known
                .iter()
                .map(|(name, k)| {
                    json!({
                        "projection": name,
                        "partitions": k.partitions,
                        "shards": k.shards,
                        "dead_letters": k.dead_letters,
                    })
                })
                .collect();
            println!("{}", json!(list));
            return Ok(());
        }
        let mut table = Table::new(&["PROJECTION", "PARTITIONS", "SHARDS", "DEAD LETTERS"]);
        for (name, k) in &known {
            table.row(vec![
                name.clone(),
                k.partitions.to_string(),
                k.shards.to_string(),
                k.dead_letters.to_string(),
            ]);
        }
        print!("{}", if table.is_empty() { "(no projections)\n".into() } else { table.render() });
        Ok(())
    }
}

#[derive(Args)]
pub struct Reset {
    /// The projection's name.
    name: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

impl Reset {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let known = known(store).await?;
        if !known.contains_key(&self.name) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            let hint = if names.is_empty() {
                "the database has no projection rows at all".to_string()
            } else {
                format!("known projections: {}", names.join(", "))
            };
            return Err(CliError::new(format!("no projection named {:?}", self.name)).hint(hint));
        }
        let question = format!(
            "Reset projection {:?}? Its checkpoints and dead letters are removed and it replays the log from position 0",
            self.name
        );
        if !self.yes && !super::confirm(&question)? {
            return Err(CliError::new("not reset: not confirmed"));
        }
        pupsourcing_projection::reset(store, &ByName(self.name.clone())).await?;
        println!("reset projection {:?}: it replays from position 0 on its next run", self.name);
        Ok(())
    }
}

/// A projection known only by name: enough for `reset`, whose hook does nothing here. Its
/// handler is never called by the CLI.
struct ByName(String);

impl<S: pupsourcing_core::EventStore> Projection<S> for ByName {
    fn name(&self) -> &str {
        &self.0
    }

    async fn handle(&self, _: &mut S::Connection, _: &RecordedEvent) -> Result<(), HandlerError> {
        Err("the pup command line has no handler for this projection".into())
    }
}
