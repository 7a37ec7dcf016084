//! A fresh database per test: a SQLite file in a temp dir, or — when `PNS_TEST_POSTGRES_URL`
//! is set (CI sets it) — a new PostgreSQL database. If PostgreSQL is selected but unreachable,
//! the test fails loudly instead of silently running on SQLite.

use sea_orm::{ConnectionTrait, Database};

pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub const PG_ENV: &str = "PNS_TEST_POSTGRES_URL";

pub fn postgres_selected() -> bool {
    std::env::var(PG_ENV)
        .map(|v| !v.is_empty())
        .unwrap_or(false)
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var(PG_ENV) {
            Ok(base) if !base.is_empty() => {
                let base = base.trim_end_matches('/').to_owned();
                let admin = Database::connect(format!("{base}/postgres"))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{PG_ENV}={base} is set but PostgreSQL is unreachable: {e}")
                    });
                let name = format!("pns_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                admin.close().await.ok();
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("pns.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
        }
    }
}
