//! Request ids: one per gRPC call and per HTTP request, taken from the caller's `x-request-id`
//! when it is a safe token, else generated (UUID v7: time-ordered, so ids of one incident sort
//! together in the logs). The id is echoed in the response's `x-request-id`, put on every log
//! line of the request (a span field) and, for gRPC errors, into ErrorInfo metadata
//! (`request_id`).

/// Header / metadata key of the request id.
pub const HEADER: &str = "x-request-id";
/// Key of the request id in an error's ErrorInfo metadata.
pub const ERROR_INFO_KEY: &str = "request_id";
/// Longest id accepted from a caller.
pub const MAX_LEN: usize = 64;

/// Whether a caller's id may be used as is: 1–64 characters of `[A-Za-z0-9._:-]` (no spaces,
/// quotes or control characters, so it is safe in a log line and a header).
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The caller's id if valid, else a new one.
pub fn accept_or_generate(sent: Option<&[u8]>) -> String {
    match sent.and_then(|b| std::str::from_utf8(b).ok()) {
        Some(id) if is_valid(id) => id.to_owned(),
        _ => generate(),
    }
}

pub fn generate() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_kept_and_others_replaced() {
        assert_eq!(accept_or_generate(Some(b"abc-123.x_y:z")), "abc-123.x_y:z");
        let max = "a".repeat(MAX_LEN);
        assert_eq!(accept_or_generate(Some(max.as_bytes())), max);
        for bad in [
            "".as_bytes(),
            b"has space",
            b"quote\"",
            b"new\nline",
            "ünï".as_bytes(),
            &[0xff, 0xfe],
            "a".repeat(MAX_LEN + 1).as_bytes(),
        ] {
            let id = accept_or_generate(Some(bad));
            assert_ne!(id.as_bytes(), bad);
            assert!(is_valid(&id));
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        }
        assert!(is_valid(&accept_or_generate(None)));
    }
}
