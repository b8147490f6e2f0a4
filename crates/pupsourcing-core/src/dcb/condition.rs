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

    /// Fail if an event matching `query` was appended after `after`, or exists at all when
    /// `after` is `None` (a boundary never read yet).
    ///
    /// ```
    /// use pupsourcing_core::dcb::{AppendCondition, Query};
    /// let last_seen: Option<i64> = None;
    /// assert_eq!(AppendCondition::new(Query::all(), last_seen), AppendCondition::none_match(Query::all()));
    /// ```
    pub fn new(query: Query, after: Option<Position>) -> Self {
        Self { fail_if_events_match: query, after }
    }
}

/// Writes at most this many of a condition's items into messages; the rest are counted.
const SHOWN_ITEMS: usize = 5;
/// Writes at most this many characters of one type or tag into messages.
const SHOWN_CHARS: usize = 64;

impl AppendCondition {
    /// Writes the events the condition guards against, bounded in size whatever the query:
    /// "any event" or "an event of type "A" tagged "x", or ...".
    fn write_query(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items = &self.fail_if_events_match.items;
        if items.is_empty() {
            return f.write_str("any event");
        }
        f.write_str("an event ")?;
        for (i, item) in items.iter().take(SHOWN_ITEMS).enumerate() {
            if i > 0 {
                f.write_str(", or ")?;
            }
            write_item(f, item)?;
        }
        if items.len() > SHOWN_ITEMS {
            write!(f, ", or {} more query items", items.len() - SHOWN_ITEMS)?;
        }
        Ok(())
    }

    /// What [`crate::Error::ConditionFailed`] says: "an event of type "A" was appended after
    /// position 7" (or "exists" without `after`), bounded in size like the `Display` text.
    pub fn failure(&self) -> impl std::fmt::Display + '_ {
        struct Failure<'a>(&'a AppendCondition);
        impl std::fmt::Display for Failure<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.write_query(f)?;
                match self.0.after {
                    Some(after) => write!(f, " was appended after position {after}"),
                    None => f.write_str(" exists"),
                }
            }
        }
        Failure(self)
    }
}

/// "of type A or B tagged x and y".
fn write_item(f: &mut std::fmt::Formatter<'_>, item: &super::QueryItem) -> std::fmt::Result {
    if !item.types.is_empty() {
        f.write_str("of type ")?;
        write_list(f, &item.types, " or ")?;
    }
    if !item.tags.is_empty() {
        f.write_str(if item.types.is_empty() { "tagged " } else { " tagged " })?;
        write_list(f, &item.tags, " and ")?;
    }
    Ok(())
}

fn write_list(f: &mut std::fmt::Formatter<'_>, values: &[String], sep: &str) -> std::fmt::Result {
    for (i, value) in values.iter().take(SHOWN_ITEMS).enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        match value.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => write!(f, "{:?}...", &value[..cut])?,
            None => write!(f, "{value:?}")?,
        }
    }
    if values.len() > SHOWN_ITEMS {
        write!(f, "{sep}{} more", values.len() - SHOWN_ITEMS)?;
    }
    Ok(())
}

/// "fail if an event of type "A" tagged "x" exists after position 7"; long queries are
/// shortened (at most five items, five types and tags per item, 64 characters each).
///
/// ```
/// use pupsourcing_core::dcb::{AppendCondition, Query, QueryItem};
/// let c = AppendCondition::none_after(Query::from_items([QueryItem::types(["A"]).with_tags(["x"])]), 7);
/// assert_eq!(c.to_string(), r#"fail if an event of type "A" tagged "x" exists after position 7"#);
/// ```
impl std::fmt::Display for AppendCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail if ")?;
        self.write_query(f)?;
        f.write_str(" exists")?;
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

    /// Starts at `position` (inclusive). To continue after an event or a head you already
    /// have, use [`ReadOptions::after`].
    pub fn from(mut self, position: Position) -> Self {
        self.from = Some(position);
        self
    }

    /// Starts after `position` (exclusive), like [`AppendCondition::after`]: pass the head of a
    /// read, or the position of the last event handled, to read only what came since.
    ///
    /// ```
    /// use pupsourcing_core::dcb::ReadOptions;
    /// assert_eq!(ReadOptions::new().after(41), ReadOptions::new().from(42));
    /// ```
    pub fn after(mut self, position: Position) -> Self {
        self.from = Some(position.saturating_add(1));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::dcb::QueryItem;

    #[test]
    fn a_failed_condition_reads_well() {
        let query = Query::from_items([
            QueryItem::types(["CourseDefined", "CourseCapacityChanged"]).with_tags(["course:c1"]),
            QueryItem::tags(["student:s1"]),
        ]);
        let failed =
            Error::ConditionFailed { condition: Box::new(AppendCondition::none_after(query, 41)) };
        assert_eq!(
            failed.to_string(),
            "append condition failed: an event of type \"CourseDefined\" or \
             \"CourseCapacityChanged\" tagged \"course:c1\", or tagged \"student:s1\" was appended \
             after position 41; nothing was written, re-read and decide again"
        );
        let all = Error::ConditionFailed { condition: Box::default() };
        assert_eq!(
            all.to_string(),
            "append condition failed: any event exists; nothing was written, re-read and decide \
             again"
        );
    }

    #[test]
    fn a_huge_condition_gives_a_short_message() {
        let long = "x".repeat(10_000);
        let items = (0..70_000).map(|i| {
            QueryItem::types((0..10).map(|t| format!("T{t}"))).with_tags([format!("{long}{i}")])
        });
        let condition = AppendCondition::none_after(Query::from_items(items), 7);
        let message = Error::ConditionFailed { condition: Box::new(condition.clone()) }.to_string();
        assert!(message.len() < 2_000, "{} bytes", message.len());
        assert!(
            message.contains("or 69995 more query items was appended after position 7"),
            "{message}"
        );
        assert!(condition.to_string().len() < 2_000);
    }
}
