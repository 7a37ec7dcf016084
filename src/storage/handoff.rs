//! Events this process committed, handed to its event tailer (`events::EventHub`) so it need
//! not read them back from the database.
//!
//! The group writer (`writer`) knows every event its batch stored and the sequence each got;
//! after the batch's commit — and before it answers any write of it or wakes the tailer — it
//! offers them here. The tailer takes the run that continues exactly where it stopped
//! (`take_after`); anything else (another replica's events, a transaction outside the writer,
//! a batch whose offer arrives after a later one's) leaves a gap, and the tailer reads the log
//! for it as before. So this is only a shortcut: the database stays the one source, and an
//! event is never served that was not committed (offers happen after the commit only).
//!
//! Bounded: past [`CAP`] events held (no tailer taking them), everything held is dropped; the
//! tailer then reads those from the log.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::domain::Event;

/// Most events held for the tailer.
pub(crate) const CAP: usize = 16_384;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Committed {
    held: Mutex<Held>,
    /// Events taken by the tailer so far.
    taken: AtomicU64,
    /// A tailer has taken from here (until then nothing is held: a process without one, such
    /// as the load tool's bulk preload, keeps nothing).
    tailing: AtomicBool,
}

#[derive(Default)]
struct Held {
    /// Contiguous runs of committed events, by the sequence of their first.
    runs: BTreeMap<i64, Vec<Event>>,
    /// Events in `runs`.
    len: usize,
}

impl Committed {
    /// Events of one committed transaction, in sequence order (held as contiguous runs).
    pub(crate) fn offer(&self, events: Vec<Event>) {
        if events.is_empty() || !self.tailing.load(Ordering::Relaxed) {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len + events.len() > CAP {
            *held = Held::default();
            if events.len() > CAP {
                return;
            }
        }
        held.len += events.len();
        let mut run: Vec<Event> = Vec::new();
        for e in events {
            if let Some(last) = run.last()
                && last.sequence + 1 != e.sequence
            {
                let done = std::mem::take(&mut run);
                held.runs.insert(done[0].sequence, done);
            }
            run.push(e);
        }
        if !run.is_empty() {
            held.runs.insert(run[0].sequence, run);
        }
    }

    /// The committed events that continue the log exactly after `after` (`after + 1`,
    /// `after + 2`, …, as far as they are held without a gap), in order; empty when the next one
    /// is not held. Everything held at or below `after` is dropped (the tailer has it).
    pub(crate) fn take_after(&self, after: i64) -> Vec<Event> {
        self.tailing.store(true, Ordering::Relaxed);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Event> = Vec::new();
        let mut next = after + 1;
        while let Some(entry) = held.runs.first_entry() {
            let first = *entry.key();
            let n = entry.get().len();
            let last = first + n as i64 - 1;
            if last < next {
                entry.remove();
                held.len -= n;
                continue;
            }
            if first > next {
                break;
            }
            // `first <= next <= last`: the part from `next` on continues the log.
            let run = entry.remove();
            held.len -= n;
            out.extend(run.into_iter().filter(|e| e.sequence >= next));
            next = last + 1;
        }
        self.taken.fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// Events the tailer took from here so far (not read back from the log).
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evs(seqs: impl IntoIterator<Item = i64>) -> Vec<Event> {
        seqs.into_iter()
            .map(|sequence| Event {
                sequence,
                ..Default::default()
            })
            .collect()
    }

    fn seqs(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.sequence).collect()
    }

    /// A hand-over a tailer takes from.
    fn tailed() -> Committed {
        let c = Committed::default();
        assert!(c.take_after(0).is_empty());
        c
    }

    #[test]
    fn nothing_is_held_before_a_tailer_takes() {
        let c = Committed::default();
        c.offer(evs(1..=3));
        assert!(
            c.take_after(0).is_empty(),
            "offered before any tailer: not held"
        );
        c.offer(evs(4..=5));
        assert_eq!(seqs(&c.take_after(3)), vec![4, 5]);
    }

    #[test]
    fn only_the_run_that_continues_the_log_is_taken() {
        let c = tailed();
        c.offer(evs(11..=20));
        assert!(c.take_after(5).is_empty(), "6..=10 are not held: a gap");
        // Another writer's earlier batch arrives late; together they continue the log.
        c.offer(evs(6..=10));
        assert_eq!(seqs(&c.take_after(5)), (6..=20).collect::<Vec<_>>());
        assert!(c.take_after(20).is_empty());
    }

    #[test]
    fn what_the_tailer_read_from_the_log_is_dropped() {
        let c = tailed();
        c.offer(evs(1..=10));
        c.offer(evs(15..=16));
        // The tailer read 1..=12 from the database (it found a gap, say).
        assert!(c.take_after(12).is_empty(), "13 and 14 are not held");
        let held = c.held.lock().unwrap();
        assert_eq!((held.runs.len(), held.len), (1, 2), "1..=10 dropped");
        drop(held);
        // A run straddling the cursor gives only what follows it.
        c.offer(evs(12..=14));
        assert_eq!(seqs(&c.take_after(12)), vec![13, 14, 15, 16]);
    }

    #[test]
    fn an_offer_with_a_gap_is_held_as_runs() {
        let c = tailed();
        c.offer(evs([1, 2, 4]));
        assert_eq!(seqs(&c.take_after(0)), vec![1, 2]);
        assert!(c.take_after(2).is_empty(), "3 is someone else's");
        assert_eq!(seqs(&c.take_after(3)), vec![4]);
    }

    #[test]
    fn it_is_bounded() {
        let c = tailed();
        c.offer(evs(1..=CAP as i64));
        c.offer(evs(CAP as i64 + 1..=CAP as i64 + 5));
        assert!(c.take_after(0).is_empty(), "the oldest were dropped");
        assert_eq!(seqs(&c.take_after(CAP as i64)).len(), 5);
        c.offer(evs(1..=CAP as i64 + 1));
        let held = c.held.lock().unwrap();
        assert!(
            held.runs.is_empty() && held.len == 0,
            "an offer past the cap is not held"
        );
    }
}
