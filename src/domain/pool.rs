//! Pools and their virtual numbers.

use super::binding::Provider;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub pool_key: String,
    pub provider: Provider,
    /// Aliyun `PoolKey` / NXCloud `businessId`; empty for local pools.
    pub carrier_pool_key: String,
    /// Tenants allowed to bind in this pool; empty = every tenant.
    pub tenants: Vec<String>,
}

impl Pool {
    /// Whether `tenant` may bind in this pool.
    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberState {
    Available,
    Reserved,
    Retired,
}

impl NumberState {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberState::Available => "available",
            NumberState::Reserved => "reserved",
            NumberState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "available" => Some(NumberState::Available),
            "reserved" => Some(NumberState::Reserved),
            "retired" => Some(NumberState::Retired),
            _ => None,
        }
    }
}

/// A number to add to a pool.
#[derive(Debug, Clone)]
pub struct NewNumber {
    pub number: String,
    pub iso2: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberInfo {
    pub number: String,
    pub iso2: String,
    pub city: String,
    pub state: NumberState,
    pub locked_by: Option<String>,
    pub shared_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub total: i64,
    pub free: i64,
    pub locked: i64,
    pub shared: i64,
    pub reserved: i64,
    pub retired: i64,
    pub active_bindings: i64,
}

/// Valid pool keys: 1–64 chars of `[A-Za-z0-9_.-]`.
pub fn validate_pool_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("may contain only A-Z, a-z, 0-9, '_', '.', '-'".into());
    }
    Ok(())
}
