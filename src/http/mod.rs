//! HTTP side (axum): liveness/readiness, Prometheus metrics and the carrier webhooks.

pub mod listener;
pub mod metrics;
mod request_id;
pub mod sources;
mod trace;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::domain::Clock;
use crate::events::EventHub;
use crate::storage::Store;
pub use listener::ConnListener;
pub use sources::AllowList;
pub use webhooks::WebhookTokens;

/// `allow`: the source networks carrier pushes are accepted from (see `sources`).
pub fn router(
    store: Store,
    hub: EventHub,
    tokens: WebhookTokens,
    clock: Clock,
    allow: AllowList,
) -> Router {
    let health = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(store.clone());
    let hooks = webhooks::router(Arc::new(store.clone()), tokens, clock)
        .route_layer(axum::middleware::from_fn_with_state(allow, sources::check));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(metrics::Scrape::new(store, hub));
    health
        .merge(metrics)
        .merge(hooks)
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

/// Serves the connections of `listener` (see `net::accept`) until `stop`.
pub async fn serve(
    listener: ConnListener,
    store: Store,
    hub: EventHub,
    (tokens, allow): (WebhookTokens, AllowList),
    clock: Clock,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let addr = axum::serve::Listener::local_addr(&listener).ok();
    tracing::info!(?addr, "HTTP listening");
    let app = router(store, hub, tokens, clock, allow)
        .into_make_service_with_connect_info::<listener::Peer>();
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
