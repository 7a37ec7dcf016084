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

/// A config with every carrier variable missing fails once, naming all of them, before anything
/// touches the database (no SQLite file is created, nothing is migrated).
#[tokio::test]
async fn serve_reports_every_config_problem_at_once_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pns.db");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pns.example.toml");
    let vars = [
        "PNS_NXCLOUD_ACCESS_KEY",
        "PNS_NXCLOUD_ACCESS_SECRET",
        "PNS_ALIYUN_ACCESS_KEY_ID",
        "PNS_ALIYUN_ACCESS_KEY_SECRET",
        "PNS_NXCLOUD_WEBHOOK_TOKEN",
        "PNS_ALIYUN_WEBHOOK_TOKEN",
    ];
    let serve = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pns-gateway"));
        cmd.args(["serve", "--config", example])
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .env("PNS_DATABASE_URL", db.to_str().unwrap())
            .env("PNS_LOG", "warn")
            .current_dir(dir.path());
        cmd
    };
    let mut cmd = serve();
    for v in vars {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("run pns-gateway");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("6 problems"), "{text}");
    for v in vars {
        assert!(text.contains(v), "{v} not named: {text}");
    }
    assert!(
        !db.exists(),
        "the database was created before the config was validated"
    );

    // A short webhook token is reported too, and its value never printed.
    let mut cmd = serve();
    for v in vars {
        cmd.env(v, "set-and-long-enough-value");
    }
    cmd.env("PNS_ALIYUN_WEBHOOK_TOKEN", "short-s3cret");
    let out = cmd.output().expect("run pns-gateway");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("PNS_ALIYUN_WEBHOOK_TOKEN must be at least 16 characters"),
        "{text}"
    );
    assert!(!text.contains("short-s3cret"), "{text}");
    assert!(!db.exists());
}
