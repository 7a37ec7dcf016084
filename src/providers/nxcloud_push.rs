//! NXCloud pushes (`reference/nxcloud.md` §4) → [`CallReport`]s.
//!
//! One URL receives three shapes, told apart by shape because no push carries its type:
//! 1. **Error push** (§4.3): `code` plus a `data` object holding `action` or `requestParams`
//!    (no CDR has a `data` object) → one [`CallEventKind::NoBinding`].
//! 2. **Current CDR** (§4.1): has `legList` → one [`CallEventKind::Hangup`] for the whole call.
//! 3. **Old flat CDR** (§4.2): anything else (`startAt`/`hangupAt`/`recordFile`/`hangup`) → the
//!    same one `Hangup`.
//!
//! A CDR whose recording URL is non-empty also yields a [`CallEventKind::RecordingReady`],
//! because NXCloud has no separate recording callback. Every report has `leg` = "": NXCloud
//! sends one CDR per call, so (call id, kind) is already unique.
//!
//! Every field that is stored is bounded and checked (see `push_fields`): a push with one bad
//! value (NUL or control characters, an oversize id, a negative duration, an out-of-range time
//! or cause) is rejected whole, with the field and the rule in the reason, and nothing of it is
//! stored. Keeping "the rest" of a CDR would store a call without the fact that failed, and the
//! 400 (logged, and visible in NXCloud's push console) is what gets a broken sender fixed; the
//! bounds are far above any valid NXCloud value, so valid CDRs never meet them.

use serde_json::Value;

use super::push_fields::{
    EXT, EXTENSION, ID, Obj, REASON, URL, cause, duration, first, in_time_range, int, parse_cst,
    phone, text, unix_seconds,
};
use crate::domain::call::{CallEventKind, CallReport, PushError, ReleaseDirection};
use crate::domain::{Millis, Provider};

/// `callType` of the leg A → X (inbound), by the reference's example numbers (inferred).
const LEG_INBOUND: i64 = 1;
/// `callType` of the leg X/Y → B (outbound), by the reference's example numbers (inferred).
const LEG_OUTBOUND: i64 = 2;

/// Parses one NXCloud push body into the reports it carries (one or two).
pub fn parse_nxcloud_push(body: &[u8]) -> Result<Vec<CallReport>, PushError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| PushError(format!("body is not JSON: {e}")))?;
    let Value::Object(obj) = &raw else {
        return Err(PushError("body is not a JSON object".to_owned()));
    };
    if is_error_push(obj) {
        return error_push(obj, &raw).map(|r| vec![r]);
    }
    let hangup = match obj.get("legList") {
        Some(Value::Array(legs)) => new_cdr(obj, legs, &raw),
        Some(_) => Err("legList is not an array".to_owned()),
        None => old_cdr(obj, &raw),
    }
    .map_err(PushError)?;
    Ok(with_recording(hangup))
}

fn is_error_push(obj: &Obj) -> bool {
    obj.contains_key("code")
        && matches!(obj.get("data"), Some(Value::Object(d))
            if d.contains_key("action") || d.contains_key("requestParams"))
}

/// The error push is about a call NXCloud refused, so it has no `callId`. Its `requestId` is
/// the only id it carries; it is the id of the failed routing request, so a retried push of
/// the same failure carries the same one and de-duplicates (NXCloud retries every minute for
/// an hour). Without it the push is rejected: a report without an id could not be de-duplicated.
fn error_push(obj: &Obj, raw: &Value) -> Result<CallReport, PushError> {
    let at = |e: String| PushError(format!("error push: {e}"));
    let request_id = text(obj, &["requestId"], ID)
        .map_err(at)?
        .ok_or_else(|| at("requestId is missing".into()))?;
    let empty = Obj::new();
    let data = match obj.get("data") {
        Some(Value::Object(d)) => d,
        _ => &empty,
    };
    let params = match data.get("requestParams") {
        Some(Value::Object(p)) => p,
        _ => &empty,
    };
    let call_at = match first(data, &["occurrenceTime"]) {
        None => None,
        Some((key, Value::String(s))) => Some(
            parse_cst(s)
                .ok_or_else(|| at(format!("{key} is not YYYY-MM-DD HH:MM:SS")))
                .and_then(|ms| in_time_range(key, ms).map_err(at))?,
        ),
        Some(_) => {
            return Err(PushError(
                "error push: occurrenceTime is not a string".to_owned(),
            ));
        }
    };
    // The carrier's code and message (e.g. 10013 "binding not exist") are not a Q.850 cause,
    // so they go to the free-text reason.
    let code = text(obj, &["code"], ID).map_err(at)?;
    let msg = text(obj, &["msg"], REASON).map_err(at)?;
    let reason = match (code, msg) {
        (Some(c), Some(m)) => Some(format!("{c} {m}")),
        (c, m) => c.or(m),
    };
    Ok(CallReport {
        provider: Some(Provider::Nxcloud),
        kind: Some(CallEventKind::NoBinding),
        call_id: request_id,
        caller: phone(params, &["caller"]).map_err(at)?,
        called: phone(params, &["did"]).map_err(at)?,
        call_at,
        release_reason: reason,
        raw: raw.clone(),
        ..CallReport::default()
    })
}

/// The fields both CDR formats share at the top level.
fn cdr_base(obj: &Obj, raw: &Value) -> Result<CallReport, String> {
    let call_id = text(obj, &["callId"], ID)?.ok_or_else(|| "callId is missing".to_owned())?;
    Ok(CallReport {
        provider: Some(Provider::Nxcloud),
        kind: Some(CallEventKind::Hangup),
        call_id,
        provider_binding_id: text(obj, &["bindId"], ID)?,
        customer_bind_id: text(obj, &["customerBindId"], ID)?,
        caller: phone(obj, &["caller"])?,
        called: phone(obj, &["didX", "did"])?,
        callee: phone(obj, &["callee"])?,
        ext: text(obj, &["ext"], EXT)?,
        release_reason: text(obj, &["callStatusMsg"], REASON)?,
        raw: raw.clone(),
        ..CallReport::default()
    })
}

/// One `legList` entry, read once so that every error names the entry.
struct Leg {
    call_type: Option<i64>,
    caller: Option<String>,
    callee: Option<String>,
    start: Option<Millis>,
    ring: Option<Millis>,
    answer: Option<Millis>,
    finish: Option<Millis>,
    duration: Option<i64>,
    record: Option<String>,
    hangup_type: Option<i64>,
    hangup_cause: Option<String>,
    hangup_code: Option<i32>,
}

impl Leg {
    fn read(i: usize, leg: &Value) -> Result<Self, String> {
        let Value::Object(l) = leg else {
            return Err(format!("legList[{i}] is not an object"));
        };
        let read = || -> Result<Self, String> {
            Ok(Leg {
                call_type: int(l, &["callType"])?,
                caller: phone(l, &["caller"])?,
                callee: phone(l, &["callee"])?,
                start: unix_seconds(l, &["callStartAt"])?,
                ring: unix_seconds(l, &["callRingAt"])?,
                answer: unix_seconds(l, &["callAnswerAt"])?,
                finish: unix_seconds(l, &["callFinishAt"])?,
                duration: duration(l, &["duration"])?,
                record: text(l, &["callRecordFile"], URL)?,
                hangup_type: int(l, &["hangupType"])?,
                hangup_cause: text(l, &["hangupCause"], REASON)?,
                hangup_code: cause(l, &["hangupCode"])?,
            })
        };
        read().map_err(|e| format!("legList[{i}]: {e}"))
    }
}

/// Current format: the call's facts are spread over `legList`. The outbound leg (to B) decides
/// ringing, answer, duration and release; the inbound leg (from A) gives the caller.
fn new_cdr(obj: &Obj, legs: &[Value], raw: &Value) -> Result<CallReport, String> {
    let mut r = cdr_base(obj, raw)?;
    let legs = legs
        .iter()
        .enumerate()
        .map(|(i, l)| Leg::read(i, l))
        .collect::<Result<Vec<_>, _>>()?;
    let inbound = legs.iter().find(|l| l.call_type == Some(LEG_INBOUND));
    let outbound = legs.iter().find(|l| l.call_type == Some(LEG_OUTBOUND));

    r.caller = inbound.and_then(|l| l.caller.clone()).or(r.caller);
    r.callee = r.callee.or_else(|| outbound.and_then(|l| l.callee.clone()));
    r.extension = text(obj, &["extensionX"], EXTENSION)?;
    r.call_at = legs.iter().filter_map(|l| l.start).min();
    r.end_at = legs.iter().filter_map(|l| l.finish).max();
    match outbound {
        Some(b) => {
            r.ring_at = b.ring;
            r.answer_at = b.answer;
            r.duration_seconds = b.duration;
        }
        // No leg is marked outbound: the earliest ring/answer and the longest talk time.
        None => {
            r.ring_at = legs.iter().filter_map(|l| l.ring).min();
            r.answer_at = legs.iter().filter_map(|l| l.answer).min();
            r.duration_seconds = legs.iter().filter_map(|l| l.duration).max();
        }
    }
    if let Some(l) = outbound.or(inbound).or(legs.first()) {
        r.release_cause = l.hangup_code;
        r.release_reason = l.hangup_cause.clone().or(r.release_reason);
        // (inferred) `hangupType` is read like the old format's `hangup`: 0 caller, 1 callee.
        r.release_direction = direction(l.hangup_type);
    }
    r.recording_url = outbound
        .into_iter()
        .chain(inbound)
        .chain(&legs)
        .find_map(|l| l.record.clone());
    Ok(r)
}

/// Old flat format: every fact is at the top level.
fn old_cdr(obj: &Obj, raw: &Value) -> Result<CallReport, String> {
    let mut r = cdr_base(obj, raw)?;
    r.extension = text(obj, &["extensionCaller", "extensionX"], EXTENSION)?;
    r.call_at = unix_seconds(obj, &["startAt"])?;
    r.answer_at = unix_seconds(obj, &["answerAt"])?;
    r.end_at = unix_seconds(obj, &["hangupAt"])?;
    r.duration_seconds = duration(obj, &["duration"])?;
    r.release_cause = cause(obj, &["hangupCode"])?;
    if let Some(t) = text(obj, &["hangupCause"], REASON)? {
        r.release_reason = Some(t);
    }
    // Documented for the old format: 0 caller hung up, 1 callee hung up.
    r.release_direction = direction(int(obj, &["hangup"])?);
    r.recording_url = text(obj, &["recordFile"], URL)?;
    Ok(r)
}

fn direction(v: Option<i64>) -> Option<ReleaseDirection> {
    match v? {
        0 => Some(ReleaseDirection::Caller),
        1 => Some(ReleaseDirection::Callee),
        _ => None,
    }
}

/// The hangup report, plus a recording report carrying the same fields when there is a URL.
fn with_recording(hangup: CallReport) -> Vec<CallReport> {
    let recording = hangup.recording_url.is_some().then(|| CallReport {
        kind: Some(CallEventKind::RecordingReady),
        ..hangup.clone()
    });
    std::iter::once(hangup).chain(recording).collect()
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
