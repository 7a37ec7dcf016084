//! The in-process route index: routing decisions remembered by (dialled number, caller,
//! extension), so a call-in whose answer is already known needs no database read — only its
//! `call.incoming` event is written, batched with every other call-in's (`writer`).
//!
//! What is remembered. A decision made by the database path (`storage::calls`) that changed
//! nothing (no conversion, no strategy refresh, no `last_party` write, no reaping) and did not
//! rest on a number being absent. It is served while every binding it found live still is
//! (`valid_until`: the smallest such expiry) — expiry is checked at lookup, no sweep needed.
//!
//! How it stays coherent. Routing changes only with the binding events the writers append in
//! the same transactions: created, converted, updated, expired, unbound name the binding's X and
//! Y (`detail.number_x/number_y`), and a connected extension call (which moves the binding's
//! `last_party`) names its number and A (`called`, `callee`). The event tailer
//! (`events::EventHub`) reads every committed event of every replica in sequence order and
//! calls [`RouteCache::observe`], which forgets the decisions of those numbers.
//! - In this process: every writer bumps `routing_published` after its commit and before it
//!   answers; a lookup is served only once the tailer has applied that sequence, so a client
//!   that saw its bind or unbind acknowledged is routed by it (read-your-writes).
//! - Across replicas: a change committed elsewhere is applied when this tailer reads it (woken
//!   by its poll, 100 ms); lookups are served only while the tailer reached the log's head
//!   within [`STALE_AFTER`], so a binding unbound on one replica stops routing on the others
//!   within that bound (measured in BENCHMARKS.md).
//! - A decision computed while an invalidation of its number ran is not remembered: each of the
//!   shards has an epoch, bumped by every invalidation, taken before the database read and
//!   compared before the insert.
//!
//! The cache is bounded ([`CAPACITY`] decisions); when full, an arbitrary entry of the shard
//! goes. Nothing here is ever the only copy of anything: a miss is a database read.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::domain::{Decision, Event, Millis, call::CallEventKind};

/// Decisions kept (about 1 KiB each with their binding).
pub(crate) const CAPACITY: usize = 131_072;
/// Lookups are answered from memory only while the tailer reached the head of the log this
/// recently (it polls every 100 ms).
pub(crate) const STALE_AFTER: Duration = Duration::from_millis(500);
const SHARDS: usize = 64;

/// One remembered decision.
struct Memo {
    decision: Arc<Decision>,
    valid_until: Millis,
}

type Key = (String, Option<String>);

/// What is known about one dialled number.
#[derive(Default)]
struct NumberMemo {
    /// (caller, extension) -> decision.
    decisions: HashMap<Key, Memo>,
    /// Extension -> the connect decision of any caller without a route of its own on this
    /// number (whose call moves the binding's last party: see `Hit::Extension`).
    extensions: HashMap<String, (Memo, String)>,
    /// The callers that have a route of their own on this number (as read with the
    /// extension decisions); `None` when not read.
    callers: Option<std::collections::HashSet<String>>,
    /// Per caller, bumped when that caller's decision is forgotten (`forget_caller`), so a
    /// decision read before that is not remembered after it — without refusing any other
    /// caller's (extension calls move A's call-back hundreds of times a second on a busy
    /// number; the other callers' decisions on it must still be learnt). Bounded by the AXN
    /// bindings on the number (only their A is ever forgotten this way).
    caller_epochs: HashMap<String, u64>,
}

impl NumberMemo {
    fn weight(&self) -> usize {
        self.decisions.len() + self.extensions.len() + self.callers.as_ref().map_or(0, |c| c.len())
    }
}

#[derive(Default)]
struct Shard {
    /// Bumped by every invalidation of a number of this shard.
    epoch: u64,
    numbers: HashMap<String, NumberMemo>,
    /// Entries held (decisions, extension decisions, callers).
    len: usize,
}

/// A call-in answered from memory.
pub(crate) enum Hit {
    /// The decision as remembered; the call changes nothing.
    Plain(Arc<Decision>),
    /// A connected extension call: the binding's last party becomes the caller (written with
    /// the call's event).
    Extension {
        decision: Arc<Decision>,
        binding_id: String,
    },
}

/// See the module documentation.
pub(crate) struct RouteCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    /// Highest sequence whose routing change this process committed (see `Store::published`).
    routing_published: AtomicI64,
    /// Highest sequence the tailer has applied.
    applied: AtomicI64,
    /// Call-ins answered from memory, and those that were not: see [`Misses`].
    hits: AtomicU64,
    refused_stale: AtomicU64,
    refused_unapplied: AtomicU64,
    unknown: AtomicU64,
    /// When the tailer last found itself at the head of the log.
    caught_up: Mutex<Option<Instant>>,
    /// Set by the first `observe`: without a tailer nothing would invalidate.
    live: AtomicBool,
}

/// Lookups the index did not answer, by why (counted since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Misses {
    /// The tailer had not reached the log's head of [`STALE_AFTER`] ago.
    pub stale: u64,
    /// This process's own routing change was not applied by the tailer yet.
    pub unapplied: u64,
    /// No decision remembered for the call (first call, invalidated, expired, not cacheable).
    pub unknown: u64,
}

/// What the database path saw while deciding, to tell whether its decision may be remembered.
#[derive(Clone, Debug)]
pub(crate) struct Trace {
    /// It wrote something, or rested on an absence no event announces: not to be remembered.
    pub(crate) stateful: bool,
    /// The earliest expiry of a binding it found live.
    pub(crate) valid_until: Millis,
    /// A connected extension call: its binding, and the callers with a route of their own on
    /// the number (its only write is the binding's last party).
    pub(crate) extension: Option<(String, std::collections::HashSet<String>)>,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            stateful: false,
            valid_until: Millis::MAX,
            extension: None,
        }
    }
}

impl Trace {
    pub(crate) fn live_until(&mut self, expire_at: Millis) {
        self.valid_until = self.valid_until.min(expire_at);
    }
    pub(crate) fn wrote(&mut self) {
        self.stateful = true;
    }
}

/// A shard's epoch, taken before a database decision (see `RouteCache::remember`).
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    epoch: u64,
    caller_epoch: u64,
}

impl RouteCache {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            routing_published: AtomicI64::new(0),
            hits: Default::default(),
            refused_stale: Default::default(),
            refused_unapplied: Default::default(),
            unknown: Default::default(),
            applied: AtomicI64::new(0),
            caught_up: Mutex::new(None),
            live: AtomicBool::new(false),
        }
    }

    fn shard_of(&self, number: &str) -> usize {
        (self.hasher.hash_one(number) as usize) % SHARDS
    }

    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered decision for this call-in, if it may be served now.
    pub(crate) fn lookup(
        &self,
        called: &str,
        caller: &str,
        extension: Option<&str>,
        now: Millis,
        db_down: bool,
    ) -> Option<Hit> {
        if !self.fresh(db_down) {
            return None;
        }
        let shard = self.shard(self.shard_of(called));
        let Some(n) = shard.numbers.get(called) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let hit = match n
            .decisions
            .get(&(caller.to_owned(), extension.map(str::to_owned)))
        {
            Some(memo) => (now < memo.valid_until).then(|| Hit::Plain(memo.decision.clone())),
            // Any caller without a route of its own on the number: the extension decides.
            None => match (extension, &n.callers) {
                (Some(ext), Some(callers)) => match n.extensions.get(ext) {
                    Some((memo, binding_id))
                        if !callers.contains(caller) && now < memo.valid_until =>
                    {
                        Some(Hit::Extension {
                            decision: memo.decision.clone(),
                            binding_id: binding_id.clone(),
                        })
                    }
                    _ => None,
                },
                _ => None,
            },
        };
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups not answered from memory so far, by why.
    pub(crate) fn misses(&self) -> Misses {
        Misses {
            stale: self.refused_stale.load(Ordering::Relaxed),
            unapplied: self.refused_unapplied.load(Ordering::Relaxed),
            unknown: self.unknown.load(Ordering::Relaxed),
        }
    }

    /// Whether every routing change this process committed, and every other replica's up to a
    /// moment ago, has been applied.
    ///
    /// While this process cannot reach the database (`db_down`), the tailer cannot catch up
    /// and nothing can change through this process: the routes it knows keep answering (they
    /// may be stale by what other replicas still change meanwhile), so calls keep connecting.
    fn fresh(&self, db_down: bool) -> bool {
        if !self.live.load(Ordering::Acquire) {
            return false;
        }
        if self.applied.load(Ordering::Acquire) < self.routing_published.load(Ordering::Acquire) {
            self.refused_unapplied.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if db_down {
            return true;
        }
        let caught_up = *self.caught_up.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = caught_up.is_some_and(|t| t.elapsed() <= STALE_AFTER);
        if !fresh {
            self.refused_stale.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    /// Taken before a database decision about `called`.
    pub(crate) fn ticket(&self, called: &str, caller: &str) -> Ticket {
        let i = self.shard_of(called);
        let shard = self.shard(i);
        Ticket {
            shard: i,
            epoch: shard.epoch,
            caller_epoch: Self::caller_epoch(&shard, called, caller),
        }
    }

    fn caller_epoch(shard: &Shard, called: &str, caller: &str) -> u64 {
        shard
            .numbers
            .get(called)
            .and_then(|n| n.caller_epochs.get(caller).copied())
            .unwrap_or(0)
    }

    /// Remembers a database decision, unless its number was invalidated since `ticket`.
    pub(crate) fn remember(
        &self,
        ticket: Ticket,
        (called, caller, extension): (&str, &str, Option<&str>),
        decision: &Decision,
        trace: Trace,
    ) {
        if trace.stateful || !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut shard = self.shard(ticket.shard);
        // A forgotten caller (`forget_caller`) only concerns decisions without an extension:
        // the extension decisions do not depend on the last party.
        let caller_moved = extension.is_none()
            && Self::caller_epoch(&shard, called, caller) != ticket.caller_epoch;
        if shard.epoch != ticket.epoch || caller_moved {
            return;
        }
        if shard.len >= CAPACITY / SHARDS {
            // Full: drop one arbitrary number's decisions (and its caller epochs: the shard's
            // epoch moves, so no fill that raced this can land).
            if let Some(victim) = shard.numbers.keys().next().cloned() {
                let gone = shard.numbers.remove(&victim).map_or(0, |m| m.weight());
                shard.len -= gone;
                shard.epoch += 1;
            }
        }
        let memo = Memo {
            decision: Arc::new(decision.clone()),
            valid_until: trace.valid_until,
        };
        let n = shard.numbers.entry(called.to_owned()).or_default();
        let before = n.weight();
        match (trace.extension, extension) {
            (Some((binding_id, callers)), Some(ext)) => {
                n.extensions.insert(ext.to_owned(), (memo, binding_id));
                n.callers = Some(callers);
            }
            (Some(_), None) => return,
            (None, _) => {
                n.decisions
                    .insert((caller.to_owned(), extension.map(str::to_owned)), memo);
            }
        }
        let after = n.weight();
        shard.len = shard.len + after - before;
    }

    /// Forgets every decision about `number`.
    pub(crate) fn forget_number(&self, number: &str) {
        let mut shard = self.shard(self.shard_of(number));
        shard.epoch += 1;
        if let Some(gone) = shard.numbers.remove(number) {
            shard.len -= gone.weight();
        }
    }

    /// Forgets the decision about `caller` dialling `number` without an extension.
    pub(crate) fn forget_caller(&self, number: &str, caller: &str) {
        let mut shard = self.shard(self.shard_of(number));
        let m = shard.numbers.entry(number.to_owned()).or_default();
        *m.caller_epochs.entry(caller.to_owned()).or_default() += 1;
        if m.decisions.remove(&(caller.to_owned(), None)).is_some() {
            shard.len -= 1;
        }
    }

    /// A routing change committed by this process with this sequence (before it answers).
    pub(crate) fn published(&self, seq: i64) {
        self.routing_published.fetch_max(seq, Ordering::AcqRel);
    }

    /// The tailer read `events` (contiguous, in order) and reached `up_to`; `caught_up_at`: a
    /// moment before which every committed event has now been applied (the time it read the
    /// log's head that it has now reached). Under steady load the tailer is rarely *at* the
    /// head — new events keep arriving — but it reaches each head it read moments later, which
    /// is what bounds staleness.
    pub(crate) fn observe(&self, events: &[Event], up_to: i64, caught_up_at: Option<Instant>) {
        for e in events {
            self.invalidate_for(e);
        }
        self.applied.fetch_max(up_to, Ordering::AcqRel);
        if let Some(at) = caught_up_at {
            let mut c = self.caught_up.lock().unwrap_or_else(|p| p.into_inner());
            if c.is_none_or(|was| was < at) {
                *c = Some(at);
            }
        }
        self.live.store(true, Ordering::Release);
    }

    fn invalidate_for(&self, e: &Event) {
        if e.kind == CallEventKind::Incoming.as_str() {
            // A connected extension call moved the binding's last party: A's own call-back
            // (A dialling X without an extension) now goes elsewhere.
            if e.detail["extension"].is_string() && e.detail["decision"] == "connect" {
                self.forget_caller(&e.called, &e.callee);
            }
            return;
        }
        if e.binding_id.is_none() {
            return;
        }
        if e.kind.starts_with("binding.") {
            for key in ["number_x", "number_y"] {
                if let Some(n) = e.detail[key].as_str() {
                    self.forget_number(n);
                }
            }
        } else {
            // Call reports and carrier events may convert a carrier mirror: forget its numbers
            // too (rare, and a miss only costs a read).
            for n in [&e.called, &e.caller] {
                if !n.is_empty() {
                    self.forget_number(n);
                }
            }
        }
    }

    /// Decisions held (for tests and the load tool).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NoBindingReason;

    fn no_binding() -> Decision {
        Decision::NoBinding {
            reason: NoBindingReason::NotBound,
            binding: None,
        }
    }

    fn plain(h: Option<Hit>) -> bool {
        matches!(h, Some(Hit::Plain(_)))
    }

    /// Remembers an unbound decision for `caller` dialling `called`, read just now.
    fn learn(c: &RouteCache, called: &str, caller: &str) {
        let t = c.ticket(called, caller);
        c.remember(t, (called, caller, None), &no_binding(), Trace::default());
    }

    fn ready() -> RouteCache {
        let c = RouteCache::new();
        c.observe(&[], 0, Some(Instant::now()));
        c
    }

    #[test]
    fn remembered_until_the_number_is_invalidated() {
        let c = ready();
        learn(&c, "100", "200");
        assert!(plain(c.lookup("100", "200", None, 5, false)));
        assert!(c.lookup("100", "201", None, 5, false).is_none());
        assert!(c.lookup("100", "200", Some("1"), 5, false).is_none());
        c.forget_number("100");
        assert!(c.lookup("100", "200", None, 5, false).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_decision_raced_by_an_invalidation_is_not_remembered() {
        let c = ready();
        let t = c.ticket("100", "200");
        c.forget_number("100");
        c.remember(t, ("100", "200", None), &no_binding(), Trace::default());
        assert!(c.lookup("100", "200", None, 5, false).is_none());
    }

    #[test]
    fn a_forgotten_caller_refuses_only_its_own_decision() {
        let c = ready();
        let t1 = c.ticket("1", "2");
        let t9 = c.ticket("9", "2");
        let other = c.ticket("1", "3");
        c.forget_caller("1", "2");
        c.remember(t1, ("1", "2", None), &no_binding(), Trace::default());
        assert!(c.lookup("1", "2", None, 0, false).is_none());
        // The same caller on another number, another caller on this one: learnt.
        c.remember(t9, ("9", "2", None), &no_binding(), Trace::default());
        assert!(plain(c.lookup("9", "2", None, 0, false)));
        c.remember(other, ("1", "3", None), &no_binding(), Trace::default());
        assert!(plain(c.lookup("1", "3", None, 0, false)));
        // A ticket taken after the forget is good again.
        learn(&c, "1", "2");
        assert!(plain(c.lookup("1", "2", None, 0, false)));
    }

    #[test]
    fn stateful_or_expired_decisions_are_not_served() {
        let c = ready();
        let mut tr = Trace::default();
        tr.wrote();
        c.remember(c.ticket("1", "2"), ("1", "2", None), &no_binding(), tr);
        assert!(c.lookup("1", "2", None, 0, false).is_none());
        let mut tr = Trace::default();
        tr.live_until(1_000);
        c.remember(c.ticket("1", "2"), ("1", "2", None), &no_binding(), tr);
        assert!(plain(c.lookup("1", "2", None, 999, false)));
        assert!(c.lookup("1", "2", None, 1_000, false).is_none());
    }

    #[test]
    fn nothing_is_served_before_the_tailer_applied_this_process_s_changes() {
        let c = ready();
        learn(&c, "1", "2");
        c.published(7);
        assert!(c.lookup("1", "2", None, 0, false).is_none());
        c.observe(&[], 7, Some(Instant::now()));
        assert!(plain(c.lookup("1", "2", None, 0, false)));
        // Without a tailer at all, nothing is served.
        let cold = RouteCache::new();
        learn(&cold, "1", "2");
        assert!(cold.lookup("1", "2", None, 0, false).is_none());
    }

    #[test]
    fn an_extension_decision_serves_any_caller_without_a_route_of_its_own() {
        let c = ready();
        let tr = Trace {
            extension: Some(("b1".into(), ["8610".to_owned()].into_iter().collect())),
            ..Trace::default()
        };
        c.remember(
            c.ticket("1", "77"),
            ("1", "77", Some("101")),
            &no_binding(),
            tr,
        );
        assert!(matches!(
            c.lookup("1", "99", Some("101"), 0, false),
            Some(Hit::Extension { ref binding_id, .. }) if binding_id == "b1"
        ));
        // A caller with its own route on the number is decided by the database.
        assert!(c.lookup("1", "8610", Some("101"), 0, false).is_none());
        assert!(c.lookup("1", "99", Some("102"), 0, false).is_none());
        assert!(c.lookup("1", "99", None, 0, false).is_none());
        c.forget_number("1");
        assert!(c.lookup("1", "99", Some("101"), 0, false).is_none());
    }

    #[test]
    fn known_routes_answer_while_the_database_is_unreachable() {
        let c = ready();
        learn(&c, "1", "2");
        // The tailer falls behind (it cannot read the log): refused while the database is up…
        *c.caught_up.lock().unwrap() = Some(Instant::now() - STALE_AFTER * 2);
        assert!(c.lookup("1", "2", None, 0, false).is_none());
        // …answered while it is down; this process's own unapplied changes still refuse.
        assert!(plain(c.lookup("1", "2", None, 0, true)));
        c.published(9);
        assert!(c.lookup("1", "2", None, 0, true).is_none());
    }

    #[test]
    fn bounded() {
        let c = ready();
        for i in 0..(CAPACITY + 5_000) {
            let n = i.to_string();
            learn(&c, &n, "2");
        }
        assert!(c.len() <= CAPACITY);
    }
}
