//! Caps and deadlines (issue 9 item 4), through the real server: a tenant's concurrent event
//! streams, connections of the process, request message size, and gRPC deadlines.

use std::time::{Duration, Instant};

use pns_gateway::{
    app::Settings,
    grpc::{
        auth::{Auth, Role},
        pb::{self, call_service_client::CallServiceClient},
    },
    net::NetOptions,
};
use tonic::{Code, Request, transport::Channel};

use crate::auth::{ACME_NEW, ADMIN, ZETA, req};
use crate::support::{TestServer, fixtures::*};

fn watch_req(key: &str) -> Request<pb::WatchEventsRequest> {
    req(
        pb::WatchEventsRequest {
            from_now: true,
            ..Default::default()
        },
        key,
        None,
    )
}

/// Retries `f` until it succeeds (bounded): for effects of a closed connection or stream,
/// which the server notices asynchronously.
async fn eventually<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: still failing: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn a_tenant_over_its_stream_cap_gets_resource_exhausted_and_others_are_not_affected() {
    let s = TestServer::start_with(Settings {
        auth: Auth::with_keys([
            (ADMIN.to_owned(), Role::Admin),
            (ACME_NEW.to_owned(), Role::Tenant("acme".into())),
            (ZETA.to_owned(), Role::Tenant("zeta".into())),
        ])
        .with_stream_caps([("acme".to_owned(), 2)]),
        ..Settings::default()
    })
    .await;
    let mut c = s.calls();
    let first = c.watch_events(watch_req(ACME_NEW)).await.unwrap();
    let _second = c.watch_events(watch_req(ACME_NEW)).await.unwrap();
    let st = c.watch_events(watch_req(ACME_NEW)).await.unwrap_err();
    assert_reason(&st, Code::ResourceExhausted, "TOO_MANY_STREAMS");
    let info = tonic_types::StatusExt::get_details_error_info(&st).unwrap();
    assert_eq!(
        info.metadata.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(
        info.metadata.get("max_streams").map(String::as_str),
        Some("2")
    );
    assert!(tonic_types::StatusExt::get_details_retry_info(&st).is_some());

    // Another tenant (default cap) and the admin still get streams.
    let _z = c.watch_events(watch_req(ZETA)).await.unwrap();
    let _a = c.watch_events(watch_req(ADMIN)).await.unwrap();

    // A closed stream frees its slot.
    drop(first);
    eventually("a stream after one was closed", || {
        let mut c = s.calls();
        async move { c.watch_events(watch_req(ACME_NEW)).await }
    })
    .await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_accept_on_both_listeners() {
    let s = TestServer::start_with(Settings {
        net: NetOptions {
            max_connections: 2,
            ..NetOptions::default()
        },
        ..Settings::default()
    })
    .await;
    // The test server's own channel is one connection; a second one fills the cap.
    assert!(list(s.channel.clone()).await.is_ok());
    let endpoint = Channel::from_shared(format!("http://{}", s.addr)).unwrap();
    let second = endpoint.connect().await.unwrap();
    assert!(list(second.clone()).await.is_ok());

    // A third: closed by the server (the call fails), on gRPC and HTTP alike.
    let third = endpoint.connect_lazy();
    let st = list(third).await.unwrap_err();
    assert!(
        matches!(
            st.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{st:?}"
    );
    assert!(
        reqwest::get(format!("http://{}/livez", s.http_addr))
            .await
            .is_err()
    );
    // The connections inside the cap are unaffected.
    assert!(list(second.clone()).await.is_ok());

    // Closing one frees its slot.
    drop(second);
    eventually("a connection after one was closed", || {
        let e = endpoint.clone();
        async move {
            list(e.connect().await.map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
}

async fn list(ch: Channel) -> Result<usize, tonic::Status> {
    crate::tls::list_pools(ch).await
}

#[tokio::test]
async fn a_request_message_over_the_size_cap_is_refused_before_it_is_decoded() {
    let s = TestServer::start_with(Settings {
        net: NetOptions {
            max_message_bytes: 64 * 1024,
            ..NetOptions::default()
        },
        ..Settings::default()
    })
    .await;
    pool_with(&s, "p", "1700000", 2, "").await;
    let mut big = xyb("p", "8613900000001");
    big.ext = "x".repeat(100 * 1024);
    let st = s.bindings().bind_xyb(big).await.unwrap_err();
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");
    // Under the cap the same field is decoded and judged by its own bound.
    let mut under = xyb("p", "8613900000001");
    under.ext = "x".repeat(32 * 1024);
    let st = s.bindings().bind_xyb(under).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(
        list_bindings(&s, pb::ListBindingsRequest::default())
            .await
            .is_empty()
    );
}

type Lax = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic::body::Body,
>;

/// A gRPC client that sends `grpc-timeout` but, unlike tonic's channel, does not enforce it
/// itself (as a client in another language may not), so the test sees the server's answer.
fn lax_pools(s: &TestServer) -> pb::number_pool_service_client::NumberPoolServiceClient<Lax> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    pb::number_pool_service_client::NumberPoolServiceClient::with_origin(
        client,
        format!("http://{}", s.addr).parse().unwrap(),
    )
}

#[tokio::test]
async fn an_expired_deadline_does_no_work() {
    let s = TestServer::start().await;
    for timeout in ["0n", "0u", "0m", "0S", "999u"] {
        let mut r = Request::new(pb::CreatePoolRequest {
            pool_key: "late".into(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        });
        r.metadata_mut()
            .insert("grpc-timeout", timeout.parse().unwrap());
        let st = lax_pools(&s).create_pool(r).await.unwrap_err();
        assert_eq!(st.code(), Code::DeadlineExceeded, "{timeout}: {st:?}");
        assert!(st.message().contains("nothing was done"), "{st:?}");
    }
    let pools = s
        .pools()
        .list_pools(pb::ListPoolsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert!(pools.is_empty(), "nothing was created: {pools:?}");
    // A deadline that leaves time: served.
    let mut r = Request::new(pb::ListPoolsRequest::default());
    r.set_timeout(Duration::from_secs(5));
    assert!(lax_pools(&s).list_pools(r).await.is_ok());
}

#[tokio::test]
async fn a_call_that_outlives_its_deadline_is_stopped_with_deadline_exceeded() {
    use sea_orm::{ConnectionTrait, Database};
    let s = TestServer::start().await;
    // Another connection holds the database's write lock, so the writer waits.
    let mut opts = sea_orm::ConnectOptions::new(s.db.url.clone());
    opts.max_connections(1).min_connections(1);
    let blocker = Database::connect(opts).await.unwrap();
    if crate::support::db::postgres_selected() {
        blocker.execute_unprepared("BEGIN").await.unwrap();
        blocker
            .execute_unprepared("LOCK TABLE pools IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    } else if crate::support::db::mysql_selected() {
        // A table lock outlives no transaction on MySQL: LOCK TABLES, released by UNLOCK.
        blocker
            .execute_unprepared("LOCK TABLES pools WRITE")
            .await
            .unwrap();
    } else {
        blocker.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
    }
    let mut r = Request::new(pb::CreatePoolRequest {
        pool_key: "slow".into(),
        provider: pb::Provider::Local as i32,
        tenants: Vec::new(),
    });
    // Well under the database timeout (3 s), which would answer UNAVAILABLE.
    r.set_timeout(Duration::from_millis(300));
    let st = lax_pools(&s).create_pool(r).await.unwrap_err();
    assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
    let release = if crate::support::db::mysql_selected() {
        "UNLOCK TABLES"
    } else {
        "ROLLBACK"
    };
    blocker.execute_unprepared(release).await.unwrap();
    // The server serves on.
    let mut c: CallServiceClient<Channel> = s.calls();
    assert!(c.watch_events(watch_req("")).await.is_ok());
}

#[test]
fn bad_caps_and_networks_are_reported_with_every_other_config_problem() {
    use pns_gateway::config::{Exposure, FileConfig};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pns.toml");
    std::fs::write(
        &p,
        r#"
[webhooks]
aliyun_token_env = "NO_SUCH_VAR"
allow_networks = ["10.0.0.0/8", "10.0.0.0/40", "::1/128", "somewhere"]
[auth]
admin_key_env = "K_ADMIN"
[[tenants]]
name = "acme"
api_key_env = "K_ACME"
max_streams = 0
[tls]
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
"#,
    )
    .unwrap();
    let cfg = FileConfig::load(Some(&p)).expect("parses");
    let tls = cfg.tls.as_ref().unwrap();
    assert_eq!(
        tls.client_ca.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );
    let env = |n: &str| match n {
        "K_ADMIN" => Some("admin-key-0123456789".to_owned()),
        "K_ACME" => Some("acme-key-0123456789".to_owned()),
        _ => None,
    };
    let exposure = Exposure {
        listeners: vec!["127.0.0.1:1".into()],
        allow_unauthenticated: false,
    };
    let e = cfg
        .resolve(env, &exposure)
        .err()
        .expect("invalid")
        .to_string();
    assert!(e.contains("4 problems"), "{e}");
    for part in [
        "NO_SUCH_VAR",
        "allow_networks[1]",
        "allow_networks[3]",
        "max_streams must be 1 to",
    ] {
        assert!(e.contains(part), "{part}: {e}");
    }
    assert!(!e.contains("allow_networks[0]") && !e.contains("allow_networks[2]"));

    // Fixed, it resolves with the networks parsed.
    std::fs::write(
        &p,
        r#"
[webhooks]
allow_networks = ["10.0.0.0/8", "::1/128"]
[auth]
admin_key_env = "K_ADMIN"
[[tenants]]
name = "acme"
api_key_env = "K_ACME"
max_streams = 5
"#,
    )
    .unwrap();
    let r = FileConfig::load(Some(&p))
        .unwrap()
        .resolve(env, &exposure)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.webhook_networks.allows("10.2.3.4".parse().unwrap()));
    assert!(!r.webhook_networks.allows("127.0.0.1".parse().unwrap()));
}
