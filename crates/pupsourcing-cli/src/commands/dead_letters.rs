//! `pup dead-letters list|replay|discard`.
//!
//! Handling a dead letter again needs the projection's handler, which lives in the
//! application: there, `pupsourcing_projection::replay_dead_letter` handles it and removes it
//! in one transaction. The CLI has no handler, so its `replay` writes the dead-lettered events
//! out (JSON lines, for a tool that re-drives them) and removes each only with `--remove`,
//! after its line is written; `discard` removes letters without handling them.

use std::io::Write;

use clap::{Args, Subcommand};
use pupsourcing_core::Position;
use pupsourcing_core::projection::DeadLetter;
use serde_json::{Value, json};

use crate::backend::{Backend, OnStore};
use crate::error::CliError;
use crate::output::{Table, event_json, timestamp};

#[derive(Subcommand)]
pub enum DeadLetters {
    /// List dead letters (every projection's, or one's).
    List(List),
    /// Write dead-lettered events out as JSON lines (letter and full event), for a tool that
    /// handles them again; with --remove, remove each letter once its line is written. To
    /// handle one with the projection's own code, call
    /// `pupsourcing_projection::replay_dead_letter` from the application.
    Replay(Replay),
    /// Remove dead letters without handling them (the events stay skipped by the projection).
    Discard(Discard),
}

impl OnStore for DeadLetters {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        match self {
            DeadLetters::List(args) => args.run(store).await,
            DeadLetters::Replay(args) => args.run(store).await,
            DeadLetters::Discard(args) => args.run(store).await,
        }
    }
}

fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "projection": letter.projection,
        "partition": { "key": letter.partition.key(), "count": letter.partition.count() },
        "position": letter.position,
        "event_id": letter.event_id,
        "error": letter.error,
        "attempts": letter.attempts,
        "recorded_at": timestamp(letter.recorded_at),
    })
}

/// The letters of `projection` at `positions` (all of its letters when empty); an error
/// naming any position without a letter, before anything is done.
async fn select<B: Backend>(
    store: &B,
    projection: &str,
    positions: &[Position],
) -> Result<Vec<DeadLetter>, CliError> {
    let letters = store.dead_letters(Some(projection)).await?;
    if positions.is_empty() {
        return Ok(letters);
    }
    if let Some(missing) = positions.iter().find(|p| !letters.iter().any(|l| l.position == **p)) {
        return Err(CliError::new(format!(
            "projection {projection:?} has no dead letter at position {missing}"
        ))
        .hint("see `pup dead-letters list`"));
    }
    Ok(letters.into_iter().filter(|l| positions.contains(&l.position)).collect())
}

/// Removes one letter in a transaction of its own; false when it was already gone.
async fn remove<B: Backend>(store: &B, letter: &DeadLetter) -> Result<bool, CliError> {
    let mut tx = store.begin().await?;
    let removed = store.remove_dead_letter_in(&mut tx, &letter.projection, letter.position).await;
    match removed {
        Ok(removed) => {
            store.commit(tx).await?;
            Ok(removed)
        }
        Err(err) => {
            let _ = store.rollback(tx).await;
            Err(err.into())
        }
    }
}

/// Writes one line to standard output and flushes it (the lock is not held across awaits).
fn write_line(line: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write to standard output: {e}")))
}

#[derive(Args)]
pub struct List {
    /// Only this projection's.
    #[arg(long)]
    projection: Option<String>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

impl List {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let letters = store.dead_letters(self.projection.as_deref()).await?;
        if self.json {
            for letter in &letters {
                println!("{}", letter_json(letter));
            }
            return Ok(());
        }
        let mut table = Table::new(&[
            "PROJECTION",
            "PARTITION",
            "POSITION",
            "EVENT ID",
            "ATTEMPTS",
            "RECORDED",
            "ERROR",
        ]);
        for l in &letters {
            table.row(vec![
                l.projection.clone(),
                l.partition.to_string(),
                l.position.to_string(),
                l.event_id.to_string(),
                l.attempts.to_string(),
                timestamp(l.recorded_at),
                l.error.clone(),
            ]);
        }
        print!("{}", if table.is_empty() { "(no dead letters)\n".into() } else { table.render() });
        Ok(())
    }
}

#[derive(Args)]
pub struct Replay {
    /// The projection's name.
    projection: String,
    /// Only the letters at these positions (repeatable) (default: all of the projection's).
    #[arg(long = "position", value_name = "POSITION")]
    positions: Vec<Position>,
    /// Remove each letter once its line is written (at least once: a letter whose line was
    /// written may stay if the command is interrupted before the removal commits).
    #[arg(long)]
    remove: bool,
}

impl Replay {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let letters = select(store, &self.projection, &self.positions).await?;
        let mut removed = 0;
        for letter in &letters {
            let event = store.read_all(letter.position, 1).await?;
            let event = event.iter().find(|e| e.position == letter.position).ok_or_else(|| {
                CliError::new(format!(
                    "the event at position {} is not in the log",
                    letter.position
                ))
            })?;
            let mut line = letter_json(letter);
            line["event"] = event_json(event);
            write_line(&line)?;
            if self.remove && remove(store, letter).await? {
                removed += 1;
            }
        }
        if self.remove {
            eprintln!("{} dead letter(s) written, {removed} removed", letters.len());
        } else {
            eprintln!(
                "{} dead letter(s) written (kept: pass --remove to remove them)",
                letters.len()
            );
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct Discard {
    /// The projection's name.
    projection: String,
    /// The letters at these positions (repeatable).
    #[arg(long = "position", value_name = "POSITION", required_unless_present = "all")]
    positions: Vec<Position>,
    /// Every letter of the projection.
    #[arg(long, conflicts_with = "positions")]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

impl Discard {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let letters = select(store, &self.projection, &self.positions).await?;
        let question = format!(
            "Discard {} dead letter(s) of {:?}? Their events stay unhandled by it",
            letters.len(),
            self.projection
        );
        if !letters.is_empty() && !self.yes && !super::confirm(&question)? {
            return Err(CliError::new("nothing discarded: not confirmed"));
        }
        let mut removed = 0;
        for letter in &letters {
            if remove(store, letter).await? {
                removed += 1;
            }
        }
        println!("discarded {removed} dead letter(s) of {:?}", self.projection);
        Ok(())
    }
}
