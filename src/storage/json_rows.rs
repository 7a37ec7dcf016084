//! A batch's set statements on SQLite and PostgreSQL, each ONE statement text whatever the
//! batch's size: the rows travel as one JSON array bound to one parameter and `jsonb_each`
//! (SQLite) or `jsonb_array_elements` (PostgreSQL) spreads them out (`jsonb_`: on SQLite each
//! row comes out as binary JSON, so `value->>i` reads its fields without parsing text —
//! `json_each` turned every row back into text and each `->>` parsed it again: callgrind,
//! NotifyCallIn, 530 k instructions per call-in against 395 k with `jsonb_each`).
//!
//! Why: a multi-row `INSERT … VALUES (…), (…)` or an `IN (…)` list is a new statement text for
//! every batch size, so the statement cache misses and the database parses and plans it again
//! on every batch. On SQLite (perf under NotifyCallIn) `sqlite3_prepare_v3` took 2.7 % of all
//! CPU, plus building 18 bound values per event and binding each. On PostgreSQL every new text
//! is also a round trip of its own (sqlx prepares it before it binds it), and parsing a
//! ~150-row, 2,700-parameter INSERT costs the server more than running it. One text is
//! prepared once per connection; serialising the rows is a single string. MySQL keeps sea-orm's
//! multi-row statements (`events`, `batch_end`).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::domain::{Event, Millis};

/// The events' columns, in the order of each JSON row.
const INSERT_EVENTS: &str = "\
INSERT INTO events (seq, kind, tenant, binding_id, pool_key, provider, customer_bind_id,
  customer_user_id, ext, out_id, call_id, caller, called, callee, detail_json, occurred_at,
  created_at, dedupe_key)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
  value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14, value->>15,
  value->>16, value->>17
FROM jsonb_each(?1)";

/// PostgreSQL's events INSERT of the JSON rows (`Row`) that `$from` spreads out, each row's
/// sequence being `$seq` (`(value->>0)::bigint` as the row carries it, or an offset of it): one
/// text for `INSERT_EVENTS_PG` and `APPEND_AT_ONCE_PG`.
macro_rules! insert_events_pg {
    ($seq:literal, $from:literal) => {
        concat!(
            "INSERT INTO events (seq, kind, tenant, binding_id, pool_key, provider, \
             customer_bind_id, customer_user_id, ext, out_id, call_id, caller, called, callee, \
             detail_json, occurred_at, created_at, dedupe_key)
SELECT ",
            $seq,
            ", value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
             value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14, \
             (value->>15)::bigint, (value->>16)::bigint, value->>17
FROM ",
            $from
        )
    };
}

/// PostgreSQL's last-party UPDATE from the JSON rows (`[id, caller]`) in the parameter `$rows`: the bindings
/// found by their ids (`= ANY`), not by `active` (`+ 0`), whatever the statistics were when
/// the plan was cached — a join on the ids alone was planned as a hash join over every active
/// binding (1.7 ms a batch at 1,500). One text for `SET_LAST_PARTIES_PG` and
/// `APPEND_AT_ONCE_PG`.
macro_rules! set_last_parties_pg {
    ($rows:literal) => {
        concat!(
            "UPDATE bindings SET last_party = j.value->>1
FROM jsonb_array_elements(",
            $rows,
            ") AS j
WHERE bindings.id = j.value->>0
  AND bindings.id = ANY (ARRAY(SELECT e->>0 FROM jsonb_array_elements(",
            $rows,
            ") AS e))
  AND bindings.active + 0 = 1"
        )
    };
}

/// `INSERT_EVENTS` on PostgreSQL.
const INSERT_EVENTS_PG: &str =
    insert_events_pg!("(value->>0)::bigint", "jsonb_array_elements($1::jsonb)");

/// The stored events whose dedupe key is one of the JSON array `?1`.
const STORED_KEYS: &str = "\
SELECT dedupe_key, seq FROM events WHERE dedupe_key IN (SELECT value FROM json_each(?1))";

/// `STORED_KEYS` on PostgreSQL. `= ANY (ARRAY(…))`: a lookup of the unique index per key in
/// the statement's cached (generic) plan; `IN (SELECT …)` was planned as a join that took
/// 3.0 ms a batch against 0.66 ms for the `IN ($1, $2, …)` list (server log, NotifyCallIn).
const STORED_KEYS_PG: &str = "\
SELECT dedupe_key, seq FROM events
WHERE dedupe_key = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))";

/// Sets each binding's `last_party` (the JSON array `?1` of `[id, caller]`; ids distinct) if
/// it is active. `+active`: not by the `active` index — with it SQLite (no statistics) would
/// visit every active binding instead of looking each id up (BENCHMARKS.md, preload).
const SET_LAST_PARTIES: &str = "\
UPDATE bindings SET last_party = j.value->>1
FROM jsonb_each(?1) AS j
WHERE bindings.id = j.value->>0 AND +bindings.active = 1";

/// `SET_LAST_PARTIES` on PostgreSQL.
const SET_LAST_PARTIES_PG: &str = set_last_parties_pg!("$1::jsonb");

/// A batch of appends in ONE statement (PostgreSQL, outside a transaction: it commits on its
/// own). `$1`: how many events; `$2`: the last parties (`SET_LAST_PARTIES_PG`'s rows); `$3`:
/// the events as `INSERT_EVENTS_PG`'s rows, each with its 1-based place in the batch where the
/// sequence goes. The last parties are written first (the counter's condition reads them), so
/// this takes the bindings' row locks before the counter's, as a batch's writes and its end do
/// (the bindings, in id order: `LastParty::last_of_each`). Every event is taken as new: a
/// stored dedupe key fails the statement (a unique violation of `ux_events_dedupe_key`) and
/// nothing of it is kept. Returns the counter after it (no row, and nothing kept of the
/// events, if `event_seq`'s row were missing: then the caller's transaction reports it).
const APPEND_AT_ONCE_PG: &str = concat!(
    "WITH parties AS (\n",
    set_last_parties_pg!("$2::jsonb"),
    "\n  RETURNING 1
), counter AS (
  UPDATE event_seq SET last = last + $1
  WHERE id = 1 AND (SELECT count(*) FROM parties) >= 0
  RETURNING last
), inserted AS (\n",
    insert_events_pg!(
        "counter.last - $1 + (value->>0)::bigint",
        "counter, jsonb_array_elements($3::jsonb)"
    ),
    "\n)
SELECT last FROM counter"
);

/// Runs `APPEND_AT_ONCE_PG` on `db` for `events` (their `sequence`: 1-based places); `None`
/// when a dedupe key was stored before (nothing was kept); any other failure is an error
/// (the statement may have committed if its answer was lost). Returns the counter after it.
pub(super) async fn append_at_once_pg(
    db: &sea_orm::DatabaseConnection,
    events: &[Event],
    parties: &[(&str, &str)],
    created: Millis,
) -> Result<Option<i64>, DbErr> {
    let rows: Vec<Row<'_>> = events.iter().map(|e| Row(e, created)).collect();
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        APPEND_AT_ONCE_PG,
        [
            (events.len() as i64).into(),
            json(parties)?.into(),
            json(&rows)?.into(),
        ],
    );
    match db.query_one_raw(stmt).await {
        Ok(Some(row)) => Ok(Some(row.try_get::<i64>("", "last")?)),
        Ok(None) => Err(DbErr::RecordNotFound("event_seq row 1 is missing".into())),
        Err(e) if super::violates_unique(&e, "ux_events_dedupe_key") => Ok(None),
        Err(e) => Err(e),
    }
}

/// `sqlite`'s text on SQLite, `pg`'s on PostgreSQL (the batch statements of this module and of
/// `bindings::pre_claim`, written once per backend); an error on MySQL, which has neither.
pub(crate) fn statement(
    tx: &DatabaseTransaction,
    sqlite: &str,
    pg: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Statement, DbErr> {
    let backend = tx.get_database_backend();
    let text = match backend {
        DbBackend::Sqlite => sqlite,
        DbBackend::Postgres => pg,
        other => {
            return Err(DbErr::Custom(format!("no batch statement on {other:?}")));
        }
    };
    Ok(Statement::from_sql_and_values(backend, text, values))
}

/// One event as a JSON row of `INSERT_EVENTS`.
struct Row<'a>(&'a Event, Millis);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, created) = (self.0, self.1);
        let mut r = s.serialize_seq(Some(18))?;
        r.serialize_element(&e.sequence)?;
        r.serialize_element(&e.kind)?;
        r.serialize_element(&e.tenant)?;
        r.serialize_element(&e.binding_id)?;
        r.serialize_element(&e.pool_key)?;
        r.serialize_element(&e.provider.map(|p| p.as_str()))?;
        r.serialize_element(&e.customer_bind_id)?;
        r.serialize_element(&e.customer_user_id)?;
        r.serialize_element(&e.ext)?;
        r.serialize_element(&e.out_id)?;
        r.serialize_element(&e.call_id)?;
        r.serialize_element(&e.caller)?;
        r.serialize_element(&e.called)?;
        r.serialize_element(&e.callee)?;
        r.serialize_element(&e.detail.to_string())?;
        r.serialize_element(&e.occurred_at)?;
        r.serialize_element(&created)?;
        r.serialize_element(&e.dedupe_key)?;
        r.end()
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> Result<String, DbErr> {
    serde_json::to_string(v).map_err(|e| DbErr::Custom(format!("batch rows as JSON: {e}")))
}

/// Inserts `events` (sequences assigned) with one statement.
pub(super) async fn insert_events(
    tx: &DatabaseTransaction,
    events: &[Event],
    created: Millis,
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<Row<'_>> = events.iter().map(|e| Row(e, created)).collect();
    let res = tx
        .execute_raw(statement(
            tx,
            INSERT_EVENTS,
            INSERT_EVENTS_PG,
            vec![json(&rows)?.into()],
        )?)
        .await?;
    if res.rows_affected() != events.len() as u64 {
        return Err(DbErr::Custom(format!(
            "{} of {} events inserted",
            res.rows_affected(),
            events.len()
        )));
    }
    Ok(())
}

/// The sequences of the stored events with one of `keys`, by key, with one statement.
pub(super) async fn stored_keys(
    tx: &DatabaseTransaction,
    keys: &[String],
) -> Result<HashMap<String, i64>, DbErr> {
    let rows = tx
        .query_all_raw(statement(
            tx,
            STORED_KEYS,
            STORED_KEYS_PG,
            vec![json(keys)?.into()],
        )?)
        .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        found.insert(
            row.try_get::<String>("", "dedupe_key")?,
            row.try_get::<i64>("", "seq")?,
        );
    }
    Ok(found)
}

/// Sets the last party of each `(binding id, caller)` (ids distinct) with one statement.
pub(super) async fn set_last_parties(
    tx: &DatabaseTransaction,
    parties: &[(&str, &str)],
) -> Result<(), DbErr> {
    tx.execute_raw(statement(
        tx,
        SET_LAST_PARTIES,
        SET_LAST_PARTIES_PG,
        vec![json(parties)?.into()],
    )?)
    .await?;
    Ok(())
}
