//! AXN binds (auto X, auto extension) claimed per batch (the shared batch of SQLite and
//! PostgreSQL: `bindings::pre_claim`): a batch's shares, extension counters and routes in three
//! statements, not two per bind — and a bind whose route is taken (its caller is already routed
//! on the number, or the extension the counter chose is held) is taken out of the claim and
//! runs on its own, without failing the batch's other binds.

use std::collections::{HashMap, HashSet};

use pns_gateway::grpc::pb;

use super::counted;
use crate::support::{TestServer, fixtures::*};

/// Concurrent auto AXN binds: each acknowledged with a number and an extension of its own,
/// stored as acknowledged, each extension reaching its A through NotifyCallIn; `check` clean;
/// the batches claimed for them (fewer statements than a claim per bind; MySQL has no batches).
#[tokio::test]
async fn a_batch_of_auto_axn_binds_claims_its_shares_at_once() {
    let s = TestServer::start().await;
    // Room for PostgreSQL's four writers to claim at once (a batch's candidates are locked
    // `SKIP LOCKED`: with fewer numbers than writers, the others' binds claim one by one).
    pool_with(&s, "wp", "8522119", 8, "").await;
    let before = s.store.group_commit_pre_claimed();
    let (bound, n) = counted(&s, concurrent_axn(&s, (0..100).map(|i| a(7, i)))).await;
    let bound: Vec<pb::Binding> = bound
        .into_iter()
        .map(|r| r.expect("bind").into_inner().binding.expect("binding"))
        .collect();
    eprintln!("100 concurrent AXN binds: {n} statements");
    routed_as_acknowledged(&s, &bound).await;
    let found = s.store.check_invariants().await.expect("check runs");
    assert!(found.is_empty(), "{found:?}");
    if s.store.backend_name() != "mysql" {
        let taken = s.store.group_commit_pre_claimed().expect("group commit")
            - before.expect("group commit");
        assert!(taken > 0, "no AXN bind took a share its batch claimed");
    }
    if s.store.backend_name() == "sqlite" {
        // A claim per bind is 2 statements (claim, routes), 200 for 100 binds. (PostgreSQL's
        // four writers split such a burst into batches of a few binds, each ending with its
        // own statements; its statements per bind under load are pns-load's: 0.39.)
        assert!(n < 150, "100 AXN binds ran {n} statements");
    }
}

/// Callers already routed on the number a batch would give them (their earlier AXN binding is
/// on it) bind again, together with new callers: the new ones keep their batch's claim, the
/// others are taken out of it and get another number on their own. No batch is rolled back
/// for it (every share claimed was taken), every bind is acknowledged, `check` is clean.
#[tokio::test]
async fn a_caller_routed_on_the_claimed_number_is_taken_out_of_the_claim() {
    let s = one_writer().await;
    pool_with(&s, "wp", "8522120", 3, "").await;
    // 20 callers on one number (one after another: the first bind takes a fresh number, the
    // others pack onto it).
    let mut first_x = HashMap::new();
    for i in 0..20 {
        let b = s
            .bindings()
            .bind_axn_extension(axn("wp", &a(6, i), 3600))
            .await
            .expect("first bind")
            .into_inner()
            .binding
            .expect("binding");
        first_x.insert(b.phone_a.clone(), b.number_x.clone());
    }
    assert_eq!(
        first_x.values().collect::<HashSet<_>>().len(),
        1,
        "the first binds packed onto one number"
    );
    let before = claim_stats(&s);
    // The same 20 callers again, mixed with 20 new ones.
    let callers = (0..20).flat_map(|i| [a(6, i), a(5, i)]);
    let results = concurrent_axn(&s, callers).await;
    let mut bound = Vec::new();
    for r in results {
        let b = r.expect("bind").into_inner().binding.expect("binding");
        if let Some(x) = first_x.get(&b.phone_a) {
            assert_ne!(
                &b.number_x, x,
                "a caller given a second route on its number"
            );
        }
        bound.push(b);
    }
    routed_as_acknowledged(&s, &bound).await;
    let found = s.store.check_invariants().await.expect("check runs");
    assert!(found.is_empty(), "{found:?}");
    taken_out_in_place(&s, before);
}

/// A server with one group-commit writer (PostgreSQL runs four by default, SQLite one): its
/// batches meet no other writer's row locks, so a shared run can fail only over what the test
/// sets up — with four, a batch that finds the one number of a pool held by another writer's
/// batch waits for it at most `LOCK_WAIT_MS` and its shared run fails.
async fn one_writer() -> TestServer {
    let db = std::sync::Arc::new(crate::support::TestDb::new().await);
    let url = db.url.clone();
    let opts = pns_gateway::storage::StoreOptions {
        writers: 1,
        ..Default::default()
    };
    TestServer::start_at(db, &url, opts, Default::default()).await
}

/// (shares claimed for batches, shares binds took, shared runs that failed) so far.
fn claim_stats(s: &TestServer) -> (u64, u64, u64) {
    (
        s.store.group_commit_pre_claims_made().unwrap_or(0),
        s.store.group_commit_pre_claimed().unwrap_or(0),
        s.store
            .group_commit_shared()
            .map_or(0, |(_, failed)| failed),
    )
}

/// On SQLite and PostgreSQL, since `before` (`claim_stats`): batches claimed for some binds, every share
/// claimed was taken, and no shared run failed — binds whose routes were taken left their
/// batch's claim in place instead of failing it.
fn taken_out_in_place(s: &TestServer, before: (u64, u64, u64)) {
    if s.store.backend_name() == "mysql" {
        return;
    }
    let (made, kept, failed) = claim_stats(s);
    let (made, kept, failed) = (made - before.0, kept - before.1, failed - before.2);
    eprintln!("claimed {made}, taken {kept}, shared runs failed {failed}");
    assert!(kept > 0, "no batch claimed for the binds");
    assert_eq!(made, kept, "a batch's claim was rolled back");
    assert_eq!(failed, 0, "a batch's shared run failed over a taken route");
}

/// The extensions the counter chooses next are held already (bound explicitly): the binds of a
/// batch that would take them are taken out of the claim and get free extensions on their own,
/// and the batch's other binds keep theirs (no shared run fails).
#[tokio::test]
async fn an_extension_held_already_is_not_claimed_twice() {
    let s = one_writer().await;
    let x = pool_with(&s, "wp", "8522121", 1, "").await.remove(0);
    // Counter 1 (extension 100); each explicit bind moves the counter too, so after ten of
    // them it is 11 and its next choices are 111, 112, …: hold 111..=120.
    s.bindings()
        .bind_axn_extension(axn("wp", &a(4, 0), 3600))
        .await
        .expect("first bind");
    for e in 111..=120 {
        let mut req = axn("wp", &a(3, e), 3600);
        req.number_x = x.clone();
        req.extension = e.to_string();
        s.bindings()
            .bind_axn_extension(req)
            .await
            .expect("explicit");
    }
    let before = claim_stats(&s);
    let results = concurrent_axn(&s, (1..=30).map(|i| a(4, i))).await;
    let bound: Vec<pb::Binding> = results
        .into_iter()
        .map(|r| r.expect("bind").into_inner().binding.expect("binding"))
        .collect();
    for b in &bound {
        let e: u32 = b.extension.parse().expect("numeric extension");
        assert!(
            !(111..=120).contains(&e),
            "extension {e} handed out while held"
        );
    }
    routed_as_acknowledged(&s, &bound).await;
    let found = s.store.check_invariants().await.expect("check runs");
    assert!(found.is_empty(), "{found:?}");
    taken_out_in_place(&s, before);
}

fn a(group: u32, i: u32) -> String {
    format!("86131{group}{i:07}")
}

async fn concurrent_axn(
    s: &TestServer,
    callers: impl Iterator<Item = String>,
) -> Vec<Result<tonic::Response<pb::BindAxnExtensionResponse>, tonic::Status>> {
    futures_util::future::join_all(callers.map(|a| {
        let mut c = s.bindings();
        let req = axn("wp", &a, 3600);
        async move { c.bind_axn_extension(req).await }
    }))
    .await
}

/// Each binding is stored as acknowledged, no (X, extension) twice, and a call to its X and
/// extension reaches its A.
async fn routed_as_acknowledged(s: &TestServer, bound: &[pb::Binding]) {
    let mut seen = HashSet::new();
    for (i, b) in bound.iter().enumerate() {
        assert!(
            seen.insert((b.number_x.clone(), b.extension.clone())),
            "({}, {}) handed out twice",
            b.number_x,
            b.extension
        );
        let stored = get_binding(s, &b.binding_id).await;
        assert_eq!(
            (&stored.number_x, &stored.extension),
            (&b.number_x, &b.extension)
        );
        let r = s
            .calls()
            .notify_call_in(call_in(
                "8613900000097",
                &b.number_x,
                &b.extension,
                &format!("axn-batch-{}-{i}", b.binding_id),
            ))
            .await
            .expect("call-in")
            .into_inner();
        assert_eq!(r.connect_to, b.phone_a, "extension {}", b.extension);
    }
}
