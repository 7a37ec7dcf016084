//! `pns.v1.NumberPoolService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{Caller, Role};
use super::convert::{self, LIST_NUMBERS_TOKEN, number_to_pb, pool_to_pb};
use super::pb::{self, number_pool_service_server::NumberPoolService};
use super::status::to_status;
use super::validate;
use crate::domain::{
    Clock, DomainError, MAX_CITY_LEN, NewNumber, NumberState, PhoneNumber, Pool, Provider,
    Repository, error::Violations, error::reason, text::check_text,
};

/// Most numbers one `AddNumbers` call takes.
pub const MAX_ADD_NUMBERS: usize = 10_000;
/// Most tenants a pool names.
pub const MAX_POOL_TENANTS: usize = 64;

pub struct PoolApi<R> {
    repo: Arc<R>,
    clock: Clock,
}

impl<R> PoolApi<R> {
    pub fn new(repo: Arc<R>, clock: Clock) -> Self {
        Self { repo, clock }
    }
}

/// Validates numbers to add; shared by gRPC and the CLI import. Each number: 5–15 digits
/// (a leading `+` dropped); `iso2` empty or an ISO 3166 alpha-2 code; `city` at most 64
/// characters without control characters. 1 to [`MAX_ADD_NUMBERS`] numbers.
pub fn parse_new_numbers(
    specs: &[(String, String, String)],
) -> Result<Vec<NewNumber>, DomainError> {
    let mut v = Violations::default();
    let out = new_numbers(&mut v, specs);
    v.finish()?;
    Ok(out)
}

fn new_numbers(v: &mut Violations, specs: &[(String, String, String)]) -> Vec<NewNumber> {
    if specs.is_empty() {
        v.add(reason::INVALID_ARGUMENT, "numbers", "must not be empty");
    }
    if specs.len() > MAX_ADD_NUMBERS {
        // Not worth checking each: the request is refused whatever they are.
        v.add(
            reason::INVALID_ARGUMENT,
            "numbers",
            format!("at most {MAX_ADD_NUMBERS} per request"),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(specs.len());
    for (i, (number, iso2, city)) in specs.iter().enumerate() {
        let n = v.take(
            reason::MOBILE_NUMBER_ILLEGAL,
            &format!("numbers[{i}].number"),
            PhoneNumber::parse(number),
        );
        let iso2 = validate::iso2(v, &format!("numbers[{i}].iso2"), iso2);
        let city = city.trim();
        let city_ok = v
            .take(
                reason::INVALID_ARGUMENT,
                &format!("numbers[{i}].city"),
                check_text(city, MAX_CITY_LEN, false),
            )
            .is_some();
        if let (Some(n), true) = (n, city_ok) {
            out.push(NewNumber {
                number: n.into_string(),
                iso2: iso2.unwrap_or_default(),
                city: city.to_owned(),
            });
        }
    }
    out
}

fn number_state(v: &mut Violations, raw: i32) -> NumberState {
    match pb::NumberState::try_from(raw) {
        Ok(pb::NumberState::Available) => NumberState::Available,
        Ok(pb::NumberState::Reserved) => NumberState::Reserved,
        Ok(pb::NumberState::Retired) => NumberState::Retired,
        _ => {
            v.add(
                reason::INVALID_ARGUMENT,
                "state",
                "must be NUMBER_STATE_AVAILABLE, NUMBER_STATE_RESERVED or NUMBER_STATE_RETIRED",
            );
            NumberState::Available
        }
    }
}

fn pool_key_arg(raw: &str) -> Result<String, Status> {
    let mut v = Violations::default();
    let k = validate::pool_key(&mut v, "pool_key", raw);
    v.finish().map_err(to_status)?;
    Ok(k)
}

#[tonic::async_trait]
impl<R: Repository> NumberPoolService for PoolApi<R> {
    async fn create_pool(
        &self,
        req: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::CreatePoolResponse>, Status> {
        Caller::of(&req)?.require_admin("CreatePool")?;
        let r = req.into_inner();
        let mut v = Violations::default();
        let pool_key = validate::pool_key(&mut v, "pool_key", &r.pool_key);
        match pb::Provider::try_from(r.provider) {
            Ok(pb::Provider::Local | pb::Provider::Unspecified) => {}
            Ok(_) => v.add(
                reason::INVALID_ARGUMENT,
                "provider",
                "only PROVIDER_LOCAL pools are created over gRPC; carrier pools are declared in the config file",
            ),
            Err(_) => v.add(reason::INVALID_ARGUMENT, "provider", "unknown provider"),
        }
        if r.tenants.len() > MAX_POOL_TENANTS {
            v.add(
                reason::INVALID_ARGUMENT,
                "tenants",
                format!("at most {MAX_POOL_TENANTS} tenants"),
            );
        }
        let mut tenants: Vec<String> = Vec::new();
        for (i, t) in r.tenants.iter().take(MAX_POOL_TENANTS).enumerate() {
            let field = format!("tenants[{i}]");
            let parsed = if t.trim().is_empty() {
                Err("must not be empty".to_owned())
            } else {
                validate::parse_tenant(Some(t.as_bytes()))
            };
            if let Some(t) = v.take(reason::INVALID_ARGUMENT, &field, parsed)
                && !tenants.contains(&t)
            {
                tenants.push(t);
            }
        }
        v.finish().map_err(to_status)?;
        let pool = self
            .repo
            .create_pool(Pool {
                pool_key,
                provider: Provider::Local,
                carrier_pool_key: String::new(),
                tenants,
            })
            .await
            .map_err(to_status)?;
        tracing::info!(pool = %pool.pool_key, "pool created");
        Ok(Response::new(pb::CreatePoolResponse {
            pool: Some(pool_to_pb(pool)),
        }))
    }

    async fn list_pools(
        &self,
        req: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        let caller = Caller::of(&req)?;
        let mut pools = self.repo.list_pools().await.map_err(to_status)?;
        if !caller.is_admin() {
            // A tenant sees the pools it may bind in, and not which other tenants may.
            let me = match &caller.role {
                Role::Tenant(t) => Some(t.as_str()),
                _ => None,
            };
            pools.retain(|p| me.is_none_or(|t| p.allows(t)));
            for p in &mut pools {
                p.tenants.clear();
            }
        }
        Ok(Response::new(pb::ListPoolsResponse {
            pools: pools.into_iter().map(pool_to_pb).collect(),
        }))
    }

    async fn add_numbers(
        &self,
        req: Request<pb::AddNumbersRequest>,
    ) -> Result<Response<pb::AddNumbersResponse>, Status> {
        Caller::of(&req)?.require_admin("AddNumbers")?;
        let r = req.into_inner();
        let specs: Vec<_> = r
            .numbers
            .into_iter()
            .map(|n| (n.number, n.iso2, n.city))
            .collect();
        let mut v = Violations::default();
        let pool_key = validate::pool_key(&mut v, "pool_key", &r.pool_key);
        let numbers = new_numbers(&mut v, &specs);
        v.finish().map_err(to_status)?;
        let pool = self.repo.get_pool(&pool_key).await.map_err(to_status)?;
        if pool.provider != Provider::Local {
            return Err(to_status(DomainError::FailedPrecondition {
                reason: reason::PROVIDER_NOT_SUPPORTED,
                message: format!(
                    "pool {pool_key:?} is a {} pool; its numbers belong to the carrier",
                    pool.provider.as_str()
                ),
            }));
        }
        let (added, skipped) = self
            .repo
            .add_numbers(&pool_key, numbers)
            .await
            .map_err(to_status)?;
        tracing::info!(pool = %pool_key, added, skipped, "numbers added");
        Ok(Response::new(pb::AddNumbersResponse {
            added: added as i32,
            skipped: skipped as i32,
        }))
    }

    async fn list_numbers(
        &self,
        req: Request<pb::ListNumbersRequest>,
    ) -> Result<Response<pb::ListNumbersResponse>, Status> {
        Caller::of(&req)?.require_admin("ListNumbers")?;
        let r = req.into_inner();
        let mut v = Violations::default();
        let pool_key = validate::pool_key(&mut v, "pool_key", &r.pool_key);
        let limit = convert::page_size(&mut v, r.page_size);
        let after = validate::page_token(
            &mut v,
            LIST_NUMBERS_TOKEN,
            &r.page_token,
            validate::is_number_cursor,
        );
        v.finish().map_err(to_status)?;
        let mut rows = self
            .repo
            .list_numbers(&pool_key, after, limit + 1)
            .await
            .map_err(to_status)?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|n| validate::encode_token(LIST_NUMBERS_TOKEN, &n.number))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListNumbersResponse {
            numbers: rows.into_iter().map(number_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn set_number_state(
        &self,
        req: Request<pb::SetNumberStateRequest>,
    ) -> Result<Response<pb::SetNumberStateResponse>, Status> {
        Caller::of(&req)?.require_admin("SetNumberState")?;
        let r = req.into_inner();
        let mut v = Violations::default();
        let pool_key = validate::pool_key(&mut v, "pool_key", &r.pool_key);
        let number = v.take(
            reason::MOBILE_NUMBER_ILLEGAL,
            "number",
            PhoneNumber::parse(&r.number),
        );
        let state = number_state(&mut v, r.state);
        v.finish().map_err(to_status)?;
        // Some once `finish` passed.
        let number = number.map(PhoneNumber::into_string).unwrap_or_default();
        let n = self
            .repo
            .set_number_state(&pool_key, &number, state)
            .await
            .map_err(to_status)?;
        tracing::info!(pool = %pool_key, number = %n.number, state = state.as_str(), "number state set");
        Ok(Response::new(pb::SetNumberStateResponse {
            number: Some(number_to_pb(n)),
        }))
    }

    async fn get_pool_stats(
        &self,
        req: Request<pb::GetPoolStatsRequest>,
    ) -> Result<Response<pb::GetPoolStatsResponse>, Status> {
        let pool_key = pool_key_arg(&req.get_ref().pool_key)?;
        let s = self
            .repo
            .pool_stats(&pool_key, self.clock.now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetPoolStatsResponse {
            pool_key,
            total: s.total,
            free: s.free,
            locked: s.locked,
            shared: s.shared,
            reserved: s.reserved,
            retired: s.retired,
            active_bindings: s.active_bindings,
        }))
    }
}
