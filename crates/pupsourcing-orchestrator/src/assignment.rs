//! Which live worker owns which shard: balanced and sticky.

use std::collections::{BTreeMap, BTreeSet};

use pupsourcing_core::coordination::ShardId;

/// One change of owner the plan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The shard.
    pub shard: ShardId,
    /// Its owner now (`None`: unowned, or owned by a worker that is gone).
    pub from: Option<String>,
    /// Its owner after the move (`None` only when no worker is live).
    pub to: Option<String>,
}

/// Plans the owners of `shards` (each with its current owner) among the live `workers`, and
/// returns the moves that get there from today.
///
/// - Every shard gets exactly one live worker (none when no worker is live).
/// - Balanced: no worker owns more than one shard more than another.
/// - Sticky: a worker keeps the shards it owns up to its share; only shards of workers that
///   are gone, unowned shards and a worker's shards beyond its share move. Shares of one more
///   go first to the workers already holding the most, so that fewer shards move.
/// - Deterministic: the same input gives the same plan on every worker (ties by id).
///
/// ```
/// use pupsourcing_core::coordination::ShardId;
/// use pupsourcing_orchestrator::assign;
///
/// let shard = |k| ShardId { projection: "orders".into(), shard: k, count: 4 };
/// let today: Vec<_> = (0..4).map(|k| (shard(k), Some("a".to_string()))).collect();
/// // A second worker joins: it takes two shards, the first keeps two.
/// let moves = assign(&today, &["a".to_string(), "b".to_string()]);
/// assert_eq!(moves.len(), 2);
/// assert!(moves.iter().all(|m| m.from.as_deref() == Some("a") && m.to.as_deref() == Some("b")));
/// ```
pub fn assign(shards: &[(ShardId, Option<String>)], workers: &[String]) -> Vec<Move> {
    let live: BTreeSet<&str> = workers.iter().map(String::as_str).collect();
    let mut sorted: Vec<&(ShardId, Option<String>)> = shards.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if live.is_empty() {
        return sorted
            .into_iter()
            .filter(|(_, owner)| owner.is_some())
            .map(|(shard, owner)| Move { shard: shard.clone(), from: owner.clone(), to: None })
            .collect();
    }
    // What each live worker holds today, in shard order.
    let mut held: BTreeMap<&str, Vec<&ShardId>> = live.iter().map(|w| (*w, Vec::new())).collect();
    let mut pool: Vec<&ShardId> = Vec::new();
    for (shard, owner) in &sorted {
        match owner.as_deref().and_then(|o| held.get_mut(o)) {
            Some(list) => list.push(shard),
            None => pool.push(shard),
        }
    }
    let shares = shares(&held, sorted.len());
    // Each worker keeps up to its share; the rest joins the pool.
    let mut plan: BTreeMap<&str, Vec<&ShardId>> = BTreeMap::new();
    for (worker, mut list) in held {
        let share = shares[worker];
        pool.extend(list.drain(share.min(list.len())..));
        plan.insert(worker, list);
    }
    pool.sort();
    for shard in pool {
        // The worker furthest below its share (ties by id) takes it.
        let taker = plan
            .iter()
            .filter(|(w, list)| list.len() < shares[*w])
            .min_by_key(|(w, list)| (list.len() as isize - shares[*w] as isize, **w))
            .map(|(w, _)| *w)
            .expect("the shares add up to the number of shards");
        plan.get_mut(taker).expect("a live worker").push(shard);
    }
    let owner_after: BTreeMap<&ShardId, &str> =
        plan.iter().flat_map(|(w, list)| list.iter().map(move |s| (*s, *w))).collect();
    sorted
        .into_iter()
        .filter_map(|(shard, owner)| {
            let to = owner_after[shard];
            (owner.as_deref() != Some(to)).then(|| Move {
                shard: shard.clone(),
                from: owner.clone(),
                to: Some(to.to_string()),
            })
        })
        .collect()
}

/// Each live worker's share of `total` shards: `total / workers`, plus one for the first
/// `total % workers` workers by (shards held today, descending; id).
fn shares<'a>(held: &BTreeMap<&'a str, Vec<&ShardId>>, total: usize) -> BTreeMap<&'a str, usize> {
    let base = total / held.len();
    let extra = total % held.len();
    let mut order: Vec<(&str, usize)> = held.iter().map(|(w, l)| (*w, l.len())).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    order.iter().enumerate().map(|(i, (w, _))| (*w, base + usize::from(i < extra))).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::Rng;

    use super::*;

    fn shard(projection: &str, k: u32, count: u32) -> ShardId {
        ShardId { projection: projection.into(), shard: k, count }
    }

    /// Applies `moves` to `today`.
    fn apply(
        today: &[(ShardId, Option<String>)],
        moves: &[Move],
    ) -> Vec<(ShardId, Option<String>)> {
        today
            .iter()
            .map(|(s, owner)| {
                let moved = moves.iter().find(|m| &m.shard == s);
                (s.clone(), moved.map_or(owner.clone(), |m| m.to.clone()))
            })
            .collect()
    }

    fn counts(after: &[(ShardId, Option<String>)], workers: &[String]) -> Vec<usize> {
        workers
            .iter()
            .map(|w| after.iter().filter(|(_, o)| o.as_ref() == Some(w)).count())
            .collect()
    }

    #[test]
    fn random_plans_are_complete_balanced_sticky_and_stable() {
        let mut rng = rand::rng();
        for _ in 0..2000 {
            let workers: Vec<String> =
                (0..rng.random_range(1..7)).map(|i| format!("w{i}")).collect();
            let mut today = Vec::new();
            for p in 0..rng.random_range(1..4) {
                let count = rng.random_range(1..9);
                for k in 0..count {
                    let owner = match rng.random_range(0..4) {
                        0 => None,
                        1 => Some("gone".to_string()),
                        _ => Some(workers[rng.random_range(0..workers.len())].clone()),
                    };
                    today.push((shard(&format!("p{p}"), k, count), owner));
                }
            }
            let moves = assign(&today, &workers);
            let after = apply(&today, &moves);
            assert!(after.iter().all(|(_, o)| o.as_ref().is_some_and(|o| workers.contains(o))));
            let c = counts(&after, &workers);
            assert!(c.iter().max().unwrap() - c.iter().min().unwrap() <= 1, "balanced: {c:?}");
            // Sticky: a shard leaves a live owner only when that owner held more than its share.
            let base = today.len() / workers.len();
            let before: HashMap<&String, usize> = workers
                .iter()
                .map(|w| (w, today.iter().filter(|(_, o)| o.as_ref() == Some(w)).count()))
                .collect();
            for m in &moves {
                if let Some(from) = m.from.as_ref().filter(|f| workers.contains(f)) {
                    assert!(before[from] > base, "{from} lost a shard while within its share");
                }
            }
            assert!(assign(&after, &workers).is_empty(), "a plan is stable once applied");
        }
    }

    #[test]
    fn a_joining_worker_moves_only_its_share() {
        let today: Vec<_> = (0..12)
            .map(|k| (shard("p", k, 12), Some(["a", "b", "c"][k as usize % 3].to_string())))
            .collect();
        let workers: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let moves = assign(&today, &workers);
        assert_eq!(moves.len(), 3, "d takes 3, nothing else moves");
        assert!(moves.iter().all(|m| m.to.as_deref() == Some("d")));
    }

    #[test]
    fn a_leaving_worker_moves_only_its_shards() {
        let today: Vec<_> = (0..12)
            .map(|k| (shard("p", k, 12), Some(["a", "b", "c"][k as usize % 3].to_string())))
            .collect();
        let workers: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let moves = assign(&today, &workers);
        assert_eq!(moves.len(), 4);
        assert!(moves.iter().all(|m| m.from.as_deref() == Some("c")));
    }

    #[test]
    fn no_live_worker_releases_every_owned_shard() {
        let today = vec![(shard("p", 0, 2), Some("a".to_string())), (shard("p", 1, 2), None)];
        let moves = assign(&today, &[]);
        assert_eq!(moves, vec![Move { shard: shard("p", 0, 2), from: Some("a".into()), to: None }]);
    }
}
