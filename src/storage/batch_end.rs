//! The end of a group-commit batch (see `writer`): the batch's new binding rows, the
//! connected extension calls' last parties, then every event of the batch, in one savepoint.

use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, TransactionTrait};

use super::entities::binding;
use super::events::{Appended, MAX_BIND_PARAMS, append_events};
use super::is_retryable;
use super::writer::ATTEMPTS;
use crate::domain::{DomainError, Event, NewEvent};

/// The end of a batch: the new binding rows, the last parties, then every event, under a
/// savepoint (retried after retryable errors; its failure fails the appends, and the writes
/// if they had rows or events). Gives each event's `Appended` and the events it stored.
pub(super) async fn append_all(
    tx: &DatabaseTransaction,
    rows: Vec<binding::ActiveModel>,
    events: Vec<NewEvent>,
    touches: Vec<LastParty>,
) -> Result<(Vec<Appended>, Vec<Event>), DomainError> {
    if events.is_empty() && rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sp = tx.begin().await.map_err(DomainError::from)?;
        let res = async {
            insert_rows(&sp, &rows).await?;
            LastParty::write_all(&sp, &touches).await?;
            append_events(&sp, events.clone()).await
        }
        .await;
        match res {
            Ok(r) => {
                sp.commit().await.map_err(DomainError::from)?;
                return Ok((r.items, r.stored));
            }
            Err(e) => {
                let _ = sp.rollback().await;
                if is_retryable(&e) && attempt < ATTEMPTS {
                    continue;
                }
                return Err(e.into());
            }
        }
    }
}

/// The batch's new binding rows (`deferred::defer_insert`): one multi-row INSERT per chunk of
/// at most `MAX_BIND_PARAMS` parameters.
pub(super) async fn insert_rows(
    tx: &DatabaseTransaction,
    rows: &[binding::ActiveModel],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::Iterable;
    let per_insert = MAX_BIND_PARAMS / binding::Column::iter().count();
    for chunk in rows.chunks(per_insert) {
        binding::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(tx)
            .await?;
    }
    Ok(())
}

/// A connected extension call's one change: the binding's last party (where A's call-back
/// goes).
#[derive(Clone, Debug)]
pub(crate) struct LastParty {
    pub(crate) binding_id: String,
    pub(crate) caller: String,
}

impl LastParty {
    pub(crate) async fn write(&self, tx: &DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        Self::write_all(tx, std::slice::from_ref(self)).await
    }

    /// `(binding id, caller)`: of several calls to one binding, the last one's; in binding id
    /// order, so whatever plan the UPDATE takes, batches lock their bindings in one order (no
    /// deadlock between two).
    pub(crate) fn last_of_each(touches: &[LastParty]) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        let mut last: Vec<(&str, &str)> = touches
            .iter()
            .rev()
            .filter(|t| seen.insert(t.binding_id.as_str()))
            .map(|t| (t.binding_id.as_str(), t.caller.as_str()))
            .collect();
        last.sort_unstable();
        last
    }

    /// Every last party of a batch: on SQLite and PostgreSQL one UPDATE of one text
    /// (`json_rows`), on MySQL one per chunk (`SET last_party = CASE id WHEN … THEN … END
    /// WHERE id IN (…)`); of several calls to one binding, the last one's caller is kept.
    pub(crate) async fn write_all(
        tx: &DatabaseTransaction,
        touches: &[LastParty],
    ) -> Result<(), sea_orm::DbErr> {
        use super::entities::binding;
        use sea_orm::{
            ColumnTrait, Condition, EntityTrait, QueryFilter,
            sea_query::{CaseStatement, Expr},
        };
        let last = Self::last_of_each(touches);
        if last.is_empty() {
            return Ok(());
        }
        if tx.get_database_backend() != sea_orm::DbBackend::MySql {
            return super::json_rows::set_last_parties(tx, &last).await;
        }
        for chunk in last.chunks(super::events::MAX_BIND_PARAMS / 3) {
            // `active = 1` in the CASE, not the WHERE, so the UPDATE is planned by the ids
            // (SQLite, without statistics, chose the `active` index and visited every active
            // binding: ~250 ms a batch at 1,000,000; BENCHMARKS.md, preload).
            let mut case = CaseStatement::new();
            for &(id, caller) in chunk {
                case = case.case(
                    Condition::all()
                        .add(binding::Column::Id.eq(id))
                        .add(binding::Column::Active.eq(1)),
                    Expr::val(caller),
                );
            }
            case = case.finally(Expr::col(binding::Column::LastParty));
            binding::Entity::update_many()
                .col_expr(binding::Column::LastParty, case.into())
                .filter(binding::Column::Id.is_in(chunk.iter().map(|&(id, _)| id)))
                .exec(tx)
                .await?;
        }
        Ok(())
    }
}
