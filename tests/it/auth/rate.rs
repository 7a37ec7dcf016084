//! Per-tenant request rates (issue 9 item 4): a tenant over its rate gets RESOURCE_EXHAUSTED
//! with ErrorInfo `RATE_LIMITED` and a `RetryInfo`, others are unaffected, and it recovers by
//! itself; the config keys are validated with every other problem.

use std::time::Duration;

use pns_gateway::{
    app::Settings,
    config::{Exposure, FileConfig},
    grpc::{
        auth::{Auth, RateLimit, Role},
        pb,
    },
};
use tonic::Code;
use tonic_types::StatusExt;

use super::{ACME_OLD, ADMIN, ZETA, req};
use crate::support::TestServer;

async fn list(s: &TestServer, key: &str) -> Result<(), tonic::Status> {
    s.bindings()
        .list_bindings(req(pb::ListBindingsRequest::default(), key, None))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_told_when_to_retry_and_recovers() {
    let s = TestServer::start_with(Settings {
        auth: Auth::with_keys([
            (ADMIN.to_owned(), Role::Admin),
            (ACME_OLD.to_owned(), Role::Tenant("acme".into())),
            (ZETA.to_owned(), Role::Tenant("zeta".into())),
        ])
        .with_limits([(
            "acme".to_owned(),
            RateLimit {
                per_second: 4.0,
                burst: 3.0,
            },
        )]),
        ..Settings::default()
    })
    .await;
    for _ in 0..3 {
        list(&s, ACME_OLD).await.expect("within the burst");
    }
    let st = list(&s, ACME_OLD).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert_eq!(
        st.get_details_error_info().map(|i| i.reason),
        Some("RATE_LIMITED".to_owned())
    );
    let wait = st
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(wait <= Duration::from_millis(250), "{wait:?}");
    // Another tenant and the admin are not limited by acme's bucket.
    for _ in 0..10 {
        list(&s, ZETA).await.unwrap();
        list(&s, ADMIN).await.unwrap();
    }
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    list(&s, ACME_OLD).await.expect("a token is back");
}

#[test]
fn rate_keys_are_validated_with_the_other_problems() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pns.toml");
    std::fs::write(
        &p,
        r#"
[[tenants]]
name = "acme"
api_key_env = "K_ACME"
rate_per_second = 0
[[tenants]]
name = "zeta"
api_key_env = "K_ZETA"
burst = 5
[[tenants]]
name = "kilo"
api_key_env = "K_KILO"
rate_per_second = 50
burst = 0
"#,
    )
    .unwrap();
    let cfg = FileConfig::load(Some(&p)).unwrap();
    let env = |n: &str| {
        ["K_ACME", "K_ZETA", "K_KILO"]
            .contains(&n)
            .then(|| format!("{n}-0123456789abcdef"))
    };
    let err = match cfg.resolve(
        env,
        &Exposure {
            listeners: vec!["127.0.0.1:0".into()],
            allow_unauthenticated: false,
        },
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains("\"acme\": rate_per_second must be above 0"),
        "{err}"
    );
    assert!(
        err.contains("\"zeta\": burst needs rate_per_second"),
        "{err}"
    );
    assert!(err.contains("\"kilo\": burst must be at least 1"), "{err}");
}
