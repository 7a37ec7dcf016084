//! Reads and updates of existing bindings.

use super::*;

impl Store {
    // ---- reads and updates ------------------------------------------------------------------

    pub(crate) async fn get_binding_impl(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        convert::binding(self.binding_row(&self.db, r).await?, now)
    }

    pub(crate) async fn list_bindings_impl(
        &self,
        f: &BindingFilter,
        now: Millis,
    ) -> R<Vec<Binding>> {
        let mut q = Self::tenant_scoped(&f.tenant);
        if let Some(p) = &f.pool_key {
            let pool = self.pool_row(&self.db, p).await?;
            q = q.filter(binding::Column::PoolId.eq(pool.id));
        }
        if let Some(u) = &f.customer_user_id {
            q = q.filter(binding::Column::CustomerUserId.eq(u.clone()));
        }
        if let Some(before) = &f.before_id {
            q = q.filter(binding::Column::Id.lt(before.clone()));
        }
        match f.state {
            None => {}
            Some(BindingState::Expired) => {
                q = q.filter(
                    Condition::any()
                        .add(binding::Column::State.eq(BindingState::Expired.as_str()))
                        .add(
                            Condition::all()
                                .add(binding::Column::Active.eq(1))
                                .add(binding::Column::ExpireAt.lte(now)),
                        ),
                )
            }
            Some(s) if s.is_active() => {
                q = q
                    .filter(binding::Column::State.eq(s.as_str()))
                    .filter(binding::Column::ExpireAt.gt(now))
            }
            Some(s) => q = q.filter(binding::Column::State.eq(s.as_str())),
        }
        q.order_by_desc(binding::Column::Id)
            .limit(f.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| convert::binding(m, now))
            .collect()
    }

    pub(crate) async fn update_binding_impl(
        &self,
        r: &BindingRef,
        u: &BindingUpdate,
        now: Millis,
    ) -> R<Binding> {
        let m = self.binding_row(&self.db, r).await?;
        let mode = BindingMode::parse(&m.mode).ok_or(DomainError::Internal("bad mode".into()))?;
        if !(m.active == 1 && m.expire_at > now) {
            return Err(DomainError::FailedPrecondition {
                reason: reason::BINDING_ENDED,
                message: "the binding has ended (expired or unbound) and cannot be updated".into(),
            });
        }
        if u.phone_b.is_some() && mode != BindingMode::AxnExtension {
            return Err(DomainError::FailedPrecondition {
                reason: reason::BIND_CONFLICT,
                message:
                    "phone_b can only be changed on AXN bindings (on XYB it keys the route of Y)"
                        .into(),
            });
        }
        let mut upd = binding::Entity::update_many()
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(m.id.clone()))
            .filter(binding::Column::Active.eq(1))
            .filter(binding::Column::ExpireAt.gt(now));
        if let Some(e) = u.expire_at {
            upd = upd.col_expr(binding::Column::ExpireAt, Expr::value(e));
        }
        if let Some(b) = &u.phone_b {
            upd = upd.col_expr(
                binding::Column::PhoneB,
                Expr::value(b.as_ref().map(|p| p.as_str().to_owned())),
            );
        }
        if let Some(v) = u.recording {
            upd = upd.col_expr(binding::Column::Recording, Expr::value(v));
        }
        if let Some(v) = &u.customer_user_id {
            upd = upd.col_expr(binding::Column::CustomerUserId, Expr::value(v.clone()));
        }
        if let Some(v) = &u.ext {
            upd = upd.col_expr(binding::Column::Ext, Expr::value(v.clone()));
        }
        if let Some(v) = &u.out_id {
            upd = upd.col_expr(binding::Column::OutId, Expr::value(v.clone()));
        }
        // In a transaction since it appends `binding.updated` with the change.
        let (row, seq) = group_tx!(self, [upd, m, now], |_this, tx| {
            if upd.clone().exec(&tx).await?.rows_affected == 0 {
                return Err(DomainError::FailedPrecondition {
                    reason: reason::BINDING_ENDED,
                    message: "the binding ended while it was being updated".into(),
                }
                .into());
            }
            let row = binding::Entity::find_by_id(m.id.clone())
                .one(&tx)
                .await?
                .ok_or(DomainError::BindingNotFound)?;
            let seq = events::append_for_row(&tx, BINDING_UPDATED, &row, now).await?;
            Ok((row, seq))
        })?;
        self.published(seq);
        convert::binding(row, now)
    }
}
