//! The fake's own signature V2 check, written independently of the crate's signer (byte-wise
//! RFC 3986 encoding, no percent-encoding crate) so that a shared bug cannot hide.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{NaiveDateTime, TimeZone as _, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Unreserved bytes stay, every other byte becomes `%XY` with upper-case hex.
pub fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The string Aliyun signs for `method` and the decoded parameters (`Signature` excluded).
pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    let mut canonical = String::new();
    for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "Signature") {
        if !canonical.is_empty() {
            canonical.push('&');
        }
        canonical.push_str(&rfc3986(k));
        canonical.push('=');
        canonical.push_str(&rfc3986(v));
    }
    format!("{method}&{}&{}", rfc3986("/"), rfc3986(&canonical))
}

pub fn reference_signature(
    method: &str,
    params: &BTreeMap<String, String>,
    secret: &str,
) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Decodes one `application/x-www-form-urlencoded` component as the gateway would (`+` is a
/// space, `%XY` a byte). `None` for invalid escapes or UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Timestamp` → seconds of skew from now. `None` if not `yyyy-MM-ddTHH:mm:ssZ`.
pub fn timestamp_skew_secs(ts: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%SZ").ok()?;
    Some((Utc.from_utc_datetime(&t) - Utc::now()).num_seconds().abs())
}

/// `Expiration` (China Standard Time) → epoch seconds. `None` if not `yyyy-MM-dd HH:mm:ss`.
pub fn cst_epoch_secs(s: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(t.and_utc().timestamp() - 8 * 3600)
}
