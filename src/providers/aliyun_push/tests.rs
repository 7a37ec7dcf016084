//! The reference (`aliyun.md` §7) gives field tables and a few sample values (`call_time`
//! `1553774465000` and `1629893489000`, `extension` `8011`, `call_type` `"1"` and `sub_id` as
//! strings in the HTTP samples, `control_msg` `NO_SUBS_EXIST`, `control_type` `CONTINUE`) but
//! not whole sample bodies, so these batches are built from those tables and values. Numbers
//! are fictitious. 1553774465000 ms = 2019-03-28 20:01:05 CST, the call these receipts share.

use super::*;

const CALL_MS: i64 = 1_553_774_465_000;

/// One call's five receipts in one push, plus receipts of types that must be skipped.
const MIXED_BATCH: &str = r#"[
  {"id": "1001", "pool_key": "FC100000000000001", "partner_key": "FC100000000000001", "sub_id": 1000000820000605,
   "call_id": "100000000000000000000000000000000001", "phone_no": "13800000001", "secret_no": "17000000000",
   "peer_no": "13900000002", "called_display_no": "17000000000", "call_type": 1,
   "call_time": "2019-03-28 20:01:05", "out_id": "order-9", "city": "杭州", "unconnected_cause": 0,
   "control_type": "CONTINUE", "control_msg": "OK"},
  {"phone_no": "13800000001", "secret_no": "17000000000", "peer_no": "13900000002", "call_type": "1",
   "call_id": "100000000000000000000000000000000001", "call_time": "2019-03-28 20:01:05",
   "pool_key": "FC100000000000001", "ring_time": "2019-03-28 20:01:12", "sub_id": "1000000820000605",
   "city": "杭州", "out_id": "order-9", "extension": "8011"},
  {"phone_no": "13800000001", "secret_no": "17000000000", "peer_no": "13900000002", "call_type": 1,
   "call_id": "100000000000000000000000000000000001", "call_time": "2019-03-28 20:01:05",
   "pool_key": "FC100000000000001", "ring_Time": "2019-03-28 20:01:12", "start_time": "2019-03-28 20:01:12",
   "sub_id": 1000000820000605, "out_id": "order-9", "extension": "8011"},
  {"pool_key": "FC100000000000001", "sub_id": 1000000820000605, "call_id": "100000000000000000000000000000000001",
   "phone_no": "13800000001", "secret_no": "17000000000", "peer_no": "13900000002",
   "called_display_no": "17000000000", "call_type": 1, "call_time": "2019-03-28 20:01:05",
   "call_out_time": "2019-03-28 20:01:06", "ring_time": "2019-03-28 20:01:12",
   "free_ring_time": "2019-03-28 20:01:08", "start_time": "2019-03-28 20:01:12",
   "release_time": "2019-03-28 20:02:42", "release_dir": 2, "release_cause": 16, "unconnected_cause": 0,
   "sms_number": 0, "record_url": "https://secret.example.aliyuncs.com/rec/0001.mp3", "ring_record_url": "",
   "out_id": "order-9", "control_msg": "OK", "extension": "8011"},
  {"pool_key": "FC100000000000001", "sub_id": "1000000820000605",
   "call_id": "100000000000000000000000000000000001", "call_time": 1553774465000, "out_id": "order-9"},
  {"callId": "100000000000000000000000000000000001", "bizDuration": 90000, "partnerKey": "FC100000000000001",
   "secretNo": "17000000000", "statusCode": "21050000", "sentences": []},
  {"id": 7, "pool_key": "FC100000000000001", "sub_id": 1000000820000605, "send_no": "13800000001",
   "secret_no": "17000000000", "receive_no": "13900000002", "sms_content": "hi", "partner_key": "FC1",
   "start_time": "2019-03-28 20:05:00", "sms_type": 1},
  {"secret_no": "17000000000", "city": "杭州", "partner_key": "FC1", "operating_time": "2019-03-28 20:00:00",
   "status": 1, "vendor": 1}
]"#;

fn parse(s: &str) -> Vec<CallReport> {
    match parse_aliyun_push(s.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("push rejected: {e}"),
    }
}

fn err(s: &str) -> String {
    match parse_aliyun_push(s.as_bytes()) {
        Ok(r) => panic!("push accepted: {r:?}"),
        Err(PushError(e)) => e,
    }
}

fn kinds(reports: &[CallReport]) -> Vec<CallEventKind> {
    reports.iter().filter_map(|r| r.kind).collect()
}

#[test]
fn mixed_batch_yields_one_report_per_call_receipt_in_order() {
    use CallEventKind::*;
    let reports = parse(MIXED_BATCH);
    let expected = [Incoming, Ringing, Answered, Hangup, RecordingReady];
    assert_eq!(
        kinds(&reports),
        expected,
        "ASR, SMS and number receipts skipped"
    );
    for r in &reports {
        assert_eq!(r.provider, Some(Provider::Aliyun));
        assert_eq!(r.call_id, "100000000000000000000000000000000001");
        assert_eq!(r.leg, "");
        assert_eq!(r.call_at, Some(CALL_MS), "datetime and ms agree");
        assert_eq!(r.carrier_pool_key.as_deref(), Some("FC100000000000001"));
        assert_eq!(r.out_id.as_deref(), Some("order-9"));
        let binding = r.provider_binding_id.as_deref();
        assert_eq!(binding, Some("1000000820000605"), "sub_id number or string");
    }
    // call_type 1: peer_no called phone_no.
    let start = &reports[0];
    assert_eq!(start.caller.as_deref(), Some("13900000002"));
    assert_eq!(start.callee.as_deref(), Some("13800000001"));
    assert_eq!(start.called.as_deref(), Some("17000000000"));
    assert_eq!(start.raw["control_type"], "CONTINUE");
    assert_eq!(reports[1].ring_at, Some(CALL_MS + 7_000));
    assert_eq!(reports[1].extension.as_deref(), Some("8011"));
    assert_eq!(reports[2].ring_at, Some(CALL_MS + 7_000), "ring_Time");
    assert_eq!(reports[2].answer_at, Some(CALL_MS + 7_000));
}

#[test]
fn secret_report_carries_the_cdr_and_its_recording_url_without_a_recording_event() {
    let reports = parse(MIXED_BATCH);
    let h = &reports[3];
    assert_eq!(h.kind, Some(CallEventKind::Hangup));
    assert_eq!(h.ring_at, Some(CALL_MS + 7_000));
    assert_eq!(h.answer_at, Some(CALL_MS + 7_000));
    assert_eq!(h.end_at, Some(CALL_MS + 97_000));
    assert_eq!(h.duration_seconds, Some(90));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Callee));
    assert_eq!(h.release_cause, Some(16));
    assert_eq!(h.release_reason, None);
    let url = "https://secret.example.aliyuncs.com/rec/0001.mp3";
    assert_eq!(h.recording_url.as_deref(), Some(url));
    // Only the SecretRecording item yields the recording event, with no URL (fetched by API).
    let rec: Vec<_> = reports
        .iter()
        .filter(|r| r.kind == Some(CallEventKind::RecordingReady))
        .collect();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].recording_url, None);
}

#[test]
fn unanswered_secret_report_has_no_answer_time_and_zero_duration() {
    let body = r#"[{"call_id": "c9", "sub_id": 5, "phone_no": "13800000001", "secret_no": "17000000000",
        "peer_no": "13900000002", "call_type": 0, "call_time": "2019-03-28 20:01:05",
        "start_time": "2019-03-28 20:01:12", "release_time": "2019-03-28 20:01:12",
        "release_dir": 1, "release_cause": "19", "unconnected_cause": 4, "record_url": ""}]"#;
    let h = &parse(body)[0];
    assert_eq!(h.kind, Some(CallEventKind::Hangup));
    assert_eq!(
        h.caller.as_deref(),
        Some("13800000001"),
        "call_type 0: phone_no called"
    );
    assert_eq!(h.callee.as_deref(), Some("13900000002"));
    assert_eq!(h.answer_at, None);
    assert_eq!(h.duration_seconds, Some(0));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Caller));
    assert_eq!(h.release_cause, Some(19));
    assert_eq!(
        h.release_reason.as_deref(),
        Some("unconnected_cause 4: other")
    );
    assert_eq!(h.recording_url, None);
}

#[test]
fn start_report_without_binding_is_no_binding() {
    let body = r#"{"call_id": "c1", "phone_no": "13800000001", "secret_no": "17000000000",
        "peer_no": "13900000002", "call_type": 1, "call_time": "2019-03-28 20:01:05",
        "control_msg": "NO_SUBS_EXIST"}"#;
    let reports = parse(body);
    assert_eq!(
        kinds(&reports),
        [CallEventKind::NoBinding],
        "single object = batch of one"
    );
    assert_eq!(reports[0].provider_binding_id, None);
    let by_cause = r#"[{"call_id": "c2", "phone_no": "13800000001", "call_type": 0,
        "unconnected_cause": "2", "control_type": "IVR"}]"#;
    let r = &parse(by_cause)[0];
    assert_eq!(r.kind, Some(CallEventKind::NoBinding));
    assert_eq!(
        r.release_reason.as_deref(),
        Some("unconnected_cause 2: no binding")
    );
}

#[test]
fn recording_accepts_subs_id_and_datetime_and_pickup_accepts_ring_time_spellings() {
    let body = r#"[
      {"pool_key": "FC1", "subs_id": 1000000820000605, "call_id": "c3", "call_time": "1629893489000"},
      {"pool_key": "FC1", "subs_id": "77", "call_id": "c4", "call_time": "2019-03-28 20:01:05"},
      {"call_id": "c5", "phone_no": "13800000001", "call_type": 1, "ringTime": "2019-03-28 20:01:12",
       "start_time": "2019-03-28 20:01:12"},
      {"call_id": "c6", "phone_no": "13800000001", "call_type": 1, "ringTime": "2019-03-28 20:01:12"}
    ]"#;
    let r = parse(body);
    use CallEventKind::*;
    assert_eq!(
        kinds(&r),
        [RecordingReady, RecordingReady, Answered, Ringing]
    );
    assert_eq!(
        r[0].provider_binding_id.as_deref(),
        Some("1000000820000605")
    );
    assert_eq!(r[0].call_at, Some(1_629_893_489_000));
    assert_eq!(r[1].provider_binding_id.as_deref(), Some("77"));
    assert_eq!(r[1].call_at, Some(CALL_MS));
    assert_eq!(r[2].ring_at, Some(CALL_MS + 7_000));
    assert_eq!(r[3].ring_at, Some(CALL_MS + 7_000));
}

#[test]
fn a_carried_type_decides_and_sms_records_are_skipped() {
    let body = r#"[
      {"type": "SecretRecording", "call_id": "c7", "phone_no": "13800000001", "call_time": 1553774465000},
      {"message_type": "SecretAsrReport", "call_id": "c7", "call_type": 0},
      {"type": "personal", "call_id": "c8", "phone_no": "13800000001", "call_type": 0},
      {"call_id": "c9", "phone_no": "13800000001", "call_type": 2, "release_time": "2019-03-28 20:01:05"}
    ]"#;
    let r = parse(body);
    assert_eq!(
        kinds(&r),
        [CallEventKind::RecordingReady, CallEventKind::Incoming]
    );
    assert_eq!(parse("[]"), Vec::new());
}

#[test]
fn malformed_pushes_are_rejected_with_a_reason() {
    assert!(err("{not json").starts_with("body is not JSON"));
    assert_eq!(err("42"), "body is neither a JSON array nor an object");
    assert_eq!(err(r#"[{"call_id":"a"}, 5]"#), "item 1: not a JSON object");
    let no_id = r#"[{"call_id":"a","call_time":1},{"call_id":"b"},
        {"phone_no":"13800000001","call_type":0,"release_time":"2019-03-28 20:01:05"}]"#;
    assert_eq!(err(no_id), "item 2: call_id is missing");
    assert_eq!(
        err(r#"[{"type":"SecretRecording","call_id":""}]"#),
        "item 0: call_id is missing"
    );
    assert_eq!(
        err(r#"[{"call_id":"a","ring_time":"28/03/2019"}]"#),
        "item 0: ring_time is neither yyyy-MM-dd HH:mm:ss nor epoch ms"
    );
    assert_eq!(
        err(r#"[{"call_id":"a","call_type":"caller"}]"#),
        "item 0: call_type is not an integer"
    );
}

#[test]
fn identical_pushes_share_a_dedupe_key_and_kinds_differ() {
    let a = parse(MIXED_BATCH);
    let b = parse(MIXED_BATCH);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.dedupe_key(), y.dedupe_key());
    }
    let mut keys: Vec<String> = a.iter().map(CallReport::dedupe_key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5, "one key per kind on the same call");
    let hangup = "aliyun|100000000000000000000000000000000001|call.hangup|";
    assert_eq!(a[3].dedupe_key(), hangup);
}
