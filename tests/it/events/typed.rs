//! Issue 10's contract additions on `Event`: the kind as an enum (`event_kind`), the details
//! typed (`details` oneof) beside the unchanged `detail_json`, and `event_kinds` filters.

use pns_gateway::grpc::pb::{self, event::Details};
use tonic::Code;

use super::{after, nothing_more, take, watch};
use crate::support::{TestServer, fixtures::*};

fn binding_detail(e: &pb::Event) -> &pb::BindingEventDetail {
    match &e.details {
        Some(Details::BindingDetail(d)) => d,
        other => panic!("{} should carry a binding detail, has {other:?}", e.kind),
    }
}

#[tokio::test]
async fn events_carry_their_kind_as_an_enum_and_their_details_typed_beside_the_json() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 3, "").await;
    let mut x = xyb("p", "85264654798");
    x.bind_expire_seconds = 3600;
    let b = s
        .bindings()
        .bind_xyb(x)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let routed = s
        .calls()
        .notify_call_in(call_in("85291112222", &b.number_x, "", "sw-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(routed.decision, pb::Decision::Connect as i32);
    let answered = ts_in(-50);
    s.calls()
        .report_call_event(pb::ReportCallEventRequest {
            call_id: "sw-1".into(),
            kind: pb::CallEventKind::Hangup as i32,
            duration_seconds: 42,
            release_direction: pb::ReleaseDirection::Callee as i32,
            release_cause: 16,
            answer_time: Some(answered),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut st = watch(&s, after(0)).await;
    let evs = take(&mut st, 4).await;
    nothing_more(&mut st).await;
    let kinds: Vec<(&str, i32)> = evs
        .iter()
        .map(|e| (e.kind.as_str(), e.event_kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("binding.created", pb::EventKind::BindingCreated as i32),
            ("binding.converted", pb::EventKind::BindingConverted as i32),
            ("call.incoming", pb::EventKind::CallIncoming as i32),
            ("call.hangup", pb::EventKind::CallHangup as i32),
        ]
    );

    let created = binding_detail(&evs[0]);
    assert_eq!(created.mode, pb::BindingMode::Xyb as i32);
    assert_eq!(created.state, pb::BindingState::Xyb as i32);
    assert_eq!(
        (created.number_x.as_str(), created.number_y.as_str()),
        (b.number_x.as_str(), b.number_y.as_str())
    );
    assert_eq!(created.extension, "");
    assert_eq!(created.expire_time, b.expire_time, "the binding's expiry");
    assert_eq!(binding_detail(&evs[1]).state, pb::BindingState::Axyb as i32);

    let Some(Details::CallInDetail(decision)) = &evs[2].details else {
        panic!("call.incoming of NotifyCallIn: {:?}", evs[2].details);
    };
    assert_eq!(
        decision,
        &pb::CallInEventDetail {
            decision: pb::Decision::Connect as i32,
            display_number: b.number_y.clone(),
            no_binding_reason: pb::NoBindingReason::Unspecified as i32,
            extension: String::new(),
        }
    );
    assert_eq!(evs[2].callee, "85264654798", "connected to B");

    let Some(Details::CallReportDetail(cdr)) = &evs[3].details else {
        panic!("call.hangup: {:?}", evs[3].details);
    };
    assert_eq!(cdr.duration_seconds, 42);
    assert_eq!(cdr.release_direction, pb::ReleaseDirection::Callee as i32);
    assert_eq!(cdr.release_cause, 16);
    assert_eq!(cdr.answer_time, Some(answered));
    assert!(cdr.end_time.is_some() && cdr.call_time.is_some());
    assert_eq!((cdr.ring_time, cdr.recording_url.as_str()), (None, ""));

    // The JSON is what clients generated before the typed fields read: same keys, same words.
    let json: serde_json::Value = serde_json::from_str(&evs[0].detail_json).unwrap();
    assert_eq!(json["state"], "xyb");
    assert_eq!(json["mode"], "xyb");
    assert_eq!(json["number_x"], b.number_x.as_str());
    assert_eq!(json["number_y"], b.number_y.as_str());
    let t = b.expire_time.unwrap();
    let expire_ms = t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
    assert_eq!(json["expire_at_ms"], expire_ms);
    let json: serde_json::Value = serde_json::from_str(&evs[2].detail_json).unwrap();
    assert_eq!(json["decision"], "connect");
    assert_eq!(json["display_number"], b.number_y.as_str());
    let json: serde_json::Value = serde_json::from_str(&evs[3].detail_json).unwrap();
    assert_eq!(
        (&json["duration_seconds"], &json["release_direction"]),
        (&serde_json::json!(42), &serde_json::json!("callee"))
    );
}

#[tokio::test]
async fn a_refused_call_in_records_its_reason_typed() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 1, "").await;
    s.calls()
        .notify_call_in(call_in("85291112222", "1799990001", "12", "sw-9"))
        .await
        .unwrap();
    // An event about no binding: only the admin (this server is open) sees it.
    let mut st = watch(&s, after(0)).await;
    let e = &take(&mut st, 1).await[0];
    assert_eq!(e.event_kind, pb::EventKind::CallIncoming as i32);
    assert_eq!(e.binding_id, "");
    assert_eq!(
        e.details,
        Some(Details::CallInDetail(pb::CallInEventDetail {
            decision: pb::Decision::NoBinding as i32,
            display_number: String::new(),
            no_binding_reason: pb::NoBindingReason::UnknownNumber as i32,
            extension: "12".into(),
        }))
    );
}

#[tokio::test]
async fn event_kinds_filter_by_enum_and_together_with_kind_strings() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    let b = s
        .bindings()
        .bind_xyb(xyb("p", "85264654798"))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    s.bindings()
        .unbind(pb::UnbindRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            event_kinds: vec![pb::EventKind::BindingUnbound as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(take(&mut st, 1).await[0].kind, "binding.unbound");
    nothing_more(&mut st).await;

    // Either list names a kind to send: the union, each event once.
    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            kinds: vec!["binding.created".into(), "binding.unbound".into()],
            event_kinds: vec![
                pb::EventKind::BindingUnbound as i32,
                pb::EventKind::CallHangup as i32,
            ],
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<String> = take(&mut st, 2).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["binding.created", "binding.unbound"]);
    nothing_more(&mut st).await;
}

#[tokio::test]
async fn unspecified_and_unknown_event_kinds_are_rejected() {
    let s = TestServer::start().await;
    let st = s
        .calls()
        .watch_events(pb::WatchEventsRequest {
            event_kinds: vec![
                pb::EventKind::CallHangup as i32,
                pb::EventKind::Unspecified as i32,
                99,
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&st, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["event_kinds[1]", "event_kinds[2]"]);

    let st = s
        .calls()
        .watch_events(pb::WatchEventsRequest {
            event_kinds: vec![pb::EventKind::CallHangup as i32; 33],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&st), ["event_kinds"]);
}
