//! `pns.v1.CallService`: routing decisions (`NotifyCallIn`), softswitch reports
//! (`ReportCallEvent`) and the event stream (`WatchEvents`, see `watch`).

use std::sync::Arc;

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::pb::{self, call_service_server::CallService};
use super::{call_convert, status::to_status};
use crate::domain::{Clock, Repository, text::echo};
use crate::events::EventHub;

pub struct CallApi<R> {
    repo: Arc<R>,
    clock: Clock,
    /// This process's event fan-out (`WatchEvents` subscribers read from it).
    hub: EventHub,
    /// Becomes true at shutdown: event streams end so the server can drain.
    stop: watch::Receiver<bool>,
}

impl<R> CallApi<R> {
    pub fn new(repo: Arc<R>, clock: Clock, hub: EventHub, stop: watch::Receiver<bool>) -> Self {
        Self {
            repo,
            clock,
            hub,
            stop,
        }
    }
}

#[tonic::async_trait]
impl<R: Repository> CallService for CallApi<R> {
    #[tracing::instrument(skip_all, fields(call_id = %echo(&req.get_ref().call_id)))]
    async fn notify_call_in(
        &self,
        req: Request<pb::NotifyCallInRequest>,
    ) -> Result<Response<pb::NotifyCallInResponse>, Status> {
        Caller::of(&req)?.require_softswitch("NotifyCallIn")?;
        let c = call_convert::call_in(req.into_inner()).map_err(to_status)?;
        let (d, seq) = self
            .repo
            .call_in(&c, self.clock.now())
            .await
            .map_err(to_status)?;
        tracing::info!(caller = %c.caller, called = %c.called, decision = d.as_str(), seq, "call-in decided");
        Ok(Response::new(call_convert::decision_to_pb(d, seq)))
    }

    #[tracing::instrument(skip_all, fields(call_id = %echo(&req.get_ref().call_id)))]
    async fn report_call_event(
        &self,
        req: Request<pb::ReportCallEventRequest>,
    ) -> Result<Response<pb::ReportCallEventResponse>, Status> {
        Caller::of(&req)?.require_softswitch("ReportCallEvent")?;
        let now = self.clock.now();
        let r = call_convert::report(req.into_inner(), now).map_err(to_status)?;
        let (sequence, duplicate) = self.repo.report_call(r, now).await.map_err(to_status)?;
        Ok(Response::new(pb::ReportCallEventResponse {
            sequence,
            duplicate,
        }))
    }

    /// Served by `watch_wire::CallRoutes` (events encoded once, bytes shared by the streams);
    /// this form decodes them again, for a server that mounts the generated service as is.
    type WatchEventsStream = super::watch_wire::Decoded;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Ok(self.watch(req).await?.map(super::watch_wire::Decoded))
    }
}

impl<R: Repository> CallApi<R> {
    /// `WatchEvents`: the caller's scope and stream cap, then the subscriber's stream.
    #[tracing::instrument(skip_all, fields(after = req.get_ref().after_sequence, from_now = req.get_ref().from_now))]
    pub(crate) async fn watch(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<super::watch::WatchStream>, Status> {
        let caller = Caller::of(&req)?;
        let tenant = caller.event_scope()?;
        // A tenant key's streams count against its own cap (the admin's do not).
        let cap = match (&caller.role, caller.max_streams) {
            (super::auth::Role::Tenant(name), Some(max)) => Some((name.as_str(), max)),
            _ => None,
        };
        let stream = super::watch::open(
            self.repo.clone(),
            self.hub.clone(),
            req.into_inner(),
            tenant,
            cap,
            self.stop.clone(),
        )
        .await?;
        Ok(Response::new(stream))
    }
}
