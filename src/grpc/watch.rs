//! `WatchEvents`: one task per subscriber reads the event log from its cursor and feeds a
//! bounded channel. The database is the source, so a stream works on any replica and resumes
//! exactly; the in-process wake-up only cuts latency (events from other replicas arrive by the
//! poll). A slow client fills its own channel and stalls only its own task: writers never
//! wait for subscribers.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::{ms_to_ts, provider_to_pb};
use super::pb;
use super::status::to_status;
use super::validate::{line, opt_binding_id, opt_pool_key};
use crate::domain::{
    DomainError, Event, EventFilter, MAX_ID_LEN, Repository,
    error::{Violations, reason},
    event::EVENT_KINDS,
    text::echo,
};

/// Most entries of `kinds` (there are 11 kinds; repeats are harmless but bounded).
const MAX_KINDS: usize = 32;

/// Events read per query.
const PAGE: u64 = 500;
/// Events buffered per subscriber between its task and the transport.
const BUFFER: usize = 256;
/// How often an idle subscriber looks for events committed by other processes.
const POLL: Duration = Duration::from_millis(100);

type Item = Result<pb::Event, Status>;

/// Validates the request, fixes the starting cursor (for `from_now`, before the response is
/// returned, so anything written after the client saw the stream open is delivered) and starts
/// the subscriber's task.
pub(crate) async fn open<R: Repository>(
    repo: Arc<R>,
    req: pb::WatchEventsRequest,
    stop: watch::Receiver<bool>,
) -> Result<ReceiverStream<Item>, Status> {
    let filter = filter(&req).map_err(to_status)?;
    // Subscribed before the first read, so no wake-up between that read and the wait is lost.
    let wake = repo.subscribe();
    let cursor = if req.from_now {
        repo.latest_sequence().await.map_err(to_status)?
    } else {
        req.after_sequence
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(pump(repo, filter, cursor, tx, wake, stop));
    Ok(ReceiverStream::new(rx))
}

/// Every filter is checked like the field it filters on: `pool_key` a pool key, `binding_id` a
/// UUID, `customer_user_id` an id of at most 128 characters, `kinds` at most 32 known kinds.
fn filter(req: &pb::WatchEventsRequest) -> Result<EventFilter, DomainError> {
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
    let pool_key = opt_pool_key(&mut v, "pool_key", &req.pool_key);
    let binding_id = opt_binding_id(&mut v, "binding_id", &req.binding_id);
    let customer_user_id = line(
        &mut v,
        "customer_user_id",
        req.customer_user_id.trim(),
        MAX_ID_LEN,
    );
    v.finish()?;
    Ok(EventFilter {
        after: 0,
        up_to: None,
        pool_key,
        binding_id,
        customer_user_id: Some(customer_user_id).filter(|s| !s.is_empty()),
        kinds: req.kinds.clone(),
        limit: PAGE,
    })
}

/// The subscriber's task: ends when the client goes away, the server stops, or storage fails
/// (then with a status; the client resumes from its last sequence).
async fn pump<R: Repository>(
    repo: Arc<R>,
    mut filter: EventFilter,
    mut cursor: i64,
    tx: mpsc::Sender<Item>,
    mut wake: watch::Receiver<i64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Every event at or below the committed counter is itself committed (storage::events),
        // so once the range up to it is scanned the cursor may pass events the filters skipped.
        let latest = match repo.latest_sequence().await {
            Ok(n) => n,
            Err(e) => return fail(&tx, e),
        };
        if latest > cursor {
            filter.after = cursor;
            filter.up_to = Some(latest);
            let page = match repo.read_events(&filter).await {
                Ok(p) => p,
                Err(e) => return fail(&tx, e),
            };
            let full = page.len() as u64 >= filter.limit;
            for ev in page {
                let seq = ev.sequence;
                tokio::select! {
                    r = tx.send(Ok(event_to_pb(ev))) => if r.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return shutting_down(&tx),
                }
                cursor = seq;
            }
            if full {
                continue;
            }
            cursor = latest;
        }
        tokio::select! {
            Ok(()) = wake.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
            _ = stop.wait_for(|s| *s) => return shutting_down(&tx),
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

pub(crate) fn event_to_pb(e: Event) -> pb::Event {
    pb::Event {
        sequence: e.sequence,
        kind: e.kind,
        binding_id: e.binding_id.unwrap_or_default(),
        time: Some(ms_to_ts(e.occurred_at)),
        pool_key: e.pool_key,
        provider: e
            .provider
            .map(provider_to_pb)
            .unwrap_or(pb::Provider::Unspecified) as i32,
        customer_bind_id: e.customer_bind_id.unwrap_or_default(),
        customer_user_id: e.customer_user_id,
        ext: e.ext,
        out_id: e.out_id,
        call_id: e.call_id,
        caller: e.caller,
        called: e.called,
        callee: e.callee,
        detail_json: e.detail.to_string(),
    }
}
