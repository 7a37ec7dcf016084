//! Request builders and assertions shared by the tests.

use pns_gateway::grpc::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::TestServer;

/// Creates a local pool with `n` numbers `<prefix><0001…>` (iso2 HK, city from `city`).
pub async fn pool_with(
    server: &TestServer,
    key: &str,
    prefix: &str,
    n: usize,
    city: &str,
) -> Vec<String> {
    let mut pools = server.pools();
    pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: key.into(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        })
        .await
        .expect("create pool");
    let numbers: Vec<String> = (1..=n).map(|i| format!("{prefix}{i:04}")).collect();
    if n > 0 {
        add_numbers(server, key, &numbers, city).await;
    }
    numbers
}

pub async fn add_numbers(server: &TestServer, key: &str, numbers: &[String], city: &str) {
    let resp = server
        .pools()
        .add_numbers(pb::AddNumbersRequest {
            pool_key: key.into(),
            numbers: numbers
                .iter()
                .map(|n| pb::NumberSpec {
                    number: n.clone(),
                    iso2: "HK".into(),
                    city: city.into(),
                })
                .collect(),
        })
        .await
        .expect("add numbers")
        .into_inner();
    assert_eq!(resp.added as usize, numbers.len());
}

pub fn xyb(pool: &str, b: &str) -> pb::BindXybRequest {
    pb::BindXybRequest {
        pool_key: pool.into(),
        phone_b: b.into(),
        ..Default::default()
    }
}

/// Binds `req` (it must succeed) and gives the binding.
pub async fn bound(server: &TestServer, req: pb::BindXybRequest) -> pb::Binding {
    server
        .bindings()
        .bind_xyb(req)
        .await
        .expect("bind")
        .into_inner()
        .binding
        .expect("a binding")
}

/// Every event after `after`, read from the store (all tenants).
pub async fn events_after(server: &TestServer, after: i64) -> Vec<pns_gateway::domain::Event> {
    use pns_gateway::domain::{EventFilter, Repository};
    server
        .store
        .read_events(&EventFilter {
            tenant: None,
            after,
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("read events")
}

pub fn axn(pool: &str, a: &str, expire_in_secs: i64) -> pb::BindAxnExtensionRequest {
    pb::BindAxnExtensionRequest {
        pool_key: pool.into(),
        phone_a: a.into(),
        expire_time: Some(ts_in(expire_in_secs)),
        ..Default::default()
    }
}

/// A call-in: `caller` dials `called` (keying `ext`, empty for none) in call `call_id`.
pub fn call_in(caller: &str, called: &str, ext: &str, call_id: &str) -> pb::NotifyCallInRequest {
    pb::NotifyCallInRequest {
        caller: caller.into(),
        called: called.into(),
        extension: ext.into(),
        call_id: call_id.into(),
    }
}

pub fn ts_in(secs: i64) -> prost_types::Timestamp {
    let now = chrono::Utc::now().timestamp();
    prost_types::Timestamp {
        seconds: now + secs,
        nanos: 0,
    }
}

/// Asserts the status code and `ErrorInfo.reason` (domain `pns.gateway`).
#[track_caller]
pub fn assert_reason(st: &Status, code: Code, reason: &str) {
    assert_eq!(st.code(), code, "unexpected status: {st:?}");
    let info = st
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {st:?}"));
    assert_eq!(info.reason, reason, "unexpected reason in {st:?}");
    assert_eq!(info.domain, "pns.gateway");
}

/// The `BadRequest` field names of an INVALID_ARGUMENT status.
pub fn violated_fields(st: &Status) -> Vec<String> {
    st.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

pub async fn stats(server: &TestServer, pool: &str) -> pb::GetPoolStatsResponse {
    server
        .pools()
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: pool.into(),
        })
        .await
        .expect("stats")
        .into_inner()
}

/// `ListBindings` through the server.
pub async fn list_bindings(server: &TestServer, req: pb::ListBindingsRequest) -> Vec<pb::Binding> {
    server
        .bindings()
        .list_bindings(req)
        .await
        .expect("list bindings")
        .into_inner()
        .bindings
}

/// `GetBinding` by id through the server.
pub async fn get_binding(server: &TestServer, id: &str) -> pb::Binding {
    server
        .bindings()
        .get_binding(pb::GetBindingRequest {
            binding_id: id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("get binding")
        .into_inner()
        .binding
        .expect("binding")
}
