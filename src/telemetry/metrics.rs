//! Prometheus metrics: every name the gateway exports, with its description, and the process's
//! recorder. Served as text at `GET /metrics` on the HTTP listener (`http::metrics`); the
//! exporter runs no listener of its own.
//!
//! Labels are bounded by construction: gRPC service and method names come from the served
//! descriptors (anything else is `unknown`), providers, modes, actions and results are fixed
//! sets, and pool keys are those of the configured pools. No binding id, number, tenant or
//! request id is ever a label. See docs/operations.md for the PromQL of the key panels and alerts.

use std::{sync::OnceLock, time::Duration};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: finished gRPC calls. Labels `service`, `method`, `code` (`OK`, `NOT_FOUND`, …).
pub const GRPC_REQUESTS: &str = "pns_grpc_requests_total";
/// Histogram: seconds from request to the status of a unary gRPC call (`service`, `method`).
pub const GRPC_DURATION: &str = "pns_grpc_request_duration_seconds";
/// Counter: successful binds. Labels `provider` (local|nxcloud|aliyun), `mode`
/// (xyb|axn_extension), `outcome` (created|replayed).
pub const BINDS: &str = "pns_binds_total";
/// Gauge: numbers of a pool by `state` (free|locked|shared|reserved|retired), label `pool`.
pub const POOL_NUMBERS: &str = "pns_pool_numbers";
/// Counter: carrier API requests. Labels `provider`, `action`, `result` (`ok` or the failure
/// class: invalid_argument, unavailable, outcome_unknown, throttled, configuration, …).
pub const UPSTREAM_REQUESTS: &str = "pns_upstream_requests_total";
/// Histogram: seconds per carrier API request (`provider`, `action`).
pub const UPSTREAM_DURATION: &str = "pns_upstream_request_duration_seconds";
/// Counter: carrier pushes received. Labels `provider`, `result`
/// (stored|rejected|unauthorized|failed).
pub const WEBHOOK_PUSHES: &str = "pns_webhook_pushes_total";
/// Counter: call reports in stored pushes that were new (not duplicates), label `provider`.
pub const WEBHOOK_REPORTS: &str = "pns_webhook_reports_stored_total";
/// Gauge: unix time of the sweeper's last round that completed without error.
pub const SWEEPER_LAST_SUCCESS: &str = "pns_sweeper_last_success_timestamp_seconds";
/// Counter: bindings the sweeper ended because they expired.
pub const SWEEPER_EXPIRED: &str = "pns_sweeper_expired_bindings_total";
/// Counter: bindings and events whose real numbers retention erased.
pub const RETENTION_PURGED: &str = "pns_retention_purged_total";
/// Gauge: open `WatchEvents` streams of this process.
pub const EVENT_STREAMS: &str = "pns_event_streams";
/// Gauge: events the furthest-behind open stream has yet to be sent (0 when all are live).
pub const EVENT_STREAM_LAG: &str = "pns_event_stream_lag_events";
/// Counter: streams cut off because their client stopped reading.
pub const EVENT_STREAM_CUTOFFS: &str = "pns_event_stream_cutoffs_total";
/// Gauge: the highest committed event sequence this process has seen.
pub const EVENT_SEQUENCE: &str = "pns_event_log_sequence";
/// Gauge: 1 while the database answers the health probes, 0 during an outage.
pub const DB_UP: &str = "pns_db_up";
/// Gauge: connections of the database pool by `state` (idle|in_use).
pub const DB_CONNECTIONS: &str = "pns_db_pool_connections";
/// Gauge: most connections the database pool may open.
pub const DB_MAX_CONNECTIONS: &str = "pns_db_pool_max_connections";
/// Histogram: writes committed by one database transaction (group commit on SQLite: the batch
/// size; PostgreSQL: always 1).
pub const DB_COMMIT_WRITES: &str = "pns_db_commit_batch_writes";

/// Latency buckets (seconds) of gRPC and carrier requests.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch-size buckets of group commit (at most 256 writes per batch).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first use
/// (every server of the process shares it: the registry is global, as `metrics` is).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(DB_COMMIT_WRITES.into()), BATCH_BUCKETS)
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::warn!(error = %e, "metrics buckets rejected; histograms become summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        describe();
        let upkeep = handle.clone();
        // A thread, not a task: the recorder outlives any one runtime (tests run many).
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    handle().render()
}

fn describe() {
    describe_counter!(
        GRPC_REQUESTS,
        "Finished gRPC calls by service, method and status code"
    );
    describe_histogram!(
        GRPC_DURATION,
        Unit::Seconds,
        "Latency of unary gRPC calls, request to status"
    );
    describe_counter!(BINDS, "Successful binds by provider, mode and outcome");
    describe_gauge!(
        POOL_NUMBERS,
        "Numbers per pool by state (refreshed on scrape, at most every few seconds)"
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Carrier API requests by provider, action and result"
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Latency of carrier API requests by provider and action"
    );
    describe_counter!(
        WEBHOOK_PUSHES,
        "Carrier pushes received by provider and result"
    );
    describe_counter!(
        WEBHOOK_REPORTS,
        "New call reports stored from carrier pushes"
    );
    describe_gauge!(
        SWEEPER_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last sweeper round without error"
    );
    describe_counter!(SWEEPER_EXPIRED, "Bindings ended by the sweeper on expiry");
    describe_counter!(
        RETENTION_PURGED,
        "Bindings and events whose real numbers retention erased"
    );
    describe_gauge!(EVENT_STREAMS, "Open WatchEvents streams");
    describe_gauge!(
        EVENT_STREAM_LAG,
        "Events the furthest-behind WatchEvents stream has yet to be sent"
    );
    describe_counter!(
        EVENT_STREAM_CUTOFFS,
        "WatchEvents streams cut off because the client stopped reading"
    );
    describe_gauge!(
        EVENT_SEQUENCE,
        "Highest committed event sequence seen by this process"
    );
    describe_gauge!(DB_UP, "1 while the database answers health probes, else 0");
    describe_gauge!(DB_CONNECTIONS, "Database pool connections by state");
    describe_gauge!(
        DB_MAX_CONNECTIONS,
        "Most connections the database pool may open"
    );
    describe_histogram!(
        DB_COMMIT_WRITES,
        "Writes committed per database transaction (group commit batch size)"
    );
}
