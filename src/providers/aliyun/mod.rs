//! Aliyun Phone Number Protection (`Dyplsapi` 2017-05-25): AXN extension bindings over the RPC
//! API with signature V2. Aliyun has no XYB product and does not de-duplicate binds, so a bind
//! is sent exactly once; unbind/update/query are idempotent and retried once.

mod client;
mod errors;
mod sign;
mod wire;

use std::fmt;
use std::time::Duration;

use crate::domain::binding::Millis;
use crate::domain::mask;
use crate::domain::provider::{
    Carrier, FailureClass, Outcome, ProviderError, UpstreamAxn, UpstreamBinding, UpstreamRef,
    UpstreamStatus, UpstreamXyb,
};

use errors::Op;

/// Pause before the single retry of an idempotent operation.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
use sign::Params;

/// One Aliyun account and pool.
#[derive(Clone)]
pub struct AliyunConfig {
    /// `https://dyplsapi.aliyuncs.com` in production; a fake server in tests.
    pub base_url: String,
    /// Aliyun `PoolKey` (e.g. `FC100000000000001`).
    pub pool_key: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    /// Whole-request deadline.
    pub timeout: Duration,
}

/// Hand-written so that the secret never reaches a log line.
impl fmt::Debug for AliyunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunConfig")
            .field("base_url", &self.base_url)
            .field("pool_key", &self.pool_key)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `Carrier` for one Aliyun pool. Holds one connection-pooling HTTP client.
#[derive(Debug)]
pub struct AliyunCarrier {
    cfg: AliyunConfig,
    /// `None` only if the TLS backend could not be initialised; every call then fails with
    /// `Configuration` instead of the constructor panicking.
    http: Option<reqwest::Client>,
}

impl AliyunCarrier {
    pub fn new(cfg: AliyunConfig) -> Self {
        // A connect that fails before half the deadline is reported as a connect error (the
        // request never left: Definite) rather than as the overall timeout (Unknown).
        let connect_timeout = (cfg.timeout / 2).min(Duration::from_secs(5));
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(connect_timeout)
            .build()
            .inspect_err(|e| tracing::error!(error = %e, "aliyun: cannot build the HTTP client"))
            .ok();
        Self { cfg, http }
    }

    fn pool_and_ref(&self, r: &UpstreamRef, x_name: &'static str) -> Params {
        let mut p = Params::new();
        p.insert("PoolKey", self.cfg.pool_key.clone());
        p.insert("SubsId", r.provider_binding_id.clone());
        p.insert(x_name, r.number_x.clone());
        p
    }

    /// Idempotent operations get one more try when the first may not have been answered.
    async fn call_idempotent(
        &self,
        op: Op,
        action: &'static str,
        params: Params,
    ) -> Result<wire::Envelope, ProviderError> {
        let first = match self.call(op, action, params.clone()).await {
            Err(e) if e.outcome == Outcome::Unknown || e.class == FailureClass::Unavailable => e,
            other => return other,
        };
        tracing::info!(action, code = %first.code, "aliyun retrying once");
        tokio::time::sleep(RETRY_PAUSE).await;
        match self.call(op, action, params).await {
            // The first try reached Aliyun after all and removed the binding.
            Err(e)
                if op == Op::Unbind
                    && first.outcome == Outcome::Unknown
                    && e.class == FailureClass::NotFound =>
            {
                Ok(wire::Envelope::default())
            }
            other => other,
        }
    }
}

fn expiration(ms: Millis) -> Result<String, ProviderError> {
    wire::expiration(ms).ok_or_else(|| {
        errors::err(
            FailureClass::InvalidArgument,
            Outcome::Definite,
            "expire_at",
            "expiry out of range",
        )
    })
}

/// Optional parameters are left out when absent or empty, as the SDKs do.
fn put_opt(p: &mut Params, name: &'static str, v: Option<&String>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        p.insert(name, v.clone());
    }
}

#[async_trait::async_trait]
impl Carrier for AliyunCarrier {
    fn name(&self) -> &'static str {
        errors::PROVIDER
    }

    async fn bind_xyb(&self, _req: &UpstreamXyb) -> Result<UpstreamBinding, ProviderError> {
        Err(errors::err(
            FailureClass::Unsupported,
            Outcome::Definite,
            "unsupported",
            "Aliyun offers no XYB binding",
        ))
    }

    async fn bind_axn_extension(
        &self,
        req: &UpstreamAxn,
    ) -> Result<UpstreamBinding, ProviderError> {
        let mut p = Params::new();
        p.insert("PoolKey", self.cfg.pool_key.clone());
        p.insert("PhoneNoA", req.phone_a.clone());
        p.insert("Expiration", expiration(req.expire_at)?);
        p.insert("IsRecordingEnabled", req.recording.to_string());
        put_opt(&mut p, "Extension", req.extension.as_ref());
        put_opt(&mut p, "PhoneNoB", req.phone_b.as_ref());
        put_opt(&mut p, "PhoneNoX", req.number_x.as_ref());
        put_opt(&mut p, "ExpectCity", req.expect_city.as_ref());
        put_opt(&mut p, "OutId", Some(&req.out_id));
        tracing::info!(a = %mask(&req.phone_a), out_id = %req.out_id, "aliyun BindAxnExtension");

        // Never retried: Aliyun does not de-duplicate, a second try could bind twice.
        let env = self.call(Op::Bind, "BindAxnExtension", p).await?;
        let dto = env
            .secret_bind
            .ok_or_else(|| client::bad_response("OK without SecretBindDTO"))?;
        let subs_id = dto.subs_id.as_ref().and_then(wire::text);
        let number_x = dto.secret_no.filter(|x| !x.is_empty());
        let (Some(provider_binding_id), Some(number_x)) = (subs_id, number_x) else {
            return Err(client::bad_response(
                "SecretBindDTO without SubsId or SecretNo",
            ));
        };
        tracing::info!(subs_id = %provider_binding_id, x = %mask(&number_x), "aliyun bound");
        Ok(UpstreamBinding {
            provider_binding_id,
            number_x,
            number_y: None,
            extension: dto.extension.filter(|e| !e.is_empty()),
        })
    }

    async fn unbind(&self, r: &UpstreamRef) -> Result<(), ProviderError> {
        let p = self.pool_and_ref(r, "SecretNo");
        self.call_idempotent(Op::Unbind, "UnbindSubscription", p)
            .await
            .map(|_| ())
    }

    async fn update_expire(&self, r: &UpstreamRef, expire_at: Millis) -> Result<(), ProviderError> {
        let mut p = self.pool_and_ref(r, "PhoneNoX");
        p.insert("OperateType", "updateExpire".to_owned());
        p.insert("Expiration", expiration(expire_at)?);
        self.call_idempotent(Op::Update, "UpdateSubscription", p)
            .await
            .map(|_| ())
    }

    async fn query(&self, r: &UpstreamRef) -> Result<UpstreamStatus, ProviderError> {
        let p = self.pool_and_ref(r, "PhoneNoX");
        let env = match self
            .call_idempotent(Op::Query, "QuerySubscriptionDetail", p)
            .await
        {
            Ok(env) => env,
            // Unknown (or expired and purged) upstream: nothing left to reconcile.
            Err(e) if e.code == "isv.SUBS_NOT_EXIST" => return Ok(UpstreamStatus::Gone),
            Err(e) => return Err(e),
        };
        let detail = env
            .secret_bind_detail
            .ok_or_else(|| client::bad_response("OK without SecretBindDetailDTO"))?;
        // `Status`: 1 active, 0 expired.
        match detail.status.as_ref().and_then(wire::text).as_deref() {
            Some("1") => Ok(UpstreamStatus::Active),
            Some(_) => Ok(UpstreamStatus::Gone),
            None => Err(client::bad_response("SecretBindDetailDTO without Status")),
        }
    }
}
