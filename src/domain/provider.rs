//! The carrier port: what a pool whose numbers live at NXCloud or Aliyun must offer. One
//! implementation per carrier in `providers/`; `local` pools need none (the database is the
//! authority). Adapters know nothing of sea-orm or tonic.

use std::time::Duration;

use super::binding::{ExpireStrategy, Millis};

/// `BindXyb` as sent upstream (NXCloud `bindXYB`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UpstreamXyb {
    /// The gateway binding id (unique across tenants, unlike the client's `customer_bind_id`),
    /// so that NXCloud de-duplicates a re-sent request (`customerBindId` is its idempotency key).
    pub customer_bind_id: String,
    pub phone_b: String,
    pub number_x: Option<String>,
    pub number_y: Option<String>,
    pub iso2_x: Option<String>,
    pub iso2_y: Option<String>,
    pub delayed_y: bool,
    pub bind_expire_seconds: i64,
    pub bind_strategy: ExpireStrategy,
    pub call_in_expire_seconds: i64,
    pub call_in_strategy: ExpireStrategy,
    pub customer_user_id: String,
    pub recording: bool,
    pub ext: String,
}

/// `BindAxnExtension` as sent upstream (Aliyun `BindAxnExtension`, NXCloud `bindAXE`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UpstreamAxn {
    pub customer_bind_id: String,
    pub phone_a: String,
    pub phone_b: Option<String>,
    pub extension: Option<String>,
    pub number_x: Option<String>,
    pub expect_city: Option<String>,
    /// Absolute expiry (epoch ms); Aliyun wants it as `yyyy-MM-dd HH:mm:ss` China Standard Time.
    pub expire_at: Millis,
    /// Seconds from now to `expire_at` (NXCloud `bindExpireSecond`).
    pub expire_seconds: i64,
    pub recording: bool,
    pub out_id: String,
    pub ext: String,
}

/// What the carrier allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBinding {
    /// NXCloud `bindId` / Aliyun `SubsId`.
    pub provider_binding_id: String,
    pub number_x: String,
    pub number_y: Option<String>,
    pub extension: Option<String>,
}

/// Names an upstream binding.
#[derive(Debug, Clone)]
pub struct UpstreamRef {
    pub provider_binding_id: String,
    pub number_x: String,
}

/// What a reconciliation query learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamStatus {
    Active,
    /// Expired, unbound, or unknown to the carrier.
    Gone,
}

/// Class of an upstream failure; decides the gRPC status and whether anything may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Our request was wrong (field format, illegal number, bad expiry). INVALID_ARGUMENT.
    InvalidArgument,
    /// No number left. RESOURCE_EXHAUSTED `NO_AVAILABLE_NUMBER`.
    NoAvailableNumber,
    /// A or B already bound with that X, or the number is used by someone else. ALREADY_EXISTS.
    BindConflict,
    /// The binding does not exist (any more) upstream. NOT_FOUND.
    NotFound,
    /// Rate limited. RESOURCE_EXHAUSTED with retry info.
    Throttled,
    /// Our credentials, signature, clock or account are wrong. INTERNAL (operator must act).
    Configuration,
    /// The account may not do this. PERMISSION_DENIED.
    PermissionDenied,
    /// The carrier refuses the operation in the binding's state (e.g. updating an expired one). FAILED_PRECONDITION.
    FailedPrecondition,
    /// The carrier is failing or unreachable; safe to retry later. UNAVAILABLE.
    Unavailable,
    /// The operation is not offered by this carrier. FAILED_PRECONDITION / UNIMPLEMENTED.
    Unsupported,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::InvalidArgument => "invalid_argument",
            FailureClass::NoAvailableNumber => "no_available_number",
            FailureClass::BindConflict => "bind_conflict",
            FailureClass::NotFound => "not_found",
            FailureClass::Throttled => "throttled",
            FailureClass::Configuration => "configuration",
            FailureClass::PermissionDenied => "permission_denied",
            FailureClass::FailedPrecondition => "failed_precondition",
            FailureClass::Unavailable => "unavailable",
            FailureClass::Unsupported => "unsupported",
        }
    }
}

/// Whether the carrier may have acted on a request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The carrier answered (or the request was never sent): nothing happened upstream.
    Definite,
    /// Sent, but no answer (timeout, connection reset): the carrier may have acted.
    Unknown,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider} {code}: {message}")]
pub struct ProviderError {
    pub provider: &'static str,
    pub class: FailureClass,
    pub outcome: Outcome,
    /// The carrier's own code (`10010`, `isv.NO_AVAILABLE_NUMBER`, `Throttling.User`, `timeout`…).
    pub code: String,
    /// Safe to show: never contains a secret, a signature input or a full real number.
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// What a metric calls this failure: its class, or `outcome_unknown` when the carrier may
    /// have acted (sent, no answer).
    pub fn result_label(&self) -> &'static str {
        match self.outcome {
            Outcome::Unknown => "outcome_unknown",
            Outcome::Definite => self.class.as_str(),
        }
    }
}

/// One carrier account (one configured pool).
#[async_trait::async_trait]
pub trait Carrier: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn bind_xyb(&self, req: &UpstreamXyb) -> Result<UpstreamBinding, ProviderError>;
    async fn bind_axn_extension(&self, req: &UpstreamAxn)
    -> Result<UpstreamBinding, ProviderError>;
    async fn unbind(&self, r: &UpstreamRef) -> Result<(), ProviderError>;
    /// Moves the expiry (Aliyun `UpdateSubscription` `updateExpire`).
    async fn update_expire(&self, r: &UpstreamRef, expire_at: Millis) -> Result<(), ProviderError>;
    /// Reconciliation (Aliyun `QuerySubscriptionDetail`).
    async fn query(&self, r: &UpstreamRef) -> Result<UpstreamStatus, ProviderError>;
}
