//! Event log entries -> `pns.v1.Event`: the kind as its string and as `EventKind`, the stored
//! details as JSON (unchanged, for existing clients) and typed (`Event.details`).

use super::convert::{ms_to_ts, provider_to_pb, state_to_pb};
use super::pb;
use crate::domain::{
    BindingMode, Event, NoBindingReason,
    call::{CallEventKind, ReleaseDirection},
    event::{
        BINDING_CONVERTED, BINDING_CREATED, BINDING_EXPIRED, BINDING_UNBOUND, BINDING_UPDATED,
    },
    event_detail::{BindingDetail, CallInDecision, CallInDetail, CallReportDetail, EventDetail},
};

/// Every event kind: its string (`Event.kind`, `WatchEventsRequest.kinds`) and its enum value.
const KINDS: [(&str, pb::EventKind); 11] = [
    (BINDING_CREATED, pb::EventKind::BindingCreated),
    (BINDING_CONVERTED, pb::EventKind::BindingConverted),
    (BINDING_UPDATED, pb::EventKind::BindingUpdated),
    (BINDING_EXPIRED, pb::EventKind::BindingExpired),
    (BINDING_UNBOUND, pb::EventKind::BindingUnbound),
    (
        CallEventKind::Incoming.as_str(),
        pb::EventKind::CallIncoming,
    ),
    (CallEventKind::Ringing.as_str(), pb::EventKind::CallRinging),
    (
        CallEventKind::Answered.as_str(),
        pb::EventKind::CallAnswered,
    ),
    (CallEventKind::Hangup.as_str(), pb::EventKind::CallHangup),
    (
        CallEventKind::RecordingReady.as_str(),
        pb::EventKind::CallRecordingReady,
    ),
    (
        CallEventKind::NoBinding.as_str(),
        pb::EventKind::CallNoBinding,
    ),
];

/// The enum value of a stored kind (UNSPECIFIED for a kind this table does not know, which
/// the kinds' test rules out).
pub(crate) fn kind_to_pb(kind: &str) -> pb::EventKind {
    KINDS
        .iter()
        .find(|(s, _)| *s == kind)
        .map_or(pb::EventKind::Unspecified, |(_, k)| *k)
}

/// The string of an enum value; `None` for UNSPECIFIED.
pub(crate) fn kind_name(kind: pb::EventKind) -> Option<&'static str> {
    KINDS.iter().find(|(_, k)| *k == kind).map(|(s, _)| *s)
}

pub(crate) fn event_to_pb(e: Event) -> pb::Event {
    let details = match EventDetail::parse(&e.detail) {
        Ok(d) => d.map(details_to_pb),
        Err(err) => {
            // The JSON is still sent; only its typed form is left out.
            tracing::warn!(sequence = e.sequence, kind = %e.kind, error = %err, "event detail has no typed form");
            None
        }
    };
    pb::Event {
        sequence: e.sequence,
        event_kind: kind_to_pb(&e.kind) as i32,
        kind: e.kind,
        binding_id: e.binding_id.unwrap_or_default(),
        time: Some(ms_to_ts(e.occurred_at)),
        pool_key: e.pool_key,
        provider: e
            .provider
            .map(provider_to_pb)
            .unwrap_or(pb::Provider::Unspecified) as i32,
        customer_bind_id: e.customer_bind_id.unwrap_or_default(),
        customer_user_id: e.customer_user_id,
        ext: e.ext,
        out_id: e.out_id,
        call_id: e.call_id,
        caller: e.caller,
        called: e.called,
        callee: e.callee,
        detail_json: e.detail.to_string(),
        tenant: e.tenant,
        details,
    }
}

fn details_to_pb(d: EventDetail) -> pb::event::Details {
    match d {
        EventDetail::Binding(b) => pb::event::Details::BindingDetail(binding_detail(b)),
        EventDetail::CallIn(c) => pb::event::Details::CallInDetail(call_in_detail(c)),
        EventDetail::CallReport(r) => pb::event::Details::CallReportDetail(report_detail(r)),
    }
}

fn binding_detail(b: BindingDetail) -> pb::BindingEventDetail {
    pb::BindingEventDetail {
        mode: match b.mode {
            BindingMode::Xyb => pb::BindingMode::Xyb,
            BindingMode::AxnExtension => pb::BindingMode::AxnExtension,
        } as i32,
        state: state_to_pb(b.state) as i32,
        number_x: b.number_x,
        number_y: b.number_y.unwrap_or_default(),
        extension: b.extension.unwrap_or_default(),
        expire_time: Some(ms_to_ts(b.expire_at)),
    }
}

fn call_in_detail(c: CallInDetail) -> pb::CallInEventDetail {
    pb::CallInEventDetail {
        decision: match c.decision {
            CallInDecision::Connect => pb::Decision::Connect,
            CallInDecision::CollectExtension => pb::Decision::CollectExtension,
            CallInDecision::NoBinding => pb::Decision::NoBinding,
        } as i32,
        display_number: c.display_number,
        no_binding_reason: c
            .no_binding_reason
            .map_or(pb::NoBindingReason::Unspecified, no_binding_reason_to_pb)
            as i32,
        extension: c.extension.unwrap_or_default(),
    }
}

pub(crate) fn no_binding_reason_to_pb(r: NoBindingReason) -> pb::NoBindingReason {
    match r {
        NoBindingReason::UnknownNumber => pb::NoBindingReason::UnknownNumber,
        NoBindingReason::Expired => pb::NoBindingReason::Expired,
        NoBindingReason::WrongExtension => pb::NoBindingReason::WrongExtension,
        NoBindingReason::DirectionNotAllowed => pb::NoBindingReason::DirectionNotAllowed,
        NoBindingReason::NoAvailableNumber => pb::NoBindingReason::NoAvailableNumber,
        NoBindingReason::NotBound => pb::NoBindingReason::NotBound,
    }
}

fn report_detail(r: CallReportDetail) -> pb::CallReportEventDetail {
    pb::CallReportEventDetail {
        call_time: r.call_at.map(ms_to_ts),
        ring_time: r.ring_at.map(ms_to_ts),
        answer_time: r.answer_at.map(ms_to_ts),
        end_time: r.end_at.map(ms_to_ts),
        duration_seconds: r.duration_seconds.unwrap_or_default(),
        release_direction: match r.release_direction {
            None => pb::ReleaseDirection::Unspecified,
            Some(ReleaseDirection::Caller) => pb::ReleaseDirection::Caller,
            Some(ReleaseDirection::Callee) => pb::ReleaseDirection::Callee,
            Some(ReleaseDirection::Platform) => pb::ReleaseDirection::Platform,
        } as i32,
        release_cause: r.release_cause.unwrap_or_default(),
        release_reason: r.release_reason.unwrap_or_default(),
        recording_url: r.recording_url.unwrap_or_default(),
        extension: r.extension.unwrap_or_default(),
        provider_binding_id: r.provider_binding_id.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::domain::event::EVENT_KINDS;

    #[test]
    fn every_event_kind_has_its_own_enum_value_and_back() {
        assert_eq!(KINDS.len(), EVENT_KINDS.len());
        let mut seen = HashSet::new();
        for kind in EVENT_KINDS {
            let k = kind_to_pb(kind);
            assert_ne!(k, pb::EventKind::Unspecified, "{kind}");
            assert!(seen.insert(k), "{kind} shares {k:?}");
            assert_eq!(kind_name(k), Some(kind));
        }
        assert_eq!(kind_name(pb::EventKind::Unspecified), None);
        assert_eq!(kind_to_pb("call.unknown"), pb::EventKind::Unspecified);
    }

    #[test]
    fn the_enum_names_spell_the_strings() {
        // `binding.created` <-> EVENT_KIND_BINDING_CREATED: a reader can map one to the other.
        for (s, k) in KINDS {
            let spelled = format!("EVENT_KIND_{}", s.replace('.', "_").to_uppercase());
            assert_eq!(k.as_str_name(), spelled);
        }
    }

    #[test]
    fn an_unparsable_detail_is_sent_as_json_without_a_typed_form() {
        let e = Event {
            sequence: 9,
            kind: BINDING_UPDATED.into(),
            detail: serde_json::json!({"state": "sideways"}),
            ..Default::default()
        };
        let pb = event_to_pb(e);
        assert_eq!(pb.detail_json, r#"{"state":"sideways"}"#);
        assert_eq!(pb.details, None);
        assert_eq!(pb.event_kind, pb::EventKind::BindingUpdated as i32);
    }
}
