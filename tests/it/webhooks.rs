//! Carrier pushes over real HTTP into the running server: parsed, stored once, applied to the
//! mirrored bindings, streamed as events; malformed and unauthenticated pushes store nothing.

mod batches;
mod hostile;
mod logs;
mod props;
mod sources;

use std::time::{Duration, Instant};

use pns_gateway::grpc::pb;

use crate::carriers::{ALI_TOKEN, Env, NX_TOKEN, start};
use crate::events::{after, take, watch};
use crate::support::{TestServer, fixtures::*};

async fn post(s: &TestServer, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", s.http_addr))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn latest(s: &TestServer) -> i64 {
    use pns_gateway::domain::Repository;
    s.store.latest_sequence().await.unwrap()
}

async fn nx_xyb(e: &Env) -> pb::Binding {
    let mut req = xyb("nx", "85264654798");
    req.customer_bind_id = "order-77".into();
    req.ext = "parcel 77".into();
    e.s.bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap()
}

fn nx_new_cdr(b: &pb::Binding, call_id: &str) -> String {
    format!(
        r#"{{"bindId": "{bid}", "customerBindId": "order-77", "callId": "{call_id}",
  "caller": "+85291112222", "did": "", "didX": "{x}", "didY": "{y}", "callee": "85264654798",
  "pnsType": "xyb", "callStatus": "1", "callStatusMsg": "Call Connected", "ext": "parcel 77",
  "legList": [
    {{"callType": 1, "caller": "85291112222", "callee": "{x}", "callStartAt": 1727400000, "callRingAt": 0,
      "callAnswerAt": 1727400001, "callFinishAt": 1727400095, "duration": 94, "ringDuration": 0,
      "callRecordFile": "", "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "uuid": "a"}},
    {{"callType": 2, "caller": "{y}", "callee": "85264654798", "callStartAt": 1727400010,
      "callRingAt": 1727400012, "callAnswerAt": 1727400020, "callFinishAt": 1727400095, "duration": 75,
      "ringDuration": 8, "callRecordFile": "https://remote.record.nxcloud.com/pns/20240927/b.mp3",
      "hangupType": 1, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "uuid": "b"}}]}}"#,
        bid = b.provider_binding_id,
        x = b.number_x,
        y = b.number_y,
    )
}

#[tokio::test]
async fn an_nxcloud_cdr_converts_the_xyb_mirror_and_is_stored_once() {
    let e = start(None, None, 2000).await;
    let b = nx_xyb(&e).await;
    let before = latest(&e.s).await;
    let body = nx_new_cdr(&b, "call-0001");
    let (status, reply) = post(&e.s, &format!("/webhooks/nxcloud/{NX_TOKEN}"), &body).await;
    assert_eq!((status, reply["code"].as_i64()), (200, Some(0)));

    let got = get_binding(&e.s, &b.binding_id).await;
    assert_eq!(
        got.state,
        pb::BindingState::Axyb as i32,
        "the mirror follows the carrier's XYB -> AXYB"
    );
    assert_eq!(got.phone_a, "85291112222");

    let mut st = watch(&e.s, after(before)).await;
    let evs = take(&mut st, 3).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["binding.converted", "call.hangup", "call.recording_ready"]
    );
    let hangup = &evs[1];
    assert_eq!(hangup.binding_id, b.binding_id);
    assert_eq!(
        (hangup.customer_bind_id.as_str(), hangup.ext.as_str()),
        ("order-77", "parcel 77")
    );
    assert_eq!(
        (hangup.call_id.as_str(), hangup.caller.as_str()),
        ("call-0001", "85291112222")
    );
    let d: serde_json::Value = serde_json::from_str(&hangup.detail_json).unwrap();
    assert_eq!(d["release_cause"], 16);
    assert_eq!(d["duration_seconds"], 75);

    // The carrier retries: accepted, stored once.
    let (status, _) = post(&e.s, &format!("/webhooks/nxcloud/{NX_TOKEN}"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(latest(&e.s).await, before + 3);
}

#[tokio::test]
async fn nxcloud_old_format_and_error_push_become_events() {
    let e = start(None, None, 2000).await;
    let b = nx_xyb(&e).await;
    let before = latest(&e.s).await;
    let old = format!(
        r#"{{"id": 100231, "businessId": "app-key-1", "customerBindId": "order-77", "bindId": "{}",
  "callId": "old-1", "did": "{}", "caller": "85291112222", "callee": "85264654798", "callStatus": 1,
  "callStatusMsg": "normal", "duration": 61, "startAt": 1671420000, "answerAt": 1671420009,
  "hangupAt": 1671420070, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "hangup": 1,
  "recordFile": ""}}"#,
        b.provider_binding_id, b.number_x
    );
    assert_eq!(
        post(&e.s, &format!("/webhooks/nxcloud/{NX_TOKEN}"), &old)
            .await
            .0,
        200
    );
    let error_push = r#"{"code": 10013, "msg": "binding not exist", "requestId": "1843537768371720192",
  "data": {"action": "queryAXB", "requestParams": {"caller": "+85290000000", "did": "85213135357"},
           "occurrenceTime": "2024-10-08 12:00:00"}}"#;
    assert_eq!(
        post(&e.s, &format!("/webhooks/nxcloud/{NX_TOKEN}"), error_push)
            .await
            .0,
        200
    );
    let mut st = watch(&e.s, after(before)).await;
    let kinds: Vec<String> = take(&mut st, 3).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        ["binding.converted", "call.hangup", "call.no_binding"]
    );
}

#[tokio::test]
async fn an_aliyun_mixed_batch_is_acknowledged_fast_and_stored_once() {
    let e = start(None, None, 2000).await;
    let mut req = axn("ali", "13800000001", 3600);
    req.out_id = "order-9".into();
    let b =
        e.s.bindings()
            .bind_axn_extension(req)
            .await
            .unwrap()
            .into_inner()
            .binding
            .unwrap();
    let (sub, x) = (b.provider_binding_id.clone(), b.number_x.clone());
    let batch = format!(
        r#"[
  {{"id": "1001", "pool_key": "FC100000000000001", "sub_id": {sub}, "call_id": "ali-call-1",
    "phone_no": "13800000001", "secret_no": "{x}", "peer_no": "13900000002", "call_type": 1,
    "call_time": "2019-03-28 20:01:05", "out_id": "order-9", "unconnected_cause": 0, "control_msg": "OK"}},
  {{"phone_no": "13800000001", "secret_no": "{x}", "peer_no": "13900000002", "call_type": "1",
    "call_id": "ali-call-1", "call_time": "2019-03-28 20:01:05", "pool_key": "FC100000000000001",
    "ring_time": "2019-03-28 20:01:12", "sub_id": "{sub}", "out_id": "order-9"}},
  {{"phone_no": "13800000001", "secret_no": "{x}", "peer_no": "13900000002", "call_type": 1,
    "call_id": "ali-call-1", "call_time": "2019-03-28 20:01:05", "pool_key": "FC100000000000001",
    "ringTime": "2019-03-28 20:01:12", "start_time": "2019-03-28 20:01:12", "sub_id": {sub}}},
  {{"pool_key": "FC100000000000001", "sub_id": {sub}, "call_id": "ali-call-1", "phone_no": "13800000001",
    "secret_no": "{x}", "peer_no": "13900000002", "call_type": 1, "call_time": "2019-03-28 20:01:05",
    "call_out_time": "2019-03-28 20:01:06", "ring_time": "2019-03-28 20:01:12",
    "start_time": "2019-03-28 20:01:12", "release_time": "2019-03-28 20:02:42", "release_dir": 2,
    "release_cause": 16, "record_url": "", "out_id": "order-9"}},
  {{"pool_key": "FC100000000000001", "subs_id": "{sub}", "call_id": "ali-call-1",
    "call_time": 1553774465000, "out_id": "order-9"}}
]"#
    );
    let before = latest(&e.s).await;
    let t = Instant::now();
    let (status, reply) = post(&e.s, &format!("/webhooks/aliyun/{ALI_TOKEN}"), &batch).await;
    let took = t.elapsed();
    println!("aliyun batch of 5 acknowledged in {took:?}");
    assert_eq!(status, 200);
    assert_eq!(reply, serde_json::json!({"code": 0, "msg": "接收成功"}));
    assert!(
        took < Duration::from_millis(700),
        "Aliyun's budget is 700 ms: {took:?}"
    );

    let mut st = watch(&e.s, after(before)).await;
    let evs = take(&mut st, 5).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "call.incoming",
            "call.ringing",
            "call.answered",
            "call.hangup",
            "call.recording_ready"
        ]
    );
    for ev in &evs {
        assert_eq!(
            (ev.binding_id.as_str(), ev.out_id.as_str()),
            (b.binding_id.as_str(), "order-9")
        );
        assert_eq!(ev.provider, pb::Provider::Aliyun as i32);
    }
    assert_eq!(
        post(&e.s, &format!("/webhooks/aliyun/{ALI_TOKEN}"), &batch)
            .await
            .0,
        200
    );
    assert_eq!(
        latest(&e.s).await,
        before + 5,
        "a re-delivered batch is stored once"
    );
}

#[tokio::test]
async fn malformed_or_unauthenticated_pushes_are_rejected_and_store_nothing() {
    let e = start(None, None, 2000).await;
    let before = latest(&e.s).await;
    let ok_item = r#"[{"call_id":"c1","phone_no":"13800000001","secret_no":"17000000001","call_type":0,"call_time":"2019-03-28 20:01:05"}]"#;
    let cases = [
        (
            format!("/webhooks/aliyun/{ALI_TOKEN}"),
            "not json".to_owned(),
            400,
        ),
        (
            format!("/webhooks/aliyun/{ALI_TOKEN}"),
            r#"[{"phone_no":"13800000001","secret_no":"1"}]"#.to_owned(),
            400,
        ),
        (
            format!("/webhooks/nxcloud/{NX_TOKEN}"),
            r#"{"caller":"1"}"#.to_owned(),
            400,
        ),
        (
            format!("/webhooks/nxcloud/{NX_TOKEN}"),
            "[1,2]".to_owned(),
            400,
        ),
        (
            "/webhooks/aliyun/wrong-token-0000000000".to_owned(),
            ok_item.to_owned(),
            401,
        ),
        (
            format!("/webhooks/nxcloud/{ALI_TOKEN}"),
            ok_item.to_owned(),
            401,
        ),
    ];
    for (path, body, want) in cases {
        let (status, reply) = post(&e.s, &path, &body).await;
        assert_eq!(status, want, "{path} {body}: {reply}");
    }
    let (status, reply) = post(
        &e.s,
        &format!("/webhooks/aliyun/{ALI_TOKEN}"),
        r#"[{"phone_no":"1"}]"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        reply["msg"].as_str().unwrap_or("").contains("call_id"),
        "the reason is given: {reply}"
    );
    assert_eq!(latest(&e.s).await, before, "nothing stored");
}

#[tokio::test]
async fn softswitch_reports_follow_a_call_in_and_duplicates_are_stored_once() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let b = s
        .bindings()
        .bind_xyb(xyb("p", "85264654798"))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let r = s
        .calls()
        .notify_call_in(pb::NotifyCallInRequest {
            caller: "85291112222".into(),
            called: b.number_x.clone(),
            extension: String::new(),
            call_id: "sw-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.event_sequence > 0);
    let report = |kind: pb::CallEventKind| pb::ReportCallEventRequest {
        call_id: "sw-1".into(),
        kind: kind as i32,
        duration_seconds: if kind == pb::CallEventKind::Hangup {
            42
        } else {
            0
        },
        release_direction: pb::ReleaseDirection::Callee as i32,
        release_cause: 16,
        recording_url: if kind == pb::CallEventKind::RecordingReady {
            "https://rec.example/1.wav".into()
        } else {
            String::new()
        },
        ..Default::default()
    };
    let mut seqs = vec![];
    for k in [
        pb::CallEventKind::Ringing,
        pb::CallEventKind::Answered,
        pb::CallEventKind::Hangup,
        pb::CallEventKind::RecordingReady,
    ] {
        let a = s
            .calls()
            .report_call_event(report(k))
            .await
            .unwrap()
            .into_inner();
        assert!(!a.duplicate);
        seqs.push(a.sequence);
    }
    let again = s
        .calls()
        .report_call_event(report(pb::CallEventKind::Hangup))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence, seqs[2]);

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            binding_id: b.binding_id.clone(),
            ..after(0)
        },
    )
    .await;
    let kinds: Vec<String> = take(&mut st, 7).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "binding.created",
            "binding.converted",
            "call.incoming",
            "call.ringing",
            "call.answered",
            "call.hangup",
            "call.recording_ready"
        ]
    );

    let err = s
        .calls()
        .report_call_event(pb::ReportCallEventRequest {
            call_id: "nope".into(),
            kind: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&err, tonic::Code::NotFound, "CALL_NOT_FOUND");
    let err = s
        .calls()
        .report_call_event(pb::ReportCallEventRequest::default())
        .await
        .unwrap_err();
    let mut f = violated_fields(&err);
    f.sort();
    assert_eq!(f, ["call_id", "kind"]);
}
