//! Which events a projection sees.

use crate::dcb::Query;
use crate::error::ValidationError;
use crate::event::RecordedEvent;
use crate::validate::Limits;

/// The events a projection handles: those matching every filter that is set.
///
/// Each list matches an event whose field is any of its entries (an empty list matches every
/// event); a [`Query`] matches as in DCB reads. The default scope has no filter: every event.
/// Backends filter in SQL, so a scoped projection never fetches the events it ignores.
///
/// ```
/// use pupsourcing_core::projection::Scope;
/// let orders = Scope::all().aggregate_types(["Order"]).bounded_contexts(["sales"]);
/// assert!(!orders.is_all());
/// assert!(Scope::default().is_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Aggregate types whose events match (an event outside any stream never matches a
    /// non-empty list).
    pub aggregate_types: Vec<String>,
    /// Bounded contexts whose events match.
    pub bounded_contexts: Vec<String>,
    /// Event types that match.
    pub event_types: Vec<String>,
    /// A DCB query the events must match.
    pub query: Option<Query>,
}

impl Scope {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only events of aggregates of these types.
    pub fn aggregate_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.aggregate_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Only events of these bounded contexts.
    pub fn bounded_contexts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, c: I) -> Self {
        self.bounded_contexts = c.into_iter().map(Into::into).collect();
        self
    }

    /// Only events of these types.
    pub fn event_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Only events matching a DCB query.
    pub fn query(mut self, query: Query) -> Self {
        self.query = Some(query);
        self
    }

    /// Whether the scope matches every event.
    pub fn is_all(&self) -> bool {
        self.aggregate_types.is_empty()
            && self.bounded_contexts.is_empty()
            && self.event_types.is_empty()
            && self.query.as_ref().is_none_or(Query::is_all)
    }

    /// Whether `event` is in scope: the rule the backends' SQL implements, which the
    /// conformance suite checks it against.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        let listed = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        let aggregate_type = event.stream.as_ref().map(|(s, _)| s.aggregate_type.as_str());
        listed(&self.aggregate_types, aggregate_type)
            && listed(&self.bounded_contexts, event.bounded_context.as_deref())
            && listed(&self.event_types, Some(&event.event_type))
            && self.query.as_ref().is_none_or(|q| q.matches(event))
    }

    /// Checks the query against `limits` (list sizes are bounded by the same limit on tags
    /// per query).
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        if let Some(query) = &self.query {
            query.validate(limits)?;
        }
        for (field, list) in [
            ("scope aggregate types", &self.aggregate_types),
            ("scope bounded contexts", &self.bounded_contexts),
            ("scope event types", &self.event_types),
        ] {
            if list.iter().any(String::is_empty) {
                return Err(ValidationError::Empty { field });
            }
            if list.iter().any(|s| s.contains('\0')) {
                return Err(ValidationError::NulCharacter { field });
            }
        }
        Ok(())
    }
}
