//! Request handling of the fake: gateway checks first (as the POP gateway does), then injected
//! behaviours, then the four operations the adapter uses.

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::json;

use super::gateway::{
    Checked, Fail, business, check_expiration, gateway_checks, gateway_error, gw, is_live,
    is_number, ok, required,
};
use super::{Behaviour, FakeBinding, RecordedRequest, Shared};

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
