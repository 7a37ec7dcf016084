//! Carrier pushes: `POST /webhooks/nxcloud/{token}` (CDR push in both formats, error push) and
//! `POST /webhooks/aliyun/{token}` (HTTP batch push). Neither carrier signs its pushes, so the
//! URL carries a secret token; it is compared in constant time and never logged (the request
//! span masks it, see `http::trace`). Each push is parsed, persisted (de-duplicated) and applied
//! to the mirrored bindings in one transaction before the reply.
//!
//! Input rules (enforced by the parsers, `providers::push_fields`): every stored field is
//! bounded and free of NUL/control characters — ids (`callId`, `call_id`, `bindId`, `sub_id`,
//! `customerBindId`, `requestId`) ≤ 128 characters, pool keys ≤ 128, phone numbers ≤ 64,
//! extensions ≤ 32, `out_id` ≤ 256, `ext` ≤ 1024 (newlines allowed), carrier texts ≤ 1024,
//! recording URLs ≤ 8192 — and every number is range checked: durations 0..=31 days, cause
//! codes 0..=999, times 1970-01-01..9999-12-31. The bounds are far above every valid value the
//! carriers document. A push that breaks one is rejected whole with 400 and the reason
//! (`{"code": 400, "msg": "item 2: call_id must be at most 128 characters"}`), and nothing of it
//! is stored, so a carrier retry cannot turn it into partial state and a valid receipt is never
//! silently dropped from an acknowledged batch. Storage failures answer 500 so the carrier
//! retries.
//!
//! Big batches: the body limit is [`MAX_PUSH_BYTES`]; every body under it is stored in one
//! transaction in chunked statements (`storage::events`), with one batched binding lookup per
//! push, so no database parameter limit can be reached and a full 1 MiB Aliyun batch (~2,500
//! receipts) is answered within Aliyun's 700 ms.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;

use crate::domain::{CallReport, Clock, Repository, call::PushError};
use crate::providers::{aliyun_push::parse_aliyun_push, nxcloud_push::parse_nxcloud_push};
use crate::telemetry::metrics as m;

/// Largest push accepted: ~2,500 realistic Aliyun receipts, or ~50,000 minimal ones.
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;

/// Tokens that authenticate the push URLs; `None` disables that carrier's endpoint.
#[derive(Clone, Default)]
pub struct WebhookTokens {
    pub nxcloud: Option<String>,
    pub aliyun: Option<String>,
}

impl std::fmt::Debug for WebhookTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTokens")
            .field("nxcloud", &self.nxcloud.as_ref().map(|_| "<redacted>"))
            .field("aliyun", &self.aliyun.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

struct Hooks<R> {
    repo: Arc<R>,
    tokens: WebhookTokens,
    clock: Clock,
}

pub fn router<R: Repository>(repo: Arc<R>, tokens: WebhookTokens, clock: Clock) -> Router {
    let state = Arc::new(Hooks {
        repo,
        tokens,
        clock,
    });
    Router::new()
        .route("/webhooks/nxcloud/{token}", post(nxcloud::<R>))
        .route("/webhooks/aliyun/{token}", post(aliyun::<R>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PUSH_BYTES))
        .with_state(state)
}

/// Compares without an early exit, so response timing does not reveal the token.
fn token_ok(expected: &Option<String>, given: &str) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn reject(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "code": status.as_u16(), "msg": msg }))).into_response()
}

async fn ingest<R: Repository>(
    hooks: &Hooks<R>,
    provider: &'static str,
    parsed: Result<Vec<CallReport>, PushError>,
) -> Result<(), Response> {
    let reports = parsed.map_err(|e| {
        tracing::warn!(provider, error = %e, "malformed push rejected");
        count_push(provider, "rejected");
        reject(StatusCode::BAD_REQUEST, &e.0)
    })?;
    let n = reports.len();
    let stored = hooks
        .repo
        .ingest_reports(reports, hooks.clock.now())
        .await
        .map_err(|e| {
            tracing::error!(provider, error = %e, "push not stored; the carrier will retry");
            count_push(provider, "failed");
            reject(StatusCode::INTERNAL_SERVER_ERROR, "not stored, retry later")
        })?;
    tracing::info!(provider, reports = n, stored, "push stored");
    count_push(provider, "stored");
    metrics::counter!(m::WEBHOOK_REPORTS, "provider" => provider).increment(stored);
    Ok(())
}

/// `pns_webhook_pushes_total{provider, result}`.
fn count_push(provider: &'static str, result: &'static str) {
    metrics::counter!(m::WEBHOOK_PUSHES, "provider" => provider, "result" => result).increment(1);
}

async fn nxcloud<R: Repository>(
    State(h): State<Arc<Hooks<R>>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if !token_ok(&h.tokens.nxcloud, &token) {
        count_push("nxcloud", "unauthorized");
        return reject(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    match ingest(&h, "nxcloud", parse_nxcloud_push(&body)).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "code": 0, "msg": "success" }))).into_response(),
        Err(r) => r,
    }
}

async fn aliyun<R: Repository>(
    State(h): State<Arc<Hooks<R>>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if !token_ok(&h.tokens.aliyun, &token) {
        count_push("aliyun", "unauthorized");
        return reject(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    match ingest(&h, "aliyun", parse_aliyun_push(&body)).await {
        // The body Aliyun expects, within its 700 ms budget.
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "code": 0, "msg": "接收成功" })),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::token_ok;

    #[test]
    fn tokens_must_match_exactly() {
        let t = Some("s3cret".to_owned());
        assert!(token_ok(&t, "s3cret"));
        assert!(!token_ok(&t, "s3cre"));
        assert!(!token_ok(&t, "s3cretX"));
        assert!(!token_ok(&None, ""));
    }
}
