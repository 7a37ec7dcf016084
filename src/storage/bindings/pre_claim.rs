//! Numbers claimed for a whole batch of XYB binds in one statement per pool (SQLite's shared
//! batch; see `shared_savepoint`).
//!
//! An XYB bind that takes any free X claims one with one statement — a round trip to the
//! database's connection thread, on the one serial path every SQLite write takes; a batch of
//! 120 binds spent most of its time on those 120 round trips. A bind that takes any X of a pool
//! says so when it is submitted (`PreClaim`: pool, country, its binding id). Before a shared
//! batch runs its writes, every such bind of the batch gets its number here: one UPDATE of
//! free numbers per pool (and country) that locks each to its bind (`CLAIM_ALL`: the same
//! conditions as a lone claim, `RETURNING` what it locked). The bind's `lock_any` then takes
//! its number from `deferred` without a statement. Only a batch of nothing but binds is
//! claimed for: a number locked for a bind that has not run yet has no binding row, and any
//! other write (a call-in on the database path) could meet it. All of it runs under the batch's shared savepoint: if any
//! write of the batch fails — or does not take the number claimed for it — the savepoint is
//! rolled back, these locks with it, and every write runs again on its own, claiming as usual.
//! SQLite only (the shared batch is; the statement is SQLite's: `UPDATE … FROM`, `json_each`).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};

/// What a write that makes a new binding (a bind) says of itself when it is submitted. A
/// batch runs such writes with their new rows pending (`deferred::defer_insert`); before any
/// other write of the batch runs — one that may read bindings, such as a call-in on the
/// database path — the pending rows are inserted, so it reads the batch as if each bind had
/// inserted its row itself.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewBinding {
    /// It takes any free X of a pool: in a batch of binds only, its number may be claimed
    /// with the others' (see the module's documentation).
    pub(crate) any_x: Option<PreClaim>,
}

/// An XYB bind that takes any free X of a pool.
#[derive(Clone, Debug)]
pub(crate) struct PreClaim {
    pub(crate) pool_id: i64,
    pub(crate) iso2: Option<String>,
    pub(crate) binding_id: String,
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

/// Claims a number for as many of `claims` as there are free numbers: binding id → number.
pub(crate) async fn claim_all(
    tx: &DatabaseTransaction,
    claims: &[&PreClaim],
) -> Result<HashMap<String, String>, DbErr> {
    let mut groups: HashMap<(i64, Option<&str>), Vec<&str>> = HashMap::new();
    for c in claims {
        groups
            .entry((c.pool_id, c.iso2.as_deref()))
            .or_default()
            .push(&c.binding_id);
    }
    let mut got = HashMap::new();
    for ((pool_id, iso2), ids) in groups {
        let json = serde_json::to_string(&ids).map_err(|e| DbErr::Custom(e.to_string()))?;
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                CLAIM_ALL,
                [
                    pool_id.into(),
                    iso2.map(str::to_owned).into(),
                    (ids.len() as i64).into(),
                    json.into(),
                    super::AVAILABLE.into(),
                ],
            ))
            .await?;
        for row in rows {
            let number: String = row.try_get("", "number")?;
            let by: String = row.try_get("", "locked_by")?;
            got.insert(by, number);
        }
    }
    Ok(got)
}
