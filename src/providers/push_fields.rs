//! Readers for carrier push fields, and the bounds every stored field is held to.
//!
//! Lenient about form: carriers send the same field as a JSON number in one revision and as a
//! string in the next, and use `""` or `0` for "not set"; these helpers take either form and
//! turn "not set" into `None`. Strict about content: every value that is stored or echoed is
//! bounded and free of NUL/control characters ([`check_text`]), and every number is range
//! checked, so nothing a carrier sends can fail in the database (PostgreSQL refuses NUL in
//! `text`; btree index rows are limited to ~2.7 KB) or overflow. A reader fails with the field's
//! name and the broken rule, so the caller can reject the push with a precise reason.
//!
//! The bounds are generous: each is well above the longest valid value the carriers document
//! (`reference/aliyun.md`, `reference/nxcloud.md`), so valid carrier data never meets them.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::domain::Millis;
use crate::domain::text::check_text;

/// China Standard Time is a fixed UTC+8 (no daylight saving).
const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// Call ids, binding ids (`bindId`, `sub_id`), `customerBindId`, `requestId`, error codes.
/// Aliyun documents `call_id` ≤ 100 characters; NXCloud ids are 32 hex digits or numeric; the
/// gateway's own ids (sent as `customerBindId`) are UUIDs. Same limit as gRPC `call_id`.
pub(crate) const MAX_ID_CHARS: usize = 128;
/// Carrier pool keys (Aliyun `pool_key`/`partner_key`, e.g. `FC100000000000001`); indexed.
pub(crate) const MAX_POOL_KEY_CHARS: usize = 128;
/// Phone numbers as carriers send them: E.164 has at most 15 digits; room for prefixes and
/// non-numeric caller ids ("anonymous").
pub(crate) const MAX_PHONE_CHARS: usize = 64;
/// Extensions (Aliyun 1–3 digits, NXCloud 4, `extensionCaller` up to 6 seen).
pub(crate) const MAX_EXTENSION_CHARS: usize = 32;
/// Aliyun `out_id`, the echo of the bind's `OutId` (no documented limit; the gateway sends at
/// most 128).
pub(crate) const MAX_OUT_ID_CHARS: usize = 256;
/// NXCloud `ext`, the echo of the bind's `ext` (the gateway sends at most 512); may hold
/// newlines and tabs.
pub(crate) const MAX_EXT_CHARS: usize = 1024;
/// Carrier texts about the end of a call (`callStatusMsg`, `hangupCause`, the error push `msg`).
pub(crate) const MAX_REASON_CHARS: usize = 1024;
/// Recording URLs: an OSS URL signed with an STS security token runs to ~2 KB.
pub(crate) const MAX_URL_CHARS: usize = 8192;
/// Longest talk time accepted (31 days): no carrier call lasts that long.
pub(crate) const MAX_DURATION_SECONDS: i64 = 31 * 24 * 3600;
/// Cause codes: Q.850 (0–127) plus FreeSWITCH's own (487, 500–6xx) that NXCloud passes on.
pub(crate) const MAX_CAUSE: i32 = 999;
/// Latest time accepted: 9999-12-31T23:59:59.999Z (earliest: the Unix epoch).
pub(crate) const MAX_TIME_MS: Millis = 253_402_300_799_999;
const TIME_RANGE: &str = "is out of range (1970-01-01 to 9999-12-31)";

/// How a text field is bounded.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bound {
    max_chars: usize,
    newlines: bool,
}

pub(super) const ID: Bound = Bound::line(MAX_ID_CHARS);
pub(super) const POOL_KEY: Bound = Bound::line(MAX_POOL_KEY_CHARS);
pub(super) const EXTENSION: Bound = Bound::line(MAX_EXTENSION_CHARS);
pub(super) const OUT_ID: Bound = Bound::line(MAX_OUT_ID_CHARS);
pub(super) const EXT: Bound = Bound {
    max_chars: MAX_EXT_CHARS,
    newlines: true,
};
pub(super) const REASON: Bound = Bound::line(MAX_REASON_CHARS);
pub(super) const URL: Bound = Bound::line(MAX_URL_CHARS);

impl Bound {
    const fn line(max_chars: usize) -> Self {
        Bound {
            max_chars,
            newlines: false,
        }
    }
}

pub(super) type Obj = Map<String, Value>;

/// The first of `keys` that is present, not `null` and not an empty string, with its key (so
/// errors name the spelling actually received).
pub(super) fn first<'a, 'k>(obj: &'a Obj, keys: &[&'k str]) -> Option<(&'k str, &'a Value)> {
    keys.iter()
        .filter_map(|k| obj.get(*k).map(|v| (*k, v)))
        .find(|(_, v)| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        })
}

/// A text field sent as a string or a number (ids, extensions), trimmed and checked against
/// `bound`. Empty → `None`.
pub(super) fn text(obj: &Obj, keys: &[&str], bound: Bound) -> Result<Option<String>, String> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("{key} is not a string or a number")),
    };
    check_text(&s, bound.max_chars, bound.newlines).map_err(|e| format!("{key} {e}"))?;
    Ok(Some(s))
}

/// Whether the first of `keys` is the string `want` (a flag that is compared, never stored).
pub(super) fn is(obj: &Obj, keys: &[&str], want: &str) -> bool {
    matches!(first(obj, keys), Some((_, Value::String(s))) if s.trim() == want)
}

/// A phone number: like [`text`], with one leading `+` removed.
pub(super) fn phone(obj: &Obj, keys: &[&str]) -> Result<Option<String>, String> {
    let Some(t) = text(obj, keys, Bound::line(MAX_PHONE_CHARS))? else {
        return Ok(None);
    };
    let digits = t.strip_prefix('+').unwrap_or(&t).trim();
    Ok((!digits.is_empty()).then(|| digits.to_owned()))
}

/// An integer sent as a JSON number (integral) or a decimal string. `Err` names the field.
pub(super) fn int(obj: &Obj, keys: &[&str]) -> Result<Option<i64>, String> {
    Ok(int_with_key(obj, keys)?.map(|(_, n)| n))
}

fn int_with_key<'k>(obj: &Obj, keys: &[&'k str]) -> Result<Option<(&'k str, i64)>, String> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed
        .map(|n| Some((key, n)))
        .ok_or_else(|| format!("{key} is not an integer"))
}

/// A cause code (Q.850 or FreeSWITCH): `0..=MAX_CAUSE`.
pub(super) fn cause(obj: &Obj, keys: &[&str]) -> Result<Option<i32>, String> {
    match int_with_key(obj, keys)? {
        None => Ok(None),
        Some((key, n)) => i32::try_from(n)
            .ok()
            .filter(|c| (0..=MAX_CAUSE).contains(c))
            .map(Some)
            .ok_or_else(|| format!("{key} must be a cause code (0-{MAX_CAUSE})")),
    }
}

/// A talk time in seconds: `0..=MAX_DURATION_SECONDS`.
pub(super) fn duration(obj: &Obj, keys: &[&str]) -> Result<Option<i64>, String> {
    match int_with_key(obj, keys)? {
        None => Ok(None),
        Some((key, n)) if n < 0 => Err(format!("{key} must not be negative")),
        Some((key, n)) if n > MAX_DURATION_SECONDS => Err(format!(
            "{key} must be at most {MAX_DURATION_SECONDS} seconds"
        )),
        Some((_, n)) => Ok(Some(n)),
    }
}

/// Unix seconds → epoch ms; `0` means "did not happen" (NXCloud `callRingAt`, `answerAt`).
pub(super) fn unix_seconds(obj: &Obj, keys: &[&str]) -> Result<Option<Millis>, String> {
    match int_with_key(obj, keys)? {
        None | Some((_, 0)) => Ok(None),
        Some((key, s)) if s < 0 => Err(format!("{key} is negative")),
        Some((key, s)) if s > MAX_TIME_MS / 1000 => Err(format!("{key} {TIME_RANGE}")),
        Some((_, s)) => Ok(Some(s * 1000)),
    }
}

/// `yyyy-MM-dd HH:mm:ss` in China Standard Time → epoch ms (any year chrono reads; the
/// callers check the range).
pub(super) fn parse_cst(s: &str) -> Option<Millis> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    naive
        .and_utc()
        .timestamp_millis()
        .checked_sub(CST_OFFSET_MS)
}

/// `ms` if it lies in the accepted time range, else the error for `key`.
pub(super) fn in_time_range(key: &str, ms: Millis) -> Result<Millis, String> {
    if (0..=MAX_TIME_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("{key} {TIME_RANGE}"))
    }
}

/// A time sent either as a `yyyy-MM-dd HH:mm:ss` CST string or as epoch milliseconds (a JSON
/// number or a string of digits). Aliyun uses both, for the same field in different revisions.
pub(super) fn cst_or_ms(obj: &Obj, keys: &[&str]) -> Result<Option<Millis>, String> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let bad = || format!("{key} is neither yyyy-MM-dd HH:mm:ss nor epoch ms");
    let ms = match v {
        Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            // All digits but too long for i64: a number, out of range.
            s.trim().parse::<i64>().unwrap_or(Millis::MAX)
        }
        Value::String(s) => parse_cst(s).ok_or_else(bad)?,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(ms), _) => ms,
            (None, Some(_)) => Millis::MAX,
            (None, None) => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    in_time_range(key, ms).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Obj {
        match v {
            Value::Object(m) => m,
            _ => Obj::new(),
        }
    }

    #[test]
    fn cst_strings_are_eight_hours_ahead_of_utc() {
        // 2024-01-02 12:00:00 in Beijing is 2024-01-02T04:00:00Z.
        assert_eq!(parse_cst("2024-01-02 12:00:00"), Some(1_704_168_000_000));
        assert_eq!(parse_cst("2024-01-02T12:00:00"), None);
    }

    #[test]
    fn times_accept_datetime_ms_number_and_ms_string() {
        let o = obj(
            json!({"a": "2024-01-02 12:00:00", "b": 1_704_168_000_000_i64,
            "c": "1704168000000", "d": "", "e": "yesterday"}),
        );
        for k in ["a", "b", "c"] {
            assert_eq!(cst_or_ms(&o, &[k]), Ok(Some(1_704_168_000_000)));
        }
        assert_eq!(cst_or_ms(&o, &["d"]), Ok(None));
        assert_eq!(cst_or_ms(&o, &["missing"]), Ok(None));
        assert!(cst_or_ms(&o, &["e"]).is_err_and(|e| e.starts_with("e is neither")));
    }

    #[test]
    fn ints_and_texts_accept_strings_and_numbers() {
        let o = obj(
            json!({"n": 16, "s": " 16 ", "f": 16.0, "x": "abc", "p": "+8613800000000",
            "t": 1_704_168_000_i64}),
        );
        assert_eq!(int(&o, &["n"]), Ok(Some(16)));
        assert_eq!(int(&o, &["s"]), Ok(Some(16)));
        assert_eq!(int(&o, &["f"]), Ok(Some(16)));
        assert_eq!(int(&o, &["x"]), Err("x is not an integer".to_owned()));
        assert_eq!(text(&o, &["n"], ID), Ok(Some("16".to_owned())));
        assert_eq!(phone(&o, &["p"]), Ok(Some("8613800000000".to_owned())));
        assert_eq!(unix_seconds(&o, &["t"]), Ok(Some(1_704_168_000_000)));
        assert_eq!(first(&o, &["missing", "s"]).map(|(k, _)| k), Some("s"));
    }

    #[test]
    fn texts_are_bounded_and_free_of_control_characters() {
        let o = obj(
            json!({"nul": "a\u{0}b", "esc": "a\u{1b}b", "nl": "a\nb", "obj": {"a": 1},
            "long": "x".repeat(MAX_ID_CHARS + 1), "max": "界".repeat(MAX_ID_CHARS)}),
        );
        let e = |k: &str, b: Bound| text(&o, &[k], b).unwrap_err();
        assert_eq!(e("nul", ID), "nul must not contain NUL characters");
        assert_eq!(
            e("esc", EXT),
            "esc must not contain control characters (found U+001B)"
        );
        assert_eq!(
            e("nl", ID),
            "nl must not contain control characters (found U+000A)"
        );
        assert_eq!(text(&o, &["nl"], EXT), Ok(Some("a\nb".to_owned())));
        assert_eq!(e("obj", ID), "obj is not a string or a number");
        assert_eq!(e("long", ID), "long must be at most 128 characters");
        assert_eq!(
            text(&o, &["max"], ID).map(|t| t.map(|t| t.chars().count())),
            Ok(Some(128))
        );
        assert!(phone(&o, &["nul"]).is_err());
    }

    #[test]
    fn numbers_are_range_checked() {
        let o = obj(
            json!({"neg": -1, "zero": 0, "big": i64::MAX, "cause": 487, "q": 16,
            "huge": 1000, "u": u64::MAX, "ms": 1_704_168_000_000_i64, "digits": "99999999999999999999",
            "y5": "99999-01-01 00:00:00", "pre": "1969-12-31 23:59:59"}),
        );
        assert_eq!(
            duration(&o, &["neg"]),
            Err("neg must not be negative".into())
        );
        assert_eq!(duration(&o, &["zero"]), Ok(Some(0)));
        assert_eq!(
            duration(&o, &["big"]),
            Err("big must be at most 2678400 seconds".into())
        );
        assert_eq!(cause(&o, &["cause"]), Ok(Some(487)));
        assert_eq!(cause(&o, &["q"]), Ok(Some(16)));
        for k in ["neg", "huge", "big"] {
            assert_eq!(
                cause(&o, &[k]),
                Err(format!("{k} must be a cause code (0-999)"))
            );
        }
        assert_eq!(unix_seconds(&o, &["zero"]), Ok(None));
        assert_eq!(unix_seconds(&o, &["neg"]), Err("neg is negative".into()));
        assert_eq!(
            unix_seconds(&o, &["big"]),
            Err("big is out of range (1970-01-01 to 9999-12-31)".into())
        );
        assert_eq!(cst_or_ms(&o, &["ms"]), Ok(Some(1_704_168_000_000)));
        assert!(cst_or_ms(&o, &["y5"]).is_err_and(|e| e.starts_with("y5 is neither")));
        for k in ["neg", "big", "u", "digits", "pre"] {
            assert_eq!(
                cst_or_ms(&o, &[k]),
                Err(format!("{k} is out of range (1970-01-01 to 9999-12-31)"))
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod arb;
