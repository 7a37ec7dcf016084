//! NumberPoolService through the real server.

use pns_gateway::grpc::pb;
use tonic::Code;

use crate::support::{TestServer, fixtures::*};

#[tokio::test]
async fn create_list_and_duplicate_pool() {
    let s = TestServer::start().await;
    let mut pools = s.pools();
    let created = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: "hk-1".into(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.pool.unwrap().pool_key, "hk-1");
    let err = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: "hk-1".into(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "POOL_ALREADY_EXISTS");
    let listed = pools
        .list_pools(pb::ListPoolsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].provider, pb::Provider::Local as i32);
}

#[tokio::test]
async fn invalid_pool_requests_are_rejected_precisely() {
    let s = TestServer::start().await;
    let mut pools = s.pools();
    let err = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: "bad key!".into(),
            provider: 0,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&err), ["pool_key"]);
    let err = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: "nx".into(),
            provider: pb::Provider::Nxcloud as i32,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["provider"]);
    let err = pools
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::NotFound, "POOL_NOT_FOUND");
    assert!(
        pools
            .list_pools(pb::ListPoolsRequest {})
            .await
            .unwrap()
            .into_inner()
            .pools
            .is_empty()
    );
}

#[tokio::test]
async fn add_numbers_skips_known_rejects_invalid_and_foreign_without_writing() {
    let s = TestServer::start().await;
    pool_with(&s, "p1", "85290000", 3, "").await;
    pool_with(&s, "p2", "85291000", 0, "").await;
    let mut pools = s.pools();
    let spec = |n: &str| pb::NumberSpec {
        number: n.into(),
        iso2: "hk".into(),
        city: "Kowloon".into(),
    };

    let r = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: "p1".into(),
            numbers: vec![spec("852900000001"), spec("+852900000099")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.added, r.skipped), (1, 1));

    let err = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: "p2".into(),
            numbers: vec![spec("85291110001"), spec("12ab")],
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "MOBILE_NUMBER_ILLEGAL");
    assert_eq!(violated_fields(&err), ["numbers[1].number"]);

    let err = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: "p2".into(),
            numbers: vec![spec("85291110001"), spec("852900000002")],
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NUMBER_IN_OTHER_POOL");
    assert_eq!(
        stats(&s, "p2").await.total,
        0,
        "a rejected request adds nothing"
    );
    assert_eq!(stats(&s, "p1").await.total, 4);
}

#[tokio::test]
async fn list_numbers_pages_and_set_state_takes_numbers_out_of_allocation() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8529000", 5, "").await;
    let mut pools = s.pools();
    let mut seen = vec![];
    let mut token = String::new();
    loop {
        let page = pools
            .list_numbers(pb::ListNumbersRequest {
                pool_key: "p".into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.numbers.into_iter().map(|n| n.number));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, numbers);
    let err = pools
        .list_numbers(pb::ListNumbersRequest {
            pool_key: "p".into(),
            page_size: 2,
            page_token: "b.x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["page_token"]);

    for n in &numbers[1..] {
        let r = pools
            .set_number_state(pb::SetNumberStateRequest {
                pool_key: "p".into(),
                number: n.clone(),
                state: pb::NumberState::Retired as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.number.unwrap().state, pb::NumberState::Retired as i32);
    }
    let err = pools
        .set_number_state(pb::SetNumberStateRequest {
            pool_key: "p".into(),
            number: "85299999999".into(),
            state: 2,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::NotFound, "NUMBER_NOT_FOUND");

    let mut b = s.bindings();
    let bound = b.bind_xyb(xyb("p", "85261234567")).await.unwrap_err();
    assert_reason(&bound, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
    let mut req = xyb("p", "85261234567");
    req.delayed_y = true;
    let x = b
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap()
        .number_x;
    assert_eq!(x, numbers[0], "only the available number is allocated");
    let st = stats(&s, "p").await;
    assert_eq!(
        (st.total, st.free, st.locked, st.retired, st.active_bindings),
        (5, 0, 1, 4, 1)
    );
}
