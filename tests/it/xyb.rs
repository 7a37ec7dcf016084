//! BindXyb on local pools: allocation, locking, errors, idempotent replay.

use pns_gateway::grpc::pb;
use tonic::Code;

use crate::support::{TestServer, fixtures::*};

const B: &str = "85264654798";

#[tokio::test]
async fn bind_xyb_allocates_a_locked_x_and_a_y_with_the_documented_defaults() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.customer_bind_id = "order-1".into();
    req.customer_user_id = "courier-9".into();
    req.ext = "it is ext".into();
    req.recording = true;
    let before = chrono::Utc::now().timestamp();
    let r = s.bindings().bind_xyb(req).await.unwrap().into_inner();
    assert!(!r.replayed);
    let b = r.binding.unwrap();
    assert_eq!(b.mode, pb::BindingMode::Xyb as i32);
    assert_eq!(b.state, pb::BindingState::Xyb as i32);
    assert_eq!(b.phone_b, B);
    assert!(b.phone_a.is_empty());
    assert!(numbers.contains(&b.number_x) && numbers.contains(&b.number_y));
    assert_ne!(b.number_x, b.number_y);
    let exp = b.expire_time.unwrap().seconds;
    assert!(
        (before + 7200..=before + 7202).contains(&exp),
        "default 7200 s, got {}",
        exp - before
    );
    assert_eq!(
        b.call_in_expire_seconds, 7200,
        "call-in expiry defaults to the bind expiry"
    );
    assert_eq!(
        (
            b.customer_bind_id.as_str(),
            b.customer_user_id.as_str(),
            b.ext.as_str()
        ),
        ("order-1", "courier-9", "it is ext")
    );
    assert!(b.recording);
    assert_eq!(b.provider, pb::Provider::Local as i32);

    let listed = s
        .pools()
        .list_numbers(pb::ListNumbersRequest {
            pool_key: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .numbers;
    let x = listed.iter().find(|n| n.number == b.number_x).unwrap();
    assert_eq!(x.locked_by_binding_id, b.binding_id);
    let y = listed.iter().find(|n| n.number == b.number_y).unwrap();
    assert_eq!(
        (y.locked_by_binding_id.as_str(), y.shared_bindings),
        ("", 1)
    );

    let by_id = get_binding(&s, &b.binding_id).await;
    assert_eq!(by_id, b);
    let by_cbid = s
        .bindings()
        .get_binding(pb::GetBindingRequest {
            customer_bind_id: "order-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(by_cbid.binding_id, b.binding_id);
}

#[tokio::test]
async fn invalid_xyb_requests_list_every_violation_and_write_nothing() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    let req = pb::BindXybRequest {
        pool_key: "p".into(),
        phone_b: "12-34".into(),
        number_x: "8521313000x".into(),
        bind_expire_seconds: 5,
        bind_expire_strategy: 9,
        iso2_x: "HKG".into(),
        ..Default::default()
    };
    let err = s.bindings().bind_xyb(req).await.unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "MOBILE_NUMBER_ILLEGAL");
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "bind_expire_seconds",
            "bind_expire_strategy",
            "iso2_x",
            "number_x",
            "phone_b"
        ]
    );
    assert!(
        !err.message().contains("12-34"),
        "raw input is not echoed: {}",
        err.message()
    );

    let mut delayed_with_y = xyb("p", B);
    delayed_with_y.delayed_y = true;
    delayed_with_y.number_y = "85213130001".into();
    let err = s.bindings().bind_xyb(delayed_with_y).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["number_y"]);

    let err = s.bindings().bind_xyb(xyb("nope", B)).await.unwrap_err();
    assert_reason(&err, Code::NotFound, "POOL_NOT_FOUND");

    let mut foreign_x = xyb("p", B);
    foreign_x.number_x = "85299990000".into();
    let err = s.bindings().bind_xyb(foreign_x).await.unwrap_err();
    assert_reason(&err, Code::NotFound, "NUMBER_NOT_FOUND");

    let st = stats(&s, "p").await;
    assert_eq!(
        (st.free, st.locked, st.shared, st.active_bindings),
        (3, 0, 0, 0),
        "nothing written"
    );
}

#[tokio::test]
async fn a_locked_x_cannot_be_taken_and_a_full_pool_says_no_available_number() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 2, "").await;
    let mut first = xyb("p", B);
    first.number_x = numbers[0].clone();
    let b1 = s
        .bindings()
        .bind_xyb(first)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(b1.number_x, numbers[0]);
    assert_eq!(b1.number_y, numbers[1]);

    let mut again = xyb("p", "85261111111");
    again.number_x = numbers[0].clone();
    let err = s.bindings().bind_xyb(again).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NUMBER_LOCKED");

    // numbers[1] serves as Y, so it cannot be locked either.
    let mut on_y = xyb("p", "85261111111");
    on_y.number_x = numbers[1].clone();
    let err = s.bindings().bind_xyb(on_y).await.unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "BIND_CONFLICT");

    let err = s
        .bindings()
        .bind_xyb(xyb("p", "85261111111"))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
    assert_eq!(stats(&s, "p").await.active_bindings, 1);
}

#[tokio::test]
async fn a_pool_of_n_numbers_carries_n_delayed_y_bindings_or_n_minus_1_with_y() {
    let s = TestServer::start().await;
    pool_with(&s, "d", "8521400", 5, "").await;
    for i in 0..5 {
        let mut r = xyb("d", &format!("8526000000{i}"));
        r.delayed_y = true;
        let b = s
            .bindings()
            .bind_xyb(r)
            .await
            .unwrap()
            .into_inner()
            .binding
            .unwrap();
        assert!(b.number_y.is_empty() && b.delayed_y);
    }
    let mut r = xyb("d", "85260000099");
    r.delayed_y = true;
    assert_reason(
        &s.bindings().bind_xyb(r).await.unwrap_err(),
        Code::ResourceExhausted,
        "NO_AVAILABLE_NUMBER",
    );

    pool_with(&s, "y", "8521500", 5, "").await;
    let mut ys = std::collections::HashSet::new();
    for i in 0..4 {
        let b = s
            .bindings()
            .bind_xyb(xyb("y", &format!("8526100000{i}")))
            .await
            .unwrap()
            .into_inner()
            .binding
            .unwrap();
        ys.insert(b.number_y);
    }
    assert_eq!(ys.len(), 1, "one unlocked number serves as Y for every B");
    let err = s
        .bindings()
        .bind_xyb(xyb("y", "85261000099"))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
    let st = stats(&s, "y").await;
    assert_eq!((st.locked, st.shared, st.free), (4, 1, 0));
}

#[tokio::test]
async fn replay_with_the_same_payload_returns_the_same_binding_and_applies_the_bind_strategy() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 6, "").await;
    let mut bindings = s.bindings();
    for (strategy, cbid) in [
        (pb::ExpireStrategy::Fixed, "fixed"),
        (pb::ExpireStrategy::Reset, "reset"),
        (pb::ExpireStrategy::Extend, "extend"),
    ] {
        let mut req = xyb("p", B);
        req.customer_bind_id = cbid.into();
        req.bind_expire_seconds = 600;
        req.bind_expire_strategy = strategy as i32;
        req.delayed_y = true;
        let first = bindings.bind_xyb(req.clone()).await.unwrap().into_inner();
        let b1 = first.binding.unwrap();
        s.clock.advance(100_000);
        let second = bindings.bind_xyb(req).await.unwrap().into_inner();
        assert!(second.replayed);
        let b2 = second.binding.unwrap();
        assert_eq!(b2.binding_id, b1.binding_id);
        assert_eq!(b2.number_x, b1.number_x);
        let (e1, e2) = (
            b1.expire_time.unwrap().seconds,
            b2.expire_time.unwrap().seconds,
        );
        match strategy {
            pb::ExpireStrategy::Fixed => assert_eq!(e2, e1),
            pb::ExpireStrategy::Reset => assert!(
                (e2 - (e1 + 100)).abs() <= 1,
                "reset: now + 600 = old + 100, got {}",
                e2 - e1
            ),
            _ => assert_eq!(e2, e1 + 600, "extend: old + 600"),
        }
    }
    assert_eq!(
        stats(&s, "p").await.active_bindings,
        3,
        "replays create nothing"
    );

    let mut different = xyb("p", "85260000000");
    different.customer_bind_id = "fixed".into();
    different.delayed_y = true;
    different.bind_expire_seconds = 600;
    let err = bindings.bind_xyb(different).await.unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "CUSTOMER_BIND_ID_CONFLICT");

    // Tenants have separate customer_bind_id spaces.
    let mut other_tenant = tonic::Request::new({
        let mut r = xyb("p", "85260000000");
        r.customer_bind_id = "fixed".into();
        r.delayed_y = true;
        r
    });
    other_tenant
        .metadata_mut()
        .insert("x-pns-tenant", "shop-2".parse().unwrap());
    let r = bindings.bind_xyb(other_tenant).await.unwrap().into_inner();
    assert!(!r.replayed);
}
