//! Aliyun failures → `ProviderError`: business codes (HTTP 200, body `Code`), POP gateway errors
//! (HTTP 4xx/5xx) and transport failures.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::domain::mask;
use crate::domain::provider::{FailureClass, Outcome, ProviderError};

pub(super) const PROVIDER: &str = "aliyun";

/// When a throttling answer carries no `TimeLeft`, wait this long before trying again.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which operation failed: a few codes mean different things per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Bind,
    Unbind,
    Update,
    Query,
}

pub(super) fn err(
    class: FailureClass,
    outcome: Outcome,
    code: &str,
    message: &str,
) -> ProviderError {
    ProviderError {
        provider: PROVIDER,
        class,
        outcome,
        code: code.to_owned(),
        message: scrub(message),
        retry_after: None,
    }
}

/// Makes a carrier message safe to show: `SignatureDoesNotMatch` echoes the server's string to
/// sign (cut off), and a message might echo a phone number (long digit runs are masked).
fn scrub(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let message = match lower.find("string to sign") {
        Some(i) => message[..i].trim_end(),
        None => message,
    };
    let mut out = String::with_capacity(message.len());
    let mut digits = String::new();
    let flush = |out: &mut String, digits: &mut String| {
        out.push_str(&if digits.len() >= 7 {
            mask(digits)
        } else {
            digits.clone()
        });
        digits.clear();
    };
    for c in message.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut out, &mut digits);
            out.push(c);
        }
    }
    flush(&mut out, &mut digits);
    out
}

/// A business `Code` other than `OK`. The API answered, so nothing happened upstream.
pub(super) fn business(op: Op, code: &str, message: &str, headers: &HeaderMap) -> ProviderError {
    use FailureClass::*;
    let class = match code {
        "isv.NO_AVAILABLE_NUMBER" => NoAvailableNumber,
        "isv.BIND_CONFLICT" | "isv.NO_USED_BY_OTHERS" => BindConflict,
        "isv.MOBILE_NUMBER_ILLEGAL"
        | "isv.EXPIRE_DATE_ILLEGAL"
        | "isv.ILLEGAL_ARGUMENT"
        | "isv.INVALID_PARAMETERS" => InvalidArgument,
        "isv.SUBS_NOT_EXIST" => NotFound,
        // On a bind the X was chosen by the client; afterwards it is the binding's own X.
        "isv.NO_NOT_EXIST" if op == Op::Bind => InvalidArgument,
        "isv.NO_NOT_EXIST" => NotFound,
        "isv.FLOW_LIMIT" => Throttled,
        "isp.SYSTEM_ERROR"
        | "isp.UNKNOWN_ERR_CODE"
        | "isp.DAO_EXCEPTION"
        | "isp.VENDOR_UNAVAILABLE"
        | "isp.GATEWAY_ERROR"
        | "isv.VENDOR_BIND_FAILED" => Unavailable,
        "isp.RAM_PERMISSION_DENY" => PermissionDenied,
        // On UpdateSubscription it means the binding has already expired.
        "isv.FORBIDDEN_ACTION" if op == Op::Update => FailedPrecondition,
        "isv.FORBIDDEN_ACTION" => PermissionDenied,
        "isv.UPDATE_CONFLICT" => FailedPrecondition,
        // Account, product and pool set-up: only an operator can fix these.
        "isv.OUT_OF_SERVICE"
        | "isv.PRODUCT_UN_SUBSCRIPT"
        | "isv.PRODUCT_UNSUBSCRIBE"
        | "isv.ACCOUNT_NOT_EXISTS"
        | "isv.ACCOUNT_ABNORMAL"
        | "isv.PARTNER_NOT_EXIST"
        | "isv.PARTNER_IS_CLOSED"
        | "isv.POOLKEY_NOT_EXISTS"
        | "isv.BUY_NUM_OVER_LIMIT" => Configuration,
        // Undocumented: `isv` blames the caller's request, `isp` the platform.
        c if c.starts_with("isv.") => InvalidArgument,
        _ => Unavailable,
    };
    let mut e = err(class, Outcome::Definite, code, message);
    if class == Throttled {
        e.retry_after = Some(retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER));
    }
    e
}

/// Common parameters the adapter itself fills in: a gateway complaint about them is a bug or a
/// broken configuration, not a bad client request.
const OWN_PARAMS: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Format",
    "PoolKey",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    // The gateway spells it `InvalidTimeStamp.*`.
    "TimeStamp",
    "Version",
];

/// An HTTP 4xx/5xx answer from the POP gateway. `code` is `None` when the body was not the
/// documented JSON (a proxy's error page, say).
pub(super) fn gateway(
    op: Op,
    status: u16,
    code: Option<&str>,
    message: &str,
    headers: &HeaderMap,
) -> ProviderError {
    use FailureClass::*;
    let Some(code) = code else {
        let class = match status {
            429 => Throttled,
            s if s >= 500 => Unavailable,
            _ => Configuration,
        };
        return finish(
            err(
                class,
                outcome_of(status, ""),
                &format!("http_{status}"),
                message,
            ),
            headers,
        );
    };
    let class = match code {
        c if c.starts_with("isv.") || c.starts_with("isp.") => {
            return business(op, c, message, headers);
        }
        c if c == "Throttling" || c.starts_with("Throttling.") => Throttled,
        c if c == "Forbidden" || c.starts_with("Forbidden.") => PermissionDenied,
        "InternalError" | "ServiceUnavailable" => Unavailable,
        c if c.starts_with("Missing") || c.starts_with("Invalid") => {
            let param = c
                .trim_start_matches("Missing")
                .trim_start_matches("Invalid");
            let param = param.split('.').next().unwrap_or_default();
            // `InvalidParameter.Format`: `Format` is neither JSON nor XML.
            let own = OWN_PARAMS.contains(&param) || c == "InvalidParameter.Format";
            if param.is_empty() || own || c.starts_with("InvalidApi") {
                Configuration
            } else {
                InvalidArgument
            }
        }
        // SignatureDoesNotMatch, SignatureNonceUsed, UnsupportedHTTPMethod, …: our request is
        // malformed in a way no client input can cause.
        _ if status >= 500 => Unavailable,
        _ => Configuration,
    };
    finish(err(class, outcome_of(status, code), code, message), headers)
}

fn finish(mut e: ProviderError, headers: &HeaderMap) -> ProviderError {
    if e.class == FailureClass::Throttled {
        e.retry_after = Some(retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER));
    }
    e
}

/// 4xx: the gateway refused before the API ran. 503 `ServiceUnavailable`: refused as well. Any
/// other 5xx (`InternalError`, a proxy's 502/504) may come after the backend acted.
fn outcome_of(status: u16, code: &str) -> Outcome {
    if status < 500 || status == 503 || code == "ServiceUnavailable" {
        Outcome::Definite
    } else {
        Outcome::Unknown
    }
}

/// `x-ratelimit-user-api` / `x-ratelimit-user` hold `Key:Value` pairs separated by commas, one
/// of them `TimeLeft:<ms>`; the longer wait of the two wins (as openapi-util does).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["x-ratelimit-user-api", "x-ratelimit-user"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .filter_map(|v| {
            v.split(',').find_map(|pair| {
                let (k, ms) = pair.split_once(':')?;
                (k.trim() == "TimeLeft").then(|| ms.trim().parse::<u64>().ok())?
            })
        })
        .max()
        .map(Duration::from_millis)
}

/// reqwest failed before an HTTP status arrived. A failed connect means the request never left;
/// anything later (timeout while waiting, reset) may have reached the carrier.
pub(super) fn transport(e: &reqwest::Error) -> ProviderError {
    if e.is_builder() {
        return err(
            FailureClass::Configuration,
            Outcome::Definite,
            "request",
            "cannot build the request",
        );
    }
    if e.is_connect() {
        return err(
            FailureClass::Unavailable,
            Outcome::Definite,
            "connect",
            "cannot connect to Aliyun",
        );
    }
    if e.is_timeout() {
        return err(
            FailureClass::Unavailable,
            Outcome::Unknown,
            "timeout",
            "no answer from Aliyun in time",
        );
    }
    err(
        FailureClass::Unavailable,
        Outcome::Unknown,
        "transport",
        "connection to Aliyun failed mid-request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn messages_lose_strings_to_sign_and_numbers() {
        let m = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&A";
        assert_eq!(
            scrub(m),
            "Specified signature is not matched with our calculation. server"
        );
        assert_eq!(
            scrub("bad PhoneNoA 13900001234, code 42"),
            "bad PhoneNoA 1390****234, code 42"
        );
    }

    #[test]
    fn time_left_is_parsed_from_either_header() {
        assert_eq!(
            retry_after(&h(&[("x-ratelimit-user-api", "TimeLeft:1200")])),
            Some(Duration::from_millis(1200))
        );
        let both = h(&[
            ("x-ratelimit-user-api", "Limit:10,Remain:0,TimeLeft:300"),
            ("x-ratelimit-user", "TimeLeft:900"),
        ]);
        assert_eq!(retry_after(&both), Some(Duration::from_millis(900)));
        assert_eq!(retry_after(&h(&[("x-ratelimit-user", "Remain:3")])), None);
    }

    #[test]
    fn business_codes_map_by_operation() {
        let none = HeaderMap::new();
        let c = |op, code| business(op, code, "m", &none).class;
        assert_eq!(
            c(Op::Update, "isv.FORBIDDEN_ACTION"),
            FailureClass::FailedPrecondition
        );
        assert_eq!(
            c(Op::Bind, "isv.FORBIDDEN_ACTION"),
            FailureClass::PermissionDenied
        );
        assert_eq!(
            c(Op::Bind, "isv.NO_NOT_EXIST"),
            FailureClass::InvalidArgument
        );
        assert_eq!(c(Op::Unbind, "isv.NO_NOT_EXIST"), FailureClass::NotFound);
        assert_eq!(
            c(Op::Bind, "isv.POOLKEY_NOT_EXISTS"),
            FailureClass::Configuration
        );
        assert_eq!(
            c(Op::Bind, "isv.SOMETHING_NEW"),
            FailureClass::InvalidArgument
        );
        assert_eq!(c(Op::Bind, "isp.SOMETHING_NEW"), FailureClass::Unavailable);
        let flow = business(Op::Bind, "isv.FLOW_LIMIT", "m", &none);
        assert_eq!(
            (flow.class, flow.retry_after),
            (FailureClass::Throttled, Some(DEFAULT_RETRY_AFTER))
        );
    }

    #[test]
    fn gateway_codes_map_to_classes() {
        let none = HeaderMap::new();
        let c = |status, code| gateway(Op::Bind, status, Some(code), "m", &none).class;
        assert_eq!(c(400, "SignatureDoesNotMatch"), FailureClass::Configuration);
        assert_eq!(
            c(404, "InvalidAccessKeyId.NotFound"),
            FailureClass::Configuration
        );
        assert_eq!(
            c(400, "InvalidTimeStamp.Expired"),
            FailureClass::Configuration
        );
        assert_eq!(c(400, "SignatureNonceUsed"), FailureClass::Configuration);
        assert_eq!(c(404, "InvalidApi.NotFound"), FailureClass::Configuration);
        assert_eq!(c(400, "MissingPoolKey"), FailureClass::Configuration);
        assert_eq!(c(400, "MissingPhoneNoA"), FailureClass::InvalidArgument);
        assert_eq!(
            c(400, "InvalidExpiration.Malformed"),
            FailureClass::InvalidArgument
        );
        assert_eq!(c(400, "Throttling.User"), FailureClass::Throttled);
        assert_eq!(c(400, "Throttling.Api"), FailureClass::Throttled);
        assert_eq!(c(403, "Forbidden.RAM"), FailureClass::PermissionDenied);
        assert_eq!(c(500, "InternalError"), FailureClass::Unavailable);
        let e = gateway(Op::Bind, 503, Some("ServiceUnavailable"), "m", &none);
        assert_eq!(
            (e.class, e.outcome),
            (FailureClass::Unavailable, Outcome::Definite)
        );
        assert_eq!(
            gateway(Op::Bind, 500, Some("InternalError"), "m", &none).outcome,
            Outcome::Unknown
        );
        assert_eq!(gateway(Op::Bind, 502, None, "m", &none).code, "http_502");
    }
}
