//! Tenancy (issue 9): events carry the tenant of their binding (existing rows: the binding's
//! tenant, `default` where the binding is gone, empty for events about no binding), read per
//! tenant by `(tenant, seq)`; pools name the tenants allowed to bind in them (empty = all);
//! bindings record when retention purged their real numbers (`purged_at`).

use sea_orm_migration::prelude::*;

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_tenancy"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("events")
                .add_column(
                    ColumnDef::new("tenant")
                        .string()
                        .not_null()
                        .default("default"),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "UPDATE events SET tenant = COALESCE((SELECT b.tenant FROM bindings b \
             WHERE b.id = events.binding_id), 'default') WHERE binding_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("UPDATE events SET tenant = '' WHERE binding_id IS NULL")
            .await?;
        m.create_index(
            Index::create()
                .name("ix_events_tenant_seq")
                .table("events")
                .col("tenant")
                .col("seq")
                .to_owned(),
        )
        .await?;
        // MySQL 8 refuses a literal default on TEXT; existing rows get '' there without one.
        let mut tenants = ColumnDef::new("tenants");
        tenants.text().not_null();
        if m.get_database_backend() != sea_orm_migration::sea_orm::DbBackend::MySql {
            tenants.default("");
        }
        m.alter_table(Table::alter().table("pools").add_column(tenants).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table("bindings")
                .add_column(ColumnDef::new("purged_at").big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bindings_retention")
                .table("bindings")
                .col("active")
                .col("purged_at")
                .col("updated_at")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
