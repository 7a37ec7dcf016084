//! Ending bindings: unbind, expiry (inline reaping and the sweeper), giving numbers back.

use super::*;

impl Store {
    // ---- ending -----------------------------------------------------------------------------

    /// Ends the binding if it is active but past its expiry; true if it did.
    pub(crate) async fn reap_if_dead(
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
    pub(super) async fn reap_expired(
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

    pub(crate) async fn sweep_expired_impl(&self, now: Millis, limit: u64) -> R<u64> {
        let (n, seq) = group_tx!(self, [now, limit], |this, tx| {
            let n = this.reap_expired(&tx, None, now, limit).await?;
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

    pub(crate) async fn unbind_impl(&self, r: &BindingRef, now: Millis) -> R<Binding> {
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

    pub(super) async fn unbind_once(&self, id: &str, now: Millis) -> Result<Binding, TxError> {
        let id = id.to_owned();
        let (row, seq) = group_tx!(self, [id, now], |_this, tx| {
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
}

/// Ends an active binding: state change (conditional on the state it was read in), numbers
/// released, routes removed — all in the caller's transaction. False if someone else changed
/// the binding first.
pub(crate) async fn end_binding(
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
