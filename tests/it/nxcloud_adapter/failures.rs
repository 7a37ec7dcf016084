//! Failure paths: NXCloud error codes, HTTP failures, deadlines and the single bind retry,
//! unreachable and hanging-up servers, and the fake's own checks.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use pns_gateway::domain::provider::{Carrier, FailureClass, Outcome, UpstreamRef};
use pns_gateway::providers::nxcloud::NxcloudCarrier;
use serde_json::{Value, json};

use super::{SLOW, config, setup, xyb};
use crate::support::fake_nxcloud::{
    Behaviour, FakeNxcloud, FakeNxcloudConfig, hang_up_server, unused_addr,
};
use crate::support::md5::md5_hex;

#[tokio::test]
async fn exhausted_numbers_are_no_available_number() {
    let (_fake, carrier) = setup().await;
    carrier
        .bind_xyb(&xyb("cb-a"))
        .await
        .expect("first bind takes X and Y");
    let e = carrier.bind_xyb(&xyb("cb-b")).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome),
        (FailureClass::NoAvailableNumber, "10010", Outcome::Definite)
    );
}

#[tokio::test]
async fn injected_codes_map_to_classes() {
    let (fake, carrier) = setup().await;
    for (code, class) in [
        (1001, FailureClass::Configuration),
        (1002, FailureClass::InvalidArgument),
        (1004, FailureClass::Configuration),
        (10004, FailureClass::InvalidArgument),
        (10005, FailureClass::Unavailable),
        (10010, FailureClass::NoAvailableNumber),
        (10013, FailureClass::NotFound),
        (20001, FailureClass::InvalidArgument),
    ] {
        fake.set_next(Behaviour::ErrorCode(code));
        let e = carrier.bind_xyb(&xyb("cb-c")).await.unwrap_err();
        assert_eq!(
            (e.class, e.outcome, e.provider),
            (class, Outcome::Definite, "nxcloud"),
            "code {code}"
        );
        assert_eq!(e.code, code.to_string());
    }
    assert_eq!(fake.requests().len(), 8, "errors are never retried");
}

#[tokio::test]
async fn wrong_secret_is_a_signature_configuration_error() {
    let fake = FakeNxcloud::start(FakeNxcloudConfig::default()).await;
    let mut cfg = config(fake.base_url());
    cfg.access_secret = "not-the-secret".into();
    let e = NxcloudCarrier::new(cfg)
        .bind_xyb(&xyb("cb-s"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Configuration, "1003")
    );
    assert!(
        e.message.contains("signature") && !e.message.contains("not-the-secret"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn wrong_access_key_is_configuration() {
    let fake = FakeNxcloud::start(FakeNxcloudConfig::default()).await;
    let mut cfg = config(fake.base_url());
    cfg.access_key = "other-ak".into();
    let e = NxcloudCarrier::new(cfg)
        .bind_xyb(&xyb("cb-k"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Configuration, "1005")
    );
}

#[tokio::test]
async fn http_failures() {
    let (fake, carrier) = setup().await;
    fake.set_next(Behaviour::Http(500));
    let e = carrier.bind_xyb(&xyb("cb-h")).await.unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (FailureClass::Unavailable, Outcome::Definite, "http_500")
    );
    fake.set_next(Behaviour::Http(429));
    let e = carrier.bind_xyb(&xyb("cb-h")).await.unwrap_err();
    assert_eq!(e.class, FailureClass::Throttled);
    fake.set_next(Behaviour::NotJson);
    let e = carrier
        .unbind(&UpstreamRef {
            provider_binding_id: "x".into(),
            number_x: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.class, FailureClass::Unavailable);
    assert_eq!(fake.requests().len(), 3, "no retries");
}

#[tokio::test]
async fn slow_bind_is_retried_once_and_deduplicated() {
    let (fake, carrier) = setup().await;
    fake.set_next(Behaviour::Delay(SLOW));
    let b = carrier
        .bind_xyb(&xyb("cb-slow"))
        .await
        .expect("the retry gets the binding");
    let bindings = fake.active_bindings();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].bind_id, b.provider_binding_id);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "same body, so the same customerBindId"
    );
    assert_ne!(
        reqs[0].header("ts"),
        reqs[1].header("ts"),
        "fresh ts and sign"
    );
}

#[tokio::test]
async fn bind_slow_twice_is_unknown_outcome() {
    let (fake, carrier) = setup().await;
    fake.set_next(Behaviour::Delay(SLOW));
    fake.set_next(Behaviour::Delay(SLOW));
    let e = carrier.bind_xyb(&xyb("cb-slow2")).await.unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (FailureClass::Unavailable, Outcome::Unknown, "timeout")
    );
    assert_eq!(fake.requests().len(), 2, "exactly one retry");
    // NXCloud did bind; asking again with the same customerBindId finds that binding.
    let b = carrier.bind_xyb(&xyb("cb-slow2")).await.expect("bind");
    assert_eq!(fake.active_bindings()[0].bind_id, b.provider_binding_id);
}

#[tokio::test]
async fn slow_unbind_is_unknown_and_not_retried() {
    let (fake, carrier) = setup().await;
    let b = carrier.bind_xyb(&xyb("cb-su")).await.expect("bind");
    fake.set_next(Behaviour::Delay(SLOW));
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id,
        number_x: b.number_x,
    };
    let e = carrier.unbind(&r).await.unwrap_err();
    assert_eq!((e.outcome, e.code.as_str()), (Outcome::Unknown, "timeout"));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn connection_refused_is_definite_unavailable() {
    let addr = unused_addr().await;
    let carrier = NxcloudCarrier::new(config(format!("http://{addr}")));
    let e = carrier.bind_xyb(&xyb("cb-r")).await.unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (FailureClass::Unavailable, Outcome::Definite, "connect")
    );
}

#[tokio::test]
async fn expiry_update_and_query_are_unsupported() {
    let (fake, carrier) = setup().await;
    let r = UpstreamRef {
        provider_binding_id: "b".into(),
        number_x: "x".into(),
    };
    assert_eq!(
        carrier.update_expire(&r, 0).await.unwrap_err().class,
        FailureClass::Unsupported
    );
    assert_eq!(
        carrier.query(&r).await.unwrap_err().class,
        FailureClass::Unsupported
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn connection_lost_after_sending_is_unknown_and_bind_retried_once() {
    let (addr, accepted) = hang_up_server().await;
    let carrier = NxcloudCarrier::new(config(format!("http://{addr}")));
    let e = carrier.bind_xyb(&xyb("cb-hang")).await.unwrap_err();
    let got = (e.class, e.outcome, e.code.as_str());
    assert_eq!(
        got,
        (
            FailureClass::Unavailable,
            Outcome::Unknown,
            "connection_lost"
        ),
        "{e}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// Posts to the fake by hand, to check the fake enforces what NXCloud documents.
async fn raw(fake: &FakeNxcloud, path: &str, action: &str, ts_offset_ms: i64, body: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ts = (now + ts_offset_ms).to_string();
    let signed = format!(
        "accessKey=fake-ak&action={action}&bizType=5&ts={ts}&body={body}&accessSecret=fake-secret"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .header("accessKey", "fake-ak")
        .header("action", action)
        .header("bizType", "5")
        .header("ts", ts)
        .header("sign", md5_hex(signed.as_bytes()))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

#[tokio::test]
async fn fake_enforces_documented_rules() {
    let fake = FakeNxcloud::start(FakeNxcloudConfig::default()).await;
    let ok = r#"{"businessId":"b","phoneB":"85264654798","bindExpireSecond":60}"#;
    assert_eq!(
        raw(&fake, "/v1/pns/bind/xyb", "bindXYB", 0, ok).await["code"],
        json!(0)
    );
    assert_eq!(
        raw(&fake, "/v1/pns/bind/xyb", "bindXYB", -61_000, ok).await["code"],
        json!(1004)
    );
    assert_eq!(
        raw(&fake, "/v1/pns/bind/xyb", "bindAXE", 0, ok).await["code"],
        json!(1002)
    );
    let no_b = r#"{"businessId":"b","bindExpireSecond":60}"#;
    assert_eq!(
        raw(&fake, "/v1/pns/bind/xyb", "bindXYB", 0, no_b).await["code"],
        json!(1002)
    );
    let no_a = r#"{"businessId":"b","phoneB":"1","bindExpireSecond":60}"#;
    assert_eq!(
        raw(&fake, "/v1/pns/bind/axe", "bindAXE", 0, no_a).await["code"],
        json!(1002)
    );
    let missing = reqwest::Client::new()
        .post(format!("{}/v1/pns/bind/xyb", fake.base_url()))
        .body(ok)
        .send();
    let v: Value = missing.await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], json!(1001));
}
