//! The fake's answers (gateway and business errors, success envelopes) and the checks the POP
//! gateway makes before any operation runs.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::sign::{cst_epoch_secs, reference_signature, string_to_sign, timestamp_skew_secs};
use super::{FakeBinding, RecordedRequest, Shared};

const COMMON: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Version",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
];

/// A refusal, kept small (a `Response` makes every `Result` large) and rendered at the end.
pub(super) enum Fail {
    Gateway {
        status: u16,
        code: String,
        message: String,
    },
    Business {
        code: String,
        message: String,
    },
}

impl Fail {
    pub(super) fn response(self) -> Response {
        match self {
            Fail::Gateway {
                status,
                code,
                message,
            } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                let body = json!({"RequestId": request_id(), "HostId": "dyplsapi.aliyuncs.com",
                    "Code": code, "Message": message});
                (status, Json(body)).into_response()
            }
            Fail::Business { code, message } => {
                Json(json!({"RequestId": request_id(), "Code": code, "Message": message}))
                    .into_response()
            }
        }
    }
}

pub(super) fn gw(status: u16, code: &str, message: &str) -> Fail {
    Fail::Gateway {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn business(code: &str, message: &str) -> Fail {
    Fail::Business {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn gateway_error(status: u16, code: &str, message: &str) -> Response {
    gw(status, code, message).response()
}

pub(super) fn ok(extra: Value) -> Response {
    let mut body = json!({"RequestId": request_id(), "Code": "OK", "Message": "OK"});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    Json(body).into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

pub(super) type Checked<T> = Result<T, Fail>;

pub(super) fn gateway_checks(shared: &Shared, req: &RecordedRequest) -> Checked<()> {
    for name in COMMON {
        if req.param(name).is_none_or(str::is_empty) {
            return Err(gw(
                400,
                &format!("Missing{name}"),
                &format!("{name} is mandatory for this action."),
            ));
        }
    }
    let p = |n: &str| req.param(n).unwrap_or_default();
    if !["JSON", "XML", "json", "xml"].contains(&req.param("Format").unwrap_or("JSON")) {
        return Err(gw(
            400,
            "InvalidParameter.Format",
            "Format must be JSON or XML.",
        ));
    }
    if p("AccessKeyId") != shared.cfg.access_key_id {
        return Err(gw(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    if p("SignatureMethod") != "HMAC-SHA1" || p("SignatureVersion") != "1.0" {
        return Err(gw(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
        ));
    }
    match timestamp_skew_secs(p("Timestamp")) {
        None => {
            return Err(gw(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp is not valid.",
            ));
        }
        Some(skew) if skew > 15 * 60 => {
            return Err(gw(
                400,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            ));
        }
        Some(_) => {}
    }
    let expected = reference_signature(&req.method, &req.params, &shared.cfg.access_key_secret);
    if p("Signature") != expected {
        // The real gateway echoes its string to sign; the adapter must not pass it on.
        let sts = string_to_sign(&req.method, &req.params);
        let msg = format!(
            "Specified signature is not matched with our calculation. server string to sign is:{sts}"
        );
        return Err(gw(400, "SignatureDoesNotMatch", &msg));
    }
    if !shared.lock().nonces.insert(p("SignatureNonce").to_owned()) {
        return Err(gw(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    if p("Version") != "2017-05-25" {
        return Err(gw(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    Ok(())
}

/// Required operation parameters (gateway `Missing*`), then the pool key (business error).
pub(super) fn required<'r>(
    shared: &Shared,
    req: &'r RecordedRequest,
    names: &[&str],
) -> Checked<Vec<&'r str>> {
    let mut out = Vec::new();
    for name in names {
        match req.param(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push(v),
            None => {
                return Err(gw(
                    400,
                    &format!("Missing{name}"),
                    &format!("{name} is mandatory for this action."),
                ));
            }
        }
    }
    if req.param("PoolKey") != Some(shared.cfg.pool_key.as_str()) {
        return Err(business(
            "isv.POOLKEY_NOT_EXISTS",
            "pool key does not exist",
        ));
    }
    Ok(out)
}

pub(super) fn is_number(s: &str) -> bool {
    (5..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `Expiration` must be `yyyy-MM-dd HH:mm:ss` (CST) and more than one minute ahead.
pub(super) fn check_expiration(s: &str) -> Checked<()> {
    match cst_epoch_secs(s) {
        Some(t) if t > chrono::Utc::now().timestamp() + 60 => Ok(()),
        _ => Err(business("isv.EXPIRE_DATE_ILLEGAL", "expiration illegal")),
    }
}

pub(super) fn is_live(b: &FakeBinding) -> bool {
    !b.expired && cst_epoch_secs(&b.expiration).is_some_and(|t| t > chrono::Utc::now().timestamp())
}
