//! `WatchEvents`: one task per subscriber, fed from the process's event hub
//! (`crate::events`): live subscribers are served from memory with their filters applied there;
//! one that resumes from before the hub's ring reads the database page by page until it catches
//! up. A slow client fills its own bounded buffer and stalls only its own task; one that stops
//! reading for the hub's cut-off is cut off with a resumable status. Writers never wait for
//! subscribers, and idle subscribers cost no query.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::Stream;
use tonic::Status;

use super::event_convert::kind_name;
use super::pb;
use super::status::to_status;
use super::validate::{line, opt_binding_id, opt_pool_key};
use super::watch_wire::WireEvent;
use crate::domain::{
    DomainError, EventFilter, MAX_ID_LEN, Repository,
    error::{Violations, reason},
    event::EVENT_KINDS,
    text::echo,
};
use crate::events::{EventHub, Next, PAGE, Refused, Subscription};

/// Most entries of `kinds`, and of `event_kinds` (there are 11 kinds; repeats are harmless but
/// bounded).
const MAX_KINDS: usize = 32;

/// Events buffered per subscriber between its task and the transport.
const BUFFER: usize = 256;

/// Events go out encoded (`watch_wire`): a ring event's bytes are shared by every stream.
type Item = Result<WireEvent, Status>;

/// The response stream: the subscriber's buffer, ended early by a cut-off status.
pub struct WatchStream {
    rx: mpsc::Receiver<Item>,
    cut: Option<oneshot::Receiver<Status>>,
    done: bool,
}

impl Stream for WatchStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(cut) = self.cut.as_mut() {
            match Pin::new(cut).poll(cx) {
                Poll::Ready(Ok(status)) => {
                    self.done = true;
                    self.rx.close();
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Err(_)) => self.cut = None, // the task ended without a cut-off
                Poll::Pending => {}
            }
        }
        self.rx.poll_recv(cx)
    }
}

/// Validates the request, takes a stream slot, fixes the starting cursor (for `from_now`,
/// before the response is returned, so anything written after the client saw the stream open
/// is delivered) and starts the subscriber's task.
pub(crate) async fn open<R: Repository>(
    repo: Arc<R>,
    hub: EventHub,
    req: pb::WatchEventsRequest,
    tenant: Result<Option<String>, String>,
    tenant_cap: Option<(&str, usize)>,
    stop: watch::Receiver<bool>,
) -> Result<WatchStream, Status> {
    let filter = filter(&req, tenant).map_err(to_status)?;
    let start = if req.from_now {
        hub.latest()
    } else {
        req.after_sequence
    };
    let subscription = hub.admit_for(tenant_cap, start).map_err(too_many_streams)?;
    let cursor = if req.from_now {
        repo.latest_sequence().await.map_err(to_status)?
    } else {
        req.after_sequence
    };
    subscription.advance(cursor);
    let (tx, rx) = mpsc::channel(BUFFER);
    let (cut_tx, cut_rx) = oneshot::channel();
    // The task's log lines carry the request's span (its request id).
    tokio::spawn(tracing::Instrument::in_current_span(pump(
        Sub {
            repo,
            hub,
            filter,
            tx,
            cut: Some(cut_tx),
            stop,
            subscription,
        },
        cursor,
    )));
    Ok(WatchStream {
        rx,
        cut: Some(cut_rx),
        done: false,
    })
}

/// RESOURCE_EXHAUSTED, ErrorInfo TOO_MANY_STREAMS (metadata: `max_streams`, and `tenant` when
/// the tenant's own cap was reached) and RetryInfo.
fn too_many_streams(why: Refused) -> Status {
    let (msg, meta) = match why {
        Refused::Total { max } => (
            format!("this server already serves its maximum of {max} event streams; retry later"),
            vec![("max_streams".to_owned(), max.to_string())],
        ),
        Refused::Tenant { tenant, max } => (
            format!(
                "tenant {tenant} already has its maximum of {max} open event streams; close one \
                 or retry later"
            ),
            vec![
                ("max_streams".to_owned(), max.to_string()),
                ("tenant".to_owned(), tenant),
            ],
        ),
    };
    let mut d = tonic_types::ErrorDetails::new();
    d.set_error_info(
        "TOO_MANY_STREAMS",
        super::status::ERROR_DOMAIN,
        std::collections::HashMap::from_iter(meta),
    );
    d.set_retry_info(Some(std::time::Duration::from_secs(1)));
    <Status as tonic_types::StatusExt>::with_error_details(tonic::Code::ResourceExhausted, msg, d)
}

/// Every filter is checked like the field it filters on: `pool_key` a pool key, `binding_id` a
/// UUID, `customer_user_id` an id of at most 128 characters, `kinds` at most 32 known kinds.
/// `tenant`: the caller's scope (`None` = every tenant), or why `x-pns-tenant` is invalid.
fn filter(
    req: &pb::WatchEventsRequest,
    tenant: Result<Option<String>, String>,
) -> Result<EventFilter, DomainError> {
    let mut v = Violations::default();
    if req.after_sequence < 0 && !req.from_now {
        v.add(
            reason::INVALID_ARGUMENT,
            "after_sequence",
            "must not be negative (0 = from the first event)",
        );
    }
    if req.kinds.len() > MAX_KINDS {
        v.add(
            reason::INVALID_ARGUMENT,
            "kinds",
            format!("at most {MAX_KINDS} entries"),
        );
    } else {
        for (i, k) in req.kinds.iter().enumerate() {
            if !EVENT_KINDS.contains(&k.as_str()) {
                v.add(
                    reason::INVALID_ARGUMENT,
                    &format!("kinds[{i}]"),
                    format!(
                        "unknown event kind {:?}; allowed: {}",
                        echo(k),
                        EVENT_KINDS.join(", ")
                    ),
                );
            }
        }
    }
    let mut kinds = req.kinds.clone();
    if req.event_kinds.len() > MAX_KINDS {
        v.add(
            reason::INVALID_ARGUMENT,
            "event_kinds",
            format!("at most {MAX_KINDS} entries"),
        );
    } else {
        for (i, &k) in req.event_kinds.iter().enumerate() {
            match pb::EventKind::try_from(k).ok().and_then(kind_name) {
                Some(name) => kinds.push(name.to_owned()),
                None => v.add(
                    reason::INVALID_ARGUMENT,
                    &format!("event_kinds[{i}]"),
                    format!(
                        "must be a defined EventKind other than EVENT_KIND_UNSPECIFIED, not {k}"
                    ),
                ),
            }
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    let pool_key = opt_pool_key(&mut v, "pool_key", &req.pool_key);
    let binding_id = opt_binding_id(&mut v, "binding_id", &req.binding_id);
    let customer_user_id = line(
        &mut v,
        "customer_user_id",
        req.customer_user_id.trim(),
        MAX_ID_LEN,
    );
    let tenant = v
        .take(reason::INVALID_ARGUMENT, super::TENANT_HEADER, tenant)
        .flatten();
    v.finish()?;
    Ok(EventFilter {
        tenant,
        after: 0,
        up_to: None,
        pool_key,
        binding_id,
        customer_user_id: Some(customer_user_id).filter(|s| !s.is_empty()),
        kinds,
        limit: PAGE,
    })
}

/// One subscriber's state.
struct Sub<R> {
    repo: Arc<R>,
    hub: EventHub,
    filter: EventFilter,
    tx: mpsc::Sender<Item>,
    cut: Option<oneshot::Sender<Status>>,
    stop: watch::Receiver<bool>,
    /// The stream's slot and published cursor.
    subscription: Subscription,
}

impl<R> Sub<R> {
    /// Queues one event; false when the stream is over (client gone, cut off, shutdown).
    async fn deliver(&mut self, ev: WireEvent) -> bool {
        let ev = match self.tx.try_send(Ok(ev)) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(Ok(ev))) => ev,
            Err(mpsc::error::TrySendError::Full(Err(_))) => return false,
        };
        let cutoff = self.hub.cutoff();
        tokio::select! {
            r = self.tx.send(Ok(ev)) => r.is_ok(),
            _ = tokio::time::sleep(cutoff) => {
                tracing::info!(cutoff_s = cutoff.as_secs_f64(), "event subscriber stopped reading; cut off");
                metrics::counter!(crate::telemetry::metrics::EVENT_STREAM_CUTOFFS).increment(1);
                if let Some(cut) = self.cut.take() {
                    let _ = cut.send(Status::resource_exhausted(format!(
                        "this stream was not read for {} s and was cut off; resume with \
                         after_sequence = the last sequence received",
                        cutoff.as_secs()
                    )));
                }
                false
            }
            _ = self.stop.wait_for(|s| *s) => {
                shutting_down(&self.tx);
                false
            }
        }
    }
}

/// The subscriber's task: ends when the client goes away, is cut off, the server stops, or
/// storage fails (then with a status; the client resumes from its last sequence).
async fn pump<R: Repository>(mut sub: Sub<R>, mut cursor: i64) {
    let mut tail = sub.hub.tail();
    loop {
        sub.subscription.advance(cursor);
        tail.borrow_and_update();
        match sub.hub.next(cursor, BUFFER, |e| sub.filter.matches(e)) {
            Next::Ring { events, through } => {
                for p in events {
                    if !sub.deliver(WireEvent::of(&p)).await {
                        return;
                    }
                }
                // Delivered, or did not match.
                cursor = through;
            }
            Next::Database { up_to } => {
                sub.filter.after = cursor;
                sub.filter.up_to = Some(up_to);
                sub.filter.limit = PAGE;
                let page = match sub.repo.read_events(&sub.filter).await {
                    Ok(p) => p,
                    Err(e) => return fail(&sub.tx, e),
                };
                let full = page.len() as u64 >= PAGE;
                for ev in page {
                    let seq = ev.sequence;
                    if !sub.deliver(WireEvent::encode(ev)).await {
                        return;
                    }
                    cursor = seq;
                }
                // Every event up to `up_to` is committed: the range is scanned, the filtered-out
                // ones included.
                if !full {
                    cursor = up_to;
                }
            }
            Next::UpToDate => {
                tokio::select! {
                    r = tail.changed() => if r.is_err() { return },
                    _ = sub.tx.closed() => return,
                    _ = sub.stop.wait_for(|s| *s) => return shutting_down(&sub.tx),
                }
            }
        }
    }
}

fn fail(tx: &mpsc::Sender<Item>, e: DomainError) {
    let _ = tx.try_send(Err(to_status(e)));
}

/// Best effort: a client whose buffer is full just sees the stream end.
fn shutting_down(tx: &mpsc::Sender<Item>) {
    let _ = tx.try_send(Err(Status::unavailable(
        "server is shutting down; resume with after_sequence = the last sequence received",
    )));
}
