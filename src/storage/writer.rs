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

use super::{TxError, is_retryable, is_unavailable};
use crate::domain::DomainError;

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

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Out, TxError>>,
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
        let stopped = || TxError::Domain(DomainError::Unavailable("the writer has stopped".into()));
        self.jobs
            .send(Job { op: erased, reply })
            .await
            .map_err(|_| stopped())?;
        let out = answer.await.map_err(|_| stopped())??;
        out.downcast::<T>().map(|b| *b).map_err(|_| {
            TxError::Domain(DomainError::Internal("write result of another type".into()))
        })
    }
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
                let _ = job.reply.send(Err(batch_error(&e)));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    for mut job in batch {
        let res = run_one(&tx, &mut job.op).await;
        answers.push((job.reply, res));
    }
    match tx.commit().await {
        Ok(()) => {
            for (reply, res) in answers {
                let _ = reply.send(res);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = answers.len(), "batch commit failed; no write of it is acknowledged");
            for (reply, res) in answers {
                let _ = reply.send(match res {
                    Ok(_) => Err(batch_error(&e)),
                    Err(other) => Err(other),
                });
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
