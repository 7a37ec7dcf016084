//! Request handling of the fake: gateway checks first (as the POP gateway does), then injected
//! behaviours, then the four operations the adapter uses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::sign::{cst_epoch_secs, reference_signature, string_to_sign, timestamp_skew_secs};
use super::{Behaviour, FakeBinding, RecordedRequest, Shared};

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
enum Fail {
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
    fn response(self) -> Response {
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

fn gw(status: u16, code: &str, message: &str) -> Fail {
    Fail::Gateway {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn business(code: &str, message: &str) -> Fail {
    Fail::Business {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn gateway_error(status: u16, code: &str, message: &str) -> Response {
    gw(status, code, message).response()
}

fn ok(extra: Value) -> Response {
    let mut body = json!({"RequestId": request_id(), "Code": "OK", "Message": "OK"});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    Json(body).into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

type Checked<T> = Result<T, Fail>;

pub(super) async fn process(shared: &Shared, req: &RecordedRequest) -> Response {
    match gateway_checks(shared, req) {
        Ok(()) => {}
        Err(fail) => return fail.response(),
    }
    let injected = shared.lock().next.pop_front();
    match injected {
        Some(Behaviour::BusinessError(code)) => return business(&code, "injected").response(),
        Some(Behaviour::InternalError) => {
            return gateway_error(
                500,
                "InternalError",
                "The request processing has failed due to some unknown error.",
            );
        }
        Some(Behaviour::Throttle { time_left_ms }) => {
            let mut resp = gateway_error(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("Limit:10,Remain:0,TimeLeft:{time_left_ms}"))
            {
                resp.headers_mut().insert("x-ratelimit-user-api", v);
            }
            return resp;
        }
        Some(Behaviour::Delay(d)) => tokio::time::sleep(d).await,
        Some(Behaviour::AnswerLate(d)) => {
            let resp = dispatch(shared, req);
            tokio::time::sleep(d).await;
            return resp;
        }
        None => {}
    }
    dispatch(shared, req)
}

fn dispatch(shared: &Shared, req: &RecordedRequest) -> Response {
    let result = match req.action() {
        "BindAxnExtension" => bind(shared, req),
        "UnbindSubscription" => unbind(shared, req),
        "UpdateSubscription" => update(shared, req),
        "QuerySubscriptionDetail" => query(shared, req),
        other => Err(gw(
            404,
            "InvalidApi.NotFound",
            &format!("Specified api is not found, please check your url and method. {other}"),
        )),
    };
    result.unwrap_or_else(Fail::response)
}

fn gateway_checks(shared: &Shared, req: &RecordedRequest) -> Checked<()> {
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
fn required<'r>(
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

fn is_number(s: &str) -> bool {
    (5..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `Expiration` must be `yyyy-MM-dd HH:mm:ss` (CST) and more than one minute ahead.
fn check_expiration(s: &str) -> Checked<()> {
    match cst_epoch_secs(s) {
        Some(t) if t > chrono::Utc::now().timestamp() + 60 => Ok(()),
        _ => Err(business("isv.EXPIRE_DATE_ILLEGAL", "expiration illegal")),
    }
}

fn is_live(b: &FakeBinding) -> bool {
    !b.expired && cst_epoch_secs(&b.expiration).is_some_and(|t| t > chrono::Utc::now().timestamp())
}

fn bind(shared: &Shared, req: &RecordedRequest) -> Checked<Response> {
    let v = required(shared, req, &["PoolKey", "PhoneNoA", "Expiration"])?;
    let (phone_a, expiration) = (v[1], v[2]);
    let opt = |n: &str| req.param(n).filter(|v| !v.is_empty());
    if !is_number(phone_a) || !opt("PhoneNoB").is_none_or(is_number) {
        return Err(business(
            "isv.MOBILE_NUMBER_ILLEGAL",
            "mobile number illegal",
        ));
    }
    check_expiration(expiration)?;
    let recording = match opt("IsRecordingEnabled") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(business(
                "isv.INVALID_PARAMETERS",
                "IsRecordingEnabled must be true or false",
            ));
        }
    };
    let extension = opt("Extension");
    if extension
        .is_some_and(|e| !(1..=3).contains(&e.len()) || !e.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(business(
            "isv.INVALID_PARAMETERS",
            "Extension must be 1-3 digits",
        ));
    }
    if extension.is_some() && opt("PhoneNoX").is_none() {
        return Err(business(
            "isv.INVALID_PARAMETERS",
            "Extension requires PhoneNoX",
        ));
    }
    let mut inner = shared.lock();
    let live: Vec<FakeBinding> = inner
        .bindings
        .values()
        .filter(|b| is_live(b))
        .cloned()
        .collect();
    let x = match opt("PhoneNoX") {
        Some(x) if !shared.cfg.numbers.iter().any(|n| n == x) => {
            return Err(business("isv.NO_NOT_EXIST", "number does not exist"));
        }
        Some(x) => x.to_owned(),
        None => match shared
            .cfg
            .numbers
            .iter()
            .find(|n| !live.iter().any(|b| &b.phone_x == *n))
        {
            Some(n) => n.clone(),
            None => return Err(business("isv.NO_AVAILABLE_NUMBER", "no available number")),
        },
    };
    let on_x: Vec<&FakeBinding> = live.iter().filter(|b| b.phone_x == x).collect();
    if on_x
        .iter()
        .any(|b| b.phone_a == phone_a || Some(b.extension.as_str()) == extension)
    {
        return Err(business("isv.BIND_CONFLICT", "bind conflict"));
    }
    let extension = match extension {
        Some(e) => e.to_owned(),
        None => (100..=999)
            .map(|n: u32| n.to_string())
            .find(|e| !on_x.iter().any(|b| &b.extension == e))
            .ok_or_else(|| business("isv.NO_AVAILABLE_NUMBER", "no extension left"))?,
    };
    let subs_id = inner.next_subs.to_string();
    inner.next_subs += 1;
    let b = FakeBinding {
        subs_id: subs_id.clone(),
        phone_a: phone_a.to_owned(),
        phone_b: opt("PhoneNoB").map(str::to_owned),
        phone_x: x.clone(),
        extension: extension.clone(),
        expiration: expiration.to_owned(),
        recording,
        out_id: opt("OutId").map(str::to_owned),
        expired: false,
    };
    inner.bindings.insert(subs_id.clone(), b);
    Ok(ok(
        json!({"SecretBindDTO": {"SubsId": subs_id, "SecretNo": x, "Extension": extension}}),
    ))
}

/// The binding named by `SubsId` whose X is `x`; Aliyun does not tell a mismatch from absence.
fn find(shared: &Shared, subs_id: &str, x: &str) -> Checked<FakeBinding> {
    match shared.lock().bindings.get(subs_id) {
        Some(b) if b.phone_x == x => Ok(b.clone()),
        _ => Err(business(
            "isv.SUBS_NOT_EXIST",
            "subscription does not exist",
        )),
    }
}

fn unbind(shared: &Shared, req: &RecordedRequest) -> Checked<Response> {
    let v = required(shared, req, &["PoolKey", "SubsId", "SecretNo"])?;
    find(shared, v[1], v[2])?;
    shared.lock().bindings.remove(v[1]);
    Ok(ok(json!({"ChargeId": "true"})))
}

fn update(shared: &Shared, req: &RecordedRequest) -> Checked<Response> {
    let v = required(
        shared,
        req,
        &["PoolKey", "SubsId", "PhoneNoX", "OperateType"],
    )?;
    let b = find(shared, v[1], v[2])?;
    if v[3] != "updateExpire" {
        return Err(business(
            "isv.INVALID_PARAMETERS",
            "the fake only supports updateExpire",
        ));
    }
    let Some(expiration) = req.param("Expiration").filter(|e| !e.is_empty()) else {
        return Err(business(
            "isv.INVALID_PARAMETERS",
            "Expiration is required for updateExpire",
        ));
    };
    if !is_live(&b) {
        return Err(business("isv.FORBIDDEN_ACTION", "updateEndDate"));
    }
    check_expiration(expiration)?;
    if let Some(b) = shared.lock().bindings.get_mut(v[1]) {
        b.expiration = expiration.to_owned();
    }
    Ok(ok(json!({})))
}

fn query(shared: &Shared, req: &RecordedRequest) -> Checked<Response> {
    let v = required(shared, req, &["PoolKey", "SubsId", "PhoneNoX"])?;
    let b = find(shared, v[1], v[2])?;
    Ok(ok(json!({"SecretBindDetailDTO": {
        "SubsId": b.subs_id, "PhoneNoA": b.phone_a, "PhoneNoB": b.phone_b, "PhoneNoX": b.phone_x,
        "Extension": b.extension, "ExpireDate": b.expiration, "GmtCreate": "2024-01-01 00:00:00",
        "Status": if is_live(&b) { 1 } else { 0 }, "NeedRecord": b.recording,
    }})))
}
