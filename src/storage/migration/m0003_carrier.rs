//! Carrier mirrors: the upstream request of a PENDING reservation (re-sent by the reconciler)
//! and lookups by the carrier's binding id (pushes name bindings by it).

use sea_orm_migration::prelude::*;

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_carrier"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("bindings")
                .add_column(super::long_text(m, "upstream_request").null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bindings_provider_id")
                .table("bindings")
                .col("provider")
                .col("provider_binding_id")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bindings_state_created")
                .table("bindings")
                .col("state")
                .col("created_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_bindings_state_created")
                .table("bindings")
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("ix_bindings_provider_id")
                .table("bindings")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("bindings")
                .drop_column("upstream_request")
                .to_owned(),
        )
        .await
    }
}
