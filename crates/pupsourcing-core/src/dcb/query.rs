//! DCB queries: which events a decision depends on.

use crate::error::ValidationError;
use crate::event::RecordedEvent;
use crate::validate::{Limits, check_count, check_name, check_tags};

/// One item of a [`Query`]: events whose type is any of `types` (any type when empty) and whose
/// tags contain all of `tags`. An item needs at least one type or one tag; use [`Query::all`]
/// to match every event.
///
/// ```
/// use pupsourcing_core::dcb::QueryItem;
/// let item = QueryItem::types(["StudentSubscribed"]).with_tags(["course:c1"]);
/// assert!(item.matches("StudentSubscribed", &["course:c1".into(), "student:s1".into()]));
/// assert!(!item.matches("CourseDefined", &["course:c1".into()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct QueryItem {
    /// Event types, any of which matches (empty: any type).
    pub types: Vec<String>,
    /// Tags, all of which must be on the event.
    pub tags: Vec<String>,
}

impl QueryItem {
    /// Events of any of `types`.
    pub fn types<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Self {
        Self { types: types.into_iter().map(Into::into).collect(), tags: Vec::new() }
    }

    /// Events carrying all of `tags`.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(tags: I) -> Self {
        Self { types: Vec::new(), tags: tags.into_iter().map(Into::into).collect() }
    }

    /// Adds tags that must all be present.
    pub fn with_tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Adds types, any of which matches.
    pub fn with_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Whether an event of `event_type` with `tags` matches this item. Never looks at payloads.
    pub fn matches(&self, event_type: &str, tags: &[String]) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self.tags.iter().all(|t| tags.contains(t))
    }
}

/// A DCB query: a list of items, OR-ed. The empty list matches every event ([`Query::all`]).
///
/// ```
/// use pupsourcing_core::dcb::{Query, QueryItem};
/// let q = Query::from_items([
///     QueryItem::types(["CourseDefined", "CourseCapacityChanged"]).with_tags(["course:c1"]),
///     QueryItem::tags(["student:s1"]),
/// ]);
/// assert!(q.matches_event("CourseDefined", &["course:c1".into()]));
/// assert!(q.matches_event("Anything", &["student:s1".into()]));
/// assert!(Query::all().matches_event("Anything", &[]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Query {
    /// The items; empty means all events.
    pub items: Vec<QueryItem>,
}

impl Query {
    /// Matches every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// A query of `items` (OR across items).
    pub fn from_items<I: IntoIterator<Item = QueryItem>>(items: I) -> Self {
        Self { items: items.into_iter().collect() }
    }

    /// Adds an item.
    pub fn or(mut self, item: QueryItem) -> Self {
        self.items.push(item);
        self
    }

    /// True for [`Query::all`].
    pub fn is_all(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether an event of `event_type` with `tags` matches.
    pub fn matches_event(&self, event_type: &str, tags: &[String]) -> bool {
        self.is_all() || self.items.iter().any(|i| i.matches(event_type, tags))
    }

    /// Whether a stored event matches.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.matches_event(&event.event_type, &event.tags)
    }

    /// Checks the query against `limits`: at most `max_query_items` items, each with at least
    /// one type or tag, at most `max_query_types_per_item` types and `max_tags_per_event` tags;
    /// names and tags non-empty, within their lengths, without NUL; no duplicate tag within an
    /// item. A query that passes runs on every backend.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        limits.check()?;
        check_count("query items", self.items.len(), limits.max_query_items)?;
        for item in &self.items {
            if item.types.is_empty() && item.tags.is_empty() {
                return Err(ValidationError::EmptyQueryItem);
            }
            check_count(
                "types of a query item",
                item.types.len(),
                limits.max_query_types_per_item,
            )?;
            check_count("tags of a query item", item.tags.len(), limits.max_tags_per_event)?;
            for t in &item.types {
                check_name("query event type", t, limits.max_name_len)?;
            }
            check_tags(&item.tags, limits.max_tag_len)?;
        }
        Ok(())
    }
}

/// Builds a `key:value` tag.
///
/// ```
/// assert_eq!(pupsourcing_core::dcb::tag("course", "c1"), "course:c1");
/// ```
pub fn tag(key: &str, value: impl std::fmt::Display) -> String {
    format!("{key}:{value}")
}
