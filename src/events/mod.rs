//! The per-process event fan-out. One tailer follows the event log (woken at once by this
//! process's commits, whose events it takes from memory when they continue the log — see
//! `storage::handoff` — and reading the log for other replicas' at least every 100 ms) and keeps
//! the most recent events
//! in a bounded ring; live `WatchEvents` subscribers are served from the ring with their filters
//! applied in memory, so N idle subscribers cost no database query at all. Only a subscriber that
//! resumes from before the ring, or falls behind it, reads the database (page by page).
//!
//! The ring holds a contiguous range of sequences: the log has no holes and every event at or
//! below the committed counter is committed (see `storage::events`), so the tailer scans up to
//! the counter and the ring is exactly the events `start..=tail`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::watch;

use crate::domain::{DomainError, Event, EventFilter, Repository};

mod slots;
pub use slots::{DEFAULT_TENANT_STREAMS, Refused, StreamSlot};

/// Recent events kept in memory (about 1 KiB each, plus their encoding once a stream sent them).
pub const DEFAULT_RING: usize = 8192;
/// Concurrent `WatchEvents` streams per process.
pub const DEFAULT_MAX_STREAMS: usize = 10_000;
/// Events per database read (tailer and catch-up).
pub const PAGE: u64 = 500;
/// How often the tailer looks for events committed by other processes.
const POLL: Duration = Duration::from_millis(100);

struct Ring {
    /// Sequence of `events[0]` (when non-empty).
    start: i64,
    events: VecDeque<Arc<Published>>,
}

/// An event of the ring, shared by every stream that sends it, with its wire form once the
/// first of them needed it: the transport encodes each event once, not once per stream.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    wire: OnceLock<Bytes>,
}

impl Published {
    pub fn new(event: Event) -> Self {
        Self {
            event,
            wire: OnceLock::new(),
        }
    }

    /// The event's encoded form: made by `encode` the first time it is asked for, then shared.
    pub fn wire(&self, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.event)).clone()
    }
}

/// Shared by the tailer and every subscriber of this process.
#[derive(Clone)]
pub struct EventHub {
    ring: Arc<RwLock<Ring>>,
    cap: usize,
    /// The highest sequence the tailer has scanned: every event at or below it is committed
    /// and, if not older than the ring, in the ring.
    tail: Arc<watch::Sender<i64>>,
    streams: slots::Slots,
    max_streams: usize,
    /// How long a subscriber's buffer may stay full before the stream is cut off.
    cutoff: Duration,
    /// The cursor of every open stream, by stream number (for the lag gauge).
    positions: Arc<Mutex<HashMap<u64, Arc<AtomicI64>>>>,
    next_stream: Arc<AtomicU64>,
}

/// An admitted stream: holds its slot and publishes its cursor; both go when it is dropped.
pub struct Subscription {
    _slot: StreamSlot,
    number: u64,
    position: Arc<AtomicI64>,
    positions: Arc<Mutex<HashMap<u64, Arc<AtomicI64>>>>,
}

impl Subscription {
    /// The stream has sent (or skipped) every event up to `cursor`.
    pub fn advance(&self, cursor: i64) {
        self.position.store(cursor, Ordering::Relaxed);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.positions
            .lock()
            .expect("stream positions lock")
            .remove(&self.number);
        metrics::gauge!(crate::telemetry::metrics::EVENT_STREAMS).decrement(1.0);
    }
}

/// How long a subscriber that stopped reading keeps its stream (its buffer full) by default.
pub const DEFAULT_CUTOFF: Duration = Duration::from_secs(30);

/// What a subscriber gets for its cursor.
pub enum Next {
    /// From memory: the events after the cursor that the subscriber's filter keeps, in order
    /// (at most the limit), and the sequence up to which the ring was scanned for them.
    Ring {
        events: Vec<Arc<Published>>,
        through: i64,
    },
    /// The cursor is older than the ring: read `after..=up_to` from the database.
    Database { up_to: i64 },
    /// Nothing after the cursor yet.
    UpToDate,
}

impl EventHub {
    pub fn new(cap: usize, max_streams: usize) -> Self {
        Self {
            ring: Arc::new(RwLock::new(Ring {
                start: 1,
                events: VecDeque::with_capacity(cap.min(65_536)),
            })),
            cap: cap.max(1),
            tail: Arc::new(watch::channel(0).0),
            streams: slots::Slots::new(max_streams),
            max_streams,
            cutoff: DEFAULT_CUTOFF,
            positions: Arc::default(),
            next_stream: Arc::default(),
        }
    }

    /// Sets how long a subscriber's buffer may stay full before its stream is cut off.
    pub fn with_cutoff(mut self, cutoff: Duration) -> Self {
        self.cutoff = cutoff;
        self
    }

    pub fn cutoff(&self) -> Duration {
        self.cutoff
    }

    /// A slot for one stream starting after `cursor`, or `None` when `max_streams` are open.
    pub fn admit(&self, cursor: i64) -> Option<Subscription> {
        self.admit_for(None, cursor).ok()
    }

    /// A slot for one stream of `tenant` = (name, its cap), or of a caller without a
    /// per-tenant cap (`None`), starting after `cursor`; or which cap is reached.
    pub fn admit_for(
        &self,
        tenant: Option<(&str, usize)>,
        cursor: i64,
    ) -> Result<Subscription, Refused> {
        let slot = self.streams.admit(self.max_streams, tenant)?;
        let number = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let position = Arc::new(AtomicI64::new(cursor));
        self.positions
            .lock()
            .expect("stream positions lock")
            .insert(number, position.clone());
        metrics::gauge!(crate::telemetry::metrics::EVENT_STREAMS).increment(1.0);
        Ok(Subscription {
            _slot: slot,
            number,
            position,
            positions: self.positions.clone(),
        })
    }

    /// Events the furthest-behind open stream has yet to pass (0 with no stream open).
    pub fn lag(&self) -> i64 {
        let latest = self.latest();
        let positions = self.positions.lock().expect("stream positions lock");
        positions
            .values()
            .map(|p| latest - p.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.max_streams - self.streams.available()
    }

    /// Follows the tail (changes when new events are in the ring).
    pub fn tail(&self) -> watch::Receiver<i64> {
        self.tail.subscribe()
    }

    /// The highest committed sequence the hub has seen.
    pub fn latest(&self) -> i64 {
        *self.tail.borrow()
    }

    /// Up to `limit` events after `cursor` that `keep` accepts (the filter runs under the
    /// ring's read lock, so the events it rejects are not even cloned).
    pub fn next(&self, cursor: i64, limit: usize, keep: impl Fn(&Event) -> bool) -> Next {
        let tail = self.latest();
        if cursor >= tail {
            return Next::UpToDate;
        }
        let ring = self.ring.read().expect("event ring lock");
        if ring.events.is_empty() || cursor + 1 < ring.start {
            return Next::Database {
                up_to: if ring.events.is_empty() {
                    tail
                } else {
                    ring.start - 1
                },
            };
        }
        let from = (cursor + 1 - ring.start) as usize;
        let mut events = Vec::new();
        // Scanned to the end: every event up to the tail read above is in the ring.
        let mut through = (ring.start + ring.events.len() as i64 - 1).max(tail);
        for p in ring.events.iter().skip(from) {
            if keep(&p.event) {
                events.push(p.clone());
                if events.len() >= limit {
                    through = p.event.sequence;
                    break;
                }
            }
        }
        Next::Ring { events, through }
    }

    /// Retention: drops from memory every event that occurred at or before `cutoff`, with the
    /// events before it (the ring stays contiguous; readers of older sequences read the
    /// database, where retention erased the real numbers). Called by the sweeper before it
    /// purges, so no subscriber is served a real number past its retention from memory.
    pub fn evict_older_than(&self, cutoff: crate::domain::Millis) {
        let mut ring = self.ring.write().expect("event ring lock");
        if let Some(last_old) = ring
            .events
            .iter()
            .rposition(|p| p.event.occurred_at <= cutoff)
        {
            ring.events.drain(..=last_old);
            ring.start += last_old as i64 + 1;
        }
    }

    /// Appends scanned events (contiguous, after the current tail) and moves the tail to
    /// `up_to` (the counter the scan covered).
    fn push(&self, events: Vec<Event>, up_to: i64) {
        {
            let mut ring = self.ring.write().expect("event ring lock");
            for e in events {
                let expected = ring.start + ring.events.len() as i64;
                if ring.events.is_empty() {
                    ring.start = e.sequence;
                } else if e.sequence != expected {
                    // Never happens with a hole-free log; restart the ring rather than serve a
                    // gap (subscribers behind it read the database).
                    ring.events.clear();
                    ring.start = e.sequence;
                }
                ring.events.push_back(Arc::new(Published::new(e)));
                if ring.events.len() > self.cap {
                    ring.events.pop_front();
                    ring.start += 1;
                }
            }
        }
        self.tail.send_if_modified(|t| {
            let moved = up_to > *t;
            if moved {
                *t = up_to;
            }
            moved
        });
    }

    /// The tailer: runs until `stop`. Starts at the current end of the log (subscribers that
    /// want older events read them from the database). This process's own commits it takes
    /// from memory (`Repository::committed_after`) when they continue where it stopped; it
    /// reads the log when they do not (another replica's events, a gap) and at least every
    /// [`POLL`] (which is what tells it that it reached the log's head: the staleness bound of
    /// the route index).
    pub async fn run<R: Repository>(self, repo: Arc<R>, mut stop: watch::Receiver<bool>) {
        let mut wake = repo.subscribe();
        let mut t = Tail::default();
        loop {
            let published = *wake.borrow_and_update();
            let poll = match self.scan(repo.as_ref(), &mut t, published).await {
                Ok(true) => continue, // more may be waiting
                // The next read of the log is due POLL after the last one.
                Ok(false) => POLL.saturating_sub(t.read_at.map_or(POLL, |at| at.elapsed())),
                Err(e) => {
                    tracing::warn!(error = %e, "event tailer could not read the log; retrying");
                    POLL
                }
            };
            tokio::select! {
                r = wake.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One step; `Ok(true)` when it moved and more may be waiting. `published`: the highest
    /// sequence this process says it committed.
    async fn scan<R: Repository>(
        &self,
        repo: &R,
        t: &mut Tail,
        published: i64,
    ) -> Result<bool, DomainError> {
        if let Some(from) = t.scanned {
            // This process's own events first, whether or not a read of the log is due.
            let mine = repo.committed_after(from);
            let moved = mine.last().map(|e| e.sequence);
            if let Some(last) = moved {
                // Reaching the oldest head read (not reached yet) bounds staleness as a read
                // of the log would.
                let caught_up_at = match t.head {
                    Some((seq, at)) if last >= seq => {
                        t.head = None;
                        Some(at)
                    }
                    _ => None,
                };
                self.apply(repo, t, mine, last, caught_up_at);
            }
            if t.read_at.is_some_and(|at| at.elapsed() < POLL) {
                if published <= moved.unwrap_or(from) {
                    return Ok(moved.is_some()); // others' events wait for the poll
                }
                if moved.is_some() {
                    return Ok(true); // more of this process's may follow; a gap is read next
                }
            }
        }
        self.read_log(repo, t).await
    }

    /// Reads the log after where the tailer stopped (a page at most).
    async fn read_log<R: Repository>(&self, repo: &R, t: &mut Tail) -> Result<bool, DomainError> {
        let read_at = Instant::now();
        let latest = repo.latest_sequence().await?;
        t.read_at = Some(read_at);
        let Some(from) = t.scanned else {
            t.scanned = Some(latest);
            self.ring.write().expect("event ring lock").start = latest + 1;
            repo.observe_log(&[], latest, Some(read_at));
            self.push(Vec::new(), latest);
            return Ok(false);
        };
        if latest <= from {
            t.head = None;
            repo.observe_log(&[], from, Some(read_at));
            return Ok(false);
        }
        let page = repo
            .read_events(&EventFilter {
                tenant: None,
                after: from,
                up_to: Some(latest),
                pool_key: None,
                binding_id: None,
                customer_user_id: None,
                kinds: Vec::new(),
                limit: PAGE,
            })
            .await?;
        let full = page.len() as u64 >= PAGE;
        let up_to = if full {
            page.last().map_or(latest, |e| e.sequence)
        } else {
            latest
        };
        let caught_up_at = if up_to >= latest {
            t.head = None;
            Some(read_at)
        } else {
            match t.head {
                Some((seq, at)) if up_to >= seq => {
                    t.head = Some((latest, read_at));
                    Some(at)
                }
                Some(_) => None,
                None => {
                    t.head = Some((latest, read_at));
                    None
                }
            }
        };
        self.apply(repo, t, page, up_to, caught_up_at);
        Ok(full)
    }

    /// Applies `events` (contiguous, after where the tailer stopped) up to `up_to`: the route
    /// index first — once a subscriber can see an event, routing reflects it — then the ring.
    fn apply<R: Repository>(
        &self,
        repo: &R,
        t: &mut Tail,
        events: Vec<Event>,
        up_to: i64,
        caught_up_at: Option<Instant>,
    ) {
        repo.observe_log(&events, up_to, caught_up_at);
        self.push(events, up_to);
        t.scanned = Some(up_to);
    }
}

/// Where the tailer is.
#[derive(Default)]
struct Tail {
    /// The highest sequence applied (`None` before the first read of the log).
    scanned: Option<i64>,
    /// The oldest log head read (with when) that the tailer has not reached yet — reaching it
    /// means every event committed before that moment has been applied (what the route
    /// index's staleness bound needs).
    head: Option<(i64, Instant)>,
    /// When the log was last read.
    read_at: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &Event) -> bool {
        true
    }

    /// The sequences served from the ring, and how far it was scanned.
    fn ring(n: Next) -> (Vec<i64>, i64) {
        match n {
            Next::Ring { events, through } => {
                (events.iter().map(|p| p.event.sequence).collect(), through)
            }
            _ => panic!("expected the ring"),
        }
    }

    fn ev(seq: i64) -> Event {
        Event {
            sequence: seq,
            kind: "binding.created".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_ring_serves_recent_events_and_sends_older_cursors_to_the_database() {
        let hub = EventHub::new(4, 10);
        hub.ring.write().unwrap().start = 11;
        hub.push(Vec::new(), 10);
        assert!(matches!(hub.next(10, 100, all), Next::UpToDate));
        hub.push((11..=16).map(ev).collect(), 16);
        // Capacity 4: 13..=16 kept.
        assert_eq!(ring(hub.next(12, 100, all)), (vec![13, 14, 15, 16], 16));
        assert_eq!(ring(hub.next(14, 1, all)), (vec![15], 15));
        assert!(matches!(
            hub.next(5, 100, all),
            Next::Database { up_to: 12 }
        ));
        assert!(matches!(hub.next(16, 100, all), Next::UpToDate));
        // A filter: only what it keeps, the scan covering the rest.
        let even = |e: &Event| e.sequence % 2 == 0;
        assert_eq!(ring(hub.next(12, 100, even)), (vec![14, 16], 16));
        assert_eq!(ring(hub.next(12, 1, even)), (vec![14], 14));
        assert_eq!(ring(hub.next(14, 100, |_| false)), (vec![], 16));
    }

    #[test]
    fn an_event_is_encoded_once_and_shared() {
        let hub = EventHub::new(4, 10);
        hub.ring.write().unwrap().start = 1;
        hub.push(vec![ev(1)], 1);
        let encodings = AtomicU64::new(0);
        let encode = |e: &Event| {
            encodings.fetch_add(1, Ordering::Relaxed);
            Bytes::from(e.sequence.to_string())
        };
        let mut wires = Vec::new();
        for _ in 0..3 {
            let Next::Ring { events, .. } = hub.next(0, 10, all) else {
                panic!("expected the ring")
            };
            wires.push(events[0].wire(encode));
        }
        assert_eq!(encodings.load(Ordering::Relaxed), 1);
        assert!(wires.iter().all(|w| w.as_ptr() == wires[0].as_ptr()));
    }

    #[test]
    fn retention_evicts_old_events_and_those_before_them() {
        let hub = EventHub::new(8, 10);
        hub.ring.write().unwrap().start = 1;
        let mut events: Vec<Event> = (1..=5).map(ev).collect();
        // occurred_at: 1 -> 100, 2 -> 50 (old), 3 -> 300 (old, out of order), 4 -> 500, 5 -> 600.
        for (e, t) in events.iter_mut().zip([100, 50, 300, 500, 600]) {
            e.occurred_at = t;
        }
        hub.push(events, 5);
        hub.evict_older_than(40);
        assert_eq!(ring(hub.next(0, 100, all)).0.len(), 5);
        hub.evict_older_than(300);
        // 1..=3 go (3 is old; 1 and 2 before it); cursors before 4 read the database.
        assert!(matches!(hub.next(0, 100, all), Next::Database { up_to: 3 }));
        assert_eq!(ring(hub.next(3, 100, all)), (vec![4, 5], 5));
    }

    #[test]
    fn streams_are_capped() {
        let hub = EventHub::new(4, 2);
        let a = hub.admit(0).unwrap();
        let _b = hub.admit(0).unwrap();
        assert!(hub.admit(0).is_none());
        assert_eq!(hub.open_streams(), 2);
        drop(a);
        assert!(hub.admit(0).is_some());
    }

    #[test]
    fn lag_is_that_of_the_furthest_behind_stream() {
        let hub = EventHub::new(4, 10);
        hub.push(Vec::new(), 100);
        assert_eq!(hub.lag(), 0, "no stream open");
        let a = hub.admit(40).unwrap();
        let b = hub.admit(90).unwrap();
        assert_eq!(hub.lag(), 60);
        a.advance(95);
        assert_eq!(hub.lag(), 10);
        drop(b);
        assert_eq!(hub.lag(), 5);
        a.advance(100);
        assert_eq!(hub.lag(), 0);
    }
}
