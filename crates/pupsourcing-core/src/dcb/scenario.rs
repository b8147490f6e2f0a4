//! Given/when/then tests for decision models and command handlers, without a database.

use crate::event::{NewEvent, RecordedEvent};

use super::{AppendCondition, CommandHandler, DecisionModel, States};

/// Projects `events` (as if stored at positions 1, 2, ...) through `model`, exactly as a store
/// would: each projector sees only the events its query matches.
pub fn project_events(mut model: DecisionModel, events: &[NewEvent]) -> (States, AppendCondition) {
    for (i, event) in events.iter().enumerate() {
        model.apply(&RecordedEvent::stored_at(event, i as i64 + 1));
    }
    model.finish(events.len() as i64)
}

/// A given/when/then test of a [`CommandHandler`].
///
/// ```
/// # use pupsourcing_core::dcb::*;
/// # use pupsourcing_core::NewEvent;
/// struct Register;
/// impl CommandHandler for Register {
///     type Command = String; // the username
///     type Error = &'static str;
///     type Handles = Handle<bool>;
///     fn command_type(&self, _: &String) -> String { "Register".into() }
///     fn model(&self, name: &String, model: &mut DecisionModel) -> Handle<bool> {
///         let claimed = QueryItem::types(["Registered"]).with_tags([tag("username", name)]);
///         model.add(StateProjector::new("taken", Query::from_items([claimed]), false, |_, _| true))
///     }
///     fn decide(&self, name: &String, taken: &Handle<bool>, states: &States)
///         -> Result<Vec<NewEvent>, &'static str> {
///         if *states.get(*taken) { return Err("taken") }
///         Ok(vec![NewEvent::new("Registered", vec![]).with_tags([tag("username", name)])])
///     }
/// }
/// Scenario::new(&Register).when(&"ada".to_string()).then_event_types(&["Registered"]);
/// Scenario::new(&Register)
///     .given([NewEvent::new("Registered", vec![]).with_tags(["username:ada"])])
///     .when(&"ada".to_string())
///     .then_error(|e| *e == "taken");
/// ```
pub struct Scenario<'h, H> {
    handler: &'h H,
    given: Vec<NewEvent>,
}

impl<'h, H: CommandHandler> Scenario<'h, H> {
    /// A scenario for `handler` with an empty history.
    pub fn new(handler: &'h H) -> Self {
        Self { handler, given: Vec::new() }
    }

    /// Events already in the store, in order.
    pub fn given(mut self, events: impl IntoIterator<Item = NewEvent>) -> Self {
        self.given.extend(events);
        self
    }

    /// Decides `command` on the state projected from the given events.
    pub fn when(self, command: &H::Command) -> Then<H::Error> {
        let mut model = DecisionModel::new();
        let handles = self.handler.model(command, &mut model);
        let (states, _) = project_events(model, &self.given);
        Then { result: self.handler.decide(command, &handles, &states) }
    }
}

/// The outcome of [`Scenario::when`], with assertions.
#[derive(Debug)]
pub struct Then<E> {
    /// What the handler decided.
    pub result: Result<Vec<NewEvent>, E>,
}

impl<E: std::fmt::Debug> Then<E> {
    /// Asserts the handler decided events of exactly these types, in order.
    ///
    /// # Panics
    /// When it did not (this is a test assertion).
    pub fn then_event_types(self, types: &[&str]) -> Vec<NewEvent> {
        let events =
            self.result.unwrap_or_else(|e| panic!("expected events {types:?}, got error {e:?}"));
        let got: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(got, types, "decided event types");
        events
    }

    /// Asserts the handler decided events equal to `expected` in type, tags and payload.
    ///
    /// # Panics
    /// When it did not.
    pub fn then_events(self, expected: &[NewEvent]) {
        let events = self.result.unwrap_or_else(|e| panic!("expected events, got error {e:?}"));
        let shape = |e: &NewEvent| (e.event_type.clone(), e.tags.clone(), e.payload.clone());
        let got: Vec<_> = events.iter().map(shape).collect();
        let want: Vec<_> = expected.iter().map(shape).collect();
        assert_eq!(got, want, "decided events (type, tags, payload)");
    }

    /// Asserts the handler refused the command with an error satisfying `check`.
    ///
    /// # Panics
    /// When it decided events, or the error does not satisfy `check`.
    pub fn then_error(self, check: impl FnOnce(&E) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got {} events", events.len()),
            Err(e) => assert!(check(&e), "unexpected error {e:?}"),
        }
    }
}
