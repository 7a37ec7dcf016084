//! Group commit. Concurrent writes are queued to one writer per process, which runs as many as
//! are waiting in ONE transaction — each under its own savepoint, so one's conflict or error
//! rolls back only its own changes — and answers each only after that transaction committed.
//! A lone write commits at once (no timer); batches grow with load. On SQLite every commit is
//! an fsync (`synchronous=FULL`), so this turns one fsync per write into one per batch.
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
        atomic::{AtomicU64, Ordering},
    },
};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::events::{Appended, append_events};
use super::{TxError, is_retryable, is_unavailable};
use crate::domain::{DomainError, NewEvent};

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer before submitters wait for room (backpressure).
const QUEUE: usize = 4096;
/// Attempts of one write after retryable database errors.
const ATTEMPTS: u32 = 8;

pub(crate) type OpResult<T> = (DatabaseTransaction, Result<T, TxError>);
pub(crate) type OpFuture<T> = Pin<Box<dyn Future<Output = OpResult<T>> + Send>>;
type Out = Box<dyn Any + Send>;
type Op = Box<dyn FnMut(DatabaseTransaction) -> OpFuture<Out> + Send>;

enum Job {
    /// A write of its own, under a savepoint.
    Op {
        op: Op,
        reply: oneshot::Sender<Result<Out, TxError>>,
    },
    /// Events only (a routed call-in's `call.incoming`): every such job of a batch is appended
    /// by ONE `append_events` at the end of the batch — one dedupe lookup, one counter
    /// increment, one multi-row INSERT, whatever the number of call-ins.
    Append {
        events: Vec<NewEvent>,
        /// The binding whose last party becomes this caller (a connected extension call).
        touch: Option<LastParty>,
        reply: oneshot::Sender<Result<Vec<Appended>, TxError>>,
    },
}

/// The submitting side; the writer task ends when every clone is dropped.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

/// What the writer did: transactions and the writes they held.
#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    writes: AtomicU64,
}

impl GroupWriter {
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(db, rx, stats.clone()));
        Self { jobs, stats }
    }

    /// (transactions committed or attempted, writes they held) so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.stats.batches.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// Runs `op` in the next batch; answers after that batch committed.
    pub(crate) async fn submit<T, F>(&self, mut op: F) -> Result<T, TxError>
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
            .send(Job::Op { op: erased, reply })
            .await
            .map_err(|_| stopped())?;
        let out = answer.await.map_err(|_| stopped())??;
        out.downcast::<T>().map(|b| *b).map_err(|_| {
            TxError::Domain(DomainError::Internal("write result of another type".into()))
        })
    }

    /// Appends `events` in the next batch (with every other append of it, see `Job::Append`);
    /// answers after that batch committed, one `Appended` per event in order.
    pub(crate) async fn append(
        &self,
        events: Vec<NewEvent>,
        touch: Option<LastParty>,
    ) -> Result<Vec<Appended>, TxError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
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

async fn run(db: DatabaseConnection, mut jobs: mpsc::Receiver<Job>, stats: Arc<Stats>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::metrics::DB_COMMIT_WRITES).record(batch.len() as f64);
        execute(&db, batch).await;
    }
}

/// The error every write of a failed batch gets (none of them was committed).
fn batch_error(e: &sea_orm::DbErr) -> TxError {
    TxError::Domain(if is_unavailable(e) {
        DomainError::Unavailable(e.to_string())
    } else {
        DomainError::Internal(format!("batch transaction failed: {e}"))
    })
}

async fn execute(db: &DatabaseConnection, batch: Vec<Job>) {
    let tx = match db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
    {
        Ok(tx) => tx,
        Err(e) => {
            for job in batch {
                job.fail(batch_error(&e));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    // Appends wait for the end of the batch: (how many events, who gets them).
    let mut appends: Vec<(usize, AppendReply)> = Vec::new();
    let mut events = Vec::new();
    let mut touches = Vec::new();
    for job in batch {
        match job {
            Job::Op { mut op, reply } => {
                let res = run_one(&tx, &mut op).await;
                answers.push((reply, res));
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
    let appended = append_all(&tx, events, touches).await;
    match tx.commit().await {
        Ok(()) => {
            for (reply, res) in answers {
                let _ = reply.send(res);
            }
            let mut items = appended.map(Vec::into_iter);
            for (n, reply) in appends {
                let _ = reply.send(match &mut items {
                    Ok(it) => Ok(it.by_ref().take(n).collect()),
                    Err(e) => Err(TxError::Domain(match e {
                        DomainError::Unavailable(m) => DomainError::Unavailable(m.clone()),
                        other => DomainError::Internal(other.to_string()),
                    })),
                });
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = answers.len() + appends.len(), "batch commit failed; no write of it is acknowledged");
            for (reply, res) in answers {
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
}

/// The appends of a batch, as one `append_events` under a savepoint (its failure fails only
/// the appends, not the batch's other writes).
async fn append_all(
    tx: &DatabaseTransaction,
    events: Vec<NewEvent>,
    touches: Vec<LastParty>,
) -> Result<Vec<Appended>, DomainError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let sp = tx.begin().await.map_err(DomainError::from)?;
    let res = async {
        LastParty::write_all(&sp, &touches).await?;
        append_events(&sp, events).await
    }
    .await;
    match res {
        Ok(r) => {
            sp.commit().await.map_err(DomainError::from)?;
            Ok(r.items)
        }
        Err(e) => {
            let _ = sp.rollback().await;
            Err(e.into())
        }
    }
}

/// A connected extension call's one change: the binding's last party (where A's call-back
/// goes).
#[derive(Clone, Debug)]
pub(crate) struct LastParty {
    pub(crate) binding_id: String,
    pub(crate) caller: String,
}

impl LastParty {
    pub(crate) async fn write(&self, tx: &DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        Self::write_all(tx, std::slice::from_ref(self)).await
    }

    /// Every last party of a batch in one UPDATE per chunk
    /// (`SET last_party = CASE id WHEN … THEN … END WHERE id IN (…)`); of several calls to one
    /// binding, the last one's caller is kept.
    pub(crate) async fn write_all(
        tx: &DatabaseTransaction,
        touches: &[LastParty],
    ) -> Result<(), sea_orm::DbErr> {
        use super::entities::binding;
        use sea_orm::{
            ColumnTrait, Condition, EntityTrait, QueryFilter,
            sea_query::{CaseStatement, Expr},
        };
        let mut seen = std::collections::HashSet::new();
        let last: Vec<&LastParty> = touches
            .iter()
            .rev()
            .filter(|t| seen.insert(t.binding_id.as_str()))
            .collect();
        for chunk in last.chunks(super::events::MAX_BIND_PARAMS / 3) {
            // `active = 1` in the CASE, not the WHERE: with it in the WHERE and more than ~20
            // ids, SQLite (no statistics) plans the UPDATE by the `active` index and visits
            // every active binding (~250 ms a batch at 1,000,000; BENCHMARKS.md, preload).
            let mut case = CaseStatement::new();
            for t in chunk {
                case = case.case(
                    Condition::all()
                        .add(binding::Column::Id.eq(t.binding_id.clone()))
                        .add(binding::Column::Active.eq(1)),
                    Expr::val(t.caller.clone()),
                );
            }
            case = case.finally(Expr::col(binding::Column::LastParty));
            binding::Entity::update_many()
                .col_expr(binding::Column::LastParty, case.into())
                .filter(binding::Column::Id.is_in(chunk.iter().map(|t| t.binding_id.clone())))
                .exec(tx)
                .await?;
        }
        Ok(())
    }
}

type AppendReply = oneshot::Sender<Result<Vec<Appended>, TxError>>;

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

/// One write under its own savepoint, retried after retryable database errors.
async fn run_one(tx: &DatabaseTransaction, op: &mut Op) -> Result<Out, TxError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sp = tx.begin().await?;
        // Run on a task of its own, so a panicking write fails alone instead of the writer.
        let (sp, res) = match tokio::spawn(op(sp)).await {
            Ok(done) => done,
            Err(e) => {
                return Err(TxError::Domain(DomainError::Internal(format!(
                    "write panicked: {e}"
                ))));
            }
        };
        match res {
            Ok(v) => {
                sp.commit().await?;
                return Ok(v);
            }
            Err(e) => {
                sp.rollback().await?;
                match e {
                    TxError::Db(d) if is_retryable(&d) && attempt < ATTEMPTS => continue,
                    other => return Err(other),
                }
            }
        }
    }
}
