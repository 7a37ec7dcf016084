//! Pools and numbers.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::entities::{binding, number, pool};
use super::{Store, TxError, convert, group_tx, is_unique_violation, now_ms};
use crate::domain::{
    DomainError, Millis, NewNumber, NumberInfo, NumberState, Pool, PoolStats, error::reason,
};

type R<T> = Result<T, DomainError>;

impl Store {
    pub(super) async fn pool_row(&self, db: &impl ConnectionTrait, key: &str) -> R<pool::Model> {
        pool::Entity::find()
            .filter(pool::Column::PoolKey.eq(key))
            .one(db)
            .await?
            .ok_or_else(|| DomainError::PoolNotFound(key.to_owned()))
    }

    /// A pool's row through the pool cache (see `PoolCache`).
    pub(super) async fn pool_cached(&self, key: &str) -> R<pool::Model> {
        if let Some(row) = self.pools.get(key) {
            return Ok(row);
        }
        let generation = self.pools.generation();
        let row = self.pool_row(&self.reads, key).await?;
        self.pools.put(row.clone(), generation);
        Ok(row)
    }

    /// The pool `tenant` binds in: PERMISSION_DENIED when the pool names other tenants only.
    /// Read through the pool cache (see `PoolCache`): a bind does not read its pool's row.
    pub(super) async fn pool_for_tenant(&self, key: &str, tenant: &str) -> R<pool::Model> {
        let row = self.pool_cached(key).await?;
        if !convert::pool(row.clone())?.allows(tenant) {
            return Err(DomainError::PermissionDenied {
                reason: reason::POOL_NOT_ALLOWED,
                message: format!("tenant {tenant:?} may not bind in pool {key:?}"),
            });
        }
        Ok(row)
    }

    pub(super) async fn create_pool_impl(&self, p: Pool) -> R<Pool> {
        let row = pool::ActiveModel {
            pool_key: Set(p.pool_key.clone()),
            provider: Set(p.provider.as_str().to_owned()),
            carrier_pool_key: Set(p.carrier_pool_key.clone()),
            tenants: Set(p.tenants.join(",")),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        match pool::Entity::insert(row).exec(&self.db).await {
            Ok(_) => Ok(p),
            Err(e) if is_unique_violation(&e) => Err(DomainError::PoolAlreadyExists(p.pool_key)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn upsert_pool_impl(&self, p: Pool) -> R<Pool> {
        let row = pool::ActiveModel {
            pool_key: Set(p.pool_key.clone()),
            provider: Set(p.provider.as_str().to_owned()),
            carrier_pool_key: Set(p.carrier_pool_key.clone()),
            tenants: Set(p.tenants.join(",")),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        pool::Entity::insert(row)
            .on_conflict(
                OnConflict::column(pool::Column::PoolKey)
                    .update_columns([pool::Column::Provider, pool::Column::CarrierPoolKey])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        self.pools.forget(&p.pool_key);
        Ok(p)
    }

    pub(super) async fn list_pools_impl(&self) -> R<Vec<Pool>> {
        pool::Entity::find()
            .order_by_asc(pool::Column::PoolKey)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::pool)
            .collect()
    }

    pub(super) async fn add_numbers_impl(
        &self,
        pool_key: &str,
        numbers: Vec<NewNumber>,
    ) -> R<(u64, u64)> {
        let pool = self.pool_row(&self.db, pool_key).await?;
        let mut seen = HashSet::new();
        let numbers: Vec<NewNumber> = numbers
            .into_iter()
            .filter(|n| seen.insert(n.number.clone()))
            .collect();
        let res = group_tx!(self, [numbers, pool], |_this, tx| {
            let mut existing: HashMap<String, i64> = HashMap::new();
            for chunk in numbers.chunks(500) {
                let rows = number::Entity::find()
                    .filter(number::Column::Number.is_in(chunk.iter().map(|n| n.number.clone())))
                    .all(&tx)
                    .await?;
                existing.extend(rows.into_iter().map(|r| (r.number, r.pool_id)));
            }
            let foreign: Vec<&String> = existing
                .iter()
                .filter(|(_, pid)| **pid != pool.id)
                .map(|(n, _)| n)
                .collect();
            if let Some(n) = foreign.first() {
                return Err(TxError::Domain(DomainError::FailedPrecondition {
                    reason: reason::NUMBER_IN_OTHER_POOL,
                    message: format!(
                        "{} number(s) already belong to another pool, e.g. {n}; nothing was added",
                        foreign.len()
                    ),
                }));
            }
            let fresh: Vec<&NewNumber> = numbers
                .iter()
                .filter(|n| !existing.contains_key(&n.number))
                .collect();
            for chunk in fresh.chunks(500) {
                let rows = chunk.iter().map(|n| {
                    available_number(pool.id, n.number.clone(), n.iso2.clone(), n.city.clone())
                });
                number::Entity::insert_many(rows)
                    .exec_without_returning(&tx)
                    .await?;
            }
            Ok((fresh.len() as u64, (numbers.len() - fresh.len()) as u64))
        });
        match res {
            Err(TxError::Db(e)) if is_unique_violation(&e) => {
                Err(DomainError::FailedPrecondition {
                    reason: reason::NUMBER_IN_OTHER_POOL,
                    message: "a number was added concurrently by another request; retry".into(),
                })
            }
            other => Ok(other?),
        }
    }

    pub(super) async fn list_numbers_impl(
        &self,
        pool_key: &str,
        after: Option<String>,
        limit: u64,
    ) -> R<Vec<NumberInfo>> {
        let pool = self.pool_row(&self.db, pool_key).await?;
        let mut q = number::Entity::find().filter(number::Column::PoolId.eq(pool.id));
        if let Some(a) = after {
            q = q.filter(number::Column::Number.gt(a));
        }
        q.order_by_asc(number::Column::Number)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::number)
            .collect()
    }

    pub(super) async fn set_number_state_impl(
        &self,
        pool_key: &str,
        num: &str,
        state: NumberState,
    ) -> R<NumberInfo> {
        let pool = self.pool_row(&self.db, pool_key).await?;
        let mut upd = number::Entity::update_many()
            .col_expr(number::Column::State, state.as_str().into())
            .filter(number::Column::PoolId.eq(pool.id))
            .filter(number::Column::Number.eq(num));
        if state != NumberState::Available {
            // Decided by the UPDATE itself: a number an active binding holds (locked X, or a
            // shared X/Y still counted) is not taken out of service under it.
            upd = upd
                .filter(number::Column::LockedBy.is_null())
                .filter(number::Column::SharedCount.eq(0));
        }
        let res = upd.exec(&self.db).await?;
        if res.rows_affected == 0 {
            let exists = number::Entity::find()
                .filter(number::Column::PoolId.eq(pool.id))
                .filter(number::Column::Number.eq(num))
                .one(&self.db)
                .await?
                .is_some();
            if exists {
                return Err(DomainError::FailedPrecondition {
                    reason: reason::NUMBER_LOCKED,
                    message: format!(
                        "number {num} is held by an active binding; unbind it (or let it expire) first"
                    ),
                });
            }
            return Err(DomainError::NumberNotFound {
                reason: reason::NUMBER_NOT_FOUND,
                message: format!("number {num} is not in pool {pool_key:?}"),
            });
        }
        let row = number::Entity::find()
            .filter(number::Column::Number.eq(num))
            .one(&self.db)
            .await?
            .ok_or(DomainError::Internal("number vanished".into()))?;
        convert::number(row)
    }

    pub(super) async fn pool_stats_impl(&self, pool_key: &str, now: Millis) -> R<PoolStats> {
        let pool = self.pool_row(&self.db, pool_key).await?;
        let base = || number::Entity::find().filter(number::Column::PoolId.eq(pool.id));
        let avail = NumberState::Available.as_str();
        let count = |q: sea_orm::Select<number::Entity>| async move {
            q.count(&self.db).await.map(|c| c as i64)
        };
        Ok(PoolStats {
            total: count(base()).await?,
            free: count(
                base()
                    .filter(number::Column::State.eq(avail))
                    .filter(number::Column::LockedBy.is_null())
                    .filter(number::Column::SharedCount.eq(0)),
            )
            .await?,
            locked: count(base().filter(number::Column::LockedBy.is_not_null())).await?,
            shared: count(
                base()
                    .filter(number::Column::State.eq(avail))
                    .filter(number::Column::LockedBy.is_null())
                    .filter(number::Column::SharedCount.gt(0)),
            )
            .await?,
            reserved: count(
                base().filter(number::Column::State.eq(NumberState::Reserved.as_str())),
            )
            .await?,
            retired: count(base().filter(number::Column::State.eq(NumberState::Retired.as_str())))
                .await?,
            active_bindings: binding::Entity::find()
                .filter(binding::Column::PoolId.eq(pool.id))
                .filter(binding::Column::Active.eq(1))
                .filter(binding::Column::ExpireAt.gt(now))
                .count(&self.db)
                .await? as i64,
        })
    }
}

/// Numbers of one pool by state, for the `pns_pool_numbers` gauge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolNumbers {
    pub pool_key: String,
    pub free: i64,
    pub locked: i64,
    pub shared: i64,
    pub reserved: i64,
    pub retired: i64,
}

impl Store {
    /// Every pool's numbers by state, in ONE aggregate query (the states as `pool_stats`
    /// counts them), so a metrics scrape costs one scan of `numbers`, not seven per pool.
    pub async fn pool_numbers(&self) -> R<Vec<PoolNumbers>> {
        let (avail, reserved, retired) = (
            NumberState::Available.as_str(),
            NumberState::Reserved.as_str(),
            NumberState::Retired.as_str(),
        );
        let sql = format!(
            "SELECT p.pool_key AS pool_key, \
             COUNT(CASE WHEN n.state = '{avail}' AND n.locked_by IS NULL AND n.shared_count = 0 THEN 1 END) AS free, \
             COUNT(n.locked_by) AS locked, \
             COUNT(CASE WHEN n.state = '{avail}' AND n.locked_by IS NULL AND n.shared_count > 0 THEN 1 END) AS shared, \
             COUNT(CASE WHEN n.state = '{reserved}' THEN 1 END) AS reserved, \
             COUNT(CASE WHEN n.state = '{retired}' THEN 1 END) AS retired \
             FROM pools p LEFT JOIN numbers n ON n.pool_id = p.id \
             GROUP BY p.pool_key ORDER BY p.pool_key"
        );
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(self.backend, sql))
            .await?;
        rows.iter()
            .map(|r| {
                let get = |c: &str| r.try_get::<i64>("", c);
                Ok(PoolNumbers {
                    pool_key: r.try_get("", "pool_key")?,
                    free: get("free")?,
                    locked: get("locked")?,
                    shared: get("shared")?,
                    reserved: get("reserved")?,
                    retired: get("retired")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(Into::into)
    }
}

/// A pool number as it is added: available, unlocked, unshared, no extensions.
pub(super) fn available_number(
    pool_id: i64,
    number: String,
    iso2: String,
    city: String,
) -> number::ActiveModel {
    number::ActiveModel {
        pool_id: Set(pool_id),
        number: Set(number),
        iso2: Set(iso2),
        city: Set(city),
        state: Set(NumberState::Available.as_str().to_owned()),
        locked_by: Set(None),
        shared_count: Set(0),
        ext_count: Set(0),
        ext_seq: Set(0),
        ..Default::default()
    }
}

/// How long a cached pool row is used before it is read again.
const POOL_TTL: Duration = Duration::from_secs(2);

/// Pool rows by key, for binds and `GetPool`. A pool's id, key and tenants never change once created (pools
/// are never deleted); its provider and carrier key change only when a process starts with a
/// different carrier configuration (`upsert_pool`), which this process's cache forgets at once
/// and other processes' caches after `POOL_TTL`. Unknown keys are not cached (a pool may be
/// created at any moment, by any replica).
#[derive(Default)]
pub(super) struct PoolCache {
    rows: RwLock<HashMap<String, (Instant, pool::Model)>>,
    /// Bumped by every `forget`: a row read before it may be older than the change it
    /// forgot, so it is not cached.
    forgets: AtomicU64,
}

impl PoolCache {
    fn generation(&self) -> u64 {
        self.forgets.load(Ordering::Acquire)
    }

    fn get(&self, key: &str) -> Option<pool::Model> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        rows.get(key)
            .filter(|(at, _)| at.elapsed() < POOL_TTL)
            .map(|(_, row)| row.clone())
    }

    /// Caches `row`, read after `generation()` returned `read_at` — unless a `forget` came
    /// in between (checked under the lock `forget` takes too).
    fn put(&self, row: pool::Model, read_at: u64) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if self.forgets.load(Ordering::Acquire) == read_at {
            rows.insert(row.pool_key.clone(), (Instant::now(), row));
        }
    }

    fn forget(&self, key: &str) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        self.forgets.fetch_add(1, Ordering::AcqRel);
        rows.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(provider: &str) -> pool::Model {
        pool::Model {
            id: 1,
            pool_key: "p".into(),
            provider: provider.into(),
            carrier_pool_key: String::new(),
            tenants: String::new(),
            created_at: 0,
        }
    }

    #[test]
    fn a_row_read_before_a_forget_is_not_cached() {
        let cache = PoolCache::default();
        // A bind misses and starts reading; meanwhile the pool is changed and forgotten.
        let read_at = cache.generation();
        cache.forget("p");
        cache.put(row("local"), read_at);
        assert!(
            cache.get("p").is_none(),
            "the old row came back after the forget"
        );
        // A read that started after the forget is cached.
        let read_at = cache.generation();
        cache.put(row("aliyun"), read_at);
        assert_eq!(
            cache.get("p").map(|r| r.provider),
            Some("aliyun".to_owned())
        );
        cache.forget("p");
        assert!(cache.get("p").is_none());
    }
}
