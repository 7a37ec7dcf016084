//! Field rules shared by every request conversion. Each helper records its violation (never
//! echoing the value) and returns a placeholder on error, so a conversion checks every field
//! and reports all violations at once; nothing reaches storage unless all of them pass.
//!
//! The limits are documented on the proto fields; they are:
//! - ids (`customer_bind_id`, `customer_user_id`, `out_id`): at most 128 characters, no control
//!   characters (so no NUL, which PostgreSQL `text` cannot hold, and no newlines);
//! - `ext`: at most 512 characters, no control characters except `\n`, `\r`, `\t`;
//! - `pool_key`: 1–64 characters of `[A-Za-z0-9_.-]` (`domain::validate_pool_key`);
//! - `binding_id`: a UUID (any spelling; stored ids are lowercase hyphenated). As a lookup
//!   key, clean text that is not a UUID is NOT_FOUND without a lookup; as a filter, it is
//!   INVALID_ARGUMENT;
//! - timestamps: a valid `google.protobuf.Timestamp` (`nanos` in 0..=999 999 999, `seconds`
//!   within 0001-01-01T00:00:00Z..=9999-12-31T23:59:59Z) before any business range.

use prost_types::Timestamp;
use tonic::metadata::MetadataMap;

use super::TENANT_HEADER;
use crate::domain::{
    MAX_TENANT_LEN, Millis, Tenant, error::Violations, error::reason, text::check_text,
    validate_pool_key,
};

/// `google.protobuf.Timestamp` bounds: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
pub(crate) const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
pub(crate) const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// Longest page token the server hands out is `b.` + a 36-character UUID.
pub(crate) const MAX_PAGE_TOKEN_LEN: usize = 64;

/// Single-line text kept verbatim: at most `max` characters, no control characters.
pub(crate) fn line(v: &mut Violations, field: &str, raw: &str, max: usize) -> String {
    checked(v, field, raw, max, false)
}

/// Free text kept verbatim: at most `max` characters; `\n`, `\r`, `\t` allowed.
pub(crate) fn text(v: &mut Violations, field: &str, raw: &str, max: usize) -> String {
    checked(v, field, raw, max, true)
}

fn checked(v: &mut Violations, field: &str, raw: &str, max: usize, newlines: bool) -> String {
    match check_text(raw, max, newlines) {
        Ok(()) => raw.to_owned(),
        Err(e) => {
            v.add(reason::INVALID_ARGUMENT, field, e);
            String::new()
        }
    }
}

/// An optional id: trimmed, empty = `None`, otherwise a [`line`].
pub(crate) fn opt_id(v: &mut Violations, field: &str, raw: &str, max: usize) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    let s = line(v, field, t, max);
    (!s.is_empty()).then_some(s)
}

/// A required pool key (trimmed).
pub(crate) fn pool_key(v: &mut Violations, field: &str, raw: &str) -> String {
    let k = raw.trim();
    if k.is_empty() {
        v.add(reason::INVALID_ARGUMENT, field, "is required");
        return String::new();
    }
    match validate_pool_key(k) {
        Ok(()) => k.to_owned(),
        Err(e) => {
            v.add(reason::INVALID_ARGUMENT, field, e);
            String::new()
        }
    }
}

/// An optional pool key filter (trimmed; empty = `None`).
pub(crate) fn opt_pool_key(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    if raw.trim().is_empty() {
        return None;
    }
    Some(pool_key(v, field, raw))
}

/// Longest `binding_id` accepted as text (the longest UUID spelling, `urn:uuid:…`, is 45).
pub(crate) const MAX_BINDING_ID_LEN: usize = 64;

/// A `binding_id` naming a binding to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindingIdArg {
    Absent,
    /// A UUID, in the stored spelling (lowercase hyphenated).
    Uuid(String),
    /// Clean text that is not a UUID: it names no binding, so the answer is NOT_FOUND without
    /// a lookup (the API answered NOT_FOUND for unknown ids before ids were checked).
    NoSuchBinding,
}

/// A `binding_id` to look up (trimmed; empty = absent). At most 64 characters without control
/// characters, else INVALID_ARGUMENT; a UUID in any spelling is normalised.
pub(crate) fn binding_id_arg(v: &mut Violations, field: &str, raw: &str) -> BindingIdArg {
    let t = raw.trim();
    if t.is_empty() {
        return BindingIdArg::Absent;
    }
    if let Err(e) = check_text(t, MAX_BINDING_ID_LEN, false) {
        v.add(reason::INVALID_ARGUMENT, field, e);
        return BindingIdArg::NoSuchBinding;
    }
    match uuid::Uuid::try_parse(t) {
        Ok(u) => BindingIdArg::Uuid(u.hyphenated().to_string()),
        Err(_) => BindingIdArg::NoSuchBinding,
    }
}

/// A `binding_id` filter (trimmed; empty = `None`): a filter that can match nothing is a
/// client mistake, so anything but a UUID is INVALID_ARGUMENT.
pub(crate) fn opt_binding_id(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    match uuid::Uuid::try_parse(t) {
        Ok(u) => Some(u.hyphenated().to_string()),
        Err(_) => {
            v.add(
                reason::INVALID_ARGUMENT,
                field,
                "must be a UUID such as 0190f5a4-7e3b-7c1e-9a51-3c2f1d0e8b7a (a binding_id)",
            );
            None
        }
    }
}

/// A `google.protobuf.Timestamp` as epoch milliseconds. Out-of-range `seconds` or `nanos` are
/// recorded against `<field>.seconds` / `<field>.nanos` with `reason`; the arithmetic cannot
/// overflow once both are in range.
pub(crate) fn timestamp(
    v: &mut Violations,
    reason: &'static str,
    field: &str,
    t: &Timestamp,
) -> Option<Millis> {
    let mut ok = true;
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds) {
        v.add(
            reason,
            &format!("{field}.seconds"),
            format!(
                "must be within the Timestamp range 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z \
                 ({MIN_TIMESTAMP_SECONDS}..={MAX_TIMESTAMP_SECONDS})"
            ),
        );
        ok = false;
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        v.add(
            reason,
            &format!("{field}.nanos"),
            "must be within 0..=999999999",
        );
        ok = false;
    }
    ok.then(|| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// An ISO 3166 alpha-2 code (trimmed, upper-cased); empty = `None`.
pub(crate) fn iso2(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        v.add(
            reason::INVALID_ARGUMENT,
            field,
            "must be an ISO 3166 alpha-2 code such as HK",
        );
        return None;
    }
    Some(s.to_ascii_uppercase())
}

/// The tenant named by the `x-pns-tenant` header, or why the header is invalid: absent or
/// empty = `default`; otherwise sent once, 1–64 characters of `[A-Za-z0-9._-]` (surrounding
/// spaces ignored). A header that is not visible ASCII used to fall back to `default`.
pub(crate) fn tenant(md: &MetadataMap) -> Result<Tenant, String> {
    let mut values = md.get_all(TENANT_HEADER).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("must be sent at most once".into());
    }
    parse_tenant(first.map(|v| v.as_bytes()))
}

pub(crate) fn parse_tenant(raw: Option<&[u8]>) -> Result<Tenant, String> {
    let Some(raw) = raw else {
        return Ok("default".into());
    };
    let t = std::str::from_utf8(raw).map(str::trim).unwrap_or("\u{0}");
    if t.is_empty() {
        return Ok("default".into());
    }
    if t.len() > MAX_TENANT_LEN
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "must be 1 to {MAX_TENANT_LEN} characters of A-Z, a-z, 0-9, '.', '_', '-'"
        ));
    }
    Ok(t.to_owned())
}

/// Records an invalid tenant header; returns the tenant (a placeholder when invalid).
pub(crate) fn take_tenant(v: &mut Violations, tenant: Result<Tenant, String>) -> Tenant {
    v.take(reason::INVALID_ARGUMENT, TENANT_HEADER, tenant)
        .unwrap_or_default()
}

/// Opaque page tokens are `<kind>.<cursor>`, at most [`MAX_PAGE_TOKEN_LEN`] characters; the
/// cursor must be one this list hands out (`is_cursor`), so a token of another list, an
/// edited token or garbage is INVALID_ARGUMENT rather than a query with a strange bound.
pub(crate) fn page_token(
    v: &mut Violations,
    kind: &str,
    token: &str,
    is_cursor: fn(&str) -> bool,
) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let cursor = (token.len() <= MAX_PAGE_TOKEN_LEN)
        .then(|| token.strip_prefix(kind)?.strip_prefix('.'))
        .flatten()
        .filter(|c| is_cursor(c));
    if cursor.is_none() {
        v.add(
            reason::INVALID_ARGUMENT,
            "page_token",
            "is not a next_page_token of this list",
        );
    }
    cursor.map(str::to_owned)
}

pub(crate) fn encode_token(kind: &str, cursor: &str) -> String {
    format!("{kind}.{cursor}")
}

/// Cursor of `ListBindings`: a binding id as stored (lowercase hyphenated UUID).
pub(crate) fn is_binding_cursor(c: &str) -> bool {
    uuid::Uuid::try_parse(c).is_ok_and(|u| u.hyphenated().to_string() == c)
}

/// Cursor of `ListNumbers`: a number as stored (5–15 digits).
pub(crate) fn is_number_cursor(c: &str) -> bool {
    (5..=15).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_ids_are_uuids_or_name_no_binding() {
        let id = "0190f5a4-7e3b-7c1e-9a51-3c2f1d0e8b7a";
        let mut v = Violations::default();
        assert_eq!(binding_id_arg(&mut v, "b", " "), BindingIdArg::Absent);
        assert_eq!(
            binding_id_arg(&mut v, "b", id),
            BindingIdArg::Uuid(id.into())
        );
        let upper = id.to_uppercase().replace('-', "");
        assert_eq!(
            binding_id_arg(&mut v, "b", &upper),
            BindingIdArg::Uuid(id.into())
        );
        assert_eq!(
            binding_id_arg(&mut v, "b", "missing"),
            BindingIdArg::NoSuchBinding
        );
        assert!(v.finish().is_ok());
        for bad in ["a\0".to_owned(), "x".repeat(65), format!("{id}\n{id}")] {
            let mut v = Violations::default();
            binding_id_arg(&mut v, "b", &bad);
            assert!(v.finish().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_outside_the_protobuf_range_are_violations_not_overflows() {
        let mut v = Violations::default();
        let ts = |seconds, nanos| Timestamp { seconds, nanos };
        assert_eq!(timestamp(&mut v, "R", "t", &ts(1, 5_000_000)), Some(1005));
        assert_eq!(
            timestamp(&mut v, "R", "t", &ts(MAX_TIMESTAMP_SECONDS, 999_999_999)),
            Some(253_402_300_799_999)
        );
        assert!(v.finish().is_ok());
        for (t, field) in [
            (ts(645_636_044_375_992_648, 0), "t.seconds"),
            (ts(i64::MIN, 0), "t.seconds"),
            (ts(0, 1_000_000_000), "t.nanos"),
            (ts(0, -1), "t.nanos"),
        ] {
            let mut v = Violations::default();
            assert_eq!(timestamp(&mut v, "R", "t", &t), None);
            match v.finish() {
                Err(crate::domain::DomainError::InvalidArgument { reason, violations }) => {
                    assert_eq!(reason, "R");
                    assert_eq!(violations[0].field, field);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn tenants_are_short_plain_names() {
        assert_eq!(parse_tenant(None).unwrap(), "default");
        assert_eq!(parse_tenant(Some(b"  ")).unwrap(), "default");
        assert_eq!(parse_tenant(Some(b" shop-2.eu_1 ")).unwrap(), "shop-2.eu_1");
        assert!(parse_tenant(Some("t".repeat(64).as_bytes())).is_ok());
        for bad in [&b"t/1"[..], b"a b", b"caf\xc3\xa9", b"\xff", b"a\0"] {
            assert!(parse_tenant(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(parse_tenant(Some("t".repeat(65).as_bytes())).is_err());
    }

    #[test]
    fn page_tokens_take_only_cursors_of_their_list() {
        let id = "0190f5a4-7e3b-7c1e-9a51-3c2f1d0e8b7a";
        let mut v = Violations::default();
        assert_eq!(
            page_token(&mut v, "b", &encode_token("b", id), is_binding_cursor).as_deref(),
            Some(id)
        );
        assert_eq!(page_token(&mut v, "b", "", is_binding_cursor), None);
        assert!(v.finish().is_ok());
        for bad in [
            "b.".to_owned(),
            "b.x".into(),
            format!("b.{}", id.to_uppercase()),
            format!("n.{id}"),
            "b".repeat(65),
        ] {
            let mut v = Violations::default();
            page_token(&mut v, "b", &bad, is_binding_cursor);
            assert!(v.finish().is_err(), "{bad}");
        }
        assert!(is_number_cursor("85290000001"));
        assert!(!is_number_cursor("８５２９０"));
        assert!(!is_number_cursor("+85290000001"));
        assert!(!is_number_cursor("1234"));
    }
}
