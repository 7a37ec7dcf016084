//! Binding writes: allocation, idempotent replay, ending, sweeping. One transaction per write;
//! conflicts are decided by the database (conditional UPDATEs on `numbers`, unique indexes on
//! `routes` and `bindings`), never by a read followed by a write.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query},
};

use super::entities::{binding, number, pool, route};
use super::events;
use super::{Store, TxError, convert, is_unique_violation, with_write_tx};
use crate::domain::{
    AUTO_EXTENSION_COUNT, AUTO_EXTENSION_FIRST, AxnBind, Binding, BindingFilter, BindingMode,
    BindingRef, BindingState, BindingUpdate, CityMatch, DomainError, ExpireStrategy, Millis,
    Provider, XybBind,
    error::reason,
    event::{BINDING_CREATED, BINDING_EXPIRED, BINDING_UNBOUND, BINDING_UPDATED},
};

type R<T> = Result<T, DomainError>;
type T<V> = Result<V, TxError>;

const AVAILABLE: &str = "available";

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
    pub(super) async fn find_by_customer(
        &self,
        db: &impl ConnectionTrait,
        tenant: &str,
        cbid: &str,
    ) -> Result<Option<binding::Model>, DbErr> {
        binding::Entity::find()
            .filter(binding::Column::Tenant.eq(tenant))
            .filter(binding::Column::CustomerBindId.eq(cbid))
            .one(db)
            .await
    }

    async fn binding_row(&self, db: &impl ConnectionTrait, r: &BindingRef) -> R<binding::Model> {
        let found = match r {
            BindingRef::Id(id) => binding::Entity::find_by_id(id.clone()).one(db).await?,
            BindingRef::CustomerBindId { tenant, id } => {
                self.find_by_customer(db, tenant, id).await?
            }
        };
        found.ok_or(DomainError::BindingNotFound)
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
        let pool = self.pool_row(&self.db, &cmd.pool_key).await?;
        if pool.provider != Provider::Local.as_str() {
            return Err(not_local(&pool));
        }
        let fp = cmd.fingerprint();
        if let Some(cb) = &cmd.customer_bind_id
            && let Some(existing) = self.find_by_customer(&self.db, &cmd.tenant, cb).await?
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
        let res = with_write_tx!(self, |tx| {
            // The binding row goes in first: it claims customer_bind_id, so a concurrent
            // request with the same id waits here (PostgreSQL) and then replays, instead
            // of racing for numbers it will not keep.
            let draft = cmd.draft(id.clone(), Provider::Local, BindingState::Xyb, now);
            let row = convert::new_row(
                &draft,
                BindingState::Xyb.as_str(),
                &cmd.tenant,
                &pool,
                &fp,
                None,
            );
            binding::Entity::insert(row).exec(&tx).await?;
            let x = match &cmd.number_x {
                Some(x) => self.lock_fixed(&tx, &pool, x.as_str(), &id, now).await?,
                None => self
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
                        self.share_fixed_y(&tx, &pool, y.as_str(), b, &id, now)
                            .await?
                    }
                    None => self
                        .share_any_y(&tx, &pool, &x, cmd.iso2_y.as_deref(), b, &id, now)
                        .await?
                        .ok_or_else(|| no_number(&pool, Some(" for Y".into())))?,
                })
            };
            let row = fill_numbers(&tx, &id, &(x, y, None)).await?;
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
        let pool = self.pool_row(&self.db, &cmd.pool_key).await?;
        if pool.provider != Provider::Local.as_str() {
            return Err(not_local(&pool));
        }
        let fp = cmd.fingerprint();
        if let Some(cb) = &cmd.customer_bind_id
            && let Some(existing) = self.find_by_customer(&self.db, &cmd.tenant, cb).await?
        {
            return self
                .replay(existing, &fp, ExpireStrategy::Fixed, 0, now)
                .await;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let a = cmd.phone_a.as_str();
        let res = with_write_tx!(self, |tx| {
            // The binding row goes in first: it claims customer_bind_id, so a concurrent
            // request with the same id waits here (PostgreSQL) and then replays, instead
            // of racing for numbers it will not keep.
            let draft = cmd.draft(id.clone(), Provider::Local, BindingState::Axn, now);
            let row = convert::new_row(
                &draft,
                BindingState::Axn.as_str(),
                &cmd.tenant,
                &pool,
                &fp,
                None,
            );
            binding::Entity::insert(row).exec(&tx).await?;
            let (x, seq) = match &cmd.number_x {
                Some(x) => {
                    let seq = self
                        .share_fixed_axn(&tx, &pool, x.as_str(), cmd.extension.is_none(), now)
                        .await?;
                    if !self
                        .insert_route(&tx, x.as_str(), &caller_key(a), &id, now)
                        .await?
                    {
                        return Err(DomainError::BindConflict(format!(
                            "{} already has an active AXN binding on {}",
                            cmd.phone_a,
                            x.as_str()
                        ))
                        .into());
                    }
                    (x.as_str().to_owned(), seq)
                }
                None => self.share_any_axn(&tx, &pool, cmd, &id, now).await?,
            };
            let extension = match &cmd.extension {
                Some(e) => {
                    if !self
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
                None => self.assign_extension(&tx, &x, seq, &id, now).await?,
            };
            let row = fill_numbers(&tx, &id, &(x, None, Some(extension))).await?;
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

    // ---- allocation -------------------------------------------------------------------------

    fn free_numbers(&self, pool_id: i64) -> sea_orm::Select<number::Entity> {
        number::Entity::find()
            .filter(number::Column::PoolId.eq(pool_id))
            .filter(number::Column::State.eq(AVAILABLE))
            .filter(number::Column::LockedBy.is_null())
    }

    /// Locks a given X for an XYB binding.
    async fn lock_fixed(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        x: &str,
        id: &str,
        now: Millis,
    ) -> T<String> {
        for attempt in 0..2 {
            let done = number::Entity::update_many()
                .col_expr(number::Column::LockedBy, Expr::value(id))
                .filter(number::Column::PoolId.eq(pool.id))
                .filter(number::Column::Number.eq(x))
                .filter(number::Column::State.eq(AVAILABLE))
                .filter(number::Column::LockedBy.is_null())
                .filter(number::Column::SharedCount.eq(0))
                .exec(tx)
                .await?
                .rows_affected;
            if done == 1 {
                return Ok(x.to_owned());
            }
            let row = self.diagnose_number(tx, pool, x).await?;
            match (&row.locked_by, row.shared_count) {
                (Some(holder), _) => {
                    if attempt == 0 && self.reap_if_dead(tx, holder, now).await? {
                        continue;
                    }
                    return Err(DomainError::NumberLocked {
                        number: x.to_owned(),
                    }
                    .into());
                }
                (None, _) => {
                    return Err(DomainError::BindConflict(format!(
                        "{x} carries AXN extensions or serves as Y of other bindings, so it cannot be locked"
                    ))
                    .into());
                }
            }
        }
        Err(DomainError::NumberLocked {
            number: x.to_owned(),
        }
        .into())
    }

    /// Explains why a conditional update on a given number matched nothing: not in the pool,
    /// not AVAILABLE — or returns the row so the caller can tell a lock from a shared use.
    async fn diagnose_number(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        n: &str,
    ) -> T<number::Model> {
        let row = number::Entity::find()
            .filter(number::Column::Number.eq(n))
            .one(tx)
            .await?;
        match row {
            Some(r) if r.pool_id == pool.id => {
                if r.state != AVAILABLE {
                    return Err(DomainError::FailedPrecondition {
                        reason: reason::NUMBER_NOT_AVAILABLE,
                        message: format!("number {n} is {} and cannot be allocated", r.state),
                    }
                    .into());
                }
                Ok(r)
            }
            _ => Err(DomainError::NumberNotFound {
                reason: reason::NUMBER_NOT_FOUND,
                message: format!("number {n} is not in pool {:?}", pool.pool_key),
            }
            .into()),
        }
    }

    /// Locks any free number of the pool for an XYB binding.
    async fn lock_any(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        iso2: Option<&str>,
        id: &str,
        now: Millis,
    ) -> T<Option<String>> {
        // PostgreSQL: first SKIP LOCKED, so concurrent binds take different rows instead of
        // queueing on one; then a plain FOR UPDATE, which waits for rows held by in-flight
        // transactions (they may roll back) before concluding the pool is exhausted.
        let mut attempts: Vec<Option<LockBehavior>> = vec![None; 8];
        if self.is_postgres() {
            attempts.splice(0..0, [Some(LockBehavior::SkipLocked); 8]);
        }
        for round in 0..2 {
            let mut skip_done = false;
            for pass in &attempts {
                if pass.is_some() && skip_done {
                    continue;
                }
                let mut q = self
                    .free_numbers(pool.id)
                    .filter(number::Column::SharedCount.eq(0));
                if let Some(c) = iso2 {
                    q = q.filter(number::Column::Iso2.eq(c));
                }
                if self.is_postgres() {
                    q = match pass {
                        Some(b) => q.lock_with_behavior(LockType::Update, *b),
                        None => q.lock(LockType::Update),
                    };
                }
                let Some(cand) = q.limit(1).one(tx).await? else {
                    if pass.is_some() {
                        skip_done = true;
                        continue;
                    }
                    break;
                };
                let done = number::Entity::update_many()
                    .col_expr(number::Column::LockedBy, Expr::value(id))
                    .filter(number::Column::Id.eq(cand.id))
                    .filter(number::Column::LockedBy.is_null())
                    .filter(number::Column::SharedCount.eq(0))
                    .filter(number::Column::State.eq(AVAILABLE))
                    .exec(tx)
                    .await?
                    .rows_affected;
                if done == 1 {
                    return Ok(Some(cand.number));
                }
            }
            // Nothing free: end bindings of this pool whose expiry passed before the sweeper got to
            // them, then look once more.
            if round == 0 && self.reap_expired(tx, Some(pool.id), now, 100).await? == 0 {
                break;
            }
        }
        Ok(None)
    }

    /// Takes a given Y (shared, keyed by B).
    async fn share_fixed_y(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        y: &str,
        b: &str,
        id: &str,
        now: Millis,
    ) -> T<String> {
        for attempt in 0..2 {
            let done = number::Entity::update_many()
                .col_expr(
                    number::Column::SharedCount,
                    Expr::col(number::Column::SharedCount).add(1),
                )
                .filter(number::Column::PoolId.eq(pool.id))
                .filter(number::Column::Number.eq(y))
                .filter(number::Column::State.eq(AVAILABLE))
                .filter(number::Column::LockedBy.is_null())
                .exec(tx)
                .await?
                .rows_affected;
            if done == 1 {
                break;
            }
            let row = self.diagnose_number(tx, pool, y).await?;
            let holder = row.locked_by.unwrap_or_default();
            if attempt == 0 && self.reap_if_dead(tx, &holder, now).await? {
                continue;
            }
            return Err(DomainError::NumberLocked {
                number: y.to_owned(),
            }
            .into());
        }
        if !self.insert_route(tx, y, &caller_key(b), id, now).await? {
            return Err(DomainError::BindConflict(format!(
                "{y} already serves this B as Y in another active binding"
            ))
            .into());
        }
        Ok(y.to_owned())
    }

    /// Picks a Y for B: numbers already serving as Y first (so free numbers stay lockable as X),
    /// then free ones; never a locked number, never one that already connects B.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn share_any_y(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        x: &str,
        iso2: Option<&str>,
        b: &str,
        id: &str,
        now: Millis,
    ) -> T<Option<String>> {
        let key = caller_key(b);
        // PostgreSQL: SKIP LOCKED first, so two binds never wait on each other's X as their Y
        // (T1 holds n1 wants n2, T2 holds n2 wants n1); then a waiting pass before giving up.
        let modes: Vec<bool> = if self.is_postgres() {
            [[true; 4], [false; 4]].concat()
        } else {
            vec![false; 8]
        };
        for shared in [true, false] {
            let mut skip_done = false;
            for &skip in &modes {
                if skip && skip_done {
                    continue;
                }
                let mut q = self
                    .free_numbers(pool.id)
                    .filter(number::Column::Number.ne(x))
                    .filter(not_routed(&key));
                if skip {
                    q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                }
                q = if shared {
                    q.filter(number::Column::SharedCount.gt(0))
                } else {
                    q.filter(number::Column::SharedCount.eq(0))
                };
                if let Some(c) = iso2 {
                    q = q.filter(number::Column::Iso2.eq(c));
                }
                let Some(cand) = q.limit(1).one(tx).await? else {
                    if skip {
                        skip_done = true;
                        continue;
                    }
                    break;
                };
                let done = number::Entity::update_many()
                    .col_expr(
                        number::Column::SharedCount,
                        Expr::col(number::Column::SharedCount).add(1),
                    )
                    .filter(number::Column::Id.eq(cand.id))
                    .filter(number::Column::LockedBy.is_null())
                    .filter(number::Column::State.eq(AVAILABLE))
                    .exec(tx)
                    .await?
                    .rows_affected;
                if done == 0 {
                    continue;
                }
                if self.insert_route(tx, &cand.number, &key, id, now).await? {
                    return Ok(Some(cand.number));
                }
                add_shared(tx, &cand.number, -1, 0).await?;
            }
        }
        Ok(None)
    }

    /// Adds an AXN share on a given X; returns its extension counter after the increment.
    async fn share_fixed_axn(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        x: &str,
        auto_ext: bool,
        now: Millis,
    ) -> T<i64> {
        for attempt in 0..2 {
            let mut q = number::Entity::update_many()
                .col_expr(
                    number::Column::SharedCount,
                    Expr::col(number::Column::SharedCount).add(1),
                )
                .col_expr(
                    number::Column::ExtCount,
                    Expr::col(number::Column::ExtCount).add(1),
                )
                .col_expr(
                    number::Column::ExtSeq,
                    Expr::col(number::Column::ExtSeq).add(1),
                )
                .filter(number::Column::PoolId.eq(pool.id))
                .filter(number::Column::Number.eq(x))
                .filter(number::Column::State.eq(AVAILABLE))
                .filter(number::Column::LockedBy.is_null());
            if auto_ext {
                q = q.filter(number::Column::ExtCount.lt(AUTO_EXTENSION_COUNT));
            }
            if q.exec(tx).await?.rows_affected == 1 {
                return Ok(self.diagnose_number(tx, pool, x).await?.ext_seq);
            }
            let row = self.diagnose_number(tx, pool, x).await?;
            if let Some(holder) = &row.locked_by {
                if attempt == 0 && self.reap_if_dead(tx, holder, now).await? {
                    continue;
                }
                return Err(DomainError::NumberLocked {
                    number: x.to_owned(),
                }
                .into());
            }
            return Err(DomainError::NoAvailableNumber {
                pool: pool.pool_key.clone(),
                detail: format!(
                    ": all {AUTO_EXTENSION_COUNT} auto-assigned extensions of {x} are in use"
                ),
            }
            .into());
        }
        Err(DomainError::NumberLocked {
            number: x.to_owned(),
        }
        .into())
    }

    /// Chooses X for an AXN binding by city (LOOSE falls back to any city), preferring numbers
    /// that already carry extensions so that free numbers stay lockable for XYB.
    async fn share_any_axn(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        cmd: &AxnBind,
        id: &str,
        now: Millis,
    ) -> T<(String, i64)> {
        let key = caller_key(cmd.phone_a.as_str());
        let mut cities: Vec<Option<&str>> = vec![];
        match (&cmd.expect_city, cmd.city_match) {
            (Some(c), CityMatch::Strict) => cities.push(Some(c)),
            (Some(c), CityMatch::Loose) => cities.extend([Some(c.as_str()), None]),
            (None, _) => cities.push(None),
        }
        for round in 0..2 {
            for city in &cities {
                for packed in [true, false] {
                    for _ in 0..8 {
                        let mut q = self
                            .free_numbers(pool.id)
                            .filter(number::Column::ExtCount.lt(AUTO_EXTENSION_COUNT))
                            .filter(not_routed(&key));
                        q = if packed {
                            q.filter(number::Column::ExtCount.gt(0))
                        } else {
                            q.filter(number::Column::ExtCount.eq(0))
                        };
                        if let Some(c) = city {
                            q = q.filter(number::Column::City.eq(*c));
                        }
                        let Some(cand) = q.limit(1).one(tx).await? else {
                            break;
                        };
                        let done = number::Entity::update_many()
                            .col_expr(
                                number::Column::SharedCount,
                                Expr::col(number::Column::SharedCount).add(1),
                            )
                            .col_expr(
                                number::Column::ExtCount,
                                Expr::col(number::Column::ExtCount).add(1),
                            )
                            .col_expr(
                                number::Column::ExtSeq,
                                Expr::col(number::Column::ExtSeq).add(1),
                            )
                            .filter(number::Column::Id.eq(cand.id))
                            .filter(number::Column::LockedBy.is_null())
                            .filter(number::Column::State.eq(AVAILABLE))
                            .filter(number::Column::ExtCount.lt(AUTO_EXTENSION_COUNT))
                            .exec(tx)
                            .await?
                            .rows_affected;
                        if done == 0 {
                            continue;
                        }
                        // The counter as our increment left it, read under the row lock the
                        // UPDATE holds until commit: `cand` was read before the UPDATE and is
                        // stale when concurrent binds chose the same number (each would then
                        // start probing at an extension another bind just took).
                        let seq = number::Entity::find_by_id(cand.id)
                            .one(tx)
                            .await?
                            .map(|n| n.ext_seq)
                            .ok_or(DomainError::Internal("claimed number vanished".into()))?;
                        if self.insert_route(tx, &cand.number, &key, id, now).await? {
                            return Ok((cand.number, seq));
                        }
                        add_shared(tx, &cand.number, -1, -1).await?;
                    }
                }
            }
            if round == 0 && self.reap_expired(tx, Some(pool.id), now, 100).await? == 0 {
                break;
            }
        }
        let detail = match (&cmd.expect_city, cmd.city_match) {
            (Some(c), CityMatch::Strict) => format!(" in city {c} (strict)"),
            _ => String::new(),
        };
        Err(no_number(pool, Some(detail)).into())
    }

    /// Auto-assigns a 3-digit extension on X, starting from X's counter.
    async fn assign_extension(
        &self,
        tx: &DatabaseTransaction,
        x: &str,
        seq: i64,
        id: &str,
        now: Millis,
    ) -> T<String> {
        for i in 0..AUTO_EXTENSION_COUNT {
            let ext =
                (AUTO_EXTENSION_FIRST + (seq - 1 + i).rem_euclid(AUTO_EXTENSION_COUNT)).to_string();
            if self.insert_route(tx, x, &ext_key(&ext), id, now).await? {
                if i > 0 {
                    // Skip the taken ones next time too.
                    number::Entity::update_many()
                        .col_expr(
                            number::Column::ExtSeq,
                            Expr::col(number::Column::ExtSeq).add(i),
                        )
                        .filter(number::Column::Number.eq(x))
                        .exec(tx)
                        .await?;
                }
                return Ok(ext);
            }
        }
        Err(DomainError::BindConflict(format!("every extension of {x} is taken")).into())
    }

    /// Inserts a route under a savepoint. A conflicting route whose binding is no longer live
    /// (expired, sweeper not yet there) is ended first; a live one makes this return false.
    pub(super) async fn insert_route(
        &self,
        tx: &DatabaseTransaction,
        n: &str,
        key: &str,
        id: &str,
        now: Millis,
    ) -> T<bool> {
        for attempt in 0..2 {
            let sp = tx.begin().await?;
            let row = route::ActiveModel {
                number: Set(n.to_owned()),
                route_key: Set(key.to_owned()),
                binding_id: Set(id.to_owned()),
                ..Default::default()
            };
            match route::Entity::insert(row).exec(&sp).await {
                Ok(_) => {
                    sp.commit().await?;
                    return Ok(true);
                }
                Err(e) if is_unique_violation(&e) => {
                    sp.rollback().await?;
                    let holder = route::Entity::find()
                        .filter(route::Column::Number.eq(n))
                        .filter(route::Column::RouteKey.eq(key))
                        .one(tx)
                        .await?;
                    match holder {
                        Some(h)
                            if attempt == 0
                                && self.reap_if_dead(tx, &h.binding_id, now).await? =>
                        {
                            continue;
                        }
                        _ => return Ok(false),
                    }
                }
                Err(e) => {
                    sp.rollback().await?;
                    return Err(e.into());
                }
            }
        }
        Ok(false)
    }

    // ---- ending -----------------------------------------------------------------------------

    /// Ends the binding if it is active but past its expiry; true if it did.
    pub(super) async fn reap_if_dead(
        &self,
        tx: &DatabaseTransaction,
        binding_id: &str,
        now: Millis,
    ) -> Result<bool, DbErr> {
        let Some(m) = binding::Entity::find_by_id(binding_id.to_owned())
            .one(tx)
            .await?
        else {
            return Ok(false);
        };
        if m.active == 1 && m.expire_at <= now {
            return end_binding(tx, &m, BindingState::Expired, now).await;
        }
        Ok(false)
    }

    /// Ends up to `limit` expired bindings (of one pool, or all) inside `tx`.
    async fn reap_expired(
        &self,
        tx: &DatabaseTransaction,
        pool_id: Option<i64>,
        now: Millis,
        limit: u64,
    ) -> Result<u64, DbErr> {
        let mut q = binding::Entity::find()
            .filter(binding::Column::Active.eq(1))
            .filter(binding::Column::ExpireAt.lte(now));
        if let Some(p) = pool_id {
            q = q.filter(binding::Column::PoolId.eq(p));
        }
        let rows = q
            .order_by_asc(binding::Column::ExpireAt)
            .limit(limit)
            .all(tx)
            .await?;
        let mut ended = 0;
        for m in rows {
            if end_binding(tx, &m, BindingState::Expired, now).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    pub(super) async fn sweep_expired_impl(&self, now: Millis, limit: u64) -> R<u64> {
        let (n, seq) = with_write_tx!(self, |tx| {
            let n = self.reap_expired(&tx, None, now, limit).await?;
            // Events: each ended binding appended one; the counter is now our last one.
            let seq = if n > 0 {
                events::counter_in(&tx).await?
            } else {
                0
            };
            Ok((n, seq))
        })?;
        self.published(seq);
        Ok(n)
    }

    pub(super) async fn unbind_impl(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        let id = self.binding_row(&self.db, r).await?.id;
        // A concurrent change of state (e.g. a call-in converting XYB to AXYB on another
        // replica) makes `end_binding` match nothing: read again and end what is there now.
        for _ in 0..5 {
            match self.unbind_once(&id, now).await {
                Err(TxError::Retry) => continue,
                other => return other.map_err(DomainError::from),
            }
        }
        Err(DomainError::Unavailable(
            "the binding kept changing while it was being unbound; retry".into(),
        ))
    }

    async fn unbind_once(&self, id: &str, now: Millis) -> Result<Binding, TxError> {
        let id = id.to_owned();
        let (row, seq) = with_write_tx!(self, |tx| {
            let m = binding::Entity::find_by_id(id.clone())
                .one(&tx)
                .await?
                .ok_or(DomainError::BindingNotFound)?;
            let mut seq = 0;
            if m.active == 1 {
                let end = if m.expire_at <= now {
                    BindingState::Expired
                } else {
                    BindingState::Unbound
                };
                if !end_binding(&tx, &m, end, now).await? {
                    return Err(TxError::Retry);
                }
                // Events: end_binding appended one; the counter is now its sequence.
                seq = events::counter_in(&tx).await?;
            }
            let row = binding::Entity::find_by_id(id.clone())
                .one(&tx)
                .await?
                .ok_or(DomainError::BindingNotFound)?;
            Ok((row, seq))
        })?;
        self.published(seq);
        Ok(convert::binding(row, now)?)
    }

    // ---- reads and updates ------------------------------------------------------------------

    pub(super) async fn get_binding_impl(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        convert::binding(self.binding_row(&self.db, r).await?, now)
    }

    pub(super) async fn list_bindings_impl(
        &self,
        f: &BindingFilter,
        now: Millis,
    ) -> R<Vec<Binding>> {
        let mut q = binding::Entity::find();
        if let Some(p) = &f.pool_key {
            let pool = self.pool_row(&self.db, p).await?;
            q = q.filter(binding::Column::PoolId.eq(pool.id));
        }
        if let Some(u) = &f.customer_user_id {
            q = q.filter(binding::Column::CustomerUserId.eq(u.clone()));
        }
        if let Some(before) = &f.before_id {
            q = q.filter(binding::Column::Id.lt(before.clone()));
        }
        match f.state {
            None => {}
            Some(BindingState::Expired) => {
                q = q.filter(
                    Condition::any()
                        .add(binding::Column::State.eq(BindingState::Expired.as_str()))
                        .add(
                            Condition::all()
                                .add(binding::Column::Active.eq(1))
                                .add(binding::Column::ExpireAt.lte(now)),
                        ),
                )
            }
            Some(s) if s.is_active() => {
                q = q
                    .filter(binding::Column::State.eq(s.as_str()))
                    .filter(binding::Column::ExpireAt.gt(now))
            }
            Some(s) => q = q.filter(binding::Column::State.eq(s.as_str())),
        }
        q.order_by_desc(binding::Column::Id)
            .limit(f.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| convert::binding(m, now))
            .collect()
    }

    pub(super) async fn update_binding_impl(
        &self,
        r: &BindingRef,
        u: &BindingUpdate,
        now: Millis,
    ) -> R<Binding> {
        let m = self.binding_row(&self.db, r).await?;
        let mode = BindingMode::parse(&m.mode).ok_or(DomainError::Internal("bad mode".into()))?;
        if !(m.active == 1 && m.expire_at > now) {
            return Err(DomainError::FailedPrecondition {
                reason: reason::BINDING_ENDED,
                message: "the binding has ended (expired or unbound) and cannot be updated".into(),
            });
        }
        if u.phone_b.is_some() && mode != BindingMode::AxnExtension {
            return Err(DomainError::FailedPrecondition {
                reason: reason::BIND_CONFLICT,
                message:
                    "phone_b can only be changed on AXN bindings (on XYB it keys the route of Y)"
                        .into(),
            });
        }
        let mut upd = binding::Entity::update_many()
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(m.id.clone()))
            .filter(binding::Column::Active.eq(1))
            .filter(binding::Column::ExpireAt.gt(now));
        if let Some(e) = u.expire_at {
            upd = upd.col_expr(binding::Column::ExpireAt, Expr::value(e));
        }
        if let Some(b) = &u.phone_b {
            upd = upd.col_expr(
                binding::Column::PhoneB,
                Expr::value(b.as_ref().map(|p| p.as_str().to_owned())),
            );
        }
        if let Some(v) = u.recording {
            upd = upd.col_expr(binding::Column::Recording, Expr::value(v));
        }
        if let Some(v) = &u.customer_user_id {
            upd = upd.col_expr(binding::Column::CustomerUserId, Expr::value(v.clone()));
        }
        if let Some(v) = &u.ext {
            upd = upd.col_expr(binding::Column::Ext, Expr::value(v.clone()));
        }
        if let Some(v) = &u.out_id {
            upd = upd.col_expr(binding::Column::OutId, Expr::value(v.clone()));
        }
        // In a transaction since it appends `binding.updated` with the change.
        let (row, seq) = with_write_tx!(self, |tx| {
            if upd.clone().exec(&tx).await?.rows_affected == 0 {
                return Err(DomainError::FailedPrecondition {
                    reason: reason::BINDING_ENDED,
                    message: "the binding ended while it was being updated".into(),
                }
                .into());
            }
            let row = binding::Entity::find_by_id(m.id.clone())
                .one(&tx)
                .await?
                .ok_or(DomainError::BindingNotFound)?;
            let seq = events::append_for_row(&tx, BINDING_UPDATED, &row, now).await?;
            Ok((row, seq))
        })?;
        self.published(seq);
        convert::binding(row, now)
    }
}

/// Writes the allocated numbers into the binding row inserted at the start of the transaction.
async fn fill_numbers(
    tx: &DatabaseTransaction,
    id: &str,
    (x, y, ext): &(String, Option<String>, Option<String>),
) -> Result<binding::Model, DbErr> {
    binding::Entity::update_many()
        .col_expr(binding::Column::NumberX, Expr::value(x.clone()))
        .col_expr(binding::Column::NumberY, Expr::value(y.clone()))
        .col_expr(binding::Column::Extension, Expr::value(ext.clone()))
        .filter(binding::Column::Id.eq(id))
        .exec(tx)
        .await?;
    binding::Entity::find_by_id(id.to_owned())
        .one(tx)
        .await?
        .ok_or_else(|| {
            DbErr::RecordNotFound(format!("binding {id} vanished inside its transaction"))
        })
}

fn no_number(pool: &pool::Model, detail: Option<String>) -> DomainError {
    DomainError::NoAvailableNumber {
        pool: pool.pool_key.clone(),
        detail: detail.unwrap_or_default(),
    }
}

/// `NOT EXISTS (SELECT 1 FROM routes WHERE routes.number = numbers.number AND route_key = key)`.
fn not_routed(key: &str) -> Condition {
    Condition::all().add(
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(route::Entity)
                .and_where(
                    Expr::col((route::Entity, route::Column::Number))
                        .equals((number::Entity, number::Column::Number)),
                )
                .and_where(Expr::col((route::Entity, route::Column::RouteKey)).eq(Expr::val(key)))
                .to_owned(),
        )
        .not(),
    )
}

async fn add_shared(tx: &DatabaseTransaction, n: &str, shared: i64, ext: i64) -> Result<(), DbErr> {
    number::Entity::update_many()
        .col_expr(
            number::Column::SharedCount,
            Expr::col(number::Column::SharedCount).add(shared),
        )
        .col_expr(
            number::Column::ExtCount,
            Expr::col(number::Column::ExtCount).add(ext),
        )
        .filter(number::Column::Number.eq(n))
        .exec(tx)
        .await?;
    Ok(())
}

/// Ends an active binding: state change (conditional on the state it was read in), numbers
/// released, routes removed — all in the caller's transaction. False if someone else changed
/// the binding first.
pub(super) async fn end_binding(
    tx: &DatabaseTransaction,
    m: &binding::Model,
    to: BindingState,
    now: Millis,
) -> Result<bool, DbErr> {
    let done = binding::Entity::update_many()
        .col_expr(binding::Column::State, Expr::value(to.as_str()))
        .col_expr(binding::Column::Active, Expr::value(0i16))
        .col_expr(binding::Column::EndedAt, Expr::value(now))
        .col_expr(binding::Column::UpdatedAt, Expr::value(now))
        .filter(binding::Column::Id.eq(m.id.clone()))
        .filter(binding::Column::State.eq(m.state.clone()))
        .filter(binding::Column::Active.eq(1))
        .exec(tx)
        .await?
        .rows_affected;
    if done == 0 {
        return Ok(false);
    }
    if m.state == BindingState::Xyb.as_str() {
        number::Entity::update_many()
            .col_expr(
                number::Column::LockedBy,
                Expr::value(Option::<String>::None),
            )
            .filter(number::Column::Number.eq(m.number_x.clone()))
            .filter(number::Column::LockedBy.eq(m.id.clone()))
            .exec(tx)
            .await?;
    }
    // Carrier mirrors hold no claims on `numbers` (the carrier allocates): only local
    // bindings give shares back.
    let local = m.provider == Provider::Local.as_str();
    if local && m.mode == BindingMode::AxnExtension.as_str() {
        add_shared(tx, &m.number_x, -1, -1).await?;
    }
    if let Some(y) = m.number_y.as_ref().filter(|_| local) {
        add_shared(tx, y, -1, 0).await?;
    }
    route::Entity::delete_many()
        .filter(route::Column::BindingId.eq(m.id.clone()))
        .exec(tx)
        .await?;
    // Events: the binding's end, with its new state.
    let ended = binding::Model {
        state: to.as_str().into(),
        active: 0,
        ended_at: Some(now),
        updated_at: now,
        ..m.clone()
    };
    let kind = match to {
        BindingState::Expired => BINDING_EXPIRED,
        _ => BINDING_UNBOUND,
    };
    events::append_for_row(tx, kind, &ended, now).await?;
    Ok(true)
}
