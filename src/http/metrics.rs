//! `GET /metrics`: the Prometheus text exposition (`telemetry::metrics`). Counters and
//! histograms are recorded where things happen; the gauges of state are read here, on scrape:
//! database reachability and connection-pool use, event-stream lag, and the numbers of every
//! pool — the only one that queries the database (one aggregate query, at most every
//! [`POOL_REFRESH`], never during an outage).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::State, http::header, response::IntoResponse};
use tokio::sync::Mutex;

use crate::events::EventHub;
use crate::storage::Store;
use crate::telemetry::metrics as m;

/// Least time between two pool-number queries (scrapes in between get the last values).
pub const POOL_REFRESH: Duration = Duration::from_secs(5);

pub(super) struct Scrape {
    store: Store,
    hub: EventHub,
    /// When the pool numbers were last read; the lock also keeps concurrent scrapes from
    /// querying at once.
    pools_read: Mutex<Option<Instant>>,
}

impl Scrape {
    pub(super) fn new(store: Store, hub: EventHub) -> Arc<Self> {
        Arc::new(Self {
            store,
            hub,
            pools_read: Mutex::new(None),
        })
    }

    async fn refresh(&self) {
        let up = self.store.is_db_up();
        metrics::gauge!(m::DB_UP).set(if up { 1.0 } else { 0.0 });
        let (open, idle, max) = self.store.pool_usage();
        metrics::gauge!(m::DB_CONNECTIONS, "state" => "idle").set(idle as f64);
        metrics::gauge!(m::DB_CONNECTIONS, "state" => "in_use")
            .set(open.saturating_sub(idle as u32) as f64);
        metrics::gauge!(m::DB_MAX_CONNECTIONS).set(f64::from(max));
        metrics::gauge!(m::EVENT_STREAM_LAG).set(self.hub.lag() as f64);
        metrics::gauge!(m::EVENT_SEQUENCE).set(self.hub.latest() as f64);

        let mut last = self.pools_read.lock().await;
        if !up || last.is_some_and(|t| t.elapsed() < POOL_REFRESH) {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.store.pool_numbers()).await {
            Ok(Ok(pools)) => {
                for p in pools {
                    for (state, n) in [
                        ("free", p.free),
                        ("locked", p.locked),
                        ("shared", p.shared),
                        ("reserved", p.reserved),
                        ("retired", p.retired),
                    ] {
                        metrics::gauge!(m::POOL_NUMBERS, "pool" => p.pool_key.clone(), "state" => state)
                            .set(n as f64);
                    }
                }
                *last = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "pool numbers for /metrics not read"),
            Err(_) => tracing::warn!("pool numbers for /metrics not read in 5 s"),
        }
    }
}

pub(super) async fn metrics(State(s): State<Arc<Scrape>>) -> impl IntoResponse {
    s.refresh().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m::render(),
    )
}
