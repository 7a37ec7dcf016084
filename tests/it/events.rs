//! The event log and `WatchEvents`: lifecycle events, replay then live tail, exact resume,
//! filters, several servers on one database, slow subscribers, invalid requests.

mod fanout;
mod handoff;
mod replicas;
mod typed;

use std::time::{Duration, Instant};

use pns_gateway::grpc::pb;
use tonic::{Code, Streaming};

use crate::support::{TestServer, fixtures::*, server::fast_sweeper};

type Stream = Streaming<pb::Event>;

pub(super) fn after(n: i64) -> pb::WatchEventsRequest {
    pb::WatchEventsRequest {
        after_sequence: n,
        ..Default::default()
    }
}

pub(super) async fn watch(s: &TestServer, req: pb::WatchEventsRequest) -> Stream {
    s.calls()
        .watch_events(req)
        .await
        .expect("watch events")
        .into_inner()
}

pub(super) async fn next(st: &mut Stream) -> pb::Event {
    tokio::time::timeout(Duration::from_secs(10), st.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream still open")
}

pub(super) async fn take(st: &mut Stream, n: usize) -> Vec<pb::Event> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(next(st).await);
    }
    v
}

/// No further event arrives within 300 ms (longer than the 100 ms poll).
pub(super) async fn nothing_more(st: &mut Stream) {
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), st.message()).await {
        panic!("expected no further event, got {r:?}");
    }
}

#[track_caller]
pub(super) fn strictly_increasing(evs: &[pb::Event]) {
    for w in evs.windows(2) {
        assert!(
            w[0].sequence < w[1].sequence,
            "sequences out of order: {} then {}",
            w[0].sequence,
            w[1].sequence
        );
    }
}

/// An AXN bind of caller `139<i>` with the given ids; returns the binding.
pub(super) async fn bind(s: &TestServer, pool: &str, i: usize, user: &str) -> pb::Binding {
    let mut r = axn(pool, &format!("139{i:08}"), 3600);
    r.customer_bind_id = format!("cb-{pool}-{i}");
    r.customer_user_id = user.into();
    r.ext = format!("ext-{i}");
    r.out_id = format!("out-{i}");
    s.bindings()
        .bind_axn_extension(r)
        .await
        .expect("bind")
        .into_inner()
        .binding
        .expect("binding")
}

pub(super) fn unbind_req(id: &str) -> pb::UnbindRequest {
    pb::UnbindRequest {
        binding_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn binding_lifecycle_produces_events_with_the_binding_fields() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    let mut c = s.bindings();

    let mut x = xyb("p", "85264654798");
    x.customer_bind_id = "cb-x".into();
    x.customer_user_id = "u-x".into();
    x.ext = "ext-x".into();
    let xb = c
        .bind_xyb(x.clone())
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    // A replay answers with the same binding and writes no event.
    assert!(c.bind_xyb(x).await.unwrap().into_inner().replayed);
    let ab = bind(&s, "p", 1, "u-a").await;
    c.update_binding(pb::UpdateBindingRequest {
        binding_id: ab.binding_id.clone(),
        ext: Some("ext-new".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    c.unbind(unbind_req(&xb.binding_id)).await.unwrap();
    // Unbinding again changes nothing and writes no event.
    c.unbind(unbind_req(&xb.binding_id)).await.unwrap();

    let mut st = watch(&s, after(0)).await;
    let evs = take(&mut st, 4).await;
    nothing_more(&mut st).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "binding.created",
            "binding.created",
            "binding.updated",
            "binding.unbound"
        ]
    );
    let seqs: Vec<i64> = evs.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "dense, from 1");

    let (created, unbound) = (&evs[0], &evs[3]);
    for e in [created, unbound] {
        assert_eq!(e.binding_id, xb.binding_id);
        assert_eq!(e.pool_key, "p");
        assert_eq!(e.provider, pb::Provider::Local as i32);
        assert_eq!(e.customer_bind_id, "cb-x");
        assert_eq!(e.customer_user_id, "u-x");
        assert_eq!(e.ext, "ext-x");
        assert!(e.time.is_some());
    }
    let detail: serde_json::Value = serde_json::from_str(&unbound.detail_json).unwrap();
    assert_eq!(detail["state"], "unbound");
    assert_eq!(detail["number_x"], xb.number_x.as_str());
    let created_detail: serde_json::Value = serde_json::from_str(&created.detail_json).unwrap();
    assert_eq!(created_detail["state"], "xyb");

    let (axn_created, updated) = (&evs[1], &evs[2]);
    assert_eq!(axn_created.binding_id, ab.binding_id);
    assert_eq!(
        (axn_created.ext.as_str(), axn_created.out_id.as_str()),
        ("ext-1", "out-1")
    );
    assert_eq!(axn_created.customer_bind_id, "cb-p-1");
    assert_eq!(axn_created.customer_user_id, "u-a");
    assert_eq!(
        updated.ext, "ext-new",
        "the event carries the updated binding"
    );
    let d: serde_json::Value = serde_json::from_str(&axn_created.detail_json).unwrap();
    assert_eq!(d["extension"], ab.extension.as_str());
}

#[tokio::test]
async fn the_sweeper_writes_binding_expired() {
    let s = TestServer::start_with(fast_sweeper()).await;
    pool_with(&s, "p", "1700000", 1, "").await;
    let b = bind(&s, "p", 1, "u").await;
    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            kinds: vec!["binding.expired".into()],
            ..Default::default()
        },
    )
    .await;
    s.clock.advance(3_700_000);
    let e = next(&mut st).await;
    assert_eq!(
        (e.kind.as_str(), e.binding_id.as_str()),
        ("binding.expired", b.binding_id.as_str())
    );
    assert_eq!(e.out_id, "out-1");
}

#[tokio::test]
async fn replay_then_live_tail_with_low_latency() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    for i in 0..5 {
        bind(&s, "p", i, "u").await;
    }
    let mut st = watch(&s, after(0)).await;
    let replayed = take(&mut st, 5).await;
    strictly_increasing(&replayed);

    // Live: the bind's RPC returns after its commit; the event must follow promptly.
    let mut lat = Vec::new();
    for i in 5..25 {
        let b = bind(&s, "p", i, "u").await;
        let returned = Instant::now();
        let e = next(&mut st).await;
        lat.push(returned.elapsed());
        assert_eq!(e.binding_id, b.binding_id);
        assert_eq!(e.sequence, i as i64 + 1);
    }
    lat.sort();
    let (median, max) = (lat[lat.len() / 2], lat[lat.len() - 1]);
    println!("in-process live-tail latency (commit -> receipt): median {median:?}, max {max:?}");
    assert!(
        max < Duration::from_millis(500),
        "in-process latency {max:?}"
    );
}

#[tokio::test]
async fn resume_after_the_last_sequence_gives_no_gap_and_no_duplicate() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 2, "").await;
    for i in 0..10 {
        bind(&s, "p", i, "u").await;
    }
    let mut st = watch(&s, after(0)).await;
    let first = take(&mut st, 4).await;
    drop(st);
    for i in 10..15 {
        bind(&s, "p", i, "u").await;
    }
    let last = first.last().unwrap().sequence;
    let mut st = watch(&s, after(last)).await;
    let rest = take(&mut st, 11).await;
    nothing_more(&mut st).await;

    let mut all_seen = first.clone();
    all_seen.extend(rest);
    strictly_increasing(&all_seen);
    let mut fresh = watch(&s, after(0)).await;
    let all = take(&mut fresh, 15).await;
    assert_eq!(all_seen, all, "resumed stream == full replay");
}

#[tokio::test]
async fn filters_and_from_now() {
    let s = TestServer::start().await;
    pool_with(&s, "p1", "1700000", 1, "").await;
    pool_with(&s, "p2", "1700001", 1, "").await;
    let a = bind(&s, "p1", 1, "alice").await;
    let b = bind(&s, "p2", 2, "bob").await;
    bind(&s, "p2", 3, "alice").await;
    s.bindings()
        .unbind(unbind_req(&b.binding_id))
        .await
        .unwrap();

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            pool_key: "p2".into(),
            ..Default::default()
        },
    )
    .await;
    let evs = take(&mut st, 3).await;
    assert!(evs.iter().all(|e| e.pool_key == "p2"));
    nothing_more(&mut st).await;

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let evs = take(&mut st, 2).await;
    assert_eq!(
        evs.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["binding.created", "binding.unbound"]
    );
    nothing_more(&mut st).await;

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            customer_user_id: "alice".into(),
            ..Default::default()
        },
    )
    .await;
    let evs = take(&mut st, 2).await;
    assert!(evs.iter().all(|e| e.customer_user_id == "alice"));
    assert_eq!(evs[0].binding_id, a.binding_id);
    nothing_more(&mut st).await;

    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            kinds: vec!["binding.unbound".into(), "call.hangup".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next(&mut st).await.binding_id, b.binding_id);
    nothing_more(&mut st).await;

    // Filters combine with AND, and a filtered stream keeps tailing.
    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            pool_key: "p1".into(),
            customer_user_id: "alice".into(),
            kinds: vec!["binding.created".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next(&mut st).await.binding_id, a.binding_id);
    let late = bind(&s, "p1", 4, "alice").await;
    bind(&s, "p1", 5, "carol").await;
    assert_eq!(next(&mut st).await.binding_id, late.binding_id);
    nothing_more(&mut st).await;

    // from_now ignores the history (and after_sequence).
    let mut st = watch(
        &s,
        pb::WatchEventsRequest {
            from_now: true,
            after_sequence: 1,
            ..Default::default()
        },
    )
    .await;
    nothing_more(&mut st).await;
    let newer = bind(&s, "p2", 6, "dave").await;
    let e = next(&mut st).await;
    assert_eq!(e.binding_id, newer.binding_id);
    assert_eq!(e.sequence, 7);
}

#[tokio::test]
async fn a_slow_subscriber_blocks_neither_writers_nor_other_subscribers() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "1700000", 1, "").await;
    // Never read: its channel (256) and the HTTP/2 window fill up, then its task waits.
    let _slow = watch(&s, after(0)).await;
    let mut fast = watch(&s, after(0)).await;
    let big = "x".repeat(500);
    const N: usize = 600;
    let mut slowest = Duration::ZERO;
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let started = Instant::now();
        futures_util::future::join_all(chunk.iter().map(|&i| {
            let mut c = s.bindings();
            let mut r = axn("p", &format!("139{i:08}"), 3600);
            r.ext = big.clone();
            r.number_x = numbers[0].clone();
            async move { c.bind_axn_extension(r).await.expect("bind") }
        }))
        .await;
        slowest = slowest.max(started.elapsed());
        take(&mut fast, chunk.len()).await;
    }
    println!("slowest batch of 50 binds with a stalled subscriber: {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "writers were slowed");
    let b = bind(&s, "p", N + 1, "u").await;
    assert_eq!(next(&mut fast).await.binding_id, b.binding_id);
}

#[tokio::test]
async fn invalid_requests_are_rejected() {
    let s = TestServer::start().await;
    let mut c = s.calls();
    let st = c.watch_events(after(-1)).await.unwrap_err();
    assert_reason(&st, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["after_sequence"]);

    let st = c
        .watch_events(pb::WatchEventsRequest {
            kinds: vec!["binding.created".into(), "binding.deleted".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&st, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["kinds[1]"]);
    assert!(
        st.message().contains("call.hangup"),
        "lists the allowed kinds: {}",
        st.message()
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let s = TestServer::start().await;
    let mut st = watch(&s, after(0)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("shutdown does not wait for subscribers")
        .expect("clean stop");
    match tokio::time::timeout(Duration::from_secs(5), st.message())
        .await
        .expect("the stream ends")
    {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(None) => {}
        Ok(Some(e)) => panic!("unexpected event {e:?}"),
    }
    println!("shutdown with an open stream took {:?}", started.elapsed());
}
