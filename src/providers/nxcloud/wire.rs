//! NXCloud request and response bodies, field names exactly as the PNS docs spell them.
//! Optional fields are left out when unset rather than sent as `null` or `""`: the docs only
//! say what an absent field means ("random DID", "default 0").

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `POST /v1/pns/bind/xyb`, `action: bindXYB`.
#[derive(Debug, Serialize)]
pub(super) struct BindXybBody<'a> {
    #[serde(rename = "businessId")]
    pub(super) business_id: &'a str,
    #[serde(rename = "phoneB")]
    pub(super) phone_b: &'a str,
    #[serde(rename = "bindExpireSecond")]
    pub(super) bind_expire_second: i64,
    #[serde(rename = "customerUserId", skip_serializing_if = "Option::is_none")]
    pub(super) customer_user_id: Option<&'a str>,
    #[serde(rename = "didX", skip_serializing_if = "Option::is_none")]
    pub(super) did_x: Option<&'a str>,
    #[serde(rename = "didY", skip_serializing_if = "Option::is_none")]
    pub(super) did_y: Option<&'a str>,
    #[serde(rename = "customerBindId", skip_serializing_if = "Option::is_none")]
    pub(super) customer_bind_id: Option<&'a str>,
    #[serde(rename = "delayedGetY", skip_serializing_if = "is_false")]
    pub(super) delayed_get_y: bool,
    pub(super) recording: bool,
    #[serde(rename = "bindExpireStrategy")]
    pub(super) bind_expire_strategy: i32,
    #[serde(rename = "callInExpireSecond", skip_serializing_if = "is_zero")]
    pub(super) call_in_expire_second: i64,
    #[serde(rename = "callInExpireStrategy")]
    pub(super) call_in_expire_strategy: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ext: Option<&'a str>,
    #[serde(rename = "iso2X", skip_serializing_if = "Option::is_none")]
    pub(super) iso2_x: Option<&'a str>,
    #[serde(rename = "iso2Y", skip_serializing_if = "Option::is_none")]
    pub(super) iso2_y: Option<&'a str>,
}

/// `POST /v1/pns/bind/axe`, `action: bindAXE`.
#[derive(Debug, Serialize)]
pub(super) struct BindAxeBody<'a> {
    #[serde(rename = "businessId")]
    pub(super) business_id: &'a str,
    #[serde(rename = "phoneA")]
    pub(super) phone_a: &'a str,
    #[serde(rename = "bindExpireSecond")]
    pub(super) bind_expire_second: i64,
    #[serde(rename = "didX", skip_serializing_if = "Option::is_none")]
    pub(super) did_x: Option<&'a str>,
    #[serde(rename = "customerBindId", skip_serializing_if = "Option::is_none")]
    pub(super) customer_bind_id: Option<&'a str>,
    pub(super) recording: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ext: Option<&'a str>,
}

/// Legacy action-style `unbindAXB` (one of `bindId` / `customerBindId` is enough; we always
/// have the `bindId`).
#[derive(Debug, Serialize)]
pub(super) struct UnbindBody<'a> {
    #[serde(rename = "bindId")]
    pub(super) bind_id: &'a str,
}

/// The envelope every NXCloud answer uses. `data` is kept raw: it is absent for unbind and its
/// shape on error answers is undocumented.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope {
    pub(super) code: i64,
    #[serde(default)]
    pub(super) msg: String,
    #[serde(rename = "requestId", default)]
    pub(super) request_id: String,
    #[serde(default)]
    pub(super) data: Option<serde_json::Value>,
}

/// `data` of `bindXYB` (`bindId`, `didX`, `didY`) and `bindAXE` (`bindId`, `didX`, `extensionX`).
#[derive(Debug, Deserialize)]
pub(super) struct BindData {
    #[serde(rename = "bindId", default)]
    pub(super) bind_id: String,
    #[serde(rename = "didX", default)]
    pub(super) did_x: String,
    #[serde(rename = "didY", default)]
    pub(super) did_y: Option<String>,
    #[serde(rename = "extensionX", default)]
    pub(super) extension_x: Option<String>,
}

/// `Some(s)` unless `s` is empty: the domain uses `""` for "not given".
pub(super) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
