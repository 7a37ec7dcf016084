//! The binary's command line: migrate, pools create, numbers add/import — then a server on the
//! same database sees what the CLI wrote.

use std::process::Command;

use pns_gateway::grpc::pb;

use crate::support::{TestDb, TestServer};

fn cli(db: &TestDb, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pns-gateway"))
        .args(args)
        .env("PNS_DATABASE_URL", &db.url)
        .env("PNS_LOG", "warn")
        .output()
        .expect("run pns-gateway");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn cli_creates_pools_and_loads_numbers_that_the_server_then_allocates() {
    let db = std::sync::Arc::new(TestDb::new().await);
    assert!(cli(&db, &["migrate"]).0);
    let (ok, out) = cli(&db, &["pools", "create", "cli-pool"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &db,
        &[
            "numbers",
            "add",
            "--pool",
            "cli-pool",
            "--iso2",
            "HK",
            "85213130001",
            "85213130002",
        ],
    );
    assert!(ok && out.contains("added 2"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("numbers.csv");
    std::fs::write(
        &csv,
        "number,iso2,city\n85213130003,HK,Kowloon\n85213130002,HK,\n\n",
    )
    .unwrap();
    let (ok, out) = cli(
        &db,
        &[
            "numbers",
            "import",
            "--pool",
            "cli-pool",
            "--file",
            csv.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("added 1, skipped 1"), "{out}");
    let (ok, out) = cli(
        &db,
        &["numbers", "add", "--pool", "cli-pool", "not-a-number"],
    );
    assert!(!ok && out.contains("numbers[0].number"), "{out}");
    let (ok, out) = cli(&db, &["numbers", "add", "--pool", "missing", "85213130009"]);
    assert!(!ok && out.contains("not found"), "{out}");

    let s = TestServer::start_on(db, Default::default()).await;
    let numbers = s
        .pools()
        .list_numbers(pb::ListNumbersRequest {
            pool_key: "cli-pool".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .numbers;
    let got: Vec<(&str, &str)> = numbers
        .iter()
        .map(|n| (n.number.as_str(), n.city.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("85213130001", ""),
            ("85213130002", ""),
            ("85213130003", "Kowloon")
        ]
    );
}
