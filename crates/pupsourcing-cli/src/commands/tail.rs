//! `pup tail`: follows the log live, filtered, from a position or the end.
//!
//! Reads go through `ProjectionStore::read_batch` over one partition of all: gap-free (an
//! event is printed only once no earlier event can still commit), filtered in SQL by the
//! same scope a projection has. Between reads it waits for PostgreSQL's wake-up notification
//! (`PgEventStore::wakeups`) or polls where there is none.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use pupsourcing_core::dcb::{Query, QueryItem};
use pupsourcing_core::projection::{Partition, Scope};
use pupsourcing_core::{Position, RecordedEvent};
use serde_json::Value;

use crate::backend::{Backend, OnStore};
use crate::error::CliError;
use crate::output::{event_json, event_line};

/// Follow the log live: every event appended from now on (or from --from), as one readable
/// line each or as JSON lines (--json). Stops on Ctrl-C, after --limit events, or, with
/// --no-follow, once caught up.
#[derive(Args)]
pub struct Tail {
    /// First position to print (inclusive) (default: the end of the log: only new events).
    #[arg(long)]
    from: Option<Position>,
    /// Only events of these aggregate types (repeatable).
    #[arg(long = "aggregate-type", value_name = "TYPE")]
    aggregate_types: Vec<String>,
    /// Only events of these bounded contexts (repeatable).
    #[arg(long = "bounded-context", value_name = "CONTEXT")]
    bounded_contexts: Vec<String>,
    /// Only events of these types (repeatable).
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// Only events carrying all of these tags (repeatable).
    #[arg(long = "tag", value_name = "TAG", conflicts_with = "query")]
    tags: Vec<String>,
    /// Only events matching this DCB query, as JSON: `[{"types": [..], "tags": [..]}, ..]`
    /// (items OR-ed; an item matches any of its types and all of its tags).
    #[arg(long, value_name = "JSON")]
    query: Option<String>,
    /// Print JSON lines (every field of each event) instead of readable lines.
    #[arg(long)]
    json: bool,
    /// Stop once caught up instead of following.
    #[arg(long)]
    no_follow: bool,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// How often to look for new events where the database does not notify (SQLite, MySQL), and
    /// the fallback on PostgreSQL, in milliseconds.
    #[arg(long, default_value_t = 200)]
    poll_interval_ms: u64,
}

/// Events read per round trip.
const PAGE: usize = 500;

impl OnStore for Tail {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let scope = self.scope()?;
        let everything = Partition::new(0, 1).expect("one partition is valid");
        let mut after = match self.from {
            Some(from) if from < 1 => return Err(CliError::new("--from must be at least 1")),
            Some(from) => from - 1,
            None => store.head().await?,
        };
        let mut wakeups = if self.no_follow { None } else { store.wakeups().await? };
        let poll = Duration::from_millis(self.poll_interval_ms.max(1));
        let mut left = self.limit.unwrap_or(u64::MAX);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        while left > 0 {
            let batch = store.read_batch(&scope, everything, after, PAGE).await?;
            let shown = batch.events.iter().take(usize::try_from(left).unwrap_or(usize::MAX));
            if !self.print(shown)? {
                return Ok(()); // The reader went away (a closed pipe).
            }
            left = left.saturating_sub(batch.events.len() as u64);
            let full = batch.events.len() >= PAGE;
            after = batch.end(PAGE);
            if full {
                continue;
            }
            if self.no_follow || left == 0 {
                break;
            }
            tokio::select! {
                _ = &mut interrupted => break,
                _ = tokio::time::sleep(poll) => {}
                _ = changed(&mut wakeups) => {}
            }
        }
        Ok(())
    }
}

/// Waits for the next wake-up; never, without a receiver (or once its sender is gone).
async fn changed(wakeups: &mut Option<tokio::sync::watch::Receiver<()>>) {
    let gone = match wakeups {
        Some(rx) => rx.changed().await.is_err(),
        None => true,
    };
    if gone {
        *wakeups = None; // Polling from now on.
        std::future::pending::<()>().await;
    }
}

impl Tail {
    /// The filters as a projection scope.
    fn scope(&self) -> Result<Scope, CliError> {
        let mut scope = Scope::all()
            .aggregate_types(self.aggregate_types.clone())
            .bounded_contexts(self.bounded_contexts.clone())
            .event_types(self.event_types.clone());
        if !self.tags.is_empty() {
            scope = scope.query(Query::from_items([QueryItem::tags(self.tags.clone())]));
        }
        if let Some(text) = &self.query {
            scope = scope.query(parse_query(text)?);
        }
        scope.validate(&Default::default()).map_err(|e| CliError::new(e.to_string()))?;
        Ok(scope)
    }

    /// Writes the events; false when standard output is closed.
    fn print<'a>(&self, events: impl Iterator<Item = &'a RecordedEvent>) -> Result<bool, CliError> {
        let mut out = std::io::stdout().lock();
        let write = || -> std::io::Result<()> {
            for event in events {
                if self.json {
                    writeln!(out, "{}", event_json(event))?;
                } else {
                    writeln!(out, "{}", event_line(event))?;
                }
            }
            out.flush()
        };
        match write() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::new(format!("cannot write to standard output: {e}"))),
        }
    }
}

/// A DCB query from JSON: an array of items (or one item), each `{"types": [..], "tags": [..]}`.
pub fn parse_query(text: &str) -> Result<Query, CliError> {
    let bad = |why: String| {
        CliError::new(format!("--query is not a valid DCB query: {why}"))
            .hint(r#"for example --query '[{"types": ["OrderPlaced"], "tags": ["customer:42"]}]'"#)
    };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => return Err(bad("expected an array of items".into())),
    };
    let strings = |item: &Value, key: &str| -> Result<Vec<String>, CliError> {
        match item.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{key} must be strings")))
                })
                .collect(),
            Some(_) => Err(bad(format!("{key} must be an array of strings"))),
        }
    };
    let mut query = Vec::new();
    for item in &items {
        if let Some(key) =
            item.as_object().and_then(|o| o.keys().find(|k| *k != "types" && *k != "tags"))
        {
            return Err(bad(format!("unknown key {key:?} (items have \"types\" and \"tags\")")));
        }
        query.push(QueryItem::types(strings(item, "types")?).with_tags(strings(item, "tags")?));
    }
    if query.is_empty() {
        return Err(bad("no items (omit --query to match every event)".into()));
    }
    Ok(Query::from_items(query))
}
