//! Every class of failure: business codes, gateway errors, throttling, HTTP 500, lost answers,
//! refused connections.

use std::time::Duration;

use pns_gateway::domain::provider::{Carrier, FailureClass, Outcome, UpstreamRef, UpstreamStatus};
use pns_gateway::providers::aliyun::{AliyunCarrier, AliyunConfig};

use super::{axn, carrier_for, in_two_hours, setup};
use crate::support::fake_aliyun::{Behaviour, FakeAliyun, FakeAliyunConfig, unused_base_url};

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
