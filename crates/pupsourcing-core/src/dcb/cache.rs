//! The command executor's boundary cache: the events of recently decided boundaries, so that
//! a client deciding again on a boundary it alone writes to skips the read.
//!
//! Soundness rests on one property of every entry: it holds *every* event matching its query
//! up to its head. A fresh read gives that (its head is the query's gap-free head). After a
//! decision on an entry appends under the condition "nothing matching after the entry's
//! head", the entry plus the appended events (up to their last position) has it too: the
//! condition held when it was checked, and no matching event can commit below the new
//! positions later, because its writer holds a lock key that the condition takes exclusively
//! from before it allocates a position until it ends (`lock_plan`; SQLite: one writer at a
//! time). A stale entry is therefore only ever *old*, never wrong: a decision on it fails its
//! condition and the executor reads again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::{NewEvent, Position, RecordedEvent};

use super::Query;

/// The events of one boundary up to `head`, in position order.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub events: Arc<Vec<RecordedEvent>>,
    pub head: Position,
}

/// Boundaries by query, least recently used evicted first.
pub(crate) struct BoundaryCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Each entry with the clock of its last use.
    map: HashMap<Query, (Snapshot, u64)>,
    /// The queries by last use, so that eviction does not scan every entry (under the lock
    /// every executor sharing the cache waits on).
    order: BTreeMap<u64, Query>,
    clock: u64,
}

impl Entries {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn remove(&mut self, query: &Query) {
        if let Some((_, used)) = self.map.remove(query) {
            self.order.remove(&used);
        }
    }
}

impl BoundaryCache {
    /// The most events one boundary may have to be cached: a longer history is read each time
    /// (it would cost memory and clone time; such boundaries should be narrowed anyway).
    pub const MAX_EVENTS: usize = 1000;

    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: Mutex::new(Entries::default()) }
    }

    /// How many boundaries it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent whatever panicked while holding it: each change is one call.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, query: &Query) -> Option<Snapshot> {
        let mut entries = self.entries();
        let now = entries.tick();
        let Entries { map, order, .. } = &mut *entries;
        let (snapshot, used) = map.get_mut(query)?;
        if let Some(query) = order.remove(used) {
            order.insert(now, query);
        }
        *used = now;
        Some(snapshot.clone())
    }

    /// Stores a fresh read of `query` (replacing any entry: both are complete up to their head).
    pub fn put(&self, query: &Query, snapshot: Snapshot) {
        self.insert(&mut self.entries(), query, snapshot);
    }

    /// Stores `snapshot` unless `query` has an entry (which may be fresher).
    pub fn put_if_absent(&self, query: &Query, snapshot: Snapshot) {
        let mut entries = self.entries();
        if !entries.map.contains_key(query) {
            self.insert(&mut entries, query, snapshot);
        }
    }

    fn insert(&self, entries: &mut Entries, query: &Query, snapshot: Snapshot) {
        if snapshot.events.len() > Self::MAX_EVENTS {
            return;
        }
        let now = entries.tick();
        if entries.map.contains_key(query) {
            entries.remove(query);
        } else if entries.map.len() >= self.capacity
            && let Some((_, oldest)) = entries.order.pop_first()
        {
            entries.map.remove(&oldest);
        }
        entries.order.insert(now, query.clone());
        entries.map.insert(query.clone(), (snapshot, now));
    }

    /// Adds the events an append under "nothing matching `query` after `head`" stored at
    /// `positions`, if the entry still ends at `head` (else another decision moved it: leave it).
    pub fn extend(
        &self,
        query: &Query,
        head: Position,
        events: &[NewEvent],
        positions: &[Position],
    ) {
        let mut entries = self.entries();
        let Some((snapshot, _)) = entries.map.get_mut(query) else { return };
        if snapshot.head != head || positions.len() != events.len() {
            return;
        }
        let Some(&last) = positions.last() else { return };
        let matching = events
            .iter()
            .zip(positions)
            .filter(|(e, _)| query.matches_event(&e.event_type, &e.tags));
        let list = Arc::make_mut(&mut snapshot.events);
        list.extend(matching.map(|(e, &p)| RecordedEvent::stored_at(e, p)));
        snapshot.head = last;
        if list.len() > Self::MAX_EVENTS {
            entries.remove(query);
        }
    }

    /// Drops the entry of `query` if it still ends at `head` (a decision on it failed).
    pub fn forget(&self, query: &Query, head: Position) {
        let mut entries = self.entries();
        if entries.map.get(query).is_some_and(|(s, _)| s.head == head) {
            entries.remove(query);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcb::QueryItem;

    fn query(tag: &str) -> Query {
        Query::from_items([QueryItem::tags([tag])])
    }

    fn empty(head: Position) -> Snapshot {
        Snapshot { events: Arc::new(Vec::new()), head }
    }

    #[test]
    fn extends_only_from_its_own_head_and_only_with_matching_events() {
        let cache = BoundaryCache::new(4);
        let q = query("a");
        cache.put(&q, empty(5));
        let inside = NewEvent::new("X", vec![]).with_tags(["a"]);
        let outside = NewEvent::new("X", vec![]).with_tags(["b"]);
        cache.extend(&q, 4, std::slice::from_ref(&inside), &[9]);
        assert_eq!(cache.get(&q).unwrap().head, 5, "an extension from another head is ignored");
        cache.extend(&q, 5, &[inside.clone(), outside], &[7, 8]);
        let s = cache.get(&q).unwrap();
        assert_eq!((s.head, s.events.len(), s.events[0].position), (8, 1, 7));
        assert_eq!(s.events[0].event_id, inside.event_id);
        cache.forget(&q, 5);
        assert!(cache.get(&q).is_some(), "forgetting an older head keeps the newer entry");
        cache.forget(&q, 8);
        assert!(cache.get(&q).is_none());
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = BoundaryCache::new(2);
        cache.put(&query("a"), empty(1));
        cache.put(&query("b"), empty(1));
        cache.get(&query("a"));
        cache.put(&query("c"), empty(1));
        assert!(cache.get(&query("a")).is_some());
        assert!(cache.get(&query("b")).is_none());
        assert!(cache.get(&query("c")).is_some());
    }

    #[test]
    fn evicts_in_order_of_use_after_replacements_and_removals() {
        let cache = BoundaryCache::new(3);
        cache.put(&query("a"), empty(1));
        cache.put(&query("b"), empty(1));
        cache.put(&query("c"), empty(1));
        cache.put(&query("a"), empty(2));
        cache.forget(&query("c"), 1);
        cache.put(&query("d"), empty(1));
        cache.put(&query("e"), empty(1));
        let kept: Vec<_> = ["a", "b", "c", "d", "e"].map(|t| cache.get(&query(t)).is_some()).into();
        assert_eq!(kept, [true, false, false, true, true], "b was the least recently used");
        let entries = cache.entries();
        assert_eq!((entries.map.len(), entries.order.len()), (3, 3));
    }

    #[test]
    fn long_histories_are_not_cached() {
        let cache = BoundaryCache::new(2);
        let q = query("a");
        let event = RecordedEvent::stored_at(&NewEvent::new("X", vec![]).with_tags(["a"]), 1);
        let many = vec![event; BoundaryCache::MAX_EVENTS + 1];
        cache.put(&q, Snapshot { events: Arc::new(many), head: 1 });
        assert!(cache.get(&q).is_none());
    }
}
