//! PostgreSQL: a batch of binds under one shared savepoint waits at most `LOCK_WAIT_MS` for a
//! row lock; past it the shared run fails and the binds run again write by write, where the
//! first write of a transaction waits as long as it takes (the lock wait is reset) and a later
//! one moves to the next transaction. Nothing is lost or answered twice.

use sea_orm::{ConnectionTrait, Database, TransactionTrait};

use crate::support::{TestServer, fixtures::*};

/// Five numbers held by another transaction (row locks) while 45 binds arrive at once, five of
/// them asking for a held number as their X (the others take any X of another pool): every bind is answered with a binding, the five
/// get their numbers once the holder commits, a shared run failed over the held rows, and
/// `check` is clean. Without the reset of the lock wait after the failed shared run, the first
/// of those binds in its transaction would fail with the lock timeout.
#[tokio::test]
async fn a_shared_run_that_meets_a_held_row_falls_back_and_every_bind_lands() {
    let s = TestServer::start().await;
    if s.store.backend_name() != "postgres" {
        // SQLite has one writer and no row locks; MySQL has no group commit.
        return;
    }
    // The held numbers in a pool of their own: once released they are free, and an any-X
    // bind of the same pool could take one before the bind that asked for it.
    let held = pool_with(&s, "wp", "8522130", 5, "").await;
    pool_with(&s, "wq", "8522131", 60, "").await;
    let holder_db = Database::connect(&s.db.url).await.expect("connect");
    let holder = holder_db.begin().await.expect("begin");
    let list = held
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",");
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM numbers WHERE number IN ({list}) FOR UPDATE"
        ))
        .await
        .expect("hold the rows");
    let shared0 = s.store.group_commit_shared().expect("group commit");
    let binds = tokio::spawn({
        let s = s.bindings();
        let held = held.clone();
        async move {
            futures_util::future::join_all((0..45).map(|i| {
                let mut c = s.clone();
                let mut r = xyb("wq", &format!("86138{i:08}"));
                r.delayed_y = true;
                if i % 9 == 0 {
                    r.pool_key = "wp".into();
                    r.number_x = held[i / 9].clone();
                }
                async move { (r.number_x.clone(), c.bind_xyb(r).await) }
            }))
            .await
        }
    });
    // Longer than the shared run's lock wait, many times over.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    holder.commit().await.expect("release the rows");
    let results = binds.await.expect("binds");
    let mut got_held = Vec::new();
    for (asked, r) in results {
        let b = r
            .expect("every bind lands")
            .into_inner()
            .binding
            .expect("binding");
        if !asked.is_empty() {
            assert_eq!(b.number_x, asked, "a fixed X bound to another number");
            got_held.push(b.number_x.clone());
        } else {
            assert!(!held.contains(&b.number_x), "a held number was claimed");
        }
        assert_eq!(get_binding(&s, &b.binding_id).await.number_x, b.number_x);
    }
    got_held.sort();
    assert_eq!(got_held, held);
    let shared1 = s.store.group_commit_shared().expect("group commit");
    assert!(
        shared1.1 > shared0.1,
        "no shared run met the held rows ({shared0:?} → {shared1:?})"
    );
    let found = s.store.check_invariants().await.expect("check runs");
    assert!(found.is_empty(), "{found:?}");
    holder_db.close().await.ok();
}
