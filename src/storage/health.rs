//! Database reachability, probed on a connection of its own (so a busy pool does not read as an
//! outage): `Store::db_up()` follows it, gRPC health and `/readyz` report it, and everything
//! recovers by itself when the database answers again.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::watch;

use super::Store;

impl Store {
    /// Follows the database's reachability (`true` = the last probe answered).
    pub fn db_up(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Whether the last probe answered.
    pub fn is_db_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Probes the database every `every` until `stop`; a probe that does not answer within the
    /// store's timeout (capped at `every` × 3) marks it down.
    pub async fn monitor(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let limit = self.opts.timeout.min(every * 3);
        let mut probe: Option<DatabaseConnection> = None;
        loop {
            let ok = tokio::time::timeout(limit, self.probe(&mut probe))
                .await
                .unwrap_or(false);
            if !ok {
                // Reconnect next time: a broken connection would keep failing.
                probe = None;
            }
            let was = *self.up.borrow();
            if ok != was {
                if ok {
                    tracing::info!("database reachable again");
                } else {
                    tracing::warn!("database unreachable: failing fast with UNAVAILABLE");
                }
                self.up.send_replace(ok);
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn probe(&self, conn: &mut Option<DatabaseConnection>) -> bool {
        if conn.is_none() {
            let mut o = ConnectOptions::new(self.url.clone());
            o.sqlx_logging(false)
                .max_connections(1)
                .min_connections(0)
                .connect_timeout(self.opts.timeout)
                .acquire_timeout(self.opts.timeout);
            match Database::connect(o).await {
                Ok(c) => *conn = Some(c),
                Err(_) => return false,
            }
        }
        match conn {
            Some(c) => c.execute_unprepared("SELECT 1").await.is_ok(),
            None => false,
        }
    }
}
