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
