//! A fresh database per test: a SQLite file in a temp dir, or — when `PNS_TEST_POSTGRES_URL`
//! or `PNS_TEST_MYSQL_URL` is set (CI sets each in turn) — a new PostgreSQL or MySQL / MariaDB
//! database. If a server is selected but unreachable, the test fails loudly instead of
//! silently running on SQLite.

use sea_orm::{ConnectionTrait, Database};

pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub const PG_ENV: &str = "PNS_TEST_POSTGRES_URL";
pub const MYSQL_ENV: &str = "PNS_TEST_MYSQL_URL";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn postgres_selected() -> bool {
    env(PG_ENV).is_some()
}

pub fn mysql_selected() -> bool {
    env(MYSQL_ENV).is_some()
}

/// A database server (PostgreSQL or MySQL) rather than the embedded SQLite.
pub fn server_selected() -> bool {
    postgres_selected() || mysql_selected()
}

impl TestDb {
    pub async fn new() -> Self {
        let (base, admin_db, env_name) = match (env(PG_ENV), env(MYSQL_ENV)) {
            (Some(_), Some(_)) => panic!("set {PG_ENV} or {MYSQL_ENV}, not both"),
            (Some(pg), None) => (pg, "/postgres", PG_ENV),
            (None, Some(my)) => (my, "", MYSQL_ENV),
            (None, None) => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("pns.db").display());
                return TestDb {
                    url,
                    _dir: Some(dir),
                };
            }
        };
        let base = base.trim_end_matches('/').to_owned();
        let admin = Database::connect(format!("{base}{admin_db}"))
            .await
            .unwrap_or_else(|e| {
                panic!("{env_name}={base} is set but the server is unreachable: {e}")
            });
        // The server's default character set and collation: the migrations set their own.
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
}
