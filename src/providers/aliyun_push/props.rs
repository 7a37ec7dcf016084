//! Property tests: whatever arrives at the Aliyun URL, the parser does not panic, and either
//! rejects the batch with a short printable reason (→ 400) or returns reports that keep every
//! bound; valid receipts with values anywhere inside the bounds are accepted as sent.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::parse_aliyun_push;
use crate::providers::push_fields::arb::{leaf, object, reason_is_bounded, value, within_bounds};

const KEYS: &[&str] = &[
    "type",
    "message_type",
    "MessageType",
    "id",
    "pool_key",
    "partner_key",
    "sub_id",
    "subs_id",
    "call_id",
    "phone_no",
    "secret_no",
    "peer_no",
    "called_display_no",
    "call_type",
    "call_time",
    "call_out_time",
    "ring_time",
    "ring_Time",
    "ringTime",
    "free_ring_time",
    "start_time",
    "release_time",
    "release_dir",
    "release_cause",
    "unconnected_cause",
    "record_url",
    "out_id",
    "control_msg",
    "extension",
    "city",
];

/// The fields that end up in a report.
const STORED: &[&str] = &[
    "call_id",
    "sub_id",
    "subs_id",
    "pool_key",
    "phone_no",
    "secret_no",
    "peer_no",
    "extension",
    "record_url",
    "out_id",
    "call_time",
    "ring_time",
    "start_time",
    "release_time",
    "release_cause",
];

fn report_item() -> Value {
    json!({"pool_key": "FC100000000000001", "sub_id": 1000000820000605_i64, "call_id": "ali-1",
      "phone_no": "13800000001", "secret_no": "17000000001", "peer_no": "13900000002",
      "call_type": 1, "call_time": "2019-03-28 20:01:05", "ring_time": "2019-03-28 20:01:12",
      "start_time": "2019-03-28 20:01:12", "release_time": "2019-03-28 20:02:42",
      "release_dir": 2, "release_cause": 16, "unconnected_cause": 0, "record_url": "https://r/1.mp3",
      "out_id": "order-9", "extension": "8011", "control_msg": "OK"})
}

fn recording_item() -> Value {
    json!({"pool_key": "FC100000000000001", "subs_id": "1000000820000605", "call_id": "ali-1",
      "call_time": 1553774465000_i64, "out_id": "order-9"})
}

/// A valid batch of one to three items with a few fields replaced by hostile values.
fn mutated() -> impl Strategy<Value = Value> {
    let item = prop_oneof![Just(report_item()), Just(recording_item())];
    // Half the edits hit a field that is stored, so each bound is probed often.
    let key = prop_oneof![prop::sample::select(KEYS), prop::sample::select(STORED),];
    let edits = prop::collection::vec((key, leaf()), 1..4);
    let edited = (item, edits).prop_map(|(mut v, edits)| {
        for (k, new) in edits {
            v[k] = new;
        }
        v
    });
    prop::collection::vec(edited, 1..4).prop_map(Value::Array)
}

fn any_push() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => mutated(),
        2 => prop::collection::vec(object(KEYS, leaf()), 0..6).prop_map(Value::Array),
        1 => object(KEYS, leaf()),
        1 => value(KEYS),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_batch_is_rejected_with_a_reason_or_parsed_within_bounds(push in any_push()) {
        let body = serde_json::to_vec(&push).expect("serialisable");
        match parse_aliyun_push(&body) {
            Ok(reports) => for r in &reports {
                prop_assert_eq!(within_bounds(r), Ok(()));
            },
            Err(e) => prop_assert!(reason_is_bounded(&e.0), "reason: {:?}", e.0),
        }
    }

    #[test]
    fn any_bytes_are_rejected_with_a_reason_or_parsed_within_bounds(
        body in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        match parse_aliyun_push(&body) {
            Ok(reports) => for r in &reports {
                prop_assert_eq!(within_bounds(r), Ok(()));
            },
            Err(e) => prop_assert!(reason_is_bounded(&e.0), "reason: {:?}", e.0),
        }
    }

    #[test]
    fn valid_receipts_are_accepted_as_sent(
        items in prop::collection::vec((
            "[0-9a-f^]{1,100}",
            1i64..i64::MAX,
            "[a-zA-Z0-9_-]{0,256}",
            0i64..=999,
            946_684_800_000i64..4_102_444_800_000,
            0i64..86_400_000,
            0usize..6000,
        ), 1..20)
    ) {
        let batch: Vec<Value> = items.iter().map(|(call_id, sub, out_id, cause, start, talk, url_len)| {
            json!({"pool_key": "FC100000000000001", "sub_id": sub, "call_id": call_id,
                "phone_no": "13800000001", "secret_no": "17000000001", "peer_no": "13900000002",
                "call_type": 0, "call_time": start, "start_time": start, "release_time": start + talk,
                "release_cause": cause, "record_url": format!("https://oss/{}", "s".repeat(*url_len)),
                "out_id": out_id})
        }).collect();
        let reports = parse_aliyun_push(&serde_json::to_vec(&batch).expect("json"))
            .map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(reports.len(), items.len());
        for (r, (call_id, sub, out_id, cause, start, talk, _)) in reports.iter().zip(&items) {
            prop_assert_eq!(&r.call_id, call_id);
            prop_assert_eq!(r.provider_binding_id.clone(), Some(sub.to_string()));
            prop_assert_eq!(r.out_id.as_deref(), Some(out_id.as_str()).filter(|o| !o.is_empty()));
            prop_assert_eq!(r.release_cause, Some(*cause as i32));
            prop_assert_eq!(r.answer_at, (*talk > 0).then_some(*start));
            prop_assert_eq!(r.duration_seconds, Some(talk / 1000));
            prop_assert_eq!(r.caller.as_deref(), Some("13800000001"));
        }
    }
}
