//! Maps NXCloud answers and transport failures onto `ProviderError`.
//!
//! Every NXCloud error code means the carrier answered, so all of them are `Outcome::Definite`.
//! Only a request that was sent and got no (complete) answer is `Outcome::Unknown`.

use std::time::Duration;

use crate::domain::provider::{FailureClass, Outcome, ProviderError};

pub(super) const PROVIDER: &str = "nxcloud";

pub(super) fn err(
    class: FailureClass,
    outcome: Outcome,
    code: impl Into<String>,
    message: impl Into<String>,
) -> ProviderError {
    ProviderError {
        provider: PROVIDER,
        class,
        outcome,
        code: code.into(),
        message: message.into(),
        retry_after: None,
    }
}

/// Class and a safe explanation for each documented code (§1.5 common, §5 PNS).
fn classify(code: i64, msg: &str) -> (FailureClass, &'static str) {
    use FailureClass::*;
    match code {
        1001 => (Configuration, "a required header is missing (adapter bug)"),
        1002 => (
            InvalidArgument,
            "parameter error (body field, bizType or action rejected)",
        ),
        // Names the signature, never the secret or the signed string.
        1003 => (
            Configuration,
            "invalid signature: check the configured access secret and that the signed body equals the sent body",
        ),
        1004 => (
            Configuration,
            "timestamp rejected: the gateway clock is more than 60 s off NXCloud's",
        ),
        // Wrong accessKey or the account lacks the PNS product: an operator must act, the
        // client cannot, so this is not PERMISSION_DENIED.
        1005 => (
            Configuration,
            "insufficient permissions: wrong access key or PNS not enabled for the account",
        ),
        10001 => (InvalidArgument, "empty binding number"),
        10002 => (InvalidArgument, "the two binding numbers are the same"),
        10003 => (Configuration, "the NXCloud user does not exist"),
        10004 => (
            InvalidArgument,
            "binding number lacks the virtual number's country code",
        ),
        10005 => (Unavailable, "NXCloud failed to fetch numbers"),
        10006 => (Unavailable, "NXCloud failed counting bound numbers"),
        10007 => (InvalidArgument, "virtual number without country prefix"),
        10008 => (NoAvailableNumber, "the account has no virtual numbers"),
        10009 => (Unavailable, "NXCloud failed to retrieve data"),
        10010 => (NoAvailableNumber, "virtual numbers exhausted"),
        10011 | 10012 => (InvalidArgument, "list paging out of range"),
        10013 => (NotFound, "binding does not exist"),
        _ if looks_transient(msg) => (Unavailable, "undocumented error code (looks transient)"),
        _ => (InvalidArgument, "undocumented error code"),
    }
}

/// Undocumented codes: only a message that says the carrier is busy or broken is worth a retry
/// later; anything else is treated as a rejection of this request so nothing loops on it.
fn looks_transient(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "busy",
        "timeout",
        "timed out",
        "try again",
        "internal",
        "system error",
        "unavailable",
        "繁忙",
        "超时",
        "系统",
        "稍后",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// An envelope with a non-zero `code`.
pub(super) fn from_code(code: i64, msg: &str) -> ProviderError {
    let (class, what) = classify(code, msg);
    // NXCloud's `msg` is a short fixed text ("Virtual number exhausted"); it never echoes
    // numbers or credentials, but cap it so an odd answer cannot flood a log line.
    let msg: String = msg.chars().take(120).collect();
    err(
        class,
        Outcome::Definite,
        code.to_string(),
        format!("{what} ({msg})"),
    )
}

/// A non-2xx HTTP status without a usable envelope.
pub(super) fn from_status(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
) -> ProviderError {
    let code = format!("http_{}", status.as_u16());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let mut e = err(
            FailureClass::Throttled,
            Outcome::Definite,
            code,
            "rate limited by NXCloud",
        );
        e.retry_after = retry_after;
        e
    } else if status.is_server_error() {
        err(
            FailureClass::Unavailable,
            Outcome::Definite,
            code,
            format!("NXCloud answered HTTP {status}"),
        )
    } else {
        // 401/403/404…: wrong base URL or credentials at an HTTP level; an operator must act.
        err(
            FailureClass::Configuration,
            Outcome::Definite,
            code,
            format!("NXCloud answered HTTP {status}"),
        )
    }
}

/// A failure of reqwest itself.
pub(super) fn from_transport(e: &reqwest::Error) -> ProviderError {
    if e.is_connect() || e.is_builder() {
        // Never reached NXCloud (refused, DNS, connect timeout, TLS handshake): nothing happened.
        return err(
            FailureClass::Unavailable,
            Outcome::Definite,
            "connect",
            format!("cannot reach NXCloud: {}", describe(e)),
        );
    }
    if e.is_timeout() {
        return err(
            FailureClass::Unavailable,
            Outcome::Unknown,
            "timeout",
            "no answer from NXCloud before the deadline; it may have acted",
        );
    }
    // Sent, then the connection broke (reset, truncated body): NXCloud may have acted.
    err(
        FailureClass::Unavailable,
        Outcome::Unknown,
        "connection_lost",
        format!("connection to NXCloud lost: {}", describe(e)),
    )
}

/// reqwest's message plus its source chain ("connection refused" sits at the bottom of it).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// `Retry-After` in delta-seconds (the HTTP-date form is not worth parsing here).
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_map_to_classes() {
        assert_eq!(
            from_code(10010, "Virtual number exhausted").class,
            FailureClass::NoAvailableNumber
        );
        assert_eq!(
            from_code(10013, "binding not exist").class,
            FailureClass::NotFound
        );
        assert_eq!(
            from_code(1003, "Invalid signature").class,
            FailureClass::Configuration
        );
        assert_eq!(from_code(10004, "x").code, "10004");
    }

    #[test]
    fn unknown_codes_are_definite_and_rejected_unless_transient() {
        let e = from_code(20001, "number locked");
        assert_eq!(
            (e.class, e.outcome),
            (FailureClass::InvalidArgument, Outcome::Definite)
        );
        assert_eq!(
            from_code(99999, "System busy").class,
            FailureClass::Unavailable
        );
    }
}
