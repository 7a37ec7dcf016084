//! Typed views of an event's stored `detail` JSON, so the gRPC edge can send it as typed
//! messages beside the JSON (`Event.details` next to `Event.detail_json`).
//!
//! The JSON keys are the stored ones and are never renamed: old rows keep them, and readers
//! rely on them (`number_x`/`number_y` of lifecycle events; `decision`, `display_number`,
//! `no_binding_reason`, `extension` of a call-in, read back by `storage::calls`). Three shapes
//! are written: `event::binding_detail` (lifecycle events), the call-in decision
//! (`storage::calls`) and the call report's CDR fields (`storage::reports`); retention
//! replaces any of them with `{"purged":true}`, which has no typed form.

use serde_json::{Map, Value};

use super::binding::{BindingMode, BindingState, Millis};
use super::call::{NoBindingReason, ReleaseDirection};

/// The typed form of one stored detail.
#[derive(Clone, Debug, PartialEq)]
pub enum EventDetail {
    Binding(BindingDetail),
    CallIn(CallInDetail),
    CallReport(CallReportDetail),
}

/// A lifecycle event's binding (virtual numbers only; the real ones are not in events).
#[derive(Clone, Debug, PartialEq)]
pub struct BindingDetail {
    pub mode: BindingMode,
    pub state: BindingState,
    pub number_x: String,
    pub number_y: Option<String>,
    pub extension: Option<String>,
    /// Stored as `expire_at_ms`.
    pub expire_at: Millis,
}

/// The decision of a call-in, without the data `Decision` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallInDecision {
    Connect,
    CollectExtension,
    NoBinding,
}

impl CallInDecision {
    /// The stored word (`super::Decision::as_str`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connect" => Some(CallInDecision::Connect),
            "collect_extension" => Some(CallInDecision::CollectExtension),
            "no_binding" => Some(CallInDecision::NoBinding),
            _ => None,
        }
    }
}

/// The decision a `call.incoming` event of a `NotifyCallIn` recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct CallInDetail {
    pub decision: CallInDecision,
    /// Empty unless the decision is `Connect`.
    pub display_number: String,
    pub no_binding_reason: Option<NoBindingReason>,
    pub extension: Option<String>,
}

/// The CDR fields of a call report (`super::CallReport`, without the raw carrier item, which
/// stays in the JSON only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallReportDetail {
    pub call_at: Option<Millis>,
    pub ring_at: Option<Millis>,
    pub answer_at: Option<Millis>,
    pub end_at: Option<Millis>,
    pub duration_seconds: Option<i64>,
    pub release_direction: Option<ReleaseDirection>,
    pub release_cause: Option<i32>,
    pub release_reason: Option<String>,
    pub recording_url: Option<String>,
    pub extension: Option<String>,
    pub provider_binding_id: Option<String>,
}

/// A stored detail that has a known shape but a key that does not fit it. Names the key only:
/// the value may hold a real number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored event detail: key {0:?} is missing or not of its type")]
pub struct DetailError(pub &'static str);

type R<T> = Result<T, DetailError>;

impl EventDetail {
    /// The typed form of `detail`, told apart by its keys (`decision`: a call-in; `state`: a
    /// lifecycle event; `call_at`: a call report). `Ok(None)` for details of none of these
    /// shapes (purged by retention, `null`).
    pub fn parse(detail: &Value) -> R<Option<Self>> {
        let Some(o) = detail.as_object() else {
            return Ok(None);
        };
        Ok(Some(if o.contains_key("decision") {
            EventDetail::CallIn(call_in(o)?)
        } else if o.contains_key("state") {
            EventDetail::Binding(binding(o)?)
        } else if o.contains_key("call_at") {
            EventDetail::CallReport(report(o)?)
        } else {
            return Ok(None);
        }))
    }
}

fn binding(o: &Map<String, Value>) -> R<BindingDetail> {
    Ok(BindingDetail {
        mode: BindingMode::parse(text(o, "mode")?).ok_or(DetailError("mode"))?,
        state: BindingState::parse(text(o, "state")?).ok_or(DetailError("state"))?,
        number_x: text(o, "number_x")?.to_owned(),
        number_y: opt_text(o, "number_y")?,
        extension: opt_text(o, "extension")?,
        expire_at: opt_int(o, "expire_at_ms")?.ok_or(DetailError("expire_at_ms"))?,
    })
}

fn call_in(o: &Map<String, Value>) -> R<CallInDetail> {
    let no_binding_reason = match opt_text(o, "no_binding_reason")? {
        None => None,
        Some(r) => Some(NoBindingReason::parse(&r).ok_or(DetailError("no_binding_reason"))?),
    };
    Ok(CallInDetail {
        decision: CallInDecision::parse(text(o, "decision")?).ok_or(DetailError("decision"))?,
        display_number: opt_text(o, "display_number")?.unwrap_or_default(),
        no_binding_reason,
        extension: opt_text(o, "extension")?,
    })
}

fn report(o: &Map<String, Value>) -> R<CallReportDetail> {
    let release_direction = match opt_text(o, "release_direction")? {
        None => None,
        Some(d) => Some(ReleaseDirection::parse(&d).ok_or(DetailError("release_direction"))?),
    };
    let release_cause = opt_int(o, "release_cause")?
        .map(|c| i32::try_from(c).map_err(|_| DetailError("release_cause")))
        .transpose()?;
    Ok(CallReportDetail {
        call_at: opt_int(o, "call_at")?,
        ring_at: opt_int(o, "ring_at")?,
        answer_at: opt_int(o, "answer_at")?,
        end_at: opt_int(o, "end_at")?,
        duration_seconds: opt_int(o, "duration_seconds")?,
        release_direction,
        release_cause,
        release_reason: opt_text(o, "release_reason")?,
        recording_url: opt_text(o, "recording_url")?,
        extension: opt_text(o, "extension")?,
        provider_binding_id: opt_text(o, "provider_binding_id")?,
    })
}

/// A required string.
fn text<'a>(o: &'a Map<String, Value>, key: &'static str) -> R<&'a str> {
    o.get(key).and_then(Value::as_str).ok_or(DetailError(key))
}

/// A string, or absent / `null`.
fn opt_text(o: &Map<String, Value>, key: &'static str) -> R<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DetailError(key)),
    }
}

/// An integer, or absent / `null`.
fn opt_int(o: &Map<String, Value>, key: &'static str) -> R<Option<i64>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(DetailError(key)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::event::binding_detail;

    #[test]
    fn a_lifecycle_detail_as_written_parses_with_its_virtual_numbers_and_expiry() {
        let d = binding_detail("xyb", "axyb", "85213135301", Some("85213135302"), None, 42);
        assert_eq!(
            EventDetail::parse(&d),
            Ok(Some(EventDetail::Binding(BindingDetail {
                mode: BindingMode::Xyb,
                state: BindingState::Axyb,
                number_x: "85213135301".into(),
                number_y: Some("85213135302".into()),
                extension: None,
                expire_at: 42,
            })))
        );
        let axn = binding_detail("axn_extension", "axn", "8521", None, Some("123"), 7);
        let Ok(Some(EventDetail::Binding(b))) = EventDetail::parse(&axn) else {
            panic!("an AXN lifecycle detail parses: {axn}");
        };
        assert_eq!(
            (b.mode, b.extension.as_deref()),
            (BindingMode::AxnExtension, Some("123"))
        );
    }

    #[test]
    fn a_call_in_detail_parses_each_decision() {
        let connect = json!({"decision": "connect", "display_number": "852131", "no_binding_reason": null, "extension": null});
        assert_eq!(
            EventDetail::parse(&connect),
            Ok(Some(EventDetail::CallIn(CallInDetail {
                decision: CallInDecision::Connect,
                display_number: "852131".into(),
                no_binding_reason: None,
                extension: None,
            })))
        );
        let refused = json!({"decision": "no_binding", "display_number": "", "no_binding_reason": "wrong_extension", "extension": "12"});
        let Ok(Some(EventDetail::CallIn(c))) = EventDetail::parse(&refused) else {
            panic!("a refused call-in parses");
        };
        assert_eq!(c.decision, CallInDecision::NoBinding);
        assert_eq!(c.no_binding_reason, Some(NoBindingReason::WrongExtension));
        assert_eq!(c.extension.as_deref(), Some("12"));
    }

    #[test]
    fn a_report_detail_keeps_what_was_reported_and_leaves_the_rest_unset() {
        let d = json!({
            "call_at": 1000, "ring_at": null, "answer_at": 2000, "end_at": 44000,
            "duration_seconds": 42, "release_direction": "callee", "release_cause": 16,
            "release_reason": null, "recording_url": null, "extension": null,
            "provider_binding_id": "sub-1", "raw": {"anything": [1, 2]},
        });
        assert_eq!(
            EventDetail::parse(&d),
            Ok(Some(EventDetail::CallReport(CallReportDetail {
                call_at: Some(1000),
                answer_at: Some(2000),
                end_at: Some(44000),
                duration_seconds: Some(42),
                release_direction: Some(ReleaseDirection::Callee),
                release_cause: Some(16),
                provider_binding_id: Some("sub-1".into()),
                ..Default::default()
            })))
        );
    }

    #[test]
    fn purged_and_empty_details_have_no_typed_form() {
        for d in [json!({"purged": true}), Value::Null, json!({}), json!("x")] {
            assert_eq!(EventDetail::parse(&d), Ok(None), "{d}");
        }
    }

    #[test]
    fn a_detail_of_a_known_shape_with_a_bad_key_is_an_error_naming_the_key_only() {
        let cases = [
            (json!({"decision": "maybe"}), "decision"),
            (
                json!({"decision": "no_binding", "no_binding_reason": "sunspots"}),
                "no_binding_reason",
            ),
            (
                json!({"state": "xyb", "mode": "xyb", "number_x": "1"}),
                "expire_at_ms",
            ),
            (
                json!({"state": "gone", "mode": "xyb", "number_x": "1", "expire_at_ms": 1}),
                "state",
            ),
            (
                json!({"call_at": 1, "release_direction": "85291112222"}),
                "release_direction",
            ),
            (json!({"call_at": "yesterday"}), "call_at"),
            (
                json!({"call_at": 1, "release_cause": 1u64 << 40}),
                "release_cause",
            ),
        ];
        for (d, key) in cases {
            let e = EventDetail::parse(&d).expect_err(&d.to_string());
            assert_eq!(e, DetailError(key), "{d}");
            assert!(!e.to_string().contains("8529"), "{e}");
        }
    }

    #[test]
    fn every_release_direction_word_round_trips() {
        for d in ReleaseDirection::ALL {
            assert_eq!(ReleaseDirection::parse(d.as_str()), Some(d));
        }
        assert_eq!(ReleaseDirection::parse("Caller"), None);
    }
}
