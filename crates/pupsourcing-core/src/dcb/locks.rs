//! Which advisory locks a DCB-aware append takes, so that appends whose boundaries overlap
//! serialise while disjoint ones never wait for each other.
//!
//! Every append takes a *shared* lock on each key its events could be found by: the global key,
//! each event's type, each tag, and each (type, tag) pair. A condition takes an *exclusive* lock
//! on the narrowest key every matching event must have taken:
//!
//! | condition item        | exclusive key                       |
//! |-----------------------|-------------------------------------|
//! | types T and tags G    | (t, min G) for each t in T          |
//! | types T only          | t for each t in T                   |
//! | tags G only           | min G                               |
//! | [`Query::all`]        | the global key                      |
//!
//! Any event that matches an item therefore took a shared lock on one of the item's exclusive
//! keys, so the condition waits for that event's transaction, and the check that runs after the
//! locks sees it. Keys are taken in sorted order and a key wanted in both modes is taken once,
//! exclusively, so two appends never deadlock on the keys of one call. Hash collisions between
//! keys only make unrelated appends wait, never break the guarantee.

use std::collections::BTreeMap;

use crate::event::NewEvent;

use super::{AppendCondition, Query, QueryItem};

/// One advisory lock to take: a 64-bit key and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockKey {
    /// The key (backends may split it into two 32-bit halves).
    pub key: i64,
    /// Exclusive (a condition) or shared (an appended event).
    pub exclusive: bool,
}

/// The sorted, de-duplicated locks for appending `events` under `condition`.
///
/// `namespace` separates stores sharing one database. When more than `max_keys` keys would be
/// needed (a huge batch with many distinct tags), the plan collapses to one exclusive global
/// lock: it conflicts with every other append, which is sound and keeps the lock table small.
pub fn lock_plan(
    namespace: u64,
    events: &[NewEvent],
    condition: Option<&AppendCondition>,
    max_keys: usize,
) -> Vec<LockKey> {
    let key = |kind: u8, parts: &[&str]| hash_key(namespace, kind, parts);
    let mut keys: BTreeMap<i64, bool> = BTreeMap::new();
    let mut want = |k: i64, exclusive: bool| *keys.entry(k).or_insert(exclusive) |= exclusive;

    want(key(GLOBAL, &[]), false);
    for event in events {
        want(key(TYPE, &[&event.event_type]), false);
        for tag in &event.tags {
            want(key(TAG, &[tag]), false);
            want(key(TYPE_TAG, &[&event.event_type, tag]), false);
        }
    }
    if let Some(condition) = condition {
        for k in condition_keys(namespace, &condition.fail_if_events_match) {
            want(k, true);
        }
    }
    if keys.len() > max_keys {
        return vec![LockKey { key: global_key(namespace), exclusive: true }];
    }
    keys.into_iter().map(|(key, exclusive)| LockKey { key, exclusive }).collect()
}

/// The keys a condition on `query` locks exclusively (see the module table), unsorted and
/// possibly repeated.
fn condition_keys(namespace: u64, query: &Query) -> Vec<i64> {
    if query.is_all() {
        return vec![global_key(namespace)];
    }
    let items = query.items.iter().flat_map(narrowest_keys);
    items.map(|(kind, parts)| hash_key(namespace, kind, &parts)).collect()
}

/// The keys an append of an event matching `query` holds, at least one of them, from before it
/// takes a position until it ends: the keys a condition on `query` locks exclusively (sorted and
/// de-duplicated). An append whose plan collapsed holds the [`global_key`] exclusively instead.
/// So a reader of `query` need only wait for in-flight appends holding one of these keys, or
/// the global key exclusively; `max_keys` collapses the answer to the global key as
/// [`lock_plan`] collapses a condition.
///
/// ```
/// use pupsourcing_core::dcb::{Query, QueryItem, global_key, query_keys};
/// let q = Query::from_items([QueryItem::tags(["course:c1"])]);
/// assert_eq!(query_keys(7, &q, 256).len(), 1);
/// assert_eq!(query_keys(7, &Query::all(), 256), vec![global_key(7)]);
/// ```
pub fn query_keys(namespace: u64, query: &Query, max_keys: usize) -> Vec<i64> {
    let mut keys = condition_keys(namespace, query);
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > max_keys {
        return vec![global_key(namespace)];
    }
    keys
}

/// The key every append holds shared, a condition on [`Query::all`] exclusively, and a
/// collapsed plan exclusively.
pub fn global_key(namespace: u64) -> i64 {
    hash_key(namespace, GLOBAL, &[])
}

const GLOBAL: u8 = 0;
const TYPE: u8 = 1;
const TAG: u8 = 2;
const TYPE_TAG: u8 = 3;

/// The keys a condition item locks exclusively (see the module table).
fn narrowest_keys(item: &QueryItem) -> Vec<(u8, Vec<&str>)> {
    match item.tags.iter().min() {
        Some(tag) if item.types.is_empty() => vec![(TAG, vec![tag.as_str()])],
        Some(tag) => {
            item.types.iter().map(|t| (TYPE_TAG, vec![t.as_str(), tag.as_str()])).collect()
        }
        None => item.types.iter().map(|t| (TYPE, vec![t.as_str()])).collect(),
    }
}

/// FNV-1a over the namespace, the kind and the length-prefixed parts: stable across builds.
fn hash_key(namespace: u64, kind: u8, parts: &[&str]) -> i64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&namespace.to_le_bytes());
    eat(&[kind]);
    for part in parts {
        eat(&(part.len() as u64).to_le_bytes());
        eat(part.as_bytes());
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcb::{Query, QueryItem};

    fn event(t: &str, tags: &[&str]) -> NewEvent {
        NewEvent::new(t, vec![]).with_tags(tags.iter().copied())
    }

    fn exclusive(plan: &[LockKey]) -> Vec<i64> {
        plan.iter().filter(|k| k.exclusive).map(|k| k.key).collect()
    }

    fn shared(plan: &[LockKey]) -> Vec<i64> {
        plan.iter().map(|k| k.key).collect()
    }

    /// A condition's exclusive keys intersect the keys of every event it matches.
    fn collides(item: QueryItem, e: NewEvent) -> bool {
        let cond = AppendCondition::none_match(Query::from_items([item]));
        let c = lock_plan(7, &[event("Other", &[])], Some(&cond), 100);
        let a = lock_plan(7, &[e], None, 100);
        exclusive(&c).iter().any(|k| shared(&a).contains(k))
    }

    #[test]
    fn every_matching_event_collides() {
        let e = || event("Subscribed", &["course:1", "student:2"]);
        assert!(collides(QueryItem::types(["Subscribed"]), e()));
        assert!(collides(QueryItem::tags(["student:2"]), e()));
        assert!(collides(QueryItem::tags(["course:1", "student:2"]), e()));
        assert!(collides(QueryItem::types(["A", "Subscribed"]).with_tags(["student:2"]), e()));
        assert!(!collides(QueryItem::types(["Unrelated"]), e()));
        assert!(!collides(QueryItem::tags(["course:9"]), e()));
    }

    #[test]
    fn keys_are_sorted_unique_and_merge_modes() {
        let cond = AppendCondition::none_match(Query::from_items([QueryItem::types(["A"])]));
        let plan = lock_plan(1, &[event("A", &["t"]), event("A", &["t"])], Some(&cond), 100);
        assert!(plan.windows(2).all(|w| w[0].key < w[1].key));
        assert_eq!(plan.len(), 4, "global, A, t, (A, t)");
        assert_eq!(exclusive(&plan).len(), 1, "type A is taken once, exclusively");
    }

    #[test]
    fn huge_plans_collapse_to_the_global_key() {
        let events: Vec<_> = (0..100).map(|i| event("E", &[&format!("t{i}")])).collect();
        let plan = lock_plan(1, &events, None, 64);
        assert_eq!(plan.len(), 1);
        assert!(plan[0].exclusive);
    }

    #[test]
    fn namespaces_separate_stores() {
        assert_ne!(
            lock_plan(1, &[event("A", &[])], None, 9),
            lock_plan(2, &[event("A", &[])], None, 9)
        );
    }
}
