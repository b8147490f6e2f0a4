//! Append conditions and read options.

use crate::event::{Position, RecordedEvent};

use super::Query;

/// The consistency check of a DCB append: fail if any event matching `fail_if_events_match`
/// exists after position `after` (exclusive). Without `after`, no matching event may exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppendCondition {
    /// The decision's boundary.
    pub fail_if_events_match: Query,
    /// The position the decision was made at (usually the head returned by the read).
    pub after: Option<Position>,
}

impl AppendCondition {
    /// Fail if any event matching `query` exists at all.
    pub fn none_match(query: Query) -> Self {
        Self { fail_if_events_match: query, after: None }
    }

    /// Fail if an event matching `query` was appended after `after`.
    pub fn none_after(query: Query, after: Position) -> Self {
        Self { fail_if_events_match: query, after: Some(after) }
    }
}

impl std::fmt::Display for AppendCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no event matching {:?}", self.fail_if_events_match.items)?;
        match self.after {
            Some(after) => write!(f, " after position {after}"),
            None => Ok(()),
        }
    }
}

/// Options of a DCB read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// First position to return (inclusive); when reading backwards, the highest.
    pub from: Option<Position>,
    /// Read from the newest event down.
    pub backwards: bool,
    /// At most this many events.
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// Forwards from the start, no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts at `position` (inclusive).
    pub fn from(mut self, position: Position) -> Self {
        self.from = Some(position);
        self
    }

    /// Reads backwards.
    pub fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// Returns at most `limit` events.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// What a DCB read returns: the matching events (ascending unless read backwards) and the store
/// head of the same read, a valid [`AppendCondition::after`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReadResult {
    /// Matching events.
    pub events: Vec<RecordedEvent>,
    /// The gap-free head the read was capped at (0 for an empty store).
    pub head: Position,
}

impl AppendCondition {
    /// Checks the query's items and that `after` is not negative.
    pub fn validate(&self, limits: &crate::validate::Limits) -> Result<(), crate::ValidationError> {
        if self.after.is_some_and(|a| a < 0) {
            return Err(crate::ValidationError::OutOfRange {
                field: "after",
                reason: "positions are never negative",
            });
        }
        self.fail_if_events_match.validate(limits)
    }
}
