//! What a write of a group-commit batch leaves for the end of its batch — its events and its
//! new binding rows (`defer_insert`) — and the number its batch claimed for it, if any
//! (`bindings::pre_claim`).
//!
//! A write running in the writer (see `writer`) does not append its lifecycle events (those
//! without a dedupe key) itself: it hands them to its batch, which appends every write's events
//! with ONE `append_events` right before its commit. So a batch takes the `event_seq` row lock
//! only for its last statements and its commit, and several batches can run their other
//! statements side by side (PostgreSQL runs several writers) instead of queueing on the counter
//! from their first event on. Sequence order stays commit order (the lock is still held from
//! the increment to the commit; see `events`).
//!
//! A call-in's events (dedupe key: its call id) are deferred too; the call-in gets their
//! sequence numbers (and whether one was a repeat) with its answer, after the commit. Carrier
//! reports are still appended where they are written (they need the outcome at once). A write
//! that appends events itself
//! holds the counter; on PostgreSQL its batch then commits right after it (see `writer`), so a
//! batch never waits for another's row locks while it holds the counter (no lock-order cycle).

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use super::bindings::pre_claim::Claimed;
use super::entities::binding;
use crate::domain::{Event, NewEvent};

/// What one attempt of one write left for its batch.
#[derive(Default)]
pub(crate) struct Deferred {
    /// (event, whether it changes routing).
    events: Mutex<Vec<(NewEvent, bool)>>,
    /// New binding rows, inserted by the batch (see `defer_insert`).
    rows: Mutex<Vec<binding::ActiveModel>>,
    /// What the batch claimed for this write (`bindings::pre_claim`), until it takes it.
    pre_claimed: Mutex<Option<Claimed>>,
    took_counter: AtomicBool,
    /// Events the write appended itself (`note_stored`), for `handoff` after the commit.
    stored: Mutex<Vec<Event>>,
}

/// What a write left for its batch's end: its events, then the binding rows it made.
#[derive(Default)]
pub(crate) struct Left {
    pub(crate) events: Vec<(NewEvent, bool)>,
    pub(crate) rows: Vec<binding::ActiveModel>,
    /// Events it appended itself (with their sequences), to hand on after the commit.
    pub(crate) stored: Vec<Event>,
}

tokio::task_local! {
    static CURRENT: std::sync::Arc<Deferred>;
}

impl Deferred {
    /// Runs `f` (one attempt of a write) with `self` as where its events go.
    pub(crate) async fn scope<F: std::future::Future>(
        self: std::sync::Arc<Self>,
        f: F,
    ) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// A write whose batch claimed `claimed` for it (`bindings::pre_claim`).
    pub(crate) fn with_pre_claimed(claimed: Option<Claimed>) -> Self {
        Self {
            pre_claimed: Mutex::new(claimed),
            ..Self::default()
        }
    }

    /// Whether the number claimed for this write is still there (the write did not take it).
    pub(crate) fn pre_claim_left(&self) -> bool {
        self.pre_claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// What this attempt deferred (events in the order they were written).
    pub(crate) fn take(&self) -> Left {
        Left {
            events: std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner())),
            rows: std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner())),
            stored: std::mem::take(&mut *self.stored.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Whether this attempt appended events itself (it holds the event counter's row lock).
    pub(crate) fn took_counter(&self) -> bool {
        self.took_counter.load(Ordering::Relaxed)
    }
}

/// Inside a batch's write: keeps `events` (binding lifecycle events: they change routing) for
/// the batch's end and answers true; the batch publishes them. Outside one (a transaction of
/// its own): false, the caller appends them itself.
pub(crate) fn defer(events: &mut Vec<NewEvent>) -> bool {
    keep(events, true)
}

/// As `defer`, for events the write publishes itself: it gets their `Appended` back with its
/// result (`Store::run_write_events`).
pub(crate) fn defer_own(events: &mut Vec<NewEvent>) -> bool {
    keep(events, false)
}

fn keep(events: &mut Vec<NewEvent>, routing: bool) -> bool {
    CURRENT
        .try_with(|d| {
            d.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(events.drain(..).map(|e| (e, routing)))
        })
        .is_ok()
}

/// Inside a batch's write: keeps a new binding row for the batch, which inserts every write's
/// new rows with one multi-row INSERT at its end, before its events — or earlier, right before
/// a write of the batch that is not a bind (it may read bindings: a call-in on the database
/// path following a route to its binding; see `pre_claim::NewBinding`). Binds do not read one
/// another's rows (a fixed X held by a pending bind is "locked" either way). The row's id is a
/// fresh UUIDv7 and it carries no `customer_bind_id` (see `bindings::settle`), so nothing can
/// collide with it. If that INSERT fails, no write of the batch is acknowledged. Outside a batch: the row back,
/// for the caller to insert itself.
pub(crate) fn defer_insert(row: binding::ActiveModel) -> Option<binding::ActiveModel> {
    let mut row = Some(row);
    let kept = CURRENT.try_with(|d| {
        d.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(row.take())
    });
    match kept {
        Ok(()) => None,
        Err(_) => row,
    }
}

/// The X the running write's batch claimed for it, if any (taken once).
pub(crate) fn take_pre_claimed_x() -> Option<String> {
    take_pre_claimed(|c| match c {
        Claimed::X(n) => Ok(n),
        other => Err(other),
    })
}

/// The AXN share the running write's batch claimed for it, if any (taken once): the number,
/// its extension counter, the extension (both routes are in).
pub(crate) fn take_pre_claimed_axn() -> Option<(String, i64, String)> {
    take_pre_claimed(|c| match c {
        Claimed::Axn {
            number,
            seq,
            extension,
        } => Ok((number, seq, extension)),
        other => Err(other),
    })
}

/// What the running write's batch claimed for it, if `f` takes it (else it stays).
fn take_pre_claimed<R>(f: impl FnOnce(Claimed) -> Result<R, Claimed>) -> Option<R> {
    CURRENT
        .try_with(|d| {
            let mut slot = d.pre_claimed.lock().unwrap_or_else(|p| p.into_inner());
            match f(slot.take()?) {
                Ok(r) => Some(r),
                Err(back) => {
                    *slot = Some(back);
                    None
                }
            }
        })
        .ok()
        .flatten()
}

/// Whether the running code is a write of a batch (its events are deferred).
pub(crate) fn in_batch() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Notes that the running write (if in a batch) appended events itself.
pub(crate) fn note_counter_taken() {
    let _ = CURRENT.try_with(|d| d.took_counter.store(true, Ordering::Relaxed));
}

/// Notes events the running write (if in a batch) appended itself, as stored.
pub(crate) fn note_stored(events: &[Event]) {
    let _ = CURRENT.try_with(|d| {
        d.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(events)
    });
}
