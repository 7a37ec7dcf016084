//! Rows -> domain values.

use crate::domain::{
    Binding, BindingMode, BindingState, DomainError, ExpireStrategy, Millis, NumberInfo,
    NumberState, Pool, Provider,
};

use super::entities::{binding, number, pool};

fn corrupt(what: &str, v: &str) -> DomainError {
    DomainError::Internal(format!("stored {what} {v:?} is not recognised"))
}

pub(super) fn pool(m: pool::Model) -> Result<Pool, DomainError> {
    Ok(Pool {
        provider: Provider::parse(&m.provider).ok_or_else(|| corrupt("provider", &m.provider))?,
        pool_key: m.pool_key,
        carrier_pool_key: m.carrier_pool_key,
        tenants: m
            .tenants
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

pub(super) fn number(m: number::Model) -> Result<NumberInfo, DomainError> {
    Ok(NumberInfo {
        state: NumberState::parse(&m.state).ok_or_else(|| corrupt("number state", &m.state))?,
        number: m.number,
        iso2: m.iso2,
        city: m.city,
        locked_by: m.locked_by,
        shared_count: m.shared_count,
    })
}

/// Converts a row; an active binding past its expiry is reported as EXPIRED even before the
/// sweeper has ended it (it no longer routes calls).
pub(super) fn binding(m: binding::Model, now: Millis) -> Result<Binding, DomainError> {
    // "unknown" is storage's sub-state of PENDING (a carrier call returned without an outcome).
    let stored = if m.state == "unknown" {
        "pending"
    } else {
        m.state.as_str()
    };
    let mut state =
        BindingState::parse(stored).ok_or_else(|| corrupt("binding state", &m.state))?;
    if state.is_active() && m.expire_at <= now {
        state = BindingState::Expired;
    }
    Ok(Binding {
        mode: BindingMode::parse(&m.mode).ok_or_else(|| corrupt("binding mode", &m.mode))?,
        state,
        provider: Provider::parse(&m.provider).ok_or_else(|| corrupt("provider", &m.provider))?,
        bind_strategy: ExpireStrategy::from_i32(m.bind_strategy)
            .ok_or_else(|| corrupt("strategy", &m.bind_strategy.to_string()))?,
        call_in_strategy: ExpireStrategy::from_i32(m.call_in_strategy)
            .ok_or_else(|| corrupt("strategy", &m.call_in_strategy.to_string()))?,
        id: m.id,
        tenant: m.tenant,
        pool_key: m.pool_key,
        phone_a: m.phone_a,
        phone_b: m.phone_b,
        number_x: m.number_x,
        number_y: m.number_y,
        extension: m.extension,
        expire_at: m.expire_at,
        customer_bind_id: m.customer_bind_id,
        customer_user_id: m.customer_user_id,
        ext: m.ext,
        out_id: m.out_id,
        provider_binding_id: m.provider_binding_id,
        recording: m.recording,
        delayed_y: m.delayed_y,
        bind_expire_seconds: m.bind_expire_seconds,
        call_in_expire_seconds: m.call_in_expire_seconds,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// The row of a new binding. `state` is the stored state string (e.g. "pending" for a
/// reservation); the provider and pool come from the pool row.
pub(super) fn new_row(
    b: &Binding,
    state: &str,
    tenant: &str,
    pool: &pool::Model,
    fingerprint: &str,
    upstream_request: Option<String>,
) -> binding::ActiveModel {
    use sea_orm::ActiveValue::Set;
    binding::ActiveModel {
        id: Set(b.id.clone()),
        tenant: Set(tenant.to_owned()),
        mode: Set(b.mode.as_str().into()),
        state: Set(state.to_owned()),
        active: Set(i16::from(b.state.is_active())),
        pool_id: Set(pool.id),
        pool_key: Set(pool.pool_key.clone()),
        provider: Set(pool.provider.clone()),
        phone_a: Set(b.phone_a.clone()),
        phone_b: Set(b.phone_b.clone()),
        number_x: Set(b.number_x.clone()),
        number_y: Set(b.number_y.clone()),
        extension: Set(b.extension.clone()),
        expire_at: Set(b.expire_at),
        customer_bind_id: Set(b.customer_bind_id.clone()),
        customer_user_id: Set(b.customer_user_id.clone()),
        ext: Set(b.ext.clone()),
        out_id: Set(b.out_id.clone()),
        provider_binding_id: Set(b.provider_binding_id.clone()),
        recording: Set(b.recording),
        delayed_y: Set(b.delayed_y),
        bind_expire_seconds: Set(b.bind_expire_seconds),
        bind_strategy: Set(b.bind_strategy.as_i32()),
        call_in_expire_seconds: Set(b.call_in_expire_seconds),
        call_in_strategy: Set(b.call_in_strategy.as_i32()),
        fingerprint: Set(fingerprint.to_owned()),
        last_party: Set(None),
        created_at: Set(b.created_at),
        updated_at: Set(b.updated_at),
        purged_at: Set(None),
        ended_at: Set(None),
        upstream_request: Set(upstream_request),
    }
}
