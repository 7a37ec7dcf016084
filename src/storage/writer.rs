//! Group commit. Concurrent writes are queued to the process's writers, each of which runs as
//! many as are waiting in ONE transaction — each under its own savepoint, so one's conflict or
//! error rolls back only its own changes (a batch — on PostgreSQL one of nothing but binds —
//! first tries them all under one shared savepoint and falls back to one each only when a write
//! fails: `shared_savepoint`) —
//! and answers each only after that transaction committed. A lone write commits at once (no timer); batches grow with load. On SQLite every
//! commit is an fsync (`synchronous=FULL`), so this turns one fsync per write into one per
//! batch; SQLite has one writer (one connection). PostgreSQL runs several (`StoreOptions::
//! writers`), each on a pooled connection, so the statement round trips of different batches
//! overlap.
//!
//! The events of a batch's writes are appended once at its end (see `deferred`): a batch holds
//! the `event_seq` row only for its last statements and its commit, so batches do not queue on
//! the counter for their whole length and sequence order stays commit order. A write that
//! appends events itself (a dedupe key) ends its batch: the batch commits right after it. A
//! batch of nothing but appends (routed call-ins) takes no savepoint; on PostgreSQL it is ONE
//! statement that commits on its own (`events::append_at_once`), with a transaction only after
//! a stored key made that statement fail.
//!
//! A write is an operation that takes its (savepoint) transaction by value and gives it back
//! with its result, so it owns everything it touches and can run on the writer's task. It may
//! run more than once: after a retryable database error (PostgreSQL deadlock or serialization
//! failure) its savepoint is rolled back and it runs again.

use std::{
    any::Any,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

pub(crate) use super::batch_end::LastParty;
use super::batch_end::append_all;
use super::batch_end::insert_rows;
use super::bindings::pre_claim::NewBinding;
use super::deferred::{Deferred, Left};
use super::events::Appended;
use super::handoff::Committed;
use super::shared_savepoint::{self, Shared};
use super::{TxError, is_retryable, is_unavailable};
use crate::domain::{DomainError, NewEvent};

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;
/// Most writes of their own (`Job::Op`) in one transaction when others write concurrently
/// (PostgreSQL). Each runs under a savepoint, and most open one or two more (route inserts):
/// past 64 subtransactions a transaction's snapshot data overflows to `pg_subtrans`, which
/// slows visibility checks (one loaded-machine run: ~8 ms a bind in batches of ~80 AXN binds,
/// ~5 ms in batches of ≤ 16; BENCHMARKS.md). Short batches also spread the load over the
/// writers. Appends (`Job::Append`) open none and are not counted.
const MAX_OPS_CONCURRENT: usize = 16;
/// Most binds in one transaction when others write concurrently (PostgreSQL), in a batch of
/// nothing but binds: they share ONE savepoint (`shared_savepoint`), so the subtransaction
/// bound above does not apply; if their shared run fails, the write-by-write rerun still takes
/// at most `MAX_OPS_CONCURRENT` (the rest go to the next transaction). pns-load on
/// PostgreSQL, 16 → 48: BindXyb 0.113–0.119× → 0.161–0.163×, BindAxnExtension 0.109–0.110× →
/// 0.149–0.155× (BENCHMARKS.md, 2026-12-01 seventh session).
const MAX_BINDS_CONCURRENT: usize = 48;
/// Writes waiting for the writer before submitters wait for room (backpressure).
const QUEUE: usize = 4096;
/// How long a write that is not the first of its batch waits for a row lock (PostgreSQL)
/// before it is moved to the next transaction; in a shared run (`shared_savepoint`) every
/// write and the batch's claim wait at most this long, and the run fails past it.
const LOCK_WAIT_MS: u64 = 25;
/// Attempts of one write (and of a batch's end) after retryable database errors.
pub(super) const ATTEMPTS: u32 = 8;

pub(crate) type OpResult<T> = (DatabaseTransaction, Result<T, TxError>);
pub(crate) type OpFuture<T> = Pin<Box<dyn Future<Output = OpResult<T>> + Send>>;
type Out = Box<dyn Any + Send>;
type Op = Box<dyn FnMut(DatabaseTransaction) -> OpFuture<Out> + Send>;

enum Job {
    /// A write of its own, under a savepoint.
    Op {
        op: Op,
        /// A bind (it makes a new binding; `pre_claim::NewBinding`), or any other write.
        new_binding: Option<NewBinding>,
        /// Its result and the `Appended` of the events it deferred (in order).
        reply: oneshot::Sender<Result<(Out, Vec<Appended>), TxError>>,
    },
    /// Events only (a routed call-in's `call.incoming`): every such job of a batch is appended
    /// together at the end of the batch — one dedupe lookup, one counter increment, one
    /// INSERT, whatever the number of call-ins; on PostgreSQL a batch of nothing but these is
    /// one statement (`Writer::append_at_once`).
    Append {
        events: Vec<NewEvent>,
        /// The binding whose last party becomes this caller (a connected extension call).
        touch: Option<LastParty>,
        reply: oneshot::Sender<Result<Vec<Appended>, TxError>>,
    },
}

/// Called after a commit with the highest sequence of the batch's deferred events (binding
/// lifecycle events: they change routing), before any write of the batch is answered.
pub(crate) type OnCommit = Arc<dyn Fn(i64) + Send + Sync>;

/// The submitting side; the writer tasks end when every clone is dropped.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
    /// Appends (`Job::Append`) when several writers share `jobs` (PostgreSQL): one writer of
    /// their own takes them, so they form large batches — one counter update, one multi-row
    /// INSERT and one commit for up to `MAX_BATCH` routed call-ins — instead of a few per
    /// batch of each writer, every one of those batches then queueing on the event counter
    /// (measured: 13 writes per transaction, 1,300 call-ins/s on PostgreSQL).
    appends: Option<mpsc::Sender<Job>>,
    stats: Arc<Stats>,
}

/// What the writer did: transactions and the writes they held.
#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    writes: AtomicU64,
    /// Batches whose writes ran under one shared savepoint, and those of them where
    /// a write failed and every write ran again under its own.
    shared: AtomicU64,
    shared_failed: AtomicU64,
    /// Numbers binds took from their batch's claim (`bindings::pre_claim`) in shared runs that
    /// were kept.
    pre_claimed: AtomicU64,
    /// Numbers claimed for batches of binds, whether their shared run was kept or not.
    pre_claims_made: AtomicU64,
    /// Nanoseconds the writers spent on batches (from taking one to answering its writes), and
    /// of those in their commits.
    busy_ns: AtomicU64,
    commit_ns: AtomicU64,
}

impl GroupWriter {
    /// Starts `writers` (at least one) writer tasks taking batches from one queue. `concurrent`:
    /// other transactions may write at the same time (PostgreSQL: other writers, other
    /// replicas), so a batch commits right after a write that took the event counter itself.
    pub(crate) fn start(
        db: DatabaseConnection,
        writers: usize,
        concurrent: bool,
        on_commit: OnCommit,
        handoff: Arc<Committed>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let stats = Arc::new(Stats::default());
        let writer = || Writer {
            db: db.clone(),
            stats: stats.clone(),
            handoff: handoff.clone(),
            concurrent,
            on_commit: on_commit.clone(),
            skip_shared: AtomicU32::new(0),
        };
        for _ in 0..writers.max(1) {
            tokio::spawn(writer().run(rx.clone()));
        }
        let appends = (writers > 1).then(|| {
            let (appends, rx) = mpsc::channel(QUEUE);
            tokio::spawn(writer().run(Arc::new(tokio::sync::Mutex::new(rx))));
            appends
        });
        Self {
            jobs,
            appends,
            stats,
        }
    }

    /// (transactions committed or attempted, writes they held) so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.stats.batches.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// (batches whose writes shared one savepoint, those of them that ran again write by
    /// write) so far.
    pub(crate) fn shared_stats(&self) -> (u64, u64) {
        (
            self.stats.shared.load(Ordering::Relaxed),
            self.stats.shared_failed.load(Ordering::Relaxed),
        )
    }

    /// Numbers binds took from their batch's claim (`bindings::pre_claim`) so far.
    pub(crate) fn pre_claimed(&self) -> u64 {
        self.stats.pre_claimed.load(Ordering::Relaxed)
    }

    /// Numbers claimed for batches of binds so far, kept or rolled back.
    pub(crate) fn pre_claims_made(&self) -> u64 {
        self.stats.pre_claims_made.load(Ordering::Relaxed)
    }

    /// (time the writers spent on batches, of it in commits) so far.
    pub(crate) fn busy(&self) -> (std::time::Duration, std::time::Duration) {
        let ns = |a: &AtomicU64| std::time::Duration::from_nanos(a.load(Ordering::Relaxed));
        (ns(&self.stats.busy_ns), ns(&self.stats.commit_ns))
    }

    /// Runs `op` in the next batch; answers after that batch committed, with the `Appended`
    /// of the events `op` deferred (`deferred::defer_own`).
    pub(crate) async fn submit_events<T, F>(
        &self,
        new_binding: Option<NewBinding>,
        mut op: F,
    ) -> Result<(T, Vec<Appended>), TxError>
    where
        T: Send + 'static,
        F: FnMut(DatabaseTransaction) -> OpFuture<T> + Send + 'static,
    {
        let erased: Op = Box::new(move |tx| {
            let f = op(tx);
            Box::pin(async move {
                let (tx, r) = f.await;
                (tx, r.map(|v| Box::new(v) as Out))
            })
        });
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Op {
                op: erased,
                new_binding,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        let (out, appended) = answer.await.map_err(|_| stopped())??;
        let out = out.downcast::<T>().map(|b| *b).map_err(|_| {
            TxError::Domain(DomainError::Internal("write result of another type".into()))
        })?;
        Ok((out, appended))
    }

    /// Appends `events` in the next batch (with every other append of it, see `Job::Append`);
    /// answers after that batch committed, one `Appended` per event in order.
    pub(crate) async fn append(
        &self,
        events: Vec<NewEvent>,
        touch: Option<LastParty>,
    ) -> Result<Vec<Appended>, TxError> {
        let (reply, answer) = oneshot::channel();
        self.appends
            .as_ref()
            .unwrap_or(&self.jobs)
            .send(Job::Append {
                events,
                touch,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> TxError {
    TxError::Domain(DomainError::Unavailable("the writer has stopped".into()))
}

/// One writer task.
struct Writer {
    db: DatabaseConnection,
    stats: Arc<Stats>,
    /// Where a batch's stored events go after its commit (for this process's event tailer).
    handoff: Arc<Committed>,
    concurrent: bool,
    on_commit: OnCommit,
    /// Batches left to run with a savepoint per write after a shared run failed.
    skip_shared: AtomicU32,
}

impl Writer {
    /// Whether this batch's writes first run under one shared savepoint (not in the batches
    /// after a shared run failed: `AFTER_FAILURE`).
    fn shared_due(&self) -> bool {
        let left = self.skip_shared.load(Ordering::Relaxed);
        if left > 0 {
            self.skip_shared.store(left - 1, Ordering::Relaxed);
        }
        left == 0
    }

    /// Takes what is waiting (up to `MAX_BATCH`) when it is free, runs it.
    async fn run(self, jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let batch = {
                let mut rx = jobs.lock().await;
                let Some(first) = rx.recv().await else {
                    return;
                };
                // Leave writes beyond a transaction's share in the queue for other writers.
                let cap = |other_ops: usize| match (self.concurrent, other_ops) {
                    (false, _) => MAX_BATCH,
                    (true, 0) => MAX_BINDS_CONCURRENT,
                    (true, _) => MAX_OPS_CONCURRENT,
                };
                let other = |j: &Job| {
                    matches!(
                        j,
                        Job::Op {
                            new_binding: None,
                            ..
                        }
                    )
                };
                let mut ops = usize::from(matches!(first, Job::Op { .. }));
                let mut other_ops = usize::from(other(&first));
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH && ops < cap(other_ops) {
                    match rx.try_recv() {
                        Ok(j) => {
                            ops += usize::from(matches!(j, Job::Op { .. }));
                            other_ops += usize::from(other(&j));
                            batch.push(j);
                        }
                        Err(_) => break,
                    }
                }
                batch
            };
            let started = std::time::Instant::now();
            let mut rest = batch;
            while !rest.is_empty() {
                rest = self.execute(rest).await;
            }
            self.stats
                .busy_ns
                .fetch_add(elapsed_ns(started), Ordering::Relaxed);
        }
    }

    /// Runs `batch` in one transaction (a batch of nothing but appends: `execute_appends`), up
    /// to and including the first write that took the event counter itself; answers every
    /// write it ran; gives back the jobs it did not run.
    async fn execute(&self, batch: Vec<Job>) -> Vec<Job> {
        if batch.iter().all(|j| matches!(j, Job::Append { .. })) {
            self.execute_appends(batch).await;
            return Vec::new();
        }
        let tx = match self.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                for job in batch {
                    job.fail(batch_error(&e));
                }
                return Vec::new();
            }
        };
        let mut answers = Vec::with_capacity(batch.len());
        // Whether later writes of this batch wait for row locks at most `LOCK_WAIT_MS`.
        let mut lock_wait = false;
        // The writes' deferred events, then the appends' events: one append at the end.
        let mut deferred = Vec::new();
        // The writes' new binding rows: one multi-row INSERT at the end (`defer_insert`).
        let mut rows = Vec::new();
        // Appends wait for the end of the batch: (how many events, who gets them).
        let mut appends: Vec<(usize, AppendReply)> = Vec::new();
        let mut events = Vec::new();
        let mut touches = Vec::new();
        // Events the writes appended themselves, as stored (for `handoff`).
        let mut stored = Vec::new();
        let mut held = 0usize;
        let mut batch = batch;
        let writes = batch.iter().filter(|j| matches!(j, Job::Op { .. })).count();
        // PostgreSQL: only a batch of binds shares a savepoint (no bind appends events itself,
        // so none holds the event counter while the others run), with a short lock wait.
        let binds_only = batch.iter().all(|j| match j {
            Job::Op { new_binding, .. } => new_binding.is_some(),
            Job::Append { .. } => true,
        });
        let shared_here = !self.concurrent || binds_only;
        if shared_here && writes > 1 && self.shared_due() {
            // The writes under one shared savepoint first (see `shared_savepoint`).
            if self.concurrent {
                if let Err(e) = set_lock_timeout(&tx, LOCK_WAIT_MS).await {
                    let _ = tx.rollback().await;
                    for job in batch {
                        job.fail(batch_error(&e));
                    }
                    return Vec::new();
                }
                lock_wait = true;
            }
            let (mut ops, mut binds, mut replies, mut others) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for job in batch {
                match job {
                    Job::Op {
                        op,
                        new_binding,
                        reply,
                    } => {
                        ops.push(op);
                        binds.push(new_binding);
                        replies.push(reply);
                    }
                    other => others.push(other),
                }
            }
            self.stats.shared.fetch_add(1, Ordering::Relaxed);
            batch = match shared_savepoint::run(&tx, &mut ops, &binds, &self.stats.pre_claims_made)
                .await
            {
                Shared::Done(outs, pre_claimed) => {
                    self.stats
                        .pre_claimed
                        .fetch_add(pre_claimed, Ordering::Relaxed);
                    held += outs.len();
                    for (reply, (out, mine)) in replies.into_iter().zip(outs) {
                        let range = deferred.len()..deferred.len() + mine.events.len();
                        deferred.extend(mine.events);
                        rows.extend(mine.rows);
                        stored.extend(mine.stored);
                        answers.push((reply, Ok(out), range));
                    }
                    others
                }
                Shared::Failed => {
                    self.stats.shared_failed.fetch_add(1, Ordering::Relaxed);
                    self.skip_shared
                        .store(shared_savepoint::AFTER_FAILURE, Ordering::Relaxed);
                    // Write by write, the first one waits for row locks as long as it takes.
                    if lock_wait {
                        if let Err(e) = set_lock_timeout(&tx, 0).await {
                            let _ = tx.rollback().await;
                            for ((_, _), reply) in ops.into_iter().zip(binds).zip(replies) {
                                let _ = reply.send(Err(batch_error(&e)));
                            }
                            for job in others {
                                job.fail(batch_error(&e));
                            }
                            return Vec::new();
                        }
                        lock_wait = false;
                    }
                    // Write by write (each claims its own number: only a shared run claims for
                    // the batch).
                    let ops = ops.into_iter().zip(binds).zip(replies);
                    ops.map(|((op, new_binding), reply)| Job::Op {
                        op,
                        new_binding,
                        reply,
                    })
                    .chain(others)
                    .collect()
                }
                Shared::Broken(e) => {
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, writes, "batch savepoint failed; no write of it is acknowledged");
                    let _ = tx.rollback().await;
                    for reply in replies {
                        let _ = reply.send(Err(batch_error(&e)));
                    }
                    for job in others {
                        job.fail(batch_error(&e));
                    }
                    return Vec::new();
                }
            };
        }
        let mut jobs = batch.into_iter();
        let mut first_op = true;
        let mut ops = 0usize;
        let mut requeued = None;
        for job in jobs.by_ref() {
            if matches!(
                &job,
                Job::Op {
                    new_binding: None,
                    ..
                }
            ) && !rows.is_empty()
            {
                // Not a bind: it may read bindings (a call-in on the database path), so the
                // binds' pending rows go in first, as if each had inserted its own.
                if let Err(e) = insert_rows(&tx, &rows).await {
                    let e = DomainError::from(e);
                    tracing::warn!(error = %e, writes = answers.len(), "batch rows failed; no write of it is acknowledged");
                    let _ = tx.rollback().await;
                    fail_all(answers, appends, &e);
                    return std::iter::once(job).chain(jobs).collect();
                }
                rows.clear();
            }
            held += 1;
            match job {
                Job::Op {
                    op,
                    new_binding,
                    reply,
                } if self.concurrent && ops == MAX_OPS_CONCURRENT => {
                    held -= 1;
                    requeued = Some(Job::Op {
                        op,
                        new_binding,
                        reply,
                    });
                    break;
                }
                Job::Op {
                    mut op,
                    new_binding,
                    reply,
                } => {
                    ops += 1;
                    if self.concurrent && !first_op && !std::mem::replace(&mut lock_wait, true) {
                        if let Err(e) = set_lock_timeout(&tx, LOCK_WAIT_MS).await {
                            // The transaction is aborted (PostgreSQL): none of it commits.
                            let e = batch_failure(&e);
                            tracing::warn!(error = %e, writes = answers.len() + 1, "could not set the batch's lock timeout; no write of it is acknowledged");
                            let _ = tx.rollback().await;
                            answers.push((reply, Err(TxError::Domain(clone_error(&e))), 0..0));
                            fail_all(answers, appends, &e);
                            return jobs.collect();
                        }
                    }
                    let (
                        res,
                        Left {
                            events: mine,
                            rows: new_rows,
                            stored: appended_itself,
                        },
                        took_counter,
                        broken,
                    ) = run_one(&tx, &mut op).await;
                    if broken {
                        // Its savepoint could be neither released nor rolled back: what it
                        // changed may or may not be in the transaction (a number locked for
                        // a binding row it never left, say). Nothing of the batch is kept.
                        let e = match &res {
                            Err(TxError::Db(e)) => batch_failure(e),
                            _ => DomainError::Internal("a write's savepoint failed".into()),
                        };
                        tracing::warn!(error = %e, writes = answers.len() + 1, "batch savepoint failed; no write of it is acknowledged");
                        let _ = tx.rollback().await;
                        answers.push((reply, res, 0..0));
                        fail_all(answers, appends, &e);
                        return jobs.collect();
                    }
                    if !first_op && is_lock_timeout(&res) {
                        // It waited for another batch's row lock while this one holds rows:
                        // commit what ran, and run it first in the next transaction (where it
                        // may wait, holding nothing), so batches never wait on each other in a
                        // cycle (a deadlock PostgreSQL would only break after a second).
                        held -= 1;
                        requeued = Some(Job::Op {
                            op,
                            new_binding,
                            reply,
                        });
                        break;
                    }
                    first_op = false;
                    let range = deferred.len()..deferred.len() + mine.len();
                    deferred.extend(mine);
                    rows.extend(new_rows);
                    stored.extend(appended_itself);
                    answers.push((reply, res, range));
                    if took_counter && self.concurrent {
                        // It holds the counter until commit: commit now, so this transaction
                        // never waits for another batch's row locks while holding it.
                        break;
                    }
                }
                Job::Append {
                    events: mine,
                    touch,
                    reply,
                } => {
                    appends.push((mine.len(), reply));
                    events.extend(mine);
                    touches.extend(touch);
                }
            }
        }
        let rest: Vec<Job> = requeued.into_iter().chain(jobs).collect();
        if lock_wait && let Err(e) = set_lock_timeout(&tx, 0).await {
            // A failed statement aborts a PostgreSQL transaction: its COMMIT would roll back,
            // so nothing of the batch may be answered as done.
            let e = batch_failure(&e);
            tracing::warn!(error = %e, writes = answers.len() + appends.len(), "could not reset the batch's lock timeout; no write of it is acknowledged");
            let _ = tx.rollback().await;
            fail_all(answers, appends, &e);
            return rest;
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.writes.fetch_add(held as u64, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::metrics::DB_COMMIT_WRITES).record(held as f64);

        let ops_events = deferred.len();
        let ops_rows = rows.len();
        let (mut all, routing): (Vec<NewEvent>, Vec<bool>) = deferred.into_iter().unzip();
        all.extend(events);
        let appended = match append_all(&tx, rows, all, touches).await {
            Ok((mut items, at_end)) => {
                stored.extend(at_end);
                let calls = items.split_off(ops_events.min(items.len()));
                let max = items
                    .iter()
                    .zip(&routing)
                    .filter(|(a, r)| **r && !a.duplicate)
                    .map(|(a, _)| a.seq)
                    .max();
                Ok((max, items, calls))
            }
            Err(e) if ops_events > 0 || ops_rows > 0 => {
                // The writes' own rows or events could not be stored: none of them may be
                // acknowledged.
                tracing::warn!(error = %e, writes = answers.len() + appends.len(), "batch events failed; no write of it is acknowledged");
                let _ = tx.rollback().await;
                fail_all(answers, appends, &e);
                return rest;
            }
            Err(e) => Err(e),
        };
        let committing = std::time::Instant::now();
        let committed = tx.commit().await;
        self.stats
            .commit_ns
            .fetch_add(elapsed_ns(committing), Ordering::Relaxed);
        match committed {
            Ok(()) => {
                // Before anything is answered or woken: the tailer finds them here.
                self.handoff.offer(stored);
                let (ops_items, mut items) = match appended {
                    Ok((max, ops_items, calls)) => {
                        if let Some(seq) = max {
                            (self.on_commit)(seq);
                        }
                        (ops_items, Ok(calls.into_iter()))
                    }
                    Err(e) => (Vec::new(), Err(e)),
                };
                for (reply, res, range) in answers {
                    let mine = ops_items.get(range).map(<[_]>::to_vec).unwrap_or_default();
                    let _ = reply.send(res.map(|v| (v, mine)));
                }
                for (n, reply) in appends {
                    let _ = reply.send(match &mut items {
                        Ok(it) => Ok(it.by_ref().take(n).collect()),
                        Err(e) => Err(TxError::Domain(clone_error(e))),
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = answers.len() + appends.len(), "batch commit failed; no write of it is acknowledged");
                for (reply, res, _) in answers {
                    let _ = reply.send(match res {
                        Ok(_) => Err(batch_error(&e)),
                        Err(other) => Err(other),
                    });
                }
                for (_, reply) in appends {
                    let _ = reply.send(Err(batch_error(&e)));
                }
            }
        }
        rest
    }
}

impl Writer {
    /// A write transaction (on SQLite `BEGIN IMMEDIATE`: the write lock at once, so no
    /// statement of it can fail for a lock another process took first).
    async fn begin(&self) -> Result<DatabaseTransaction, sea_orm::DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// A batch of nothing but appends (routed call-ins' events). None of it is kept unless all
    /// of it is, so it runs without the savepoint a batch's end otherwise takes (`append_all`:
    /// there it keeps the batch's writes when the appends fail). A failure rolls the
    /// transaction back; a retryable one (PostgreSQL deadlock or serialization failure) runs
    /// the batch again in a new transaction. On PostgreSQL that is two round trips fewer per
    /// batch, and such batches are most of a call-in load.
    async fn execute_appends(&self, batch: Vec<Job>) {
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut touches = Vec::new();
        for job in batch {
            match job {
                Job::Append {
                    events: mine,
                    touch,
                    reply,
                } => {
                    replies.push((mine.len(), reply));
                    events.extend(mine);
                    touches.extend(touch);
                }
                // `execute` sends only appends here; a write is refused, never dropped.
                op @ Job::Op { .. } => op.fail(TxError::Domain(DomainError::Internal(
                    "a write in a batch of appends".into(),
                ))),
            }
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::metrics::DB_COMMIT_WRITES)
            .record(replies.len() as f64);
        let done = match self.append_at_once(&events, &touches).await {
            Ok(Some(appended)) => Ok(appended),
            Ok(None) => self.append_in_transaction(&events, &touches).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(appended) => {
                // Before anything is answered: the tailer finds them here.
                self.handoff.offer(appended.stored);
                let mut items = appended.items.into_iter();
                for (n, reply) in replies {
                    let _ = reply.send(Ok(items.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, appends = replies.len(), "batch of appends failed; none of it is acknowledged");
                for (_, reply) in replies {
                    let _ = reply.send(Err(TxError::Domain(clone_error(&e))));
                }
            }
        }
    }

    /// PostgreSQL: the batch in ONE statement that commits on its own (`events::
    /// append_at_once`). `None`: append it in a transaction instead — on other backends, when a
    /// key was stored before, or after a failure that may have come after the commit (the
    /// transaction then finds the keys stored). An error only when the statement was never
    /// sent (no connection): the transaction would not get one either.
    async fn append_at_once(
        &self,
        events: &[NewEvent],
        touches: &[LastParty],
    ) -> Result<Option<super::events::AppendResult>, DomainError> {
        if self.db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(None);
        }
        match super::events::append_at_once(&self.db, events, touches).await {
            Ok(appended) => Ok(appended),
            Err(e) if super::never_sent(&e) => Err(batch_failure(&e)),
            Err(e) => {
                tracing::warn!(error = %e, appends = events.len(), "a batch of call-ins in one statement failed; appending it in a transaction");
                Ok(None)
            }
        }
    }

    /// Appends `events` and writes `touches` in a transaction of their own, without a
    /// savepoint; a retryable failure runs it again in a new one.
    async fn append_in_transaction(
        &self,
        events: &[NewEvent],
        touches: &[LastParty],
    ) -> Result<super::events::AppendResult, DomainError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = match self.begin().await {
                Ok(tx) => tx,
                Err(e) => return Err(batch_failure(&e)),
            };
            let res = async {
                LastParty::write_all(&tx, touches).await?;
                super::events::append_events(&tx, events.to_vec()).await
            }
            .await;
            match res {
                Ok(appended) => {
                    let committing = std::time::Instant::now();
                    let committed = tx.commit().await;
                    self.stats
                        .commit_ns
                        .fetch_add(elapsed_ns(committing), Ordering::Relaxed);
                    return committed.map(|()| appended).map_err(|e| batch_failure(&e));
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    if is_retryable(&e) && attempt < ATTEMPTS {
                        continue;
                    }
                    return Err(DomainError::from(e));
                }
            }
        }
    }
}

/// The error every write of a failed batch gets (none of them was committed).
fn batch_error(e: &sea_orm::DbErr) -> TxError {
    TxError::Domain(batch_failure(e))
}

fn batch_failure(e: &sea_orm::DbErr) -> DomainError {
    if is_unavailable(e) {
        DomainError::Unavailable(e.to_string())
    } else {
        DomainError::Internal(format!("batch transaction failed: {e}"))
    }
}

/// `SET LOCAL lock_timeout` (PostgreSQL; 0: none) for the rest of the batch's transaction.
async fn set_lock_timeout(tx: &DatabaseTransaction, ms: u64) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    tx.execute_unprepared(&format!("SET LOCAL lock_timeout = {ms}"))
        .await
        .map(|_| ())
}

/// A write gave up waiting for a row lock (`lock_timeout`, SQLSTATE 55P03), whether it kept
/// the database error or turned it into a domain answer. Also a plain cancel
/// ([`CANCELED`], SQLSTATE 57014) under the batch's lock wait: this process never cancels a
/// statement, and PostgreSQL reports a lock timeout that fires as the lock is being granted
/// that way (its timeout indicator already reset) — seen under pns-load: one bind in ~40 runs
/// of 1,000 concurrent AXN binds answered UNAVAILABLE with it instead of moving to the next
/// transaction.
fn is_lock_timeout(res: &Result<Out, TxError>) -> bool {
    match res {
        Err(TxError::Db(e)) => match super::sqlstate(e).as_deref() {
            Some("55P03") => true,
            Some("57014") => e.to_string().contains(CANCELED),
            _ => false,
        },
        Err(TxError::Domain(DomainError::Internal(m) | DomainError::Unavailable(m))) => {
            m.contains("due to lock timeout") || m.contains(CANCELED)
        }
        _ => false,
    }
}

/// PostgreSQL's message for a statement canceled without a timeout it can name.
const CANCELED: &str = "canceling statement due to user request";

/// Answers every write and append of a batch that was rolled back with `e` (a write that
/// failed on its own keeps its own error).
fn fail_all(answers: Vec<Answer>, appends: Vec<(usize, AppendReply)>, e: &DomainError) {
    let fail = || TxError::Domain(clone_error(e));
    for (reply, res, _) in answers {
        let _ = reply.send(res.and_then(|_| Err(fail())));
    }
    for (_, reply) in appends {
        let _ = reply.send(Err(fail()));
    }
}

fn clone_error(e: &DomainError) -> DomainError {
    match e {
        DomainError::Unavailable(m) => DomainError::Unavailable(m.clone()),
        other => DomainError::Internal(other.to_string()),
    }
}

type AppendReply = oneshot::Sender<Result<Vec<Appended>, TxError>>;
/// A write that ran: who gets its answer, its result, its events among the batch's.
type Answer = (
    oneshot::Sender<Result<(Out, Vec<Appended>), TxError>>,
    Result<Out, TxError>,
    std::ops::Range<usize>,
);

impl Job {
    fn fail(self, e: TxError) {
        match self {
            Job::Op { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Append { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// One write under its own savepoint, retried after retryable database errors: its result,
/// what it deferred to the batch's end, whether it took the event counter itself, and whether
/// its savepoint failed to end (released or rolled back): then the batch's transaction is in
/// an unknown state and must be rolled back whole.
async fn run_one(
    tx: &DatabaseTransaction,
    op: &mut Op,
) -> (Result<Out, TxError>, Left, bool, bool) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sp = match tx.begin().await {
            Ok(sp) => sp,
            Err(e) => return (Err(e.into()), Left::default(), false, false),
        };
        let mine = Arc::new(Deferred::default());
        // Run on a task of its own, so a panicking write fails alone instead of the writer.
        let (sp, res) = match tokio::spawn(mine.clone().scope(op(sp))).await {
            Ok(done) => done,
            Err(e) => {
                let e = DomainError::Internal(format!("write panicked: {e}"));
                return (Err(TxError::Domain(e)), Left::default(), false, false);
            }
        };
        match res {
            Ok(v) => {
                if let Err(e) = sp.commit().await {
                    return (Err(e.into()), Left::default(), false, true);
                }
                return (Ok(v), mine.take(), mine.took_counter(), false);
            }
            Err(e) => {
                if let Err(r) = sp.rollback().await {
                    return (Err(r.into()), Left::default(), false, true);
                }
                match e {
                    TxError::Db(d) if is_retryable(&d) && attempt < ATTEMPTS => continue,
                    other => return (Err(other), Left::default(), false, false),
                }
            }
        }
    }
}

fn elapsed_ns(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock wait that PostgreSQL ends as a plain cancel moves the write to the next
    /// transaction like a lock timeout (`is_lock_timeout`); other errors do not.
    #[test]
    fn a_cancel_under_the_lock_wait_counts_as_a_lock_timeout() {
        let as_domain = |m: &str| -> Result<Out, TxError> {
            Err(TxError::Domain(DomainError::Unavailable(m.into())))
        };
        let canceled = "Execution Error: error returned from database: canceling statement \
                        due to user request";
        assert!(is_lock_timeout(&as_domain(canceled)));
        assert!(is_lock_timeout(&as_domain(
            "error returned from database: canceling statement due to lock timeout"
        )));
        assert!(!is_lock_timeout(&as_domain(
            "error returned from database: canceling statement due to statement timeout"
        )));
        assert!(!is_lock_timeout(&Err(TxError::Domain(
            DomainError::BindingNotFound
        ))));
        assert!(!is_lock_timeout(&Ok(Box::new(()) as Out)));
    }
}
