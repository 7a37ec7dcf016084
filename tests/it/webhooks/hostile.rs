//! Hostile and out-of-range push fields (issue 7 items 7 and 10): NUL and control characters,
//! oversize ids and texts, negative durations, out-of-range causes and times. Each gets 400 with
//! the precise reason and stores nothing; generous but valid carrier values are stored.

use serde_json::{Value, json};

use super::{latest, post};
use crate::carriers::{ALI_TOKEN, NX_TOKEN, start};
use crate::support::fixtures::events_after;

pub(super) fn nx_old() -> Value {
    json!({"id": 100231, "businessId": "app-key-1", "customerBindId": "order-77", "bindId": "b-1",
      "callId": "old-1", "did": "85213135357", "caller": "85291112222", "callee": "85264654798",
      "callStatus": 1, "callStatusMsg": "normal", "duration": 61, "startAt": 1671420000,
      "answerAt": 1671420009, "hangupAt": 1671420070, "hangupCause": "NORMAL_CLEARING",
      "hangupCode": 16, "hangup": 1, "recordFile": "", "ext": "parcel 77"})
}

pub(super) fn nx_new() -> Value {
    json!({"bindId": "b-2", "customerBindId": "order-78", "callId": "new-1", "caller": "+85291112222",
      "did": "", "didX": "85213135313", "didY": "85213135356", "callee": "85264654798",
      "pnsType": "xyb", "callStatus": "1", "callStatusMsg": "Call Connected", "ext": "parcel 78",
      "legList": [
        {"callType": 1, "caller": "85291112222", "callee": "85213135313", "callStartAt": 1727400000,
         "callRingAt": 0, "callAnswerAt": 1727400001, "callFinishAt": 1727400095, "duration": 94,
         "callRecordFile": "", "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16},
        {"callType": 2, "caller": "85213135356", "callee": "85264654798", "callStartAt": 1727400010,
         "callRingAt": 1727400012, "callAnswerAt": 1727400020, "callFinishAt": 1727400095,
         "duration": 75, "callRecordFile": "https://remote.record.nxcloud.com/pns/20240927/b.mp3",
         "hangupType": 1, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16}]})
}

pub(super) fn nx_error_push() -> Value {
    json!({"code": 10013, "msg": "binding not exist", "requestId": "1843537768371720192",
      "data": {"action": "queryAXB", "requestParams": {"caller": "+85290000000", "did": "85213135357"},
               "occurrenceTime": "2024-10-08 12:00:00"}})
}

pub(super) fn ali_item(call_id: &str) -> Value {
    json!({"pool_key": "FC100000000000001", "sub_id": 1000000820000605_i64, "call_id": call_id,
      "phone_no": "13800000001", "secret_no": "17000000001", "peer_no": "13900000002",
      "call_type": 1, "call_time": "2019-03-28 20:01:05", "call_out_time": "2019-03-28 20:01:06",
      "ring_time": "2019-03-28 20:01:12", "start_time": "2019-03-28 20:01:12",
      "release_time": "2019-03-28 20:02:42", "release_dir": 2, "release_cause": 16,
      "record_url": "", "out_id": "order-9"})
}

/// A three-item Aliyun batch whose last item is `bad`.
fn ali_batch(bad: Value) -> Value {
    json!([ali_item("ok-1"), ali_item("ok-2"), bad])
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the template")) = value;
    v
}

#[tokio::test]
async fn hostile_push_fields_get_400_with_the_reason_and_store_nothing() {
    let e = start(None, None, 2000).await;
    let nx = format!("/webhooks/nxcloud/{NX_TOKEN}");
    let ali = format!("/webhooks/aliyun/{ALI_TOKEN}");
    let long = |n: usize| "7".repeat(n);
    let cases: Vec<(&str, Value, &str)> = vec![
        // Item 7: NUL / control characters and oversize values in stored fields.
        (
            &nx,
            with(nx_new(), "/callId", json!("abc\u{0}def")),
            "callId must not contain NUL characters",
        ),
        (
            &nx,
            with(nx_old(), "/callId", json!("abc\u{0}def")),
            "callId must not contain NUL characters",
        ),
        (
            &nx,
            with(nx_new(), "/ext", json!("parcel\u{0}77")),
            "ext must not contain NUL characters",
        ),
        (
            &nx,
            with(nx_new(), "/callId", json!(long(3000))),
            "callId must be at most 128 characters",
        ),
        (
            &nx,
            with(nx_old(), "/customerBindId", json!("order\u{1b}[31m")),
            "customerBindId must not contain control characters (found U+001B)",
        ),
        (
            &nx,
            with(nx_old(), "/bindId", json!(long(200))),
            "bindId must be at most 128 characters",
        ),
        (
            &nx,
            with(nx_old(), "/caller", json!("8529\u{0}1112222")),
            "caller must not contain NUL characters",
        ),
        (
            &nx,
            with(nx_old(), "/hangupCause", json!("x".repeat(5000))),
            "hangupCause must be at most 1024 characters",
        ),
        (
            &nx,
            with(
                nx_new(),
                "/legList/1/callRecordFile",
                json!(format!("https://r/{}\u{7}", "a".repeat(10))),
            ),
            "legList[1]: callRecordFile must not contain control characters (found U+0007)",
        ),
        (
            &nx,
            with(
                nx_new(),
                "/legList/1/callRecordFile",
                json!(format!("https://r/{}", "a".repeat(9000))),
            ),
            "legList[1]: callRecordFile must be at most 8192 characters",
        ),
        (
            &nx,
            with(nx_new(), "/callId", json!({"id": 1})),
            "callId is not a string or a number",
        ),
        (
            &nx,
            with(nx_error_push(), "/requestId", json!("18435\u{0}")),
            "error push: requestId must not contain NUL characters",
        ),
        (
            &nx,
            with(nx_error_push(), "/msg", json!("m\u{0}")),
            "error push: msg must not contain NUL characters",
        ),
        (
            &ali,
            ali_batch(ali_item("bad\u{0}id")),
            "item 2: call_id must not contain NUL characters",
        ),
        (
            &ali,
            ali_batch(ali_item(&long(3000))),
            "item 2: call_id must be at most 128 characters",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/out_id", json!("o\u{0}"))),
            "item 2: out_id must not contain NUL characters",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/out_id", json!(long(3000)))),
            "item 2: out_id must be at most 256 characters",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/pool_key", json!(long(3000)))),
            "item 2: pool_key must be at most 128 characters",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/record_url", json!("https://r/\nx"))),
            "item 2: record_url must not contain control characters (found U+000A)",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/secret_no", json!("1700\u{0}"))),
            "item 2: secret_no must not contain NUL characters",
        ),
        // Item 10: numeric ranges.
        (
            &nx,
            with(nx_old(), "/duration", json!(-1)),
            "duration must not be negative",
        ),
        (
            &nx,
            with(nx_old(), "/duration", json!("-1")),
            "duration must not be negative",
        ),
        (
            &nx,
            with(nx_new(), "/legList/1/duration", json!(-5)),
            "legList[1]: duration must not be negative",
        ),
        (
            &nx,
            with(nx_old(), "/duration", json!(i64::MAX)),
            "duration must be at most 2678400 seconds",
        ),
        (
            &nx,
            with(nx_old(), "/hangupCode", json!(-1)),
            "hangupCode must be a cause code (0-999)",
        ),
        (
            &nx,
            with(nx_new(), "/legList/0/hangupCode", json!(4096)),
            "legList[0]: hangupCode must be a cause code (0-999)",
        ),
        (
            &nx,
            with(nx_old(), "/startAt", json!(i64::MAX)),
            "startAt is out of range (1970-01-01 to 9999-12-31)",
        ),
        (
            &nx,
            with(nx_new(), "/legList/0/callFinishAt", json!(-1727400095)),
            "legList[0]: callFinishAt is negative",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/release_cause", json!(-1))),
            "item 2: release_cause must be a cause code (0-999)",
        ),
        (
            &ali,
            ali_batch(with(
                ali_item("c3"),
                "/call_time",
                json!(9_000_000_000_000_000_000_i64),
            )),
            "item 2: call_time is out of range (1970-01-01 to 9999-12-31)",
        ),
        (
            &ali,
            ali_batch(with(ali_item("c3"), "/call_time", json!(-5))),
            "item 2: call_time is out of range (1970-01-01 to 9999-12-31)",
        ),
        (
            &ali,
            ali_batch(with(
                ali_item("c3"),
                "/release_time",
                json!("99999-01-01 00:00:00"),
            )),
            "item 2: release_time is neither yyyy-MM-dd HH:mm:ss nor epoch ms",
        ),
    ];
    let before = latest(&e.s).await;
    for (path, body, want) in cases {
        let (status, reply) = post(&e.s, path, &body.to_string()).await;
        assert_eq!(status, 400, "{want}: {reply}");
        assert_eq!(reply["msg"].as_str(), Some(want), "{reply}");
        assert_eq!(reply["code"], 400);
    }
    assert_eq!(latest(&e.s).await, before, "nothing stored");
}

#[tokio::test]
async fn generous_but_valid_carrier_values_are_stored() {
    let e = start(None, None, 2000).await;
    let nx = format!("/webhooks/nxcloud/{NX_TOKEN}");
    let ali = format!("/webhooks/aliyun/{ALI_TOKEN}");
    // An OSS URL signed with an STS token is long; ids at their documented maximum; a
    // multi-line CJK ext at the gRPC ext limit.
    let sts_url = format!(
        "https://secret-record.oss-cn-hangzhou.aliyuncs.com/record/1.mp3?Expires=1714219362&OSSAccessKeyId=STS.NTexample&Signature=abc%3D&security-token={}",
        "CAIS".repeat(500)
    );
    let call_id_100 = format!("{}^{}", "1".repeat(50), "2".repeat(49));
    let ext = format!("包裹\n{}", "件".repeat(509));
    let before = latest(&e.s).await;
    let item = with(
        with(
            with(ali_item(&call_id_100), "/record_url", json!(sts_url)),
            "/out_id",
            json!("o".repeat(128)),
        ),
        "/release_time",
        json!("2019-03-28 20:02:42"),
    );
    let (status, reply) = post(&e.s, &ali, &json!([item]).to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let nx_body = with(
        with(nx_new(), "/ext", json!(ext)),
        "/callId",
        json!("f".repeat(128)),
    );
    let (status, reply) = post(&e.s, &nx, &nx_body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    // An unread field may carry anything: it is kept, escaped, in the raw JSON only.
    let (status, reply) = post(
        &e.s,
        &ali,
        &json!([with(ali_item("raw-nul"), "/pool_key", json!("FC1"))
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("city".into(), json!("杭\u{0}州"));
                Value::Object(o)
            })])
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let evs = events_after(&e.s, before).await;
    let kinds: Vec<(&str, &str)> = evs
        .iter()
        .map(|e| (e.call_id.as_str(), e.kind.as_str()))
        .collect();
    let f128 = "f".repeat(128);
    assert_eq!(
        kinds,
        [
            (call_id_100.as_str(), "call.hangup"),
            (f128.as_str(), "call.hangup"),
            (f128.as_str(), "call.recording_ready"),
            ("raw-nul", "call.hangup"),
        ]
    );
    assert_eq!(evs[0].detail["recording_url"], json!(sts_url));
    assert_eq!(evs[0].out_id, "o".repeat(128));
    assert_eq!(evs[1].ext, ext);
    assert_eq!(evs[3].detail["raw"]["city"], json!("杭\u{0}州"));
}
