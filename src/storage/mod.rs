//! Storage on sea-orm: the only module that imports `sea_orm`. Implements `domain::Repository`.
//!
//! SQLite (embedded default: a file created on first start, WAL), PostgreSQL and MySQL /
//! MariaDB (scale-out: several replicas on one database). Every invariant is carried by the
//! database: unique indexes on `routes (number, route_key)` and `bindings (tenant,
//! customer_bind_id)`, and conditional UPDATEs on `numbers.locked_by` / `numbers.shared_count`,
//! each write inside one transaction (on SQLite and PostgreSQL many writes share one, each under
//! its own savepoint: `writer`). Every write goes through `Store::run_write` (`group_tx!`).

mod batch_end;
mod bindings;
mod calls;
mod carrier;
mod check;
mod convert;
mod deferred;
pub mod entities;
pub(crate) mod events;
mod handoff;
mod health;
mod json_rows;
mod migration;
mod mysql;
mod pools;
mod preload;
mod repo_impl;
mod reports;
mod retention;
pub mod route_cache;
mod shared_savepoint;
pub(crate) mod writer;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::domain::DomainError;

pub use migration::Migrator;
pub use pools::PoolNumbers;
pub use preload::{PreloadSpec, Preloaded};

/// sea-orm backed repository.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Reads that must not queue behind the group writer's batch (the event tailer, stream
    /// catch-up): on a SQLite file a second, read-only connection (WAL readers do not wait for
    /// the writer); elsewhere the same pool as `db`.
    reads: DatabaseConnection,
    backend: DbBackend,
    /// In-process wake-up for event subscribers (highest sequence published); shared by clones.
    events: Arc<tokio::sync::watch::Sender<i64>>,
    /// Whether the database answered the monitor's last probe (see `storage::health`).
    up: Arc<tokio::sync::watch::Sender<bool>>,
    /// Group commit (SQLite, PostgreSQL): concurrent writes share one transaction and one
    /// commit.
    writer: Option<writer::GroupWriter>,
    /// Routing decisions answered from memory (see `route_cache`); shared by clones.
    routes: Arc<route_cache::RouteCache>,
    /// Events the group writer committed, for this process's event tailer (see `handoff`).
    committed: Arc<handoff::Committed>,
    /// Pool rows for binds (see `pools::PoolCache`); shared by clones.
    pools: Arc<pools::PoolCache>,
    /// Statements run on `db` so far (not BEGIN, SAVEPOINT or COMMIT); shared by clones.
    /// (statements run on the main pool, nanoseconds their callers waited for them).
    statements: Arc<(AtomicU64, AtomicU64)>,
    url: String,
    opts: StoreOptions,
}

/// Connection settings. `timeout` bounds waiting for a pooled connection and opening one (and,
/// ten times over, each PostgreSQL statement), so an unreachable database turns into a quick
/// UNAVAILABLE instead of requests piling up. `writers`: group-commit writers on PostgreSQL,
/// each batching concurrent writes into one transaction on a connection of its own (0: a
/// transaction per write on the pool instead); SQLite always has one, MySQL none.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    pub timeout: Duration,
    pub writers: usize,
}

/// Group-commit writers on PostgreSQL by default.
pub const DEFAULT_WRITERS: usize = 4;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            writers: DEFAULT_WRITERS,
        }
    }
}

/// Resolves the `--database-url` value: a bare path means a SQLite file.
pub fn normalize_url(url: &str) -> String {
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("mysql://")
        || url.starts_with("sqlite:")
    {
        url.to_owned()
    } else {
        format!("sqlite://{url}?mode=rwc")
    }
}

/// The libpq environment variables that choose TLS for a PostgreSQL connection.
const PG_TLS_ENV: [&str; 4] = ["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"];

/// Whether a PostgreSQL URL names a loopback host and leaves the TLS mode to the default (no
/// `sslmode` in the URL, no `PGSSLMODE`). The driver's default, `prefer`, negotiates TLS with
/// any server that offers it — Debian's PostgreSQL does, with its snakeoil certificate — and
/// over TLS sqlx 0.9.0 stalls statements (it no longer sets `TCP_NODELAY`): NotifyCallIn ran at
/// 1.2k/s over TLS on 127.0.0.1 against 8.4k/s without (BENCHMARKS.md). On loopback TLS
/// protects nothing (the bytes never leave the host; `prefer` does not verify the server
/// either), so such a URL connects without it. An explicit `sslmode`, or certificates in the
/// URL or the environment, always win. (A TCP forwarder on loopback to a remote database
/// must say `sslmode`: see docs/operations.md.)
pub fn loopback_without_sslmode(url: &str) -> bool {
    use std::str::FromStr;
    // Anything that speaks of TLS makes the choice the operator's: a mode, or certificates
    // (a server that only accepts TLS, a client certificate).
    let explicit = [
        "sslmode=",
        "ssl-mode=",
        "sslrootcert=",
        "sslcert=",
        "sslkey=",
    ]
    .iter()
    .any(|p| url.contains(p))
        || PG_TLS_ENV.iter().any(|v| std::env::var_os(v).is_some());
    if explicit || !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return false;
    }
    let Ok(o) = sea_orm::sqlx::postgres::PgConnectOptions::from_str(url) else {
        return false;
    };
    if o.get_socket().is_some() {
        return false; // a Unix socket: no TLS either way
    }
    let host = o.get_host().trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Store {
    /// Connects (creating the SQLite file if needed) with default options. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects (creating the SQLite file if needed). Does not migrate.
    pub async fn connect_with(url: &str, o: StoreOptions) -> Result<Self, DbErr> {
        let url = normalize_url(url);
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(o.timeout)
            .acquire_timeout(o.timeout);
        if url.starts_with("sqlite:") {
            // One connection: SQLite has one writer anyway, and a single connection avoids
            // SQLITE_BUSY upgrades inside the process. Other processes wait on busy_timeout.
            // synchronous=FULL: every commit is fsynced before it returns, so a write that was
            // acknowledged survives power loss or an OS crash (NORMAL in WAL mode may lose the
            // last commits then).
            opts.max_connections(1).map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        } else if url.starts_with("mysql://") {
            opts.max_connections(32).min_connections(1);
            mysql::configure(&mut opts, o.timeout * 10);
        } else {
            // A backstop for a hung database, well above the acquire timeout: a statement may
            // legitimately wait for row locks held by a queue of concurrent writers.
            let statement_timeout = format!("{}ms", (o.timeout * 10).as_millis());
            let plain = loopback_without_sslmode(&url);
            if plain {
                tracing::info!(
                    "PostgreSQL on the loopback interface and no sslmode given: connecting \
                     without TLS (sslmode=disable); set sslmode in the URL to choose otherwise"
                );
            }
            opts.max_connections(32)
                .min_connections(1)
                .map_sqlx_postgres_opts(move |p| {
                    let p = p.options([("statement_timeout", statement_timeout.as_str())]);
                    if plain {
                        p.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable)
                    } else {
                        p
                    }
                });
        }
        let mut db = Database::connect(opts).await?;
        let statements = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let counted = statements.clone();
        db.set_metric_callback(move |info| {
            counted.0.fetch_add(1, Ordering::Relaxed);
            let ns = u64::try_from(info.elapsed.as_nanos()).unwrap_or(u64::MAX);
            counted.1.fetch_add(ns, Ordering::Relaxed);
        });
        let backend = db.get_database_backend();
        let reads = if backend == DbBackend::Sqlite && !url.contains("memory") {
            let mut r = ConnectOptions::new(url.clone());
            r.sqlx_logging(false)
                .connect_timeout(o.timeout)
                .acquire_timeout(o.timeout)
                .max_connections(2)
                .map_sqlx_sqlite_opts(|o| o.read_only(true).busy_timeout(Duration::from_secs(10)));
            Database::connect(r).await?
        } else {
            db.clone()
        };
        // SQLite has one writer and pays an fsync per commit: batching is all gain. PostgreSQL
        // runs several batching writers, so the round trips of different batches overlap
        // (one would serialise them). MySQL keeps a transaction per write on its pool.
        let writers = match backend {
            DbBackend::Sqlite => 1,
            DbBackend::Postgres => o.writers,
            _ => 0,
        };
        let routes = Arc::new(route_cache::RouteCache::new());
        let events = Arc::new(tokio::sync::watch::channel(0).0);
        let committed = Arc::new(handoff::Committed::default());
        let writer = (writers > 0).then(|| {
            let (routes, wake) = (routes.clone(), events.clone());
            let on_commit: writer::OnCommit =
                Arc::new(move |seq| events::publish(&routes, &wake, seq, true));
            let concurrent = backend != DbBackend::Sqlite;
            writer::GroupWriter::start(
                db.clone(),
                writers,
                concurrent,
                on_commit,
                committed.clone(),
            )
        });
        Ok(Self {
            db,
            reads,
            backend,
            writer,
            routes,
            committed,
            pools: Arc::default(),
            statements,
            events,
            up: Arc::new(tokio::sync::watch::channel(true).0),
            url,
            opts: o,
        })
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            DbBackend::MySql => "mysql",
            _ => "other",
        }
    }

    /// A write transaction: `BEGIN IMMEDIATE` on SQLite, so a transaction never has to upgrade
    /// from reader to writer (which fails with SQLITE_BUSY instead of waiting).
    async fn write_tx(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// Runs a write: in the next group-commit batch (SQLite, PostgreSQL), else in a transaction of its
    /// own, retried after deadlocks, serialization failures and lock wait timeouts. Answers
    /// only after the transaction holding the write committed. See `group_tx!`.
    pub(crate) async fn run_write<T, F>(&self, op: F) -> Result<T, TxError>
    where
        T: Send + 'static,
        F: FnMut(DatabaseTransaction) -> writer::OpFuture<T> + Send + 'static,
    {
        Ok(self.run_write_events(op).await?.0)
    }

    /// As `run_write`, and the `Appended` of the events the write deferred to its batch's end
    /// (`deferred::defer_own`; none without group commit: the write appended them itself).
    pub(crate) async fn run_write_events<T, F>(
        &self,
        op: F,
    ) -> Result<(T, Vec<events::Appended>), TxError>
    where
        T: Send + 'static,
        F: FnMut(DatabaseTransaction) -> writer::OpFuture<T> + Send + 'static,
    {
        self.run_write_as(None, op).await
    }

    /// As `run_write`, for a bind: a write that makes a new binding (its row may wait for the
    /// end of its batch) and, if `claim`, takes any free number of a pool (its batch may claim
    /// it with the others': `bindings::pre_claim`; not on MySQL, which has no group commit).
    pub(crate) async fn run_bind<T, F>(
        &self,
        claim: Option<bindings::pre_claim::PreClaim>,
        op: F,
    ) -> Result<T, TxError>
    where
        T: Send + 'static,
        F: FnMut(DatabaseTransaction) -> writer::OpFuture<T> + Send + 'static,
    {
        // MySQL has no group commit (no batch to claim for).
        let claim = claim.filter(|_| self.backend != DbBackend::MySql);
        let new = bindings::pre_claim::NewBinding { claim };
        Ok(self.run_write_as(Some(new), op).await?.0)
    }

    async fn run_write_as<T, F>(
        &self,
        new_binding: Option<bindings::pre_claim::NewBinding>,
        mut op: F,
    ) -> Result<(T, Vec<events::Appended>), TxError>
    where
        T: Send + 'static,
        F: FnMut(DatabaseTransaction) -> writer::OpFuture<T> + Send + 'static,
    {
        if !self.is_db_up() {
            return Err(TxError::Domain(DomainError::Unavailable(
                "database unreachable".into(),
            )));
        }
        if let Some(w) = &self.writer {
            return w.submit_events(new_binding, op).await;
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let tx = self.write_tx().await?;
            let (tx, res) = op(tx).await;
            match res {
                Ok(v) => {
                    tx.commit().await?;
                    metrics::histogram!(crate::telemetry::metrics::DB_COMMIT_WRITES).record(1.0);
                    return Ok((v, Vec::new()));
                }
                Err(TxError::Db(e)) if is_retryable(&e) && attempt < 8 => {
                    let _ = tx.rollback().await;
                    tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt))).await;
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
    }

    /// Appends events on their own: in the next group-commit batch's one shared append
    /// (SQLite, PostgreSQL), else in a transaction of their own. Answers after the commit.
    pub(crate) async fn append_now(
        &self,
        evs: Vec<crate::domain::NewEvent>,
        touch: Option<writer::LastParty>,
    ) -> Result<Vec<events::Appended>, DomainError> {
        if !self.is_db_up() {
            return Err(DomainError::Unavailable("database unreachable".into()));
        }
        if let Some(w) = &self.writer {
            return Ok(w.append(evs, touch).await?);
        }
        Ok(group_tx!(self, [evs, touch], |_this, tx| {
            if let Some(t) = &touch {
                t.write(&tx).await?;
            }
            Ok(events::append_events(&tx, evs).await?.items)
        })?)
    }

    /// Events this process committed that its event tailer took from memory (not read back
    /// from the log) so far (see `handoff`).
    pub fn events_handed_to_tailer(&self) -> u64 {
        self.committed.taken()
    }

    /// Call-ins the route index answered (from memory) so far.
    pub fn route_index_hits(&self) -> u64 {
        self.routes.hits()
    }

    /// Call-ins the route index did not answer so far, by why.
    pub fn route_index_misses(&self) -> route_cache::Misses {
        self.routes.misses()
    }

    /// SQL statements run so far on the main connection pool (transaction control — BEGIN,
    /// SAVEPOINT, COMMIT — not counted). On a SQLite file the event tailer reads through a
    /// connection of its own, so this counts the request path's statements only.
    pub fn statements(&self) -> u64 {
        self.statements.0.load(Ordering::Relaxed)
    }

    /// How long the callers of those statements waited for them in all (the database's work,
    /// the hand-offs to and from its connection, and waiting to be scheduled again).
    pub fn statement_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.statements.1.load(Ordering::Relaxed))
    }

    /// Routing decisions the route index holds now.
    pub fn route_index_len(&self) -> usize {
        self.routes.len()
    }

    /// Group commit so far: (batches whose writes ran under one shared savepoint,
    /// those of them in which a write failed so every write ran again under its own); `None`
    /// without group commit. See `shared_savepoint`.
    pub fn group_commit_shared(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(writer::GroupWriter::shared_stats)
    }

    /// Numbers binds took from their batch's claim (an XYB bind's X, an AXN bind's share with
    /// its routes: `bindings::pre_claim`) so far; `None` without group commit.
    pub fn group_commit_pre_claimed(&self) -> Option<u64> {
        self.writer.as_ref().map(writer::GroupWriter::pre_claimed)
    }

    /// Numbers claimed for batches of binds so far, including those whose batch's shared run
    /// was rolled back (a write of it failed); `None` without group commit.
    pub fn group_commit_pre_claims_made(&self) -> Option<u64> {
        self.writer
            .as_ref()
            .map(writer::GroupWriter::pre_claims_made)
    }

    /// Group commit so far: (time the writers spent on batches, of it in commits); `None`
    /// without group commit.
    pub fn group_commit_busy(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        self.writer.as_ref().map(writer::GroupWriter::busy)
    }

    /// Group commit so far: (transactions, writes they held); `None` without group commit.
    pub fn group_commit_stats(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(writer::GroupWriter::stats)
    }

    /// The connection pool now: (open connections, idle ones, most it may open).
    pub fn pool_usage(&self) -> (u32, usize, u32) {
        match self.backend {
            DbBackend::Postgres => {
                let p = self.db.get_postgres_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            DbBackend::MySql => {
                let p = self.db.get_mysql_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            _ => {
                let p = self.db.get_sqlite_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
        }
    }

    /// Row locks with `FOR UPDATE SKIP LOCKED` (PostgreSQL, MySQL 8, MariaDB ≥ 10.6): concurrent
    /// allocations take different rows instead of queueing on one. SQLite has one writer.
    fn skip_locked(&self) -> bool {
        matches!(self.backend, DbBackend::Postgres | DbBackend::MySql)
    }

    /// Whether this process's database connection is encrypted: PostgreSQL answers from
    /// `pg_stat_ssl` for the session asking; `None` where it does not apply (SQLite) or is not
    /// asked (MySQL).
    pub async fn connection_encrypted(&self) -> Result<Option<bool>, DbErr> {
        use sea_orm::{ConnectionTrait, Statement};
        if self.backend != DbBackend::Postgres {
            return Ok(None);
        }
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.backend,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ))
            .await?;
        row.map(|r| r.try_get::<bool>("", "ssl")).transpose()
    }

    /// Whether the linked SQLite was built with the query-planner stability guarantee
    /// (`SQLITE_ENABLE_QPSG`, set for every build in `.cargo/config.toml`): without it, SQLite
    /// re-plans every statement ending in `LIMIT ?` each time it runs (sea-orm's `.one()`, the
    /// claim of a number, the event tailer's page), on the one writer connection. `None` on
    /// the other backends.
    pub async fn sqlite_plans_stable(&self) -> Result<Option<bool>, DbErr> {
        use sea_orm::{ConnectionTrait, Statement};
        if self.backend != DbBackend::Sqlite {
            return Ok(None);
        }
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.backend,
                "PRAGMA compile_options",
            ))
            .await?;
        let mut found = false;
        for r in rows {
            found |= r.try_get_by_index::<String>(0)? == "ENABLE_QPSG";
        }
        Ok(Some(found))
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }
}

/// Unique-index violations met by this process (each one a conflict resolved by probing on,
/// replaying or reporting it). A load indicator for allocation: `pns-load` reports it per request.
static UNIQUE_VIOLATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn unique_violations() -> u64 {
    UNIQUE_VIOLATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    let hit = matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)));
    if hit {
        UNIQUE_VIOLATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    hit
}

/// A unique violation of the index `name` (not counted with `unique_violations`: for the
/// dedupe key it is how a statement that takes every event as new learns one was stored).
pub(crate) fn violates_unique(e: &DbErr, name: &str) -> bool {
    database_error(e)
        .is_some_and(|d| d.code().as_deref() == Some("23505") && d.constraint() == Some(name))
}

/// The database's own error inside `e`, if it is one.
fn database_error(e: &DbErr) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            s.as_database_error()
        }
        _ => None,
    }
}

/// No connection could be had for the statement: it was never sent.
pub(crate) fn never_sent(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as X;
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            matches!(s.as_ref(), X::PoolTimedOut | X::PoolClosed)
        }
        _ => false,
    }
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(e: &DbErr) -> Option<String> {
    database_error(e).and_then(|d| d.code().map(|c| c.into_owned()))
}

/// Serialization failure or deadlock (PostgreSQL; MySQL also a lock wait timeout): the whole
/// transaction may be retried.
pub(crate) fn is_retryable(e: &DbErr) -> bool {
    if let DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) = e
        && let Some(d) = s.as_database_error()
    {
        if let Some(n) = mysql::error_number(d) {
            return mysql::is_retryable(n);
        }
        return matches!(d.code().as_deref(), Some("40001") | Some("40P01"));
    }
    false
}

/// The database cannot be reached or is shutting down (as opposed to rejecting a statement):
/// the request may succeed if retried later.
pub(crate) fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as X;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            match s.as_ref() {
                X::Io(_) | X::Tls(_) | X::Protocol(_) | X::PoolTimedOut | X::PoolClosed => true,
                X::WorkerCrashed => true,
                X::Database(d) => {
                    if let Some(n) = mysql::error_number(d.as_ref()) {
                        return mysql::is_unavailable(n);
                    }
                    // 08…: connection exception; 57P01–57P03: admin/crash shutdown, cannot
                    // connect now; 57014: statement timeout (the database is too slow to answer).
                    let code = d.code();
                    let code = code.as_deref().unwrap_or("");
                    code.starts_with("08") || code.starts_with("57P") || code == "57014"
                }
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<DbErr> for DomainError {
    fn from(e: DbErr) -> Self {
        if is_unavailable(&e) {
            DomainError::Unavailable(e.to_string())
        } else {
            DomainError::Internal(e.to_string())
        }
    }
}

/// A write through `Store::run_write` (group commit on SQLite and PostgreSQL):
/// `group_tx!(self, [captured, locals], |this, tx| body)`. The body runs on the writer's task, so
/// it owns what it uses: `this` is a clone of the store, each listed local is cloned (`&T` into
/// `T`), `tx` is the write's (savepoint) transaction. It may run more than once (retries).
/// `group_tx!(@events self, …)`: the same through `Store::run_write_events`;
/// `group_tx!(@bind claim, self, …)`: a bind, through `Store::run_bind`.
macro_rules! group_tx {
    ($store:expr, [$($cap:ident),* $(,)?], |$this:ident, $tx:ident| $body:expr) => {
        crate::storage::group_tx!(@with run_write(), $store, [$($cap),*], |$this, $tx| $body)
    };
    (@events $store:expr, [$($cap:ident),* $(,)?], |$this:ident, $tx:ident| $body:expr) => {
        crate::storage::group_tx!(@with run_write_events(), $store, [$($cap),*], |$this, $tx| $body)
    };
    (@bind $claim:expr, $store:expr, [$($cap:ident),* $(,)?], |$this:ident, $tx:ident| $body:expr) => {
        crate::storage::group_tx!(@with run_bind($claim,), $store, [$($cap),*], |$this, $tx| $body)
    };
    (@with $run:ident($($arg:expr,)?), $store:expr, [$($cap:ident),* $(,)?], |$this:ident, $tx:ident| $body:expr) => {{
        let __store = $store.clone();
        $( let $cap = $cap.to_owned(); )*
        $store
            .$run($($arg,)? move |$tx: sea_orm::DatabaseTransaction| {
                let $this = __store.clone();
                $( let $cap = $cap.clone(); )*
                let __f: crate::storage::writer::OpFuture<_> = Box::pin(async move {
                    let __res: Result<_, crate::storage::TxError> = async { $body }.await;
                    ($tx, __res)
                });
                __f
            })
            .await
    }};
}
pub(crate) use group_tx;

/// Error inside a transaction body: a database error (maybe retryable) or a domain answer.
#[derive(Debug)]
pub(crate) enum TxError {
    Db(DbErr),
    Domain(DomainError),
    /// Lost a race with a concurrent change: roll back and decide again.
    Retry,
}

impl From<DbErr> for TxError {
    fn from(e: DbErr) -> Self {
        TxError::Db(e)
    }
}

impl From<DomainError> for TxError {
    fn from(e: DomainError) -> Self {
        TxError::Domain(e)
    }
}

impl From<TxError> for DomainError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Db(e) => e.into(),
            TxError::Domain(d) => d,
            TxError::Retry => {
                DomainError::Unavailable("lost a race with a concurrent change; retry".into())
            }
        }
    }
}

pub use crate::domain::now_ms;

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_postgres_without_sslmode_connects_without_tls() {
        // With TLS settings in the environment every URL's choice is explicit.
        if super::PG_TLS_ENV
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return;
        }
        for url in [
            "postgres://postgres@127.0.0.1:5432/pns",
            "postgresql://u:p@localhost/pns",
            "postgres://postgres@[::1]:5432/pns",
        ] {
            assert!(super::loopback_without_sslmode(url), "{url}");
        }
        for url in [
            "postgres://postgres@127.0.0.1:5432/pns?sslmode=require",
            "postgres://postgres@127.0.0.1/pns?ssl-mode=prefer",
            "postgres://postgres@127.0.0.1/pns?sslrootcert=/etc/pns/ca.pem",
            "postgres://postgres@localhost/pns?sslcert=/c.pem&sslkey=/k.pem",
            "postgres://postgres@db.internal:5432/pns",
            "postgres://postgres@10.0.0.5/pns",
            "postgres://postgres@localhost/pns?host=/var/run/postgresql",
            "mysql://root@127.0.0.1:3306/pns",
            "sqlite://pns.db?mode=rwc",
        ] {
            assert!(!super::loopback_without_sslmode(url), "{url}");
        }
    }
}
