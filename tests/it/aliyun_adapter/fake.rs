//! The fake checks what the real gateway checks, with its own signer: verified here with raw
//! requests, so that adapter tests passing against it mean something.

use std::collections::BTreeMap;

use crate::support::fake_aliyun::{FakeAliyun, FakeAliyunConfig, reference_signature, rfc3986};

#[test]
fn fake_signer_reproduces_the_reference_vector() {
    // V2-F of the reference: the fake's independent signer is itself checked.
    let params: BTreeMap<String, String> = [
        ("AccessKeyId", "testid"),
        ("Action", "BindAxnExtension"),
        ("ExpectCity", "北京"),
        ("Expiration", "2024-01-02 12:00:00"),
        ("Extension", "130"),
        ("Format", "JSON"),
        ("IsRecordingEnabled", "true"),
        ("OutId", "order-42"),
        ("PhoneNoA", "13900000000"),
        ("PhoneNoX", "17000000000"),
        ("PoolKey", "FC100000000000001"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2024-01-01T00:00:00Z"),
        ("Version", "2017-05-25"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        reference_signature("GET", &params, "testsecret"),
        "B/LMSIQu9m8zrIZYB9txCkU8u6c="
    );
    assert_eq!(
        reference_signature("POST", &params, "testsecret"),
        "B+AIBq3s/DfFKxzr4+1NxGvJm2g="
    );
}

/// A correctly signed raw request with `overrides` applied (an empty value removes a param).
async fn raw(fake: &FakeAliyun, method: &str, overrides: &[(&str, &str)]) -> (u16, String) {
    let cfg = FakeAliyunConfig::default();
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let nonce = uuid::Uuid::new_v4().to_string();
    let mut params: BTreeMap<String, String> = [
        ("AccessKeyId", cfg.access_key_id.as_str()),
        ("Action", "QuerySubscriptionDetail"),
        ("Format", "JSON"),
        ("PhoneNoX", "17000000001"),
        ("PoolKey", cfg.pool_key.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce.as_str()),
        ("SignatureVersion", "1.0"),
        ("SubsId", "1000000820000001"),
        ("Timestamp", ts.as_str()),
        ("Version", "2017-05-25"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        if v.is_empty() {
            params.remove(*k);
        } else {
            params.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    let sig = reference_signature(method, &params, &cfg.access_key_secret);
    params.entry("Signature".into()).or_insert(sig);
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    let url = format!("{}/?{}", fake.base_url(), query.join("&"));
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = reqwest::Client::new().request(m, url).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body["Code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn fake_enforces_the_gateway_rules() {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    // A valid request reaches the operation (and finds no such binding); GET is signed as GET.
    assert_eq!(
        raw(&fake, "POST", &[]).await,
        (200, "isv.SUBS_NOT_EXIST".into())
    );
    assert_eq!(
        raw(&fake, "GET", &[]).await,
        (200, "isv.SUBS_NOT_EXIST".into())
    );
    let bad_sig = [("Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")];
    assert_eq!(
        raw(&fake, "POST", &bad_sig).await,
        (400, "SignatureDoesNotMatch".into())
    );
    let nonce = [("SignatureNonce", "fixed-nonce")];
    assert_eq!(raw(&fake, "POST", &nonce).await.0, 200);
    assert_eq!(
        raw(&fake, "POST", &nonce).await,
        (400, "SignatureNonceUsed".into())
    );
    let old = [("Timestamp", "2020-01-01T00:00:00Z")];
    assert_eq!(
        raw(&fake, "POST", &old).await,
        (400, "InvalidTimeStamp.Expired".into())
    );
    let garbled = [("Timestamp", "2020-01-01 00:00:00")];
    assert_eq!(
        raw(&fake, "POST", &garbled).await,
        (400, "InvalidTimeStamp.Format".into())
    );
    assert_eq!(
        raw(&fake, "POST", &[("PoolKey", "")]).await,
        (400, "MissingPoolKey".into())
    );
    assert_eq!(
        raw(&fake, "POST", &[("Action", "BindAxnExtenSion")]).await,
        (404, "InvalidApi.NotFound".into())
    );
    assert_eq!(
        raw(&fake, "POST", &[("AccessKeyId", "other")]).await,
        (404, "InvalidAccessKeyId.NotFound".into())
    );
    let bind = [
        ("Action", "BindAxnExtension"),
        ("PhoneNoA", "13900000000"),
        ("Expiration", "2020-01-01 00:00:00"),
    ];
    assert_eq!(
        raw(&fake, "POST", &bind).await,
        (200, "isv.EXPIRE_DATE_ILLEGAL".into())
    );
    let ext = [
        ("Action", "BindAxnExtension"),
        ("PhoneNoA", "13900000000"),
        ("Expiration", "2099-01-01 00:00:00"),
        ("PhoneNoX", ""),
        ("Extension", "12"),
    ];
    assert_eq!(
        raw(&fake, "POST", &ext).await,
        (200, "isv.INVALID_PARAMETERS".into())
    );
    assert!(fake.active_bindings().is_empty());
}
