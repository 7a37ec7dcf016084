//! The event log and its sequence counter. `events.seq` is assigned by `storage::events` from
//! the single `event_seq` row (not an auto-increment column): see there for why.

use sea_orm_migration::prelude::*;

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_events"
    }
}

fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .string()
        .not_null()
        .default("")
        .to_owned()
}
fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}
fn int64(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

/// A non-unique index on `cols`.
fn index(name: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table("events");
    for c in cols {
        i.col(*c);
    }
    i.to_owned()
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::create_table(
            m,
            Table::create()
                .table("events")
                .col(ColumnDef::new("seq").big_integer().not_null().primary_key())
                .col(text("kind"))
                .col(text_null("binding_id"))
                .col(text("pool_key"))
                .col(text_null("provider"))
                .col(text_null("customer_bind_id"))
                .col(text("customer_user_id"))
                .col(super::free_text(m, "ext"))
                .col(super::free_text(m, "out_id"))
                .col(text("call_id"))
                .col(text("caller"))
                .col(text("called"))
                .col(text("callee"))
                .col(super::long_text(m, "detail_json").not_null())
                .col(int64("occurred_at"))
                .col(int64("created_at"))
                .col(super::key_null(m, "dedupe_key", 512))
                .to_owned(),
        )
        .await?;
        // Duplicate carrier pushes are stored once. NULLs are distinct on every backend, so
        // events without a key never collide.
        m.create_index(
            Index::create()
                .name("ux_events_dedupe_key")
                .table("events")
                .col("dedupe_key")
                .unique()
                .to_owned(),
        )
        .await?;
        // WatchEvents filters: each is an index range from the subscriber's cursor.
        m.create_index(index("ix_events_call_id", &["call_id"]))
            .await?;
        m.create_index(index("ix_events_binding_seq", &["binding_id", "seq"]))
            .await?;
        m.create_index(index("ix_events_pool_seq", &["pool_key", "seq"]))
            .await?;
        m.create_index(index("ix_events_user_seq", &["customer_user_id", "seq"]))
            .await?;

        super::create_table(
            m,
            Table::create()
                .table("event_seq")
                .col(ColumnDef::new("id").big_integer().not_null().primary_key())
                .col(int64("last"))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table("event_seq")
                .columns(["id", "last"])
                .values_panic([1i64.into(), 0i64.into()])
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("event_seq").to_owned())
            .await?;
        m.drop_table(Table::drop().table("events").to_owned()).await
    }
}
