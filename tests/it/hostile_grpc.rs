//! Hostile gRPC input (issue 7, items 7–10): every string that is stored or echoed is bounded
//! and free of NUL/control characters, timestamps are range-checked, the tenant header, page
//! tokens and binding ids are validated — all at the edge, answered with INVALID_ARGUMENT,
//! an `ErrorInfo` reason and `BadRequest` field violations in a small trailer, and nothing is
//! stored. Runs on SQLite, and on PostgreSQL when `PNS_TEST_POSTGRES_URL` is set (PostgreSQL
//! `text` cannot hold NUL: that is where item 7 showed as INTERNAL).

mod ids;
mod strings;
mod timestamps;

use std::time::Duration;

use pns_gateway::grpc::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{TestServer, fixtures::*};

pub(super) const POOL: &str = "p";
pub(super) const A: &str = "85291112222";
pub(super) const B: &str = "85264654798";
/// Largest status message and `grpc-status-details-bin` payload an error may carry: far below
/// the 16 KiB header-list limit of a default client, whatever the input.
pub(super) const MAX_MESSAGE_BYTES: usize = 1024;
pub(super) const MAX_DETAILS_BYTES: usize = 6144;

/// 3 MiB: under the 4 MiB default message limit, far over any field limit.
pub(super) fn huge() -> String {
    "k".repeat(3 * 1024 * 1024)
}

/// A bounded view of a status for assertion messages (a failing assertion must not print 3 MB).
pub(super) fn show(st: &Status) -> String {
    let m: String = st.message().chars().take(300).collect();
    format!(
        "{:?} {m:?} ({} message bytes, {} details bytes, violations {:?})",
        st.code(),
        st.message().len(),
        st.details().len(),
        violated_fields(st)
    )
}

/// The trailer stays small whatever the input.
#[track_caller]
pub(super) fn small(st: &Status) {
    assert!(
        st.message().len() <= MAX_MESSAGE_BYTES && st.details().len() <= MAX_DETAILS_BYTES,
        "trailer too big: {}",
        show(st)
    );
}

/// `code` + `ErrorInfo.reason` (domain `pns.gateway`), in a small trailer.
#[track_caller]
pub(super) fn expect(st: &Status, code: Code, reason: &str) {
    assert_eq!(st.code(), code, "{}", show(st));
    let info = st
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo: {}", show(st)));
    assert_eq!(info.reason, reason, "{}", show(st));
    assert_eq!(info.domain, "pns.gateway");
    for (k, v) in &info.metadata {
        assert!(
            v.chars().count() <= 65,
            "ErrorInfo metadata {k} not bounded: {} chars",
            v.chars().count()
        );
    }
    small(st);
}

/// INVALID_ARGUMENT with `reason` and exactly these `BadRequest` fields (in any order).
#[track_caller]
pub(super) fn rejected(st: &Status, reason: &str, fields: &[&str]) {
    expect(st, Code::InvalidArgument, reason);
    let mut got = violated_fields(st);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{}", show(st));
}

/// Everything a client can observe of the stored state.
#[derive(Debug, PartialEq)]
pub(super) struct Snapshot {
    pools: Vec<pb::Pool>,
    stats: Vec<pb::GetPoolStatsResponse>,
    bindings: Vec<pb::Binding>,
    events: Vec<pb::Event>,
}

pub(super) async fn snapshot(s: &TestServer) -> Snapshot {
    let pools = s
        .pools()
        .list_pools(pb::ListPoolsRequest {})
        .await
        .expect("list pools")
        .into_inner()
        .pools;
    let mut stats_all = Vec::new();
    for p in &pools {
        stats_all.push(stats(s, &p.pool_key).await);
    }
    let bindings = list_bindings(
        s,
        pb::ListBindingsRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut st = s
        .calls()
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch events from 0")
        .into_inner();
    let mut events = Vec::new();
    // Replay is immediate; 300 ms of silence (three polls) means the log is drained.
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(300), st.message()).await {
        match m.expect("stream ok") {
            Some(e) => events.push(e),
            None => break,
        }
    }
    Snapshot {
        pools,
        stats: stats_all,
        bindings,
        events,
    }
}

/// A server with pool `p` (three HK numbers in Kowloon) and one AXYB binding with a notified,
/// connected call `call-1`; returns the server and that binding.
pub(super) async fn seeded() -> (TestServer, pb::Binding) {
    let s = TestServer::start().await;
    pool_with(&s, POOL, "8529000", 3, "Kowloon").await;
    let mut req = xyb(POOL, B);
    req.customer_bind_id = "order-1".into();
    req.delayed_y = true;
    let b = bound(&s, req).await;
    let d = s
        .calls()
        .notify_call_in(pb::NotifyCallInRequest {
            caller: A.into(),
            called: b.number_x.clone(),
            extension: String::new(),
            call_id: "call-1".into(),
        })
        .await
        .expect("call-in")
        .into_inner();
    assert_eq!(d.decision, pb::Decision::Connect as i32, "{d:?}");
    (s, b)
}
