//! proptest strategies for carrier pushes (arbitrary JSON shapes around the carriers' field
//! names, hostile strings and numbers), and an independent check that a parsed report keeps
//! every bound of `push_fields`.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::{
    MAX_CAUSE, MAX_DURATION_SECONDS, MAX_EXT_CHARS, MAX_EXTENSION_CHARS, MAX_ID_CHARS,
    MAX_OUT_ID_CHARS, MAX_PHONE_CHARS, MAX_POOL_KEY_CHARS, MAX_REASON_CHARS, MAX_TIME_MS,
    MAX_URL_CHARS,
};
use crate::domain::call::CallReport;

/// Strings a hostile or broken sender might put anywhere: printable, control characters and
/// NUL, huge, digit strings and datetimes (which the readers treat specially).
pub(crate) fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.:+^-]{0,24}",
        2 => any::<String>(),
        2 => "[0-9]{1,25}",
        1 => "-[0-9]{1,20}",
        2 => "(19|20|99)[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]",
        2 => ("[a-z]{0,8}", prop::sample::select(vec!['\0', '\u{1b}', '\n', '\t', '\u{7f}', '\u{85}']), "[a-z]{0,8}")
            .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        2 => (1usize..20_000, prop::sample::select(vec!['7', 'x', '界']))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        1 => Just(String::new()),
        1 => Just("NO_SUBS_EXIST".to_owned()),
        1 => prop::sample::select(vec![
            "SecretStartReport", "SecretRingReport", "SecretPickUpReport", "SecretReport",
            "SecretRecording", "SecretAsrReport"
        ]).prop_map(str::to_owned),
    ]
}

/// Numbers at and beyond every range: small codes, plausible times, extremes, fractions.
pub(crate) fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-5i64..1000).prop_map(Value::from),
        2 => (1_600_000_000i64..1_800_000_000).prop_map(Value::from),
        2 => (1_600_000_000_000i64..1_800_000_000_000).prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => Just(Value::from(i64::MAX)),
        1 => Just(Value::from(i64::MIN)),
    ]
}

pub(crate) fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => hostile_number(),
        6 => hostile_string().prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep, with object keys drawn from `keys` (and some others).
pub(crate) fn value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            object(keys, inner),
        ]
    })
}

/// An object whose keys are mostly carrier field names, with values from `values`.
pub(crate) fn object(
    keys: &'static [&'static str],
    values: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        8 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{1,12}",
    ];
    prop::collection::vec((key, values), 0..24)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>()))
}

/// `s` is within `max` characters and free of control characters (`\n`, `\r`, `\t` allowed
/// when `newlines`). Written apart from `check_text`, so the parsers are checked independently.
fn fits(s: &str, max: usize, newlines: bool) -> bool {
    s.chars().count() <= max
        && s.chars().all(|c| {
            !(c.is_control() || c == '\0') || (newlines && matches!(c, '\n' | '\r' | '\t'))
        })
}

fn opt_fits(s: &Option<String>, max: usize, newlines: bool) -> bool {
    s.as_deref().is_none_or(|s| fits(s, max, newlines))
}

/// Every bound a stored report must keep; `Err` names the first broken one.
pub(crate) fn within_bounds(r: &CallReport) -> Result<(), String> {
    let checks = [
        (
            "call_id",
            !r.call_id.is_empty() && fits(&r.call_id, MAX_ID_CHARS, false),
        ),
        ("leg", r.leg.is_empty()),
        (
            "provider_binding_id",
            opt_fits(&r.provider_binding_id, MAX_ID_CHARS, false),
        ),
        (
            "customer_bind_id",
            opt_fits(&r.customer_bind_id, MAX_ID_CHARS, false),
        ),
        ("caller", opt_fits(&r.caller, MAX_PHONE_CHARS, false)),
        ("called", opt_fits(&r.called, MAX_PHONE_CHARS, false)),
        ("callee", opt_fits(&r.callee, MAX_PHONE_CHARS, false)),
        (
            "extension",
            opt_fits(&r.extension, MAX_EXTENSION_CHARS, false),
        ),
        // The error push joins its code (an id) and message.
        (
            "release_reason",
            opt_fits(
                &r.release_reason,
                MAX_ID_CHARS + 1 + MAX_REASON_CHARS,
                false,
            ),
        ),
        (
            "recording_url",
            opt_fits(&r.recording_url, MAX_URL_CHARS, false),
        ),
        ("out_id", opt_fits(&r.out_id, MAX_OUT_ID_CHARS, false)),
        ("ext", opt_fits(&r.ext, MAX_EXT_CHARS, true)),
        (
            "carrier_pool_key",
            opt_fits(&r.carrier_pool_key, MAX_POOL_KEY_CHARS, false),
        ),
        (
            "duration_seconds",
            r.duration_seconds
                .is_none_or(|d| (0..=MAX_DURATION_SECONDS).contains(&d)),
        ),
        (
            "release_cause",
            r.release_cause.is_none_or(|c| (0..=MAX_CAUSE).contains(&c)),
        ),
        (
            "times",
            [r.call_at, r.ring_at, r.answer_at, r.end_at]
                .iter()
                .flatten()
                .all(|t| (0..=MAX_TIME_MS).contains(t)),
        ),
        ("provider", r.provider.is_some() && r.kind.is_some()),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((field, _)) => Err(format!("{field} out of bounds in {r:?}")),
        None => Ok(()),
    }
}

/// A rejection reason is short and printable whatever the input (it is sent back and logged).
pub(crate) fn reason_is_bounded(reason: &str) -> bool {
    reason.chars().count() <= 200 && !reason.chars().any(char::is_control)
}
