//! `domain::Repository` for `Store`: thin delegation to the query modules.

use super::Store;
use crate::domain::{
    AxnBind, Binding, BindingFilter, BindingRef, BindingUpdate, DomainError, Event, EventFilter,
    Millis, NewNumber, NumberInfo, NumberState, Pool, PoolStats, Repository, XybBind,
    provider::UpstreamBinding, repo::Reservation,
};

type R<T> = Result<T, DomainError>;

impl Repository for Store {
    async fn create_pool(&self, pool: Pool) -> R<Pool> {
        self.create_pool_impl(pool).await
    }
    async fn upsert_pool(&self, pool: Pool) -> R<Pool> {
        self.upsert_pool_impl(pool).await
    }
    async fn list_pools(&self) -> R<Vec<Pool>> {
        self.list_pools_impl().await
    }
    async fn get_pool(&self, pool_key: &str) -> R<Pool> {
        super::convert::pool(self.pool_cached(pool_key).await?)
    }
    async fn add_numbers(&self, pool_key: &str, numbers: Vec<NewNumber>) -> R<(u64, u64)> {
        self.add_numbers_impl(pool_key, numbers).await
    }
    async fn list_numbers(
        &self,
        pool_key: &str,
        after: Option<String>,
        limit: u64,
    ) -> R<Vec<NumberInfo>> {
        self.list_numbers_impl(pool_key, after, limit).await
    }
    async fn set_number_state(
        &self,
        pool_key: &str,
        number: &str,
        state: NumberState,
    ) -> R<NumberInfo> {
        self.set_number_state_impl(pool_key, number, state).await
    }
    async fn pool_stats(&self, pool_key: &str, now: Millis) -> R<PoolStats> {
        self.pool_stats_impl(pool_key, now).await
    }
    async fn bind_xyb(&self, cmd: &XybBind, now: Millis) -> R<(Binding, bool)> {
        self.bind_xyb_impl(cmd, now).await
    }
    async fn bind_axn(&self, cmd: &AxnBind, now: Millis) -> R<(Binding, bool)> {
        self.bind_axn_impl(cmd, now).await
    }
    async fn get_binding(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        self.get_binding_impl(r, now).await
    }
    async fn list_bindings(&self, filter: &BindingFilter, now: Millis) -> R<Vec<Binding>> {
        self.list_bindings_impl(filter, now).await
    }
    async fn update_binding(
        &self,
        r: &BindingRef,
        update: &BindingUpdate,
        now: Millis,
    ) -> R<Binding> {
        self.update_binding_impl(r, update, now).await
    }
    async fn unbind(&self, r: &BindingRef, now: Millis) -> R<Binding> {
        self.unbind_impl(r, now).await
    }
    async fn purge_ended(&self, ended_before: Millis, now: Millis, limit: u64) -> R<u64> {
        self.purge_ended_impl(ended_before, now, limit).await
    }

    async fn sweep_expired(&self, now: Millis, limit: u64) -> R<u64> {
        self.sweep_expired_impl(now, limit).await
    }
    async fn reserve(
        &self,
        res: &Reservation,
        upstream_request: &str,
        now: Millis,
    ) -> R<Option<Binding>> {
        self.reserve_impl(res, upstream_request, now).await
    }
    async fn finalize(&self, id: &str, up: &UpstreamBinding, now: Millis) -> R<Binding> {
        self.finalize_impl(id, up, now).await
    }
    async fn mark_unknown(&self, id: &str, now: Millis) -> R<()> {
        self.mark_unknown_impl(id, now).await
    }
    async fn claim_pending(&self, id: &str, seen: Millis, now: Millis) -> R<bool> {
        self.claim_pending_impl(id, seen, now).await
    }
    async fn release(&self, id: &str) -> R<()> {
        self.release_impl(id).await
    }
    async fn pending(&self, created_before: Millis, limit: u64) -> R<Vec<(Binding, String)>> {
        self.pending_impl(created_before, limit).await
    }
    async fn read_events(&self, filter: &EventFilter) -> R<Vec<Event>> {
        self.read_events_impl(filter).await
    }
    async fn latest_sequence(&self) -> R<i64> {
        self.latest_sequence_impl().await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.subscribe_impl()
    }
    fn committed_after(&self, after: i64) -> Vec<Event> {
        self.committed.take_after(after)
    }
    fn observe_log(&self, events: &[Event], up_to: i64, caught_up_at: Option<std::time::Instant>) {
        self.routes.observe(events, up_to, caught_up_at);
    }
    async fn call_in(
        &self,
        c: &crate::domain::CallIn,
        now: Millis,
    ) -> R<(crate::domain::Decision, i64)> {
        self.call_in_impl(c, now).await
    }
    async fn ingest_reports(&self, reports: Vec<crate::domain::CallReport>, now: Millis) -> R<u64> {
        self.ingest_reports_impl(reports, now).await
    }
    async fn report_call(&self, report: crate::domain::CallReport, now: Millis) -> R<(i64, bool)> {
        self.report_call_impl(report, now).await
    }
}
