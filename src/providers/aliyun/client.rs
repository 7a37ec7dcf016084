//! One signed RPC exchange with the Dyplsapi endpoint: common parameters, V2 signature,
//! `POST {base}/?{query}` with an empty body, and the answer classified.

use crate::domain::provider::{FailureClass, Outcome, ProviderError};

use super::AliyunCarrier;
use super::errors::{self, Op};
use super::sign::{self, Params};
use super::wire::{self, Envelope};

const API_VERSION: &str = "2017-05-25";
/// Current SDKs send every parameter in the query string of a `POST` with an empty body; the
/// method is part of the string to sign.
const METHOD: &str = "POST";

impl AliyunCarrier {
    /// Signs and sends one request. `Ok` only for `Code == "OK"`; a fresh nonce and timestamp are
    /// generated on every call, so a retry is a new request to the gateway. Recorded in the
    /// upstream metrics.
    pub(super) async fn call(
        &self,
        op: Op,
        action: &'static str,
        params: Params,
    ) -> Result<Envelope, ProviderError> {
        let start = std::time::Instant::now();
        let res = self.exchange(op, action, params).await;
        crate::providers::record_request(errors::PROVIDER, action, start, res.as_ref().err());
        res
    }

    async fn exchange(
        &self,
        op: Op,
        action: &'static str,
        mut params: Params,
    ) -> Result<Envelope, ProviderError> {
        params.insert("Action", action.to_owned());
        params.insert("Version", API_VERSION.to_owned());
        params.insert("Format", "JSON".to_owned());
        params.insert("AccessKeyId", self.cfg.access_key_id.clone());
        params.insert("SignatureMethod", "HMAC-SHA1".to_owned());
        params.insert("SignatureVersion", "1.0".to_owned());
        params.insert("SignatureNonce", uuid::Uuid::new_v4().to_string());
        params.insert("Timestamp", wire::timestamp(chrono::Utc::now()));

        let signature =
            sign::signature(METHOD, &params, &self.cfg.access_key_secret).map_err(|_| {
                errors::err(
                    FailureClass::Configuration,
                    Outcome::Definite,
                    "sign",
                    "cannot sign the request",
                )
            })?;
        let url = format!(
            "{}/?{}&Signature={}",
            self.cfg.base_url.trim_end_matches('/'),
            sign::canonical_query(&params),
            sign::enc(&signature)
        );

        let Some(http) = &self.http else {
            return Err(errors::err(
                FailureClass::Configuration,
                Outcome::Definite,
                "http_client",
                "no HTTP client",
            ));
        };
        tracing::debug!(action, "aliyun request");
        let resp = http.post(url).send().await.map_err(|e| {
            let pe = errors::transport(&e);
            tracing::info!(action, code = %pe.code, outcome = ?pe.outcome, "aliyun transport failure");
            pe
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // The status line arrived, but the body did not: the carrier may have acted.
        let body = resp.bytes().await.map_err(|e| {
            let mut pe = errors::transport(&e);
            pe.outcome = Outcome::Unknown;
            pe
        })?;
        let env: Option<Envelope> = serde_json::from_slice(&body).ok();
        let request_id = env
            .as_ref()
            .and_then(|e| e.request_id.clone())
            .unwrap_or_default();

        if !status.is_success() {
            let (code, message) = match &env {
                Some(e) => (e.code.as_deref(), e.message.clone().unwrap_or_default()),
                None => (None, format!("HTTP {status} without an Aliyun error body")),
            };
            let pe = errors::gateway(op, status.as_u16(), code, &message, &headers);
            tracing::info!(action, status = status.as_u16(), code = %pe.code, request_id, "aliyun gateway error");
            return Err(pe);
        }
        let Some(env) = env else {
            tracing::info!(
                action,
                request_id,
                "aliyun answered HTTP 200 with an unreadable body"
            );
            return Err(bad_response(
                "HTTP 200 with a body that is not the documented JSON",
            ));
        };
        if env.is_ok() {
            tracing::debug!(action, request_id, "aliyun ok");
            return Ok(env);
        }
        let Some(code) = env.code.clone() else {
            return Err(bad_response("HTTP 200 without a Code"));
        };
        let message = env.message.clone().unwrap_or_default();
        tracing::info!(action, code, request_id, "aliyun business error");
        Err(errors::business(op, &code, &message, &headers))
    }
}

/// A success status whose body we cannot use: whatever was asked may have happened.
pub(super) fn bad_response(message: &str) -> ProviderError {
    errors::err(
        FailureClass::Unavailable,
        Outcome::Unknown,
        "bad_response",
        message,
    )
}
