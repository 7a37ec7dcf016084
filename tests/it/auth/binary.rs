//! The real binary: open mode only on loopback (`--allow-unauthenticated` overrides), and no
//! API key in any log line, at TRACE.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use pns_gateway::grpc::pb;
use tonic::transport::Channel;

use super::{ACME_NEW, ACME_OLD, ADMIN, req};
use crate::support::TestDb;

pub(crate) fn gateway(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pns-gateway"));
    c.env("PNS_DATABASE_URL", &db.url)
        .env_remove("PNS_CONFIG")
        .env_remove("PNS_ALLOW_UNAUTHENTICATED")
        .env_remove("PNS_LISTEN")
        .env_remove("PNS_HTTP_LISTEN");
    c
}

/// A running server: its stderr collected by a thread until it exits.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Running {
    pub(crate) fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pns-gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Running { child, log }
    }

    /// The gRPC address, once the server logged it.
    pub(crate) fn grpc_addr(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(addr) = self.log.lock().unwrap().lines().find_map(|l| {
                l.contains("gRPC listening")
                    .then(|| l.split("addr=").nth(1))
                    .flatten()
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_owned)
            }) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited with {status}: {}", self.log.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "not listening: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        self.log.lock().unwrap().clone()
    }
}

/// A test that fails before `stop` does not leave the server running.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn open_mode_is_refused_on_a_non_loopback_address_unless_allowed() {
    let db = TestDb::new().await;
    let out = gateway(&db)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("PNS_LOG", "warn")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refusing to serve unauthenticated")
            && err.contains("0.0.0.0:0")
            && err.contains("--allow-unauthenticated"),
        "{err}"
    );

    let mut cmd = gateway(&db);
    cmd.args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--http-listen",
        "127.0.0.1:0",
        "--allow-unauthenticated",
    ])
    .env("PNS_LOG", "info");
    let mut r = Running::start(cmd);
    r.grpc_addr();
    let log = r.stop();
    assert!(log.contains("WITHOUT AUTHENTICATION"), "{log}");

    // On loopback, open mode starts with a warning that says so.
    let mut cmd = gateway(&db);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .env("PNS_LOG", "info");
    let mut r = Running::start(cmd);
    r.grpc_addr();
    let log = r.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("serving OPEN as tenant `default`")),
        "{log}"
    );
}

#[tokio::test]
async fn no_key_appears_in_any_log_line_at_trace() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pns.toml");
    std::fs::write(
        &cfg,
        r#"
[auth]
admin_key_env = "T_ADMIN_KEY"

[[tenants]]
name = "acme"
api_key_envs = ["T_ACME_OLD", "T_ACME_NEW"]
"#,
    )
    .unwrap();
    let wrong = "wrong-key-that-must-not-be-logged-42";
    let mut cmd = gateway(&db);
    cmd.args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .env("PNS_CONFIG", &cfg)
    .env("PNS_LOG", "trace")
    .env("T_ADMIN_KEY", ADMIN)
    .env("T_ACME_OLD", ACME_OLD)
    .env("T_ACME_NEW", ACME_NEW);
    let mut r = Running::start(cmd);
    let addr = r.grpc_addr().replace("0.0.0.0", "127.0.0.1");
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut pools = pb::number_pool_service_client::NumberPoolServiceClient::new(ch.clone());
    let mut bindings = pb::binding_service_client::BindingServiceClient::new(ch);
    pools
        .create_pool(req(
            pb::CreatePoolRequest {
                pool_key: "hk".into(),
                ..Default::default()
            },
            ADMIN,
            None,
        ))
        .await
        .expect("admin creates");
    for key in [ACME_OLD, ACME_NEW] {
        bindings
            .list_bindings(req(pb::ListBindingsRequest::default(), key, None))
            .await
            .expect("tenant lists");
    }
    let st = bindings
        .list_bindings(req(pb::ListBindingsRequest::default(), wrong, None))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated);
    let st = pools
        .create_pool(req(
            pb::CreatePoolRequest {
                pool_key: "x".into(),
                ..Default::default()
            },
            ACME_OLD,
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::PermissionDenied);
    let log = r.stop();
    assert!(log.lines().count() > 20, "TRACE logs were captured: {log}");
    assert!(log.contains("API keys required"), "{log}");
    for secret in [ADMIN, ACME_OLD, ACME_NEW, wrong] {
        assert!(
            !log.contains(secret),
            "a key appears in the logs:\n{}",
            log.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
