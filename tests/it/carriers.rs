//! Carrier pools end to end: the same gRPC calls on NXCloud and Aliyun pools, converted by the
//! adapters, answered by fakes that verify every signature; failure mapping; unknown outcomes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use pns_gateway::{app, config::FileConfig, grpc::pb, storage::Store};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    TestDb, TestServer,
    fake_aliyun::{self, FakeAliyun, FakeAliyunConfig},
    fake_nxcloud::{self, FakeNxcloud, FakeNxcloudConfig},
    fixtures::*,
};

pub(crate) struct Env {
    pub(crate) s: TestServer,
    pub(crate) nx: FakeNxcloud,
    pub(crate) ali: FakeAliyun,
}

pub(crate) const NX_TOKEN: &str = "nx-token-0123456789abcdef";
pub(crate) const ALI_TOKEN: &str = "ali-token-0123456789abcdef";

pub(crate) async fn start(nx_url: Option<String>, ali_url: Option<String>, timeout_ms: u64) -> Env {
    let nx = FakeNxcloud::start(FakeNxcloudConfig::default()).await;
    let ali = FakeAliyun::start(FakeAliyunConfig::default()).await;
    let toml = format!(
        r#"
[[pools]]
key = "nx"
provider = "nxcloud"
business_id = "app-key-1"
base_url = "{}"
access_key_env = "T_NX_AK"
access_secret_env = "T_NX_SK"
timeout_ms = {timeout_ms}

[[pools]]
key = "ali"
provider = "aliyun"
carrier_pool_key = "FC100000000000001"
base_url = "{}"
access_key_id_env = "T_ALI_AK"
access_key_secret_env = "T_ALI_SK"
timeout_ms = {timeout_ms}
"#,
        nx_url.unwrap_or_else(|| nx.base_url()),
        ali_url.unwrap_or_else(|| ali.base_url()),
    );
    let cfg: FileConfig = toml::from_str(&toml).expect("config");
    let env: HashMap<&str, &str> = HashMap::from([
        ("T_NX_AK", "fake-ak"),
        ("T_NX_SK", "fake-secret"),
        ("T_ALI_AK", "testid"),
        ("T_ALI_SK", "testsecret"),
    ]);
    let carriers = cfg
        .build_carriers(|n| env.get(n).map(|v| v.to_string()))
        .expect("carriers");
    let db = Arc::new(TestDb::new().await);
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    app::apply_config(&store, &cfg).await.unwrap();
    let settings = app::Settings {
        carriers,
        reconcile_after: Duration::from_millis(300),
        webhook_tokens: pns_gateway::http::WebhookTokens {
            nxcloud: Some(NX_TOKEN.into()),
            aliyun: Some(ALI_TOKEN.into()),
        },
        ..Default::default()
    };
    let s = TestServer::start_on(db, settings).await;
    Env { s, nx, ali }
}

fn provider_code(st: &tonic::Status) -> String {
    st.get_details_error_info()
        .and_then(|i| i.metadata.get("provider_code").cloned())
        .unwrap_or_default()
}

async fn all_bindings(s: &TestServer) -> Vec<pb::Binding> {
    list_bindings(s, pb::ListBindingsRequest::default()).await
}

#[tokio::test]
async fn config_declared_carrier_pools_are_listed() {
    let e = start(None, None, 2000).await;
    let pools =
        e.s.pools()
            .list_pools(pb::ListPoolsRequest {})
            .await
            .unwrap()
            .into_inner()
            .pools;
    let got: Vec<(String, i32, String)> = pools
        .into_iter()
        .map(|p| (p.pool_key, p.provider, p.carrier_pool_key))
        .collect();
    assert_eq!(
        got,
        [
            (
                "ali".into(),
                pb::Provider::Aliyun as i32,
                "FC100000000000001".into()
            ),
            (
                "nx".into(),
                pb::Provider::Nxcloud as i32,
                "app-key-1".into()
            ),
        ]
    );
    let err =
        e.s.pools()
            .add_numbers(pb::AddNumbersRequest {
                pool_key: "nx".into(),
                numbers: vec![pb::NumberSpec {
                    number: "85213135399".into(),
                    ..Default::default()
                }],
            })
            .await
            .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "PROVIDER_NOT_SUPPORTED");
}

#[tokio::test]
async fn nxcloud_pool_binds_replays_and_unbinds_through_the_carrier() {
    let e = start(None, None, 2000).await;
    let mut c = e.s.bindings();
    let mut req = xyb("nx", "85264654798");
    req.customer_bind_id = "order-7".into();
    req.bind_expire_seconds = 300;
    let b = c
        .bind_xyb(req.clone())
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(b.provider, pb::Provider::Nxcloud as i32);
    assert_eq!(b.state, pb::BindingState::Xyb as i32);
    let upstream = e.nx.active_bindings();
    assert_eq!(upstream.len(), 1);
    assert_eq!(b.provider_binding_id, upstream[0].bind_id);
    assert_eq!(b.number_x, upstream[0].did_x);
    assert_eq!(
        upstream[0].customer_bind_id.as_deref(),
        Some(b.binding_id.as_str()),
        "tenant-safe upstream id"
    );
    let sent = e.nx.requests();
    assert_eq!(sent[0].json()["businessId"], "app-key-1");
    assert_eq!(sent[0].json()["phoneB"], "85264654798");
    assert_eq!(sent[0].json()["bindExpireSecond"], 300);

    let again = c.bind_xyb(req).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.binding.unwrap().binding_id, b.binding_id);
    assert_eq!(
        e.nx.requests().len(),
        1,
        "a replay never reaches the carrier"
    );

    let axe = c
        .bind_axn_extension(axn("nx", "85290001234", 3600))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(axe.extension.len(), 4, "NXCloud assigns 4-digit extensions");

    let err = c
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            expire_time: Some(ts_in(600)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "PROVIDER_NOT_SUPPORTED");

    let u = c
        .unbind(pb::UnbindRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(u.state, pb::BindingState::Unbound as i32);
    assert_eq!(
        e.nx.active_bindings().len(),
        1,
        "only the AXE binding is left upstream"
    );
    assert_eq!(
        e.nx.requests().last().unwrap().header("action"),
        Some("unbindAXB")
    );
}

#[tokio::test]
async fn aliyun_pool_binds_updates_and_unbinds_and_refuses_xyb() {
    let e = start(None, None, 2000).await;
    let mut c = e.s.bindings();
    let mut req = axn("ali", "13900000000", 3600);
    req.out_id = "order-42".into();
    req.expect_city = "北京".into();
    let b = c
        .bind_axn_extension(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let up = e.ali.active_bindings();
    assert_eq!(up.len(), 1);
    assert_eq!(
        (b.provider_binding_id.as_str(), b.number_x.as_str()),
        (up[0].subs_id.as_str(), up[0].phone_x.as_str())
    );
    let sent = &e.ali.requests()[0];
    assert_eq!(sent.param("Action"), Some("BindAxnExtension"));
    assert_eq!(sent.param("OutId"), Some("order-42"));
    assert_eq!(sent.param("PoolKey"), Some("FC100000000000001"));

    let new_exp = ts_in(7200);
    let u = c
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            expire_time: Some(new_exp),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(u.expire_time.unwrap().seconds, new_exp.seconds);
    let cst =
        chrono::DateTime::from_timestamp(new_exp.seconds, 0).unwrap() + chrono::Duration::hours(8);
    assert_eq!(
        e.ali.active_bindings()[0].expiration,
        cst.format("%Y-%m-%d %H:%M:%S").to_string()
    );

    let before = e.ali.requests().len();
    let err = c.bind_xyb(xyb("ali", "13800000000")).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "PROVIDER_NOT_SUPPORTED");
    assert_eq!(e.ali.requests().len(), before, "nothing was sent");

    c.unbind(pb::UnbindRequest {
        binding_id: b.binding_id,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(e.ali.active_bindings().is_empty());
}

#[tokio::test]
async fn carrier_errors_map_to_precise_statuses_and_leave_nothing_behind() {
    let e = start(None, None, 2000).await;
    let mut c = e.s.bindings();

    e.nx.set_next(fake_nxcloud::Behaviour::ErrorCode(10010));
    let err = c.bind_xyb(xyb("nx", "85264654798")).await.unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "NO_AVAILABLE_NUMBER");
    assert_eq!(provider_code(&err), "10010");

    e.nx.set_next(fake_nxcloud::Behaviour::ErrorCode(1003));
    let err = c.bind_xyb(xyb("nx", "85264654798")).await.unwrap_err();
    assert_reason(&err, Code::Internal, "PROVIDER_CONFIGURATION");
    assert!(!err.message().contains("fake-secret"));

    e.ali.set_next(fake_aliyun::Behaviour::BusinessError(
        "isv.MOBILE_NUMBER_ILLEGAL".into(),
    ));
    let err = c
        .bind_axn_extension(axn("ali", "13900000000", 3600))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "MOBILE_NUMBER_ILLEGAL");
    assert_eq!(provider_code(&err), "isv.MOBILE_NUMBER_ILLEGAL");

    e.ali.set_next(fake_aliyun::Behaviour::BusinessError(
        "isv.BIND_CONFLICT".into(),
    ));
    assert_reason(
        &c.bind_axn_extension(axn("ali", "13900000000", 3600))
            .await
            .unwrap_err(),
        Code::AlreadyExists,
        "BIND_CONFLICT",
    );

    e.ali
        .set_next(fake_aliyun::Behaviour::Throttle { time_left_ms: 1200 });
    let err = c
        .bind_axn_extension(axn("ali", "13900000000", 3600))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "PROVIDER_THROTTLED");
    assert_eq!(
        err.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_millis(1200))
    );

    assert!(
        all_bindings(&e.s).await.is_empty(),
        "definite failures leave no reservation"
    );
    assert!(e.nx.active_bindings().is_empty() && e.ali.active_bindings().is_empty());
}

#[tokio::test]
async fn an_unreachable_carrier_is_unavailable_and_leaves_nothing() {
    let dead = format!("http://{}", fake_nxcloud::unused_addr().await);
    let e = start(Some(dead), Some(fake_aliyun::unused_base_url()), 1000).await;
    let mut c = e.s.bindings();
    assert_reason(
        &c.bind_xyb(xyb("nx", "85264654798")).await.unwrap_err(),
        Code::Unavailable,
        "PROVIDER_UNAVAILABLE",
    );
    assert_reason(
        &c.bind_axn_extension(axn("ali", "13900000000", 3600))
            .await
            .unwrap_err(),
        Code::Unavailable,
        "PROVIDER_UNAVAILABLE",
    );
    assert!(all_bindings(&e.s).await.is_empty());
}

#[tokio::test]
async fn an_nxcloud_timeout_is_reconciled_into_exactly_one_mirrored_binding() {
    let e = start(None, None, 300).await;
    let mut c = e.s.bindings();
    // The adapter retries a timed-out bind once (NXCloud de-duplicates by customerBindId);
    // both attempts are slow here, so the outcome is unknown.
    e.nx.set_next(fake_nxcloud::Behaviour::Delay(Duration::from_millis(800)));
    e.nx.set_next(fake_nxcloud::Behaviour::Delay(Duration::from_millis(800)));
    let mut req = xyb("nx", "85264654798");
    req.customer_bind_id = "slow-1".into();
    let err = c.bind_xyb(req.clone()).await.unwrap_err();
    assert_reason(&err, Code::Unavailable, "UPSTREAM_OUTCOME_UNKNOWN");
    let pending = all_bindings(&e.s).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, pb::BindingState::Pending as i32);
    let err = c.bind_xyb(req.clone()).await.unwrap_err();
    assert_reason(&err, Code::Unavailable, "UPSTREAM_OUTCOME_UNKNOWN");

    // The reconciler re-sends the same bind; NXCloud answers with the binding it already made.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mirrored = loop {
        let b = all_bindings(&e.s).await;
        if b.len() == 1 && b[0].state == pb::BindingState::Xyb as i32 {
            break b[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reconciled: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let upstream = e.nx.active_bindings();
    assert_eq!(upstream.len(), 1, "exactly one upstream binding");
    assert_eq!(mirrored.provider_binding_id, upstream[0].bind_id);
    let replay = c.bind_xyb(req).await.unwrap().into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.binding.unwrap().binding_id, mirrored.binding_id);
}

#[tokio::test]
async fn an_aliyun_timeout_is_never_re_sent_and_the_reservation_lapses_with_its_expiry() {
    let e = start(None, None, 300).await;
    let mut c = e.s.bindings();
    e.ali
        .set_next(fake_aliyun::Behaviour::Delay(Duration::from_millis(800)));
    let mut req = axn("ali", "13900000000", 120);
    req.customer_bind_id = "slow-ali".into();
    let err = c.bind_axn_extension(req.clone()).await.unwrap_err();
    assert_reason(&err, Code::Unavailable, "UPSTREAM_OUTCOME_UNKNOWN");
    let err = c.bind_axn_extension(req).await.unwrap_err();
    assert_reason(&err, Code::Unavailable, "UPSTREAM_OUTCOME_UNKNOWN");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let binds = e
        .ali
        .requests()
        .iter()
        .filter(|r| r.param("Action") == Some("BindAxnExtension"))
        .count();
    assert_eq!(binds, 1, "an Aliyun bind is never re-sent");
    assert_eq!(
        all_bindings(&e.s).await[0].state,
        pb::BindingState::Pending as i32
    );

    e.s.clock.advance(121_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !all_bindings(&e.s).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservation not released after expiry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
