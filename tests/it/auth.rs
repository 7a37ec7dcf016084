//! API keys and tenant isolation (issue 9 items 1 and 2), through the real server: a second
//! tenant and a caller without a key observe and change nothing of a tenant's bindings, events
//! and pools; key rotation; the admin acting for a tenant; the softswitch's rights.

pub(crate) mod binary;
mod config;
mod isolation;
mod rate;

use pns_gateway::{
    app::Settings,
    grpc::{
        auth::{Auth, Role},
        pb,
    },
};
use tonic::{Code, Request, Status};

use crate::support::{TestServer, fixtures::assert_reason};

pub(crate) const ADMIN: &str = "admin-key-0123456789abcdef";
pub(crate) const SOFTSWITCH: &str = "softswitch-key-0123456789";
pub(crate) const ACME_OLD: &str = "acme-key-old-0123456789ab";
pub(crate) const ACME_NEW: &str = "acme-key-new-0123456789ab";
pub(crate) const ZETA: &str = "zeta-key-0123456789abcdef";

pub(crate) fn keyed() -> Settings {
    Settings {
        auth: Auth::with_keys([
            (ADMIN.to_owned(), Role::Admin),
            (SOFTSWITCH.to_owned(), Role::Softswitch),
            (ACME_OLD.to_owned(), Role::Tenant("acme".into())),
            (ACME_NEW.to_owned(), Role::Tenant("acme".into())),
            (ZETA.to_owned(), Role::Tenant("zeta".into())),
        ]),
        ..Settings::default()
    }
}

/// `msg` sent with `key` (none when empty) and, if set, `x-pns-tenant`.
pub(crate) fn req<T>(msg: T, key: &str, tenant: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if !key.is_empty() {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    if let Some(t) = tenant {
        r.metadata_mut().insert("x-pns-tenant", t.parse().unwrap());
    }
    r
}

#[track_caller]
pub(crate) fn unauthenticated<T: std::fmt::Debug>(r: Result<T, Status>) {
    let st = r.expect_err("refused");
    assert_eq!(st.code(), Code::Unauthenticated, "{st:?}");
    let reason = tonic_types::StatusExt::get_details_error_info(&st)
        .expect("ErrorInfo")
        .reason;
    assert!(
        reason == "API_KEY_MISSING" || reason == "API_KEY_INVALID",
        "{st:?}"
    );
}

#[track_caller]
pub(crate) fn denied<T: std::fmt::Debug>(r: Result<T, Status>, reason: &str) {
    assert_reason(&r.expect_err("refused"), Code::PermissionDenied, reason);
}

/// A pool created and filled by the admin.
pub(crate) async fn admin_pool(
    s: &TestServer,
    key: &str,
    prefix: &str,
    n: usize,
    tenants: &[&str],
) {
    s.pools()
        .create_pool(req(
            pb::CreatePoolRequest {
                pool_key: key.into(),
                provider: pb::Provider::Local as i32,
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
            },
            ADMIN,
            None,
        ))
        .await
        .expect("create pool");
    s.pools()
        .add_numbers(req(
            pb::AddNumbersRequest {
                pool_key: key.into(),
                numbers: (1..=n)
                    .map(|i| pb::NumberSpec {
                        number: format!("{prefix}{i:04}"),
                        iso2: "HK".into(),
                        city: String::new(),
                    })
                    .collect(),
            },
            ADMIN,
            None,
        ))
        .await
        .expect("add numbers");
}

#[tokio::test]
async fn every_pns_call_needs_a_key_but_health_does_not() {
    let s = TestServer::start_with(keyed()).await;
    for key in ["", "not-a-configured-key-000000"] {
        unauthenticated(
            s.pools()
                .list_pools(req(pb::ListPoolsRequest {}, key, None))
                .await,
        );
        unauthenticated(
            s.bindings()
                .list_bindings(req(pb::ListBindingsRequest::default(), key, None))
                .await,
        );
        unauthenticated(
            s.calls()
                .notify_call_in(req(pb::NotifyCallInRequest::default(), key, None))
                .await,
        );
        unauthenticated(
            s.calls()
                .watch_events(req(pb::WatchEventsRequest::default(), key, None))
                .await,
        );
    }
    // A key without the scheme, and the admin key sent with another scheme.
    let mut r = Request::new(pb::ListPoolsRequest {});
    r.metadata_mut()
        .insert("authorization", ADMIN.parse().unwrap());
    unauthenticated(s.pools().list_pools(r).await);
    let mut r = Request::new(pb::ListPoolsRequest {});
    r.metadata_mut()
        .insert("authorization", format!("Basic {ADMIN}").parse().unwrap());
    unauthenticated(s.pools().list_pools(r).await);

    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "pns.v1.BindingService".into(),
        })
        .await
        .expect("health needs no key")
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Reflection (`grpcurl list`) needs no key either.
    let mut refl = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
        s.channel.clone(),
    );
    let mut answers = refl
        .server_reflection_info(tokio_stream::iter([
            tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                        String::new(),
                    ),
                ),
            },
        ]))
        .await
        .expect("reflection needs no key")
        .into_inner();
    let listed = answers.message().await.expect("answer").expect("one");
    assert!(
        format!("{listed:?}").contains("pns.v1.BindingService"),
        "{listed:?}"
    );
    // Every key that is configured is accepted (both of acme's: rotation).
    for key in [ADMIN, ACME_OLD, ACME_NEW, ZETA] {
        s.pools()
            .list_pools(req(pb::ListPoolsRequest {}, key, None))
            .await
            .expect("valid key");
    }
}

#[tokio::test]
async fn pools_are_administered_with_the_admin_key_only() {
    let s = TestServer::start_with(keyed()).await;
    for key in [ACME_OLD, SOFTSWITCH] {
        denied(
            s.pools()
                .create_pool(req(
                    pb::CreatePoolRequest {
                        pool_key: "p".into(),
                        ..Default::default()
                    },
                    key,
                    None,
                ))
                .await,
            "ADMIN_KEY_REQUIRED",
        );
    }
    admin_pool(&s, "shared", "85270000", 3, &[]).await;
    for key in [ACME_OLD, ZETA, SOFTSWITCH] {
        denied(
            s.pools()
                .add_numbers(req(
                    pb::AddNumbersRequest {
                        pool_key: "shared".into(),
                        numbers: vec![pb::NumberSpec {
                            number: "85270009999".into(),
                            ..Default::default()
                        }],
                    },
                    key,
                    None,
                ))
                .await,
            "ADMIN_KEY_REQUIRED",
        );
        denied(
            s.pools()
                .list_numbers(req(
                    pb::ListNumbersRequest {
                        pool_key: "shared".into(),
                        ..Default::default()
                    },
                    key,
                    None,
                ))
                .await,
            "ADMIN_KEY_REQUIRED",
        );
        denied(
            s.pools()
                .set_number_state(req(
                    pb::SetNumberStateRequest {
                        pool_key: "shared".into(),
                        number: "852700000001".into(),
                        state: pb::NumberState::Retired as i32,
                    },
                    key,
                    None,
                ))
                .await,
            "ADMIN_KEY_REQUIRED",
        );
    }
    // Nothing was added by the refused calls.
    let listed = s
        .pools()
        .list_numbers(req(
            pb::ListNumbersRequest {
                pool_key: "shared".into(),
                ..Default::default()
            },
            ADMIN,
            None,
        ))
        .await
        .expect("admin lists numbers")
        .into_inner();
    assert_eq!(listed.numbers.len(), 3);
}
