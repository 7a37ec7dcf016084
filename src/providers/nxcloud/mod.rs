//! NXCloud (牛信云) privacy-number adapter.
//!
//! Binds use the v1 per-mode endpoints (`/v1/pns/bind/xyb`, `/v1/pns/bind/axe`); unbinding uses
//! the legacy action-style endpoint (`/v1/api/pns/`, `action: unbindAXB`) because NXCloud
//! documents no v1 unbind. NXCloud offers no way to move an expiry or to look a binding up by
//! id (`queryAXB` is a caller+X routing lookup), so `update_expire` and `query` are `Unsupported`.

mod client;
mod errors;
mod sign;
mod wire;

use std::fmt;
use std::time::Duration;

pub use sign::sign;

use crate::domain::Millis;
use crate::domain::mask;
use crate::domain::provider::{
    Carrier, FailureClass, Outcome, ProviderError, UpstreamAxn, UpstreamBinding, UpstreamRef,
    UpstreamStatus, UpstreamXyb,
};
use wire::{BindAxeBody, BindData, BindXybBody, UnbindBody, non_empty};

const PATH_XYB: &str = "/v1/pns/bind/xyb";
const PATH_AXE: &str = "/v1/pns/bind/axe";
/// The legacy single endpoint as moved under `api.nxcloud.com` in May 2024.
const PATH_LEGACY: &str = "/v1/api/pns/";

/// One NXCloud account / application.
#[derive(Clone)]
pub struct NxcloudConfig {
    /// `https://api.nxcloud.com` in production; the fake's address in tests.
    pub base_url: String,
    /// `businessId` (应用key).
    pub business_id: String,
    pub access_key: String,
    pub access_secret: String,
    /// Deadline for one HTTP exchange (connect + send + answer).
    pub timeout: Duration,
}

/// Hand-written so the secret can never reach a log line through `{:?}`.
impl fmt::Debug for NxcloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NxcloudConfig")
            .field("base_url", &self.base_url)
            .field("business_id", &self.business_id)
            .field("access_key", &self.access_key)
            .field("access_secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct NxcloudCarrier {
    client: client::Client,
    business_id: String,
}

impl NxcloudCarrier {
    /// Panics only if the TLS backend cannot initialise (as `reqwest::Client::new` would); use
    /// [`NxcloudCarrier::try_new`] to get that as an error.
    pub fn new(cfg: NxcloudConfig) -> Self {
        match Self::try_new(cfg) {
            Ok(c) => c,
            Err(e) => panic!("nxcloud: {e}"),
        }
    }

    pub fn try_new(cfg: NxcloudConfig) -> Result<Self, ProviderError> {
        let client = client::Client::new(
            &cfg.base_url,
            &cfg.access_key,
            &cfg.access_secret,
            cfg.timeout,
        )?;
        Ok(NxcloudCarrier {
            client,
            business_id: cfg.business_id,
        })
    }

    /// A bind call. NXCloud de-duplicates binds by `customerBindId`, so a bind whose outcome is
    /// unknown is sent once more with the same body (fresh `ts`/`sign`): the answer is either
    /// the binding the first attempt made or a new one, never a second one.
    async fn bind(
        &self,
        path: &str,
        action: &'static str,
        body: &[u8],
    ) -> Result<BindData, ProviderError> {
        let envelope = match self.client.call(path, action, body).await {
            Err(e) if e.outcome == Outcome::Unknown => {
                tracing::info!(action, code = %e.code, "nxcloud bind outcome unknown; retrying once with the same customerBindId");
                self.client.call(path, action, body).await?
            }
            r => r?,
        };
        let data = envelope.data.ok_or_else(|| client::bad_data("data"))?;
        let data: BindData = serde_json::from_value(data)
            .map_err(|_| client::bad_data("a well-formed data object"))?;
        if data.bind_id.is_empty() || data.did_x.is_empty() {
            return Err(client::bad_data("bindId/didX"));
        }
        Ok(data)
    }
}

fn to_body<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(v).map_err(|e| {
        errors::err(
            FailureClass::InvalidArgument,
            Outcome::Definite,
            "encode",
            format!("cannot encode the request: {e}"),
        )
    })
}

fn unsupported(what: &str) -> ProviderError {
    errors::err(
        FailureClass::Unsupported,
        Outcome::Definite,
        "unsupported",
        format!("NXCloud offers no API to {what}"),
    )
}

#[async_trait::async_trait]
impl Carrier for NxcloudCarrier {
    fn name(&self) -> &'static str {
        errors::PROVIDER
    }

    async fn bind_xyb(&self, req: &UpstreamXyb) -> Result<UpstreamBinding, ProviderError> {
        let body = to_body(&BindXybBody {
            business_id: &self.business_id,
            phone_b: &req.phone_b,
            bind_expire_second: req.bind_expire_seconds,
            customer_user_id: non_empty(&req.customer_user_id),
            did_x: req.number_x.as_deref().and_then(non_empty),
            did_y: req.number_y.as_deref().and_then(non_empty),
            customer_bind_id: non_empty(&req.customer_bind_id),
            delayed_get_y: req.delayed_y,
            recording: req.recording,
            bind_expire_strategy: req.bind_strategy.as_i32(),
            call_in_expire_second: req.call_in_expire_seconds,
            call_in_expire_strategy: req.call_in_strategy.as_i32(),
            ext: non_empty(&req.ext),
            iso2_x: req.iso2_x.as_deref().and_then(non_empty),
            iso2_y: req.iso2_y.as_deref().and_then(non_empty),
        })?;
        tracing::debug!(customer_bind_id = %req.customer_bind_id, phone_b = %mask(&req.phone_b), "nxcloud bindXYB");
        let d = self.bind(PATH_XYB, "bindXYB", &body).await?;
        Ok(UpstreamBinding {
            provider_binding_id: d.bind_id,
            number_x: d.did_x,
            // With `delayedGetY` NXCloud allocates Y on the first call-in, so it may be empty.
            number_y: d.did_y.filter(|y| !y.is_empty()),
            extension: None,
        })
    }

    async fn bind_axn_extension(
        &self,
        req: &UpstreamAxn,
    ) -> Result<UpstreamBinding, ProviderError> {
        if req.extension.as_deref().is_some_and(|e| !e.is_empty()) {
            return Err(errors::err(
                FailureClass::InvalidArgument,
                Outcome::Definite,
                "extension_not_supported",
                "NXCloud assigns the 4-digit extension itself (bindAXE); a requested extension cannot be honoured",
            ));
        }
        // AXE has no B (anyone may dial X+E) and no city selection: `phone_b`/`expect_city` are
        // not sent.
        let body = to_body(&BindAxeBody {
            business_id: &self.business_id,
            phone_a: &req.phone_a,
            bind_expire_second: req.expire_seconds,
            did_x: req.number_x.as_deref().and_then(non_empty),
            customer_bind_id: non_empty(&req.customer_bind_id),
            recording: req.recording,
            ext: non_empty(&req.ext),
        })?;
        tracing::debug!(customer_bind_id = %req.customer_bind_id, phone_a = %mask(&req.phone_a), "nxcloud bindAXE");
        let d = self.bind(PATH_AXE, "bindAXE", &body).await?;
        let ext = d
            .extension_x
            .filter(|e| !e.is_empty())
            .ok_or_else(|| client::bad_data("extensionX"))?;
        Ok(UpstreamBinding {
            provider_binding_id: d.bind_id,
            number_x: d.did_x,
            number_y: None,
            extension: Some(ext),
        })
    }

    /// Never retried: the caller decides what an unknown outcome means for an unbind.
    async fn unbind(&self, r: &UpstreamRef) -> Result<(), ProviderError> {
        let body = to_body(&UnbindBody {
            bind_id: &r.provider_binding_id,
        })?;
        tracing::debug!(bind_id = %r.provider_binding_id, "nxcloud unbindAXB");
        self.client
            .call(PATH_LEGACY, "unbindAXB", &body)
            .await
            .map(|_| ())
    }

    async fn update_expire(
        &self,
        _r: &UpstreamRef,
        _expire_at: Millis,
    ) -> Result<(), ProviderError> {
        Err(unsupported(
            "change a binding's expiry (only the bind-time bindExpireStrategy exists)",
        ))
    }

    async fn query(&self, _r: &UpstreamRef) -> Result<UpstreamStatus, ProviderError> {
        Err(unsupported(
            "look a binding up by id (queryAXB needs the caller and X and routes a call)",
        ))
    }
}
