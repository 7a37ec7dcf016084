//! `pns.v1.NumberPoolService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, number_to_pb, pool_to_pb};
use super::pb::{self, number_pool_service_server::NumberPoolService};
use super::status::to_status;
use crate::domain::{
    Clock, DomainError, NewNumber, NumberState, PhoneNumber, Pool, Provider, Repository,
    error::Violations, error::reason, validate_pool_key,
};

/// Most numbers one `AddNumbers` call takes.
pub const MAX_ADD_NUMBERS: usize = 10_000;

pub struct PoolApi<R> {
    repo: Arc<R>,
    clock: Clock,
}

impl<R> PoolApi<R> {
    pub fn new(repo: Arc<R>, clock: Clock) -> Self {
        Self { repo, clock }
    }
}

/// Validates numbers to add; shared by gRPC and the CLI import.
pub fn parse_new_numbers(
    specs: &[(String, String, String)],
) -> Result<Vec<NewNumber>, DomainError> {
    let mut v = Violations::default();
    if specs.is_empty() {
        v.add(reason::INVALID_ARGUMENT, "numbers", "must not be empty");
    }
    if specs.len() > MAX_ADD_NUMBERS {
        v.add(
            reason::INVALID_ARGUMENT,
            "numbers",
            format!("at most {MAX_ADD_NUMBERS} per request"),
        );
    }
    let mut out = Vec::with_capacity(specs.len());
    for (i, (number, iso2, city)) in specs.iter().enumerate() {
        let Some(n) = v.take(
            reason::MOBILE_NUMBER_ILLEGAL,
            &format!("numbers[{i}].number"),
            PhoneNumber::parse(number),
        ) else {
            continue;
        };
        let iso2 = iso2.trim();
        if !iso2.is_empty() && (iso2.len() != 2 || !iso2.bytes().all(|b| b.is_ascii_alphabetic())) {
            v.add(
                reason::INVALID_ARGUMENT,
                &format!("numbers[{i}].iso2"),
                "must be an ISO 3166 alpha-2 code",
            );
        }
        if city.chars().count() > 64 {
            v.add(
                reason::INVALID_ARGUMENT,
                &format!("numbers[{i}].city"),
                "must be at most 64 characters",
            );
        }
        out.push(NewNumber {
            number: n.into_string(),
            iso2: iso2.to_ascii_uppercase(),
            city: city.trim().to_owned(),
        });
    }
    v.finish()?;
    Ok(out)
}

fn pool_key_arg(raw: &str) -> Result<String, Status> {
    let k = raw.trim();
    validate_pool_key(k).map_err(|e| {
        to_status(DomainError::invalid(
            reason::INVALID_ARGUMENT,
            "pool_key",
            e,
        ))
    })?;
    Ok(k.to_owned())
}

#[tonic::async_trait]
impl<R: Repository> NumberPoolService for PoolApi<R> {
    async fn create_pool(
        &self,
        req: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::CreatePoolResponse>, Status> {
        let r = req.into_inner();
        let pool_key = pool_key_arg(&r.pool_key)?;
        match pb::Provider::try_from(r.provider) {
            Ok(pb::Provider::Local | pb::Provider::Unspecified) => {}
            Ok(_) => {
                return Err(to_status(DomainError::invalid(
                    reason::INVALID_ARGUMENT,
                    "provider",
                    "only PROVIDER_LOCAL pools are created over gRPC; carrier pools are declared in the config file",
                )));
            }
            Err(_) => {
                return Err(to_status(DomainError::invalid(
                    reason::INVALID_ARGUMENT,
                    "provider",
                    "unknown provider",
                )));
            }
        }
        let pool = self
            .repo
            .create_pool(Pool {
                pool_key,
                provider: Provider::Local,
                carrier_pool_key: String::new(),
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
        _req: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        let pools = self.repo.list_pools().await.map_err(to_status)?;
        Ok(Response::new(pb::ListPoolsResponse {
            pools: pools.into_iter().map(pool_to_pb).collect(),
        }))
    }

    async fn add_numbers(
        &self,
        req: Request<pb::AddNumbersRequest>,
    ) -> Result<Response<pb::AddNumbersResponse>, Status> {
        let r = req.into_inner();
        let pool_key = pool_key_arg(&r.pool_key)?;
        let specs: Vec<_> = r
            .numbers
            .into_iter()
            .map(|n| (n.number, n.iso2, n.city))
            .collect();
        let numbers = parse_new_numbers(&specs).map_err(to_status)?;
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
        let r = req.into_inner();
        let pool_key = pool_key_arg(&r.pool_key)?;
        let limit = convert::page_size(r.page_size).map_err(to_status)?;
        let after = convert::decode_token("n", &r.page_token).map_err(to_status)?;
        let mut rows = self
            .repo
            .list_numbers(&pool_key, after, limit + 1)
            .await
            .map_err(to_status)?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|n| convert::encode_token("n", &n.number))
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
        let r = req.into_inner();
        let pool_key = pool_key_arg(&r.pool_key)?;
        let state = match pb::NumberState::try_from(r.state) {
            Ok(pb::NumberState::Available) => NumberState::Available,
            Ok(pb::NumberState::Reserved) => NumberState::Reserved,
            Ok(pb::NumberState::Retired) => NumberState::Retired,
            _ => {
                return Err(to_status(DomainError::invalid(
                    reason::INVALID_ARGUMENT,
                    "state",
                    "must be NUMBER_STATE_AVAILABLE, NUMBER_STATE_RESERVED or NUMBER_STATE_RETIRED",
                )));
            }
        };
        let number = PhoneNumber::parse(&r.number).map_err(|e| {
            to_status(DomainError::invalid(
                reason::MOBILE_NUMBER_ILLEGAL,
                "number",
                e,
            ))
        })?;
        let n = self
            .repo
            .set_number_state(&pool_key, number.as_str(), state)
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
