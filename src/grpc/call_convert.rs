//! pb <-> domain for CallService: call-ins, decisions, softswitch reports.

use super::convert::{binding_to_pb, ts_to_ms};
use super::pb;
use crate::domain::{
    CallIn, CallReport, Decision, DomainError, Extension, Millis, NoBindingReason, PhoneNumber,
    call::{CallEventKind, ReleaseDirection},
    error::{Violations, reason},
};

/// Longest accepted call id (Aliyun: ≤ 100 chars; a little headroom).
pub(crate) const MAX_CALL_ID: usize = 128;

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

fn call_id(v: &mut Violations, raw: &str) -> String {
    let id = raw.trim();
    if id.is_empty() {
        v.add(reason::INVALID_ARGUMENT, "call_id", "is required");
    } else if id.chars().count() > MAX_CALL_ID {
        v.add(
            reason::INVALID_ARGUMENT,
            "call_id",
            format!("must be at most {MAX_CALL_ID} characters"),
        );
    }
    id.to_owned()
}

fn no_binding_reason(r: NoBindingReason) -> pb::NoBindingReason {
    match r {
        NoBindingReason::UnknownNumber => pb::NoBindingReason::UnknownNumber,
        NoBindingReason::Expired => pb::NoBindingReason::Expired,
        NoBindingReason::WrongExtension => pb::NoBindingReason::WrongExtension,
        NoBindingReason::DirectionNotAllowed => pb::NoBindingReason::DirectionNotAllowed,
        NoBindingReason::NoAvailableNumber => pb::NoBindingReason::NoAvailableNumber,
        NoBindingReason::NotBound => pb::NoBindingReason::NotBound,
    }
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
            no_binding_reason: no_binding_reason(reason) as i32,
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
    if r.leg.chars().count() > 64 {
        v.add(
            reason::INVALID_ARGUMENT,
            "leg",
            "must be at most 64 characters",
        );
    }
    if r.duration_seconds < 0 {
        v.add(
            reason::INVALID_ARGUMENT,
            "duration_seconds",
            "must not be negative",
        );
    }
    if !(0..=127).contains(&r.release_cause) {
        v.add(
            reason::INVALID_ARGUMENT,
            "release_cause",
            "must be a Q.850 cause (0-127)",
        );
    }
    if kind == Some(CallEventKind::RecordingReady) && r.recording_url.trim().is_empty() {
        v.add(
            reason::INVALID_ARGUMENT,
            "recording_url",
            "is required for RECORDING_READY",
        );
    }
    if r.recording_url.len() > 2048 {
        v.add(
            reason::INVALID_ARGUMENT,
            "recording_url",
            "must be at most 2048 characters",
        );
    }
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
    let at = r.time.as_ref().map(ts_to_ms).unwrap_or(now);
    let kind_v = kind.unwrap_or(CallEventKind::Hangup);
    Ok(CallReport {
        provider: None,
        kind,
        call_id,
        leg: r.leg.trim().to_owned(),
        ring_at: (kind_v == CallEventKind::Ringing).then_some(at),
        answer_at: r
            .answer_time
            .as_ref()
            .map(ts_to_ms)
            .or((kind_v == CallEventKind::Answered).then_some(at)),
        end_at: r
            .end_time
            .as_ref()
            .map(ts_to_ms)
            .or((kind_v == CallEventKind::Hangup).then_some(at)),
        duration_seconds: (r.duration_seconds > 0 || kind_v == CallEventKind::Hangup)
            .then_some(r.duration_seconds),
        release_direction,
        release_cause: (r.release_cause > 0).then_some(r.release_cause),
        recording_url: Some(r.recording_url.trim().to_owned()).filter(|s| !s.is_empty()),
        call_at: Some(at),
        ..Default::default()
    })
}
