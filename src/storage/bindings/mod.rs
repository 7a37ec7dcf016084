//! Binding writes: allocation, idempotent replay, ending, sweeping. One transaction per write;
//! conflicts are decided by the database (conditional UPDATEs on `numbers`, unique indexes on
//! `routes` and `bindings`), never by a read followed by a write.
//!
//! This module holds the bind orchestration (XYB, AXN, idempotent replay); `allocate` claims
//! numbers, extensions and routes; `ending` ends bindings (unbind, expiry, the sweeper);
//! `queries` reads and updates existing ones.

mod allocate;
mod ending;
pub(crate) mod pre_claim;
mod queries;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, TryIntoModel,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query},
};

use super::entities::{binding, number, pool, route};
use super::events;
use super::{Store, TxError, convert, group_tx, is_unique_violation};
use crate::domain::{
    AUTO_EXTENSION_COUNT, AUTO_EXTENSION_FIRST, AxnBind, Binding, BindingFilter, BindingMode,
    BindingRef, BindingState, BindingUpdate, CityMatch, DomainError, ExpireStrategy, Millis,
    Provider, XybBind,
    error::reason,
    event::{BINDING_CREATED, BINDING_EXPIRED, BINDING_UNBOUND, BINDING_UPDATED},
};

use allocate::{add_shared, no_number};

type R<T> = Result<T, DomainError>;
type T<V> = Result<V, TxError>;

pub(super) const AVAILABLE: &str = "available";

pub(super) fn caller_key(n: &str) -> String {
    format!("c:{n}")
}

pub(super) fn ext_key(e: &str) -> String {
    format!("e:{e}")
}

fn not_local(pool: &pool::Model) -> DomainError {
    DomainError::FailedPrecondition {
        reason: reason::PROVIDER_NOT_SUPPORTED,
        message: format!(
            "pool {:?} belongs to provider {}; binding on carrier pools is not available in this build",
            pool.pool_key, pool.provider
        ),
    }
}

impl Store {
    /// The tenant-scoped query every look-up of a caller's bindings starts from (as svix's
    /// `secure_find`): rows of other tenants are never read, so they are NOT_FOUND.
    pub(super) fn tenant_scoped(tenant: &str) -> sea_orm::Select<binding::Entity> {
        binding::Entity::find().filter(binding::Column::Tenant.eq(tenant))
    }

    pub(super) async fn find_by_customer(
        &self,
        db: &impl ConnectionTrait,
        tenant: &str,
        cbid: &str,
    ) -> Result<Option<binding::Model>, DbErr> {
        Self::tenant_scoped(tenant)
            .filter(binding::Column::CustomerBindId.eq(cbid))
            .one(db)
            .await
    }

    async fn binding_row(&self, db: &impl ConnectionTrait, r: &BindingRef) -> R<binding::Model> {
        let found = match r {
            BindingRef::Id { tenant, id } => {
                Self::tenant_scoped(tenant)
                    .filter(binding::Column::Id.eq(id.clone()))
                    .one(db)
                    .await?
            }
            BindingRef::CustomerBindId { tenant, id } => {
                self.find_by_customer(db, tenant, id).await?
            }
        };
        found.ok_or(DomainError::BindingNotFound)
    }

    /// The binding an earlier bind with this `customer_bind_id` made, looked up before the
    /// write: a repeat is answered without entering the group writer (where its failed insert
    /// would also spoil its batch's shared savepoint). Read through `reads` — on a
    /// SQLite file the read-only connection, which does not wait for the writer's batch. A
    /// concurrent repeat that gets past this look-up meets the unique index at `claim`, and
    /// `finish_bind` answers it as a replay.
    async fn earlier_bind(&self, tenant: &str, cbid: Option<&str>) -> R<Option<binding::Model>> {
        let Some(cbid) = cbid else {
            return Ok(None);
        };
        Ok(self.find_by_customer(&self.reads, tenant, cbid).await?)
    }

    /// Idempotent replay: same payload -> the same binding, refreshed by the bind strategy.
    async fn replay(
        &self,
        existing: binding::Model,
        fingerprint: &str,
        strategy: ExpireStrategy,
        seconds: i64,
        now: Millis,
    ) -> R<(Binding, bool)> {
        if existing.fingerprint != fingerprint {
            return Err(DomainError::CustomerBindIdConflict(
                existing.customer_bind_id.unwrap_or_default(),
            ));
        }
        let live = existing.active == 1 && existing.expire_at > now;
        if !live || strategy == ExpireStrategy::Fixed {
            return Ok((convert::binding(existing, now)?, true));
        }
        let new_expiry = strategy.apply(existing.expire_at, now, seconds);
        binding::Entity::update_many()
            .col_expr(binding::Column::ExpireAt, Expr::value(new_expiry))
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(existing.id.clone()))
            .filter(binding::Column::Active.eq(1))
            .filter(binding::Column::ExpireAt.eq(existing.expire_at))
            .exec(&self.db)
            .await?;
        let row = binding::Entity::find_by_id(existing.id)
            .one(&self.db)
            .await?
            .ok_or(DomainError::BindingNotFound)?;
        Ok((convert::binding(row, now)?, true))
    }

    pub(super) async fn bind_xyb_impl(&self, cmd: &XybBind, now: Millis) -> R<(Binding, bool)> {
        let pool = self.pool_for_tenant(&cmd.pool_key, &cmd.tenant).await?;
        if pool.provider != Provider::Local.as_str() {
            return Err(not_local(&pool));
        }
        let fp = cmd.fingerprint();
        if let Some(existing) = self
            .earlier_bind(&cmd.tenant, cmd.customer_bind_id.as_deref())
            .await?
        {
            return self
                .replay(
                    existing,
                    &fp,
                    cmd.bind_strategy,
                    cmd.bind_expire_seconds,
                    now,
                )
                .await;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let b = cmd.phone_b.as_str();
        let any_x = cmd.number_x.is_none().then(|| pre_claim::PreClaim {
            pool_id: pool.id,
            binding_id: id.clone(),
            wants: pre_claim::Wants::X {
                iso2: cmd.iso2_x.clone(),
            },
        });
        let res = group_tx!(@bind any_x, self, [cmd, id, pool, fp, b, now], |this, tx| {
            let mut draft = cmd.draft(id.clone(), Provider::Local, BindingState::Xyb, now);
            claim(&tx, &draft, &cmd.tenant, &pool, &fp).await?;
            let x = match &cmd.number_x {
                Some(x) => this.lock_fixed(&tx, &pool, x.as_str(), &id, now).await?,
                None => this
                    .lock_any(&tx, &pool, cmd.iso2_x.as_deref(), &id, now)
                    .await?
                    .ok_or_else(|| {
                        no_number(&pool, cmd.iso2_x.as_deref().map(|c| format!(" in {c}")))
                    })?,
            };
            let y = if cmd.delayed_y {
                None
            } else {
                Some(match &cmd.number_y {
                    Some(y) => {
                        this.share_fixed_y(&tx, &pool, y.as_str(), &b, &id, now)
                            .await?
                    }
                    None => this
                        .share_any_y(&tx, &pool, &x, cmd.iso2_y.as_deref(), &b, &id, now)
                        .await?
                        .ok_or_else(|| no_number(&pool, Some(" for Y".into())))?,
                })
            };
            (draft.number_x, draft.number_y) = (x, y);
            let row = settle(&tx, &draft, &cmd.tenant, &pool, &fp).await?;
            // Events: last statement, so the event counter lock is held only until commit.
            let seq = events::append_for_row(&tx, BINDING_CREATED, &row, now).await?;
            Ok((row, seq))
        });
        self.finish_bind(
            res,
            &cmd.tenant,
            cmd.customer_bind_id.as_deref(),
            &fp,
            cmd.bind_strategy,
            cmd.bind_expire_seconds,
            now,
        )
        .await
    }

    /// Maps the outcome of a bind transaction; a unique violation on the binding row means a
    /// concurrent request with the same `customer_bind_id` won: answer as a replay of it.
    #[allow(clippy::too_many_arguments)]
    async fn finish_bind(
        &self,
        res: T<(binding::Model, i64)>,
        tenant: &str,
        cbid: Option<&str>,
        fp: &str,
        strategy: ExpireStrategy,
        seconds: i64,
        now: Millis,
    ) -> R<(Binding, bool)> {
        match res {
            Ok((row, seq)) => {
                // After the commit: wake this process's event subscribers.
                self.published(seq);
                Ok((convert::binding(row, now)?, false))
            }
            Err(TxError::Db(e)) if is_unique_violation(&e) && cbid.is_some() => {
                let existing = self
                    .find_by_customer(&self.db, tenant, cbid.unwrap_or_default())
                    .await?
                    .ok_or_else(|| {
                        DomainError::Internal(format!("unique violation without a winner: {e}"))
                    })?;
                self.replay(existing, fp, strategy, seconds, now).await
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn bind_axn_impl(&self, cmd: &AxnBind, now: Millis) -> R<(Binding, bool)> {
        let pool = self.pool_for_tenant(&cmd.pool_key, &cmd.tenant).await?;
        if pool.provider != Provider::Local.as_str() {
            return Err(not_local(&pool));
        }
        let fp = cmd.fingerprint();
        if let Some(existing) = self
            .earlier_bind(&cmd.tenant, cmd.customer_bind_id.as_deref())
            .await?
        {
            return self
                .replay(existing, &fp, ExpireStrategy::Fixed, 0, now)
                .await;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let a = cmd.phone_a.as_str();
        // Any X, an auto extension, any city: its batch may claim it with the others'.
        let auto = cmd.number_x.is_none() && cmd.extension.is_none() && cmd.expect_city.is_none();
        let share = auto.then(|| pre_claim::PreClaim {
            pool_id: pool.id,
            binding_id: id.clone(),
            wants: pre_claim::Wants::Axn {
                caller_key: caller_key(a),
            },
        });
        let res = group_tx!(@bind share, self, [cmd, id, pool, fp, a, now], |this, tx| {
            let mut draft = cmd.draft(id.clone(), Provider::Local, BindingState::Axn, now);
            claim(&tx, &draft, &cmd.tenant, &pool, &fp).await?;
            let (x, seq, auto_ext) = match &cmd.number_x {
                Some(x) => {
                    let seq = this
                        .share_fixed_axn(&tx, &pool, x.as_str(), cmd.extension.is_none(), now)
                        .await?;
                    if !this
                        .insert_route(&tx, x.as_str(), &caller_key(&a), &id, now)
                        .await?
                    {
                        return Err(DomainError::BindConflict(format!(
                            "{} already has an active AXN binding on {}",
                            cmd.phone_a,
                            x.as_str()
                        ))
                        .into());
                    }
                    (x.as_str().to_owned(), seq, None)
                }
                // (With an auto extension it usually takes the extension's route too.)
                None => this.share_any_axn(&tx, &pool, &cmd, &id, now).await?,
            };
            let extension = match &cmd.extension {
                Some(e) => {
                    if !this
                        .insert_route(&tx, &x, &ext_key(e.as_str()), &id, now)
                        .await?
                    {
                        return Err(DomainError::BindConflict(format!(
                            "extension {} on {x} is held by another active binding",
                            e.as_str()
                        ))
                        .into());
                    }
                    e.as_str().to_owned()
                }
                None => match auto_ext {
                    Some(e) => e,
                    None => this.assign_extension(&tx, &x, seq, &id, now).await?,
                },
            };
            (draft.number_x, draft.extension) = (x, Some(extension));
            let row = settle(&tx, &draft, &cmd.tenant, &pool, &fp).await?;
            // Events: last statement, so the event counter lock is held only until commit.
            let seq = events::append_for_row(&tx, BINDING_CREATED, &row, now).await?;
            Ok((row, seq))
        });
        self.finish_bind(
            res,
            &cmd.tenant,
            cmd.customer_bind_id.as_deref(),
            &fp,
            ExpireStrategy::Fixed,
            0,
            now,
        )
        .await
    }
}

/// With a `customer_bind_id`, inserts the new binding's row first in its transaction: it claims
/// the id, so a concurrent request with the same id waits here (PostgreSQL) and then replays,
/// instead of racing for numbers it will not keep (or finding its fixed X locked by its twin).
/// Without one there is nothing to claim and the row is inserted once, complete, by `settle`
/// (in a group-commit batch: by the batch, `deferred::defer_insert`).
async fn claim(
    tx: &DatabaseTransaction,
    draft: &Binding,
    tenant: &str,
    pool: &pool::Model,
    fp: &str,
) -> Result<(), DbErr> {
    if draft.customer_bind_id.is_none() {
        return Ok(());
    }
    let row = convert::new_row(draft, draft.state.as_str(), tenant, pool, fp, None);
    binding::Entity::insert(row)
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// Stores the allocated binding — the numbers into the row `claim` inserted, or the whole row
/// (in a batch: at the batch's end, `deferred::defer_insert`) — and returns the row as stored,
/// built from the values written (no read back).
async fn settle(
    tx: &DatabaseTransaction,
    b: &Binding,
    tenant: &str,
    pool: &pool::Model,
    fp: &str,
) -> Result<binding::Model, DbErr> {
    let row = convert::new_row(b, b.state.as_str(), tenant, pool, fp, None);
    if b.customer_bind_id.is_some() {
        // `claim` inserted it.
        // (No rows-affected check: MySQL counts changed rows only. The row was inserted in
        // this same write, under its savepoint.)
        binding::Entity::update_many()
            .col_expr(binding::Column::NumberX, Expr::value(b.number_x.clone()))
            .col_expr(binding::Column::NumberY, Expr::value(b.number_y.clone()))
            .col_expr(binding::Column::Extension, Expr::value(b.extension.clone()))
            .filter(binding::Column::Id.eq(b.id.as_str()))
            .exec(tx)
            .await?;
    } else if let Some(row) = super::deferred::defer_insert(row.clone()) {
        // Not in a group-commit batch: insert it now (in a batch, the batch inserts it with
        // every other new binding row of the batch, in one statement at its end).
        binding::Entity::insert(row)
            .exec_without_returning(tx)
            .await?;
    }
    row.try_into_model()
}
