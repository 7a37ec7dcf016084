//! Lenient readers for carrier push fields. Carriers send the same field as a JSON number in one
//! revision and as a string in the next, and use `""` or `0` for "not set"; these helpers take
//! either form and turn "not set" into `None`. They fail only on a value that is present but
//! cannot mean what the field says (e.g. a time that is not a time), so the caller can reject the
//! push with a precise reason.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::domain::Millis;

/// China Standard Time is a fixed UTC+8 (no daylight saving).
const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

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

/// The key of the value [`first`] picks (for error messages).
fn name<'k>(obj: &Obj, keys: &[&'k str]) -> &'k str {
    first(obj, keys).map_or("field", |(k, _)| k)
}

/// A text field sent as a string or a number (ids, extensions). Empty → `None`.
pub(super) fn text(obj: &Obj, keys: &[&str]) -> Option<String> {
    match first(obj, keys)?.1 {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A phone number: like [`text`], with one leading `+` removed.
pub(super) fn phone(obj: &Obj, keys: &[&str]) -> Option<String> {
    let t = text(obj, keys)?;
    let digits = t.strip_prefix('+').unwrap_or(&t).trim();
    (!digits.is_empty()).then(|| digits.to_owned())
}

/// An integer sent as a JSON number (integral) or a decimal string. `Err` names the field.
pub(super) fn int(obj: &Obj, keys: &[&str]) -> Result<Option<i64>, String> {
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
        .map(Some)
        .ok_or_else(|| format!("{key} is not an integer"))
}

/// A Q.850 cause: an integer that fits `i32`.
pub(super) fn cause(obj: &Obj, keys: &[&str]) -> Result<Option<i32>, String> {
    match int(obj, keys)? {
        None => Ok(None),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{} is out of range", name(obj, keys))),
    }
}

/// Unix seconds → epoch ms; `0` means "did not happen" (NXCloud `callRingAt`, `answerAt`).
pub(super) fn unix_seconds(obj: &Obj, keys: &[&str]) -> Result<Option<Millis>, String> {
    match int(obj, keys)? {
        None | Some(0) => Ok(None),
        Some(s) if s < 0 => Err(format!("{} is negative", name(obj, keys))),
        Some(s) => s
            .checked_mul(1000)
            .map(Some)
            .ok_or_else(|| format!("{} is out of range", name(obj, keys))),
    }
}

/// `yyyy-MM-dd HH:mm:ss` in China Standard Time → epoch ms.
pub(super) fn parse_cst(s: &str) -> Option<Millis> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    Some(naive.and_utc().timestamp_millis() - CST_OFFSET_MS)
}

/// A time sent either as a `yyyy-MM-dd HH:mm:ss` CST string or as epoch milliseconds (a JSON
/// number or a string of digits). Aliyun uses both, for the same field in different revisions.
pub(super) fn cst_or_ms(obj: &Obj, keys: &[&str]) -> Result<Option<Millis>, String> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let bad = || format!("{key} is neither yyyy-MM-dd HH:mm:ss nor epoch ms");
    match v {
        Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            s.trim().parse::<i64>().map(Some).map_err(|_| bad())
        }
        Value::String(s) => parse_cst(s).map(Some).ok_or_else(bad),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(bad),
        _ => Err(bad()),
    }
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
        let o = obj(json!({"n": 16, "s": " 16 ", "f": 16.0, "x": "abc", "p": "+8613800000000"}));
        assert_eq!(int(&o, &["n"]), Ok(Some(16)));
        assert_eq!(int(&o, &["s"]), Ok(Some(16)));
        assert_eq!(int(&o, &["f"]), Ok(Some(16)));
        assert_eq!(int(&o, &["x"]), Err("x is not an integer".to_owned()));
        assert_eq!(text(&o, &["n"]).as_deref(), Some("16"));
        assert_eq!(phone(&o, &["p"]).as_deref(), Some("8613800000000"));
        assert_eq!(unix_seconds(&o, &["n"]), Ok(Some(16_000)));
        assert_eq!(first(&o, &["missing", "s"]).map(|(k, _)| k), Some("s"));
    }
}
