//! Numbers claimed for a whole batch of binds at once (the shared batch of SQLite and
//! PostgreSQL; see `shared_savepoint`).
//!
//! A bind that takes any free number claims one with its own statements — each a round trip to
//! the database's connection thread, on the one serial path every SQLite write takes; a batch
//! of 120 binds spent most of its time on those round trips. A bind that takes any number of a
//! pool says so when it is submitted (`PreClaim`: pool, what it wants, its binding id). Before a
//! shared batch runs its writes, every such bind of the batch gets its number here:
//! - an XYB bind's X: one UPDATE of free numbers per pool (and country) that locks each to its
//!   bind (`CLAIM_ALL`: the same conditions as a lone claim, `RETURNING` what it locked);
//! - an AXN bind with auto X and auto extension (`claim_axns`): candidate numbers in a lone
//!   claim's order, read once; an UPDATE of each one's share and extension counters (a batch fills one
//!   number before the next); one INSERT of every bind's two routes (its caller's, its
//!   extension's) — three statements per pool and batch instead of two per bind (perf, BindAxnExtension: the per-bind claim was 15.7 % of all
//!   samples, building its statement 6 %). A bind whose route is taken is taken out of the
//!   claim there and then and runs on its own.
//!
//! The bind then takes what was claimed for it from `deferred` without a statement. Only a
//! batch of nothing but binds is claimed for: a number claimed for a bind that has not run yet
//! has no binding row, and any other write (a call-in on the database path) could meet it. All
//! of it runs under the batch's shared savepoint: if any write of the batch fails — or does not
//! take what was claimed for it — the savepoint is rolled back, the claim with it, and every
//! write runs again on its own, claiming as usual.
//!
//! SQLite and PostgreSQL, each with statements of its own (`jsonb_each` and `?n`;
//! `jsonb_array_elements` and `$n`). On PostgreSQL several writers claim at once: their
//! candidate reads take `FOR UPDATE SKIP LOCKED`, so two batches never pick the same number
//! and the counters a batch read cannot move before its UPDATE (which re-checks them anyway).
//! There a batch of binds is at most 48 writes (`writer::MAX_BINDS_CONCURRENT`); measured with
//! `pns-load` (BENCHMARKS.md, 2026-12-01 seventh session): statements per XYB bind 1.21 → 0.10,
//! per AXN bind 2.27 → 0.14. MySQL has no group commit.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, QueryFilter, QuerySelect,
};

use crate::storage::entities::number;

use super::AUTO_EXTENSION_COUNT;
use super::allocate::{auto_extension, axn_candidates};
use crate::storage::json_rows::statement;

/// What a write that makes a new binding (a bind) says of itself when it is submitted. A
/// batch runs such writes with their new rows pending (`deferred::defer_insert`); before any
/// other write of the batch runs — one that may read bindings, such as a call-in on the
/// database path — the pending rows are inserted, so it reads the batch as if each bind had
/// inserted its row itself.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewBinding {
    /// It takes any free number of a pool: in a batch of binds only, its number may be claimed
    /// with the others' (see the module's documentation).
    pub(crate) claim: Option<PreClaim>,
}

/// A bind that takes any free number of a pool.
#[derive(Clone, Debug)]
pub(crate) struct PreClaim {
    pub(crate) pool_id: i64,
    pub(crate) binding_id: String,
    pub(crate) wants: Wants,
}

/// What a `PreClaim` takes.
#[derive(Clone, Debug)]
pub(crate) enum Wants {
    /// An XYB bind's X: a free number (of a country, if given), locked to the bind.
    X { iso2: Option<String> },
    /// An AXN bind with an auto-assigned X and extension and no city asked for: a share of a
    /// number with room for an extension, with A's route (`caller_key`) and the extension's.
    Axn { caller_key: String },
}

/// What a batch claimed for one bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The X locked to it.
    X(String),
    /// The number it shares, its extension counter as this bind's increment left it, and the
    /// extension that counter chose — both routes already inserted.
    Axn {
        number: String,
        seq: i64,
        extension: String,
    },
}

/// Claims and locks up to `?3` free numbers (state `?5`) of pool `?1` (country `?2`, if not NULL), the
/// i-th to the i-th binding id of the JSON array `?4`; returns each number with its binding.
/// One statement of one text whatever the batch's size (prepared once; a `CASE` of one `WHEN`
/// per bind was a new text per batch size, parsed every time: 1.3–3.2 ms a batch of ~120).
/// The inner `LIMIT` comes first, so the window numbers at most `?3` rows; the outer
/// `locked_by IS NULL` repeats the free condition.
const CLAIM_ALL: &str = "\
UPDATE numbers SET locked_by = pick.binding_id
FROM (
  SELECT f.id AS id, j.value AS binding_id
  FROM (
    SELECT id, row_number() OVER () - 1 AS rn FROM (
      SELECT id FROM numbers
      WHERE pool_id = ?1 AND state = ?5 AND locked_by IS NULL AND shared_count = 0
        AND (?2 IS NULL OR iso2 = ?2)
      LIMIT ?3
    )
  ) AS f
  JOIN json_each(?4) AS j ON j.key = f.rn
) AS pick
WHERE numbers.id = pick.id AND numbers.locked_by IS NULL
RETURNING numbers.number, numbers.locked_by";

/// `CLAIM_ALL` on PostgreSQL: the candidates are locked `FOR UPDATE SKIP LOCKED` (rows other
/// writers' batches hold are passed over, as by a lone claim) in a CTE of their own, evaluated
/// once (`MATERIALIZED`: a rescan of a SKIP LOCKED scan may return other rows), then numbered
/// (no window function beside `FOR UPDATE`).
const CLAIM_ALL_PG: &str = "\
WITH c AS MATERIALIZED (
  SELECT id FROM numbers
  WHERE pool_id = $1 AND state = $5 AND locked_by IS NULL AND shared_count = 0
    AND ($2::text IS NULL OR iso2 = $2::text)
  LIMIT $3
  FOR UPDATE SKIP LOCKED
), f AS MATERIALIZED (
  SELECT id, row_number() OVER (ORDER BY id) AS rn FROM c
)
UPDATE numbers SET locked_by = j.binding_id
FROM f JOIN jsonb_array_elements_text($4::text::jsonb) WITH ORDINALITY AS j(binding_id, rn)
  ON j.rn = f.rn
WHERE numbers.id = f.id AND numbers.locked_by IS NULL
RETURNING numbers.number, numbers.locked_by";

/// Claims a number for as many of `claims` as there are free numbers: binding id → what it got.
pub(crate) async fn claim_all(
    tx: &DatabaseTransaction,
    claims: &[&PreClaim],
) -> Result<HashMap<String, Claimed>, DbErr> {
    let mut xs: HashMap<(i64, Option<&str>), Vec<&str>> = HashMap::new();
    let mut axns: HashMap<i64, Vec<(&str, &str)>> = HashMap::new();
    for c in claims {
        match &c.wants {
            Wants::X { iso2 } => xs
                .entry((c.pool_id, iso2.as_deref()))
                .or_default()
                .push(&c.binding_id),
            Wants::Axn { caller_key } => axns
                .entry(c.pool_id)
                .or_default()
                .push((&c.binding_id, caller_key)),
        }
    }
    let mut got = HashMap::new();
    for ((pool_id, iso2), ids) in xs {
        claim_xs(tx, pool_id, iso2, &ids, &mut got).await?;
    }
    for (pool_id, binds) in axns {
        claim_axns(tx, pool_id, &binds, &mut got).await?;
    }
    Ok(got)
}

async fn claim_xs(
    tx: &DatabaseTransaction,
    pool_id: i64,
    iso2: Option<&str>,
    ids: &[&str],
    got: &mut HashMap<String, Claimed>,
) -> Result<(), DbErr> {
    let json = serde_json::to_string(&ids).map_err(|e| DbErr::Custom(e.to_string()))?;
    let rows = tx
        .query_all_raw(statement(
            tx,
            CLAIM_ALL,
            CLAIM_ALL_PG,
            vec![
                pool_id.into(),
                iso2.map(str::to_owned).into(),
                (ids.len() as i64).into(),
                json.into(),
                super::AVAILABLE.into(),
            ],
        )?)
        .await?;
    for row in rows {
        let number: String = row.try_get("", "number")?;
        let by: String = row.try_get("", "locked_by")?;
        got.insert(by, Claimed::X(number));
    }
    Ok(())
}

/// Adds `?1` binds to the shares and extensions of number `?2`, if it is still free to share,
/// has room (`?3` AVAILABLE, `?4` the auto-extension count) and its extension counter is still
/// `?5`, the value the extensions were chosen from. One statement per number: a
/// batch's binds fill one number (900 extensions) before the next, so a batch shares one or
/// two. (An `UPDATE … FROM jsonb_each(…)` of them all let SQLite scan every free number of the
/// table and re-read the JSON for each: 60 ms a batch with a 60,000-number pool beside it.)
const SHARE: &str = "\
UPDATE numbers SET shared_count = shared_count + ?1, ext_count = ext_count + ?1,
  ext_seq = ext_seq + ?1
WHERE id = ?2 AND locked_by IS NULL AND state = ?3 AND ext_count + ?1 <= ?4 AND ext_seq = ?5
RETURNING id";

/// Inserts the routes of the JSON array `?1` of `[number, route_key, binding_id]` whose key is
/// free; returns those it inserted (`WHERE true`: SQLite's upsert after a `SELECT`).
const ROUTES_ALL: &str = "\
INSERT INTO routes (number, route_key, binding_id)
SELECT value->>0, value->>1, value->>2 FROM jsonb_each(?1) WHERE true
ON CONFLICT (number, route_key) DO NOTHING
RETURNING binding_id";

/// Takes back the routes of the binding ids of the JSON array `?1`.
const ROUTES_BACK: &str = "\
DELETE FROM routes WHERE binding_id IN (SELECT value FROM json_each(?1))";

/// Takes `?1` shares and extensions back from number `?2`; the extension counter stays where
/// it was (as after a lone claim whose routes were taken: the next claim starts past the
/// extension that was taken).
const UNSHARE: &str = "\
UPDATE numbers SET shared_count = shared_count - ?1, ext_count = ext_count - ?1 WHERE id = ?2";

/// `SHARE`, `ROUTES_ALL`, `ROUTES_BACK`, `UNSHARE` on PostgreSQL (`$n` parameters,
/// `jsonb_array_elements`).
const SHARE_PG: &str = "\
UPDATE numbers SET shared_count = shared_count + $1, ext_count = ext_count + $1,
  ext_seq = ext_seq + $1
WHERE id = $2 AND locked_by IS NULL AND state = $3 AND ext_count + $1 <= $4 AND ext_seq = $5
RETURNING id";
const ROUTES_ALL_PG: &str = "\
INSERT INTO routes (number, route_key, binding_id)
SELECT r->>0, r->>1, r->>2 FROM jsonb_array_elements($1::text::jsonb) AS r
ON CONFLICT (number, route_key) DO NOTHING
RETURNING binding_id";
const ROUTES_BACK_PG: &str = "\
DELETE FROM routes WHERE binding_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))";
const UNSHARE_PG: &str = "\
UPDATE numbers SET shared_count = shared_count - $1, ext_count = ext_count - $1 WHERE id = $2";

/// A number a batch's AXN binds share: its id and number, how many binds, its extension
/// counter as read (the extensions were chosen from it).
struct Share {
    id: i64,
    number: String,
    count: i64,
    seq: i64,
}

/// AXN binds of one pool (auto X, auto extension, any city): candidates in the lone claim's
/// order — first numbers that already carry extensions, least shared first, then fresh ones —
/// and each filled to its room before the next (lone binds one after another would spread over
/// numbers of equal share counts instead; a batch packs); every bind's extension follows from
/// the number's counter as a lone claim's would (`auto_extension`). Three statements for a group that fits
/// on one number: read the candidates, an UPDATE of each number's counters, one INSERT of
/// every route. A caller that appears twice in the group is claimed for once (its second bind
/// runs on its own); a group of one is not claimed for.
async fn claim_axns(
    tx: &DatabaseTransaction,
    pool_id: i64,
    binds: &[(&str, &str)],
    got: &mut HashMap<String, Claimed>,
) -> Result<(), DbErr> {
    let mut callers = HashSet::new();
    let mut left: Vec<(&str, &str)> = binds
        .iter()
        .copied()
        .filter(|(_, key)| callers.insert(*key))
        .collect();
    if left.len() < 2 {
        // A lone bind claims in two statements itself; the set-based claim takes three.
        return Ok(());
    }
    left.reverse(); // popped from the end: the first submitted is served first
    let mut shares: Vec<Share> = Vec::new();
    let mut routes: Vec<[String; 3]> = Vec::new();
    let mut claimed: Vec<(&str, Claimed)> = Vec::new();
    // PostgreSQL reads one candidate at a time: a candidate read stays locked (`FOR UPDATE
    // SKIP LOCKED`) until commit, and a batch usually fills its first number, so reading as
    // many as there are binds would hold numbers it never uses away from other writers'
    // batches and lone binds. SQLite (one writer) reads them at once.
    let one_by_one = tx.get_database_backend() == DbBackend::Postgres;
    // Numbers read already (passed over by the next read).
    let mut read: Vec<i64> = Vec::new();
    for packed in [true, false] {
        while !left.is_empty() {
            let mut q = axn_candidates(pool_id, packed);
            if one_by_one {
                // Numbers other writers' batches are sharing out are passed over, as by a lone
                // claim; those read are held until commit, so the counters cannot move under us.
                q = q
                    .filter(number::Column::Id.is_not_in(read.iter().copied()))
                    .limit(1)
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            } else {
                q = q.limit(left.len() as u64);
            }
            let candidates = q.all(tx).await?;
            if candidates.is_empty() {
                break;
            }
            for n in candidates {
                read.push(n.id);
                let room = (AUTO_EXTENSION_COUNT - n.ext_count).min(left.len() as i64);
                if room <= 0 {
                    continue;
                }
                for j in 0..room {
                    let Some((id, caller_key)) = left.pop() else {
                        break;
                    };
                    let seq = n.ext_seq + 1 + j;
                    let extension = auto_extension(seq, 0);
                    routes.push([n.number.clone(), caller_key.to_owned(), id.to_owned()]);
                    routes.push([n.number.clone(), super::ext_key(&extension), id.to_owned()]);
                    claimed.push((
                        id,
                        Claimed::Axn {
                            number: n.number.clone(),
                            seq,
                            extension,
                        },
                    ));
                }
                shares.push(Share {
                    id: n.id,
                    number: n.number,
                    count: room,
                    seq: n.ext_seq,
                });
                if left.is_empty() {
                    break;
                }
            }
            if !one_by_one {
                break;
            }
        }
    }
    if claimed.is_empty() {
        return Ok(());
    }
    for share in &shares {
        let changed = tx
            .query_all_raw(statement(
                tx,
                SHARE,
                SHARE_PG,
                vec![
                    share.count.into(),
                    share.id.into(),
                    super::AVAILABLE.into(),
                    AUTO_EXTENSION_COUNT.into(),
                    share.seq.into(),
                ],
            )?)
            .await?;
        if changed.len() != 1 {
            return Err(DbErr::Custom(format!(
                "number id {}, read for AXN shares, changed under the claim",
                share.id
            )));
        }
    }
    // Routes: a caller with a route on its number already, or an extension the counter chose
    // that an earlier binding still holds (the counter wraps), takes that bind out of the claim
    // — it runs on its own, as a lone claim does after the same conflict.
    let json = serde_json::to_string(&routes).map_err(|e| DbErr::Custom(e.to_string()))?;
    let inserted = tx
        .query_all_raw(statement(tx, ROUTES_ALL, ROUTES_ALL_PG, vec![json.into()])?)
        .await?;
    let mut both: HashMap<String, u8> = HashMap::new();
    for row in inserted {
        *both.entry(row.try_get("", "binding_id")?).or_default() += 1;
    }
    let (kept, lost): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .partition(|(id, _)| both.get(*id) == Some(&2));
    if !lost.is_empty() {
        let ids: Vec<&str> = lost.iter().map(|(id, _)| *id).collect();
        let mut back: HashMap<i64, i64> = HashMap::new();
        for (_, c) in &lost {
            if let Claimed::Axn { number, .. } = c
                && let Some(share) = shares.iter().find(|s| &s.number == number)
            {
                *back.entry(share.id).or_default() += 1;
            }
        }
        let ids = serde_json::to_string(&ids).map_err(|e| DbErr::Custom(e.to_string()))?;
        tx.execute_raw(statement(
            tx,
            ROUTES_BACK,
            ROUTES_BACK_PG,
            vec![ids.into()],
        )?)
        .await?;
        for (id, count) in back {
            tx.execute_raw(statement(
                tx,
                UNSHARE,
                UNSHARE_PG,
                vec![count.into(), id.into()],
            )?)
            .await?;
        }
    }
    got.extend(kept.into_iter().map(|(id, c)| (id.to_owned(), c)));
    Ok(())
}
