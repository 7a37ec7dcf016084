//! The real binary with TLS: certificate problems stop `serve` before it listens, naming the
//! file; `[tls]` in the config file with two tenants' keys serves over TLS only; SIGHUP reloads
//! the certificate; no key material appears in any log line, at TRACE.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use pns_gateway::grpc::pb;

use super::{Pki, tls_channel};
use crate::auth::{
    ACME_NEW, ADMIN, ZETA,
    binary::{Running, gateway},
    req,
};
use crate::support::TestDb;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.env("PNS_LOG", "info").output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn certificate_problems_stop_serve_before_it_listens() {
    let db = TestDb::new().await;
    let pki = Pki::new("pns test CA");
    let a = pki.server("a");
    let b = pki.server("b");
    let cert = pki.write("a.pem", &a.cert);
    let key_b = pki.write("b.key", &b.key);
    let missing = pki.dir.path().join("missing.pem");
    let listen = ["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"];
    for (args, names) in [
        (
            vec![
                "--tls-cert".to_owned(),
                missing.display().to_string(),
                "--tls-key".to_owned(),
                key_b.display().to_string(),
            ],
            missing.display().to_string(),
        ),
        (
            vec![
                "--tls-cert".to_owned(),
                cert.display().to_string(),
                "--tls-key".to_owned(),
                key_b.display().to_string(),
            ],
            key_b.display().to_string(),
        ),
        (
            vec!["--tls-cert".to_owned(), cert.display().to_string()],
            "--tls-key".to_owned(),
        ),
    ] {
        let (ok, err) = run(gateway(&db).arg("serve").args(listen).args(&args));
        assert!(!ok, "{err}");
        assert!(err.contains(&names), "names {names}: {err}");
        assert!(!err.contains("listening"), "fails before listening: {err}");
    }
}

#[tokio::test]
async fn two_tenants_over_tls_from_the_config_file_and_sighup_reloads() {
    let db = TestDb::new().await;
    let pki = Pki::new("pns test CA");
    let pair = pki.server("pns-server");
    let files = pki.files(&pair, false);
    let config = pki.write(
        "pns.toml",
        &format!(
            r#"
[auth]
admin_key_env = "PNS_ADMIN_KEY"
[[tenants]]
name = "acme"
api_key_env = "PNS_KEY_ACME"
[[tenants]]
name = "zeta"
api_key_env = "PNS_KEY_ZETA"
[tls]
cert = "{}"
key = "{}"
"#,
            files.cert.display(),
            files.key.display()
        ),
    );
    let mut cmd = gateway(&db);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .env("PNS_CONFIG", &config)
    .env("PNS_ADMIN_KEY", ADMIN)
    .env("PNS_KEY_ACME", ACME_NEW)
    .env("PNS_KEY_ZETA", ZETA)
    .env("PNS_LOG", "trace");
    let mut r = Running::start(cmd);
    let addr = r.grpc_addr().parse().unwrap();

    let ch = tls_channel(addr, &pki.ca_pem(), None).await.unwrap();
    let mut pools = pb::number_pool_service_client::NumberPoolServiceClient::new(ch.clone());
    pools
        .create_pool(req(
            pb::CreatePoolRequest {
                pool_key: "p".into(),
                provider: pb::Provider::Local as i32,
                tenants: Vec::new(),
            },
            ADMIN,
            None,
        ))
        .await
        .unwrap();
    pools
        .add_numbers(req(
            pb::AddNumbersRequest {
                pool_key: "p".into(),
                numbers: ["17000000001", "17000000002"]
                    .map(|n| pb::NumberSpec {
                        number: n.into(),
                        ..Default::default()
                    })
                    .to_vec(),
            },
            ADMIN,
            None,
        ))
        .await
        .unwrap();
    let mut bindings = pb::binding_service_client::BindingServiceClient::new(ch);
    let b = bindings
        .bind_xyb(req(
            crate::support::fixtures::xyb("p", "8613900000001"),
            ACME_NEW,
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let other = bindings
        .get_binding(req(
            pb::GetBindingRequest {
                binding_id: b.binding_id.clone(),
                ..Default::default()
            },
            ZETA,
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::NotFound);

    // SIGHUP reloads even unchanged files.
    let reloaded = |log: &str| log.matches("TLS certificate reloaded").count();
    assert_eq!(reloaded(&r.log.lock().unwrap()), 0);
    let hup = Command::new("kill")
        .args(["-HUP", &r.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloaded(&r.log.lock().unwrap()) == 0 {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = r.stop();
    assert!(log.contains("tls=true"), "{log}");
    let body: String = pair
        .key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for secret in [ADMIN, ACME_NEW, ZETA, &body[..32]] {
        assert!(!log.contains(secret), "a secret in the log");
    }
}
