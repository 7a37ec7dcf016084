//! Ids and opaque values (item 10): the tenant header, page tokens, binding ids.

use pns_gateway::grpc::pb;
use tonic::{
    Code, Request,
    metadata::{AsciiMetadataValue, MetadataValue},
};

use super::{A, B, POOL, expect, huge, rejected, seeded, snapshot};
use crate::support::fixtures::*;

fn with_tenant<T>(msg: T, tenant: AsciiMetadataValue) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-pns-tenant", tenant);
    r
}

#[tokio::test]
async fn a_bad_tenant_header_is_invalid_argument_naming_the_header() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let mut bind = s.bindings();
    let bad = [
        MetadataValue::try_from("t".repeat(65)).unwrap(),
        MetadataValue::try_from("shop/2").unwrap(),
        MetadataValue::try_from("shop 2").unwrap(),
        // Opaque bytes (obs-text): not visible ASCII, used to fall back to "default".
        MetadataValue::try_from(&b"caf\xc3\xa9"[..]).unwrap(),
        // Long, but under HTTP/2's header-list limit (16 KiB), which refuses anything bigger
        // before it reaches the service.
        MetadataValue::try_from("t".repeat(1000)).unwrap(),
    ];
    for t in bad {
        let mut r = xyb(POOL, B);
        r.customer_bind_id = "order-2".into();
        let st = bind.bind_xyb(with_tenant(r, t.clone())).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["x-pns-tenant"]);
        let st = bind
            .bind_axn_extension(with_tenant(axn(POOL, A, 3600), t.clone()))
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["x-pns-tenant"]);
        let st = bind
            .get_binding(with_tenant(
                pb::GetBindingRequest {
                    customer_bind_id: "order-1".into(),
                    ..Default::default()
                },
                t.clone(),
            ))
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["x-pns-tenant"]);
        let st = bind
            .update_binding(with_tenant(
                pb::UpdateBindingRequest {
                    binding_id: b.binding_id.clone(),
                    ext: Some("new".into()),
                    ..Default::default()
                },
                t.clone(),
            ))
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["x-pns-tenant"]);
        let st = bind
            .unbind(with_tenant(
                pb::UnbindRequest {
                    binding_id: b.binding_id.clone(),
                    ..Default::default()
                },
                t,
            ))
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["x-pns-tenant"]);
    }
    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected requests stored nothing"
    );

    // The longest valid tenant works and is its own namespace.
    let t = MetadataValue::try_from(format!("{}.-_9", "T".repeat(60))).unwrap();
    let got = bind
        .get_binding(with_tenant(
            pb::GetBindingRequest {
                customer_bind_id: "order-1".into(),
                ..Default::default()
            },
            t,
        ))
        .await
        .unwrap_err();
    expect(&got, Code::NotFound, "BINDING_NOT_FOUND");
}

#[tokio::test]
async fn page_tokens_are_bounded_and_garbage_is_rejected() {
    let (s, b) = seeded().await;
    let mut bind = s.bindings();
    let mut pools = s.pools();
    for token in [
        huge(),
        "b.".into(),
        "b.not-a-uuid".into(),
        format!("b.{}\0", b.binding_id),
        format!("b.{}{}", b.binding_id, "0".repeat(64)),
        "n.85290000001".into(),
    ] {
        let st = bind
            .list_bindings(pb::ListBindingsRequest {
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["page_token"]);
    }
    for token in [
        huge(),
        "n.".into(),
        "n.8529abc".into(),
        "n.1234567890123456".into(),
        format!("b.{}", b.binding_id),
    ] {
        let st = pools
            .list_numbers(pb::ListNumbersRequest {
                pool_key: POOL.into(),
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["page_token"]);
    }
    // The tokens the server hands out still work.
    let page = bind
        .list_bindings(pb::ListBindingsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.bindings.len(), 1);
    let page = pools
        .list_numbers(pb::ListNumbersRequest {
            pool_key: POOL.into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let next = pools
        .list_numbers(pb::ListNumbersRequest {
            pool_key: POOL.into(),
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.numbers.len(), 1);
}

/// Binding ids are UUIDs. Control characters or more than 64 characters are INVALID_ARGUMENT;
/// clean text that is not a UUID names no binding: NOT_FOUND without asking the database; any
/// spelling of a UUID finds the binding.
#[tokio::test]
async fn binding_ids_are_checked_before_any_lookup() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let mut bind = s.bindings();
    for id in [format!("{}\0", b.binding_id), "x".repeat(65), huge()] {
        let st = bind
            .get_binding(pb::GetBindingRequest {
                binding_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["binding_id"]);
        let st = bind
            .update_binding(pb::UpdateBindingRequest {
                binding_id: id.clone(),
                ext: Some("e".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["binding_id"]);
        let st = bind
            .unbind(pb::UnbindRequest {
                binding_id: id,
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["binding_id"]);
    }
    for id in [
        "not-a-uuid".to_owned(),
        format!("{}x", b.binding_id),
        uuid::Uuid::now_v7().to_string(),
    ] {
        let st = bind
            .get_binding(pb::GetBindingRequest {
                binding_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        expect(&st, Code::NotFound, "BINDING_NOT_FOUND");
        let st = bind
            .unbind(pb::UnbindRequest {
                binding_id: id,
                ..Default::default()
            })
            .await
            .unwrap_err();
        expect(&st, Code::NotFound, "BINDING_NOT_FOUND");
    }
    // An invalid update of a binding that cannot exist: the violations come first.
    let st = bind
        .update_binding(pb::UpdateBindingRequest {
            binding_id: "not-a-uuid".into(),
            ext: Some("\0".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["ext"]);
    // Both ids set, one malformed: every violation at once.
    let st = bind
        .unbind(pb::UnbindRequest {
            binding_id: "x".into(),
            customer_bind_id: "c\0".into(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["binding_id", "customer_bind_id"]);
    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected requests stored nothing"
    );

    for spelling in [
        b.binding_id.to_uppercase(),
        b.binding_id.replace('-', ""),
        format!("{{{}}}", b.binding_id),
        format!("urn:uuid:{}", b.binding_id),
    ] {
        assert_eq!(get_binding(&s, &spelling).await.binding_id, b.binding_id);
    }
}
