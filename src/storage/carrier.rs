//! Mirrors of carrier bindings: PENDING reservations, finalisation, release, reconciliation.

use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use super::entities::binding;
use super::{Store, TxError, convert, group_tx, is_unique_violation};
use crate::domain::{
    Binding, BindingMode, BindingState, DomainError, Millis,
    provider::{FailureClass, Outcome, ProviderError, UpstreamBinding},
    repo::Reservation,
};

type R<T> = Result<T, DomainError>;

/// A carrier bind in flight.
const PENDING: &str = "pending";
/// A carrier bind whose call returned without a definite outcome: the reconciler's work.
const UNKNOWN: &str = "unknown";
/// A PENDING row this old lost its process mid-call (crash); the reconciler takes it over.
const ABANDONED_AFTER_MS: Millis = 5 * 60 * 1000;

impl Store {
    /// What an existing row with the same `customer_bind_id` means for a new carrier bind.
    fn answer_existing(
        &self,
        existing: binding::Model,
        res: &Reservation,
        now: Millis,
    ) -> R<Option<Binding>> {
        if existing.fingerprint != res.fingerprint {
            return Err(DomainError::CustomerBindIdConflict(
                existing.customer_bind_id.unwrap_or_default(),
            ));
        }
        if existing.state == PENDING || existing.state == UNKNOWN {
            return Err(DomainError::Upstream(ProviderError {
                provider: "gateway",
                class: FailureClass::Unavailable,
                outcome: Outcome::Unknown,
                code: "pending".into(),
                message: "an earlier bind with this customer_bind_id is still being settled with the carrier; retry later"
                    .into(),
                retry_after: Some(std::time::Duration::from_secs(2)),
            }));
        }
        Ok(Some(convert::binding(existing, now)?))
    }

    pub(super) async fn reserve_impl(
        &self,
        res: &Reservation,
        upstream_request: &str,
        now: Millis,
    ) -> R<Option<Binding>> {
        let pool = self
            .pool_for_tenant(&res.binding.pool_key, &res.tenant)
            .await?;
        let b = &res.binding;
        if let Some(cb) = &b.customer_bind_id
            && let Some(existing) = self.find_by_customer(&self.db, &res.tenant, cb).await?
        {
            return self.answer_existing(existing, res, now);
        }
        let row = convert::new_row(
            b,
            PENDING,
            &res.tenant,
            &pool,
            &res.fingerprint,
            Some(upstream_request.to_owned()),
        );
        let inserted = group_tx!(self, [row], |_this, tx| {
            binding::Entity::insert(row.clone())
                .exec_without_returning(&tx)
                .await?;
            Ok(())
        });
        match inserted {
            Ok(()) => Ok(None),
            Err(TxError::Db(e)) if is_unique_violation(&e) => {
                let existing = self
                    .find_by_customer(
                        &self.db,
                        &res.tenant,
                        b.customer_bind_id.as_deref().unwrap_or_default(),
                    )
                    .await?
                    .ok_or_else(|| {
                        DomainError::Internal(format!("unique violation without a winner: {e}"))
                    })?;
                self.answer_existing(existing, res, now)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn finalize_impl(
        &self,
        id: &str,
        up: &UpstreamBinding,
        now: Millis,
    ) -> R<Binding> {
        let row = binding::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(DomainError::BindingNotFound)?;
        let mode = BindingMode::parse(&row.mode)
            .ok_or_else(|| DomainError::Internal("bad mode".into()))?;
        let state = match mode {
            BindingMode::Xyb => BindingState::Xyb,
            BindingMode::AxnExtension => BindingState::Axn,
        };
        binding::Entity::update_many()
            .col_expr(binding::Column::State, Expr::value(state.as_str()))
            .col_expr(binding::Column::Active, Expr::value(1i16))
            .col_expr(binding::Column::NumberX, Expr::value(up.number_x.clone()))
            .col_expr(binding::Column::NumberY, Expr::value(up.number_y.clone()))
            .col_expr(
                binding::Column::Extension,
                Expr::value(up.extension.clone()),
            )
            .col_expr(
                binding::Column::ProviderBindingId,
                Expr::value(up.provider_binding_id.clone()),
            )
            .col_expr(
                binding::Column::UpstreamRequest,
                Expr::value(Option::<String>::None),
            )
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(id))
            .filter(binding::Column::State.is_in([PENDING, UNKNOWN]))
            .exec(&self.db)
            .await?;
        // Another replica's reconciler may have released (or finalised) it meanwhile: only a
        // row that now mirrors exactly this upstream binding counts.
        let row = binding::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?;
        match row {
            Some(r) if r.active == 1 && r.provider_binding_id == up.provider_binding_id => {
                convert::binding(r, now)
            }
            _ => Err(DomainError::FailedPrecondition {
                reason: crate::domain::error::reason::BINDING_ENDED,
                message: "the reservation was settled concurrently".into(),
            }),
        }
    }

    /// Takes a reservation for one reconciliation attempt: true if `updated_at` was still
    /// `seen` (so no other replica's reconciler took it since).
    pub(super) async fn claim_pending_impl(&self, id: &str, seen: Millis, now: Millis) -> R<bool> {
        let done = binding::Entity::update_many()
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(id))
            .filter(binding::Column::State.is_in([PENDING, UNKNOWN]))
            .filter(binding::Column::UpdatedAt.eq(seen))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(done == 1)
    }

    pub(super) async fn release_impl(&self, id: &str) -> R<()> {
        binding::Entity::delete_many()
            .filter(binding::Column::Id.eq(id))
            .filter(binding::Column::State.is_in([PENDING, UNKNOWN]))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub(super) async fn mark_unknown_impl(&self, id: &str, now: Millis) -> R<()> {
        binding::Entity::update_many()
            .col_expr(binding::Column::State, Expr::value(UNKNOWN))
            .col_expr(binding::Column::UpdatedAt, Expr::value(now))
            .filter(binding::Column::Id.eq(id))
            .filter(binding::Column::State.eq(PENDING))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Reservations to reconcile: outcome unknown since before `before`, or in flight for so
    /// long that their process must have died.
    pub(super) async fn pending_impl(
        &self,
        before: Millis,
        limit: u64,
    ) -> R<Vec<(Binding, String)>> {
        binding::Entity::find()
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(binding::Column::State.eq(UNKNOWN))
                            .add(binding::Column::UpdatedAt.lt(before)),
                    )
                    .add(
                        Condition::all()
                            .add(binding::Column::State.eq(PENDING))
                            .add(binding::Column::CreatedAt.lt(before - ABANDONED_AFTER_MS)),
                    ),
            )
            .order_by_asc(binding::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                let req = m.upstream_request.clone().unwrap_or_default();
                Ok((convert::binding(m, before)?, req))
            })
            .collect()
    }
}
