//! Races of many concurrent single-event appends, the load that group commit merges into shared
//! transactions (PostgreSQL and MySQL; on SQLite they run one at a time). Each append must get
//! exactly the outcome it would get alone: a group may only hold appends that cannot observe
//! each other, and each is checked against what committed before its group. The checks use
//! the final log as the oracle, so they hold whatever the backend's grouping.

use std::collections::HashMap;
use std::time::Instant;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId, Version,
    VersionRange,
};
use rand::Rng;
use uuid::Uuid;

use crate::fixtures::{event, new_stream, stress_duration};

/// Tasks appending at once: more than a group holds on either server backend's first writer.
const TASKS: usize = 32;

/// One append of [`mixed_expected_versions_outcomes`] and what it got.
#[derive(Debug, Clone)]
struct Attempt {
    stream: StreamId,
    expected: ExpectedVersion,
    /// `(position, version)` when appended, else `(actual version, error)` (`-1` when the error
    /// was not a conflict).
    outcome: std::result::Result<(Position, Version), (Version, String)>,
}

/// What [`mixed_expected_versions_outcomes`] saw.
#[derive(Debug, Default)]
pub struct MixedVersionsRace {
    /// Appends made.
    pub attempts: usize,
    /// Appends that succeeded.
    pub appended: usize,
    /// Appends refused with [`Error::Concurrency`].
    pub conflicts: usize,
    /// Streams no append ever created (every append to them was an `Exact(v > 0)`).
    pub ghosts: Vec<StreamId>,
    /// Every outcome that differs from what the append would have got alone.
    pub problems: Vec<String>,
}

/// Runs the race of [`mixed_expected_versions_race`] on `store` and reports what it saw, for
/// backends that add checks of their own (how many transactions wrote the events, the head
/// rows of `ghosts`).
///
/// For [`stress_duration`], 32 tasks run aggregate lifecycles, one event per append, on six
/// shared streams and on new ones: `NoStream` (also on existing streams), `Exact(0)`,
/// `Exact(v)` with the latest version the task knows, a stale `Exact`, `Exact(v > 0)` on a
/// stream nobody creates, and `Any`. Checked afterwards against the log: each success's
/// version follows from its expected version, each conflict's actual version contradicts it
/// (and is one the stream had), versions are dense, every success is stored exactly where it
/// was reported (so each `(stream, version)` has one winner), and no ghost stream has a
/// version or an event.
pub async fn mixed_expected_versions_outcomes<S: EventStore>(store: &S) -> MixedVersionsRace {
    let shared: Vec<StreamId> = (0..6).map(|_| new_stream()).collect();
    let until = Instant::now() + stress_duration();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, shared) = (store.clone(), shared.clone());
            tokio::spawn(async move {
                let mut known = HashMap::<Uuid, Version>::new();
                let mut attempts = Vec::new();
                while Instant::now() < until {
                    let (stream, expected) = {
                        let mut rng = rand::rng();
                        match rng.random_range(0..10) {
                            0 => (
                                StreamId::new("Ghost", Uuid::now_v7()),
                                ExpectedVersion::Exact(rng.random_range(1..4)),
                            ),
                            1 if rng.random_bool(0.5) => (new_stream(), ExpectedVersion::NoStream),
                            1 => (new_stream(), ExpectedVersion::Exact(0)),
                            n => {
                                let stream = shared[rng.random_range(0..shared.len())].clone();
                                let v = known.get(&stream.aggregate_id).copied().unwrap_or(0);
                                let expected = match n {
                                    2 => ExpectedVersion::NoStream,
                                    3 => ExpectedVersion::Any,
                                    4 if v > 1 => ExpectedVersion::Exact(v - 1),
                                    _ => ExpectedVersion::Exact(v),
                                };
                                (stream, expected)
                            }
                        }
                    };
                    let outcome = match store.append(&stream, expected, &[event("E")]).await {
                        Ok(r) if r.positions.len() == 1 && r.versions.len() == 1 => {
                            known.insert(stream.aggregate_id, r.versions[0]);
                            Ok((r.positions[0], r.versions[0]))
                        }
                        Ok(r) => Err((-1, format!("reported {r:?} for one event"))),
                        Err(Error::Concurrency { actual, .. }) => {
                            known.insert(stream.aggregate_id, actual);
                            Err((actual, "concurrency".to_string()))
                        }
                        Err(other) => Err((-1, other.to_string())),
                    };
                    attempts.push(Attempt { stream, expected, outcome });
                }
                attempts
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a racing task panicked"));
    }
    let mut race = MixedVersionsRace { attempts: all.len(), ..MixedVersionsRace::default() };
    let problems = &mut race.problems;
    let mut by_stream = HashMap::<Uuid, Vec<&Attempt>>::new();
    for a in &all {
        by_stream.entry(a.stream.aggregate_id).or_default().push(a);
        match (&a.outcome, a.expected) {
            (Ok(_), _) => race.appended += 1,
            (Err((_, e)), _) if e == "concurrency" => race.conflicts += 1,
            _ => {}
        }
        match (&a.outcome, a.expected) {
            (Ok((_, v)), ExpectedVersion::NoStream | ExpectedVersion::Exact(0)) if *v != 1 => {
                problems.push(format!("{a:?}: created at version {v}"))
            }
            (Ok((_, v)), ExpectedVersion::Exact(e)) if *v != e + 1 => {
                problems.push(format!("{a:?}: version {v} after Exact({e})"))
            }
            (Err((actual, e)), ExpectedVersion::Exact(x)) if e == "concurrency" && *actual == x => {
                problems.push(format!("{a:?}: conflict although actual == expected"))
            }
            (Err((actual, e)), ExpectedVersion::NoStream) if e == "concurrency" && *actual == 0 => {
                problems.push(format!("{a:?}: NoStream conflict on a missing stream"))
            }
            (Err((_, e)), ExpectedVersion::Any) if e == "concurrency" => {
                problems.push(format!("{a:?}: conflict on Any"))
            }
            (Err((_, e)), _) if e != "concurrency" => problems.push(format!("{a:?}: error")),
            _ => {}
        }
    }
    for (id, attempts) in &by_stream {
        let stream = &attempts[0].stream;
        let stored = store.read_stream(stream, VersionRange::all()).await.unwrap();
        let version = store.stream_version(stream).await.unwrap();
        let versions: Vec<Version> = stored.iter().filter_map(|e| e.aggregate_version()).collect();
        if versions != (1..=version).collect::<Vec<_>>() {
            problems.push(format!("{id}: head {version}, versions {versions:?}"));
        }
        let mut won: Vec<(Position, Version)> =
            attempts.iter().filter_map(|a| a.outcome.as_ref().ok().copied()).collect();
        won.sort_by_key(|w| w.1);
        let from_log: Vec<(Position, Version)> =
            stored.iter().map(|e| (e.position, e.aggregate_version().unwrap_or(-1))).collect();
        if won != from_log {
            problems.push(format!("{id}: reported {won:?}, stored {from_log:?}"));
        }
        for a in attempts {
            if let Err((actual, _)) = a.outcome
                && actual > version
            {
                problems.push(format!("{a:?}: actual {actual} above the stream's head {version}"));
            }
        }
        if stream.aggregate_type == "Ghost" {
            if version != 0 || !stored.is_empty() {
                problems.push(format!("ghost {id}: version {version}, {} events", stored.len()));
            }
            race.ghosts.push(stream.clone());
        }
    }
    race
}

/// The race of [`mixed_expected_versions_outcomes`]: every append gets the outcome it would get
/// alone, and the race was real (appends and conflicts both happened).
pub async fn mixed_expected_versions_race<S: EventStore>(store: S) {
    let race = mixed_expected_versions_outcomes(&store).await;
    eprintln!(
        "mixed expected versions: {} attempts, {} appended, {} conflicts",
        race.attempts, race.appended, race.conflicts
    );
    assert!(
        race.problems.is_empty(),
        "{} problems, first: {:#?}",
        race.problems.len(),
        &race.problems[..race.problems.len().min(5)]
    );
    assert!(race.appended > 50 && race.conflicts > 0, "the race was real: {race:?}");
}

/// A boundary of [`grouped_boundaries_race`].
#[derive(Clone)]
struct Boundary {
    name: String,
    query: Query,
    /// Events that match `query`.
    events: Vec<(String, Vec<String>)>,
    /// Whether unconditional appends of matching events land in it too.
    noisy: bool,
    /// Whether only one task appends to it.
    private: bool,
}

impl Boundary {
    fn event(&self, rng: &mut impl Rng) -> NewEvent {
        let (kind, tags) = &self.events[rng.random_range(0..self.events.len())];
        NewEvent::new(kind.as_str(), b"{}".to_vec()).with_tags(tags.iter().cloned())
    }
}

/// What one append of [`grouped_boundaries_race`] did.
#[derive(Debug)]
enum Move {
    /// A conditional append to boundary `boundary` under `condition`, and its outcome: the
    /// position of its event when appended.
    Conditional {
        boundary: usize,
        condition: AppendCondition,
        event_id: Uuid,
        outcome: std::result::Result<Position, String>,
    },
    /// An unconditional append (matching a noisy boundary, or no boundary at all).
    Unconditional { event_id: Uuid, outcome: std::result::Result<Position, String> },
}

/// Many tasks append single events under conditions, concurrently (so that server backends
/// group them): on four shared boundaries (tag-only, typed and tagged, a two-item query that
/// must not be flattened, type-only) that only conditional appends write; on a shared "noisy"
/// boundary that unconditional appends also write; on one private boundary per task; and
/// unconditional near misses (events sharing a boundary's tag but not its type, which match
/// nothing). Each conditional append reads its boundary's head and appends after it.
///
/// Checked afterwards against the final log: every append is stored exactly where it was
/// reported; for every successful conditional append, no event matching its condition lies
/// between its `after` and its own position; every `ConditionFailed` is justified (a matching
/// event lies after its `after`); on the conditional-only boundaries, the events are exactly
/// the winners, one per "epoch" (how many boundary events were at or below the `after`), and
/// every epoch some append tried has its winner; appends to private boundaries and
/// unconditional ones never fail.
pub async fn grouped_boundaries_race<S: DcbStore>(store: S) {
    let run = Uuid::now_v7().simple().to_string();
    let name = |n: &str| format!("{n}-{run}");
    let common = name("common");
    let with = |tags: &[&String]| -> Vec<String> {
        tags.iter().map(|t| t.to_string()).chain([common.clone()]).collect()
    };
    let (b0, b1, b2a, b2b, t3, noisy) =
        (name("b0"), name("b1"), name("b2a"), name("b2b"), name("Type3"), name("noisy"));
    let mut boundaries = vec![
        Boundary {
            name: "tag-only".into(),
            query: Query::from_items([QueryItem::tags([b0.as_str()])]),
            events: vec![("A".into(), with(&[&b0])), ("B".into(), with(&[&b0]))],
            noisy: false,
            private: false,
        },
        Boundary {
            name: "typed and tagged".into(),
            query: Query::from_items([QueryItem::types(["Seat"]).with_tags([b1.as_str()])]),
            events: vec![("Seat".into(), with(&[&b1]))],
            noisy: false,
            private: false,
        },
        Boundary {
            name: "two items".into(),
            query: Query::from_items([
                QueryItem::types(["X"]).with_tags([b2a.as_str()]),
                QueryItem::tags([b2b.as_str()]),
            ]),
            events: vec![("X".into(), with(&[&b2a])), ("Y".into(), with(&[&b2b]))],
            noisy: false,
            private: false,
        },
        Boundary {
            name: "type-only".into(),
            query: Query::from_items([QueryItem::types([t3.as_str()])]),
            events: vec![(t3.clone(), with(&[]))],
            noisy: false,
            private: false,
        },
        Boundary {
            name: "noisy".into(),
            query: Query::from_items([QueryItem::tags([noisy.as_str()])]),
            events: vec![("N".into(), with(&[&noisy]))],
            noisy: true,
            private: false,
        },
    ];
    let shared = boundaries.len();
    for task in 0..TASKS {
        let tag = name(&format!("private{task}"));
        boundaries.push(Boundary {
            name: format!("private {task}"),
            query: Query::from_items([QueryItem::tags([tag.as_str()])]),
            events: vec![("P".into(), with(&[&tag]))],
            noisy: false,
            private: true,
        });
    }
    // Events of boundary 1's tag and boundary 2's first tag under other types: they match
    // no boundary, so they must never make a conditional append fail.
    let near_misses = vec![("Other".to_string(), with(&[&b1])), ("Y".to_string(), with(&[&b2a]))];
    let until = Instant::now() + stress_duration();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, boundaries) = (store.clone(), boundaries.clone());
            let near_misses = near_misses.clone();
            tokio::spawn(async move {
                let mut moves = Vec::new();
                while Instant::now() < until {
                    let (pick, event) = {
                        let mut rng = rand::rng();
                        match rng.random_range(0..20) {
                            0..8 => {
                                let b = rng.random_range(0..4);
                                (Some(b), boundaries[b].event(&mut rng))
                            }
                            8..11 => (Some(4), boundaries[4].event(&mut rng)),
                            11..13 => (None, boundaries[4].event(&mut rng)),
                            13..15 => {
                                let (kind, tags) = &near_misses[rng.random_range(0..2)];
                                let event = NewEvent::new(kind.as_str(), b"{}".to_vec());
                                (None, event.with_tags(tags.iter().cloned()))
                            }
                            _ => (Some(shared + task), boundaries[shared + task].event(&mut rng)),
                        }
                    };
                    let event_id = event.event_id;
                    let Some(boundary) = pick else {
                        let outcome = match store.append_if(&[event], None).await {
                            Ok(r) if r.positions.len() == 1 => Ok(r.positions[0]),
                            Ok(r) => Err(format!("reported {r:?} for one event")),
                            Err(err) => Err(err.to_string()),
                        };
                        moves.push(Move::Unconditional { event_id, outcome });
                        continue;
                    };
                    let query = boundaries[boundary].query.clone();
                    let read = store.read(&query, ReadOptions::new().backwards().limit(1)).await;
                    let head = read.expect("a boundary read").head;
                    let condition = AppendCondition::none_after(query, head);
                    let outcome = match store.append_if(&[event], Some(&condition)).await {
                        Ok(r) if r.positions.len() == 1 => Ok(r.positions[0]),
                        Ok(r) => Err(format!("reported {r:?} for one event")),
                        Err(Error::ConditionFailed { .. }) => Err("condition failed".into()),
                        Err(err) => Err(err.to_string()),
                    };
                    moves.push(Move::Conditional { boundary, condition, event_id, outcome });
                }
                moves
            })
        })
        .collect();
    let mut moves = Vec::new();
    for task in tasks {
        moves.extend(task.await.expect("a racing task panicked"));
    }
    let log = store.read(&Query::all(), ReadOptions::new()).await.unwrap().events;
    let at: HashMap<Position, &RecordedEvent> = log.iter().map(|e| (e.position, e)).collect();
    let mut problems = Vec::new();
    let (mut wins, mut conflicts) = (0, 0);
    // Per boundary: winners' (epoch, event id), and the epochs tried.
    let mut winners: Vec<Vec<(usize, Uuid)>> = vec![Vec::new(); boundaries.len()];
    let mut tried: Vec<Vec<usize>> = vec![Vec::new(); boundaries.len()];
    let matching = |condition: &AppendCondition, low: Position, high: Position| {
        log.iter()
            .filter(|e| e.position > low && e.position < high)
            .find(|e| condition.fail_if_events_match.matches(e))
    };
    for m in &moves {
        let (event_id, outcome) = match m {
            Move::Conditional { event_id, outcome, .. } => (event_id, outcome),
            Move::Unconditional { event_id, outcome } => (event_id, outcome),
        };
        if let Ok(position) = outcome
            && at.get(position).map(|e| e.event_id) != Some(*event_id)
        {
            problems.push(format!("{m:?}: the log holds {:?} there", at.get(position)));
        }
        match m {
            Move::Unconditional { outcome: Err(err), .. } => {
                problems.push(format!("{m:?}: an unconditional append failed: {err}"))
            }
            Move::Unconditional { .. } => {}
            Move::Conditional { boundary, condition, event_id, outcome } => {
                let b = &boundaries[*boundary];
                let after = condition.after.unwrap_or(0);
                let epoch =
                    log.iter().filter(|e| e.position <= after && b.query.matches(e)).count();
                tried[*boundary].push(epoch);
                match outcome {
                    Ok(position) => {
                        wins += 1;
                        winners[*boundary].push((epoch, *event_id));
                        if let Some(e) = matching(condition, after, *position) {
                            problems.push(format!(
                                "{}: appended at {position} although {} (at {}) matched after {after}",
                                b.name, e.event_type, e.position
                            ));
                        }
                    }
                    Err(reason) if reason == "condition failed" => {
                        conflicts += 1;
                        if b.private {
                            problems.push(format!("{}: refused without a rival", b.name));
                        } else if matching(condition, after, Position::MAX).is_none() {
                            problems.push(format!(
                                "{}: refused after {after}, but nothing matches there",
                                b.name
                            ));
                        }
                    }
                    Err(err) => problems.push(format!("{}: {err}", b.name)),
                }
            }
        }
    }
    for (i, b) in boundaries.iter().enumerate().filter(|(_, b)| !b.noisy) {
        let mut stored: Vec<Uuid> =
            log.iter().filter(|e| b.query.matches(e)).map(|e| e.event_id).collect();
        let mut won = winners[i].clone();
        won.sort();
        let epochs: Vec<usize> = won.iter().map(|w| w.0).collect();
        if epochs != (0..stored.len()).collect::<Vec<_>>() {
            problems.push(format!(
                "{}: winners' epochs {epochs:?}, {} events",
                b.name,
                stored.len()
            ));
        }
        let mut won: Vec<Uuid> = won.iter().map(|w| w.1).collect();
        won.sort();
        stored.sort();
        if won != stored {
            problems.push(format!("{}: the events are not the winners'", b.name));
        }
        if let Some(epoch) = tried[i].iter().find(|&&e| e >= epochs.len()) {
            problems.push(format!("{}: epoch {epoch} was tried but nobody won it", b.name));
        }
    }
    eprintln!(
        "grouped boundaries: {} appends, {wins} conditional wins, {conflicts} conflicts",
        moves.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert!(wins > 50 && conflicts > 0, "the race was real: {wins} wins, {conflicts} conflicts");
}

/// Rounds of [`concurrent_replays_are_recognised`].
const REPLAY_ROUNDS: usize = 10;

/// Retries racing their original: each round, 16 tasks at once append one and the same DCB
/// event (half of them under a condition its own tag matches), one and the same stream event
/// (`Any`), and an event of their own. However appends are grouped (a stored id fails a group
/// statement as a whole), exactly one append of each shared event writes it, every other one
/// is recognised as a replay with the same positions (and versions), the log holds each
/// shared event once, and every task's own event is appended, not replayed.
pub async fn concurrent_replays_are_recognised<S: DcbStore>(store: S) {
    const RACERS: usize = 16;
    for round in 0..REPLAY_ROUNDS {
        let tag = format!("replayed-{}", Uuid::now_v7().simple());
        let shared = NewEvent::new("Replayed", b"{}".to_vec()).with_tags([tag.as_str()]);
        let stream = new_stream();
        let in_stream = event("ReplayedInStream");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|task| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let (shared, stream, in_stream) =
                    (shared.clone(), stream.clone(), in_stream.clone());
                let condition = (task % 2 == 0).then(|| {
                    AppendCondition::none_match(Query::from_items([QueryItem::tags([tag.clone()])]))
                });
                tokio::spawn(async move {
                    barrier.wait().await;
                    let own_event = [event("Own")];
                    let (dcb, streamed, own) = tokio::join!(
                        store.append_if(std::slice::from_ref(&shared), condition.as_ref()),
                        store.append(
                            &stream,
                            ExpectedVersion::Any,
                            std::slice::from_ref(&in_stream)
                        ),
                        store.append_if(&own_event, None),
                    );
                    (dcb, streamed, own)
                })
            })
            .collect();
        let mut dcb = Vec::new();
        let mut streamed = Vec::new();
        for task in tasks {
            let (d, s, own) = task.await.expect("a racing task panicked");
            dcb.push(d.unwrap_or_else(|e| panic!("round {round}: a DCB replay failed: {e}")));
            streamed
                .push(s.unwrap_or_else(|e| panic!("round {round}: a stream replay failed: {e}")));
            let own = own.unwrap_or_else(|e| panic!("round {round}: an own event failed: {e}"));
            assert!(!own.replayed && own.positions.len() == 1, "round {round}: {own:?}");
        }
        for (what, results) in [("DCB", &dcb), ("stream", &streamed)] {
            let written: Vec<_> = results.iter().filter(|r| !r.replayed).collect();
            assert_eq!(
                written.len(),
                1,
                "round {round}: {what} event written {} times",
                written.len()
            );
            for r in results {
                assert_eq!(r.positions, written[0].positions, "round {round}: {what} positions");
                assert_eq!(r.versions, written[0].versions, "round {round}: {what} versions");
            }
        }
        assert_eq!(streamed[0].versions, vec![1], "round {round}");
        let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
        let stored = store.read(&query, ReadOptions::new()).await.unwrap().events;
        assert_eq!(stored.len(), 1, "round {round}: the DCB event is stored once");
        assert_eq!(
            (stored[0].event_id, stored[0].position),
            (shared.event_id, dcb[0].positions[0])
        );
        let in_log = store.read_stream(&stream, VersionRange::all()).await.unwrap();
        assert_eq!(in_log.len(), 1, "round {round}: the stream event is stored once");
        assert_eq!(in_log[0].position, streamed[0].positions[0], "round {round}");
    }
}
