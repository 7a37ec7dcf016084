//! NotifyCallIn: routing decisions, the XYB -> AXYB conversion, AXN extension routing, races.

use futures_util::future::join_all;
use pns_gateway::grpc::pb::{self, call_service_client::CallServiceClient};
use tonic::{Code, transport::Channel};

use crate::support::{TestServer, fixtures::*};

const A: &str = "85291112222";
const B: &str = "85264654798";

fn calls(s: &TestServer) -> CallServiceClient<Channel> {
    CallServiceClient::new(s.channel.clone())
}

async fn call(s: &TestServer, caller: &str, called: &str, ext: &str) -> pb::NotifyCallInResponse {
    let req = call_in(
        caller,
        called,
        ext,
        &format!("call-{}", uuid::Uuid::new_v4()),
    );
    calls(s)
        .notify_call_in(req)
        .await
        .expect("notify call-in")
        .into_inner()
}

fn connect(r: &pb::NotifyCallInResponse) -> (&str, &str) {
    assert_eq!(
        r.decision,
        pb::Decision::Connect as i32,
        "expected CONNECT, got {r:?}"
    );
    (r.connect_to.as_str(), r.display_number.as_str())
}

fn no_binding(r: &pb::NotifyCallInResponse, why: pb::NoBindingReason) {
    assert_eq!(
        r.decision,
        pb::Decision::NoBinding as i32,
        "expected NO_BINDING, got {r:?}"
    );
    assert_eq!(r.no_binding_reason, why as i32, "{r:?}");
}

#[tokio::test]
async fn the_full_xyb_life_bind_call_in_axyb_both_ways_rebind_and_expiry() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.number_x = numbers[0].clone();
    req.call_in_expire_seconds = 600;
    req.customer_bind_id = "order-1".into();
    let b = s
        .bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let (x, y) = (b.number_x.clone(), b.number_y.clone());

    // B cannot use Y before A is known.
    no_binding(
        &call(&s, B, &y, "").await,
        pb::NoBindingReason::DirectionNotAllowed,
    );

    // A's first call converts the binding and reaches B, showing Y.
    let r = call(&s, A, &x, "").await;
    assert_eq!(connect(&r), (B, y.as_str()));
    let conv = r.binding.unwrap();
    assert_eq!(conv.state, pb::BindingState::Axyb as i32);
    assert_eq!(
        (conv.phone_a.as_str(), conv.customer_bind_id.as_str()),
        (A, "order-1")
    );
    let exp = conv.expire_time.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((598..=601).contains(&exp), "call-in expiry applies: {exp}");
    assert_eq!(stats(&s, "p").await.locked, 0, "X's lock is released");

    // Both directions route.
    assert_eq!(connect(&call(&s, B, &y, "").await), (A, x.as_str()));
    assert_eq!(connect(&call(&s, A, &x, "").await), (B, y.as_str()));
    // A stranger on Y, or on X (now unlocked, no route for them): nowhere to go.
    no_binding(
        &call(&s, "85290000000", &y, "").await,
        pb::NoBindingReason::DirectionNotAllowed,
    );

    // X can be bound again at once, by someone else.
    let mut again = xyb("p", "85261234567");
    again.number_x = x.clone();
    again.delayed_y = true;
    let b2 = s
        .bindings()
        .bind_xyb(again)
        .await
        .expect("X is free for a new XYB")
        .into_inner()
        .binding
        .unwrap();
    // A's exact route still wins over the new lock; a new caller converts the new binding.
    assert_eq!(connect(&call(&s, A, &x, "").await), (B, y.as_str()));
    let r2 = call(&s, "85293334444", &x, "").await;
    assert_eq!(connect(&r2).0, "85261234567");
    assert_eq!(r2.binding.unwrap().binding_id, b2.binding_id);

    // Expiry: the first binding stops routing the moment it expires.
    s.clock.advance(601_000);
    no_binding(&call(&s, A, &x, "").await, pb::NoBindingReason::Expired);
    no_binding(&call(&s, B, &y, "").await, pb::NoBindingReason::Expired);
}

#[tokio::test]
async fn a_delayed_y_is_allocated_at_the_first_call_in_and_call_in_strategies_apply() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.delayed_y = true;
    req.call_in_expire_seconds = 300;
    req.call_in_expire_strategy = pb::ExpireStrategy::Extend as i32;
    let b = s
        .bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert!(b.number_y.is_empty());
    let r = call(&s, A, &b.number_x, "").await;
    let y = r.display_number.clone();
    assert!(!y.is_empty() && y != b.number_x);
    let e1 = r.binding.unwrap().expire_time.unwrap().seconds;
    // EXTEND: each routed call adds 300 s.
    let r = call(&s, B, &y, "").await;
    assert_eq!(connect(&r), (A, b.number_x.as_str()));
    assert_eq!(r.binding.unwrap().expire_time.unwrap().seconds, e1 + 300);
}

#[tokio::test]
async fn axn_extension_calls_reach_a_and_a_calls_back_the_last_party_or_b() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    let mut req = axn("p", A, 3600);
    req.number_x = "17000000001".into();
    req.extension = "130".into();
    req.phone_b = B.into();
    s.bindings().bind_axn_extension(req).await.unwrap();
    let x = "17000000001";

    assert_eq!(
        call(&s, A, x, "").await.connect_to,
        B,
        "no one called yet: the default B"
    );
    assert_eq!(connect(&call(&s, "13800000001", x, "130").await), (A, x));
    assert_eq!(
        connect(&call(&s, A, x, "").await),
        ("13800000001", x),
        "A reaches the last party"
    );

    assert_eq!(
        call(&s, "13800000002", x, "").await.decision,
        pb::Decision::CollectExtension as i32
    );
    no_binding(
        &call(&s, "13800000002", x, "999").await,
        pb::NoBindingReason::WrongExtension,
    );
    no_binding(
        &call(&s, "13800000002", "17099999999", "").await,
        pb::NoBindingReason::UnknownNumber,
    );

    let mut no_b = axn("p", "13900000009", 3600);
    no_b.number_x = x.into();
    s.bindings().bind_axn_extension(no_b).await.unwrap();
    no_binding(
        &call(&s, "13900000009", x, "").await,
        pb::NoBindingReason::DirectionNotAllowed,
    );
}

#[tokio::test]
async fn concurrent_call_ins_on_one_xyb_binding_make_exactly_one_a() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let b = bound(&s, xyb("p", B)).await;
    let results = join_all((0..20).map(|i| {
        let mut c = calls(&s);
        let req = call_in(
            &format!("8529000{i:04}"),
            &b.number_x,
            "",
            &format!("race-{i}"),
        );
        async move { c.notify_call_in(req).await }
    }))
    .await;
    let responses: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("answered").into_inner())
        .collect();
    let winners: Vec<_> = responses
        .iter()
        .filter(|r| r.decision == pb::Decision::Connect as i32)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one caller becomes A");
    let a = winners[0].binding.as_ref().unwrap().phone_a.clone();
    for r in responses
        .iter()
        .filter(|r| r.decision != pb::Decision::Connect as i32)
    {
        no_binding(r, pb::NoBindingReason::DirectionNotAllowed);
    }
    let got = get_binding(&s, &b.binding_id).await;
    assert_eq!(got.phone_a, a);
}

#[tokio::test]
async fn invalid_call_ins_are_rejected_with_field_violations() {
    let s = TestServer::start().await;
    let err = calls(&s)
        .notify_call_in(pb::NotifyCallInRequest {
            caller: "x".into(),
            called: "".into(),
            extension: "12345".into(),
            call_id: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut f = violated_fields(&err);
    f.sort();
    assert_eq!(f, ["call_id", "called", "caller", "extension"]);
}

#[tokio::test]
async fn a_repeated_call_in_gets_the_same_answer_and_applies_nothing_twice() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.call_in_expire_seconds = 300;
    req.call_in_expire_strategy = pb::ExpireStrategy::Extend as i32;
    let b = s
        .bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let first = s
        .calls()
        .notify_call_in(call_in(A, &b.number_x, "", "once-0"))
        .await
        .unwrap()
        .into_inner();
    let routed = call_in(A, &b.number_x, "", "once-1");
    let r1 = s
        .calls()
        .notify_call_in(routed.clone())
        .await
        .unwrap()
        .into_inner();
    let r2 = s
        .calls()
        .notify_call_in(routed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r1, r2, "the retry gets the recorded answer");
    assert_eq!(
        r2.binding.unwrap().expire_time.unwrap().seconds,
        first.binding.unwrap().expire_time.unwrap().seconds + 300,
        "EXTEND applied once for one call"
    );
    let mut other = routed;
    other.caller = "85290000001".into();
    let err = s.calls().notify_call_in(other).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["call_id"]);
}

/// Issue 7 item 4: a pool number nobody holds is NOT_BOUND (not "direction not allowed"), a
/// number of no pool is UNKNOWN_NUMBER, a number bound for someone else is DIRECTION_NOT_ALLOWED
/// (without disclosing that binding); reports of a NO_BINDING call are accepted and attached to
/// that call, and a report for a call never notified is CALL_NOT_FOUND.
#[tokio::test]
async fn no_binding_reasons_are_precise_and_reports_attach_to_unrouted_calls() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 3, "").await;
    let fresh = call_in("13800000002", &numbers[2], "", "nb-1");
    let r = calls(&s).notify_call_in(fresh).await.unwrap().into_inner();
    no_binding(&r, pb::NoBindingReason::NotBound);
    assert!(r.binding.is_none());
    no_binding(
        &call(&s, "13800000002", "17099999999", "").await,
        pb::NoBindingReason::UnknownNumber,
    );

    // X of an AXYB binding, dialled by a stranger: bound, not for this caller.
    let mut req = xyb("p", B);
    req.number_x = numbers[0].clone();
    let b = s
        .bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    connect(&call(&s, A, &b.number_x, "").await);
    let r = call(&s, "13800000003", &b.number_x, "").await;
    no_binding(&r, pb::NoBindingReason::DirectionNotAllowed);
    assert!(
        r.binding.is_none(),
        "another party's binding is not disclosed"
    );

    // The report of the NO_BINDING call-in is accepted, stored once, and names the call.
    let report = pb::ReportCallEventRequest {
        call_id: "nb-1".into(),
        kind: pb::CallEventKind::Hangup as i32,
        duration_seconds: 0,
        ..Default::default()
    };
    let first = calls(&s)
        .report_call_event(report.clone())
        .await
        .expect("report of a NO_BINDING call is accepted")
        .into_inner();
    assert!(!first.duplicate);
    let again = calls(&s)
        .report_call_event(report)
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let mut stream = calls(&s)
        .watch_events(pb::WatchEventsRequest {
            after_sequence: first.sequence - 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ev = stream.message().await.unwrap().unwrap();
    assert_eq!(ev.sequence, first.sequence);
    assert_eq!(ev.kind, "call.hangup");
    assert_eq!(ev.call_id, "nb-1");
    assert_eq!(ev.caller, "13800000002");
    assert_eq!(ev.called, numbers[2]);
    assert!(ev.binding_id.is_empty());

    let st = calls(&s)
        .report_call_event(pb::ReportCallEventRequest {
            call_id: "never-notified".into(),
            kind: pb::CallEventKind::Hangup as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&st, Code::NotFound, "CALL_NOT_FOUND");
}

/// The same call-in sent many times at once (a softswitch retrying on its own timer), for
/// several calls: every copy gets the one answer, each call has exactly one `call.incoming`,
/// and the log keeps no hole. On PostgreSQL a batch of call-ins is appended by one statement
/// that takes every event as new; a copy that lands in a later batch than the first finds its
/// key stored, that statement fails whole, and the batch is appended again in a transaction
/// that looks its keys up.
#[tokio::test]
async fn concurrent_copies_of_a_call_in_are_answered_alike_and_logged_once() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let b = bound(&s, xyb("p", B)).await;
    // The first call converts the binding (XYB → AXYB, a write); the copies below are plain
    // routed call-ins, each only an event to append.
    connect(&call(&s, A, &b.number_x, "").await);
    // Until the route index answers this number (its tailer applied the conversion): the
    // copies then take the index's path, whose events go to the batches of appends.
    let hits = s.store.route_index_hits();
    for _ in 0..200 {
        connect(&call(&s, A, &b.number_x, "").await);
        if s.store.route_index_hits() > hits {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(s.store.route_index_hits() > hits, "the route index answers");
    let before = {
        use pns_gateway::domain::Repository;
        s.store.latest_sequence().await.unwrap()
    };
    let calls = 8;
    let copies = 12;
    let sends = (0..calls).flat_map(|c| {
        let req = call_in(A, &b.number_x, "", &format!("copies-{c}"));
        let s = &s;
        (0..copies).map(move |i| {
            let req = req.clone();
            async move {
                // Spread the copies over batches.
                tokio::time::sleep(std::time::Duration::from_millis(i * 3)).await;
                (c, s.calls().notify_call_in(req).await.unwrap().into_inner())
            }
        })
    });
    let answers = join_all(sends).await;
    for c in 0..calls {
        let mine: Vec<_> = answers.iter().filter(|(k, _)| *k == c).collect();
        assert_eq!(mine.len(), copies as usize);
        assert!(
            mine.iter().all(|(_, a)| *a == mine[0].1),
            "every copy gets the one answer: {mine:?}"
        );
    }
    use pns_gateway::domain::Repository;
    let evs = events_after(&s, before).await;
    let incoming: Vec<&str> = evs
        .iter()
        .filter(|e| e.kind == "call.incoming")
        .map(|e| e.call_id.as_str())
        .collect();
    let distinct: std::collections::HashSet<&str> = incoming.iter().copied().collect();
    assert_eq!(incoming.len(), calls as usize, "{incoming:?}");
    assert_eq!(distinct.len(), calls as usize);
    let seqs: Vec<i64> = evs.iter().map(|e| e.sequence).collect();
    let last = s.store.latest_sequence().await.unwrap();
    assert_eq!(seqs, (before + 1..=last).collect::<Vec<_>>(), "no hole");
    let anomalies = s.store.check_invariants().await.expect("check");
    assert!(anomalies.is_empty(), "{anomalies:?}");
}
