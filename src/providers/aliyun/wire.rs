//! Aliyun wire formats: the JSON envelope and the two time formats (UTC `Timestamp`, China
//! Standard Time `Expiration`).

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::binding::Millis;

/// Success, business errors (HTTP 200) and gateway errors (HTTP 4xx/5xx) share this shape. The
/// SDKs also accept lower-case `code`/`message` on gateway errors, hence the aliases.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Envelope {
    #[serde(rename = "RequestId", alias = "requestId", default)]
    pub(super) request_id: Option<String>,
    #[serde(rename = "Code", alias = "code", default)]
    pub(super) code: Option<String>,
    #[serde(rename = "Message", alias = "message", default)]
    pub(super) message: Option<String>,
    #[serde(rename = "SecretBindDTO", default)]
    pub(super) secret_bind: Option<SecretBindDto>,
    #[serde(rename = "SecretBindDetailDTO", default)]
    pub(super) secret_bind_detail: Option<SecretBindDetailDto>,
}

impl Envelope {
    pub(super) fn is_ok(&self) -> bool {
        self.code.as_deref() == Some("OK")
    }
}

/// `BindAxnExtension` result. `SubsId` is a string in API responses, but receipts carry it as a
/// number, so both are accepted.
#[derive(Debug, Deserialize)]
pub(super) struct SecretBindDto {
    #[serde(rename = "SubsId", default)]
    pub(super) subs_id: Option<Value>,
    #[serde(rename = "SecretNo", default)]
    pub(super) secret_no: Option<String>,
    #[serde(rename = "Extension", default)]
    pub(super) extension: Option<String>,
}

/// `QuerySubscriptionDetail` result; only `Status` (0 expired, 1 active) matters here.
#[derive(Debug, Deserialize)]
pub(super) struct SecretBindDetailDto {
    #[serde(rename = "Status", default)]
    pub(super) status: Option<Value>,
}

/// A JSON string or number as text (`"1000000820000605"` and `1000000820000605` alike).
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The common `Timestamp` parameter: UTC, `yyyy-MM-ddTHH:mm:ssZ`.
pub(super) fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// China Standard Time has no daylight saving: a fixed UTC+8.
fn cst() -> Option<FixedOffset> {
    FixedOffset::east_opt(8 * 3600)
}

/// `Expiration`: `yyyy-MM-dd HH:mm:ss` in China Standard Time (the docs' examples and console
/// use Beijing time, unlike `Timestamp`). `None` when `ms` is out of chrono's range.
pub(super) fn expiration(ms: Millis) -> Option<String> {
    let at = DateTime::from_timestamp_millis(ms)?.with_timezone(&cst()?);
    Some(at.format("%Y-%m-%d %H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_is_china_standard_time() {
        // 2024-01-02T04:00:00Z is noon in Beijing.
        assert_eq!(
            expiration(1_704_168_000_000).as_deref(),
            Some("2024-01-02 12:00:00")
        );
        // Sub-second parts are truncated, never rounded up past the requested instant.
        assert_eq!(
            expiration(1_704_168_000_999).as_deref(),
            Some("2024-01-02 12:00:00")
        );
        assert_eq!(expiration(i64::MAX), None);
    }

    #[test]
    fn timestamp_is_utc_iso8601() {
        let t = DateTime::from_timestamp(1_704_067_200, 0).unwrap();
        assert_eq!(timestamp(t), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn envelope_reads_the_documented_bind_response() {
        let body = r#"{"Message":"OK","RequestId":"9297B722-A016-43FB-B51A-E54050D9369D","Code":"OK",
            "SecretBindDTO":{"Extension":"130","SecretNo":"17000000000","SubsId":"1000000820000605"}}"#;
        let env: Envelope = serde_json::from_str(body).unwrap();
        assert!(env.is_ok());
        let dto = env.secret_bind.unwrap();
        assert_eq!(
            dto.subs_id.as_ref().and_then(text).as_deref(),
            Some("1000000820000605")
        );
        assert_eq!(dto.secret_no.as_deref(), Some("17000000000"));
        assert_eq!(dto.extension.as_deref(), Some("130"));
    }

    #[test]
    fn envelope_reads_gateway_errors_in_either_case() {
        let env: Envelope = serde_json::from_str(
            r#"{"RequestId":"r","HostId":"h","code":"Throttling.User","message":"m"}"#,
        )
        .unwrap();
        assert_eq!(env.code.as_deref(), Some("Throttling.User"));
        assert!(!env.is_ok());
    }
}
