//! The fake's rules: header and signature checks, DID allocation, de-duplication by
//! `customerBindId`, unbinding. Error answers are `(code, msg)` as NXCloud documents them.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{FakeBinding, Inner};
use crate::support::md5::md5_hex;

pub(super) type Failure = (i64, &'static str);

/// Header and signature checks, in the order NXCloud documents its common errors.
pub(super) fn check(
    st: &Inner,
    path: &str,
    h: &HeaderMap,
    body: &[u8],
) -> Result<(String, Value), Failure> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(ak), Some(action), Some(biz), Some(ts), Some(sign)) = (
        get("accessKey"),
        get("action"),
        get("bizType"),
        get("ts"),
        get("sign"),
    ) else {
        return Err((1001, "Missing common parameters"));
    };
    let expected_action = match path {
        "/v1/pns/bind/xyb" => action == "bindXYB",
        "/v1/pns/bind/axe" => action == "bindAXE",
        "/v1/api/pns/" => action == "unbindAXB",
        _ => false,
    };
    if biz != "5" || !expected_action {
        return Err((1002, "Parameter error"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    match ts.parse::<i64>() {
        Ok(t) if (now - t).abs() <= 60_000 => {}
        _ => return Err((1004, "Timestamp has expired")),
    }
    // Independent of the adapter: the documented string, hashed by our own MD5.
    let mut s = format!("accessKey={ak}&action={action}&bizType={biz}&ts={ts}").into_bytes();
    if !body.is_empty() {
        s.extend_from_slice(b"&body=");
        s.extend_from_slice(body);
    }
    s.extend_from_slice(format!("&accessSecret={}", st.access_secret).as_bytes());
    if md5_hex(&s) != sign {
        return Err((1003, "Invalid signature"));
    }
    if ak != st.access_key {
        return Err((1005, "Insufficient permissions"));
    }
    let req: Value = serde_json::from_slice(body).map_err(|_| (1002, "Parameter error"))?;
    Ok((action, req))
}

pub(super) fn perform(st: &mut Inner, action: &str, req: &Value) -> Result<Option<Value>, Failure> {
    let str_of = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match action {
        "unbindAXB" => {
            let (id, cid) = (str_of("bindId"), str_of("customerBindId"));
            if id.is_none() && cid.is_none() {
                return Err((1002, "Parameter error"));
            }
            let pos = st.bindings.iter().position(|b| {
                id.is_some() && Some(&b.bind_id) == id.as_ref()
                    || cid.is_some() && b.customer_bind_id == cid
            });
            let b = st.bindings.remove(pos.ok_or((10013, "binding not exist"))?);
            if b.action == "bindXYB" {
                st.free_dids.push(b.did_x);
                st.free_dids.extend(b.did_y);
            }
            Ok(None)
        }
        _ => {
            let phone_key = if action == "bindXYB" {
                "phoneB"
            } else {
                "phoneA"
            };
            let (Some(_), Some(phone), Some(_)) = (
                str_of("businessId"),
                str_of(phone_key),
                req.get("bindExpireSecond").and_then(Value::as_i64),
            ) else {
                return Err((1002, "Parameter error"));
            };
            let cid = str_of("customerBindId");
            if let Some(b) = st
                .bindings
                .iter()
                .find(|b| cid.is_some() && b.customer_bind_id == cid)
            {
                return Ok(Some(data_of(b)));
            }
            let b = if action == "bindXYB" {
                bind_xyb(st, req, phone, cid)?
            } else {
                bind_axe(st, req, phone, cid)?
            };
            let data = data_of(&b);
            st.bindings.push(b);
            Ok(Some(data))
        }
    }
}

fn take_did(st: &mut Inner, wanted: Option<&str>) -> Result<String, Failure> {
    let pos = match wanted {
        Some(w) => st.free_dids.iter().position(|d| d == w),
        None => (!st.free_dids.is_empty()).then_some(0),
    };
    pos.map(|p| st.free_dids.remove(p))
        .ok_or((10010, "Virtual number exhausted"))
}

fn bind_xyb(
    st: &mut Inner,
    req: &Value,
    phone: String,
    cid: Option<String>,
) -> Result<FakeBinding, Failure> {
    let did_x = take_did(st, req.get("didX").and_then(Value::as_str))?;
    let did_y = if req.get("delayedGetY").and_then(Value::as_bool) == Some(true) {
        None
    } else {
        match take_did(st, req.get("didY").and_then(Value::as_str)) {
            Ok(y) => Some(y),
            Err(e) => {
                st.free_dids.push(did_x);
                return Err(e);
            }
        }
    };
    st.seq += 1;
    let bind_id = format!("{:032x}", st.seq);
    Ok(FakeBinding {
        bind_id,
        customer_bind_id: cid,
        action: "bindXYB".into(),
        phone,
        did_x,
        did_y,
        extension_x: None,
    })
}

/// AXE shares X between bindings; the extension tells them apart.
fn bind_axe(
    st: &mut Inner,
    req: &Value,
    phone: String,
    cid: Option<String>,
) -> Result<FakeBinding, Failure> {
    let did_x = match req.get("didX").and_then(Value::as_str) {
        Some(w) => st.all_dids.iter().find(|d| *d == w).cloned(),
        None => st.all_dids.first().cloned(),
    }
    .ok_or((10010, "Virtual number exhausted"))?;
    st.seq += 1;
    let ext = format!("{:04}", 1000 + st.seq % 9000);
    let bind_id = format!("{:032x}", st.seq);
    Ok(FakeBinding {
        bind_id,
        customer_bind_id: cid,
        action: "bindAXE".into(),
        phone,
        did_x,
        did_y: None,
        extension_x: Some(ext),
    })
}

fn data_of(b: &FakeBinding) -> Value {
    let mut d = json!({ "bindId": b.bind_id, "didX": b.did_x });
    if b.action == "bindXYB" {
        d["didY"] = json!(b.did_y.clone().unwrap_or_default());
    } else {
        d["extensionX"] = json!(b.extension_x);
    }
    d
}
