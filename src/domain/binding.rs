//! Bindings: modes, states, expiry strategies and the validated bind commands.

use std::fmt;

use super::phone::{Extension, PhoneNumber, mask};

/// Milliseconds since the Unix epoch; the one time unit below the transport layer.
pub type Millis = i64;

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The service's clock: wall time plus an offset that only tests move (expiry tests advance
/// time instead of sleeping through a minute-long minimum expiry).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Millis {
        now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn advance(&self, ms: Millis) {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// NXCloud's documented default for `bindExpireSecond`.
pub const DEFAULT_XYB_EXPIRE_SECONDS: i64 = 7200;
/// An absolute expiry must be at least this far ahead (Aliyun `Expiration`: > 1 minute).
pub const MIN_EXPIRE_AHEAD_MS: Millis = 60_000;
/// Longest lifetime accepted for any binding (10 years): catches unit mistakes (ms for s).
pub const MAX_EXPIRE_SECONDS: i64 = 10 * 366 * 24 * 3600;
/// Auto-assigned local AXN extensions are three digits, 100–999 (no leading zero, so IVRs that
/// strip zeros cannot confuse them): 900 per X.
pub const AUTO_EXTENSION_FIRST: i64 = 100;
pub const AUTO_EXTENSION_COUNT: i64 = 900;
/// Longest accepted free-text fields, in characters (Unicode scalar values). Ids
/// (`customer_bind_id`, `customer_user_id`, `out_id`) are single-line text without control
/// characters; `ext` may also hold `\n`, `\r` and `\t`.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_EXT_LEN: usize = 512;
/// Longest city name (`expect_city`, a pool number's `city`).
pub const MAX_CITY_LEN: usize = 64;
/// Longest tenant name (`x-pns-tenant`): 1–64 characters of `[A-Za-z0-9._-]`.
pub const MAX_TENANT_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Local,
    Nxcloud,
    Aliyun,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::Nxcloud => "nxcloud",
            Provider::Aliyun => "aliyun",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Provider::Local),
            "nxcloud" => Some(Provider::Nxcloud),
            "aliyun" => Some(Provider::Aliyun),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingMode {
    Xyb,
    AxnExtension,
}

impl BindingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingMode::Xyb => "xyb",
            BindingMode::AxnExtension => "axn_extension",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "xyb" => Some(BindingMode::Xyb),
            "axn_extension" => Some(BindingMode::AxnExtension),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingState {
    /// XYB before its first call-in: X is locked.
    Xyb,
    /// XYB after its first call-in.
    Axyb,
    /// Active AXN extension binding.
    Axn,
    Expired,
    Unbound,
    /// A carrier bind in flight, or whose outcome is being reconciled; routes nothing.
    Pending,
}

impl BindingState {
    pub const ACTIVE: [BindingState; 3] =
        [BindingState::Xyb, BindingState::Axyb, BindingState::Axn];

    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Xyb => "xyb",
            BindingState::Axyb => "axyb",
            BindingState::Axn => "axn",
            BindingState::Expired => "expired",
            BindingState::Unbound => "unbound",
            BindingState::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "xyb" => Some(BindingState::Xyb),
            "axyb" => Some(BindingState::Axyb),
            "axn" => Some(BindingState::Axn),
            "expired" => Some(BindingState::Expired),
            "unbound" => Some(BindingState::Unbound),
            "pending" => Some(BindingState::Pending),
            _ => None,
        }
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

/// NXCloud `bindExpireStrategy` / `callInExpireStrategy` (0 default, 1 reset, 2 extend), as this
/// gateway defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub enum ExpireStrategy {
    /// Set once, never moves.
    Fixed,
    /// On each trigger: now + seconds.
    Reset,
    /// On each trigger: current expiry + seconds.
    Extend,
}

impl TryFrom<i32> for ExpireStrategy {
    type Error = String;

    fn try_from(v: i32) -> Result<Self, String> {
        Self::from_i32(v).ok_or_else(|| format!("unknown expire strategy {v}"))
    }
}

impl From<ExpireStrategy> for i32 {
    fn from(s: ExpireStrategy) -> i32 {
        s.as_i32()
    }
}

impl ExpireStrategy {
    pub fn as_i32(self) -> i32 {
        match self {
            ExpireStrategy::Fixed => 0,
            ExpireStrategy::Reset => 1,
            ExpireStrategy::Extend => 2,
        }
    }

    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(ExpireStrategy::Fixed),
            1 => Some(ExpireStrategy::Reset),
            2 => Some(ExpireStrategy::Extend),
            _ => None,
        }
    }

    /// The expiry after one trigger of this strategy.
    pub fn apply(self, current: Millis, now: Millis, seconds: i64) -> Millis {
        match self {
            ExpireStrategy::Fixed => current,
            ExpireStrategy::Reset => now + seconds * 1000,
            ExpireStrategy::Extend => current + seconds * 1000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CityMatch {
    Loose,
    Strict,
}

/// A binding as stored. Real numbers are plain strings here (this is data, not a log line);
/// `Debug` masks them.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    /// Tenant that owns the binding.
    pub tenant: Tenant,
    pub mode: BindingMode,
    pub state: BindingState,
    pub pool_key: String,
    pub provider: Provider,
    pub phone_a: Option<String>,
    pub phone_b: Option<String>,
    pub number_x: String,
    pub number_y: Option<String>,
    pub extension: Option<String>,
    pub expire_at: Millis,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
    pub out_id: String,
    pub provider_binding_id: String,
    pub recording: bool,
    pub delayed_y: bool,
    pub bind_expire_seconds: i64,
    pub bind_strategy: ExpireStrategy,
    pub call_in_expire_seconds: i64,
    pub call_in_strategy: ExpireStrategy,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Binding {
    /// Active and not past its expiry: the only bindings that may route a call.
    pub fn is_live(&self, now: Millis) -> bool {
        self.state.is_active() && self.expire_at > now
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("state", &self.state)
            .field("pool_key", &self.pool_key)
            .field("phone_a", &self.phone_a.as_deref().map(mask))
            .field("phone_b", &self.phone_b.as_deref().map(mask))
            .field("number_x", &self.number_x)
            .field("number_y", &self.number_y)
            .field("extension", &self.extension)
            .field("expire_at", &self.expire_at)
            .finish_non_exhaustive()
    }
}

/// Who is asking: `customer_bind_id` is unique per tenant.
pub type Tenant = String;

/// A validated `BindXyb`.
#[derive(Debug, Clone)]
pub struct XybBind {
    pub tenant: Tenant,
    pub pool_key: String,
    pub phone_b: PhoneNumber,
    pub number_x: Option<PhoneNumber>,
    pub number_y: Option<PhoneNumber>,
    pub iso2_x: Option<String>,
    pub iso2_y: Option<String>,
    pub delayed_y: bool,
    pub bind_expire_seconds: i64,
    pub bind_strategy: ExpireStrategy,
    pub call_in_expire_seconds: i64,
    pub call_in_strategy: ExpireStrategy,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub recording: bool,
    pub ext: String,
}

impl XybBind {
    /// The payload that an idempotent replay must repeat exactly.
    pub fn fingerprint(&self) -> String {
        serde_json::json!({
            "mode": "xyb",
            "pool_key": self.pool_key,
            "phone_b": self.phone_b.as_str(),
            "number_x": self.number_x.as_ref().map(PhoneNumber::as_str),
            "number_y": self.number_y.as_ref().map(PhoneNumber::as_str),
            "iso2_x": self.iso2_x,
            "iso2_y": self.iso2_y,
            "delayed_y": self.delayed_y,
            "bind_expire_seconds": self.bind_expire_seconds,
            "bind_strategy": self.bind_strategy.as_i32(),
            "call_in_expire_seconds": self.call_in_expire_seconds,
            "call_in_strategy": self.call_in_strategy.as_i32(),
            "customer_user_id": self.customer_user_id,
            "recording": self.recording,
            "ext": self.ext,
        })
        .to_string()
    }
}

impl XybBind {
    /// The binding this command creates, before numbers are allocated.
    pub fn draft(
        &self,
        id: String,
        provider: Provider,
        state: BindingState,
        now: Millis,
    ) -> Binding {
        Binding {
            id,
            tenant: self.tenant.clone(),
            mode: BindingMode::Xyb,
            state,
            pool_key: self.pool_key.clone(),
            provider,
            phone_a: None,
            phone_b: Some(self.phone_b.as_str().to_owned()),
            number_x: String::new(),
            number_y: None,
            extension: None,
            expire_at: now + self.bind_expire_seconds * 1000,
            customer_bind_id: self.customer_bind_id.clone(),
            customer_user_id: self.customer_user_id.clone(),
            ext: self.ext.clone(),
            out_id: String::new(),
            provider_binding_id: String::new(),
            recording: self.recording,
            delayed_y: self.delayed_y,
            bind_expire_seconds: self.bind_expire_seconds,
            bind_strategy: self.bind_strategy,
            call_in_expire_seconds: self.call_in_expire_seconds,
            call_in_strategy: self.call_in_strategy,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A validated `BindAxnExtension`.
#[derive(Debug, Clone)]
pub struct AxnBind {
    pub tenant: Tenant,
    pub pool_key: String,
    pub phone_a: PhoneNumber,
    pub phone_b: Option<PhoneNumber>,
    pub extension: Option<Extension>,
    pub number_x: Option<PhoneNumber>,
    pub expect_city: Option<String>,
    pub city_match: CityMatch,
    pub expire_at: Millis,
    pub recording: bool,
    pub out_id: String,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
}

impl AxnBind {
    pub fn fingerprint(&self) -> String {
        serde_json::json!({
            "mode": "axn_extension",
            "pool_key": self.pool_key,
            "phone_a": self.phone_a.as_str(),
            "phone_b": self.phone_b.as_ref().map(PhoneNumber::as_str),
            "extension": self.extension.as_ref().map(Extension::as_str),
            "number_x": self.number_x.as_ref().map(PhoneNumber::as_str),
            "expect_city": self.expect_city,
            "strict_city": self.city_match == CityMatch::Strict,
            "expire_at": self.expire_at,
            "recording": self.recording,
            "out_id": self.out_id,
            "customer_user_id": self.customer_user_id,
            "ext": self.ext,
        })
        .to_string()
    }
}

impl AxnBind {
    /// The binding this command creates, before X and the extension are allocated.
    pub fn draft(
        &self,
        id: String,
        provider: Provider,
        state: BindingState,
        now: Millis,
    ) -> Binding {
        Binding {
            id,
            tenant: self.tenant.clone(),
            mode: BindingMode::AxnExtension,
            state,
            pool_key: self.pool_key.clone(),
            provider,
            phone_a: Some(self.phone_a.as_str().to_owned()),
            phone_b: self.phone_b.as_ref().map(|p| p.as_str().to_owned()),
            number_x: String::new(),
            number_y: None,
            extension: None,
            expire_at: self.expire_at,
            customer_bind_id: self.customer_bind_id.clone(),
            customer_user_id: self.customer_user_id.clone(),
            ext: self.ext.clone(),
            out_id: self.out_id.clone(),
            provider_binding_id: String::new(),
            recording: self.recording,
            delayed_y: false,
            bind_expire_seconds: 0,
            bind_strategy: ExpireStrategy::Fixed,
            call_in_expire_seconds: 0,
            call_in_strategy: ExpireStrategy::Fixed,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Names one binding of one tenant: by gateway id, or by the tenant's `customer_bind_id`.
/// Both carry the tenant; storage looks a binding up only within it (another tenant's binding
/// is not found).
#[derive(Debug, Clone)]
pub enum BindingRef {
    Id { tenant: Tenant, id: String },
    CustomerBindId { tenant: Tenant, id: String },
}

impl BindingRef {
    pub fn tenant(&self) -> &str {
        match self {
            BindingRef::Id { tenant, .. } | BindingRef::CustomerBindId { tenant, .. } => tenant,
        }
    }
}

/// `UpdateBinding`: `None` = unchanged.
#[derive(Debug, Clone, Default)]
pub struct BindingUpdate {
    pub expire_at: Option<Millis>,
    /// `Some(None)` clears the default callee.
    pub phone_b: Option<Option<PhoneNumber>>,
    pub recording: Option<bool>,
    pub customer_user_id: Option<String>,
    pub ext: Option<String>,
    pub out_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BindingFilter {
    /// Only this tenant's bindings.
    pub tenant: Tenant,
    pub pool_key: Option<String>,
    pub state: Option<BindingState>,
    pub customer_user_id: Option<String>,
    /// Return bindings with ids strictly below this one (ids sort by creation time).
    pub before_id: Option<String>,
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_move_the_expiry_as_documented() {
        let (cur, now) = (10_000, 4_000);
        assert_eq!(ExpireStrategy::Fixed.apply(cur, now, 60), 10_000);
        assert_eq!(ExpireStrategy::Reset.apply(cur, now, 60), 64_000);
        assert_eq!(ExpireStrategy::Extend.apply(cur, now, 60), 70_000);
    }

    #[test]
    fn live_means_active_and_unexpired() {
        let mut b = sample();
        assert!(b.is_live(999));
        assert!(!b.is_live(1000));
        b.state = BindingState::Unbound;
        assert!(!b.is_live(0));
    }

    #[test]
    fn debug_masks_real_numbers() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("85254987987"), "{s}");
        assert!(s.contains("8525****987"), "{s}");
    }

    fn sample() -> Binding {
        Binding {
            tenant: "default".into(),
            id: "b".into(),
            mode: BindingMode::Xyb,
            state: BindingState::Xyb,
            pool_key: "p".into(),
            provider: Provider::Local,
            phone_a: None,
            phone_b: Some("85254987987".into()),
            number_x: "85200000001".into(),
            number_y: None,
            extension: None,
            expire_at: 1000,
            customer_bind_id: None,
            customer_user_id: String::new(),
            ext: String::new(),
            out_id: String::new(),
            provider_binding_id: String::new(),
            recording: false,
            delayed_y: true,
            bind_expire_seconds: 7200,
            bind_strategy: ExpireStrategy::Fixed,
            call_in_expire_seconds: 7200,
            call_in_strategy: ExpireStrategy::Fixed,
            created_at: 0,
            updated_at: 0,
        }
    }
}
