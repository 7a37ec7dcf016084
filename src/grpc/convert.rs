//! Conversions at the edge: pb requests -> validated domain commands (every violation reported
//! at once), domain values -> pb messages.

use prost_types::Timestamp;

use super::pb;
use super::validate::{self, BindingIdArg, line, opt_id, take_tenant, text, timestamp};
use crate::domain::{
    AxnBind, Binding, BindingFilter, BindingMode, BindingRef, BindingState, BindingUpdate,
    CityMatch, DEFAULT_XYB_EXPIRE_SECONDS, DomainError, ExpireStrategy, Extension, MAX_CITY_LEN,
    MAX_EXPIRE_SECONDS, MAX_EXT_LEN, MAX_ID_LEN, MIN_EXPIRE_AHEAD_MS, Millis, NumberInfo,
    NumberState, PhoneNumber, Pool, Provider, Tenant, XybBind, error::Violations, error::reason,
};

fn opt(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn phone(v: &mut Violations, field: &str, raw: &str) -> Option<PhoneNumber> {
    v.take(
        reason::MOBILE_NUMBER_ILLEGAL,
        field,
        PhoneNumber::parse(raw),
    )
}

fn opt_phone(v: &mut Violations, field: &str, raw: &str) -> Option<PhoneNumber> {
    opt(raw).and_then(|r| phone(v, field, r))
}

/// Stands in for a number that failed to parse; never leaves a conversion (it then fails).
fn placeholder() -> PhoneNumber {
    PhoneNumber::parse("00000").expect("valid placeholder")
}

fn strategy(v: &mut Violations, field: &str, raw: i32) -> ExpireStrategy {
    match pb::ExpireStrategy::try_from(raw) {
        Ok(pb::ExpireStrategy::Unspecified | pb::ExpireStrategy::Fixed) => ExpireStrategy::Fixed,
        Ok(pb::ExpireStrategy::Reset) => ExpireStrategy::Reset,
        Ok(pb::ExpireStrategy::Extend) => ExpireStrategy::Extend,
        Err(_) => {
            v.add(
                reason::INVALID_ARGUMENT,
                field,
                format!("unknown strategy {raw}"),
            );
            ExpireStrategy::Fixed
        }
    }
}

/// A lifetime in seconds: 0 = `default`, otherwise 60..=MAX_EXPIRE_SECONDS (10 years).
fn seconds(v: &mut Violations, field: &str, raw: i64, default: i64) -> i64 {
    match raw {
        0 => default,
        s if s < 0 => {
            v.add(reason::EXPIRE_DATE_ILLEGAL, field, "must not be negative");
            default
        }
        s if s < 60 => {
            v.add(
                reason::EXPIRE_DATE_ILLEGAL,
                field,
                "must be at least 60 seconds",
            );
            default
        }
        s if s > MAX_EXPIRE_SECONDS => {
            v.add(
                reason::EXPIRE_DATE_ILLEGAL,
                field,
                format!("must be at most {MAX_EXPIRE_SECONDS} seconds"),
            );
            default
        }
        s => s,
    }
}

pub(crate) fn ms_to_ts(ms: Millis) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// An absolute expiry: a valid Timestamp, at least 1 minute ahead, within the maximum lifetime.
pub(crate) fn expire_time(
    v: &mut Violations,
    field: &str,
    t: Option<&Timestamp>,
    now: Millis,
) -> Millis {
    let Some(t) = t else {
        v.add(reason::EXPIRE_DATE_ILLEGAL, field, "is required");
        return 0;
    };
    let Some(ms) = timestamp(v, reason::EXPIRE_DATE_ILLEGAL, field, t) else {
        return 0;
    };
    if ms < now + MIN_EXPIRE_AHEAD_MS {
        v.add(
            reason::EXPIRE_DATE_ILLEGAL,
            field,
            "must be at least 1 minute in the future",
        );
    } else if ms > now + MAX_EXPIRE_SECONDS * 1000 {
        v.add(
            reason::EXPIRE_DATE_ILLEGAL,
            field,
            "must be within 10 years",
        );
    }
    ms
}

pub(crate) fn xyb(
    req: pb::BindXybRequest,
    tenant: Result<Tenant, String>,
) -> Result<XybBind, DomainError> {
    let mut v = Violations::default();
    let tenant = take_tenant(&mut v, tenant);
    let pool_key = validate::pool_key(&mut v, "pool_key", &req.pool_key);
    let phone_b = phone(&mut v, "phone_b", &req.phone_b);
    let number_x = opt_phone(&mut v, "number_x", &req.number_x);
    let number_y = opt_phone(&mut v, "number_y", &req.number_y);
    if req.delayed_y && number_y.is_some() {
        v.add(
            reason::INVALID_ARGUMENT,
            "number_y",
            "must be empty when delayed_y is set",
        );
    }
    if let (Some(x), Some(y)) = (&number_x, &number_y)
        && x == y
    {
        v.add(
            reason::INVALID_ARGUMENT,
            "number_y",
            "must differ from number_x",
        );
    }
    let bind_expire_seconds = seconds(
        &mut v,
        "bind_expire_seconds",
        req.bind_expire_seconds,
        DEFAULT_XYB_EXPIRE_SECONDS,
    );
    let call_in_expire_seconds = seconds(
        &mut v,
        "call_in_expire_seconds",
        req.call_in_expire_seconds,
        bind_expire_seconds,
    );
    let cmd = XybBind {
        tenant,
        pool_key,
        phone_b: phone_b.unwrap_or_else(placeholder),
        number_x,
        number_y,
        iso2_x: validate::iso2(&mut v, "iso2_x", &req.iso2_x),
        iso2_y: validate::iso2(&mut v, "iso2_y", &req.iso2_y),
        delayed_y: req.delayed_y,
        bind_expire_seconds,
        bind_strategy: strategy(&mut v, "bind_expire_strategy", req.bind_expire_strategy),
        call_in_expire_seconds,
        call_in_strategy: strategy(
            &mut v,
            "call_in_expire_strategy",
            req.call_in_expire_strategy,
        ),
        customer_bind_id: opt_id(
            &mut v,
            "customer_bind_id",
            &req.customer_bind_id,
            MAX_ID_LEN,
        ),
        customer_user_id: line(
            &mut v,
            "customer_user_id",
            &req.customer_user_id,
            MAX_ID_LEN,
        ),
        recording: req.recording,
        ext: text(&mut v, "ext", &req.ext, MAX_EXT_LEN),
    };
    v.finish()?;
    Ok(cmd)
}

pub(crate) fn axn(
    req: pb::BindAxnExtensionRequest,
    tenant: Result<Tenant, String>,
    now: Millis,
) -> Result<AxnBind, DomainError> {
    let mut v = Violations::default();
    let tenant = take_tenant(&mut v, tenant);
    let pool_key = validate::pool_key(&mut v, "pool_key", &req.pool_key);
    let phone_a = phone(&mut v, "phone_a", &req.phone_a);
    let phone_b = opt_phone(&mut v, "phone_b", &req.phone_b);
    let number_x = opt_phone(&mut v, "number_x", &req.number_x);
    let extension = opt(&req.extension).and_then(|e| {
        v.take(
            reason::EXTENSION_ILLEGAL,
            "extension",
            Extension::parse(e, 3),
        )
    });
    if extension.is_some() && number_x.is_none() {
        v.add(
            reason::EXTENSION_ILLEGAL,
            "extension",
            "requires number_x (Aliyun: Extension needs PhoneNoX)",
        );
    }
    let city_match = match pb::CityMatch::try_from(req.city_match) {
        Ok(pb::CityMatch::Strict) => CityMatch::Strict,
        Ok(_) => CityMatch::Loose,
        Err(_) => {
            v.add(
                reason::INVALID_ARGUMENT,
                "city_match",
                format!("unknown value {}", req.city_match),
            );
            CityMatch::Loose
        }
    };
    let expire_at = expire_time(&mut v, "expire_time", req.expire_time.as_ref(), now);
    let cmd = AxnBind {
        tenant,
        pool_key,
        phone_a: phone_a.unwrap_or_else(placeholder),
        phone_b,
        extension,
        number_x,
        expect_city: opt_id(&mut v, "expect_city", &req.expect_city, MAX_CITY_LEN),
        city_match,
        expire_at,
        recording: req.recording,
        out_id: line(&mut v, "out_id", &req.out_id, MAX_ID_LEN),
        customer_bind_id: opt_id(
            &mut v,
            "customer_bind_id",
            &req.customer_bind_id,
            MAX_ID_LEN,
        ),
        customer_user_id: line(
            &mut v,
            "customer_user_id",
            &req.customer_user_id,
            MAX_ID_LEN,
        ),
        ext: text(&mut v, "ext", &req.ext, MAX_EXT_LEN),
    };
    v.finish()?;
    Ok(cmd)
}

/// `binding_id` xor `customer_bind_id`, each checked (every violation recorded in `v`).
/// `None` = a `binding_id` that names no binding (see [`BindingIdArg::NoSuchBinding`]).
fn target(
    v: &mut Violations,
    binding_id: &str,
    customer_bind_id: &str,
    tenant: Tenant,
) -> Option<BindingRef> {
    let id = validate::binding_id_arg(v, "binding_id", binding_id);
    let cb = opt_id(v, "customer_bind_id", customer_bind_id, MAX_ID_LEN);
    let cb_set = !customer_bind_id.trim().is_empty();
    match (id, cb) {
        (BindingIdArg::Uuid(id), None) if !cb_set => return Some(BindingRef::Id { tenant, id }),
        (BindingIdArg::NoSuchBinding, None) if !cb_set => return None,
        (BindingIdArg::Absent, Some(id)) => return Some(BindingRef::CustomerBindId { tenant, id }),
        (BindingIdArg::Absent, None) if !cb_set => v.add(
            reason::INVALID_ARGUMENT,
            "binding_id",
            "one of binding_id and customer_bind_id is required",
        ),
        // customer_bind_id was set but invalid: its violation says so.
        (BindingIdArg::Absent, None) => {}
        (_, _) => v.add(
            reason::INVALID_ARGUMENT,
            "binding_id",
            "set exactly one of binding_id and customer_bind_id, not both",
        ),
    }
    None
}

/// `GetBinding` and `Unbind`: the binding named, for `tenant`.
pub(crate) fn binding_ref(
    binding_id: &str,
    customer_bind_id: &str,
    tenant: Result<Tenant, String>,
) -> Result<BindingRef, DomainError> {
    let mut v = Violations::default();
    let tenant = take_tenant(&mut v, tenant);
    let r = target(&mut v, binding_id, customer_bind_id, tenant);
    v.finish()?;
    r.ok_or(DomainError::BindingNotFound)
}

/// `UpdateBinding`: the binding and the changes, with the limits of a bind.
pub(crate) fn update(
    r: pb::UpdateBindingRequest,
    tenant: Result<Tenant, String>,
    now: Millis,
) -> Result<(BindingRef, BindingUpdate), DomainError> {
    let mut v = Violations::default();
    let tenant = take_tenant(&mut v, tenant);
    let target = target(&mut v, &r.binding_id, &r.customer_bind_id, tenant);
    let expire_at = r
        .expire_time
        .as_ref()
        .map(|t| expire_time(&mut v, "expire_time", Some(t), now));
    let phone_b = r.phone_b.as_deref().map(|raw| match raw.trim() {
        "" => None,
        s => phone(&mut v, "phone_b", s),
    });
    let update = BindingUpdate {
        expire_at,
        phone_b,
        recording: r.recording,
        customer_user_id: r
            .customer_user_id
            .map(|s| line(&mut v, "customer_user_id", &s, MAX_ID_LEN)),
        ext: r.ext.map(|s| text(&mut v, "ext", &s, MAX_EXT_LEN)),
        out_id: r.out_id.map(|s| line(&mut v, "out_id", &s, MAX_ID_LEN)),
    };
    v.finish()?;
    Ok((target.ok_or(DomainError::BindingNotFound)?, update))
}

/// `ListBindings`: filters, page size and token -> a filter that reads one row more than the
/// page (to know whether another page follows).
pub(crate) fn list_filter(
    r: &pb::ListBindingsRequest,
    tenant: Result<Tenant, String>,
) -> Result<(BindingFilter, u64), DomainError> {
    let mut v = Violations::default();
    let tenant = take_tenant(&mut v, tenant);
    let limit = page_size(&mut v, r.page_size);
    let state = state_from_pb(&mut v, r.state);
    let filter = BindingFilter {
        tenant,
        pool_key: validate::opt_pool_key(&mut v, "pool_key", &r.pool_key),
        state,
        customer_user_id: Some(line(
            &mut v,
            "customer_user_id",
            &r.customer_user_id,
            MAX_ID_LEN,
        ))
        .filter(|s| !s.is_empty()),
        before_id: validate::page_token(
            &mut v,
            LIST_BINDINGS_TOKEN,
            &r.page_token,
            validate::is_binding_cursor,
        ),
        limit: limit + 1,
    };
    v.finish()?;
    Ok((filter, limit))
}

/// Page-token kinds: a token of one list is rejected by another.
pub(crate) const LIST_BINDINGS_TOKEN: &str = "b";
pub(crate) const LIST_NUMBERS_TOKEN: &str = "n";

pub(crate) fn provider_to_pb(p: Provider) -> pb::Provider {
    match p {
        Provider::Local => pb::Provider::Local,
        Provider::Nxcloud => pb::Provider::Nxcloud,
        Provider::Aliyun => pb::Provider::Aliyun,
    }
}

pub(crate) fn state_to_pb(s: BindingState) -> pb::BindingState {
    match s {
        BindingState::Xyb => pb::BindingState::Xyb,
        BindingState::Axyb => pb::BindingState::Axyb,
        BindingState::Axn => pb::BindingState::Axn,
        BindingState::Expired => pb::BindingState::Expired,
        BindingState::Unbound => pb::BindingState::Unbound,
        BindingState::Pending => pb::BindingState::Pending,
    }
}

fn state_from_pb(v: &mut Violations, raw: i32) -> Option<BindingState> {
    match pb::BindingState::try_from(raw) {
        Ok(pb::BindingState::Unspecified) => None,
        Ok(pb::BindingState::Xyb) => Some(BindingState::Xyb),
        Ok(pb::BindingState::Axyb) => Some(BindingState::Axyb),
        Ok(pb::BindingState::Axn) => Some(BindingState::Axn),
        Ok(pb::BindingState::Expired) => Some(BindingState::Expired),
        Ok(pb::BindingState::Unbound) => Some(BindingState::Unbound),
        Ok(pb::BindingState::Pending) => Some(BindingState::Pending),
        Err(_) => {
            v.add(
                reason::INVALID_ARGUMENT,
                "state",
                format!("unknown state {raw}"),
            );
            None
        }
    }
}

fn strategy_to_pb(s: ExpireStrategy) -> pb::ExpireStrategy {
    match s {
        ExpireStrategy::Fixed => pb::ExpireStrategy::Fixed,
        ExpireStrategy::Reset => pb::ExpireStrategy::Reset,
        ExpireStrategy::Extend => pb::ExpireStrategy::Extend,
    }
}

pub(crate) fn binding_to_pb(b: Binding) -> pb::Binding {
    pb::Binding {
        binding_id: b.id,
        mode: match b.mode {
            BindingMode::Xyb => pb::BindingMode::Xyb,
            BindingMode::AxnExtension => pb::BindingMode::AxnExtension,
        } as i32,
        state: state_to_pb(b.state) as i32,
        pool_key: b.pool_key,
        phone_a: b.phone_a.unwrap_or_default(),
        phone_b: b.phone_b.unwrap_or_default(),
        number_x: b.number_x,
        number_y: b.number_y.unwrap_or_default(),
        extension: b.extension.unwrap_or_default(),
        expire_time: Some(ms_to_ts(b.expire_at)),
        customer_bind_id: b.customer_bind_id.unwrap_or_default(),
        customer_user_id: b.customer_user_id,
        ext: b.ext,
        out_id: b.out_id,
        provider_binding_id: b.provider_binding_id,
        recording: b.recording,
        provider: provider_to_pb(b.provider) as i32,
        call_in_expire_seconds: b.call_in_expire_seconds,
        call_in_expire_strategy: strategy_to_pb(b.call_in_strategy) as i32,
        bind_expire_seconds: b.bind_expire_seconds,
        bind_expire_strategy: strategy_to_pb(b.bind_strategy) as i32,
        create_time: Some(ms_to_ts(b.created_at)),
        update_time: Some(ms_to_ts(b.updated_at)),
        delayed_y: b.delayed_y,
        tenant: b.tenant,
    }
}

pub(crate) fn pool_to_pb(p: Pool) -> pb::Pool {
    pb::Pool {
        pool_key: p.pool_key,
        provider: provider_to_pb(p.provider) as i32,
        carrier_pool_key: p.carrier_pool_key,
        tenants: p.tenants,
    }
}

pub(crate) fn number_state_to_pb(s: NumberState) -> pb::NumberState {
    match s {
        NumberState::Available => pb::NumberState::Available,
        NumberState::Reserved => pb::NumberState::Reserved,
        NumberState::Retired => pb::NumberState::Retired,
    }
}

pub(crate) fn number_to_pb(n: NumberInfo) -> pb::Number {
    pb::Number {
        number: n.number,
        iso2: n.iso2,
        city: n.city,
        state: number_state_to_pb(n.state) as i32,
        locked_by_binding_id: n.locked_by.unwrap_or_default(),
        shared_bindings: n.shared_count,
    }
}

/// Largest page; a bigger `page_size` is served as this (AIP-158).
pub(crate) const MAX_PAGE_SIZE: u64 = 1000;
const DEFAULT_PAGE_SIZE: u64 = 100;

/// Page size: 0 = 100, negative rejected, above 1000 served as 1000.
pub(crate) fn page_size(v: &mut Violations, raw: i32) -> u64 {
    match raw {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            v.add(
                reason::INVALID_ARGUMENT,
                "page_size",
                "must not be negative",
            );
            DEFAULT_PAGE_SIZE
        }
        n => (n as u64).min(MAX_PAGE_SIZE),
    }
}

#[cfg(test)]
mod tests;
