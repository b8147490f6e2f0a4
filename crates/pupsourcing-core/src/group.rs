//! Group commit, the part every backend shares: a queue of concurrent appends of a store's own,
//! taken by writer tasks in groups that one transaction writes.
//!
//! On a small server many concurrent appends are bound by per-statement and per-commit work
//! (and, where positions are handed out under a lock held to COMMIT, by that section), not by
//! the disk: merging queued appends into one transaction multiplies what many writers get
//! through. An append that finds no other append in flight runs its backend's direct path
//! itself ([`Entry::Direct`]), so a lone writer pays no hop. Otherwise it queues its request
//! ([`Entry::Queued`]), and writer tasks (at most [`GroupLimits::writers`] appends in flight)
//! take the queue in groups and hand each group to the backend's [`GroupWriter`].
//!
//! A group only holds requests that cannot observe each other ([`Grouped`]): different streams
//! and boundary locks that do not conflict (no key wanted exclusively by one request and at all
//! by another). So the backend can check each request exactly as if it ran alone, after the
//! group's locks, against what committed before. A request the group did not append (its
//! expected version or condition failed, or the group failed as a whole) gets `None` and is run
//! again alone by its caller, through the backend's ordinary append, which tells the outcomes
//! apart: every such outcome is permanent (versions and matching events only grow, and a stored
//! event id is a replay), so the second look reports it faithfully.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

pub use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::AppendResult;
use crate::dcb::LockKey;
use crate::event::StreamId;

/// What the queue needs to know of a request to put it in a group.
pub trait Grouped {
    /// The stream the request appends to (`None` on the DCB path).
    fn stream(&self) -> Option<&StreamId>;
    /// Its boundary locks (`pupsourcing_core::dcb::lock_plan`), sorted by key.
    fn locks(&self) -> &[LockKey];
    /// Its share of a group's size budget ([`GroupLimits::size`]), for example its bytes.
    fn size(&self) -> usize;
}

/// A backend's writer: runs one group in one transaction.
pub trait GroupWriter: Send + Sync + 'static {
    /// A queued append, owned so that a writer task can run it.
    type Request: Grouped + Send + 'static;

    /// Writes `group` (one or more requests, oldest first) and answers each request, in order:
    /// its result when it was appended, `None` when it was not (its caller then runs it alone).
    fn write<'a>(&'a self, group: &'a [Self::Request]) -> BoxFuture<'a, Vec<Option<AppendResult>>>;
}

/// The bounds of a queue's groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Appends in flight at once: direct appends and writer tasks.
    pub writers: usize,
    /// Most requests in one group.
    pub requests: usize,
    /// Most [`Grouped::size`] in one group (a request bigger than this is a group alone).
    pub size: usize,
    /// Most distinct lock keys in one group (a single append's bound: the lock table is shared
    /// by the whole server).
    pub lock_keys: usize,
}

/// The group-commit queue of one store.
pub struct GroupQueue<W: GroupWriter> {
    writer: W,
    limits: GroupLimits,
    state: Mutex<State<W::Request>>,
}

impl<W: GroupWriter + std::fmt::Debug> std::fmt::Debug for GroupQueue<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupQueue")
            .field("writer", &self.writer)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

struct State<R> {
    pending: VecDeque<Pending<R>>,
    /// Writer slots taken: by appends running the direct path and by writer tasks.
    writers: usize,
}

struct Pending<R> {
    request: R,
    reply: oneshot::Sender<Option<AppendResult>>,
}

/// How an append goes, as [`GroupQueue::enter`] decides.
pub enum Entry {
    /// Nothing else is in flight: run the direct path now, holding the slot until it ends.
    Direct(Slot),
    /// Queued: the group's answer (`Some` when appended; `None`, or a closed channel when the
    /// writer task is gone, means run it alone).
    Queued(oneshot::Receiver<Option<AppendResult>>),
}

/// A writer slot, given back (or handed on to a new writer task) when dropped, also when the
/// append holding it is cancelled.
pub struct Slot(Box<dyn SlotOwner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

trait SlotOwner: Send + Sync {
    fn release(&self);
}

impl<W: GroupWriter> SlotOwner for Arc<GroupQueue<W>> {
    fn release(&self) {
        GroupQueue::release(self);
    }
}

impl<W: GroupWriter> GroupQueue<W> {
    /// A queue whose groups `writer` writes.
    pub fn new(writer: W, limits: GroupLimits) -> Self {
        let state = State { pending: VecDeque::new(), writers: 0 };
        Self { writer, limits, state: Mutex::new(state) }
    }

    /// The backend's writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// Takes a writer slot to run the direct path, or queues the request `make` builds.
    pub fn enter(self: &Arc<Self>, make: impl FnOnce() -> W::Request) -> Entry {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.pending.is_empty() && state.writers == 0 {
            state.writers += 1;
            return Entry::Direct(Slot(Box::new(self.clone())));
        }
        let (reply, receiver) = oneshot::channel();
        state.pending.push_back(Pending { request: make(), reply });
        let spawn = state.writers < self.limits.writers;
        if spawn {
            state.writers += 1;
        }
        drop(state);
        if spawn {
            self.spawn_writer();
        }
        Entry::Queued(receiver)
    }

    /// Starts a writer task with a slot already counted. Should the task never run (the
    /// runtime shuts down), dropping it gives the slot back. Never call it holding the state's
    /// lock: a closed runtime drops the task inside `tokio::spawn`, and that drop takes the lock.
    fn spawn_writer(self: &Arc<Self>) {
        let mut reserved = Reserved { queue: self.clone(), started: false };
        tokio::spawn(async move {
            let this = reserved.start();
            let _slot = Slot(Box::new(this.clone()));
            loop {
                let group = this.take_group();
                if group.is_empty() {
                    break;
                }
                this.run(group).await;
            }
        });
    }

    /// Gives a slot back, or hands it to a new writer task when requests are waiting (they
    /// may have queued while every slot was busy).
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.pending.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            state.writers -= 1;
        } else {
            // The slot stays counted for the new task, spawned after the lock is released.
            drop(state);
            self.spawn_writer();
        }
    }

    /// The next group: queued requests, oldest first, that fit together. The others stay
    /// queued, in order, for the next group.
    fn take_group(&self) -> Vec<Pending<W::Request>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fit = Fit::default();
        let mut group = Vec::new();
        let mut rest = VecDeque::new();
        while let Some(pending) = state.pending.pop_front() {
            if pending.reply.is_closed() {
                // Its caller stopped waiting before it was taken: drop it unwritten.
                continue;
            }
            if group.len() < self.limits.requests && fit.admits(&pending.request, &self.limits) {
                group.push(pending);
            } else {
                rest.push_back(pending);
            }
        }
        state.pending = rest;
        group
    }

    /// Runs one group and answers each of its requests.
    async fn run(&self, group: Vec<Pending<W::Request>>) {
        let (requests, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|p| (p.request, p.reply)).unzip();
        let mut answers = self.writer.write(&requests).await.into_iter();
        for reply in replies {
            // A caller that stopped waiting does not need its answer.
            let _ = reply.send(answers.next().flatten());
        }
    }
}

/// A slot counted for a writer task, until the task starts.
struct Reserved<W: GroupWriter> {
    queue: Arc<GroupQueue<W>>,
    started: bool,
}

impl<W: GroupWriter> Reserved<W> {
    fn start(&mut self) -> Arc<GroupQueue<W>> {
        self.started = true;
        self.queue.clone()
    }
}

impl<W: GroupWriter> Drop for Reserved<W> {
    fn drop(&mut self) {
        // Never started: give the slot back, but spawn nothing (the runtime is going away).
        if !self.started {
            self.queue.state.lock().unwrap_or_else(PoisonError::into_inner).writers -= 1;
        }
    }
}

/// What a group under construction already holds.
#[derive(Default)]
struct Fit {
    streams: HashSet<(String, Uuid)>,
    /// Lock keys taken so far, with whether one is wanted exclusively.
    locks: BTreeMap<i64, bool>,
    size: usize,
}

impl Fit {
    /// Takes `request` in when it cannot observe or be observed by the requests already in, and
    /// the group stays within `limits`. The first request always fits.
    fn admits(&mut self, request: &impl Grouped, limits: &GroupLimits) -> bool {
        let first = self.streams.is_empty() && self.locks.is_empty() && self.size == 0;
        let locks = request.locks();
        let new_keys = locks.iter().filter(|k| !self.locks.contains_key(&k.key)).count();
        let within = self.locks.len() + new_keys <= limits.lock_keys
            && self.size + request.size() <= limits.size;
        let stream = request.stream().map(|s| (s.aggregate_type.clone(), s.aggregate_id));
        let fits = (first || within)
            && stream.as_ref().is_none_or(|s| !self.streams.contains(s))
            && locks.iter().all(|k| match self.locks.get(&k.key) {
                Some(&exclusive) => !exclusive && !k.exclusive,
                None => true,
            });
        if fits {
            self.streams.extend(stream);
            self.locks.extend(locks.iter().map(|k| (k.key, k.exclusive)));
            self.size += request.size();
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        stream: Option<StreamId>,
        locks: Vec<LockKey>,
        size: usize,
    }

    impl Grouped for Req {
        fn stream(&self) -> Option<&StreamId> {
            self.stream.as_ref()
        }
        fn locks(&self) -> &[LockKey] {
            &self.locks
        }
        fn size(&self) -> usize {
            self.size
        }
    }

    const LIMITS: GroupLimits = GroupLimits { writers: 2, requests: 8, size: 100, lock_keys: 3 };

    fn key(key: i64, exclusive: bool) -> LockKey {
        LockKey { key, exclusive }
    }

    #[test]
    fn one_stream_once_per_group() {
        let stream = StreamId::new("Order", Uuid::new_v4());
        let req = || Req { stream: Some(stream.clone()), locks: vec![], size: 1 };
        let mut fit = Fit::default();
        assert!(fit.admits(&req(), &LIMITS));
        assert!(!fit.admits(&req(), &LIMITS));
        let other = Req { stream: Some(StreamId::new("Order", Uuid::new_v4())), ..req() };
        assert!(fit.admits(&other, &LIMITS));
    }

    #[test]
    fn exclusive_keys_are_not_shared() {
        let mut fit = Fit::default();
        let req = |locks| Req { stream: None, locks, size: 1 };
        assert!(fit.admits(&req(vec![key(1, false)]), &LIMITS));
        assert!(fit.admits(&req(vec![key(1, false)]), &LIMITS), "shared with shared");
        assert!(!fit.admits(&req(vec![key(1, true)]), &LIMITS), "exclusive after shared");
        assert!(fit.admits(&req(vec![key(2, true)]), &LIMITS));
        assert!(!fit.admits(&req(vec![key(2, false)]), &LIMITS), "shared after exclusive");
    }

    #[test]
    fn size_and_key_budgets_bound_a_group_but_never_its_first_request() {
        let mut fit = Fit::default();
        let big = Req { stream: None, locks: vec![], size: 500 };
        assert!(fit.admits(&big, &LIMITS), "the first request always fits");
        assert!(!fit.admits(&Req { stream: None, locks: vec![], size: 1 }, &LIMITS));
        let mut fit = Fit::default();
        let keys = |k: &[i64]| Req {
            stream: None,
            locks: k.iter().map(|&k| key(k, false)).collect(),
            size: 1,
        };
        assert!(fit.admits(&keys(&[1, 2]), &LIMITS));
        assert!(fit.admits(&keys(&[2, 3]), &LIMITS), "one new key: 3 in all");
        assert!(!fit.admits(&keys(&[4]), &LIMITS), "a fourth key");
    }
}

#[cfg(test)]
mod shutdown_tests {
    use super::*;

    /// A writer whose groups never finish.
    struct Stuck;

    impl GroupWriter for Stuck {
        type Request = Lone;
        fn write<'a>(&'a self, _: &'a [Lone]) -> BoxFuture<'a, Vec<Option<AppendResult>>> {
            Box::pin(std::future::pending())
        }
    }

    struct Lone;

    impl Grouped for Lone {
        fn stream(&self) -> Option<&StreamId> {
            None
        }
        fn locks(&self) -> &[LockKey] {
            &[]
        }
        fn size(&self) -> usize {
            1
        }
    }

    /// Runs `work` on a fresh runtime, then drops the runtime with `work`'s tasks in flight;
    /// returns whether the drop finished within ten seconds.
    fn shutdown_finishes(multi_thread: bool, writers: usize) -> bool {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = if multi_thread {
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).build()
            } else {
                tokio::runtime::Builder::new_current_thread().build()
            }
            .unwrap();
            let limits = GroupLimits { writers, requests: 8, size: 100, lock_keys: 8 };
            let queue = Arc::new(GroupQueue::new(Stuck, limits));
            let receivers = runtime.block_on(async {
                let Entry::Direct(slot) = queue.enter(|| Lone) else { panic!("not direct") };
                // A direct append that is still running when the runtime goes away.
                tokio::spawn(async move {
                    let _slot = slot;
                    std::future::pending::<()>().await
                });
                let queued = (0..3).map(|_| queue.enter(|| Lone)).collect::<Vec<_>>();
                tokio::task::yield_now().await;
                queued
            });
            drop(runtime);
            drop(receivers);
            let _ = done.send(());
        });
        finished.recv_timeout(std::time::Duration::from_secs(10)).is_ok()
    }

    /// A runtime shutting down drops the tasks holding writer slots while requests are queued:
    /// the slot is handed on to a new writer task, which the closed runtime drops at once, in
    /// the spawn call. That drop gives the slot back under the queue's lock, so the lock must not
    /// be held around the spawn (it was: the runtime's drop hung forever).
    #[test]
    fn a_runtime_shutting_down_with_queued_requests_does_not_hang() {
        for multi_thread in [false, true] {
            for writers in [1, 2] {
                assert!(
                    shutdown_finishes(multi_thread, writers),
                    "dropping the runtime hung (multi_thread {multi_thread}, writers {writers})"
                );
            }
        }
    }
}
