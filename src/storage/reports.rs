//! Call reports -> events: carrier pushes (NXCloud CDRs, Aliyun receipts) and softswitch
//! reports. Each report is stored once (dedupe key: provider, call id, kind, leg) with the fields
//! of the binding it names, and applied to that binding — all in one transaction, so a push is
//! acknowledged only once it is durable.

mod lookup;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::json;

use super::entities::{binding, event};
use super::events::{self, append_events};
use super::{Store, TxError, group_tx};
use crate::domain::{
    BindingState, CallReport, DomainError, Millis, NewEvent, Provider,
    call::{CallEventKind, ReleaseDirection},
    error::reason,
    event::BINDING_CONVERTED,
};

type T<V> = Result<V, TxError>;

fn detail(r: &CallReport) -> serde_json::Value {
    json!({
        "call_at": r.call_at,
        "ring_at": r.ring_at,
        "answer_at": r.answer_at,
        "end_at": r.end_at,
        "duration_seconds": r.duration_seconds,
        "release_direction": r.release_direction.map(ReleaseDirection::as_str),
        "release_cause": r.release_cause,
        "release_reason": r.release_reason,
        "recording_url": r.recording_url,
        "extension": r.extension,
        "provider_binding_id": r.provider_binding_id,
        "raw": r.raw,
    })
}

impl Store {
    /// The binding a report names (the rules are in `lookup`).
    async fn binding_of(
        &self,
        tx: &DatabaseTransaction,
        r: &CallReport,
    ) -> T<Option<binding::Model>> {
        let named = lookup::bindings_of(tx, std::slice::from_ref(r)).await?;
        Ok(named.of(0).cloned())
    }

    /// Applies a report to a carrier mirror: a call through X of an XYB mirror means the carrier
    /// converted it to AXYB (and released X), so the mirror follows.
    async fn apply(
        &self,
        tx: &DatabaseTransaction,
        r: &CallReport,
        m: &binding::Model,
        now: Millis,
        out: &mut Vec<NewEvent>,
    ) -> T<()> {
        let carrier = r.provider.is_some_and(|p| p != Provider::Local);
        let call = matches!(
            r.kind,
            Some(
                CallEventKind::Incoming
                    | CallEventKind::Hangup
                    | CallEventKind::Answered
                    | CallEventKind::Ringing
            )
        );
        if carrier && call && m.state == BindingState::Xyb.as_str() && m.active == 1 {
            if let Some(a) = &r.caller {
                let done = binding::Entity::update_many()
                    .col_expr(
                        binding::Column::State,
                        Expr::value(BindingState::Axyb.as_str()),
                    )
                    .col_expr(binding::Column::PhoneA, Expr::value(a.clone()))
                    // The carrier's AXYB lives call_in_expire_seconds from the call-in, as ours
                    // do; the push arrives right after the call, so "now" is that moment.
                    .col_expr(
                        binding::Column::ExpireAt,
                        Expr::value(now + m.call_in_expire_seconds * 1000),
                    )
                    .col_expr(binding::Column::UpdatedAt, Expr::value(now))
                    .filter(binding::Column::Id.eq(m.id.clone()))
                    .filter(binding::Column::State.eq(BindingState::Xyb.as_str()))
                    .exec(tx)
                    .await?
                    .rows_affected;
                if done == 1
                    && let Some(row) = binding::Entity::find_by_id(m.id.clone()).one(tx).await?
                {
                    out.push(events::for_row(BINDING_CONVERTED, &row, now));
                }
            }
        }
        Ok(())
    }

    fn report_event(
        r: &CallReport,
        m: Option<&binding::Model>,
        now: Millis,
    ) -> Result<NewEvent, DomainError> {
        let kind = r.kind.unwrap_or(CallEventKind::Hangup);
        let provider = match m {
            Some(m) => Some(Provider::parse(&m.provider).ok_or_else(|| {
                DomainError::Internal(format!(
                    "stored binding provider {:?} is not recognised",
                    m.provider
                ))
            })?),
            None => r.provider,
        };
        Ok(NewEvent {
            kind: kind.as_str().to_owned(),
            tenant: m.map(|m| m.tenant.clone()).unwrap_or_default(),
            binding_id: m.map(|m| m.id.clone()),
            pool_key: m
                .map(|m| m.pool_key.clone())
                .or(r.carrier_pool_key.clone())
                .unwrap_or_default(),
            provider,
            customer_bind_id: m
                .and_then(|m| m.customer_bind_id.clone())
                .or(r.customer_bind_id.clone()),
            customer_user_id: m.map(|m| m.customer_user_id.clone()).unwrap_or_default(),
            ext: m
                .map(|m| m.ext.clone())
                .or(r.ext.clone())
                .unwrap_or_default(),
            out_id: m
                .map(|m| m.out_id.clone())
                .or(r.out_id.clone())
                .unwrap_or_default(),
            call_id: r.call_id.clone(),
            caller: r.caller.clone().unwrap_or_default(),
            called: r.called.clone().unwrap_or_default(),
            callee: r.callee.clone().unwrap_or_default(),
            detail: detail(r),
            occurred_at: r
                .end_at
                .or(r.answer_at)
                .or(r.ring_at)
                .or(r.call_at)
                .unwrap_or(now),
            dedupe_key: Some(r.dedupe_key()),
        })
    }

    pub(super) async fn ingest_reports_impl(
        &self,
        reports: Vec<CallReport>,
        now: Millis,
    ) -> Result<u64, DomainError> {
        let appended = group_tx!(self, [reports, now], |this, tx| {
            // One batched lookup for the whole push, not queries per report (a 1 MiB Aliyun
            // batch names thousands of bindings and has a 700 ms budget).
            let mut named = lookup::bindings_of(&tx, &reports).await?;
            let mut out = Vec::with_capacity(reports.len());
            for (i, r) in reports.iter().enumerate() {
                let m = named.of(i).cloned();
                if let Some(m) = &m {
                    let before = out.len();
                    this.apply(&tx, r, m, now, &mut out).await?;
                    // `apply` changes a row only together with the event saying so; later
                    // reports of this push must see the row as it now is.
                    if out.len() > before
                        && let Some(row) =
                            binding::Entity::find_by_id(m.id.clone()).one(&tx).await?
                    {
                        named.rows.insert(row.id.clone(), row);
                    }
                }
                out.push(Self::report_event(r, m.as_ref(), now)?);
            }
            Ok(append_events(&tx, out).await?)
        })?;
        if let Some(seq) = appended.last_new() {
            self.published(seq);
        }
        Ok(appended.items.iter().filter(|a| !a.duplicate).count() as u64)
    }

    pub(super) async fn report_call_impl(
        &self,
        r: CallReport,
        now: Millis,
    ) -> Result<(i64, bool), DomainError> {
        let appended = group_tx!(self, [r, now], |this, tx| {
            let mut r = r;
            // The softswitch reports calls it notified: the call-in event names the call (and
            // its binding, if it was routed). A call-in answered NO_BINDING has none, and its
            // reports still belong to it.
            let Some(call_in) = event::Entity::find()
                .filter(event::Column::DedupeKey.eq(super::calls::incoming_key(&r.call_id)))
                .one(&tx)
                .await?
            else {
                return Err(TxError::Domain(DomainError::NumberNotFound {
                    reason: reason::CALL_NOT_FOUND,
                    message: "no call-in was notified with this call_id".into(),
                }));
            };
            r.caller.get_or_insert_with(|| call_in.caller.clone());
            r.called.get_or_insert_with(|| call_in.called.clone());
            if r.callee.is_none() && !call_in.callee.is_empty() {
                r.callee = Some(call_in.callee.clone());
            }
            let m = this.binding_of(&tx, &r).await?;
            let mut out = Vec::new();
            if let Some(m) = &m {
                this.apply(&tx, &r, m, now, &mut out).await?;
            }
            out.push(Self::report_event(&r, m.as_ref(), now)?);
            Ok(append_events(&tx, out).await?)
        })?;
        if let Some(seq) = appended.last_new() {
            self.published(seq);
        }
        let last = appended
            .items
            .last()
            .copied()
            .ok_or_else(|| DomainError::Internal("no event appended".into()))?;
        Ok((last.seq, last.duplicate))
    }
}
