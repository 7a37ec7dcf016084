//! Schema migrations (sea-orm-migration). Run at start-up and by `pns-gateway migrate`.
//!
//! On MySQL / MariaDB every table is InnoDB (row locks, transactions) in utf8mb4 with a binary
//! collation, so keys compare byte for byte as on PostgreSQL and SQLite: with the server's
//! default (`utf8mb4_general_ci`) the unique indexes would take `Abc` and `abc` for one
//! `customer_bind_id` or dedupe key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

mod m0001_core;
mod m0002_events;
mod m0003_carrier;
mod m0004_tenancy;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_core::Migration),
            Box::new(m0002_events::Migration),
            Box::new(m0003_carrier::Migration),
            Box::new(m0004_tenancy::Migration),
        ]
    }
}

/// `CREATE TABLE`; on MySQL as InnoDB, utf8mb4, binary collation (see the module docs).
pub(super) async fn create_table(
    m: &SchemaManager<'_>,
    mut t: TableCreateStatement,
) -> Result<(), DbErr> {
    if m.get_database_backend() == DbBackend::MySql {
        t.engine("InnoDB")
            .character_set("utf8mb4")
            .collate(binary_collation(m).await?);
    }
    m.create_table(t).await
}

/// The binary utf8mb4 collation without trailing-space padding where the server has one
/// (MariaDB `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`), else `utf8mb4_bin`.
async fn binary_collation(m: &SchemaManager<'_>) -> Result<&'static str, DbErr> {
    const CHOICES: [&str; 2] = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];
    for c in CHOICES {
        let found = m
            .get_connection()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT 1 FROM information_schema.COLLATIONS WHERE COLLATION_NAME = ?",
                [c.into()],
            ))
            .await?;
        if found.is_some() {
            return Ok(c);
        }
    }
    Ok("utf8mb4_bin")
}

/// Free text that may be long (a carrier's raw push item, an upstream request): `TEXT`, on
/// MySQL `MEDIUMTEXT` (MySQL's `TEXT` holds 64 KiB only).
pub(super) fn long_text(m: &SchemaManager<'_>, name: &'static str) -> ColumnDef {
    let mut c = ColumnDef::new(name);
    if m.get_database_backend() == DbBackend::MySql {
        c.custom("mediumtext");
    } else {
        c.text();
    }
    c
}

/// Free text, empty by default: `VARCHAR` on SQLite and PostgreSQL (unbounded there); on MySQL
/// `TEXT` (its `VARCHAR(255)` is too short for a carrier's `ext` or `out_id`), without the
/// default MySQL 8 refuses on `TEXT` (every insert names every column).
pub(super) fn free_text(m: &SchemaManager<'_>, name: &'static str) -> ColumnDef {
    let mut c = ColumnDef::new(name);
    if m.get_database_backend() == DbBackend::MySql {
        c.text().not_null();
    } else {
        c.string().not_null().default("");
    }
    c
}

/// A nullable indexed string longer than MySQL's default `VARCHAR(255)` may hold: `VARCHAR(len)`
/// on MySQL (4 bytes a character must stay within InnoDB's 3072-byte index key), unbounded
/// `VARCHAR` elsewhere.
pub(super) fn key_null(m: &SchemaManager<'_>, name: &'static str, len: u32) -> ColumnDef {
    let mut c = ColumnDef::new(name);
    if m.get_database_backend() == DbBackend::MySql {
        c.string_len(len);
    } else {
        c.string();
    }
    c.null();
    c
}
