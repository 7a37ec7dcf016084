//! Property tests: whatever NXCloud (or anyone holding the URL) sends, the parser does not
//! panic, and either rejects the push with a short printable reason (→ 400) or returns reports
//! that keep every bound; valid CDRs with values anywhere inside the bounds are accepted as sent.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::parse_nxcloud_push;
use crate::domain::call::CallEventKind;
use crate::providers::push_fields::arb::{leaf, object, reason_is_bounded, value, within_bounds};

const KEYS: &[&str] = &[
    "bindId",
    "customerBindId",
    "callId",
    "caller",
    "did",
    "didX",
    "didY",
    "extensionX",
    "extensionCaller",
    "callee",
    "pnsType",
    "callStatus",
    "callStatusMsg",
    "ext",
    "legList",
    "startAt",
    "answerAt",
    "hangupAt",
    "duration",
    "hangupCause",
    "hangupCode",
    "hangup",
    "recordFile",
    "code",
    "msg",
    "requestId",
    "data",
];
const LEG_KEYS: &[&str] = &[
    "callType",
    "caller",
    "callee",
    "callStartAt",
    "callRingAt",
    "callAnswerAt",
    "callFinishAt",
    "duration",
    "callRecordFile",
    "hangupType",
    "hangupCause",
    "hangupCode",
    "uuid",
];
const DATA_KEYS: &[&str] = &["action", "requestParams", "occurrenceTime", "caller", "did"];

fn new_cdr() -> Value {
    json!({"bindId": "5a9b1c2d", "customerBindId": "order-1", "callId": "8f14e45f", "caller": "+62895001924553",
      "didX": "62895004550551", "extensionX": "0193", "callee": "62812000111222", "callStatusMsg": "ok",
      "ext": "e", "legList": [
        {"callType": 1, "caller": "62895001924553", "callStartAt": 1727400000, "callFinishAt": 1727400095,
         "duration": 94, "callRecordFile": "", "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16},
        {"callType": 2, "callee": "62812000111222", "callStartAt": 1727400010, "callRingAt": 1727400012,
         "callAnswerAt": 1727400020, "callFinishAt": 1727400095, "duration": 75,
         "callRecordFile": "https://remote.record.nxcloud.com/pns/b.mp3", "hangupType": 1, "hangupCode": 16}]})
}

fn old_cdr() -> Value {
    json!({"customerBindId": "order-42", "bindId": "9001", "callId": "4f6d7a0c8b", "did": "85213135313",
      "caller": "85264654798", "callee": "85254987987", "callStatusMsg": "normal", "duration": 61,
      "startAt": 1671420000, "answerAt": 1671420009, "hangupAt": 1671420070, "hangupCause": "NORMAL_CLEARING",
      "hangupCode": 16, "hangup": 1, "recordFile": "https://r/0b.mp3", "extensionCaller": "100024", "ext": "x"})
}

fn error_push() -> Value {
    json!({"code": 10013, "msg": "binding not exist", "requestId": "1843537768371720192",
      "data": {"action": "queryAXB", "requestParams": {"caller": "+85264654798", "did": "85213135313"},
               "occurrenceTime": "2024-10-08 12:00:00"}})
}

/// JSON pointers of every field of the three templates.
const POINTERS: &[&str] = &[
    "/bindId",
    "/customerBindId",
    "/callId",
    "/caller",
    "/did",
    "/didX",
    "/extensionX",
    "/extensionCaller",
    "/callee",
    "/callStatusMsg",
    "/ext",
    "/duration",
    "/startAt",
    "/answerAt",
    "/hangupAt",
    "/hangupCause",
    "/hangupCode",
    "/hangup",
    "/recordFile",
    "/legList",
    "/legList/0",
    "/legList/1/callType",
    "/legList/1/callee",
    "/legList/1/callStartAt",
    "/legList/1/callRingAt",
    "/legList/1/callAnswerAt",
    "/legList/1/callFinishAt",
    "/legList/1/duration",
    "/legList/1/callRecordFile",
    "/legList/1/hangupType",
    "/legList/1/hangupCode",
    "/legList/0/hangupCause",
    "/legList/0/caller",
    "/code",
    "/msg",
    "/requestId",
    "/data",
    "/data/requestParams",
    "/data/requestParams/caller",
    "/data/requestParams/did",
    "/data/occurrenceTime",
];

/// A valid push with a few fields replaced by hostile values.
fn mutated() -> impl Strategy<Value = Value> {
    let template = prop_oneof![Just(new_cdr()), Just(old_cdr()), Just(error_push())];
    let edits = prop::collection::vec((prop::sample::select(POINTERS), leaf()), 1..4);
    (template, edits).prop_map(|(mut v, edits)| {
        for (ptr, new) in edits {
            if let Some(slot) = v.pointer_mut(ptr) {
                *slot = new;
            }
        }
        v
    })
}

fn any_push() -> impl Strategy<Value = Value> {
    let leg = object(LEG_KEYS, leaf());
    let data = object(DATA_KEYS, prop_oneof![leaf(), object(DATA_KEYS, leaf())]);
    prop_oneof![
        4 => mutated(),
        2 => value(KEYS),
        2 => (object(KEYS, leaf()), prop::collection::vec(leg, 0..4), leaf()).prop_map(|(mut o, legs, id)| {
            o["legList"] = Value::Array(legs);
            o["callId"] = id;
            o
        }),
        1 => (object(KEYS, leaf()), data).prop_map(|(mut o, d)| {
            o["data"] = d;
            o
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_push_is_rejected_with_a_reason_or_parsed_within_bounds(push in any_push()) {
        let body = serde_json::to_vec(&push).expect("serialisable");
        match parse_nxcloud_push(&body) {
            Ok(reports) => {
                prop_assert!(!reports.is_empty());
                for r in &reports {
                    prop_assert_eq!(within_bounds(r), Ok(()));
                }
            }
            Err(e) => prop_assert!(reason_is_bounded(&e.0), "reason: {:?}", e.0),
        }
    }

    #[test]
    fn any_bytes_are_rejected_with_a_reason_or_parsed_within_bounds(
        body in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        match parse_nxcloud_push(&body) {
            Ok(reports) => for r in &reports {
                prop_assert_eq!(within_bounds(r), Ok(()));
            },
            Err(e) => prop_assert!(reason_is_bounded(&e.0), "reason: {:?}", e.0),
        }
    }

    #[test]
    fn valid_cdrs_are_accepted_as_sent(
        call_id in "[0-9a-f]{1,128}",
        bind_id in "[0-9a-zA-Z]{1,128}",
        ext in "(\\PC|\n|\t){0,512}",
        caller in "\\+?[0-9]{5,20}",
        reason in "[A-Z_ ]{0,200}",
        duration in 0i64..=86_400,
        code in 0i64..=999,
        start in 946_684_800i64..4_102_444_800,
        url_len in 0usize..4000,
    ) {
        let url = format!("https://remote.record.nxcloud.com/pns/{}.mp3", "a".repeat(url_len));
        let push = json!({"bindId": bind_id, "callId": call_id, "caller": caller, "ext": ext,
            "callStatusMsg": reason, "legList": [{"callType": 2, "callStartAt": start,
            "callFinishAt": start + duration, "duration": duration, "hangupCode": code,
            "callRecordFile": url}]});
        let reports = parse_nxcloud_push(&serde_json::to_vec(&push).expect("json"))
            .map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(reports.len(), 2);
        let h = &reports[0];
        prop_assert_eq!(h.kind, Some(CallEventKind::Hangup));
        prop_assert_eq!(&h.call_id, &call_id);
        prop_assert_eq!(h.provider_binding_id.as_deref(), Some(bind_id.as_str()));
        prop_assert_eq!(h.caller.as_deref(), Some(caller.trim_start_matches('+')));
        prop_assert_eq!(h.ext.as_deref(), Some(ext.trim()).filter(|e| !e.is_empty()));
        prop_assert_eq!(h.duration_seconds, Some(duration));
        prop_assert_eq!(h.release_cause, Some(code as i32));
        prop_assert_eq!(h.call_at, Some(start * 1000));
        prop_assert_eq!(h.recording_url.as_deref(), Some(url.as_str()));
    }
}
