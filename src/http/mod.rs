//! HTTP side (axum): liveness/readiness now; carrier webhooks and metrics mount here.

use std::time::Duration;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::storage::Store;

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(store)
}

async fn ready(State(store): State<Store>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

pub async fn serve(
    listener: TcpListener,
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "HTTP listening");
    let res = axum::serve(listener, router(store))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
