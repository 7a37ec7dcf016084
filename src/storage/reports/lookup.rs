//! The bindings a batch of reports names, found with a few batched queries instead of one to
//! three per report: a 1 MiB Aliyun batch names thousands of bindings and must be stored within
//! the carrier's 700 ms. Each `IN (...)` list is chunked to [`MAX_BIND_PARAMS`] so no body under
//! the push size limit can hit a parameter limit.
//!
//! The rules are those of one report (first that applies):
//! 1. the carrier's binding id: `(provider, provider_binding_id)`;
//! 2. else the carrier's copy of our `customer_bind_id`: the gateway sends its own binding id
//!    there (tenant-safe), so a binding with that id and provider; else a binding of that
//!    provider with that `customer_bind_id`;
//! 3. else, for softswitch reports (no provider), the binding of the first event of the same
//!    call that has one.
//!
//! Where several rows match (a carrier re-using a binding id after one ended), the newest (the
//! greatest UUID v7 id) is the one named.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::T;
use crate::domain::CallReport;
use crate::storage::entities::{binding, event};
use crate::storage::events::MAX_BIND_PARAMS;

/// The binding each report names (by index), and the rows.
#[derive(Default)]
pub(super) struct Named {
    pub(super) ids: Vec<Option<String>>,
    pub(super) rows: HashMap<String, binding::Model>,
}

impl Named {
    pub(super) fn of(&self, i: usize) -> Option<&binding::Model> {
        self.ids.get(i)?.as_ref().and_then(|id| self.rows.get(id))
    }
}

/// Distinct values, in first-seen order (so the queries do not depend on hash order).
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| seen.insert(*v))
        .map(str::to_owned)
        .collect()
}

/// `provider = p AND col IN (values)`, chunked; rows keyed by `key`, the newest winning.
async fn by_column(
    tx: &DatabaseTransaction,
    provider: Option<&str>,
    col: binding::Column,
    values: &[String],
    key: impl Fn(&binding::Model) -> Option<String>,
) -> T<HashMap<String, binding::Model>> {
    let mut found = HashMap::new();
    for chunk in values.chunks(MAX_BIND_PARAMS) {
        let mut q = binding::Entity::find().filter(col.is_in(chunk.iter().cloned()));
        if let Some(p) = provider {
            q = q.filter(binding::Column::Provider.eq(p));
        }
        for m in q.order_by_asc(binding::Column::Id).all(tx).await? {
            if let Some(k) = key(&m) {
                found.insert(k, m);
            }
        }
    }
    Ok(found)
}

pub(super) async fn bindings_of(tx: &DatabaseTransaction, reports: &[CallReport]) -> T<Named> {
    let mut named = Named {
        ids: vec![None; reports.len()],
        rows: HashMap::new(),
    };
    let providers = distinct(
        reports
            .iter()
            .filter_map(|r| r.provider.map(|p| p.as_str())),
    );

    // 1. The carrier's binding id.
    for p in &providers {
        let of_p = |r: &&CallReport| r.provider.map(|x| x.as_str()) == Some(p.as_str());
        let ids = distinct(
            reports
                .iter()
                .filter(of_p)
                .filter_map(|r| r.provider_binding_id.as_deref()),
        );
        if ids.is_empty() {
            continue;
        }
        let found = by_column(tx, Some(p), binding::Column::ProviderBindingId, &ids, |m| {
            Some(m.provider_binding_id.clone())
        })
        .await?;
        for (i, r) in reports.iter().enumerate() {
            if let (true, Some(m)) = (
                of_p(&r),
                r.provider_binding_id.as_ref().and_then(|id| found.get(id)),
            ) {
                named.ids[i] = Some(m.id.clone());
                named.rows.insert(m.id.clone(), m.clone());
            }
        }
    }

    // 2. Our `customer_bind_id`, for carrier reports step 1 did not resolve.
    let open = |named: &Named, i: usize, r: &CallReport| {
        named.ids[i].is_none() && r.provider.is_some() && r.customer_bind_id.is_some()
    };
    let cbs = distinct(
        reports
            .iter()
            .enumerate()
            .filter(|(i, r)| open(&named, *i, r))
            .filter_map(|(_, r)| r.customer_bind_id.as_deref()),
    );
    if !cbs.is_empty() {
        let by_id = by_column(tx, None, binding::Column::Id, &cbs, |m| Some(m.id.clone())).await?;
        let mut by_cb = HashMap::new();
        for p in &providers {
            let found = by_column(tx, Some(p), binding::Column::CustomerBindId, &cbs, |m| {
                m.customer_bind_id.clone()
            })
            .await?;
            by_cb.insert(p.clone(), found);
        }
        for (i, r) in reports.iter().enumerate() {
            if !open(&named, i, r) {
                continue;
            }
            let (Some(p), Some(cb)) = (r.provider, &r.customer_bind_id) else {
                continue;
            };
            let m = by_id
                .get(cb)
                .filter(|m| m.provider == p.as_str())
                .or_else(|| by_cb.get(p.as_str()).and_then(|f| f.get(cb)));
            if let Some(m) = m {
                named.ids[i] = Some(m.id.clone());
                named.rows.insert(m.id.clone(), m.clone());
            }
        }
    }

    // 3. Softswitch reports: the binding of the call's first event that has one.
    let calls = distinct(
        reports
            .iter()
            .filter(|r| r.provider.is_none() && !r.call_id.is_empty())
            .map(|r| r.call_id.as_str()),
    );
    if !calls.is_empty() {
        let mut first: HashMap<String, String> = HashMap::new();
        for chunk in calls.chunks(MAX_BIND_PARAMS) {
            let found: Vec<(String, Option<String>)> = event::Entity::find()
                .select_only()
                .column(event::Column::CallId)
                .column(event::Column::BindingId)
                .filter(event::Column::CallId.is_in(chunk.iter().cloned()))
                .filter(event::Column::BindingId.is_not_null())
                .order_by_asc(event::Column::Seq)
                .into_tuple()
                .all(tx)
                .await?;
            for (call, binding_id) in found {
                if let Some(b) = binding_id {
                    first.entry(call).or_insert(b);
                }
            }
        }
        let ids = distinct(first.values().map(String::as_str));
        let rows = by_column(tx, None, binding::Column::Id, &ids, |m| Some(m.id.clone())).await?;
        for (i, r) in reports.iter().enumerate() {
            if r.provider.is_some() {
                continue;
            }
            if let Some(m) = first.get(&r.call_id).and_then(|b| rows.get(b)) {
                named.ids[i] = Some(m.id.clone());
                named.rows.insert(m.id.clone(), m.clone());
            }
        }
    }
    Ok(named)
}
