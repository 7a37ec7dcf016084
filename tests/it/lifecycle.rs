//! Unbind, UpdateBinding, ListBindings, expiry and the sweeper.

use pns_gateway::grpc::pb;
use tonic::Code;

use crate::support::{TestServer, fixtures::*, server::fast_sweeper};

const B: &str = "85264654798";

fn by_id(id: &str) -> pb::UnbindRequest {
    pb::UnbindRequest {
        binding_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn unbind_frees_the_numbers_and_is_idempotent() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 2, "").await;
    let mut c = s.bindings();
    let b = c
        .bind_xyb(xyb("p", B))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let u = c
        .unbind(by_id(&b.binding_id))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(u.state, pb::BindingState::Unbound as i32);
    let st = stats(&s, "p").await;
    assert_eq!(
        (st.free, st.locked, st.shared, st.active_bindings),
        (2, 0, 0, 0)
    );
    let again = c
        .unbind(by_id(&b.binding_id))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(again.state, pb::BindingState::Unbound as i32);
    assert_eq!(
        again.update_time, u.update_time,
        "unbinding an ended binding changes nothing"
    );

    let mut same_x = xyb("p", B);
    same_x.number_x = numbers[0].clone();
    c.bind_xyb(same_x).await.expect("X is free again");

    assert_reason(
        &c.unbind(by_id("missing")).await.unwrap_err(),
        Code::NotFound,
        "BINDING_NOT_FOUND",
    );
    let err = c.unbind(pb::UnbindRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["binding_id"]);
    let err = c
        .unbind(pb::UnbindRequest {
            binding_id: "a".into(),
            customer_bind_id: "b".into(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn update_binding_moves_expiry_and_mutable_fields_and_refuses_ended_bindings() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 1, "").await;
    let mut c = s.bindings();
    let mut req = axn("p", "13900000000", 3600);
    req.customer_bind_id = "c1".into();
    let b = c
        .bind_axn_extension(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let new_exp = ts_in(7200);
    let u = c
        .update_binding(pb::UpdateBindingRequest {
            customer_bind_id: "c1".into(),
            expire_time: Some(new_exp),
            phone_b: Some("13800000000".into()),
            recording: Some(true),
            out_id: Some("o2".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(u.expire_time.unwrap().seconds, new_exp.seconds);
    assert_eq!(
        (u.phone_b.as_str(), u.recording, u.out_id.as_str()),
        ("13800000000", true, "o2")
    );

    let err = c
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            expire_time: Some(ts_in(10)),
            phone_b: Some("bad".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut f = violated_fields(&err);
    f.sort();
    assert_eq!(f, ["expire_time", "phone_b"]);

    c.unbind(by_id(&b.binding_id)).await.unwrap();
    let err = c
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id,
            recording: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "BINDING_ENDED");
}

#[tokio::test]
async fn list_bindings_pages_newest_first_and_filters() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 8, "").await;
    let mut c = s.bindings();
    let mut ids = vec![];
    for i in 0..5 {
        let mut r = xyb("p", &format!("8526000000{i}"));
        r.delayed_y = true;
        r.customer_user_id = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        ids.push(
            c.bind_xyb(r)
                .await
                .unwrap()
                .into_inner()
                .binding
                .unwrap()
                .binding_id,
        );
    }
    c.unbind(by_id(&ids[0])).await.unwrap();
    let mut got = vec![];
    let mut token = String::new();
    loop {
        let page = c
            .list_bindings(pb::ListBindingsRequest {
                pool_key: "p".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.bindings.len() <= 2);
        got.extend(page.bindings.into_iter().map(|b| b.binding_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);

    let even = list_bindings(
        &s,
        pb::ListBindingsRequest {
            customer_user_id: "even".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(even.len(), 3);
    let active = list_bindings(
        &s,
        pb::ListBindingsRequest {
            state: pb::BindingState::Xyb as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(active.len(), 4);
    let unbound = list_bindings(
        &s,
        pb::ListBindingsRequest {
            state: pb::BindingState::Unbound as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        unbound
            .iter()
            .map(|b| b.binding_id.clone())
            .collect::<Vec<_>>(),
        [ids[0].clone()]
    );
}

#[tokio::test]
async fn an_expired_binding_reads_as_expired_and_its_x_is_free_before_the_sweeper_runs() {
    // The default sweeper period is 1 s; nothing here waits for it.
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 2, "").await;
    let mut c = s.bindings();
    let mut r = xyb("p", B);
    r.number_x = numbers[0].clone();
    r.bind_expire_seconds = 60;
    let b = c.bind_xyb(r).await.unwrap().into_inner().binding.unwrap();
    s.clock.advance(61_000);
    let got = get_binding(&s, &b.binding_id).await;
    assert_eq!(got.state, pb::BindingState::Expired as i32);

    let mut again = xyb("p", "85260000001");
    again.number_x = numbers[0].clone();
    let b2 = c
        .bind_xyb(again)
        .await
        .expect("the expired lock is released inline")
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(b2.number_x, numbers[0]);
    let old = get_binding(&s, &b.binding_id).await;
    assert_eq!(old.state, pb::BindingState::Expired as i32);
}

#[tokio::test]
async fn the_sweeper_expires_bindings_and_frees_their_numbers() {
    let s = TestServer::start_with(fast_sweeper()).await;
    pool_with(&s, "p", "8521313", 4, "").await;
    let mut c = s.bindings();
    for i in 0..3 {
        let mut r = xyb("p", &format!("8526000000{i}"));
        r.bind_expire_seconds = 60;
        c.bind_xyb(r).await.unwrap();
    }
    c.bind_axn_extension(axn("p", "13900000000", 120))
        .await
        .unwrap();
    assert_eq!(stats(&s, "p").await.free, 0);
    s.clock.advance(61_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = stats(&s, "p").await;
        if st.locked == 0 && st.active_bindings == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sweeper did not run: {st:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let st = stats(&s, "p").await;
    assert_eq!(
        (st.locked, st.shared),
        (0, 1),
        "only the AXN number stays shared"
    );
    let expired = list_bindings(
        &s,
        pb::ListBindingsRequest {
            state: pb::BindingState::Expired as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(expired.len(), 3);
}
