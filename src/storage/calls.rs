//! Call-in routing for local pools: indexed lookups (the route's unique index, the number's
//! primary key) and, on an XYB binding's first call-in, its conversion to AXYB — all in one
//! short write transaction. Never a scan, never a carrier call.

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};

use super::bindings::{caller_key, ext_key};
use super::entities::{binding, event, number, pool, route};
use super::events::{self, append_events};
use super::route_cache::{Hit, Trace};
use super::writer::LastParty;
use super::{Store, TxError, convert, deferred, group_tx};
use crate::domain::{
    Binding, BindingState, CallIn, Decision, DomainError, ExpireStrategy, Millis, NewEvent,
    NoBindingReason, call::CallEventKind, event::BINDING_CONVERTED,
};

type T<V> = Result<V, TxError>;

impl Store {
    pub(super) async fn call_in_impl(
        &self,
        c: &CallIn,
        now: Millis,
    ) -> Result<(Decision, i64), DomainError> {
        let ext = c.extension.as_ref().map(|x| x.as_str());
        if let Some(hit) = self.routes.lookup(
            c.called.as_str(),
            c.caller.as_str(),
            ext,
            now,
            !self.is_db_up(),
        ) && let Some(answer) = self.routed_from_memory(c, hit, now).await?
        {
            return Ok(answer);
        }
        let key = (c.called.as_str(), c.caller.as_str(), ext);
        let ticket = self.routes.ticket(c.called.as_str(), c.caller.as_str());
        for _ in 0..3 {
            let res = group_tx!(@events self, [c, now], |this, tx| {
                // A softswitch retrying the same call gets the answer it was given, and the
                // call-in's side effects (conversion, strategy) are not applied twice.
                if let Some((d, seq)) = this.earlier_answer(&tx, &c, now).await? {
                    let mut trace = Trace::default();
                    trace.wrote(); // an old answer: not for the route index
                    return Ok((d, Some((seq, None)), trace));
                }
                let mut out = Vec::new();
                let mut trace = Trace::default();
                let d = this.decide(&tx, &c, now, &mut out, &mut trace).await?;
                out.push(incoming_event(&c, &d, now));
                // In a group-commit batch the events are appended at its end (the counter is
                // held only from there to its commit); their numbers come with the answer.
                if deferred::defer_own(&mut out) {
                    return Ok((d, None, trace));
                }
                let appended = append_events(&tx, out).await?;
                // The call-in event is the last one (a repeated call id: the stored one).
                let seq = appended.items.last().map(|a| a.seq).unwrap_or(0);
                Ok((d, Some((seq, appended.last_new())), trace))
            });
            let res = res.map(|((d, known, trace), deferred)| {
                let (seq, new) = known.unwrap_or_else(|| {
                    let r = events::AppendResult {
                        items: deferred,
                        ..Default::default()
                    };
                    (r.items.last().map(|a| a.seq).unwrap_or(0), r.last_new())
                });
                (d, seq, new, trace)
            });
            match res {
                Ok((d, seq, new, trace)) => {
                    // After the commit: wake this process's subscribers; a decision that
                    // changed routing waits for the tailer to apply it before the index serves
                    // that number again.
                    if let Some(n) = new {
                        if trace.stateful {
                            self.published(n);
                        } else {
                            self.published_call(n);
                        }
                    }
                    let moved = trace.extension.is_some();
                    self.routes.remember(ticket, key, &d, trace);
                    if let (true, Decision::Connect { connect_to, .. }) = (moved, &d) {
                        // The last party moved: A's call-back is decided anew.
                        self.routes.forget_caller(c.called.as_str(), connect_to);
                    }
                    return Ok((d, seq));
                }
                Err(TxError::Retry) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Unavailable(
            "call-in kept racing with concurrent changes; retry".into(),
        ))
    }

    /// A call-in answered by the route index: only its `call.incoming` event is written (in the
    /// next group-commit batch, with every other such event). `None` when the call id was used
    /// before: the database path then answers what it answered then.
    async fn routed_from_memory(
        &self,
        c: &CallIn,
        hit: Hit,
        now: Millis,
    ) -> Result<Option<(Decision, i64)>, DomainError> {
        let (d, touch) = match hit {
            Hit::Plain(d) => (d, None),
            Hit::Extension {
                decision,
                binding_id,
            } => (
                decision,
                Some(LastParty {
                    binding_id,
                    caller: c.caller.as_str().to_owned(),
                }),
            ),
        };
        let moved = touch.is_some();
        let appended = match self
            .append_now(vec![incoming_event(c, &d, now)], touch)
            .await
        {
            Ok(a) => a,
            Err(DomainError::Unavailable(why)) => {
                // The database is unreachable: the call still connects by the route this
                // process knows; its event is not recorded (sequence 0 says so).
                tracing::warn!(error = %why, "call-in routed from memory without its event: database unreachable");
                return Ok(Some((Decision::clone(&d), 0)));
            }
            Err(e) => return Err(e),
        };
        match appended.first() {
            Some(a) if !a.duplicate => {
                if let (true, Decision::Connect { connect_to, .. }) = (moved, d.as_ref()) {
                    // Committed: A's call-back now goes to this caller.
                    self.routes.forget_caller(c.called.as_str(), connect_to);
                }
                self.published_call(a.seq);
                Ok(Some((Decision::clone(&d), a.seq)))
            }
            _ => Ok(None),
        }
    }

    /// The decision recorded for this call id, if the call-in was notified before.
    async fn earlier_answer(
        &self,
        tx: &DatabaseTransaction,
        c: &CallIn,
        now: Millis,
    ) -> T<Option<(Decision, i64)>> {
        let Some(ev) = event::Entity::find()
            .filter(event::Column::DedupeKey.eq(incoming_key(&c.call_id)))
            .one(tx)
            .await?
        else {
            return Ok(None);
        };
        if ev.caller != c.caller.as_str() || ev.called != c.called.as_str() {
            return Err(TxError::Domain(DomainError::invalid(
                crate::domain::error::reason::INVALID_ARGUMENT,
                "call_id",
                "was already used for a call-in with another caller or called number",
            )));
        }
        let detail: serde_json::Value = serde_json::from_str(&ev.detail_json).map_err(|e| {
            DomainError::Internal(format!("stored call-in event {} detail: {e}", ev.seq))
        })?;
        let corrupt = |what: &str| {
            TxError::Domain(DomainError::Internal(format!(
                "stored call-in event {} has no valid {what}",
                ev.seq
            )))
        };
        let binding = match &ev.binding_id {
            Some(id) => self
                .load(tx, id)
                .await?
                .map(|m| convert::binding(m, now))
                .transpose()?,
            None => None,
        };
        let d = match (detail["decision"].as_str(), binding) {
            (Some("connect"), Some(b)) => Decision::Connect {
                connect_to: ev.callee.clone(),
                display: detail["display_number"]
                    .as_str()
                    .ok_or_else(|| corrupt("display_number"))?
                    .to_owned(),
                recording: b.recording,
                binding: b,
            },
            (Some("connect"), None) => return Err(corrupt("binding for its connect decision")),
            (Some("collect_extension"), _) => Decision::CollectExtension,
            (Some("no_binding"), binding) => Decision::NoBinding {
                reason: detail["no_binding_reason"]
                    .as_str()
                    .and_then(NoBindingReason::parse)
                    .ok_or_else(|| corrupt("no_binding_reason"))?,
                binding,
            },
            _ => return Err(corrupt("decision")),
        };
        Ok(Some((d, ev.seq)))
    }

    async fn load(&self, tx: &DatabaseTransaction, id: &str) -> T<Option<binding::Model>> {
        Ok(binding::Entity::find_by_id(id.to_owned()).one(tx).await?)
    }

    async fn route(
        &self,
        tx: &DatabaseTransaction,
        n: &str,
        key: &str,
    ) -> T<Option<binding::Model>> {
        let Some(r) = route::Entity::find()
            .filter(route::Column::Number.eq(n))
            .filter(route::Column::RouteKey.eq(key))
            .one(tx)
            .await?
        else {
            return Ok(None);
        };
        self.load(tx, &r.binding_id).await
    }

    async fn decide(
        &self,
        tx: &DatabaseTransaction,
        c: &CallIn,
        now: Millis,
        out: &mut Vec<NewEvent>,
        tr: &mut Trace,
    ) -> T<Decision> {
        let (caller, called) = (c.caller.as_str(), c.called.as_str());
        // Every live binding the decision rests on bounds how long it may be served from the
        // route index.
        let live = |m: &binding::Model, tr: &mut Trace| {
            let yes = m.active == 1 && m.expire_at > now;
            if yes {
                tr.live_until(m.expire_at);
            }
            yes
        };
        let mut expired: Option<binding::Model> = None;

        // 1. The exact (number, caller) route wins over everything.
        if let Some(m) = self.route(tx, called, &caller_key(caller)).await? {
            if live(&m, tr) {
                return self.routed_by_caller(tx, m, called, caller, now, tr).await;
            }
            expired = Some(m);
        }
        // 2. An extension keyed by the caller.
        if let Some(ext) = &c.extension {
            return Ok(
                match self.route(tx, called, &ext_key(ext.as_str())).await? {
                    Some(m) if live(&m, tr) => {
                        // Its only write is the last party: remembered for any caller without
                        // a route of its own on the number (see `route_cache::Hit`).
                        tr.extension = Some((m.id.clone(), self.callers_on(tx, called).await?));
                        binding::Entity::update_many()
                            .col_expr(binding::Column::LastParty, Expr::value(caller))
                            .filter(binding::Column::Id.eq(m.id.clone()))
                            .exec(tx)
                            .await?;
                        let b = convert::binding(m, now)?;
                        Decision::Connect {
                            connect_to: b.phone_a.clone().unwrap_or_default(),
                            display: b.number_x.clone(),
                            recording: b.recording,
                            binding: b,
                        }
                    }
                    Some(m) => no_binding(NoBindingReason::Expired, Some(m), now)?,
                    None => match self.number(tx, called).await? {
                        None => {
                            // No event announces a number's arrival: not for the index.
                            tr.wrote();
                            no_binding(NoBindingReason::UnknownNumber, None, now)?
                        }
                        Some(_) => no_binding(NoBindingReason::WrongExtension, None, now)?,
                    },
                },
            );
        }
        // 3. The number itself: locked by an XYB binding (first call-in converts it), or carrying
        // extensions (collect them), or neither.
        let Some(n) = self.number(tx, called).await? else {
            tr.wrote(); // an absence no event announces
            let reason = if expired.is_some() {
                NoBindingReason::Expired
            } else {
                NoBindingReason::UnknownNumber
            };
            return no_binding(reason, expired, now);
        };
        if let Some(holder) = &n.locked_by {
            let Some(m) = self.load(tx, holder).await? else {
                return Err(TxError::Retry);
            };
            if !live(&m, tr) {
                tr.wrote();
                self.reap_if_dead(tx, holder, now).await?;
                return no_binding(NoBindingReason::Expired, Some(m), now);
            }
            if m.phone_b.as_deref() == Some(caller) {
                // B calling its own X before any A is known has nowhere to go.
                return no_binding(NoBindingReason::DirectionNotAllowed, Some(m), now);
            }
            tr.wrote();
            return self.convert_xyb(tx, m, caller, now, out).await;
        }
        if n.ext_count > 0 {
            return Ok(Decision::CollectExtension);
        }
        if expired.is_some() {
            return no_binding(NoBindingReason::Expired, expired, now);
        }
        // A pool number with routes for other callers is bound, just not for this one; one
        // with none is not bound at all. The other binding is not disclosed.
        let other = route::Entity::find()
            .filter(route::Column::Number.eq(called))
            .one(tx)
            .await?;
        let reason = match other {
            Some(r) => match self.load(tx, &r.binding_id).await? {
                Some(m) if live(&m, tr) => NoBindingReason::DirectionNotAllowed,
                Some(_) => NoBindingReason::Expired,
                None => NoBindingReason::NotBound,
            },
            None => NoBindingReason::NotBound,
        };
        no_binding(reason, None, now)
    }

    /// The callers with a route of their own on number `n`.
    async fn callers_on(
        &self,
        tx: &DatabaseTransaction,
        n: &str,
    ) -> T<std::collections::HashSet<String>> {
        let keys: Vec<String> = route::Entity::find()
            .select_only()
            .column(route::Column::RouteKey)
            .filter(route::Column::Number.eq(n))
            .filter(route::Column::RouteKey.starts_with(caller_key("")))
            .into_tuple()
            .all(tx)
            .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&caller_key("")).map(str::to_owned))
            .collect())
    }

    async fn number(&self, tx: &DatabaseTransaction, n: &str) -> T<Option<number::Model>> {
        Ok(number::Entity::find()
            .filter(number::Column::Number.eq(n))
            .one(tx)
            .await?)
    }

    /// A live binding found by the (number, caller) route.
    async fn routed_by_caller(
        &self,
        tx: &DatabaseTransaction,
        m: binding::Model,
        called: &str,
        caller: &str,
        now: Millis,
        tr: &mut Trace,
    ) -> T<Decision> {
        let state = BindingState::parse(&m.state).ok_or_else(|| {
            DomainError::Internal(format!(
                "stored binding state {:?} is not recognised",
                m.state
            ))
        })?;
        match state {
            BindingState::Axyb => {
                let m = self.apply_call_in_strategy(tx, m, now, tr).await?;
                let b = convert::binding(m, now)?;
                let (to, display) = if called == b.number_x {
                    (b.phone_b.clone(), b.number_y.clone())
                } else {
                    (b.phone_a.clone(), Some(b.number_x.clone()))
                };
                Ok(Decision::Connect {
                    connect_to: to.unwrap_or_default(),
                    display: display.unwrap_or_default(),
                    recording: b.recording,
                    binding: b,
                })
            }
            BindingState::Axn if m.phone_a.as_deref() == Some(caller) => {
                let target = m.last_party.clone().or_else(|| m.phone_b.clone());
                let b = convert::binding(m, now)?;
                match target {
                    Some(t) => Ok(Decision::Connect {
                        connect_to: t,
                        display: b.number_x.clone(),
                        recording: b.recording,
                        binding: b,
                    }),
                    None => no_binding(NoBindingReason::DirectionNotAllowed, None, now)
                        .map(|d| with_binding(d, b)),
                }
            }
            // Y of an XYB binding whose A is not known yet, or any other mismatch.
            _ => no_binding(NoBindingReason::DirectionNotAllowed, Some(m), now),
        }
    }

    /// Each routed AXYB call moves the expiry by the call-in strategy.
    async fn apply_call_in_strategy(
        &self,
        tx: &DatabaseTransaction,
        mut m: binding::Model,
        now: Millis,
        tr: &mut Trace,
    ) -> T<binding::Model> {
        let strategy = ExpireStrategy::from_i32(m.call_in_strategy).ok_or_else(|| {
            DomainError::Internal(format!(
                "stored call-in strategy {} is not recognised",
                m.call_in_strategy
            ))
        })?;
        let next = strategy.apply(m.expire_at, now, m.call_in_expire_seconds);
        if strategy != ExpireStrategy::Fixed {
            // The expiry moves with every call (or will): each call is a write.
            tr.wrote();
        }
        if next != m.expire_at {
            binding::Entity::update_many()
                .col_expr(binding::Column::ExpireAt, Expr::value(next))
                .col_expr(binding::Column::UpdatedAt, Expr::value(now))
                .filter(binding::Column::Id.eq(m.id.clone()))
                .filter(binding::Column::Active.eq(1))
                .exec(tx)
                .await?;
            m.expire_at = next;
            m.updated_at = now;
        }
        Ok(m)
    }

    /// XYB -> AXYB: the caller becomes A, X's lock is released, routes (X, A) and (Y, B) exist,
    /// a delayed Y is allocated now, the call-in expiry applies.
    async fn convert_xyb(
        &self,
        tx: &DatabaseTransaction,
        m: binding::Model,
        a: &str,
        now: Millis,
        out: &mut Vec<NewEvent>,
    ) -> T<Decision> {
        let expire_at = now + m.call_in_expire_seconds * 1000;
        let won = binding::Entity::update_many()
            .col_expr(
                binding::Column::State,
                Expr::value(BindingState::Axyb.as_str()),
            )
            .col_expr(binding::Column::PhoneA, Expr::value(a))
            .col_expr(binding::Column::ExpireAt, Expr::value(expire_at))
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(m.id.clone()))
            .filter(binding::Column::State.eq(BindingState::Xyb.as_str()))
            .filter(binding::Column::Active.eq(1))
            .exec(tx)
            .await?
            .rows_affected;
        if won == 0 {
            // Another call-in converted it first: re-decide (this caller is not A).
            return Err(TxError::Retry);
        }
        number::Entity::update_many()
            .col_expr(
                number::Column::LockedBy,
                Expr::value(Option::<String>::None),
            )
            .filter(number::Column::Number.eq(m.number_x.clone()))
            .filter(number::Column::LockedBy.eq(m.id.clone()))
            .exec(tx)
            .await?;
        if !self
            .insert_route(tx, &m.number_x, &caller_key(a), &m.id, now)
            .await?
        {
            return Err(TxError::Retry);
        }
        let b_num = m.phone_b.clone().unwrap_or_default();
        let y = match &m.number_y {
            Some(y) => y.clone(),
            None => {
                let pool = pool::Entity::find_by_id(m.pool_id)
                    .one(tx)
                    .await?
                    .ok_or(DomainError::Internal("pool vanished".into()))?;
                match self
                    .share_any_y(tx, &pool, &m.number_x, None, &b_num, &m.id, now)
                    .await?
                {
                    Some(y) => {
                        binding::Entity::update_many()
                            .col_expr(binding::Column::NumberY, Expr::value(y.clone()))
                            .filter(binding::Column::Id.eq(m.id.clone()))
                            .exec(tx)
                            .await?;
                        y
                    }
                    None => {
                        // Undo by failing the transaction: the binding stays XYB with X locked.
                        return Err(TxError::Domain(DomainError::NoAvailableNumber {
                            pool: m.pool_key.clone(),
                            detail: " for the delayed Y".into(),
                        }));
                    }
                }
            }
        };
        let row = self
            .load(tx, &m.id)
            .await?
            .ok_or(DomainError::BindingNotFound)?;
        out.push(events::for_row(BINDING_CONVERTED, &row, now));
        let b = convert::binding(row, now)?;
        Ok(Decision::Connect {
            connect_to: b_num,
            display: y,
            recording: b.recording,
            binding: b,
        })
    }
}

pub(super) fn incoming_key(call_id: &str) -> String {
    format!("grpc|{call_id}|call.incoming|")
}

/// The `call.incoming` event of a call-in, with the decision in its detail.
fn incoming_event(c: &CallIn, d: &Decision, now: Millis) -> NewEvent {
    let b = d.binding();
    let (decision, connect_to, display, why) = match d {
        Decision::Connect {
            connect_to,
            display,
            ..
        } => ("connect", connect_to.as_str(), display.as_str(), None),
        Decision::CollectExtension => ("collect_extension", "", "", None),
        Decision::NoBinding { reason, .. } => ("no_binding", "", "", Some(reason.as_str())),
    };
    // Only the decision goes in the detail (no lifecycle detail built and thrown away: this
    // runs for every call-in, most of them answered from memory).
    let detail = serde_json::json!({
        "decision": decision,
        "display_number": display,
        "no_binding_reason": why,
        "extension": c.extension.as_ref().map(|x| x.as_str()),
    });
    let kind = CallEventKind::Incoming.as_str();
    let mut e = match b {
        Some(b) => NewEvent::about_binding(kind, b, detail, now),
        None => NewEvent {
            kind: kind.to_owned(),
            detail,
            occurred_at: now,
            ..Default::default()
        },
    };
    e.call_id = c.call_id.clone();
    e.caller = c.caller.as_str().to_owned();
    e.called = c.called.as_str().to_owned();
    e.callee = connect_to.to_owned();
    // The same call-in notified twice (softswitch retry) is stored once.
    e.dedupe_key = Some(incoming_key(&c.call_id));
    e
}

fn no_binding(reason: NoBindingReason, m: Option<binding::Model>, now: Millis) -> T<Decision> {
    Ok(Decision::NoBinding {
        reason,
        binding: m.map(|m| convert::binding(m, now)).transpose()?,
    })
}

fn with_binding(d: Decision, b: Binding) -> Decision {
    match d {
        Decision::NoBinding { reason, .. } => Decision::NoBinding {
            reason,
            binding: Some(b),
        },
        other => other,
    }
}
