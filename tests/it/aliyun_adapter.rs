//! The Aliyun adapter against the fake Dyplsapi server, over real HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use pns_gateway::domain::binding::ExpireStrategy;
use pns_gateway::domain::provider::{
    Carrier, FailureClass, Outcome, UpstreamAxn, UpstreamRef, UpstreamStatus, UpstreamXyb,
};
use pns_gateway::providers::aliyun::{AliyunCarrier, AliyunConfig};

use crate::support::fake_aliyun::{
    Behaviour, FakeAliyun, FakeAliyunConfig, reference_signature, unused_base_url,
};

const HOUR_MS: i64 = 3_600_000;

fn carrier_for(base_url: String, timeout: Duration) -> AliyunCarrier {
    let fake = FakeAliyunConfig::default();
    AliyunCarrier::new(AliyunConfig {
        base_url,
        pool_key: fake.pool_key,
        access_key_id: fake.access_key_id,
        access_key_secret: fake.access_key_secret,
        timeout,
    })
}

async fn setup() -> (FakeAliyun, AliyunCarrier) {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let carrier = carrier_for(fake.base_url(), Duration::from_secs(5));
    (fake, carrier)
}

fn axn(expire_at: i64) -> UpstreamAxn {
    UpstreamAxn {
        customer_bind_id: "cb-1".into(),
        phone_a: "13900000000".into(),
        phone_b: Some("13800000000".into()),
        extension: None,
        number_x: None,
        expect_city: Some("北京".into()),
        expire_at,
        expire_seconds: expire_at / 1000,
        recording: true,
        out_id: "order-42".into(),
        ext: String::new(),
    }
}

fn in_two_hours() -> i64 {
    chrono::Utc::now().timestamp_millis() + 2 * HOUR_MS
}

fn cst(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap() + chrono::Duration::hours(8);
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

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

#[tokio::test]
async fn bind_sends_a_signed_post_with_pascal_case_params() {
    let (fake, carrier) = setup().await;
    let expire_at = in_two_hours();
    let b = carrier.bind_axn_extension(&axn(expire_at)).await.unwrap();
    assert_eq!(b.provider_binding_id.len(), 16);
    assert_eq!(b.number_x, "17000000001");
    assert_eq!(b.extension.as_deref(), Some("100"));
    assert_eq!(b.number_y, None);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert!(r.body.is_empty());
    let expected: &[(&str, &str)] = &[
        ("Action", "BindAxnExtension"),
        ("Version", "2017-05-25"),
        ("Format", "JSON"),
        ("AccessKeyId", "testid"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("PoolKey", "FC100000000000001"),
        ("PhoneNoA", "13900000000"),
        ("PhoneNoB", "13800000000"),
        ("ExpectCity", "北京"),
        ("IsRecordingEnabled", "true"),
        ("OutId", "order-42"),
    ];
    for (k, v) in expected {
        assert_eq!(r.param(k), Some(*v), "{k}");
    }
    assert_eq!(r.param("Expiration"), Some(cst(expire_at).as_str()));
    // Empty optionals are left out.
    assert_eq!(r.param("Extension"), None);
    assert_eq!(r.param("PhoneNoX"), None);
    assert!(uuid::Uuid::parse_str(r.param("SignatureNonce").unwrap()).is_ok());
    assert!(r.param("Timestamp").unwrap().ends_with('Z'));

    let live = fake.active_bindings();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].subs_id, b.provider_binding_id);
    assert!(live[0].recording);
}

#[tokio::test]
async fn bind_with_extension_and_x_uses_them() {
    let (fake, carrier) = setup().await;
    let mut req = axn(in_two_hours());
    req.extension = Some("130".into());
    req.number_x = Some("17000000002".into());
    req.phone_b = Some(String::new());
    req.expect_city = None;
    req.recording = false;
    let b = carrier.bind_axn_extension(&req).await.unwrap();
    assert_eq!(
        (b.number_x.as_str(), b.extension.as_deref()),
        ("17000000002", Some("130"))
    );
    let r = &fake.requests()[0];
    assert_eq!(r.param("IsRecordingEnabled"), Some("false"));
    assert_eq!(r.param("PhoneNoB"), None);
    assert_eq!(r.param("ExpectCity"), None);
    // Each request carries a fresh nonce: a second bind is accepted.
    req.phone_a = "13900000001".into();
    req.extension = Some("131".into());
    carrier.bind_axn_extension(&req).await.unwrap();
    let reqs = fake.requests();
    assert_ne!(
        reqs[0].param("SignatureNonce"),
        reqs[1].param("SignatureNonce")
    );
}

#[tokio::test]
async fn unbind_update_and_query_follow_the_binding() {
    let (fake, carrier) = setup().await;
    let b = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap();
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id.clone(),
        number_x: b.number_x.clone(),
    };
    assert_eq!(carrier.query(&r).await.unwrap(), UpstreamStatus::Active);

    let later = in_two_hours() + 24 * HOUR_MS;
    carrier.update_expire(&r, later).await.unwrap();
    assert_eq!(fake.active_bindings()[0].expiration, cst(later));
    let upd = fake
        .requests()
        .into_iter()
        .find(|q| q.action() == "UpdateSubscription")
        .unwrap();
    assert_eq!(upd.param("OperateType"), Some("updateExpire"));
    assert_eq!(upd.param("SubsId"), Some(b.provider_binding_id.as_str()));
    assert_eq!(upd.param("PhoneNoX"), Some(b.number_x.as_str()));
    assert_eq!(upd.param("PoolKey"), Some("FC100000000000001"));

    carrier.unbind(&r).await.unwrap();
    assert!(fake.active_bindings().is_empty());
    let unb = fake
        .requests()
        .into_iter()
        .find(|q| q.action() == "UnbindSubscription")
        .unwrap();
    assert_eq!(unb.param("SecretNo"), Some(b.number_x.as_str()));
    // Gone upstream: the query reports it, a second unbind is NotFound.
    assert_eq!(carrier.query(&r).await.unwrap(), UpstreamStatus::Gone);
    assert_eq!(
        carrier.unbind(&r).await.unwrap_err().class,
        FailureClass::NotFound
    );
}

#[tokio::test]
async fn expired_binding_is_gone_and_cannot_be_updated() {
    let (fake, carrier) = setup().await;
    let b = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap();
    fake.expire_binding(&b.provider_binding_id);
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id,
        number_x: b.number_x,
    };
    assert_eq!(carrier.query(&r).await.unwrap(), UpstreamStatus::Gone);
    let e = carrier.update_expire(&r, in_two_hours()).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::FailedPrecondition, "isv.FORBIDDEN_ACTION")
    );
}

#[tokio::test]
async fn business_errors_map_to_classes() {
    let (fake, carrier) = setup().await;
    let cases = [
        ("isv.NO_AVAILABLE_NUMBER", FailureClass::NoAvailableNumber),
        ("isv.BIND_CONFLICT", FailureClass::BindConflict),
        ("isv.NO_USED_BY_OTHERS", FailureClass::BindConflict),
        ("isv.ILLEGAL_ARGUMENT", FailureClass::InvalidArgument),
        ("isv.FLOW_LIMIT", FailureClass::Throttled),
        ("isp.SYSTEM_ERROR", FailureClass::Unavailable),
        ("isp.RAM_PERMISSION_DENY", FailureClass::PermissionDenied),
        ("isv.OUT_OF_SERVICE", FailureClass::Configuration),
        ("isv.PRODUCT_UN_SUBSCRIPT", FailureClass::Configuration),
    ];
    for (code, class) in cases {
        fake.set_next(Behaviour::BusinessError(code.into()));
        let e = carrier
            .bind_axn_extension(&axn(in_two_hours()))
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.outcome, e.code.as_str()),
            (class, Outcome::Definite, code)
        );
        assert_eq!(e.provider, "aliyun");
    }
    assert_eq!(
        fake.requests().len(),
        cases.len(),
        "binds are never retried"
    );
}

#[tokio::test]
async fn fake_validation_errors_reach_the_caller() {
    let (fake, carrier) = setup().await;
    let mut req = axn(chrono::Utc::now().timestamp_millis() + 10_000);
    let e = carrier.bind_axn_extension(&req).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::InvalidArgument, "isv.EXPIRE_DATE_ILLEGAL")
    );
    req.expire_at = in_two_hours();
    req.phone_a = "139 0000 0000".into();
    let e = carrier.bind_axn_extension(&req).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::InvalidArgument, "isv.MOBILE_NUMBER_ILLEGAL")
    );
    // Two numbers in the pool: the third automatic allocation finds none.
    for a in ["13900000001", "13900000002"] {
        req.phone_a = a.into();
        carrier.bind_axn_extension(&req).await.unwrap();
    }
    req.phone_a = "13900000003".into();
    let e = carrier.bind_axn_extension(&req).await.unwrap_err();
    assert_eq!(e.class, FailureClass::NoAvailableNumber);
    assert_eq!(fake.active_bindings().len(), 2);
}

#[tokio::test]
async fn wrong_secret_is_a_configuration_error_without_the_string_to_sign() {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let cfg = FakeAliyunConfig {
        access_key_secret: "not-the-secret".into(),
        ..Default::default()
    };
    let carrier = AliyunCarrier::new(AliyunConfig {
        base_url: fake.base_url(),
        pool_key: cfg.pool_key,
        access_key_id: cfg.access_key_id,
        access_key_secret: cfg.access_key_secret,
        timeout: Duration::from_secs(5),
    });
    let e = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (
            FailureClass::Configuration,
            Outcome::Definite,
            "SignatureDoesNotMatch"
        )
    );
    assert!(!e.message.contains("POST&"), "{}", e.message);
    assert!(fake.active_bindings().is_empty());
}

#[tokio::test]
async fn throttling_carries_retry_after_from_the_header() {
    let (fake, carrier) = setup().await;
    fake.set_next(Behaviour::Throttle { time_left_ms: 1200 });
    let e = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Throttled, "Throttling.User")
    );
    assert_eq!(e.retry_after, Some(Duration::from_millis(1200)));
    assert_eq!(e.outcome, Outcome::Definite);
}

#[tokio::test]
async fn internal_error_is_unavailable_and_only_idempotent_calls_retry() {
    let (fake, carrier) = setup().await;
    fake.set_next(Behaviour::InternalError);
    let e = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Unavailable, "InternalError")
    );
    assert_eq!(fake.requests().len(), 1);

    let b = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap();
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id,
        number_x: b.number_x,
    };
    fake.set_next(Behaviour::InternalError);
    assert_eq!(carrier.query(&r).await.unwrap(), UpstreamStatus::Active);
    let queries = fake
        .requests()
        .into_iter()
        .filter(|q| q.action() == "QuerySubscriptionDetail")
        .count();
    assert_eq!(queries, 2, "one failure, one retry");
}

#[tokio::test]
async fn slow_bind_is_unknown_and_sent_once() {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let carrier = carrier_for(fake.base_url(), Duration::from_millis(300));
    fake.set_next(Behaviour::Delay(Duration::from_millis(900)));
    let e = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (FailureClass::Unavailable, Outcome::Unknown, "timeout")
    );
    fake.idle().await;
    let binds = fake
        .requests()
        .into_iter()
        .filter(|q| q.action() == "BindAxnExtension")
        .count();
    assert_eq!(binds, 1, "a bind is never retried");
    // The carrier acted although the client gave up: exactly why the outcome is Unknown.
    assert_eq!(fake.active_bindings().len(), 1);
}

#[tokio::test]
async fn unbind_whose_answer_was_lost_counts_as_done() {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let carrier = carrier_for(fake.base_url(), Duration::from_millis(300));
    let b = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap();
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id,
        number_x: b.number_x,
    };
    // The first unbind acts upstream but its answer comes too late; the retry finds nothing.
    fake.set_next(Behaviour::AnswerLate(Duration::from_millis(800)));
    carrier.unbind(&r).await.unwrap();
    fake.idle().await;
    let unbinds = fake
        .requests()
        .into_iter()
        .filter(|q| q.action() == "UnbindSubscription")
        .count();
    assert_eq!(unbinds, 2);
    assert!(fake.active_bindings().is_empty());
}

#[tokio::test]
async fn connection_refused_is_definite_unavailable() {
    let carrier = carrier_for(unused_base_url(), Duration::from_secs(2));
    let e = carrier
        .bind_axn_extension(&axn(in_two_hours()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.outcome, e.code.as_str()),
        (FailureClass::Unavailable, Outcome::Definite, "connect")
    );
}

#[tokio::test]
async fn xyb_is_unsupported_without_a_request() {
    let (fake, carrier) = setup().await;
    let req = UpstreamXyb {
        customer_bind_id: "cb".into(),
        phone_b: "13800000000".into(),
        number_x: None,
        number_y: None,
        iso2_x: None,
        iso2_y: None,
        delayed_y: false,
        bind_expire_seconds: 3600,
        bind_strategy: ExpireStrategy::Fixed,
        call_in_expire_seconds: 3600,
        call_in_strategy: ExpireStrategy::Fixed,
        customer_user_id: String::new(),
        recording: false,
        ext: String::new(),
    };
    let e = carrier.bind_xyb(&req).await.unwrap_err();
    assert_eq!(
        (e.class, e.outcome),
        (FailureClass::Unsupported, Outcome::Definite)
    );
    assert!(fake.requests().is_empty());
    assert_eq!(carrier.name(), "aliyun");
}

#[test]
fn config_debug_redacts_the_secret() {
    let cfg = AliyunConfig {
        base_url: "http://x".into(),
        pool_key: "FC1".into(),
        access_key_id: "id".into(),
        access_key_secret: "super-secret".into(),
        timeout: Duration::from_secs(1),
    };
    let s = format!("{cfg:?}");
    assert!(!s.contains("super-secret") && s.contains("redacted"), "{s}");
}
