//! Retention (issue 9 item 5): the real numbers of ended bindings and of their events are
//! erased once the binding ended longer ago than the retention; events about no binding
//! (`call.incoming` with no route) once they are that old. In bounded batches, each its own
//! transaction, run by the sweeper. Virtual numbers (X, Y), ids and timestamps stay, so the
//! history keeps its shape; `phone_a`/`phone_b` read empty, event `caller`/`called`/`callee`
//! are empty and `detail_json` (which may hold the carrier's raw record) becomes
//! `{"purged":true}`. The idempotency fingerprint (it holds the numbers) is cleared too: a
//! replay of a purged binding's `customer_bind_id` is a conflict.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};

use super::entities::{binding, event};
use super::{Store, group_tx};
use crate::domain::{DomainError, Millis};

const PURGED_DETAIL: &str = r#"{"purged":true}"#;

fn purge_events() -> sea_orm::UpdateMany<event::Entity> {
    event::Entity::update_many()
        .col_expr(event::Column::Caller, Expr::value(""))
        .col_expr(event::Column::Called, Expr::value(""))
        .col_expr(event::Column::Callee, Expr::value(""))
        .col_expr(event::Column::DetailJson, Expr::value(PURGED_DETAIL))
}

impl Store {
    pub(super) async fn purge_ended_impl(
        &self,
        ended_before: Millis,
        now: Millis,
        limit: u64,
    ) -> Result<u64, DomainError> {
        let ids: Vec<String> = binding::Entity::find()
            .select_only()
            .column(binding::Column::Id)
            .filter(binding::Column::Active.eq(0))
            .filter(binding::Column::PurgedAt.is_null())
            .filter(binding::Column::UpdatedAt.lte(ended_before))
            .order_by_asc(binding::Column::UpdatedAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let orphans: Vec<i64> = event::Entity::find()
            .select_only()
            .column(event::Column::Seq)
            .filter(event::Column::BindingId.is_null())
            .filter(event::Column::OccurredAt.lte(ended_before))
            .filter(event::Column::DetailJson.ne(PURGED_DETAIL))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        if ids.is_empty() && orphans.is_empty() {
            return Ok(0);
        }
        let n = (ids.len() + orphans.len()) as u64;
        let r: Result<(), super::TxError> = group_tx!(self, [ids, orphans, now], |_this, tx| {
            if !ids.is_empty() {
                // Still ended (active = 0 never becomes 1 again), so no race with a bind.
                binding::Entity::update_many()
                    .col_expr(binding::Column::PhoneA, Expr::value(Option::<String>::None))
                    .col_expr(binding::Column::PhoneB, Expr::value(Option::<String>::None))
                    .col_expr(binding::Column::Fingerprint, Expr::value(""))
                    .col_expr(binding::Column::PurgedAt, Expr::value(now))
                    .filter(binding::Column::Id.is_in(ids.clone()))
                    .filter(binding::Column::Active.eq(0))
                    .exec(&tx)
                    .await?;
                purge_events()
                    .filter(event::Column::BindingId.is_in(ids.clone()))
                    .exec(&tx)
                    .await?;
            }
            if !orphans.is_empty() {
                purge_events()
                    .filter(event::Column::Seq.is_in(orphans.clone()))
                    .exec(&tx)
                    .await?;
            }
            Ok(())
        });
        r.map_err(DomainError::from)?;
        Ok(n)
    }
}
