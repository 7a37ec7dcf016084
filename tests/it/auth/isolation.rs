//! Tenant isolation: bindings (read, update, unbind, list, by id and by customer_bind_id),
//! events (live and catch-up), pools restricted to tenants, softswitch rights, the admin acting
//! for a tenant.

use std::time::Duration;

use pns_gateway::grpc::pb;
use tonic::Code;

use super::*;
use crate::support::fixtures::assert_reason;

const B: &str = "85264654798";

async fn bind(
    s: &TestServer,
    pool: &str,
    key: &str,
    tenant: Option<&str>,
    cbid: &str,
) -> pb::Binding {
    s.bindings()
        .bind_xyb(req(
            pb::BindXybRequest {
                pool_key: pool.into(),
                phone_b: B.into(),
                customer_bind_id: cbid.into(),
                ext: "secret-ext".into(),
                ..Default::default()
            },
            key,
            tenant,
        ))
        .await
        .expect("bind")
        .into_inner()
        .binding
        .expect("binding")
}

fn by_id(id: &str) -> pb::GetBindingRequest {
    pb::GetBindingRequest {
        binding_id: id.into(),
        ..Default::default()
    }
}

fn by_cbid(cb: &str) -> pb::GetBindingRequest {
    pb::GetBindingRequest {
        customer_bind_id: cb.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn another_tenant_cannot_read_change_unbind_or_list_a_binding() {
    let s = TestServer::start_with(keyed()).await;
    admin_pool(&s, "hk", "85270000", 4, &[]).await;
    let b = bind(&s, "hk", ACME_OLD, None, "order-1").await;
    assert_eq!(b.tenant, "acme");

    // zeta: NOT_FOUND (no existence leak), the same answer as for an id that does not exist.
    let mut c = s.bindings();
    for r in [by_id(&b.binding_id), by_cbid("order-1")] {
        let st = c.get_binding(req(r, ZETA, None)).await.unwrap_err();
        assert_reason(&st, Code::NotFound, "BINDING_NOT_FOUND");
    }
    let unknown = c
        .get_binding(req(by_id(&uuid::Uuid::now_v7().to_string()), ZETA, None))
        .await
        .unwrap_err();
    assert_reason(&unknown, Code::NotFound, "BINDING_NOT_FOUND");
    let st = c
        .update_binding(req(
            pb::UpdateBindingRequest {
                binding_id: b.binding_id.clone(),
                ext: Some("taken-over".into()),
                ..Default::default()
            },
            ZETA,
            None,
        ))
        .await
        .unwrap_err();
    assert_reason(&st, Code::NotFound, "BINDING_NOT_FOUND");
    let st = c
        .update_binding(req(
            pb::UpdateBindingRequest {
                customer_bind_id: "order-1".into(),
                ext: Some("taken-over".into()),
                ..Default::default()
            },
            ZETA,
            None,
        ))
        .await
        .unwrap_err();
    assert_reason(&st, Code::NotFound, "BINDING_NOT_FOUND");
    for (id, cb) in [(b.binding_id.as_str(), ""), ("", "order-1")] {
        let st = c
            .unbind(req(
                pb::UnbindRequest {
                    binding_id: id.into(),
                    customer_bind_id: cb.into(),
                },
                ZETA,
                None,
            ))
            .await
            .unwrap_err();
        assert_reason(&st, Code::NotFound, "BINDING_NOT_FOUND");
    }
    let listed = c
        .list_bindings(req(pb::ListBindingsRequest::default(), ZETA, None))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.bindings.is_empty(), "{listed:?}");
    // The same customer_bind_id in zeta is zeta's own binding, not a replay of acme's.
    let zb = bind(&s, "hk", ZETA, None, "order-1").await;
    assert_ne!(zb.binding_id, b.binding_id);
    assert_eq!(zb.tenant, "zeta");

    // Without a key: nothing.
    unauthenticated(c.get_binding(req(by_id(&b.binding_id), "", None)).await);
    unauthenticated(
        c.unbind(req(
            pb::UnbindRequest {
                binding_id: b.binding_id.clone(),
                ..Default::default()
            },
            "",
            Some("acme"),
        ))
        .await,
    );

    // A tenant key naming another tenant: PERMISSION_DENIED.
    denied(
        c.get_binding(req(by_id(&b.binding_id), ZETA, Some("acme")))
            .await,
        "TENANT_MISMATCH",
    );

    // acme, with either of its keys (rotation), sees its binding unchanged.
    for key in [ACME_OLD, ACME_NEW] {
        let got = c
            .get_binding(req(by_id(&b.binding_id), key, Some("acme")))
            .await
            .expect("own binding")
            .into_inner()
            .binding
            .unwrap();
        assert_eq!((got.ext.as_str(), got.state), ("secret-ext", b.state));
        let listed = c
            .list_bindings(req(pb::ListBindingsRequest::default(), key, None))
            .await
            .unwrap()
            .into_inner()
            .bindings;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].binding_id, b.binding_id);
    }

    // The admin acts for acme with x-pns-tenant; without it, for `default` (nothing there).
    let st = c
        .get_binding(req(by_id(&b.binding_id), ADMIN, None))
        .await
        .unwrap_err();
    assert_reason(&st, Code::NotFound, "BINDING_NOT_FOUND");
    let ended = c
        .unbind(req(
            pb::UnbindRequest {
                customer_bind_id: "order-1".into(),
                ..Default::default()
            },
            ADMIN,
            Some("acme"),
        ))
        .await
        .expect("admin unbinds for acme")
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(ended.binding_id, b.binding_id);
    assert_eq!(ended.state, pb::BindingState::Unbound as i32);
    // zeta's binding is untouched.
    let z = c
        .get_binding(req(by_id(&zb.binding_id), ZETA, None))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(z.state, zb.state);
}

async fn events_of(s: &TestServer, key: &str, tenant: Option<&str>, upto: i64) -> Vec<pb::Event> {
    let mut st = s
        .calls()
        .watch_events(req(pb::WatchEventsRequest::default(), key, tenant))
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    // Catch-up from the database, then live from the hub, until a quiet period.
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(400), st.message())
        .await
        .map(|r| r.transpose())
    {
        let seq = e.sequence;
        out.push(e);
        if seq >= upto {
            break;
        }
    }
    out
}

#[tokio::test]
async fn events_are_streamed_to_their_tenant_only() {
    let s = TestServer::start_with(keyed()).await;
    admin_pool(&s, "hk", "85270000", 4, &[]).await;
    // A live zeta subscriber, opened before anything happens (served from memory).
    let mut live = s
        .calls()
        .watch_events(req(pb::WatchEventsRequest::default(), ZETA, None))
        .await
        .unwrap()
        .into_inner();
    let a = bind(&s, "hk", ACME_OLD, None, "a-1").await;
    let z = bind(&s, "hk", ZETA, None, "z-1").await;
    let e = tokio::time::timeout(Duration::from_secs(10), live.message())
        .await
        .expect("zeta's event")
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.tenant.as_str(), e.binding_id.as_str()),
        ("zeta", z.binding_id.as_str())
    );

    // Catch-up readers (from sequence 0, read from the database).
    let acme = events_of(&s, ACME_NEW, None, i64::MAX).await;
    assert!(!acme.is_empty());
    assert!(
        acme.iter()
            .all(|e| e.tenant == "acme" && e.binding_id == a.binding_id),
        "{acme:?}"
    );
    let zeta = events_of(&s, ZETA, None, i64::MAX).await;
    assert!(zeta.iter().all(|e| e.tenant == "zeta"), "{zeta:?}");
    // The admin: one tenant with the header, every tenant without.
    let for_acme = events_of(&s, ADMIN, Some("acme"), i64::MAX).await;
    assert_eq!(for_acme.len(), acme.len());
    let all = events_of(&s, ADMIN, None, i64::MAX).await;
    assert_eq!(all.len(), acme.len() + zeta.len());
    // A binding_id filter naming acme's binding gives zeta nothing.
    let mut st = s
        .calls()
        .watch_events(req(
            pb::WatchEventsRequest {
                binding_id: a.binding_id.clone(),
                ..Default::default()
            },
            ZETA,
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), st.message())
            .await
            .is_err(),
        "no event of acme's binding reaches zeta"
    );
    denied(
        s.calls()
            .watch_events(req(pb::WatchEventsRequest::default(), SOFTSWITCH, None))
            .await,
        "TENANT_KEY_REQUIRED",
    );
}

#[tokio::test]
async fn pools_restricted_to_tenants_and_held_numbers_stay_in_service() {
    let s = TestServer::start_with(keyed()).await;
    admin_pool(&s, "acme-only", "85271000", 2, &["acme"]).await;
    let st = s
        .bindings()
        .bind_xyb(req(
            pb::BindXybRequest {
                pool_key: "acme-only".into(),
                phone_b: B.into(),
                ..Default::default()
            },
            ZETA,
            None,
        ))
        .await
        .unwrap_err();
    assert_reason(&st, Code::PermissionDenied, "POOL_NOT_ALLOWED");
    let b = bind(&s, "acme-only", ACME_OLD, None, "").await;
    let pools = s
        .pools()
        .list_pools(req(pb::ListPoolsRequest {}, ADMIN, None))
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert_eq!(pools[0].tenants, ["acme"]);
    // zeta does not see the pool; acme sees it without the list of tenants.
    let zeta_pools = s
        .pools()
        .list_pools(req(pb::ListPoolsRequest {}, ZETA, None))
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert!(zeta_pools.is_empty(), "{zeta_pools:?}");
    let acme_pools = s
        .pools()
        .list_pools(req(pb::ListPoolsRequest {}, ACME_NEW, None))
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert_eq!(acme_pools.len(), 1);
    assert!(acme_pools[0].tenants.is_empty());

    // X is locked by the live binding: it cannot be retired or reserved under it.
    for state in [pb::NumberState::Retired, pb::NumberState::Reserved] {
        let st = s
            .pools()
            .set_number_state(req(
                pb::SetNumberStateRequest {
                    pool_key: "acme-only".into(),
                    number: b.number_x.clone(),
                    state: state as i32,
                },
                ADMIN,
                None,
            ))
            .await
            .unwrap_err();
        assert_reason(&st, Code::FailedPrecondition, "NUMBER_LOCKED");
    }
    s.bindings()
        .unbind(req(
            pb::UnbindRequest {
                binding_id: b.binding_id.clone(),
                ..Default::default()
            },
            ACME_OLD,
            None,
        ))
        .await
        .unwrap();
    s.pools()
        .set_number_state(req(
            pb::SetNumberStateRequest {
                pool_key: "acme-only".into(),
                number: b.number_x.clone(),
                state: pb::NumberState::Retired as i32,
            },
            ADMIN,
            None,
        ))
        .await
        .expect("a free number can be retired");
}

#[tokio::test]
async fn call_ins_and_reports_are_the_softswitchs_and_the_admins() {
    let s = TestServer::start_with(keyed()).await;
    admin_pool(&s, "hk", "85270000", 2, &[]).await;
    let b = bind(&s, "hk", ACME_OLD, None, "").await;
    let call = |id: &str| pb::NotifyCallInRequest {
        caller: "85291112222".into(),
        called: b.number_x.clone(),
        extension: String::new(),
        call_id: id.into(),
    };
    for key in [ACME_OLD, ZETA] {
        denied(
            s.calls().notify_call_in(req(call("c0"), key, None)).await,
            "SOFTSWITCH_KEY_REQUIRED",
        );
        denied(
            s.calls()
                .report_call_event(req(pb::ReportCallEventRequest::default(), key, None))
                .await,
            "SOFTSWITCH_KEY_REQUIRED",
        );
    }
    let d = s
        .calls()
        .notify_call_in(req(call("c1"), SOFTSWITCH, None))
        .await
        .expect("softswitch routes")
        .into_inner();
    assert_eq!(d.decision, pb::Decision::Connect as i32);
    s.calls()
        .notify_call_in(req(call("c2"), ADMIN, None))
        .await
        .expect("admin routes");
    // The softswitch key reads no tenant data.
    denied(
        s.bindings()
            .get_binding(req(by_id(&b.binding_id), SOFTSWITCH, None))
            .await,
        "TENANT_KEY_REQUIRED",
    );
    // The call-in events belong to acme.
    let ev = events_of(&s, ACME_OLD, None, i64::MAX).await;
    assert!(ev.iter().any(|e| e.kind == "call.incoming"), "{ev:?}");
    assert!(events_of(&s, ZETA, None, i64::MAX).await.is_empty());
}
