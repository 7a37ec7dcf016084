//! The bulk preload behind `pns-load --preload N`: N active AXYB bindings (what an XYB binding
//! becomes after its first call-in) written straight into the database, for measuring the
//! gateway with a large routing table. Not a product path: no gRPC, no events.
//!
//! The rows are the ones the server writes (`bindings::bind_xyb_impl`, then
//! `calls::convert_xyb`), built by the same functions (`XybBind::draft`, `fingerprint`,
//! `convert::new_row`):
//! - a local pool of its own, `numbers` numbers in it (`available`, never locked: an AXYB
//!   binding releases its X);
//! - binding `i`: state `axyb`, A = [`PreloadSpec::caller_a`], B = [`PreloadSpec::caller_b`],
//!   X = number `i % numbers`, Y = number `(i + 1) % numbers`; routes (X, `c:A`) and
//!   (Y, `c:B`); callers are distinct per binding, so numbers are shared as the server shares
//!   them (one route per caller on a number);
//! - `numbers.shared_count` of each Y counts the bindings using it as Y.
//!
//! Multi-row INSERTs (1,000 bindings or 2,000 routes per statement: under SQLite's 32,766
//! parameters) in transactions of [`TX_BINDINGS`] bindings; each transaction also raises the
//! share counters of its Ys (at most three range UPDATEs), so every committed state passes
//! `pns-gateway check`, and a running server routes the preloaded bindings at once (the route
//! index learns them on their first call-in: nothing there is stale).

use std::time::{Duration, Instant};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr,
};

use super::entities::{binding, number, pool, route};
use super::{Store, bindings::AVAILABLE, bindings::caller_key, convert};
use crate::domain::{
    BindingState, DomainError, ExpireStrategy, PhoneNumber, Provider, XybBind, now_ms,
};

/// Bindings per transaction.
pub(super) const TX_BINDINGS: u64 = 50_000;
/// Bindings per INSERT statement (32 columns each).
const ROWS_PER_INSERT: usize = 1_000;
/// Numbers per INSERT statement (9 columns each).
const NUMBERS_PER_INSERT: usize = 3_000;

/// What to preload. Numbers are `number_prefix` + index, callers `a_prefix` / `b_prefix` +
/// index, zero-padded to [`NUMBER_DIGITS`] and [`CALLER_DIGITS`] digits.
#[derive(Clone, Debug)]
pub struct PreloadSpec {
    pub pool_key: String,
    pub tenant: String,
    pub bindings: u64,
    /// Virtual numbers in the pool (at least 2: X and Y differ).
    pub numbers: u64,
    pub number_prefix: String,
    pub a_prefix: String,
    pub b_prefix: String,
    /// Expiry of the bindings, from now.
    pub ttl_seconds: i64,
}

const NUMBER_DIGITS: usize = 15;
const CALLER_DIGITS: usize = 13;

fn padded(prefix: &str, digits: usize, i: u64) -> String {
    let width = digits.saturating_sub(prefix.len());
    format!("{prefix}{i:0width$}")
}

impl PreloadSpec {
    /// Number `j` of the pool.
    pub fn number(&self, j: u64) -> String {
        padded(&self.number_prefix, NUMBER_DIGITS, j)
    }

    pub fn caller_a(&self, i: u64) -> String {
        padded(&self.a_prefix, CALLER_DIGITS, i)
    }

    pub fn caller_b(&self, i: u64) -> String {
        padded(&self.b_prefix, CALLER_DIGITS, i)
    }

    /// X of binding `i`.
    pub fn number_x(&self, i: u64) -> String {
        self.number(i % self.numbers)
    }

    /// Y of binding `i`.
    pub fn number_y(&self, i: u64) -> String {
        self.number((i + 1) % self.numbers)
    }

    fn validate(&self) -> Result<(), DomainError> {
        let bad = |m: String| Err(DomainError::Internal(format!("preload: {m}")));
        if self.numbers < 2 {
            return bad("needs at least 2 numbers".into());
        }
        let last_n = self.number(self.numbers - 1);
        let last_c = self.caller_a(self.bindings.max(1) - 1);
        let last_b = self.caller_b(self.bindings.max(1) - 1);
        for n in [&last_n, &last_c, &last_b] {
            if let Err(e) = PhoneNumber::parse(n) {
                return bad(format!("number {n}: {e}"));
            }
        }
        if last_n.len() != NUMBER_DIGITS
            || last_c.len() != CALLER_DIGITS
            || last_b.len() != CALLER_DIGITS
        {
            return bad("too many bindings or numbers for the prefixes".into());
        }
        if self.a_prefix == self.b_prefix {
            return bad("A and B prefixes must differ".into());
        }
        Ok(())
    }
}

/// What a preload wrote.
#[derive(Clone, Debug)]
pub struct Preloaded {
    pub bindings: u64,
    pub routes: u64,
    pub numbers: u64,
    pub transactions: u64,
    pub elapsed: Duration,
}

impl Store {
    /// Writes the pool, its numbers, and `spec.bindings` active AXYB bindings with their routes
    /// (see the module docs). `progress` is called after each committed transaction with the
    /// bindings written so far. Fails if the pool or any number already exists.
    pub async fn preload_axyb(
        &self,
        spec: &PreloadSpec,
        mut progress: impl FnMut(u64),
    ) -> Result<Preloaded, DomainError> {
        spec.validate()?;
        let t0 = Instant::now();
        let now = now_ms();
        let pool = self.preload_pool(spec, now).await?;
        let template = XybBind {
            tenant: spec.tenant.clone(),
            pool_key: spec.pool_key.clone(),
            phone_b: PhoneNumber::parse(&spec.caller_b(0)).map_err(DomainError::Internal)?,
            number_x: None,
            number_y: None,
            iso2_x: None,
            iso2_y: None,
            delayed_y: false,
            bind_expire_seconds: spec.ttl_seconds,
            bind_strategy: ExpireStrategy::Fixed,
            call_in_expire_seconds: spec.ttl_seconds,
            call_in_strategy: ExpireStrategy::Fixed,
            customer_bind_id: None,
            customer_user_id: String::new(),
            recording: false,
            ext: String::new(),
        };
        let mut done = 0u64;
        let mut transactions = 0u64;
        while done < spec.bindings {
            let end = (done + TX_BINDINGS).min(spec.bindings);
            self.preload_batch(spec, &pool, &template, done..end, now)
                .await?;
            transactions += 1;
            done = end;
            progress(done);
        }
        Ok(Preloaded {
            bindings: spec.bindings,
            routes: 2 * spec.bindings,
            numbers: spec.numbers,
            transactions,
            elapsed: t0.elapsed(),
        })
    }

    /// The pool and its numbers (share counters 0: each binding batch raises them).
    async fn preload_pool(&self, spec: &PreloadSpec, now: i64) -> Result<pool::Model, DomainError> {
        let tx = self.db.begin().await?;
        let row = pool::ActiveModel {
            pool_key: Set(spec.pool_key.clone()),
            provider: Set(Provider::Local.as_str().to_owned()),
            carrier_pool_key: Set(String::new()),
            tenants: Set(String::new()),
            created_at: Set(now),
            ..Default::default()
        };
        pool::Entity::insert(row)
            .exec_without_returning(&tx)
            .await?;
        let pool = pool::Entity::find()
            .filter(pool::Column::PoolKey.eq(spec.pool_key.clone()))
            .one(&tx)
            .await?
            .ok_or_else(|| DomainError::Internal("preload: pool vanished".into()))?;
        let mut j = 0;
        while j < spec.numbers {
            let end = (j + NUMBERS_PER_INSERT as u64).min(spec.numbers);
            let rows = (j..end).map(|k| {
                super::pools::available_number(
                    pool.id,
                    spec.number(k),
                    "HK".into(),
                    "Hong Kong".into(),
                )
            });
            number::Entity::insert_many(rows)
                .exec_without_returning(&tx)
                .await?;
            j = end;
        }
        tx.commit().await?;
        Ok(pool)
    }

    /// Bindings `range` with their routes and share counts, in one transaction.
    async fn preload_batch(
        &self,
        spec: &PreloadSpec,
        pool: &pool::Model,
        template: &XybBind,
        range: std::ops::Range<u64>,
        now: i64,
    ) -> Result<(), DomainError> {
        let tx = self.db.begin().await?;
        let ids: Vec<String> = range
            .clone()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let indexes: Vec<u64> = range.clone().collect();
        for (chunk, chunk_ids) in indexes
            .chunks(ROWS_PER_INSERT)
            .zip(ids.chunks(ROWS_PER_INSERT))
        {
            let mut rows = Vec::with_capacity(chunk.len());
            let mut routes = Vec::with_capacity(2 * chunk.len());
            for (&i, id) in chunk.iter().zip(chunk_ids) {
                let (a, b) = (spec.caller_a(i), spec.caller_b(i));
                let (x, y) = (spec.number_x(i), spec.number_y(i));
                let mut cmd = template.clone();
                cmd.phone_b = PhoneNumber::parse(&b).map_err(DomainError::Internal)?;
                let fp = cmd.fingerprint();
                let mut draft = cmd.draft(id.clone(), Provider::Local, BindingState::Axyb, now);
                draft.phone_a = Some(a.clone());
                draft.number_x = x.clone();
                draft.number_y = Some(y.clone());
                // As `convert_xyb`: the call-in expiry from the conversion.
                draft.expire_at = now + cmd.call_in_expire_seconds * 1000;
                rows.push(convert::new_row(
                    &draft,
                    BindingState::Axyb.as_str(),
                    &spec.tenant,
                    pool,
                    &fp,
                    None,
                ));
                for (n, caller) in [(x, a), (y, b)] {
                    routes.push(route::ActiveModel {
                        number: Set(n),
                        route_key: Set(caller_key(&caller)),
                        binding_id: Set(id.clone()),
                        ..Default::default()
                    });
                }
            }
            binding::Entity::insert_many(rows)
                .exec_without_returning(&tx)
                .await?;
            route::Entity::insert_many(routes)
                .exec_without_returning(&tx)
                .await?;
        }
        // Here only: its `min`/`max` would shadow the integers' elsewhere.
        use sea_orm::sea_query::ExprTrait;
        for (lo, hi, add) in share_increments(range, spec.numbers) {
            number::Entity::update_many()
                .col_expr(
                    number::Column::SharedCount,
                    Expr::col(number::Column::SharedCount).add(add as i64),
                )
                .filter(number::Column::PoolId.eq(pool.id))
                .filter(number::Column::Number.gte(spec.number(lo)))
                .filter(number::Column::Number.lte(spec.number(hi)))
                .filter(number::Column::State.eq(AVAILABLE))
                .exec(&tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The share-count raises of bindings `range` (binding `i` uses number `(i + 1) % numbers` as
/// Y): `(first, last, add)` over inclusive number ranges. A whole cycle adds to every number;
/// the rest is one cyclic run, at most two ranges.
fn share_increments(range: std::ops::Range<u64>, numbers: u64) -> Vec<(u64, u64, u64)> {
    let n = range.end - range.start;
    let (full, rest) = (n / numbers, n % numbers);
    let mut out = Vec::new();
    if full > 0 {
        out.push((0, numbers - 1, full));
    }
    if rest > 0 {
        let first = (range.start + full * numbers + 1) % numbers;
        if first + rest <= numbers {
            out.push((first, first + rest - 1, 1));
        } else {
            out.push((first, numbers - 1, 1));
            out.push((0, first + rest - numbers - 1, 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::share_increments;

    /// The ranges add exactly what counting binding by binding adds.
    #[test]
    fn share_increments_match_a_recount() {
        for numbers in [2u64, 3, 7, 10] {
            for start in 0..25u64 {
                for len in 0..25u64 {
                    let mut want = vec![0u64; numbers as usize];
                    for i in start..start + len {
                        want[((i + 1) % numbers) as usize] += 1;
                    }
                    let mut got = vec![0u64; numbers as usize];
                    for (lo, hi, add) in share_increments(start..start + len, numbers) {
                        for j in lo..=hi {
                            got[j as usize] += add;
                        }
                    }
                    assert_eq!(got, want, "numbers {numbers}, {start}..+{len}");
                }
            }
        }
    }
}
