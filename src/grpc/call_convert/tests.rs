//! Properties of the call request conversions: no panic; either a call-in or report whose
//! every field is within its documented bounds, or INVALID_ARGUMENT with field violations.

use proptest::prelude::*;

use super::*;
use crate::domain::text::check_text;
use crate::grpc::proptest_support::{self as s, NOW};

fn rejected(e: DomainError) -> Result<(), TestCaseError> {
    match e {
        DomainError::InvalidArgument { violations, .. } => {
            prop_assert!(!violations.is_empty());
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "not INVALID_ARGUMENT: {other:?}"
        ))),
    }
}

fn is_call_id(id: &str) -> bool {
    !id.is_empty() && id.trim() == id && check_text(id, MAX_CALL_ID, false).is_ok()
}

fn is_call_time(ms: Millis) -> bool {
    (MIN_CALL_TIME_MS..=NOW + MAX_CALL_TIME_AHEAD_MS).contains(&ms)
}

prop_compose! {
    fn call_in_req()(
        (caller, called) in (s::phone(), s::phone()),
        extension in prop_oneof![Just(String::new()), "[0-9]{1,5}", s::hostile()],
        call_id in s::id(),
    ) -> pb::NotifyCallInRequest {
        pb::NotifyCallInRequest { caller, called, extension, call_id }
    }
}

prop_compose! {
    fn report_req()(
        call_id in s::id(),
        kind in s::enum_value(5),
        leg in prop_oneof![Just(String::new()), s::id()],
        (time, answer_time, end_time) in (
            prop::option::of(s::call_timestamp()),
            prop::option::of(s::call_timestamp()),
            prop::option::of(s::call_timestamp()),
        ),
        duration_seconds in s::duration(),
        release_direction in s::enum_value(4),
        release_cause in s::int32(),
        recording_url in prop_oneof![
            2 => Just(String::new()),
            4 => "https://rec\\.example/[a-z0-9/]{0,40}",
            1 => s::hostile(),
        ],
    ) -> pb::ReportCallEventRequest {
        pb::ReportCallEventRequest {
            call_id, kind, leg, time, answer_time, end_time, duration_seconds,
            release_direction, release_cause, recording_url,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn notify_call_in_yields_a_bounded_call_in_or_invalid_argument(req in call_in_req()) {
        match call_in(req) {
            Ok(c) => {
                prop_assert!(is_call_id(&c.call_id));
                prop_assert!(c.extension.as_ref().is_none_or(|e| (1..=4).contains(&e.as_str().len())));
            }
            Err(e) => rejected(e)?,
        }
    }

    #[test]
    fn report_call_event_yields_a_bounded_report_or_invalid_argument(req in report_req()) {
        match report(req, NOW) {
            Ok(r) => {
                prop_assert!(is_call_id(&r.call_id));
                prop_assert!(check_text(&r.leg, MAX_LEG, false).is_ok());
                for t in [r.ring_at, r.answer_at, r.end_at, r.call_at].into_iter().flatten() {
                    prop_assert!(is_call_time(t), "{t}");
                }
                prop_assert!(r.duration_seconds.is_none_or(|d| (0..=MAX_CALL_DURATION_SECONDS).contains(&d)));
                prop_assert!(r.release_cause.is_none_or(|c| (1..=127).contains(&c)));
                prop_assert!(r.recording_url.as_deref().is_none_or(|u| !u.is_empty() && check_text(u, MAX_RECORDING_URL, false).is_ok()));
            }
            Err(e) => rejected(e)?,
        }
    }
}
