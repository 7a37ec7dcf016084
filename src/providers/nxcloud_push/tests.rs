//! The reference (`nxcloud.md` §4) gives field tables and quotes values from NXCloud's examples
//! but not the example bodies themselves, so these payloads are built from those tables and
//! values (`+62895001924553`, `"0193"`, `"x,2233,0193"`, `NORMAL_CLEARING`/16, the
//! `remote.record.nxcloud.com` URL, 10013 "binding not exist"). Numbers are fictitious.

use super::*;

/// Current format (AXEYB, Sep 2024): legs in seconds, `callStatus` a string, `+` on `caller`.
const NEW_FORMAT: &str = r#"{
  "bindId": "5a9b1c2d3e4f2251", "customerBindId": "order-7731", "callId": "8f14e45fceea167a5a36dedd4bea2543",
  "caller": "+62895001924553", "did": "", "didX": "62895004550551", "didY": "62895004550550",
  "extensionX": "0193", "callee": "62812000111222", "pnsType": "axeyb",
  "callStatus": "1", "callStatusMsg": "Call Connected", "ext": "{\"shop\":12}",
  "legList": [
    {"callType": 1, "caller": "62895001924553", "callee": "62895004550550",
     "callStartAt": 1727400000, "callRingAt": 0, "callAnswerAt": 1727400001, "callFinishAt": 1727400095,
     "duration": 94, "ringDuration": 0, "callRecordFile": "", "hangupType": 0,
     "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "uuid": "3c0e-a", "fsCallStatus": 1,
     "fsCallStatusMsg": "ok", "vosCallId": "abc%40vos", "allExtension": "x,2233,0193"},
    {"callType": 2, "caller": "62895004550551", "callee": "62812000111222",
     "callStartAt": 1727400010, "callRingAt": 1727400012, "callAnswerAt": 1727400020, "callFinishAt": 1727400095,
     "duration": 75, "ringDuration": 8,
     "callRecordFile": "https://remote.record.nxcloud.com/pns/20240927/3c0e-b.mp3",
     "hangupType": 1, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "uuid": "3c0e-b",
     "fsCallStatus": 1, "fsCallStatusMsg": "ok"}
  ]
}"#;

/// Current format, Sep-2 variant: no `callRingAt`, no `vosCallId`, no recording.
const NEW_FORMAT_SEP2: &str = r#"{
  "bindId": "77", "customerBindId": "c-1", "callId": "1834567890123456789",
  "caller": "85264654798", "did": "85213135313", "callee": "85254987987",
  "callStatus": "1", "callStatusMsg": "Call Connected", "ext": "",
  "legList": [
    {"callType": 1, "caller": "85264654798", "callee": "85213135313", "callStartAt": "1725250000",
     "callAnswerAt": 1725250001, "callFinishAt": 1725250030, "duration": 29, "callRecordFile": "",
     "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": "16"},
    {"callType": 2, "caller": "85213135313", "callee": "85254987987", "callStartAt": 1725250002,
     "callAnswerAt": 0, "callFinishAt": 1725250030, "duration": 0, "callRecordFile": "",
     "hangupType": 0, "hangupCause": "ORIGINATOR_CANCEL", "hangupCode": 487}
  ]
}"#;

/// Old flat format (Jan 2024 revision, with the extension fields).
const OLD_FORMAT: &str = r#"{
  "id": 100231, "businessId": "b-1", "customerBindId": "order-42", "bindId": "9001",
  "callId": "4f6d7a0c8b", "did": "85213135313", "caller": "85264654798", "callee": "85254987987",
  "callStatus": 1, "callStatusMsg": "normal", "duration": 61,
  "startAt": 1671420000, "answerAt": 1671420009, "hangupAt": 1671420070,
  "hangupCause": "NORMAL_CLEARING", "hangupCode": 16, "hangup": 1,
  "recordFile": "https://remote.record.nxcloud.com/pns/20221219/0b1c2d3e.mp3",
  "extensionCaller": "100024", "extensionCallee": ""
}"#;

const ERROR_PUSH: &str = r#"{
  "code": 10013, "msg": "binding not exist", "requestId": "1843537768371720192",
  "data": {"action": "queryAXB", "requestParams": {"caller": "+85264654798", "did": "85213135313"},
           "occurrenceTime": "2024-10-08 12:00:00"}
}"#;

fn parse(s: &str) -> Vec<CallReport> {
    match parse_nxcloud_push(s.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("push rejected: {e}"),
    }
}

fn err(s: &str) -> String {
    match parse_nxcloud_push(s.as_bytes()) {
        Ok(r) => panic!("push accepted: {r:?}"),
        Err(PushError(e)) => e,
    }
}

#[test]
fn new_format_yields_a_hangup_and_a_recording_from_the_legs() {
    let reports = parse(NEW_FORMAT);
    assert_eq!(reports.len(), 2);
    let h = &reports[0];
    assert_eq!(h.kind, Some(CallEventKind::Hangup));
    assert_eq!(h.provider, Some(Provider::Nxcloud));
    assert_eq!(h.call_id, "8f14e45fceea167a5a36dedd4bea2543");
    assert_eq!(h.leg, "");
    assert_eq!(h.provider_binding_id.as_deref(), Some("5a9b1c2d3e4f2251"));
    assert_eq!(h.customer_bind_id.as_deref(), Some("order-7731"));
    assert_eq!(h.caller.as_deref(), Some("62895001924553"));
    assert_eq!(h.called.as_deref(), Some("62895004550551"));
    assert_eq!(h.callee.as_deref(), Some("62812000111222"));
    assert_eq!(h.extension.as_deref(), Some("0193"));
    assert_eq!(h.ext.as_deref(), Some("{\"shop\":12}"));
    assert_eq!(h.call_at, Some(1_727_400_000_000));
    assert_eq!(h.ring_at, Some(1_727_400_012_000));
    assert_eq!(h.answer_at, Some(1_727_400_020_000));
    assert_eq!(h.end_at, Some(1_727_400_095_000));
    assert_eq!(h.duration_seconds, Some(75));
    assert_eq!(h.release_cause, Some(16));
    assert_eq!(h.release_reason.as_deref(), Some("NORMAL_CLEARING"));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Callee));
    let url = "https://remote.record.nxcloud.com/pns/20240927/3c0e-b.mp3";
    assert_eq!(h.recording_url.as_deref(), Some(url));
    assert_eq!(h.raw["pnsType"], "axeyb");

    let rec = &reports[1];
    assert_eq!(rec.kind, Some(CallEventKind::RecordingReady));
    assert_eq!(rec.recording_url.as_deref(), Some(url));
    assert_eq!(rec.call_id, h.call_id);
}

#[test]
fn new_format_without_ring_time_or_recording_yields_only_a_hangup() {
    let reports = parse(NEW_FORMAT_SEP2);
    assert_eq!(reports.len(), 1);
    let h = &reports[0];
    assert_eq!(h.kind, Some(CallEventKind::Hangup));
    assert_eq!(
        h.called.as_deref(),
        Some("85213135313"),
        "did when didX is absent"
    );
    assert_eq!(
        h.call_at,
        Some(1_725_250_000_000),
        "seconds sent as a string"
    );
    assert_eq!(h.ring_at, None);
    assert_eq!(h.answer_at, None, "B never answered (callAnswerAt 0)");
    assert_eq!(h.duration_seconds, Some(0));
    assert_eq!(h.release_cause, Some(487));
    assert_eq!(h.release_reason.as_deref(), Some("ORIGINATOR_CANCEL"));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Caller));
    assert_eq!(h.ext, None, "empty string is None");
    assert_eq!(h.recording_url, None);
}

#[test]
fn old_flat_format_yields_a_hangup_and_a_recording() {
    let reports = parse(OLD_FORMAT);
    assert_eq!(reports.len(), 2);
    let h = &reports[0];
    assert_eq!(h.kind, Some(CallEventKind::Hangup));
    assert_eq!(h.call_id, "4f6d7a0c8b");
    assert_eq!(h.provider_binding_id.as_deref(), Some("9001"));
    assert_eq!(h.customer_bind_id.as_deref(), Some("order-42"));
    assert_eq!(h.caller.as_deref(), Some("85264654798"));
    assert_eq!(h.called.as_deref(), Some("85213135313"));
    assert_eq!(h.callee.as_deref(), Some("85254987987"));
    assert_eq!(h.extension.as_deref(), Some("100024"));
    assert_eq!(h.call_at, Some(1_671_420_000_000));
    assert_eq!(h.answer_at, Some(1_671_420_009_000));
    assert_eq!(h.end_at, Some(1_671_420_070_000));
    assert_eq!(h.duration_seconds, Some(61));
    assert_eq!(h.release_cause, Some(16));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Callee));
    assert_eq!(reports[1].kind, Some(CallEventKind::RecordingReady));
    assert_eq!(reports[1].recording_url, h.recording_url);
}

#[test]
fn old_format_tolerates_strings_plus_and_missing_fields() {
    let body = r#"{"callId": 123456, "bindId": 9001, "caller": "+85264654798", "did": "85213135313",
        "callStatus": "2", "startAt": "1671420000", "answerAt": 0, "hangupAt": 1671420003,
        "duration": "0", "hangup": "0", "hangupCode": "17", "recordFile": ""}"#;
    let reports = parse(body);
    assert_eq!(reports.len(), 1, "empty recordFile: no recording report");
    let h = &reports[0];
    assert_eq!(h.call_id, "123456");
    assert_eq!(h.provider_binding_id.as_deref(), Some("9001"));
    assert_eq!(h.caller.as_deref(), Some("85264654798"));
    assert_eq!(h.call_at, Some(1_671_420_000_000));
    assert_eq!(h.answer_at, None);
    assert_eq!(h.release_cause, Some(17));
    assert_eq!(h.release_direction, Some(ReleaseDirection::Caller));
    assert_eq!(h.callee, None);
    assert_eq!(h.extension, None);
}

#[test]
fn error_push_yields_no_binding_keyed_by_request_id() {
    let reports = parse(ERROR_PUSH);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.kind, Some(CallEventKind::NoBinding));
    assert_eq!(r.call_id, "1843537768371720192");
    assert_eq!(r.leg, "");
    assert_eq!(r.caller.as_deref(), Some("85264654798"));
    assert_eq!(r.called.as_deref(), Some("85213135313"));
    // 2024-10-08 12:00:00 in Beijing = 04:00:00Z.
    assert_eq!(r.call_at, Some(1_728_360_000_000));
    assert_eq!(r.release_reason.as_deref(), Some("10013 binding not exist"));
    assert_eq!(r.release_cause, None);
    assert_eq!(r.raw["data"]["action"], "queryAXB");
}

#[test]
fn malformed_pushes_are_rejected_with_a_reason() {
    assert!(err("not json").starts_with("body is not JSON"));
    assert_eq!(err(r#"[{"callId":"1"}]"#), "body is not a JSON object");
    assert_eq!(err("{}"), "callId is missing");
    assert_eq!(err(r#"{"callId":"","bindId":"1"}"#), "callId is missing");
    assert_eq!(err(r#"{"bindId":"1","legList":[]}"#), "callId is missing");
    assert_eq!(
        err(r#"{"callId":"1","legList":{}}"#),
        "legList is not an array"
    );
    assert_eq!(
        err(r#"{"callId":"1","legList":[{"callType":2,"callStartAt":"soon"}]}"#),
        "legList[0]: callStartAt is not an integer"
    );
    assert_eq!(err(r#"{"callId":"1","startAt":-5}"#), "startAt is negative");
    assert_eq!(
        err(r#"{"code":10013,"data":{"action":"queryAXB"}}"#),
        "error push: requestId is missing"
    );
    assert_eq!(
        err(
            r#"{"code":10013,"requestId":"9","data":{"action":"queryAXB","occurrenceTime":"08/10/2024"}}"#
        ),
        "error push: occurrenceTime is not YYYY-MM-DD HH:MM:SS"
    );
}

#[test]
fn identical_pushes_share_a_dedupe_key_and_kinds_differ() {
    let a = parse(NEW_FORMAT);
    let b = parse(NEW_FORMAT);
    assert_eq!(a[0].dedupe_key(), b[0].dedupe_key());
    assert_eq!(a[1].dedupe_key(), b[1].dedupe_key());
    assert_ne!(a[0].dedupe_key(), a[1].dedupe_key());
    assert_eq!(
        a[0].dedupe_key(),
        "nxcloud|8f14e45fceea167a5a36dedd4bea2543|call.hangup|"
    );
    let e1 = parse(ERROR_PUSH);
    let e2 = parse(ERROR_PUSH);
    assert_eq!(e1[0].dedupe_key(), e2[0].dedupe_key());
}

#[test]
fn legs_without_call_types_fall_back_to_earliest_and_longest() {
    let body = r#"{"callId": "9", "caller": "+85264654798", "legList": [
        {"callStartAt": 100, "callAnswerAt": 0, "duration": 3, "hangupCode": 17, "hangupType": 1},
        {"callStartAt": 90, "callRingAt": 95, "callAnswerAt": 110, "callFinishAt": 130, "duration": 20,
         "callRecordFile": "https://remote.record.nxcloud.com/pns/x.mp3"}]}"#;
    let reports = parse(body);
    let h = &reports[0];
    assert_eq!(h.caller.as_deref(), Some("85264654798"), "top-level caller");
    assert_eq!(h.call_at, Some(90_000));
    assert_eq!(h.ring_at, Some(95_000));
    assert_eq!(h.answer_at, Some(110_000));
    assert_eq!(h.duration_seconds, Some(20));
    assert_eq!(h.release_cause, Some(17), "first leg");
    assert_eq!(h.release_direction, Some(ReleaseDirection::Callee));
    assert_eq!(reports.len(), 2, "recording from any leg");
    assert_eq!(
        err(r#"{"callId":"1","legList":[7]}"#),
        "legList[0] is not an object"
    );
}
