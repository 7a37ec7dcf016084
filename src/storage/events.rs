//! The event log: appending inside a writer's transaction (or, for a PostgreSQL batch of
//! call-ins, in one statement that commits on its own: `append_at_once`), reading pages, the
//! in-process wake-up.
//!
//! Sequence numbers come from the single row of `event_seq`, taken with
//! `UPDATE event_seq SET last = last + n WHERE id = 1 RETURNING last` (MySQL:
//! `SET last = LAST_INSERT_ID(last + n)`) as late as possible in the writer's transaction. The
//! row lock that UPDATE takes is held until commit, so event-writing transactions are
//! serialised on it: a transaction can only take numbers after the previous holder committed
//! (or rolled back, which also undoes its increment). Hence
//! - sequence order == commit order, and the sequence has no holes;
//! - every event at or below the committed `event_seq.last` is itself committed and visible, so a
//!   reader that has seen seq N never later finds a smaller one appear. That is what makes
//!   "resume after N" exact.
//!
//! A `bigserial`/auto-increment column would NOT give this: numbers are handed out when the
//! INSERT runs, not when the transaction commits, so T1 can take 7, T2 take 8 and commit first; a
//! reader then delivers 8, resumes "after 8" and never sees 7. On SQLite every write
//! transaction is `BEGIN IMMEDIATE`, so writers are serialised anyway and the same holds.
//!
//! On SQLite and PostgreSQL an append's dedupe lookup and INSERT are one statement each, the
//! rows in one JSON parameter (`json_rows`: one statement text whatever the size). On
//! PostgreSQL the numbers are taken before the lookup (the UPDATE is the counter's lock) and
//! those a stored key did not need are given back before the INSERT. On MySQL a big append (an
//! Aliyun batch of ~50,000 minimal receipts fits in the 1 MiB push limit) is split into
//! statements of at most [`MAX_BIND_PARAMS`] bound parameters — the dedupe lookup into
//! `IN (...)` chunks, the INSERT into multi-row chunks. All of it runs in the caller's one
//! transaction and under the one `event_seq` lock, so the invariants above hold unchanged: the
//! numbers of one call are contiguous, and nothing is visible before the commit. The same holds
//! for `append_at_once`: its one statement is its own transaction, and it holds the counter's
//! lock from its UPDATE to its commit.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, Iterable,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, Query},
};

use super::Store;
use super::entities::{binding, event, event_seq};
use crate::domain::{
    DomainError, Event, EventFilter, Millis, NewEvent, Provider, event::binding_detail, now_ms,
};

/// Most bound parameters in one statement: SQLite (≥ 3.32) allows 32,766, PostgreSQL and MySQL
/// 65,535 ("too many SQL variables" / "too many arguments" / "Prepared statement contains too
/// many placeholders" past them); half of the smallest leaves room for the few fixed
/// parameters a statement adds.
pub(super) const MAX_BIND_PARAMS: usize = 16_000;

/// The outcome of one event of an `append_events` call, in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: i64,
    /// An event with this `dedupe_key` was stored before; `seq` is the stored one's.
    pub(crate) duplicate: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct AppendResult {
    pub(crate) items: Vec<Appended>,
    /// The events this call stored, as the log will read them once committed (for
    /// `handoff::Committed`).
    pub(crate) stored: Vec<Event>,
}

impl AppendResult {
    /// The highest sequence this call stored (to pass to `Store::published` after commit).
    pub(crate) fn last_new(&self) -> Option<i64> {
        self.items
            .iter()
            .filter(|a| !a.duplicate)
            .map(|a| a.seq)
            .max()
    }
}

enum Slot {
    /// The `i`-th new event of this call.
    New(i64),
    /// A repeat of the `i`-th new event of this call (same dedupe key in one batch).
    Repeat(i64),
    /// Already stored with this sequence.
    Stored(i64),
}

/// Appends `events` in the caller's transaction (which must not be committed yet). Call it as
/// late as possible: from here to commit, other event writers wait for this transaction.
pub(crate) async fn append_events(
    tx: &DatabaseTransaction,
    events: Vec<NewEvent>,
) -> Result<AppendResult, DbErr> {
    if events.is_empty() {
        return Ok(AppendResult::default());
    }
    // From here to commit this transaction holds the counter (a batch's write: see `deferred`).
    super::deferred::note_counter_taken();
    let keys: Vec<String> = events.iter().filter_map(|e| e.dedupe_key.clone()).collect();
    let backend = tx.get_database_backend();
    let mut known: HashMap<String, i64> = HashMap::new();
    // PostgreSQL: (the last number taken, how many) when they were taken before the lookup.
    let mut reserved = None;
    if keys.is_empty() {
        // Nothing to look up: every event is new.
    } else if backend == DbBackend::Sqlite {
        // One writer at a time (`BEGIN IMMEDIATE`), and one statement text whatever the size
        // (`json_rows`).
        known = super::json_rows::stored_keys(tx, &keys).await?;
    } else if backend == DbBackend::Postgres {
        // Take a number for every event that may be new FIRST: the UPDATE locks the counter,
        // so a concurrent writer of the same key either committed before it (READ COMMITTED
        // takes a fresh snapshot per statement, so the lookup after it sees that event) or
        // waits for this transaction. Numbers a stored key did not need are given back below,
        // still under the lock, so the sequence keeps no hole. One round trip fewer than
        // locking, looking, then counting; the unique index stays the backstop.
        let n = may_be_new(&events);
        reserved = Some((take_sequences(tx, n).await?, n));
        known = super::json_rows::stored_keys(tx, &keys).await?;
    } else {
        // MySQL: lock the counter before looking (as above, by a locking read).
        event_seq::Entity::find_by_id(1i64)
            .lock_exclusive()
            .one(tx)
            .await?;
        for chunk in keys.chunks(MAX_BIND_PARAMS) {
            let found: Vec<(Option<String>, i64)> = event::Entity::find()
                .select_only()
                .column(event::Column::DedupeKey)
                .column(event::Column::Seq)
                .filter(event::Column::DedupeKey.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(tx)
                .await?;
            for (k, seq) in found {
                if let Some(k) = k {
                    known.insert(k, seq);
                }
            }
        }
    }
    let mut slots = Vec::with_capacity(events.len());
    let mut fresh = Vec::new();
    // Keys first seen in this batch: a repeat inside the batch is a duplicate of that one.
    let mut batch: HashMap<String, i64> = HashMap::new();
    for e in events {
        match e.dedupe_key.as_ref() {
            Some(k) if known.contains_key(k) => slots.push(Slot::Stored(known[k])),
            Some(k) if batch.contains_key(k) => slots.push(Slot::Repeat(batch[k])),
            _ => {
                let i = fresh.len() as i64;
                if let Some(k) = &e.dedupe_key {
                    batch.insert(k.clone(), i);
                }
                slots.push(Slot::New(i));
                fresh.push(e);
            }
        }
    }
    let new = fresh.len() as i64;
    let first = match reserved {
        Some((last, taken)) => {
            if taken > new {
                set_counter(tx, last - taken + new).await?;
            }
            last - taken + 1
        }
        None if fresh.is_empty() => 0,
        None => take_sequences(tx, new).await? - new + 1,
    };
    let items = slots
        .into_iter()
        .map(|s| match s {
            Slot::New(i) => Appended {
                seq: first + i,
                duplicate: false,
            },
            Slot::Repeat(i) => Appended {
                seq: first + i,
                duplicate: true,
            },
            Slot::Stored(s) => Appended {
                seq: s,
                duplicate: true,
            },
        })
        .collect();
    let stored: Vec<Event> = fresh
        .into_iter()
        .zip(first..)
        .map(|(e, seq)| e.stored(seq))
        .collect();
    if backend != DbBackend::MySql {
        super::json_rows::insert_events(tx, &stored, now_ms()).await?;
    } else {
        let created = now_ms();
        let per_insert = MAX_BIND_PARAMS / event::Column::iter().count();
        for chunk in stored.chunks(per_insert) {
            let rows = chunk.iter().map(|e| row(e, created));
            event::Entity::insert_many(rows)
                .exec_without_returning(tx)
                .await?;
        }
    }
    // A write of a batch that appends itself: its batch hands these on after its commit.
    super::deferred::note_stored(&stored);
    Ok(AppendResult { items, stored })
}

/// A batch of appends (routed call-ins' events and their last parties) in ONE statement that
/// commits on its own (PostgreSQL; `json_rows::APPEND_AT_ONCE_PG`): no BEGIN, lookup or
/// COMMIT round trips. Every event is taken as new; `None` when that is not so (a key repeats
/// in the batch, or one was stored before: the statement failed and kept nothing) — the
/// caller then appends them in a transaction, which looks the keys up (it does so too after
/// an error here: the statement may have committed before its answer was lost). Only for events that
/// all have a dedupe key: if the statement committed but its answer was lost, the
/// transaction that follows finds them stored instead of storing them twice.
pub(super) async fn append_at_once(
    db: &sea_orm::DatabaseConnection,
    events: &[NewEvent],
    touches: &[super::writer::LastParty],
) -> Result<Option<AppendResult>, DbErr> {
    let keyed = events.iter().all(|e| e.dedupe_key.is_some());
    if events.is_empty() || !keyed || may_be_new(events) != events.len() as i64 {
        return Ok(None);
    }
    let placed: Vec<Event> = events
        .iter()
        .cloned()
        .zip(1..)
        .map(|(e, i)| e.stored(i))
        .collect();
    let parties = super::writer::LastParty::last_of_each(touches);
    let Some(last) = super::json_rows::append_at_once_pg(db, &placed, &parties, now_ms()).await?
    else {
        return Ok(None);
    };
    let before = last - placed.len() as i64;
    let stored: Vec<Event> = placed
        .into_iter()
        .map(|mut e| {
            e.sequence += before;
            e
        })
        .collect();
    let items = stored
        .iter()
        .map(|e| Appended {
            seq: e.sequence,
            duplicate: false,
        })
        .collect();
    Ok(Some(AppendResult { items, stored }))
}

/// How many of `events` are new unless their key was stored before: those without a key and
/// the first of each key.
fn may_be_new(events: &[NewEvent]) -> i64 {
    let mut keys = std::collections::HashSet::new();
    let n = events
        .iter()
        .filter(|e| e.dedupe_key.as_deref().is_none_or(|k| keys.insert(k)))
        .count();
    n as i64
}

/// Sets the counter to `last` (PostgreSQL: numbers taken in this transaction and not used
/// given back; the transaction holds the counter's row lock).
async fn set_counter(tx: &DatabaseTransaction, last: i64) -> Result<(), DbErr> {
    let stmt = Query::update()
        .table(event_seq::Entity)
        .value(event_seq::Column::Last, last)
        .and_where(Expr::col(event_seq::Column::Id).eq(1i64))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Takes `n` sequence numbers with ONE statement; returns the last of them.
async fn take_sequences(tx: &DatabaseTransaction, n: i64) -> Result<i64, DbErr> {
    let next = Expr::col(event_seq::Column::Last).add(n);
    if tx.get_database_backend() == DbBackend::MySql {
        // No UPDATE … RETURNING on MySQL / MariaDB: `LAST_INSERT_ID(expr)` stores the new value
        // and the server returns it with the UPDATE's result (no second round trip).
        let stmt = Query::update()
            .table(event_seq::Entity)
            .value(
                event_seq::Column::Last,
                Func::cust("LAST_INSERT_ID").arg(next),
            )
            .and_where(Expr::col(event_seq::Column::Id).eq(1i64))
            .to_owned();
        let res = tx.execute(&stmt).await?;
        if res.rows_affected() != 1 {
            return Err(DbErr::RecordNotFound("event_seq row 1 is missing".into()));
        }
        return i64::try_from(res.last_insert_id())
            .map_err(|_| DbErr::Custom("event_seq.last is out of range".into()));
    }
    let stmt = Query::update()
        .table(event_seq::Entity)
        .value(event_seq::Column::Last, next)
        .and_where(Expr::col(event_seq::Column::Id).eq(1i64))
        .returning_col(event_seq::Column::Last)
        .to_owned();
    let row = tx
        .query_one(&stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("event_seq row 1 is missing".into()))?;
    row.try_get::<i64>("", "last")
}

/// The counter as this transaction sees it (after its own appends: the last one it took).
/// 0 in a batch's write: its events are appended (and published) by the batch.
pub(super) async fn counter_in(tx: &DatabaseTransaction) -> Result<i64, DbErr> {
    if super::deferred::in_batch() {
        return Ok(0);
    }
    Ok(event_seq::Entity::find_by_id(1i64)
        .one(tx)
        .await?
        .map(|m| m.last)
        .unwrap_or(0))
}

fn row(e: &Event, created: Millis) -> event::ActiveModel {
    event::ActiveModel {
        seq: Set(e.sequence),
        kind: Set(e.kind.clone()),
        tenant: Set(e.tenant.clone()),
        binding_id: Set(e.binding_id.clone()),
        pool_key: Set(e.pool_key.clone()),
        provider: Set(e.provider.map(|p| p.as_str().to_owned())),
        customer_bind_id: Set(e.customer_bind_id.clone()),
        customer_user_id: Set(e.customer_user_id.clone()),
        ext: Set(e.ext.clone()),
        out_id: Set(e.out_id.clone()),
        call_id: Set(e.call_id.clone()),
        caller: Set(e.caller.clone()),
        called: Set(e.called.clone()),
        callee: Set(e.callee.clone()),
        detail_json: Set(e.detail.to_string()),
        occurred_at: Set(e.occurred_at),
        created_at: Set(created),
        dedupe_key: Set(e.dedupe_key.clone()),
    }
}

/// A lifecycle event from a binding row (inside a write transaction, where there is no domain
/// `Binding` at hand). Same content as `NewEvent::for_binding`.
pub(super) fn for_row(kind: &str, m: &binding::Model, now: Millis) -> NewEvent {
    NewEvent {
        kind: kind.to_owned(),
        tenant: m.tenant.clone(),
        binding_id: Some(m.id.clone()),
        pool_key: m.pool_key.clone(),
        provider: Provider::parse(&m.provider),
        customer_bind_id: m.customer_bind_id.clone(),
        customer_user_id: m.customer_user_id.clone(),
        ext: m.ext.clone(),
        out_id: m.out_id.clone(),
        call_id: String::new(),
        caller: String::new(),
        called: String::new(),
        callee: String::new(),
        detail: binding_detail(
            &m.mode,
            &m.state,
            &m.number_x,
            m.number_y.as_deref(),
            m.extension.as_deref(),
            m.expire_at,
        ),
        occurred_at: now,
        dedupe_key: None,
    }
}

/// Appends one lifecycle event of `m`; returns its sequence. In a batch's write the event is
/// left for the end of the batch (see `deferred`) and this returns 0: the batch publishes it
/// after its commit, before it answers the write.
pub(super) async fn append_for_row(
    tx: &DatabaseTransaction,
    kind: &str,
    m: &binding::Model,
    now: Millis,
) -> Result<i64, DbErr> {
    let mut evs = vec![for_row(kind, m, now)];
    if super::deferred::defer(&mut evs) {
        return Ok(0);
    }
    let r = append_events(tx, evs).await?;
    r.last_new()
        .ok_or_else(|| DbErr::Custom("an event without a dedupe key was not stored".into()))
}

fn to_event(m: event::Model) -> Result<Event, DomainError> {
    let detail = serde_json::from_str(&m.detail_json).map_err(|e| {
        DomainError::Internal(format!("stored event {} has invalid detail: {e}", m.seq))
    })?;
    // NULL is "no provider" (a softswitch call without a binding); anything else must parse.
    let provider = match m.provider.as_deref() {
        None => None,
        Some(p) => Some(Provider::parse(p).ok_or_else(|| {
            DomainError::Internal(format!(
                "stored event {} has an unknown provider {p:?}",
                m.seq
            ))
        })?),
    };
    Ok(Event {
        sequence: m.seq,
        provider,
        kind: m.kind,
        tenant: m.tenant,
        binding_id: m.binding_id,
        pool_key: m.pool_key,
        customer_bind_id: m.customer_bind_id,
        customer_user_id: m.customer_user_id,
        ext: m.ext,
        out_id: m.out_id,
        call_id: m.call_id,
        caller: m.caller,
        called: m.called,
        callee: m.callee,
        detail,
        occurred_at: m.occurred_at,
        dedupe_key: m.dedupe_key,
    })
}

impl Store {
    /// Wakes this process's subscribers. Call it AFTER the transaction that appended `seq`
    /// committed (before, a subscriber could look and find nothing, then sleep until the poll).
    /// The events may have changed routing: the route index serves nothing this process
    /// decided before it until the tailer has applied `seq` (see `route_cache`).
    pub(crate) fn published(&self, seq: i64) {
        publish(&self.routes, &self.events, seq, true);
    }

    /// Wakes subscribers for events that changed no routing (a call-in's own event).
    pub(crate) fn published_call(&self, seq: i64) {
        publish(&self.routes, &self.events, seq, false);
    }

    pub(super) fn subscribe_impl(&self) -> tokio::sync::watch::Receiver<i64> {
        self.events.subscribe()
    }

    pub(super) async fn latest_sequence_impl(&self) -> Result<i64, DomainError> {
        Ok(event_seq::Entity::find_by_id(1i64)
            .one(&self.reads)
            .await?
            .map(|m| m.last)
            .unwrap_or(0))
    }

    pub(super) async fn read_events_impl(
        &self,
        f: &EventFilter,
    ) -> Result<Vec<Event>, DomainError> {
        // Tenant-scoped at the query: another tenant's events are never read.
        let mut q = match &f.tenant {
            Some(t) => event::Entity::find().filter(event::Column::Tenant.eq(t.clone())),
            None => event::Entity::find(),
        }
        .filter(event::Column::Seq.gt(f.after));
        if let Some(hi) = f.up_to {
            q = q.filter(event::Column::Seq.lte(hi));
        }
        if let Some(p) = &f.pool_key {
            q = q.filter(event::Column::PoolKey.eq(p.clone()));
        }
        if let Some(b) = &f.binding_id {
            q = q.filter(event::Column::BindingId.eq(b.clone()));
        }
        if let Some(u) = &f.customer_user_id {
            q = q.filter(event::Column::CustomerUserId.eq(u.clone()));
        }
        if !f.kinds.is_empty() {
            q = q.filter(event::Column::Kind.is_in(f.kinds.clone()));
        }
        q.order_by_asc(event::Column::Seq)
            .limit(f.limit)
            .all(&self.reads)
            .await?
            .into_iter()
            .map(to_event)
            .collect()
    }
}

/// After the commit of `seq`: the route index learns of a routing change (`routing`), this
/// process's subscribers wake. See `Store::published`.
pub(super) fn publish(
    routes: &super::route_cache::RouteCache,
    events: &tokio::sync::watch::Sender<i64>,
    seq: i64,
    routing: bool,
) {
    if routing {
        routes.published(seq);
    }
    events.send_if_modified(|v| {
        if seq > *v {
            *v = seq;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Repository;

    fn ev(kind: &str, key: Option<&str>) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            pool_key: "p".into(),
            call_id: "c1".into(),
            detail: serde_json::json!({"n": 1}),
            occurred_at: 5,
            dedupe_key: key.map(str::to_owned),
            ..Default::default()
        }
    }

    async fn append(s: &Store, events: Vec<NewEvent>) -> AppendResult {
        let tx = s.write_tx().await.expect("tx");
        let r = append_events(&tx, events).await.expect("append");
        tx.commit().await.expect("commit");
        r
    }

    #[tokio::test]
    async fn an_append_past_the_parameter_limits_is_stored_in_one_transaction() {
        let s = Store::connect("sqlite::memory:").await.expect("connect");
        s.migrate().await.expect("migrate");
        // 17 columns × 4,000 rows = 68,000 parameters: past SQLite's 32,766 and PostgreSQL's
        // 65,535 in one statement. SQLite takes them as one JSON parameter (`json_rows`);
        // PostgreSQL's and MySQL's chunks are exercised on their databases by
        // `webhooks::batches::a_one_mib_batch_of_the_smallest_receipts_…` (50,461 events).
        let n = 4_000;
        let keyed = |i: usize| ev("call.hangup", Some(&format!("k{i}")));
        let first = append(&s, (0..n).map(keyed).collect()).await;
        assert_eq!(first.items.len(), n);
        assert!(first.items.iter().all(|a| !a.duplicate));
        assert_eq!(first.last_new(), Some(n as i64));
        // Re-sent with as many new ones: the stored half is found, the new half appended.
        let again = append(&s, (0..2 * n).map(keyed).collect()).await;
        assert_eq!(again.items.iter().filter(|a| a.duplicate).count(), n);
        assert_eq!(
            again.items[n - 1],
            Appended {
                seq: n as i64,
                duplicate: true
            }
        );
        assert_eq!(
            again.items[n],
            Appended {
                seq: n as i64 + 1,
                duplicate: false
            }
        );
        assert_eq!(s.latest_sequence().await.expect("latest"), 2 * n as i64);
    }

    /// What an append hands over (`AppendResult::stored`, given to this process's tailer
    /// instead of a read of the log) is what the log reads back — details with floats
    /// included: the default float parser lands one unit off for ~30 % of random f64 (hence
    /// serde_json's `float_roundtrip`).
    #[tokio::test]
    async fn stored_events_are_what_the_log_reads_back_floats_included() {
        let s = Store::connect("sqlite::memory:").await.expect("connect");
        s.migrate().await.expect("migrate");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let events: Vec<NewEvent> = (0..200)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let f = Some(f64::from_bits(x))
                    .filter(|f| f.is_finite())
                    .unwrap_or(0.5);
                let mut e = ev("call.hangup", Some(&format!("f{i}")));
                e.detail = serde_json::json!({"raw": {"fee": f, "n": i}});
                e
            })
            .collect();
        let r = append(&s, events).await;
        let read = s
            .read_events(&EventFilter {
                after: 0,
                limit: 1_000,
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(r.stored.len(), 200);
        assert!(r.stored == read, "handed over and read back differ");
    }

    #[tokio::test]
    async fn dedupe_keys_store_once_and_return_the_stored_sequence() {
        let s = Store::connect("sqlite::memory:").await.expect("connect");
        s.migrate().await.expect("migrate");
        let first = append(
            &s,
            vec![
                ev("call.ringing", Some("k1")),
                ev("call.incoming", None),
                ev("call.ringing", Some("k1")),
            ],
        )
        .await;
        let dup = |seq| Appended {
            seq,
            duplicate: true,
        };
        let new = |seq| Appended {
            seq,
            duplicate: false,
        };
        assert_eq!(first.items, [new(1), new(2), dup(1)]);
        assert_eq!(first.last_new(), Some(2));

        let again = append(&s, vec![ev("call.ringing", Some("k1"))]).await;
        assert_eq!(again.items, [dup(1)]);
        assert_eq!(again.last_new(), None);
        assert_eq!(s.latest_sequence().await.expect("latest"), 2, "no hole");

        let mixed = append(
            &s,
            vec![
                ev("call.hangup", Some("k2")),
                ev("call.ringing", Some("k1")),
            ],
        )
        .await;
        assert_eq!(mixed.items, [new(3), dup(1)]);
        let all = s
            .read_events(&EventFilter {
                tenant: None,
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(
            all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(all[0].detail, serde_json::json!({"n": 1}));
    }
}
