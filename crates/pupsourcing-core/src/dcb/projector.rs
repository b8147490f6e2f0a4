//! Decision models: typed state projectors folded over one combined read.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::event::{Position, RecordedEvent};

use super::{AppendCondition, Query};

/// Folds the events matching `query` into a state of type `S`, starting from `initial`.
///
/// ```
/// use pupsourcing_core::dcb::{Query, QueryItem, StateProjector};
/// let enrolled = StateProjector::new(
///     "enrolled",
///     Query::from_items([QueryItem::types(["StudentSubscribed"]).with_tags(["course:c1"])]),
///     0u32,
///     |n, _event| n + 1,
/// );
/// assert_eq!(enrolled.id, "enrolled");
/// ```
pub struct StateProjector<S> {
    /// A name for diagnostics.
    pub id: String,
    /// The events this state depends on.
    pub query: Query,
    /// The state before any event.
    pub initial: S,
    apply: ApplyFn<S>,
}

/// A projector's transition function.
type ApplyFn<S> = Arc<dyn Fn(S, &RecordedEvent) -> S + Send + Sync>;

impl<S> StateProjector<S> {
    /// A projector named `id` folding the events of `query` with `apply`.
    pub fn new(
        id: impl Into<String>,
        query: Query,
        initial: S,
        apply: impl Fn(S, &RecordedEvent) -> S + Send + Sync + 'static,
    ) -> Self {
        Self { id: id.into(), query, initial, apply: Arc::new(apply) }
    }
}

/// A typed reference to one projector's state inside [`States`].
pub struct Handle<S> {
    index: usize,
    _state: PhantomData<fn() -> S>,
}

impl<S> Clone for Handle<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Handle<S> {}

/// Several projectors read together with one query; their states and the append condition
/// that protects a decision made on them come out of [`DecisionModel::finish`].
///
/// ```
/// use pupsourcing_core::dcb::{DecisionModel, Query, QueryItem, StateProjector};
/// let mut model = DecisionModel::new();
/// let exists = model.add(StateProjector::new(
///     "exists", Query::from_items([QueryItem::types(["CourseDefined"]).with_tags(["course:c1"])]),
///     false, |_, _| true));
/// let (states, condition) = model.finish(0);
/// assert!(!states.get(exists));
/// assert_eq!(condition.after, Some(0));
/// ```
#[derive(Default)]
pub struct DecisionModel {
    projectors: Vec<Box<dyn ErasedProjector>>,
}

impl DecisionModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a projector and returns the handle to read its state.
    pub fn add<S: Send + 'static>(&mut self, projector: StateProjector<S>) -> Handle<S> {
        let StateProjector { query, initial, apply, .. } = projector;
        self.projectors.push(Box::new(Typed { state: Some(initial), query, apply }));
        Handle { index: self.projectors.len() - 1, _state: PhantomData }
    }

    /// The union of the projectors' queries: what to read, and the condition's boundary.
    pub fn query(&self) -> Query {
        if self.projectors.iter().any(|p| p.query().is_all()) {
            return Query::all();
        }
        Query::from_items(self.projectors.iter().flat_map(|p| p.query().items.iter().cloned()))
    }

    /// Feeds one event (in position order) to every projector whose query matches it.
    pub fn apply(&mut self, event: &RecordedEvent) {
        for p in &mut self.projectors {
            if p.query().matches(event) {
                p.apply(event);
            }
        }
    }

    /// The states, and the condition `{ fail_if_events_match: query(), after: head }` where
    /// `head` is the head of the read that fed the model.
    pub fn finish(self, head: Position) -> (States, AppendCondition) {
        let condition = AppendCondition::none_after(self.query(), head);
        let states = self.projectors.into_iter().map(|p| p.into_state()).collect();
        (States { states }, condition)
    }
}

/// The projected states, read with the [`Handle`]s returned by [`DecisionModel::add`].
pub struct States {
    states: Vec<Box<dyn Any + Send>>,
}

impl States {
    /// The state behind `handle`.
    ///
    /// # Panics
    /// When `handle` comes from another model whose projector at that index has another type.
    pub fn get<S: 'static>(&self, handle: Handle<S>) -> &S {
        self.states[handle.index]
            .downcast_ref()
            .expect("a Handle is only used with the States of the model that issued it")
    }
}

/// A projector with its current state (`None` only while `apply` runs).
struct Typed<S> {
    state: Option<S>,
    query: Query,
    apply: ApplyFn<S>,
}

trait ErasedProjector: Send {
    fn query(&self) -> &Query;
    fn apply(&mut self, event: &RecordedEvent);
    fn into_state(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<S: Send + 'static> ErasedProjector for Typed<S> {
    fn query(&self) -> &Query {
        &self.query
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if let Some(state) = self.state.take() {
            self.state = Some((self.apply)(state, event));
        }
    }

    fn into_state(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.state.expect("state is present outside apply"))
    }
}
