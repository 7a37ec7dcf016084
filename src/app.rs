//! Wiring: store -> services -> gRPC + HTTP servers -> sweeper, and graceful shutdown
//! (health goes NOT_SERVING first, then in-flight calls finish).

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::Server};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::config::FileConfig;
use crate::domain::{
    Clock, Repository,
    binder::{Binder, Carriers},
};
use crate::grpc::{
    binding_service::BindingApi,
    call_service::CallApi,
    pb::{
        self, binding_service_server::BindingServiceServer, call_service_server::CallServiceServer,
        number_pool_service_server::NumberPoolServiceServer,
    },
    pool_service::PoolApi,
    watch_wire::CallRoutes,
};
use crate::storage::Store;
use crate::telemetry::metrics as m;

/// Default retention of real numbers after a binding ended: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Everything `run` needs besides the store.
pub struct Settings {
    pub sweep_interval: Duration,
    /// How long health reports NOT_SERVING before the server stops accepting calls, so load
    /// balancers drain it first.
    pub drain_grace: Duration,
    pub clock: Clock,
    /// Carrier adapters of the configured NXCloud/Aliyun pools, by pool key.
    pub carriers: Carriers,
    /// PENDING carrier binds older than this are reconciled.
    pub reconcile_after: Duration,
    /// Secrets in the carrier push URLs.
    pub webhook_tokens: crate::http::WebhookTokens,
    /// How often the database's reachability is probed (gRPC health, `/readyz`).
    pub db_probe_interval: Duration,
    /// Recent events kept in memory for live `WatchEvents` subscribers.
    pub event_ring: usize,
    /// Concurrent `WatchEvents` streams this process serves; more get RESOURCE_EXHAUSTED.
    pub max_event_streams: usize,
    /// A subscriber that does not read for this long is cut off (it resumes from its cursor).
    pub stream_cutoff: Duration,
    /// Real numbers of bindings ended longer ago than this (and of their events) are erased by
    /// the sweeper (see `storage::retention`).
    pub retention: Duration,
    /// API keys of the `pns.v1` services (default: none, open mode; see `grpc::auth`).
    pub auth: crate::grpc::auth::Auth,
    /// TLS of both listeners, the connection cap and the gRPC message-size cap (see `net`).
    pub net: crate::net::NetOptions,
    /// Source networks carrier pushes are accepted from (default: any).
    pub webhook_networks: crate::http::AllowList,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
            drain_grace: Duration::from_millis(200),
            clock: Clock::default(),
            carriers: Carriers::default(),
            reconcile_after: Duration::from_secs(5),
            webhook_tokens: Default::default(),
            db_probe_interval: Duration::from_millis(250),
            event_ring: crate::events::DEFAULT_RING,
            max_event_streams: crate::events::DEFAULT_MAX_STREAMS,
            stream_cutoff: crate::events::DEFAULT_CUTOFF,
            auth: crate::grpc::auth::Auth::open(),
            retention: DEFAULT_RETENTION,
            net: Default::default(),
            webhook_networks: Default::default(),
        }
    }
}

/// Upserts the pools the config file declares.
pub async fn apply_config(store: &Store, cfg: &FileConfig) -> AppResult<()> {
    apply_pools(store, &cfg.declared_pools().map_err(|e| e.to_string())?).await
}

/// Upserts pools already validated (see `FileConfig::resolve`).
pub async fn apply_pools(store: &Store, pools: &[crate::domain::Pool]) -> AppResult<()> {
    for pool in pools {
        store
            .upsert_pool(pool.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Serves until `shutdown` resolves. The listeners are bound by the caller (port 0 in tests).
pub async fn run(
    store: Store,
    grpc: TcpListener,
    http: Option<TcpListener>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> AppResult<()> {
    // Installs the process's metrics recorder before anything records (idempotent).
    crate::telemetry::metrics::handle();
    let repo = Arc::new(store.clone());
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_serving::<BindingServiceServer<BindingApi<Store>>>()
        .await;
    health
        .set_serving::<NumberPoolServiceServer<PoolApi<Store>>>()
        .await;
    health
        .set_serving::<CallServiceServer<CallApi<Store>>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc error details (ErrorInfo, BadRequest, RetryInfo …), so `grpcurl -v` and
        // other reflection clients can decode the details every error carries.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| e.to_string())?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let binder = Binder::new(repo.clone(), settings.carriers.clone());
    let reconciler = tokio::spawn(reconcile_loop(
        binder.clone(),
        settings.clock.clone(),
        settings.reconcile_after,
        stop_rx.clone(),
    ));
    let hub = crate::events::EventHub::new(settings.event_ring, settings.max_event_streams)
        .with_cutoff(settings.stream_cutoff);
    let sweeper = tokio::spawn(sweep_loop(
        repo.clone(),
        settings.clock.clone(),
        settings.sweep_interval,
        (settings.retention, hub.clone()),
        stop_rx.clone(),
    ));
    let monitor = tokio::spawn(
        store
            .clone()
            .monitor(settings.db_probe_interval, stop_rx.clone()),
    );
    let follow = tokio::spawn(follow_db(store.clone(), health.clone(), stop_rx.clone()));
    let tailer = tokio::spawn(hub.clone().run(repo.clone(), stop_rx.clone()));
    // Connections (capped; TLS established when configured) for both servers.
    let front = crate::net::Front::open(grpc, http, &settings.net, stop_rx.clone());
    let http_task = front.http.map(|(addr, conns)| {
        tokio::spawn(crate::http::serve(
            crate::http::ConnListener::new(addr, conns),
            store.clone(),
            hub.clone(),
            (
                settings.webhook_tokens.clone(),
                settings.webhook_networks.clone(),
            ),
            settings.clock.clone(),
            stop_rx.clone(),
        ))
    });

    let grace = settings.drain_grace;
    let health_for_shutdown = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining");
        health_for_shutdown
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health_for_shutdown
            .set_not_serving::<BindingServiceServer<BindingApi<Store>>>()
            .await;
        health_for_shutdown
            .set_not_serving::<NumberPoolServiceServer<PoolApi<Store>>>()
            .await;
        health_for_shutdown
            .set_not_serving::<CallServiceServer<CallApi<Store>>>()
            .await;
        // Also ends every WatchEvents stream (with UNAVAILABLE), so draining does not wait on them.
        let _ = stop_tx.send(true);
        tokio::time::sleep(grace).await;
    };

    let max_msg = settings.net.max_message_bytes;
    // Whether the database connection is encrypted (PostgreSQL): operators see what the URL's
    // sslmode (or the loopback default, `storage::loopback_without_sslmode`) came to.
    let db_tls = store.connection_encrypted().await.ok().flatten();
    if store.sqlite_plans_stable().await.ok().flatten() == Some(false) {
        tracing::warn!(
            "this build's SQLite lacks SQLITE_ENABLE_QPSG (built without the project's \
             .cargo/config.toml?): statements ending in LIMIT ? are re-planned on every run"
        );
    }
    tracing::info!(addr = %front.grpc_addr, tls = settings.net.tls.is_some(), db = store.backend_name(), db_tls = ?db_tls, "gRPC listening");
    Server::builder()
        // Request ids, metrics and rejection logs of every call (`grpc::observe`).
        .layer(crate::grpc::observe::ObserveLayer)
        // Non-OK statuses are answers (NOT_FOUND, NUMBER_LOCKED …), not server faults; INTERNAL
        // errors are logged with their cause where they are mapped.
        .layer(
            TraceLayer::new_for_grpc()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // An expired grpc-timeout does no work; a call runs under its deadline.
        .layer(crate::grpc::deadline::DeadlineLayer)
        .add_service(health_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Health and reflection above need no key; every pns.v1 call passes the API-key check.
        // Larger request messages get OUT_OF_RANGE before they are decoded.
        .add_service(InterceptedService::new(
            BindingServiceServer::new(BindingApi::new(binder, settings.clock.clone()))
                .max_decoding_message_size(max_msg),
            settings.auth.clone(),
        ))
        .add_service(InterceptedService::new(
            NumberPoolServiceServer::new(PoolApi::new(repo.clone(), settings.clock.clone()))
                .max_decoding_message_size(max_msg),
            settings.auth.clone(),
        ))
        // WatchEvents writes each event's encoding, made once, to every stream (`watch_wire`).
        .add_service(InterceptedService::new(
            CallRoutes::new(
                CallApi::new(repo.clone(), settings.clock.clone(), hub, stop_rx.clone()),
                max_msg,
            ),
            settings.auth.clone(),
        ))
        .serve_with_incoming_shutdown(crate::grpc::incoming::incoming(front.grpc), signal)
        .await
        .map_err(|e| e.to_string())?;
    let _ = sweeper.await;
    let _ = reconciler.await;
    let _ = monitor.await;
    let _ = tailer.await;
    let _ = follow.await;
    if let Some(t) = http_task {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Mirrors the database's reachability into gRPC health. The binding and pool services (and
/// the server as a whole, "") need the database: NOT_SERVING while it is unreachable, SERVING
/// again once it answers. CallService stays SERVING while the route index holds routes (the
/// calls it knows keep connecting from memory, see `storage::route_cache`); with nothing to
/// answer from it goes NOT_SERVING too. Stops at shutdown, which sets NOT_SERVING for good.
async fn follow_db(
    store: Store,
    health: tonic_health::server::HealthReporter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let mut up = store.db_up();
    loop {
        tokio::select! {
            changed = up.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
        let db = *up.borrow_and_update();
        if *stop.borrow() {
            return;
        }
        let status = if db { Serving } else { NotServing };
        for name in [
            "",
            <BindingServiceServer<BindingApi<Store>> as tonic::server::NamedService>::NAME,
            <NumberPoolServiceServer<PoolApi<Store>> as tonic::server::NamedService>::NAME,
        ] {
            health.set_service_status(name, status).await;
        }
        let calls = if db || store.route_index_len() > 0 {
            Serving
        } else {
            NotServing
        };
        health
            .set_service_status(
                <CallServiceServer<CallApi<Store>> as tonic::server::NamedService>::NAME,
                calls,
            )
            .await;
    }
}

/// Ends expired bindings and frees their numbers. Routing never depends on it (lookups check
/// the expiry themselves); it keeps numbers allocatable and lifecycle state accurate.
async fn sweep_loop<R: Repository>(
    repo: Arc<R>,
    clock: Clock,
    every: Duration,
    (retention, hub): (Duration, crate::events::EventHub),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    const BATCH: u64 = 500;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        // Drain a backlog in batches, each its own short transaction.
        let mut ok = true;
        loop {
            match repo.sweep_expired(clock.now(), BATCH).await {
                Ok(n) => {
                    metrics::counter!(m::SWEEPER_EXPIRED).increment(n);
                    if n > 0 {
                        tracing::info!(ended = n, "sweeper expired bindings");
                    }
                    if n < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweeper failed; will retry");
                    ok = false;
                    break;
                }
            }
        }
        // Retention, in batches too (at most 20 per round, so expiry is never starved).
        let now = clock.now();
        let before = now - retention.as_millis() as i64;
        hub.evict_older_than(before);
        for _ in 0..20 {
            match repo.purge_ended(before, now, BATCH).await {
                Ok(n) => {
                    metrics::counter!(m::RETENTION_PURGED).increment(n);
                    if n > 0 {
                        tracing::info!(purged = n, "retention erased real numbers");
                    }
                    if n < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention purge failed; will retry");
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            // Alert on `time() - pns_sweeper_last_success_timestamp_seconds` (docs/operations.md).
            metrics::gauge!(m::SWEEPER_LAST_SUCCESS).set(crate::domain::now_ms() as f64 / 1000.0);
        }
    }
}

/// Settles carrier binds whose outcome was unknown (see `domain::binder`).
async fn reconcile_loop<R: Repository>(
    binder: Binder<R>,
    clock: Clock,
    after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = (after / 2).max(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match binder
            .reconcile(clock.now(), after.as_millis() as i64)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(settled = n, "reconciler settled pending carrier binds"),
            Err(e) => tracing::warn!(error = %e, "reconciler failed; will retry"),
        }
    }
}

/// Start-up and serving failures, rendered with their context for the operator.
pub type AppResult<T> = Result<T, String>;
