//! The storage port. `storage::Store` implements it on sea-orm; the gRPC services only see this.

use std::future::Future;

use super::binding::{
    AxnBind, Binding, BindingFilter, BindingRef, BindingUpdate, Millis, Provider, XybBind,
};
use super::error::DomainError;
use super::event::{Event, EventFilter};
use super::pool::{NewNumber, NumberInfo, NumberState, Pool, PoolStats};

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

    /// Events matching `filter`, in sequence order. Every event with a sequence at or below
    /// `latest_sequence()` is committed, so a reader never sees a smaller one appear later.
    fn read_events(&self, filter: &EventFilter) -> impl Future<Output = R<Vec<Event>>> + Send;
    /// The highest sequence committed so far (0 when the log is empty).
    fn latest_sequence(&self) -> impl Future<Output = R<i64>> + Send;
    /// In-process wake-up: changes after this process commits new events (value: the highest
    /// sequence it published). A hint only; events written by other replicas do not move it,
    /// so readers also poll the database.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64>;
}

/// Providers of pools whose numbers this gateway allocates itself.
pub fn allocates_locally(p: Provider) -> bool {
    matches!(p, Provider::Local)
}
