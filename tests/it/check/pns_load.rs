//! `pns-load --check`: the same invariant queries after a load run, on the in-process server's
//! database or (with `--target`) on the database given with `--database-url`.

use std::process::Command;

use sea_orm::Database;

use super::{assert_masked, exec};
use crate::support::{TestDb, TestServer, fixtures::*};

/// Runs `pns-load` with `args` off the runtime (it may load a server of this process).
async fn pns_load(args: Vec<String>) -> (i32, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pns-load"))
            .args(&args)
            .env("PNS_LOG", "warn")
            .output()
            .expect("run pns-load")
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn pns_load_check_audits_the_database_of_its_in_process_server() {
    let db = TestDb::new().await;
    let (code, out) = pns_load(args(&[
        "--database-url",
        &db.url,
        "--scenarios",
        "bind-xyb,bind-axn",
        "--duration",
        "0.3",
        "--connections",
        "2",
        "--concurrency",
        "4",
        "--pool-size",
        "200",
        "--check",
    ]))
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("check: ok: no anomalies in "), "{out}");
    assert!(
        !out.contains(" 0 bindings"),
        "the check saw the run's bindings: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pns_load_check_of_a_target_reports_its_anomalies_and_fails() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521315", 2, "").await;
    let conn = Database::connect(&s.db.url).await.expect("connect");
    exec(
        &conn,
        "INSERT INTO routes (number, route_key, binding_id) VALUES ('85213150001', 'c:85291110001', 'ghost')",
    )
    .await;
    conn.close().await.ok();
    let target = format!("http://{}", s.addr);
    let run = [
        "--target",
        &target,
        "--scenarios",
        "health",
        "--duration",
        "0.2",
    ];
    let run = [&run[..], &["--connections", "1", "--concurrency", "1"]].concat();

    let (code, out) = pns_load(args(
        &[&run[..], &["--database-url", &s.db.url, "--check"]].concat(),
    ))
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("check: orphan_route: route (85213150001, caller 8529****001)"),
        "{out}"
    );
    assert!(out.contains("check: FAILED: 1 anomalies"), "{out}");
    assert_masked(&out);

    // --check of a target needs its database, and the database is only for --check.
    let (code, out) = pns_load(args(&[&run[..], &["--check"]].concat())).await;
    assert_eq!(code, 2, "{out}");
    let (code, out) = pns_load(args(&[&run[..], &["--database-url", &s.db.url]].concat())).await;
    assert_eq!(code, 2, "{out}");
}

/// Against a server with keys, `pns-load` sends the admin key from `PNS_API_KEY`; without it
/// every call is refused and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pns_load_sends_the_api_key_from_the_environment() {
    let s = TestServer::start_with(crate::auth::keyed()).await;
    let target = format!("http://{}", s.addr);
    let run = |key: Option<&'static str>| {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_pns-load"));
            cmd.args([
                "--target",
                &target,
                "--scenarios",
                "bind-xyb",
                "--duration",
                "0.3",
                "--connections",
                "1",
                "--concurrency",
                "2",
                "--pool-size",
                "50",
            ])
            .env("PNS_LOG", "warn")
            .env_remove("PNS_API_KEY");
            if let Some(k) = key {
                cmd.env("PNS_API_KEY", k);
            }
            let out = cmd.output().expect("run pns-load");
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
    };
    let (ok, out) = run(None).await.unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.to_lowercase().contains("unauthenticated") || out.contains("API_KEY"),
        "{out}"
    );
    let (ok, out) = run(Some(crate::auth::ADMIN)).await.unwrap();
    assert!(ok, "{out}");
    assert!(
        !out.contains(crate::auth::ADMIN),
        "the key is never printed: {out}"
    );
}
