//! Schema migrations (sea-orm-migration). Run at start-up and by `pns-gateway migrate`.

use sea_orm_migration::prelude::*;

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
