//! The storage port. `storage::Store` implements it on sea-orm; the gRPC services only see this.

use std::future::Future;

use super::binding::{AxnBind, Binding, BindingFilter, BindingRef, BindingUpdate, Millis, XybBind};
use super::error::DomainError;
use super::event::{Event, EventFilter};
use super::pool::{NewNumber, NumberInfo, NumberState, Pool, PoolStats};
use super::provider::UpstreamBinding;

type R<T> = Result<T, DomainError>;

/// Every write is one database transaction; every invariant of DESIGN.md §3 is enforced by the
/// database itself (unique indexes, conditional updates), so it holds across replicas.
pub trait Repository: Send + Sync + 'static {
    fn create_pool(&self, pool: Pool) -> impl Future<Output = R<Pool>> + Send;
    /// Creates or updates a pool declared in the config file.
    fn upsert_pool(&self, pool: Pool) -> impl Future<Output = R<Pool>> + Send;
    fn list_pools(&self) -> impl Future<Output = R<Vec<Pool>>> + Send;
    fn get_pool(&self, pool_key: &str) -> impl Future<Output = R<Pool>> + Send;
    /// Returns (added, skipped).
    fn add_numbers(
        &self,
        pool_key: &str,
        numbers: Vec<NewNumber>,
    ) -> impl Future<Output = R<(u64, u64)>> + Send;
    fn list_numbers(
        &self,
        pool_key: &str,
        after: Option<String>,
        limit: u64,
    ) -> impl Future<Output = R<Vec<NumberInfo>>> + Send;
    fn set_number_state(
        &self,
        pool_key: &str,
        number: &str,
        state: NumberState,
    ) -> impl Future<Output = R<NumberInfo>> + Send;
    fn pool_stats(&self, pool_key: &str, now: Millis) -> impl Future<Output = R<PoolStats>> + Send;

    /// Returns the binding and whether it was an idempotent replay.
    fn bind_xyb(
        &self,
        cmd: &XybBind,
        now: Millis,
    ) -> impl Future<Output = R<(Binding, bool)>> + Send;
    fn bind_axn(
        &self,
        cmd: &AxnBind,
        now: Millis,
    ) -> impl Future<Output = R<(Binding, bool)>> + Send;
    fn get_binding(&self, r: &BindingRef, now: Millis) -> impl Future<Output = R<Binding>> + Send;
    fn list_bindings(
        &self,
        filter: &BindingFilter,
        now: Millis,
    ) -> impl Future<Output = R<Vec<Binding>>> + Send;
    fn update_binding(
        &self,
        r: &BindingRef,
        update: &BindingUpdate,
        now: Millis,
    ) -> impl Future<Output = R<Binding>> + Send;
    fn unbind(&self, r: &BindingRef, now: Millis) -> impl Future<Output = R<Binding>> + Send;
    /// Ends up to `limit` bindings whose expiry has passed; returns how many it ended.
    fn sweep_expired(&self, now: Millis, limit: u64) -> impl Future<Output = R<u64>> + Send;
    /// Retention: erases the real numbers (A, B, callers) of at most `limit` bindings that
    /// ended at or before `ended_before`, and of their events, plus those of events about no
    /// binding that occurred by then. Returns how many bindings and events were purged.
    fn purge_ended(
        &self,
        ended_before: Millis,
        now: Millis,
        limit: u64,
    ) -> impl Future<Output = R<u64>> + Send;

    /// Events matching `filter`, in sequence order. Every event with a sequence at or below
    /// `latest_sequence()` is committed, so a reader never sees a smaller one appear later.
    fn read_events(&self, filter: &EventFilter) -> impl Future<Output = R<Vec<Event>>> + Send;
    /// The highest sequence committed so far (0 when the log is empty).
    fn latest_sequence(&self) -> impl Future<Output = R<i64>> + Send;
    /// In-process wake-up: changes after this process commits new events (value: the highest
    /// sequence it published). A hint only; events written by other replicas do not move it,
    /// so readers also poll the database.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64>;
    /// Events this process committed that continue the log right after `after` (contiguous,
    /// in order, as `read_events` would give them), taken from memory; empty when the next one
    /// is not at hand (the caller reads the log). Each is given once.
    fn committed_after(&self, _after: i64) -> Vec<Event> {
        Vec::new()
    }
    /// The event tailer read `events` (contiguous, in order) and has scanned up to `up_to`;
    /// `caught_up_at`: a moment such that every event committed before it has now been read
    /// (`None` when the scan has not reached such a moment yet). Keeps the route index coherent
    /// with every replica's writes (see `storage::route_cache`).
    fn observe_log(
        &self,
        _events: &[Event],
        _up_to: i64,
        _caught_up_at: Option<std::time::Instant>,
    ) {
    }

    /// Decides where a call-in to a local pool's number goes (see `storage::calls`).
    /// Returns the decision and the sequence of the `call.incoming` event recorded with it.
    fn call_in(
        &self,
        c: &super::call::CallIn,
        now: Millis,
    ) -> impl Future<Output = R<(super::call::Decision, i64)>> + Send;

    /// Stores carrier/softswitch call reports as events (de-duplicated) and applies them to the
    /// bindings they name, in one transaction. Returns how many were new.
    fn ingest_reports(
        &self,
        reports: Vec<super::call::CallReport>,
        now: Millis,
    ) -> impl Future<Output = R<u64>> + Send;
    /// One softswitch report for a call announced by `call_in`: returns (sequence, duplicate).
    fn report_call(
        &self,
        report: super::call::CallReport,
        now: Millis,
    ) -> impl Future<Output = R<(i64, bool)>> + Send;

    // ---- carrier pools (see `binder`) ----
    /// Inserts a PENDING binding claiming `customer_bind_id`, with the upstream request to
    /// re-send. If the id is taken: `Some(binding)` for a replay of an active binding,
    /// `CustomerBindIdConflict` for a different payload, UNAVAILABLE
    /// `UPSTREAM_OUTCOME_UNKNOWN` while the earlier bind is still pending.
    fn reserve(
        &self,
        res: &Reservation,
        upstream_request: &str,
        now: Millis,
    ) -> impl Future<Output = R<Option<Binding>>> + Send;
    /// Turns a PENDING reservation into the active mirror of the carrier's binding.
    fn finalize(
        &self,
        id: &str,
        up: &UpstreamBinding,
        now: Millis,
    ) -> impl Future<Output = R<Binding>> + Send;
    /// Takes a reservation for one reconciliation attempt (compare-and-set on `updated_at`).
    fn claim_pending(
        &self,
        id: &str,
        seen: Millis,
        now: Millis,
    ) -> impl Future<Output = R<bool>> + Send;
    /// Records that the carrier call of a PENDING reservation ended without a definite outcome.
    fn mark_unknown(&self, id: &str, now: Millis) -> impl Future<Output = R<()>> + Send;
    /// Deletes a PENDING reservation (the carrier definitely did not bind).
    fn release(&self, id: &str) -> impl Future<Output = R<()>> + Send;
    /// PENDING reservations created before `created_before`, with their upstream requests.
    fn pending(
        &self,
        created_before: Millis,
        limit: u64,
    ) -> impl Future<Output = R<Vec<(Binding, String)>>> + Send;
}

/// A carrier bind about to be sent: the binding row to insert as PENDING.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub binding: Binding,
    pub tenant: String,
    pub fingerprint: String,
}
