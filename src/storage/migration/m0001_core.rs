//! Pools, numbers, bindings and the routing index, with the unique indexes that carry the
//! invariants of DESIGN.md §3.

use sea_orm_migration::prelude::*;

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_core"
    }
}

fn id() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}
fn int64(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::create_table(
            m,
            Table::create()
                .table("pools")
                .col(id())
                .col(text("pool_key"))
                .col(text("provider"))
                .col(text("carrier_pool_key"))
                .col(int64("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_pools_key")
                .table("pools")
                .col("pool_key")
                .unique()
                .to_owned(),
        )
        .await?;

        super::create_table(
            m,
            Table::create()
                .table("numbers")
                .col(id())
                .col(int64("pool_id"))
                .col(text("number"))
                .col(text("iso2"))
                .col(text("city"))
                .col(text("state"))
                .col(text_null("locked_by"))
                .col(int64("shared_count"))
                .col(int64("ext_count"))
                .col(int64("ext_seq"))
                .to_owned(),
        )
        .await?;
        // A number belongs to one pool, once.
        m.create_index(
            Index::create()
                .name("ux_numbers_number")
                .table("numbers")
                .col("number")
                .unique()
                .to_owned(),
        )
        .await?;
        // Allocation: free / shareable numbers of a pool are an index range, never a table scan.
        m.create_index(
            Index::create()
                .name("ix_numbers_alloc")
                .table("numbers")
                .col("pool_id")
                .col("state")
                .col("locked_by")
                .col("shared_count")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_numbers_city")
                .table("numbers")
                .col("pool_id")
                .col("city")
                .col("state")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_numbers_locked_by")
                .table("numbers")
                .col("locked_by")
                .to_owned(),
        )
        .await?;

        super::create_table(
            m,
            Table::create()
                .table("bindings")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(text("tenant"))
                .col(text("mode"))
                .col(text("state"))
                .col(ColumnDef::new("active").small_integer().not_null())
                .col(int64("pool_id"))
                .col(text("pool_key"))
                .col(text("provider"))
                .col(text_null("phone_a"))
                .col(text_null("phone_b"))
                .col(text("number_x"))
                .col(text_null("number_y"))
                .col(text_null("extension"))
                .col(int64("expire_at"))
                .col(text_null("customer_bind_id"))
                .col(text("customer_user_id"))
                .col(ColumnDef::new("ext").text().not_null())
                .col(text("out_id"))
                .col(text("provider_binding_id"))
                .col(ColumnDef::new("recording").boolean().not_null())
                .col(ColumnDef::new("delayed_y").boolean().not_null())
                .col(int64("bind_expire_seconds"))
                .col(ColumnDef::new("bind_strategy").integer().not_null())
                .col(int64("call_in_expire_seconds"))
                .col(ColumnDef::new("call_in_strategy").integer().not_null())
                .col(ColumnDef::new("fingerprint").text().not_null())
                .col(text_null("last_party"))
                .col(int64("created_at"))
                .col(int64("updated_at"))
                .col(ColumnDef::new("ended_at").big_integer().null())
                .to_owned(),
        )
        .await?;
        // Invariant 3: one binding per (tenant, customer_bind_id). NULLs (no id given) are distinct.
        m.create_index(
            Index::create()
                .name("ux_bindings_customer_bind_id")
                .table("bindings")
                .col("tenant")
                .col("customer_bind_id")
                .unique()
                .to_owned(),
        )
        .await?;
        // The sweeper: active bindings by expiry.
        m.create_index(
            Index::create()
                .name("ix_bindings_expiry")
                .table("bindings")
                .col("active")
                .col("expire_at")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bindings_pool")
                .table("bindings")
                .col("pool_id")
                .col("id")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bindings_user")
                .table("bindings")
                .col("customer_user_id")
                .col("id")
                .to_owned(),
        )
        .await?;

        super::create_table(
            m,
            Table::create()
                .table("routes")
                .col(id())
                .col(text("number"))
                .col(text("route_key"))
                .col(text("binding_id"))
                .to_owned(),
        )
        .await?;
        // Invariant 2: a route key maps to at most one binding.
        m.create_index(
            Index::create()
                .name("ux_routes_key")
                .table("routes")
                .col("number")
                .col("route_key")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_routes_binding")
                .table("routes")
                .col("binding_id")
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["routes", "bindings", "numbers", "pools"] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
