//! `pns.v1.CallService`. `WatchEvents` streams the event log (see `watch`); `NotifyCallIn` and
//! `ReportCallEvent` are not implemented yet.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::pb::{self, call_service_server::CallService};
use crate::domain::{Clock, Repository};

pub struct CallApi<R> {
    repo: Arc<R>,
    // For NotifyCallIn / ReportCallEvent (event times); unused by WatchEvents.
    #[allow(dead_code)]
    clock: Clock,
    /// Becomes true at shutdown: event streams end so the server can drain.
    stop: watch::Receiver<bool>,
}

impl<R> CallApi<R> {
    pub fn new(repo: Arc<R>, clock: Clock, stop: watch::Receiver<bool>) -> Self {
        Self { repo, clock, stop }
    }
}

#[tonic::async_trait]
impl<R: Repository> CallService for CallApi<R> {
    async fn notify_call_in(
        &self,
        _req: Request<pb::NotifyCallInRequest>,
    ) -> Result<Response<pb::NotifyCallInResponse>, Status> {
        Err(Status::unimplemented(
            "NotifyCallIn is not implemented in this build yet",
        ))
    }

    async fn report_call_event(
        &self,
        _req: Request<pb::ReportCallEventRequest>,
    ) -> Result<Response<pb::ReportCallEventResponse>, Status> {
        Err(Status::unimplemented(
            "ReportCallEvent is not implemented in this build yet",
        ))
    }

    type WatchEventsStream = ReceiverStream<Result<pb::Event, Status>>;

    #[tracing::instrument(skip_all, fields(after = req.get_ref().after_sequence, from_now = req.get_ref().from_now))]
    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let stream =
            super::watch::open(self.repo.clone(), req.into_inner(), self.stop.clone()).await?;
        Ok(Response::new(stream))
    }
}
