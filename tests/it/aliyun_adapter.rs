//! The Aliyun adapter against the fake Dyplsapi server, over real HTTP: the happy paths here,
//! failures in `failures`, checks of the fake itself in `fake`.

mod failures;
mod fake;

use std::time::Duration;

use pns_gateway::domain::binding::ExpireStrategy;
use pns_gateway::domain::provider::{
    Carrier, FailureClass, Outcome, UpstreamAxn, UpstreamRef, UpstreamStatus, UpstreamXyb,
};
use pns_gateway::providers::aliyun::{AliyunCarrier, AliyunConfig};

use crate::support::fake_aliyun::{FakeAliyun, FakeAliyunConfig};

pub(super) const HOUR_MS: i64 = 3_600_000;

pub(super) fn carrier_for(base_url: String, timeout: Duration) -> AliyunCarrier {
    let fake = FakeAliyunConfig::default();
    AliyunCarrier::new(AliyunConfig {
        base_url,
        pool_key: fake.pool_key,
        access_key_id: fake.access_key_id,
        access_key_secret: fake.access_key_secret,
        timeout,
    })
}

pub(super) async fn setup() -> (FakeAliyun, AliyunCarrier) {
    let fake = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let carrier = carrier_for(fake.base_url(), Duration::from_secs(5));
    (fake, carrier)
}

pub(super) fn axn(expire_at: i64) -> UpstreamAxn {
    UpstreamAxn {
        customer_bind_id: "cb-1".into(),
        phone_a: "13900000000".into(),
        phone_b: Some("13800000000".into()),
        extension: None,
        number_x: None,
        expect_city: Some("北京".into()),
        expire_at,
        expire_seconds: 7200,
        recording: true,
        out_id: "order-42".into(),
        ext: String::new(),
    }
}

pub(super) fn in_two_hours() -> i64 {
    chrono::Utc::now().timestamp_millis() + 2 * HOUR_MS
}

pub(super) fn cst(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap() + chrono::Duration::hours(8);
    t.format("%Y-%m-%d %H:%M:%S").to_string()
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
