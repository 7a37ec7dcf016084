//! Aliyun HTTP batch push (`reference/aliyun.md` §7) → [`CallReport`]s.
//!
//! The body is a JSON array of receipts (a single object is taken as a batch of one). One URL
//! receives every message type, and the reference documents no type field inside an HTTP item
//! (each type is subscribed separately in the console), so each item's type is:
//!
//! 1. **Carried**: if the item has `type`, `message_type`, `messageType` or `MessageType` whose
//!    value is one of the §7.1 MessageType names, that name decides (a name other than the five
//!    call types below means "skip"). Any other value is ignored and the shape decides.
//! 2. **Inferred from the fields present** (the §7.3–7.10 tables), first match wins:
//!    - no snake_case call field at all (`call_id`, `phone_no`, `peer_no`, `call_type`,
//!      `call_time`, `release_time`, a ring time, `subs_id`) → not a call receipt, skipped. This
//!      covers `SecretAsrReport`/`SecretExceptionPhoneReport` (camelCase keys),
//!      `SecretSmsIntercept` (`send_no`/`receive_no`), `NumberManagementReport`
//!      (`operating_time`) and anything unknown;
//!    - `release_time`, `release_dir`, `release_cause`, `call_out_time` or `record_url` →
//!      `SecretReport` (not `unconnected_cause`: the HTTP `SecretStartReport` has it too);
//!    - `start_time` → `SecretPickUpReport`;
//!    - `ring_time`/`ring_Time`/`ringTime` → `SecretRingReport`;
//!    - `phone_no`, `secret_no`, `peer_no` or `call_type` → `SecretStartReport`;
//!    - otherwise (only `call_id`, `call_time`, `sub_id`/`subs_id`, `pool_key`, `out_id`) →
//!      `SecretRecording`.
//!
//! Call items need a `call_id`; one without it rejects the whole push ("item N: call_id is
//! missing", N counted from 0), as does an item that is not an object or has a malformed value.
//! SMS records (`call_type` 2, 3 or 5, §7.2) are not call events and are skipped.
//! Every report has `leg` = "": Aliyun sends one receipt per type per call.
//!
//! Every field that is stored is bounded and checked (see `push_fields`): an item with one bad
//! value (NUL or control characters, an oversize id, an out-of-range time or cause) rejects the
//! whole batch ("item N: field rule"), and nothing of it is stored. Storing the other items would
//! acknowledge the batch (Aliyun never re-sends it) while silently dropping one receipt; a 400
//! is logged and shows in Aliyun's push statistics, and the bounds are far above any valid
//! Aliyun value (`call_id` is documented ≤ 100 characters), so valid batches never meet them.
//! Fields the parser does not read are kept only inside the raw JSON (escaped), never in a
//! column of their own.

use serde_json::Value;

use super::push_fields::{
    EXTENSION, ID, MAX_DURATION_SECONDS, OUT_ID, Obj, POOL_KEY, URL, cause, cst_or_ms, int, is,
    phone, text,
};
use crate::domain::Provider;
use crate::domain::call::{CallEventKind, CallReport, PushError, ReleaseDirection};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemType {
    Start,
    Ring,
    PickUp,
    Report,
    Recording,
}

const TYPE_KEYS: [&str; 4] = ["type", "message_type", "messageType", "MessageType"];
/// §7.1 MessageType names that are not call events.
const IGNORED_TYPES: [&str; 8] = [
    "SecretAsrReport",
    "SecretSmsIntercept",
    "SecretExceptionPhoneReport",
    "SmartLogisticsReport",
    "NumberManagementReport",
    "SecretBillingCallReport",
    "SecretBillingSmsReport",
    "SecretRingRecording",
];
const RING_KEYS: [&str; 3] = ["ring_time", "ring_Time", "ringTime"];
const CALL_KEYS: [&str; 10] = [
    "call_id",
    "phone_no",
    "peer_no",
    "call_type",
    "call_time",
    "release_time",
    "ring_time",
    "ring_Time",
    "ringTime",
    "subs_id",
];
/// Fields only `SecretReport` has (`unconnected_cause` is not one: the HTTP
/// `SecretStartReport` carries it too).
const REPORT_KEYS: [&str; 5] = [
    "release_time",
    "release_dir",
    "release_cause",
    "call_out_time",
    "record_url",
];
const START_KEYS: [&str; 4] = ["phone_no", "secret_no", "peer_no", "call_type"];
/// §7.2 `call_type` values of SMS records (2019 doc).
const SMS_CALL_TYPES: [i64; 3] = [2, 3, 5];
/// §7.2 `unconnected_cause` 2 and `control_msg` `NO_SUBS_EXIST`: no binding for the call.
const UNCONNECTED_NO_BINDING: i64 = 2;

/// Parses one Aliyun HTTP push body into one report per call receipt it carries.
pub fn parse_aliyun_push(body: &[u8]) -> Result<Vec<CallReport>, PushError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| PushError(format!("body is not JSON: {e}")))?;
    let items = match raw {
        Value::Array(items) => items,
        Value::Object(_) => vec![raw],
        _ => {
            return Err(PushError(
                "body is neither a JSON array nor an object".to_owned(),
            ));
        }
    };
    let mut reports = Vec::with_capacity(items.len());
    // Items are moved into their reports' `raw`, not cloned: a 1 MiB batch is ~2,500 of them.
    for (i, item) in items.into_iter().enumerate() {
        let at = |e: String| PushError(format!("item {i}: {e}"));
        let Value::Object(obj) = &item else {
            return Err(at("not a JSON object".to_owned()));
        };
        let Some(ty) = item_type(obj) else { continue };
        if let Some(mut r) = report(ty, obj).map_err(at)? {
            r.raw = item;
            reports.push(r);
        }
    }
    Ok(reports)
}

/// The item's type, carried or inferred (module doc); `None` = not a call receipt, skip.
fn item_type(obj: &Obj) -> Option<ItemType> {
    let carried = TYPE_KEYS
        .iter()
        .filter_map(|k| obj.get(*k).and_then(Value::as_str))
        .find_map(|name| match name {
            "SecretStartReport" => Some(Some(ItemType::Start)),
            "SecretRingReport" => Some(Some(ItemType::Ring)),
            "SecretPickUpReport" => Some(Some(ItemType::PickUp)),
            "SecretReport" => Some(Some(ItemType::Report)),
            "SecretRecording" => Some(Some(ItemType::Recording)),
            other if IGNORED_TYPES.contains(&other) => Some(None),
            _ => None,
        });
    if let Some(ty) = carried {
        return ty;
    }
    let has = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    if !has(&CALL_KEYS) {
        None
    } else if has(&REPORT_KEYS) {
        Some(ItemType::Report)
    } else if has(&["start_time"]) {
        Some(ItemType::PickUp)
    } else if has(&RING_KEYS) {
        Some(ItemType::Ring)
    } else if has(&START_KEYS) {
        Some(ItemType::Start)
    } else {
        Some(ItemType::Recording)
    }
}

/// One call receipt → its report (without `raw`, which the caller moves in); `Ok(None)` for an
/// SMS record.
fn report(ty: ItemType, obj: &Obj) -> Result<Option<CallReport>, String> {
    let call_id = text(obj, &["call_id"], ID)?.ok_or_else(|| "call_id is missing".to_owned())?;
    let call_type = int(obj, &["call_type"])?;
    if call_type.is_some_and(|t| SMS_CALL_TYPES.contains(&t)) {
        return Ok(None);
    }
    let phone_no = phone(obj, &["phone_no"])?;
    let peer_no = phone(obj, &["peer_no"])?;
    // §7.2: 0 = phone_no called peer_no, 1 = peer_no called phone_no. Other values (4 =
    // intercepted) and a missing call_type say nothing about direction, so neither is guessed.
    let (caller, callee) = match call_type {
        Some(0) => (phone_no, peer_no),
        Some(1) => (peer_no, phone_no),
        _ => (None, None),
    };
    let unconnected = int(obj, &["unconnected_cause"])?;
    let no_binding =
        is(obj, &["control_msg"], "NO_SUBS_EXIST") || unconnected == Some(UNCONNECTED_NO_BINDING);
    let kind = match ty {
        ItemType::Start if no_binding => CallEventKind::NoBinding,
        ItemType::Start => CallEventKind::Incoming,
        ItemType::Ring => CallEventKind::Ringing,
        ItemType::PickUp => CallEventKind::Answered,
        ItemType::Report => CallEventKind::Hangup,
        ItemType::Recording => CallEventKind::RecordingReady,
    };
    let start = cst_or_ms(obj, &["start_time"])?;
    let end = cst_or_ms(obj, &["release_time"])?;
    // §7.6: on a SecretReport `start_time` = `release_time` means "never connected", so it is
    // only an answer time when it comes before the release (or on a SecretPickUpReport).
    let answer_at = match (ty, start, end) {
        (ItemType::Report, Some(s), Some(e)) if s >= e => None,
        _ => start,
    };
    let duration_seconds = match (start, end) {
        (Some(s), Some(e)) if e >= s => Some((e - s) / 1000),
        _ => None,
    };
    if duration_seconds.is_some_and(|d| d > MAX_DURATION_SECONDS) {
        return Err(format!(
            "release_time is more than {MAX_DURATION_SECONDS} seconds after start_time"
        ));
    }
    let release_direction = match int(obj, &["release_dir"])? {
        Some(0) => Some(ReleaseDirection::Platform),
        Some(1) => Some(ReleaseDirection::Caller),
        Some(2) => Some(ReleaseDirection::Callee),
        _ => None,
    };
    Ok(Some(CallReport {
        provider: Some(Provider::Aliyun),
        kind: Some(kind),
        call_id,
        leg: String::new(),
        provider_binding_id: text(obj, &["sub_id", "subs_id"], ID)?,
        customer_bind_id: None,
        caller,
        called: phone(obj, &["secret_no"])?,
        callee,
        extension: text(obj, &["extension"], EXTENSION)?,
        call_at: cst_or_ms(obj, &["call_time"])?,
        ring_at: cst_or_ms(obj, &RING_KEYS)?,
        answer_at,
        end_at: end,
        duration_seconds,
        release_direction,
        release_cause: cause(obj, &["release_cause"])?,
        release_reason: unconnected.and_then(unconnected_reason),
        recording_url: text(obj, &["record_url"], URL)?,
        out_id: text(obj, &["out_id"], OUT_ID)?,
        ext: None,
        carrier_pool_key: text(obj, &["pool_key", "partner_key"], POOL_KEY)?,
        raw: Value::Null,
    }))
}

/// §7.2 `unconnected_cause` text; 0 (normal) gives none.
fn unconnected_reason(code: i64) -> Option<String> {
    let text = match code {
        0 => return None,
        1 => "blacklist intercept",
        2 => "no binding",
        3 => "call restriction",
        _ => "other",
    };
    Some(format!("unconnected_cause {code}: {text}"))
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
