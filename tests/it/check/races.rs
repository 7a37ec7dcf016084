//! The checker after concurrent traffic: races must leave no anomaly behind.

use pns_gateway::grpc::pb;

use super::kinds;
use crate::support::{TestServer, fixtures::*, server::fast_sweeper};

/// Binds, converting call-ins, unbinds, expiry updates and sweeps racing on a small pool (so
/// binds compete for numbers and reap expired holders inline): whatever wins, the database
/// must stay consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_nothing_after_racing_binds_call_ins_unbinds_and_sweeps() {
    let s = TestServer::start_with(fast_sweeper()).await;
    let numbers = pool_with(&s, "p", "8521316", 24, "").await;
    let tasks = (0..160usize).map(|i| {
        let (mut c, mut calls) = (s.bindings(), s.calls());
        let numbers = numbers.clone();
        let clock = s.clock.clone();
        async move {
            if i == 80 {
                // Half-way: everything with a 60 s expiry is now past it.
                clock.advance(61_000);
            }
            let b = if i % 3 == 2 {
                let mut r = axn(
                    "p",
                    &format!("139{i:08}"),
                    if i % 2 == 0 { 61 } else { 3600 },
                );
                if i % 6 == 5 {
                    r.number_x = numbers[i % 3].clone();
                }
                c.bind_axn_extension(r)
                    .await
                    .map(|r| r.into_inner().binding.unwrap())
            } else {
                let mut r = xyb("p", &format!("8526{i:07}"));
                r.delayed_y = i % 2 == 0;
                r.bind_expire_seconds = if i % 4 == 0 { 60 } else { 3600 };
                r.call_in_expire_seconds = if i % 5 == 0 { 60 } else { 0 };
                c.bind_xyb(r).await.map(|r| r.into_inner().binding.unwrap())
            };
            let Ok(b) = b else { return };
            for (j, caller) in [format!("8529{i:07}"), format!("8528{i:07}")]
                .iter()
                .enumerate()
            {
                let _ = calls
                    .notify_call_in(call_in(
                        caller,
                        &b.number_x,
                        &b.extension,
                        &format!("race-{i}-{j}"),
                    ))
                    .await;
            }
            match i % 4 {
                0 => {
                    let _ = c
                        .unbind(pb::UnbindRequest {
                            binding_id: b.binding_id.clone(),
                            ..Default::default()
                        })
                        .await;
                }
                1 => {
                    let _ = c
                        .update_binding(pb::UpdateBindingRequest {
                            binding_id: b.binding_id.clone(),
                            expire_time: Some(ts_in(61)),
                            ..Default::default()
                        })
                        .await;
                }
                _ => {}
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let (found, text) = kinds(&s.store).await;
    assert!(found.is_empty(), "with the survivors active:\n{text}");
    assert!(s.store.check_scope().await.unwrap().active_bindings > 0);
    s.clock.advance(3_700_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.store.check_scope().await.unwrap().active_bindings > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sweeper did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (found, text) = kinds(&s.store).await;
    assert!(found.is_empty(), "after the races:\n{text}");
    let st = stats(&s, "p").await;
    assert_eq!(
        (st.locked, st.shared),
        (0, 0),
        "every claim given back: {st:?}"
    );
}
