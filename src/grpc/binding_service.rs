//! `pns.v1.BindingService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::convert::{self, binding_ref, binding_to_pb};
use super::pb::{self, binding_service_server::BindingService};
use super::status::to_status;
use super::validate;
use crate::domain::{Binding, Clock, Repository, binder::Binder, text::echo};

pub struct BindingApi<R> {
    binder: Binder<R>,
    repo: Arc<R>,
    clock: Clock,
}

impl<R: Repository> BindingApi<R> {
    pub fn new(binder: Binder<R>, clock: Clock) -> Self {
        Self {
            repo: binder.repo().clone(),
            binder,
            clock,
        }
    }
}

/// `pns_binds_total{provider, mode, outcome}`.
fn count_bind(b: &Binding, replayed: bool) {
    let outcome = if replayed { "replayed" } else { "created" };
    metrics::counter!(
        crate::telemetry::metrics::BINDS,
        "provider" => b.provider.as_str(),
        "mode" => b.mode.as_str(),
        "outcome" => outcome
    )
    .increment(1);
}

#[tonic::async_trait]
impl<R: Repository> BindingService for BindingApi<R> {
    #[tracing::instrument(skip_all, fields(pool = %echo(&req.get_ref().pool_key)))]
    async fn bind_xyb(
        &self,
        req: Request<pb::BindXybRequest>,
    ) -> Result<Response<pb::BindXybResponse>, Status> {
        let tenant = Caller::of(&req)?.tenant_for("bindings")?;
        let cmd = convert::xyb(req.into_inner(), tenant).map_err(to_status)?;
        let (b, replayed) = self
            .binder
            .bind_xyb(&cmd, self.clock.now())
            .await
            .map_err(to_status)?;
        count_bind(&b, replayed);
        tracing::info!(binding = %b.id, x = %b.number_x, b = %cmd.phone_b, replayed, "xyb bound");
        Ok(Response::new(pb::BindXybResponse {
            binding: Some(binding_to_pb(b)),
            replayed,
        }))
    }

    #[tracing::instrument(skip_all, fields(pool = %echo(&req.get_ref().pool_key)))]
    async fn bind_axn_extension(
        &self,
        req: Request<pb::BindAxnExtensionRequest>,
    ) -> Result<Response<pb::BindAxnExtensionResponse>, Status> {
        let tenant = Caller::of(&req)?.tenant_for("bindings")?;
        let now = self.clock.now();
        let cmd = convert::axn(req.into_inner(), tenant, now).map_err(to_status)?;
        let (b, replayed) = self.binder.bind_axn(&cmd, now).await.map_err(to_status)?;
        count_bind(&b, replayed);
        tracing::info!(binding = %b.id, x = %b.number_x, a = %cmd.phone_a, replayed, "axn bound");
        Ok(Response::new(pb::BindAxnExtensionResponse {
            binding: Some(binding_to_pb(b)),
            replayed,
        }))
    }

    async fn get_binding(
        &self,
        req: Request<pb::GetBindingRequest>,
    ) -> Result<Response<pb::GetBindingResponse>, Status> {
        let tenant = Caller::of(&req)?.tenant_for("bindings")?;
        let r = req.get_ref();
        let r = binding_ref(&r.binding_id, &r.customer_bind_id, tenant).map_err(to_status)?;
        let b = self
            .repo
            .get_binding(&r, self.clock.now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetBindingResponse {
            binding: Some(binding_to_pb(b)),
        }))
    }

    async fn list_bindings(
        &self,
        req: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let (filter, limit) =
            convert::list_filter(req.get_ref(), Caller::of(&req)?.tenant_for("bindings")?)
                .map_err(to_status)?;
        let mut rows = self
            .repo
            .list_bindings(&filter, self.clock.now())
            .await
            .map_err(to_status)?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|b| validate::encode_token(convert::LIST_BINDINGS_TOKEN, &b.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: rows.into_iter().map(binding_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_binding(
        &self,
        req: Request<pb::UpdateBindingRequest>,
    ) -> Result<Response<pb::UpdateBindingResponse>, Status> {
        let tenant = Caller::of(&req)?.tenant_for("bindings")?;
        let now = self.clock.now();
        let (target, update) = convert::update(req.into_inner(), tenant, now).map_err(to_status)?;
        let b = self
            .binder
            .update(&target, &update, now)
            .await
            .map_err(to_status)?;
        tracing::info!(binding = %b.id, "binding updated");
        Ok(Response::new(pb::UpdateBindingResponse {
            binding: Some(binding_to_pb(b)),
        }))
    }

    async fn unbind(
        &self,
        req: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::UnbindResponse>, Status> {
        let tenant = Caller::of(&req)?.tenant_for("bindings")?;
        let r = req.get_ref();
        let target = binding_ref(&r.binding_id, &r.customer_bind_id, tenant).map_err(to_status)?;
        let b = self
            .binder
            .unbind(&target, self.clock.now())
            .await
            .map_err(to_status)?;
        tracing::info!(binding = %b.id, state = ?b.state, "unbound");
        Ok(Response::new(pb::UnbindResponse {
            binding: Some(binding_to_pb(b)),
        }))
    }
}
