//! One signed NXCloud call: headers, signature over the exact body bytes, envelope decoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::CONTENT_TYPE;

use super::errors::{err, from_code, from_status, from_transport, retry_after};
use super::sign::sign;
use super::wire::Envelope;
use crate::domain::provider::{FailureClass, Outcome, ProviderError};

/// `bizType` for the privacy-number product.
const BIZ_TYPE: &str = "5";

pub(super) struct Client {
    http: reqwest::Client,
    base_url: String,
    access_key: String,
    access_secret: String,
}

impl Client {
    pub(super) fn new(
        base_url: &str,
        access_key: &str,
        access_secret: &str,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        // The connect timeout must fire before the overall deadline: a request still connecting
        // was never sent, and only the connect error says so (`Outcome::Definite`).
        let connect_timeout = (timeout / 2).min(Duration::from_secs(5));
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| {
                err(
                    FailureClass::Configuration,
                    Outcome::Definite,
                    "client",
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            access_key: access_key.to_owned(),
            access_secret: access_secret.to_owned(),
        })
    }

    /// POSTs `body` (already serialised, sent as is) to `path` with a fresh `ts` and `sign`.
    /// Returns the envelope of a `code == 0` answer; everything else is a `ProviderError`.
    /// Recorded in the upstream metrics.
    pub(super) async fn call(
        &self,
        path: &str,
        action: &'static str,
        body: &[u8],
    ) -> Result<Envelope, ProviderError> {
        let start = std::time::Instant::now();
        let res = self.exchange(path, action, body).await;
        crate::providers::record_request(
            super::errors::PROVIDER,
            action,
            start,
            res.as_ref().err(),
        );
        res
    }

    async fn exchange(
        &self,
        path: &str,
        action: &str,
        body: &[u8],
    ) -> Result<Envelope, ProviderError> {
        let ts = now_millis().to_string();
        let signature = sign(
            &self.access_key,
            action,
            BIZ_TYPE,
            &ts,
            body,
            &self.access_secret,
        );
        let url = format!("{}{path}", self.base_url);
        tracing::debug!(action, path, "nxcloud request");

        let resp = self
            .http
            .post(&url)
            .header("accessKey", &self.access_key)
            .header("action", action)
            .header("bizType", BIZ_TYPE)
            .header("ts", &ts)
            .header("sign", signature)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| log_failure(action, from_transport(&e)))?;

        let status = resp.status();
        let wait = retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| log_failure(action, from_transport(&e)))?;

        let envelope = match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(env) => env,
            Err(_) if !status.is_success() => {
                return Err(log_failure(action, from_status(status, wait)));
            }
            Err(_) => {
                // A 2xx that is not the envelope: NXCloud (or something in front of it) may have
                // acted, so the outcome is not known.
                let e = err(
                    FailureClass::Unavailable,
                    Outcome::Unknown,
                    "bad_response",
                    "NXCloud answered a body that is not its JSON envelope",
                );
                return Err(log_failure(action, e));
            }
        };
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(log_failure(action, from_status(status, wait)));
        }
        if envelope.code != 0 {
            let e = from_code(envelope.code, &envelope.msg);
            tracing::info!(action, code = envelope.code, request_id = %envelope.request_id, class = ?e.class, "nxcloud error");
            return Err(e);
        }
        if !status.is_success() {
            return Err(log_failure(action, from_status(status, wait)));
        }
        tracing::debug!(action, request_id = %envelope.request_id, "nxcloud ok");
        Ok(envelope)
    }
}

fn log_failure(action: &str, e: ProviderError) -> ProviderError {
    tracing::info!(action, code = %e.code, outcome = ?e.outcome, error = %e.message, "nxcloud call failed");
    e
}

fn now_millis() -> u128 {
    // A clock before 1970 is a broken host; NXCloud will answer 1004, which names the clock.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A success envelope whose `data` is unusable.
pub(super) fn bad_data(what: &str) -> ProviderError {
    // The carrier said "success", so it may well have bound: Unknown lets the caller retry the
    // idempotent bind (same `customerBindId`) instead of leaking a number.
    err(
        FailureClass::Unavailable,
        Outcome::Unknown,
        "bad_response",
        format!("NXCloud success answer without {what}"),
    )
}
