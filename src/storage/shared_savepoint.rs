//! A batch's writes under ONE savepoint (see `writer`): on SQLite any batch, on PostgreSQL a
//! batch of nothing but binds (no bind appends events itself, so none holds the event counter
//! while the others run; the run waits at most `LOCK_WAIT_MS` for a row lock).
//!
//! Every write of a batch normally runs under a savepoint of its own, so one's failure rolls
//! back only its own changes. That is two more statements per write (SAVEPOINT, RELEASE): on
//! SQLite each a hand-off to sqlx's connection thread and back, on the one serial path every
//! write of the process takes; on PostgreSQL each a round trip to the server. Most batches fail nowhere, so the writer first runs a batch's
//! writes one after another under one shared savepoint; if every one succeeds, that savepoint
//! is released and the writes are answered as usual. If any fails (an error, a domain answer
//! such as a conflict), the shared savepoint is rolled back — none of the batch's writes left
//! anything — and the writer runs them all again, each under its own savepoint, exactly as it
//! does without this. A panic under the shared savepoint fails the whole batch (none of it is
//! acknowledged; see `Shared::Broken`). Writes may run more than once by contract (they are retried
//! after retryable database errors), and what a write deferred (events, new rows) is kept only
//! from the run whose changes are kept. In a batch of nothing but binds, the numbers of those
//! that take any X are claimed first, under the shared savepoint, in one statement
//! (`bindings::pre_claim`); the write-by-write rerun claims as usual.

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    task::Poll,
};

use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};

use super::batch_end::insert_rows;
use super::bindings::pre_claim::{self, NewBinding};
use super::deferred::{Deferred, Left};

/// After a shared run failed, how many batches run every write under its own savepoint before
/// the writer tries a shared one again (a workload where writes fail often — an exhausted pool,
/// a burst of replays — then pays for at most one wasted run in this many batches).
pub(super) const AFTER_FAILURE: u32 = 16;

/// What a shared run came to.
pub(super) enum Shared<O> {
    /// Every write succeeded and the shared savepoint is released: each write's result and
    /// what it deferred to the batch's end, in order; how many took a pre-claimed number.
    Done(Vec<(O, Left)>, u64),
    /// A write failed; nothing of the run is left (the savepoint is rolled back, or was never
    /// taken). Run the writes again, each under a savepoint of its own.
    Failed,
    /// Releasing or rolling back the shared savepoint failed, or a write panicked under it:
    /// the transaction's state is unknown, so none of its writes may be answered as done (or
    /// run again in it).
    Broken(DbErr),
}

/// Runs `ops` in order under one savepoint of `tx` (see the module's documentation). `binds`
/// (in the order of `ops`): which are binds (`NewBinding`); if all are, first claims a number
/// for each that takes any X (`bindings::pre_claim`; counted in `claimed`). Before a write that is not a bind, the
/// binds' pending rows so far are inserted (it may read them).
pub(super) async fn run<O, F>(
    tx: &DatabaseTransaction,
    ops: &mut [F],
    binds: &[Option<NewBinding>],
    claimed: &std::sync::atomic::AtomicU64,
) -> Shared<O>
where
    F: FnMut(DatabaseTransaction) -> super::writer::OpFuture<O>,
{
    let Ok(mut shared) = tx.begin().await else {
        return Shared::Failed;
    };
    let only_binds = binds.iter().all(Option::is_some);
    let claims: Vec<_> = binds
        .iter()
        .map(|b| b.as_ref().and_then(|b| b.claim.as_ref()))
        .collect();
    let wanted: Vec<_> = claims.iter().flatten().copied().collect();
    let mut pre_claimed = if wanted.is_empty() || !only_binds {
        Default::default()
    } else {
        match pre_claim::claim_all(&shared, &wanted).await {
            Ok(got) => {
                claimed.fetch_add(got.len() as u64, std::sync::atomic::Ordering::Relaxed);
                got
            }
            Err(_) => return rolled_back(shared).await,
        }
    };
    // Every number claimed goes to its write, which must take it (below): a kept run took all.
    let took = pre_claimed.len() as u64;
    let mut outs = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter_mut().enumerate() {
        let is_bind = binds.get(i).is_some_and(Option::is_some);
        if !is_bind {
            let pending: Vec<_> = outs
                .iter_mut()
                .flat_map(|(_, left): &mut (O, Left)| std::mem::take(&mut left.rows))
                .collect();
            if !pending.is_empty() && insert_rows(&shared, &pending).await.is_err() {
                return rolled_back(shared).await;
            }
        }
        let claimed = claims
            .get(i)
            .copied()
            .flatten()
            .and_then(|c| pre_claimed.remove(&c.binding_id));
        let mine = Arc::new(Deferred::with_pre_claimed(claimed));
        let Some((back, res)) = unless_it_panics(mine.clone().scope(op(shared))).await else {
            // The savepoint went down with the panicking write: its rollback is left to a
            // drop that cannot report failure, so the batch's transaction is not trusted with
            // a second run (the writes before this one would be kept twice if that rollback
            // had failed). The whole batch fails; nothing of it was acknowledged.
            return Shared::Broken(DbErr::Custom(
                "a write panicked under the batch's shared savepoint".into(),
            ));
        };
        shared = back;
        match res {
            // A write that did not take the number claimed for it would leave it locked by a
            // binding that is not there: run the batch again write by write.
            Ok(_) if mine.pre_claim_left() => return rolled_back(shared).await,
            Ok(v) => outs.push((v, mine.take())),
            Err(_) => return rolled_back(shared).await,
        }
    }
    match shared.commit().await {
        Ok(()) => Shared::Done(outs, took),
        Err(e) => Shared::Broken(e),
    }
}

/// Rolls the shared savepoint back: `Failed` (run every write again on its own), or `Broken`
/// if even that failed.
async fn rolled_back<O>(shared: DatabaseTransaction) -> Shared<O> {
    match shared.rollback().await {
        Ok(()) => Shared::Failed,
        Err(e) => Shared::Broken(e),
    }
}

/// `f`'s output, or `None` if polling it panicked (a write's panic fails its batch, not the
/// writer).
async fn unless_it_panics<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}
