//! MySQL / MariaDB specifics: session settings of every pooled connection and the server error
//! numbers the write path classifies (MySQL reports most errors under the generic SQLSTATE
//! `HY000`, so the number is what tells them apart).

use std::time::Duration;

use sea_orm::{
    ConnectOptions,
    sqlx::{self, Executor, error::DatabaseError, mysql::MySqlDatabaseError},
};

/// Settings of every connection: InnoDB row locks with READ COMMITTED (each statement reads the
/// latest committed rows, as on PostgreSQL — the write path relies on it, e.g. the dedupe
/// look-up in `storage::events` after taking the event counter lock), strict mode (a value too
/// long for its column is an error, never silently truncated into a key), utf8mb4, and
/// `backstop` as the bound on a lock wait and (MariaDB `max_statement_time`, MySQL
/// `max_execution_time` for reads) on one statement.
pub(super) fn configure(opts: &mut ConnectOptions, backstop: Duration) {
    let secs = backstop.as_secs().max(1);
    let millis = backstop.as_millis().max(1);
    opts.map_sqlx_mysql_opts(|o| o.charset("utf8mb4").pipes_as_concat(true))
        .map_sqlx_mysql_pool_opts(move |p| {
            p.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), \
                         innodb_lock_wait_timeout = {secs}"
                    )))
                    .await?;
                    // MariaDB names the statement timeout in seconds, MySQL in milliseconds.
                    let mariadb = format!("SET SESSION max_statement_time = {secs}");
                    if conn.execute(sqlx::AssertSqlSafe(mariadb)).await.is_err() {
                        let mysql = format!("SET SESSION max_execution_time = {millis}");
                        conn.execute(sqlx::AssertSqlSafe(mysql)).await?;
                    }
                    Ok(())
                })
            })
        });
}

/// The server's error number, if `d` came from MySQL / MariaDB.
pub(super) fn error_number(d: &dyn DatabaseError) -> Option<u16> {
    d.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// The transaction was rolled back (deadlock) or its statement gave up waiting for a row lock:
/// the whole transaction may be run again.
pub(super) fn is_retryable(n: u16) -> bool {
    matches!(
        n,
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_CHECKREAD (MariaDB snapshot isolation)
        1213 | 1205 | 1020
    )
}

/// The server cannot serve now (as opposed to rejecting the statement).
pub(super) fn is_unavailable(n: u16) -> bool {
    matches!(
        n,
        // too many connections, shutting down, aborted connection, query interrupted
        1040 | 1053 | 1152 | 1317
        // read-only (a failover in progress)
        | 1290 | 1836
        // MariaDB: connection killed, statement timeout; MySQL: statement timeout, idle cut
        | 1927 | 1969 | 3024 | 4031
    )
}
