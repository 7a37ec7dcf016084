//! Ids and keys compare byte for byte on every database. MySQL's default collation is case-
//! and accent-insensitive (`Order-1` = `order-1` = `ordér-1`), which would turn different
//! `customer_bind_id`s into one idempotency key; the migrations give MySQL tables a binary one.

use std::collections::HashSet;

use pns_gateway::grpc::pb;

use crate::support::{TestServer, fixtures::*};

const IDS: [&str; 3] = ["order-1", "ORDER-1", "ordér-1"];

#[tokio::test]
async fn customer_bind_ids_that_differ_only_in_case_or_accents_are_different_bindings() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 6, "").await;
    let mut made = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        let mut r = xyb("p", &format!("8526465479{i}"));
        r.customer_bind_id = (*id).to_owned();
        let resp = s.bindings().bind_xyb(r).await.expect(id).into_inner();
        assert!(!resp.replayed, "{id} was taken for an earlier id");
        let b = resp.binding.expect("binding");
        assert_eq!(b.customer_bind_id, *id);
        made.push(b.binding_id);
    }
    assert_eq!(made.iter().collect::<HashSet<_>>().len(), IDS.len());
    // Each id reads back its own binding.
    for (id, binding_id) in IDS.iter().zip(&made) {
        let got = s
            .bindings()
            .get_binding(pb::GetBindingRequest {
                customer_bind_id: (*id).to_owned(),
                ..Default::default()
            })
            .await
            .expect(id)
            .into_inner()
            .binding
            .expect("binding");
        assert_eq!(&got.binding_id, binding_id, "{id}");
    }
}
