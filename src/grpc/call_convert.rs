//! pb <-> domain for CallService: call-ins, decisions, softswitch reports.

use prost_types::Timestamp;

use super::convert::binding_to_pb;
use super::event_convert::no_binding_reason_to_pb;
use super::pb;
use super::validate::{line, timestamp};
use crate::domain::{
    CallIn, CallReport, Decision, DomainError, Extension, Millis, PhoneNumber,
    call::{CallEventKind, ReleaseDirection},
    error::{Violations, reason},
};

/// Longest accepted call id (Aliyun: ≤ 100 chars; a little headroom).
pub(crate) const MAX_CALL_ID: usize = 128;
/// Longest `leg` of a report.
pub(crate) const MAX_LEG: usize = 64;
/// Longest `recording_url`.
pub(crate) const MAX_RECORDING_URL: usize = 2048;
/// Longest call a report may describe (7 days): larger values are unit mistakes (ms for s).
pub(crate) const MAX_CALL_DURATION_SECONDS: i64 = 7 * 24 * 3600;
/// Report times are between 2000-01-01T00:00:00Z and one day after the server's clock (room
/// for a softswitch clock that runs ahead); anything else is a bug, not a call.
pub(crate) const MIN_CALL_TIME_MS: Millis = 946_684_800_000;
pub(crate) const MAX_CALL_TIME_AHEAD_MS: Millis = 24 * 3600 * 1000;

pub(crate) fn call_in(r: pb::NotifyCallInRequest) -> Result<CallIn, DomainError> {
    let mut v = Violations::default();
    let caller = v.take(
        reason::MOBILE_NUMBER_ILLEGAL,
        "caller",
        PhoneNumber::parse(&r.caller),
    );
    let called = v.take(
        reason::MOBILE_NUMBER_ILLEGAL,
        "called",
        PhoneNumber::parse(&r.called),
    );
    let extension = match r.extension.trim() {
        "" => None,
        e => v.take(
            reason::EXTENSION_ILLEGAL,
            "extension",
            Extension::parse(e, 4),
        ),
    };
    let call_id = call_id(&mut v, &r.call_id);
    v.finish()?;
    match (caller, called) {
        (Some(caller), Some(called)) => Ok(CallIn {
            caller,
            called,
            extension,
            call_id,
        }),
        _ => Err(DomainError::Internal(
            "violations without a violation".into(),
        )),
    }
}

/// Required; trimmed; at most [`MAX_CALL_ID`] characters without control characters.
fn call_id(v: &mut Violations, raw: &str) -> String {
    let id = raw.trim();
    if id.is_empty() {
        v.add(reason::INVALID_ARGUMENT, "call_id", "is required");
        return String::new();
    }
    line(v, "call_id", id, MAX_CALL_ID)
}

/// An optional report time: a valid Timestamp within the plausible window.
fn call_time(
    v: &mut Violations,
    field: &str,
    t: Option<&Timestamp>,
    now: Millis,
) -> Option<Millis> {
    let ms = timestamp(v, reason::INVALID_ARGUMENT, field, t?)?;
    if !(MIN_CALL_TIME_MS..=now + MAX_CALL_TIME_AHEAD_MS).contains(&ms) {
        v.add(
            reason::INVALID_ARGUMENT,
            field,
            "must be between 2000-01-01T00:00:00Z and one day from now",
        );
        return None;
    }
    Some(ms)
}

pub(crate) fn decision_to_pb(d: Decision, event_sequence: i64) -> pb::NotifyCallInResponse {
    match d {
        Decision::Connect {
            connect_to,
            display,
            recording,
            binding,
        } => pb::NotifyCallInResponse {
            decision: pb::Decision::Connect as i32,
            connect_to,
            display_number: display,
            recording,
            binding: Some(binding_to_pb(binding)),
            no_binding_reason: 0,
            event_sequence,
        },
        Decision::CollectExtension => pb::NotifyCallInResponse {
            decision: pb::Decision::CollectExtension as i32,
            event_sequence,
            ..Default::default()
        },
        Decision::NoBinding { reason, binding } => pb::NotifyCallInResponse {
            decision: pb::Decision::NoBinding as i32,
            binding: binding.map(binding_to_pb),
            no_binding_reason: no_binding_reason_to_pb(reason) as i32,
            event_sequence,
            ..Default::default()
        },
    }
}

/// A softswitch report -> the normalised report (provider `None` = the softswitch).
pub(crate) fn report(
    r: pb::ReportCallEventRequest,
    now: Millis,
) -> Result<CallReport, DomainError> {
    let mut v = Violations::default();
    let call_id = call_id(&mut v, &r.call_id);
    let kind = match pb::CallEventKind::try_from(r.kind) {
        Ok(pb::CallEventKind::Ringing) => Some(CallEventKind::Ringing),
        Ok(pb::CallEventKind::Answered) => Some(CallEventKind::Answered),
        Ok(pb::CallEventKind::Hangup) => Some(CallEventKind::Hangup),
        Ok(pb::CallEventKind::RecordingReady) => Some(CallEventKind::RecordingReady),
        _ => {
            v.add(
                reason::INVALID_ARGUMENT,
                "kind",
                "must be RINGING, ANSWERED, HANGUP or RECORDING_READY",
            );
            None
        }
    };
    let leg = line(&mut v, "leg", r.leg.trim(), MAX_LEG);
    if !(0..=MAX_CALL_DURATION_SECONDS).contains(&r.duration_seconds) {
        v.add(
            reason::INVALID_ARGUMENT,
            "duration_seconds",
            format!("must be within 0..={MAX_CALL_DURATION_SECONDS} (7 days)"),
        );
    }
    if !(0..=127).contains(&r.release_cause) {
        v.add(
            reason::INVALID_ARGUMENT,
            "release_cause",
            "must be a Q.850 cause (0-127)",
        );
    }
    let recording_url = line(
        &mut v,
        "recording_url",
        r.recording_url.trim(),
        MAX_RECORDING_URL,
    );
    if kind == Some(CallEventKind::RecordingReady) && r.recording_url.trim().is_empty() {
        v.add(
            reason::INVALID_ARGUMENT,
            "recording_url",
            "is required for RECORDING_READY",
        );
    }
    let time = call_time(&mut v, "time", r.time.as_ref(), now);
    let answer_time = call_time(&mut v, "answer_time", r.answer_time.as_ref(), now);
    let end_time = call_time(&mut v, "end_time", r.end_time.as_ref(), now);
    let release_direction = match pb::ReleaseDirection::try_from(r.release_direction) {
        Ok(pb::ReleaseDirection::Caller) => Some(ReleaseDirection::Caller),
        Ok(pb::ReleaseDirection::Callee) => Some(ReleaseDirection::Callee),
        Ok(pb::ReleaseDirection::Platform) => Some(ReleaseDirection::Platform),
        Ok(pb::ReleaseDirection::Unspecified) => None,
        Err(_) => {
            v.add(
                reason::INVALID_ARGUMENT,
                "release_direction",
                "unknown value",
            );
            None
        }
    };
    v.finish()?;
    let at = time.unwrap_or(now);
    let kind_v = kind.unwrap_or(CallEventKind::Hangup);
    Ok(CallReport {
        provider: None,
        kind,
        call_id,
        leg,
        ring_at: (kind_v == CallEventKind::Ringing).then_some(at),
        answer_at: answer_time.or((kind_v == CallEventKind::Answered).then_some(at)),
        end_at: end_time.or((kind_v == CallEventKind::Hangup).then_some(at)),
        duration_seconds: (r.duration_seconds > 0 || kind_v == CallEventKind::Hangup)
            .then_some(r.duration_seconds),
        release_direction,
        release_cause: (r.release_cause > 0).then_some(r.release_cause),
        recording_url: Some(recording_url).filter(|s| !s.is_empty()),
        call_at: Some(at),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
