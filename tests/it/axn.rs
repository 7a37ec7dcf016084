//! BindAxnExtension on local pools.

use pns_gateway::grpc::pb;
use tonic::Code;

use crate::support::{TestServer, fixtures::*};

const A: &str = "13900000000";

#[tokio::test]
async fn axn_binds_with_auto_and_explicit_extensions() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "1700000", 2, "北京").await;
    let mut req = axn("p", A, 3600);
    req.out_id = "order-42".into();
    req.phone_b = "13800000000".into();
    req.recording = true;
    let b = s
        .bindings()
        .bind_axn_extension(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(b.mode, pb::BindingMode::AxnExtension as i32);
    assert_eq!(b.state, pb::BindingState::Axn as i32);
    assert_eq!(
        (b.phone_a.as_str(), b.phone_b.as_str(), b.out_id.as_str()),
        (A, "13800000000", "order-42")
    );
    assert!(numbers.contains(&b.number_x));
    assert_eq!(
        b.extension.len(),
        3,
        "auto extensions are 3 digits: {}",
        b.extension
    );
    assert!(b.recording);

    let mut explicit = axn("p", "13900000001", 3600);
    explicit.number_x = b.number_x.clone();
    explicit.extension = "7".into();
    let e = s
        .bindings()
        .bind_axn_extension(explicit)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(
        (e.number_x.as_str(), e.extension.as_str()),
        (b.number_x.as_str(), "7")
    );

    let second_auto = s
        .bindings()
        .bind_axn_extension(axn("p", "13900000002", 3600))
        .await
        .unwrap()
        .into_inner();
    let c = second_auto.binding.unwrap();
    assert_eq!(
        c.number_x, b.number_x,
        "extensions pack onto a number that already carries them"
    );
    assert_ne!(c.extension, b.extension);
    assert_eq!(
        stats(&s, "p").await.free,
        1,
        "the other number stays free (lockable for XYB)"
    );
}

#[tokio::test]
async fn axn_input_errors_are_precise() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    let mut b = s.bindings();

    let mut ext_without_x = axn("p", A, 3600);
    ext_without_x.extension = "12".into();
    let err = b.bind_axn_extension(ext_without_x).await.unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "EXTENSION_ILLEGAL");
    assert_eq!(violated_fields(&err), ["extension"]);

    let mut long_ext = axn("p", A, 3600);
    long_ext.number_x = "17000000001".into();
    long_ext.extension = "1234".into();
    let err = b.bind_axn_extension(long_ext).await.unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "EXTENSION_ILLEGAL");

    for secs in [30, -10] {
        let err = b.bind_axn_extension(axn("p", A, secs)).await.unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "EXPIRE_DATE_ILLEGAL");
        assert_eq!(violated_fields(&err), ["expire_time"]);
    }
    let mut no_expiry = axn("p", A, 3600);
    no_expiry.expire_time = None;
    assert_reason(
        &b.bind_axn_extension(no_expiry).await.unwrap_err(),
        Code::InvalidArgument,
        "EXPIRE_DATE_ILLEGAL",
    );

    let err = b
        .bind_axn_extension(axn("p", "+86 139", 3600))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "MOBILE_NUMBER_ILLEGAL");
    assert_eq!(stats(&s, "p").await.active_bindings, 0);
}

#[tokio::test]
async fn axn_conflicts_on_the_same_extension_the_same_a_and_locked_numbers() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "1700000", 2, "").await;
    let mut b = s.bindings();
    let mut first = axn("p", A, 3600);
    first.number_x = numbers[0].clone();
    first.extension = "130".into();
    b.bind_axn_extension(first).await.unwrap();

    let mut same_ext = axn("p", "13900000009", 3600);
    same_ext.number_x = numbers[0].clone();
    same_ext.extension = "130".into();
    assert_reason(
        &b.bind_axn_extension(same_ext).await.unwrap_err(),
        Code::AlreadyExists,
        "BIND_CONFLICT",
    );

    let mut same_a = axn("p", A, 3600);
    same_a.number_x = numbers[0].clone();
    assert_reason(
        &b.bind_axn_extension(same_a).await.unwrap_err(),
        Code::AlreadyExists,
        "BIND_CONFLICT",
    );

    // A number carrying extensions is never locked by XYB …
    let mut lock_it = xyb("p", "85264654798");
    lock_it.number_x = numbers[0].clone();
    lock_it.delayed_y = true;
    assert_reason(
        &b.bind_xyb(lock_it).await.unwrap_err(),
        Code::AlreadyExists,
        "BIND_CONFLICT",
    );
    // … and a locked number takes no extension.
    let mut lock_other = xyb("p", "85264654798");
    lock_other.number_x = numbers[1].clone();
    lock_other.delayed_y = true;
    b.bind_xyb(lock_other).await.unwrap();
    let mut on_locked = axn("p", "13900000008", 3600);
    on_locked.number_x = numbers[1].clone();
    assert_reason(
        &b.bind_axn_extension(on_locked).await.unwrap_err(),
        Code::FailedPrecondition,
        "NUMBER_LOCKED",
    );

    // Auto allocation for the same A avoids numbers where A is already bound; none left here.
    let err = b.bind_axn_extension(axn("p", A, 3600)).await.unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
}

#[tokio::test]
async fn expect_city_is_loose_by_default_and_strict_on_request() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 1, "上海").await;
    add_numbers(&s, "p", &["17100000001".to_string()], "北京").await;
    let mut b = s.bindings();

    let mut bj = axn("p", A, 3600);
    bj.expect_city = "北京".into();
    assert_eq!(
        b.bind_axn_extension(bj)
            .await
            .unwrap()
            .into_inner()
            .binding
            .unwrap()
            .number_x,
        "17100000001"
    );

    let mut gz_loose = axn("p", "13900000001", 3600);
    gz_loose.expect_city = "广州".into();
    assert!(
        b.bind_axn_extension(gz_loose).await.is_ok(),
        "loose falls back to another city"
    );

    let mut gz_strict = axn("p", "13900000002", 3600);
    gz_strict.expect_city = "广州".into();
    gz_strict.city_match = pb::CityMatch::Strict as i32;
    let err = b.bind_axn_extension(gz_strict).await.unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
}

#[tokio::test]
async fn axn_replay_returns_the_same_binding_and_a_changed_payload_is_rejected() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 1, "").await;
    let mut req = axn("p", A, 3600);
    req.customer_bind_id = "c-1".into();
    let first = s
        .bindings()
        .bind_axn_extension(req.clone())
        .await
        .unwrap()
        .into_inner();
    let again = s
        .bindings()
        .bind_axn_extension(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.binding, again.binding);
    req.out_id = "changed".into();
    assert_reason(
        &s.bindings().bind_axn_extension(req).await.unwrap_err(),
        Code::AlreadyExists,
        "CUSTOMER_BIND_ID_CONFLICT",
    );
}
