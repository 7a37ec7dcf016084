//! Two servers on one database: the stream is the database, so events written through one
//! arrive at subscribers of the other (by the poll), and resuming on either is exact.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pns_gateway::app::Settings;

use super::{after, bind, next, nothing_more, strictly_increasing, take, watch};
use crate::support::{TestServer, fixtures::*};

#[tokio::test]
async fn events_written_on_one_server_reach_subscribers_of_another() {
    let a = TestServer::start().await;
    let b = TestServer::start_on(a.db.clone(), Settings::default()).await;
    pool_with(&a, "p", "1700000", 2, "").await;

    let mut on_b = watch(&b, after(0)).await;
    let mut lat = Vec::new();
    for i in 0..10 {
        let bd = bind(&a, "p", i, "u").await;
        let returned = Instant::now();
        let e = next(&mut on_b).await;
        lat.push(returned.elapsed());
        assert_eq!(e.binding_id, bd.binding_id);
    }
    lat.sort();
    println!(
        "cross-server latency (commit on A -> receipt on B): median {:?}, max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(lat[lat.len() - 1] < Duration::from_secs(1));

    // Read part of the log from A, resume on B.
    let mut on_a = watch(&a, after(0)).await;
    let first = take(&mut on_a, 4).await;
    drop(on_a);
    for i in 10..13 {
        bind(&b, "p", i, "u").await;
    }
    let mut resumed = watch(&b, after(first[3].sequence)).await;
    let rest = take(&mut resumed, 9).await;
    nothing_more(&mut resumed).await;
    let mut seen = first;
    seen.extend(rest);
    strictly_increasing(&seen);
    let seqs: Vec<i64> = seen.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=13).collect::<Vec<_>>(), "no gap, no duplicate");
}

#[tokio::test]
async fn concurrent_writers_on_two_servers_give_one_gapless_ordered_stream() {
    let a = TestServer::start().await;
    let b = TestServer::start_on(a.db.clone(), Settings::default()).await;
    pool_with(&a, "p", "1700000", 4, "").await;
    // Both subscribers read while the writes happen.
    const N: usize = 100;
    let readers: Vec<_> = [watch(&a, after(0)).await, watch(&b, after(0)).await]
        .into_iter()
        .map(|mut st| {
            tokio::spawn(async move {
                let evs = take(&mut st, N).await;
                nothing_more(&mut st).await;
                evs
            })
        })
        .collect();

    let bound = join_all((0..N).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        async move { bind(server, "p", i, "u").await.binding_id }
    }))
    .await;
    let expected: HashSet<String> = bound.into_iter().collect();

    for (name, r) in ["A", "B"].into_iter().zip(readers) {
        let evs = r.await.expect("reader");
        let seqs: Vec<i64> = evs.iter().map(|e| e.sequence).collect();
        assert_eq!(
            seqs,
            (1..=N as i64).collect::<Vec<_>>(),
            "subscriber on {name}: every event once, in order, no hole"
        );
        let got: HashSet<String> = evs.into_iter().map(|e| e.binding_id).collect();
        assert_eq!(got, expected, "subscriber on {name}");
    }
}
