//! The bind use cases across providers. Local pools go straight to the repository (the database
//! allocates). Carrier pools follow reserve -> call upstream -> finalise, so that the mirror and
//! the carrier never disagree once a bind has returned:
//!
//! 1. **Reserve**: a PENDING binding row claims `customer_bind_id` (a concurrent or repeated
//!    request replays it instead of binding upstream again). Committed before the call.
//! 2. **Call** the carrier with a deadline.
//! 3. **Success** -> the row becomes the active mirror (carrier ids and numbers).
//!    **Definite failure** (the carrier answered, or the request never left) -> the row is deleted;
//!    nothing exists anywhere. **Unknown outcome** (sent, no answer) -> the row stays PENDING and
//!    the client gets UNAVAILABLE `UPSTREAM_OUTCOME_UNKNOWN`; the reconciler settles it:
//!    NXCloud de-duplicates binds by `customerBindId`, so the same bind is re-sent until a definite
//!    answer (success -> active mirror, failure -> row deleted). Aliyun does not de-duplicate and
//!    offers no lookup by request, so an Aliyun bind is never re-sent: the row keeps the
//!    `customer_bind_id` reserved (a retry cannot create a second upstream binding) until the
//!    requested expiration, when any upstream binding has expired too, and is then deleted.

use std::{collections::HashMap, sync::Arc};

use super::binding::{
    AxnBind, Binding, BindingRef, BindingState, BindingUpdate, Millis, Provider, XybBind,
};
use super::error::{DomainError, reason};
use super::provider::{Carrier, Outcome, UpstreamAxn, UpstreamBinding, UpstreamRef, UpstreamXyb};
use super::repo::{Repository, Reservation};

/// Carrier adapters by pool key.
pub type Carriers = Arc<HashMap<String, Arc<dyn Carrier>>>;

type R<T> = Result<T, DomainError>;

pub struct Binder<Repo> {
    repo: Arc<Repo>,
    carriers: Carriers,
}

impl<Repo> Clone for Binder<Repo> {
    fn clone(&self) -> Self {
        Self {
            repo: self.repo.clone(),
            carriers: self.carriers.clone(),
        }
    }
}

fn unsupported(msg: String) -> DomainError {
    DomainError::FailedPrecondition {
        reason: reason::PROVIDER_NOT_SUPPORTED,
        message: msg,
    }
}

impl<Repo: Repository> Binder<Repo> {
    pub fn new(repo: Arc<Repo>, carriers: Carriers) -> Self {
        Self { repo, carriers }
    }

    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    fn carrier(&self, pool_key: &str) -> R<Arc<dyn Carrier>> {
        self.carriers.get(pool_key).cloned().ok_or_else(|| {
            DomainError::Internal(format!(
                "pool {pool_key:?} has no configured carrier adapter"
            ))
        })
    }

    pub async fn bind_xyb(&self, cmd: &XybBind, now: Millis) -> R<(Binding, bool)> {
        let pool = self.repo.get_pool(&cmd.pool_key).await?;
        match pool.provider {
            Provider::Local => self.repo.bind_xyb(cmd, now).await,
            Provider::Aliyun => Err(unsupported(format!(
                "pool {:?} is an Aliyun pool; Aliyun offers no XYB binding (use BindAxnExtension)",
                pool.pool_key
            ))),
            Provider::Nxcloud => {
                let carrier = self.carrier(&pool.pool_key)?;
                let res = Reservation::xyb(cmd, now);
                let up = UpstreamXyb {
                    // Our binding id, not the client's customer_bind_id: unique across tenants and
                    // stable across the reconciler's re-sends (NXCloud de-duplicates on it).
                    customer_bind_id: res.binding.id.clone(),
                    phone_b: cmd.phone_b.as_str().to_owned(),
                    number_x: cmd.number_x.as_ref().map(|n| n.as_str().to_owned()),
                    number_y: cmd.number_y.as_ref().map(|n| n.as_str().to_owned()),
                    iso2_x: cmd.iso2_x.clone(),
                    iso2_y: cmd.iso2_y.clone(),
                    delayed_y: cmd.delayed_y,
                    bind_expire_seconds: cmd.bind_expire_seconds,
                    bind_strategy: cmd.bind_strategy,
                    call_in_expire_seconds: cmd.call_in_expire_seconds,
                    call_in_strategy: cmd.call_in_strategy,
                    customer_user_id: cmd.customer_user_id.clone(),
                    recording: cmd.recording,
                    ext: cmd.ext.clone(),
                };
                let request = UpstreamRequest::Xyb(up);
                self.carrier_bind(res, request, carrier, now).await
            }
        }
    }

    pub async fn bind_axn(&self, cmd: &AxnBind, now: Millis) -> R<(Binding, bool)> {
        let pool = self.repo.get_pool(&cmd.pool_key).await?;
        if pool.provider == Provider::Local {
            return self.repo.bind_axn(cmd, now).await;
        }
        if pool.provider == Provider::Nxcloud && cmd.extension.is_some() {
            return Err(DomainError::invalid(
                reason::EXTENSION_ILLEGAL,
                "extension",
                "NXCloud assigns the 4-digit extension itself; leave extension empty on NXCloud pools",
            ));
        }
        let carrier = self.carrier(&pool.pool_key)?;
        let res = Reservation::axn(cmd, now);
        let up = UpstreamAxn {
            // Our binding id, not the client's customer_bind_id: unique across tenants and
            // stable across the reconciler's re-sends (NXCloud de-duplicates on it).
            customer_bind_id: res.binding.id.clone(),
            phone_a: cmd.phone_a.as_str().to_owned(),
            phone_b: cmd.phone_b.as_ref().map(|n| n.as_str().to_owned()),
            extension: cmd.extension.as_ref().map(|e| e.as_str().to_owned()),
            number_x: cmd.number_x.as_ref().map(|n| n.as_str().to_owned()),
            expect_city: cmd.expect_city.clone(),
            expire_at: cmd.expire_at,
            expire_seconds: ((cmd.expire_at - now) / 1000).max(60),
            recording: cmd.recording,
            out_id: cmd.out_id.clone(),
            ext: cmd.ext.clone(),
        };
        self.carrier_bind(res, UpstreamRequest::Axn(up), carrier, now)
            .await
    }

    async fn carrier_bind(
        &self,
        res: Reservation,
        request: UpstreamRequest,
        carrier: Arc<dyn Carrier>,
        now: Millis,
    ) -> R<(Binding, bool)> {
        let id = res.binding.id.clone();
        if let Some(replay) = self.repo.reserve(&res, &request.to_json(), now).await? {
            return Ok((replay, true));
        }
        let started = std::time::Instant::now();
        let sent = request.send(carrier.as_ref()).await;
        // The call may have taken most of its deadline: stamp what follows with the time now.
        let now = now + started.elapsed().as_millis() as Millis;
        match sent {
            Ok(up) => Ok((self.settle(&id, &up, carrier.as_ref(), now).await?, false)),
            Err(e) if e.outcome == Outcome::Unknown => {
                self.repo.mark_unknown(&id, now).await?;
                tracing::warn!(binding = %id, provider = e.provider, code = %e.code,
                    "carrier bind outcome unknown; kept PENDING for reconciliation");
                Err(DomainError::Upstream(e))
            }
            Err(e) => {
                self.repo.release(&id).await?;
                Err(DomainError::Upstream(e))
            }
        }
    }

    /// Settles PENDING carrier binds whose outcome was unknown (see the module docs).
    /// Returns how many it settled.
    pub async fn reconcile(&self, now: Millis, older_than_ms: Millis) -> R<u64> {
        let mut settled = 0;
        for (b, request_json) in self.repo.pending(now - older_than_ms, 100).await? {
            let Ok(carrier) = self.carrier(&b.pool_key) else {
                continue;
            };
            match b.provider {
                Provider::Nxcloud => {
                    let request = match UpstreamRequest::from_json(&request_json) {
                        Ok(r) => r,
                        Err(e) => {
                            // Not released: the bind may exist upstream, and guessing the
                            // request would bind something else. An operator must look.
                            tracing::error!(binding = %b.id, error = %e, "pending carrier bind cannot be re-sent; left pending");
                            continue;
                        }
                    };
                    if !self.repo.claim_pending(&b.id, b.updated_at, now).await? {
                        continue; // another replica is on it
                    }
                    match request.send(carrier.as_ref()).await {
                        Ok(up) => {
                            if self.settle(&b.id, &up, carrier.as_ref(), now).await.is_ok() {
                                settled += 1;
                            }
                        }
                        Err(e) if e.outcome == Outcome::Unknown => {}
                        Err(_) => {
                            self.repo.release(&b.id).await?;
                            settled += 1;
                        }
                    }
                }
                Provider::Aliyun | Provider::Local => {
                    if b.expire_at <= now {
                        self.repo.release(&b.id).await?;
                        settled += 1;
                    }
                }
            }
        }
        Ok(settled)
    }

    /// Mirrors a binding the carrier made. If the mirror cannot be written (the reservation was
    /// settled concurrently, or the database failed), the upstream binding is unbound again, so
    /// no binding is left at the carrier without a mirror.
    async fn settle(
        &self,
        id: &str,
        up: &UpstreamBinding,
        carrier: &dyn Carrier,
        now: Millis,
    ) -> R<Binding> {
        match self.repo.finalize(id, up, now).await {
            Ok(b) => Ok(b),
            Err(e) => {
                let r = UpstreamRef {
                    provider_binding_id: up.provider_binding_id.clone(),
                    number_x: up.number_x.clone(),
                };
                match carrier.unbind(&r).await {
                    Ok(()) => {
                        tracing::warn!(binding = %id, error = %e, "mirror not written; upstream binding undone");
                        let _ = self.repo.release(id).await;
                    }
                    Err(ue) => tracing::error!(binding = %id, error = %e, unbind_error = %ue,
                        "mirror not written and upstream unbind failed; left PENDING for the reconciler"),
                }
                Err(e)
            }
        }
    }

    pub async fn unbind(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        let b = self.repo.get_binding(r, now).await?;
        if b.provider != Provider::Local && b.state.is_active() {
            let carrier = self.carrier(&b.pool_key)?;
            let up = UpstreamRef {
                provider_binding_id: b.provider_binding_id.clone(),
                number_x: b.number_x.clone(),
            };
            match carrier.unbind(&up).await {
                Ok(()) => {}
                // Already gone upstream (expired there, or an earlier unbind whose answer was lost).
                Err(e) if e.class == super::provider::FailureClass::NotFound => {}
                Err(e) => return Err(DomainError::Upstream(e)),
            }
        }
        self.repo.unbind(r, now).await
    }

    pub async fn update(&self, r: &BindingRef, u: &BindingUpdate, now: Millis) -> R<Binding> {
        let b = self.repo.get_binding(r, now).await?;
        if b.provider != Provider::Local && b.state.is_active() {
            if u.phone_b.is_some() || u.recording.is_some() || u.out_id.is_some() {
                return Err(unsupported(format!(
                    "on {} pools only expire_time, customer_user_id and ext can be updated",
                    b.provider.as_str()
                )));
            }
            if let Some(expire_at) = u.expire_at {
                if b.provider == Provider::Nxcloud {
                    return Err(unsupported(
                        "NXCloud offers no expiry update; unbind and bind again".into(),
                    ));
                }
                let carrier = self.carrier(&b.pool_key)?;
                let up = UpstreamRef {
                    provider_binding_id: b.provider_binding_id.clone(),
                    number_x: b.number_x.clone(),
                };
                carrier
                    .update_expire(&up, expire_at)
                    .await
                    .map_err(DomainError::Upstream)?;
            }
        }
        self.repo.update_binding(r, u, now).await
    }
}

/// The upstream request of a reservation, stored with it so the reconciler can re-send it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum UpstreamRequest {
    Xyb(UpstreamXyb),
    Axn(UpstreamAxn),
}

impl UpstreamRequest {
    async fn send(
        &self,
        c: &dyn Carrier,
    ) -> Result<UpstreamBinding, super::provider::ProviderError> {
        match self {
            UpstreamRequest::Xyb(r) => c.bind_xyb(r).await,
            UpstreamRequest::Axn(r) => c.bind_axn_extension(r).await,
        }
    }

    /// The stored form (the reconciler re-sends it). Field names are the struct fields'; the
    /// strategies are stored as their NXCloud integers.
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an upstream request always serialises")
    }

    /// Decodes a stored request strictly: a missing or mistyped field is an error, never a
    /// default, so a corrupt row cannot be re-sent as a different bind.
    fn from_json(s: &str) -> Result<Self, String> {
        // Position and kind only: serde's message can quote the offending value, and this
        // request holds real phone numbers (the error is logged).
        serde_json::from_str(s).map_err(|e| {
            format!(
                "stored upstream request is corrupt ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }
}

impl Reservation {
    fn xyb(cmd: &XybBind, now: Millis) -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        Reservation {
            binding: cmd.draft(id, Provider::Nxcloud, BindingState::Pending, now),
            tenant: cmd.tenant.clone(),
            fingerprint: cmd.fingerprint(),
        }
    }

    fn axn(cmd: &AxnBind, now: Millis) -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        Reservation {
            // The provider is taken from the pool by the repository.
            binding: cmd.draft(id, Provider::Local, BindingState::Pending, now),
            tenant: cmd.tenant.clone(),
            fingerprint: cmd.fingerprint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamRequest;

    /// The form stored before the serde derive (hand-written JSON) still decodes.
    const STORED_XYB: &str = r#"{"mode":"xyb","customer_bind_id":"01a2","phone_b":"85264654798",
        "number_x":null,"number_y":null,"iso2_x":"HK","iso2_y":null,"delayed_y":false,
        "bind_expire_seconds":3600,"bind_strategy":1,"call_in_expire_seconds":600,
        "call_in_strategy":2,"customer_user_id":"u","recording":true,"ext":"e"}"#;

    #[test]
    fn stored_requests_round_trip_and_decode_strictly() {
        let r = UpstreamRequest::from_json(STORED_XYB).expect("stored form decodes");
        let again = UpstreamRequest::from_json(&r.to_json()).expect("round trip");
        assert_eq!(format!("{r:?}"), format!("{again:?}"));
        // A mistyped phone number is reported without its digits (the error is logged).
        let typed = STORED_XYB.replace(r#""85264654798""#, "85264654798");
        let e = UpstreamRequest::from_json(&typed).unwrap_err();
        assert!(!e.contains("85264654798"), "{e}");
        for (corrupt, why) in [
            (
                STORED_XYB.replace(r#""bind_strategy":1"#, r#""bind_strategy":9"#),
                "strategy",
            ),
            (
                STORED_XYB.replace(r#""recording":true,"#, ""),
                "missing field",
            ),
            (
                STORED_XYB.replace(r#""mode":"xyb""#, r#""mode":"axb""#),
                "mode",
            ),
            (STORED_XYB.replace("3600", "\"3600\""), "type"),
            ("not json".to_owned(), "syntax"),
        ] {
            assert!(
                UpstreamRequest::from_json(&corrupt).is_err(),
                "{why}: {corrupt}"
            );
        }
    }
}
