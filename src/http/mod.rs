//! HTTP side (axum): liveness/readiness, Prometheus metrics and the carrier webhooks.

pub mod metrics;
mod request_id;
mod trace;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::domain::Clock;
use crate::events::EventHub;
use crate::storage::Store;
pub use webhooks::WebhookTokens;

pub fn router(store: Store, hub: EventHub, tokens: WebhookTokens, clock: Clock) -> Router {
    let health = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(store.clone());
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(metrics::Scrape::new(store.clone(), hub));
    health
        .merge(metrics)
        .merge(webhooks::router(Arc::new(store), tokens, clock))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        // The webhook token is in the path: the span logs it masked (see `trace`).
        .layer(TraceLayer::new_for_http().make_span_with(trace::make_span))
        // Outermost: the trace span and every log line of the request carry its id.
        .layer(axum::middleware::from_fn(request_id::layer))
}

/// 200 while the database answers the monitor's probes (on a connection of its own, so load on
/// the pool does not read as an outage), 503 as soon as a probe failed — within a second.
async fn ready(State(store): State<Store>) -> (StatusCode, &'static str) {
    if store.is_db_up() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

pub async fn serve(
    listener: TcpListener,
    store: Store,
    hub: EventHub,
    tokens: WebhookTokens,
    clock: Clock,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "HTTP listening");
    let res = axum::serve(listener, router(store, hub, tokens, clock))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
