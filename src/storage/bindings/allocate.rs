//! Allocation: claiming X (locked), Y and AXN numbers, extensions and routes.

use super::*;
use sea_orm::QueryTrait;

impl Store {
    // ---- allocation -------------------------------------------------------------------------

    /// Locks a given X for an XYB binding.
    pub(super) async fn lock_fixed(
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
    pub(super) async fn diagnose_number(
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

    /// Locks any free number of the pool for an XYB binding (or takes the one its batch
    /// claimed for it: `pre_claim`).
    pub(super) async fn lock_any(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        iso2: Option<&str>,
        id: &str,
        now: Millis,
    ) -> T<Option<String>> {
        if let Some(n) = crate::storage::deferred::take_pre_claimed_x() {
            return Ok(Some(n));
        }
        // PostgreSQL, MySQL: first SKIP LOCKED, so concurrent binds take different rows instead of
        // queueing on one; then a plain FOR UPDATE, which waits for rows held by in-flight
        // transactions (they may roll back) before concluding the pool is exhausted.
        let mut attempts: Vec<Option<LockBehavior>> = vec![None; 8];
        if self.skip_locked() {
            attempts.splice(0..0, [Some(LockBehavior::SkipLocked); 8]);
        }
        for round in 0..2 {
            let mut skip_done = false;
            for pass in &attempts {
                if pass.is_some() && skip_done {
                    continue;
                }
                let mut q = free_numbers(pool.id).filter(number::Column::SharedCount.eq(0));
                if let Some(c) = iso2 {
                    q = q.filter(number::Column::Iso2.eq(c));
                }
                let row_lock = match (self.skip_locked(), pass) {
                    (false, _) => RowLock::None,
                    (true, Some(_)) => RowLock::SkipLocked,
                    (true, None) => RowLock::Wait,
                };
                let lock = number::Entity::update_many()
                    .col_expr(number::Column::LockedBy, Expr::value(id))
                    .filter(number::Column::LockedBy.is_null())
                    .filter(number::Column::SharedCount.eq(0))
                    .filter(number::Column::State.eq(AVAILABLE));
                let claimed = match self.claim_one(tx, q, row_lock, lock).await? {
                    Claim::Took(n) => n,
                    Claim::Lost => continue,
                    Claim::NoneLeft => {
                        if pass.is_some() {
                            skip_done = true;
                            continue;
                        }
                        break;
                    }
                };
                return Ok(Some(claimed.number));
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
    pub(super) async fn share_fixed_y(
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
    pub(crate) async fn share_any_y(
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
        // PostgreSQL, MySQL: SKIP LOCKED first, so two binds never wait on each other's X as
        // their Y (T1 holds n1 wants n2, T2 holds n2 wants n1); then a waiting pass.
        let modes: Vec<bool> = if self.skip_locked() {
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
                let mut q = free_numbers(pool.id)
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
    pub(super) async fn share_fixed_axn(
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
    pub(super) async fn share_any_axn(
        &self,
        tx: &DatabaseTransaction,
        pool: &pool::Model,
        cmd: &AxnBind,
        id: &str,
        now: Millis,
    ) -> T<(String, i64, Option<String>)> {
        // Its batch claimed its share, extension and routes with the others' (`pre_claim`).
        if let Some((number, seq, extension)) = crate::storage::deferred::take_pre_claimed_axn() {
            return Ok((number, seq, Some(extension)));
        }
        let key = caller_key(cmd.phone_a.as_str());
        // Auto extension: its first choice follows from the counter the claim returns, so the
        // caller's route and the extension's go in together (one statement) when both are free.
        let auto_ext = cmd.extension.is_none();
        let mut cities: Vec<Option<&str>> = vec![];
        match (&cmd.expect_city, cmd.city_match) {
            (Some(c), CityMatch::Strict) => cities.push(Some(c)),
            (Some(c), CityMatch::Loose) => cities.extend([Some(c.as_str()), None]),
            (None, _) => cities.push(None),
        }
        for round in 0..2 {
            for city in &cities {
                for packed in [true, false] {
                    // PostgreSQL: SKIP LOCKED first, so binds of concurrent group-commit
                    // batches spread over numbers instead of queueing on each other's X (a
                    // batch's own locked rows are not skipped); then passes that wait.
                    let pg = self.backend == sea_orm::DbBackend::Postgres;
                    let mut skip = pg;
                    let mut pass = 0;
                    while pass < 8 {
                        pass += 1;
                        let mut q = axn_candidates(pool.id, packed).filter(not_routed(&key));
                        if let Some(c) = city {
                            q = q.filter(number::Column::City.eq(*c));
                        }
                        let row_lock = if skip {
                            RowLock::SkipLocked
                        } else {
                            RowLock::None
                        };
                        let claim = number::Entity::update_many()
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
                            .filter(number::Column::LockedBy.is_null())
                            .filter(number::Column::State.eq(AVAILABLE))
                            .filter(number::Column::ExtCount.lt(AUTO_EXTENSION_COUNT));
                        // The claimed row carries the extension counter as our increment left
                        // it, read under the row lock the UPDATE holds until commit.
                        let cand = match self.claim_one(tx, q, row_lock, claim).await? {
                            Claim::Took(n) => n,
                            Claim::Lost => continue,
                            Claim::NoneLeft => {
                                if skip {
                                    skip = false;
                                    pass = 0;
                                    continue;
                                }
                                break;
                            }
                        };
                        if auto_ext {
                            let ext = auto_extension(cand.ext_seq, 0);
                            let keys = [key.clone(), ext_key(&ext)];
                            if self
                                .insert_routes_at_once(tx, &cand.number, &keys, id)
                                .await?
                            {
                                return Ok((cand.number, cand.ext_seq, Some(ext)));
                            }
                        }
                        if self.insert_route(tx, &cand.number, &key, id, now).await? {
                            return Ok((cand.number, cand.ext_seq, None));
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
    pub(super) async fn assign_extension(
        &self,
        tx: &DatabaseTransaction,
        x: &str,
        seq: i64,
        id: &str,
        now: Millis,
    ) -> T<String> {
        for i in 0..AUTO_EXTENSION_COUNT {
            let ext = auto_extension(seq, i);
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

    /// Inserts a route (`ON CONFLICT DO NOTHING`; on MySQL under a savepoint). A conflicting
    /// route whose binding is no longer live (expired, sweeper not yet there) is ended first; a
    /// live one makes this return false.
    pub(crate) async fn insert_route(
        &self,
        tx: &DatabaseTransaction,
        n: &str,
        key: &str,
        id: &str,
        now: Millis,
    ) -> T<bool> {
        for attempt in 0..2 {
            let row = route_row(n, key, id);
            let inserted = if self.backend == sea_orm::DbBackend::MySql {
                self.insert_route_savepoint(tx, row).await?
            } else {
                // One statement: a taken key inserts nothing (no savepoint, no error to roll
                // back), so a bind costs no extra round trips per route.
                route::Entity::insert(row)
                    .on_conflict(route_taken())
                    .exec_without_returning(tx)
                    .await?
                    == 1
            };
            if inserted {
                return Ok(true);
            }
            let holder = route::Entity::find()
                .filter(route::Column::Number.eq(n))
                .filter(route::Column::RouteKey.eq(key))
                .one(tx)
                .await?;
            match holder {
                Some(h) if attempt == 0 && self.reap_if_dead(tx, &h.binding_id, now).await? => {
                    continue;
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Inserts the routes `keys` on `n` in one statement (`ON CONFLICT DO NOTHING`) and
    /// answers whether all of them went in; if only some did, takes those out again (they are
    /// this binding's own rows), so the caller can go key by key with `insert_route`. MySQL:
    /// false at once (its route inserts go by savepoint).
    async fn insert_routes_at_once(
        &self,
        tx: &DatabaseTransaction,
        n: &str,
        keys: &[String],
        id: &str,
    ) -> T<bool> {
        if self.backend == sea_orm::DbBackend::MySql {
            return Ok(false);
        }
        let inserted = route::Entity::insert_many(keys.iter().map(|k| route_row(n, k, id)))
            .on_conflict(route_taken())
            .exec_without_returning(tx)
            .await?;
        if inserted == keys.len() as u64 {
            return Ok(true);
        }
        if inserted > 0 {
            route::Entity::delete_many()
                .filter(route::Column::Number.eq(n))
                .filter(route::Column::BindingId.eq(id))
                .filter(route::Column::RouteKey.is_in(keys.iter().cloned()))
                .exec(tx)
                .await?;
        }
        Ok(false)
    }

    /// MySQL's route insert: `INSERT IGNORE` would also turn other errors into warnings, so a
    /// taken key is a unique violation rolled back to a savepoint. Returns whether it inserted.
    async fn insert_route_savepoint(
        &self,
        tx: &DatabaseTransaction,
        row: route::ActiveModel,
    ) -> T<bool> {
        let sp = tx.begin().await?;
        match route::Entity::insert(row).exec_without_returning(&sp).await {
            Ok(_) => {
                sp.commit().await?;
                Ok(true)
            }
            Err(e) if is_unique_violation(&e) => {
                sp.rollback().await?;
                Ok(false)
            }
            Err(e) => {
                // `e` matters, not the rollback's own failure: after a MySQL deadlock the
                // server already rolled back the transaction and the savepoint is gone.
                let _ = sp.rollback().await;
                Err(e.into())
            }
        }
    }
}

fn route_row(n: &str, key: &str, id: &str) -> route::ActiveModel {
    route::ActiveModel {
        number: Set(n.to_owned()),
        route_key: Set(key.to_owned()),
        binding_id: Set(id.to_owned()),
        ..Default::default()
    }
}

/// `ON CONFLICT (number, route_key) DO NOTHING`: a taken route key inserts nothing.
fn route_taken() -> OnConflict {
    OnConflict::columns([route::Column::Number, route::Column::RouteKey])
        .do_nothing()
        .to_owned()
}

/// The `i`-th auto extension to try on a number whose extension counter is `seq` (3 digits,
/// from `AUTO_EXTENSION_FIRST`, wrapping after `AUTO_EXTENSION_COUNT`).
pub(super) fn auto_extension(seq: i64, i: i64) -> String {
    (AUTO_EXTENSION_FIRST + (seq - 1 + i).rem_euclid(AUTO_EXTENSION_COUNT)).to_string()
}

/// The free numbers of a pool.
pub(super) fn free_numbers(pool_id: i64) -> sea_orm::Select<number::Entity> {
    number::Entity::find()
        .filter(number::Column::PoolId.eq(pool_id))
        .filter(number::Column::State.eq(AVAILABLE))
        .filter(number::Column::LockedBy.is_null())
}

/// The numbers of a pool an auto AXN bind may share, in allocation order: with `packed`, those
/// that carry extensions already, else those that carry none; each with room for another
/// auto extension. Used by a lone claim (`share_any_axn`) and a batch's (`pre_claim`).
pub(super) fn axn_candidates(pool_id: i64, packed: bool) -> sea_orm::Select<number::Entity> {
    let q = free_numbers(pool_id).filter(number::Column::ExtCount.lt(AUTO_EXTENSION_COUNT));
    let q = if packed {
        // `shared_count > 0` is implied (every extension is a share; `check` holds `ext_count`
        // ≤ `shared_count`), and says it to the allocation index: its scan in share-count
        // order then starts past the free numbers instead of walking all of them on every bind.
        q.filter(number::Column::ExtCount.gt(0))
            .filter(number::Column::SharedCount.gt(0))
    } else {
        q.filter(number::Column::ExtCount.eq(0))
    };
    // The allocation index's order, so every database picks the same.
    q.order_by_asc(number::Column::SharedCount)
        .order_by_asc(number::Column::Id)
}

/// How a claim's candidate query locks the row it picks (PostgreSQL, MySQL; SQLite: `None`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RowLock {
    None,
    /// `FOR UPDATE`: waits for a row another transaction holds.
    Wait,
    /// `FOR UPDATE SKIP LOCKED`: passes over rows other transactions hold.
    SkipLocked,
}

impl RowLock {
    fn on(self, q: sea_orm::Select<number::Entity>) -> sea_orm::Select<number::Entity> {
        match self {
            RowLock::None => q,
            RowLock::Wait => q.lock(LockType::Update),
            RowLock::SkipLocked => q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        }
    }
}

/// What one attempt to claim a candidate number came to.
pub(super) enum Claim {
    /// The candidate, as the claiming UPDATE left it.
    Took(number::Model),
    /// A candidate was found, but a concurrent write changed it before the UPDATE (look again).
    Lost,
    /// No candidate matches.
    NoneLeft,
}

impl Store {
    /// Claims the first number `candidates` finds by applying `claim` (an UPDATE carrying the
    /// claim's own conditions, re-checked under the row lock) to it. PostgreSQL and SQLite do
    /// it in one statement (`UPDATE … WHERE id = (SELECT id … LIMIT 1) RETURNING *`), so a
    /// claim is one round trip and the returned row is read under the lock the UPDATE holds;
    /// MySQL, which has neither `UPDATE … RETURNING` nor `LIMIT` in an `IN` subquery, reads
    /// the candidate, updates it and reads it back.
    pub(super) async fn claim_one(
        &self,
        tx: &DatabaseTransaction,
        candidates: sea_orm::Select<number::Entity>,
        lock: RowLock,
        claim: sea_orm::UpdateMany<number::Entity>,
    ) -> T<Claim> {
        if self.backend != sea_orm::DbBackend::MySql {
            let first = lock
                .on(candidates.clone())
                .select_only()
                .column(number::Column::Id)
                .limit(1)
                .into_query();
            let mut rows = claim
                // `= (SELECT …)`, not `IN (SELECT …)`: PostgreSQL runs a scalar subquery once
                // (an InitPlan), whereas it may rescan an `IN` subquery per row of the outer
                // scan, and with SKIP LOCKED a rescan can return another row than the one the
                // outer row is compared with — the claim then matches nothing.
                .filter(
                    Expr::col((number::Entity, number::Column::Id))
                        .eq(Expr::SubQuery(None, Box::new(first.into()))),
                )
                .exec_with_returning(tx)
                .await?;
            if let Some(row) = rows.pop() {
                return Ok(Claim::Took(row));
            }
            // Nothing claimed. Skipping locked rows, no free row was unlocked: none left for
            // this pass. Otherwise none left, or (PostgreSQL, after waiting for a row lock) the
            // candidate no longer met the claim's conditions: this rare path asks which, with a
            // plain read (it locks no row it does not claim).
            if lock == RowLock::SkipLocked {
                return Ok(Claim::NoneLeft);
            }
            return Ok(match candidates.limit(1).one(tx).await? {
                Some(_) => Claim::Lost,
                None => Claim::NoneLeft,
            });
        }
        let Some(cand) = lock.on(candidates).limit(1).one(tx).await? else {
            return Ok(Claim::NoneLeft);
        };
        let done = claim
            .filter(number::Column::Id.eq(cand.id))
            .exec(tx)
            .await?
            .rows_affected;
        if done == 0 {
            return Ok(Claim::Lost);
        }
        // Read back under the row lock the UPDATE holds: `cand` was read before it and is
        // stale when concurrent binds chose the same number.
        Ok(match number::Entity::find_by_id(cand.id).one(tx).await? {
            Some(row) => Claim::Took(row),
            None => Claim::Lost,
        })
    }
}

pub(super) fn no_number(pool: &pool::Model, detail: Option<String>) -> DomainError {
    DomainError::NoAvailableNumber {
        pool: pool.pool_key.clone(),
        detail: detail.unwrap_or_default(),
    }
}

/// `NOT EXISTS (SELECT 1 FROM routes WHERE routes.number = numbers.number AND route_key = key)`.
pub(super) fn not_routed(key: &str) -> Condition {
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

pub(super) async fn add_shared(
    tx: &DatabaseTransaction,
    n: &str,
    shared: i64,
    ext: i64,
) -> Result<(), DbErr> {
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
