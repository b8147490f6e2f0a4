//! `pup append`: one event from the command line, through `EventStore::append` (to a
//! stream) or `DcbStore::append_if` (tags, optionally under a condition).

use clap::Args;
use pupsourcing_core::dcb::AppendCondition;
use pupsourcing_core::{AppendResult, EventStore, ExpectedVersion, NewEvent, Position, StreamId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend::{Backend, OnStore};
use crate::error::CliError;

/// Append one event: to an aggregate stream (--stream, with --expected-version), or to the
/// log with tags (DCB), optionally failing when events match --fail-if (after --after).
#[derive(Args)]
pub struct Append {
    /// The event type.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: String,
    /// The payload, as JSON.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    data: String,
    /// The aggregate stream, as TYPE/UUID (e.g. Order/0190f3c4-...).
    #[arg(long, value_name = "TYPE/UUID")]
    stream: Option<String>,
    /// With --stream: `any`, `no-stream`, or the version the stream must be at.
    #[arg(long, value_name = "VERSION", default_value = "any", requires = "stream")]
    expected_version: String,
    /// A tag (repeatable), often key:value.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// The bounded context.
    #[arg(long)]
    bounded_context: Option<String>,
    /// JSON metadata.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// The event id (the idempotency key: appending the same id again changes nothing)
    /// (default: a new UUIDv7).
    #[arg(long)]
    event_id: Option<Uuid>,
    /// The payload's schema version.
    #[arg(long, default_value_t = 1)]
    event_version: i32,
    /// DCB condition (without --stream): fail, writing nothing, if an event matching this
    /// query (JSON, as `pup tail --query`) exists after --after (or at all).
    #[arg(long, value_name = "JSON", conflicts_with = "stream")]
    fail_if: Option<String>,
    /// With --fail-if: the position the decision was made at.
    #[arg(long, requires = "fail_if")]
    after: Option<Position>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl OnStore for Append {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let event = self.event()?;
        let events = std::slice::from_ref(&event);
        let result = match self.stream()? {
            Some((stream, expected)) => {
                EventStore::append(store, &stream, expected, events).await?
            }
            None => {
                let condition = match &self.fail_if {
                    Some(query) => {
                        Some(AppendCondition::new(super::tail::parse_query(query)?, self.after))
                    }
                    None => None,
                };
                store.append_if(events, condition.as_ref()).await?
            }
        };
        self.report(&event, &result);
        Ok(())
    }
}

impl Append {
    fn event(&self) -> Result<NewEvent, CliError> {
        let json = |flag: &str, text: &str| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| CliError::new(format!("{flag} is not valid JSON: {e}")))
        };
        let data = json("--data", &self.data)?;
        let mut event = NewEvent::json(self.event_type.clone(), &data)?
            .with_event_version(self.event_version)
            .with_tags(self.tags.clone());
        if let Some(context) = &self.bounded_context {
            event = event.with_bounded_context(context.clone());
        }
        if let Some(metadata) = &self.metadata {
            event = event.with_metadata(json("--metadata", metadata)?);
        }
        if let Some(id) = self.event_id {
            event = event.with_id(id);
        }
        Ok(event)
    }

    fn stream(&self) -> Result<Option<(StreamId, ExpectedVersion)>, CliError> {
        let Some(text) = &self.stream else { return Ok(None) };
        let bad = || {
            CliError::new(format!("--stream {text:?} is not TYPE/UUID"))
                .hint(format!("for example --stream Order/{}", Uuid::now_v7()))
        };
        let (kind, id) = text.rsplit_once('/').ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        let expected = match self.expected_version.as_str() {
            "any" => ExpectedVersion::Any,
            "no-stream" | "none" => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(n.parse().map_err(|_| {
                CliError::new(format!("--expected-version {n:?} is not any, no-stream or a number"))
            })?),
        };
        Ok(Some((StreamId::new(kind, id), expected)))
    }

    fn report(&self, event: &NewEvent, result: &AppendResult) {
        let position = result.last_position();
        let version = self.stream.as_ref().map(|_| result.last_version());
        if self.json {
            let report = json!({
                "event_id": event.event_id,
                "position": position,
                "aggregate_version": version,
                "replayed": result.replayed,
            });
            println!("{report}");
            return;
        }
        let what = if result.replayed { "already stored" } else { "appended" };
        match version {
            Some(v) => println!("{what} {} at position {position} (version {v})", event.event_id),
            None => println!("{what} {} at position {position}", event.event_id),
        }
    }
}
