//! The in-process route index (`storage::route_cache`): call-ins answered from memory, and
//! never a stale answer after a change this process acknowledged; across replicas, a change
//! stops routing on the other server within the documented bound.

use std::time::{Duration, Instant};

use pns_gateway::grpc::pb;

use crate::support::{TestServer, fixtures::*};

const A: &str = "8613800000001";
const B: &str = "8613900000002";
const C1: &str = "8613700000003";
const C2: &str = "8613700000004";

async fn notify(
    s: &TestServer,
    caller: &str,
    called: &str,
    ext: &str,
    id: &str,
) -> pb::NotifyCallInResponse {
    s.calls()
        .notify_call_in(call_in(caller, called, ext, id))
        .await
        .expect("notify")
        .into_inner()
}

fn connected_to(r: &pb::NotifyCallInResponse) -> Option<(&str, &str)> {
    (r.decision == pb::Decision::Connect as i32)
        .then_some((r.connect_to.as_str(), r.display_number.as_str()))
}

/// The index answers only once the tailer has caught up; a test waits for a hit instead of
/// sleeping a fixed time.
async fn until_served_from_memory(
    s: &TestServer,
    caller: &str,
    called: &str,
    ext: &str,
    tag: &str,
) -> pb::NotifyCallInResponse {
    let before = s.store.route_index_hits();
    for i in 0..400 {
        let r = notify(s, caller, called, ext, &format!("{tag}-{i}")).await;
        if s.store.route_index_hits() > before {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the route index never answered {tag}");
}

async fn xyb_converted(s: &TestServer) -> pb::Binding {
    pool_with(s, "p", "8521313", 4, "").await;
    let b = bound(s, xyb("p", B)).await;
    // First call-in: A becomes known (a write, never from memory).
    let r = notify(s, A, &b.number_x, "", "first").await;
    assert_eq!(connected_to(&r), Some((B, b.number_y.as_str())));
    get_binding(s, &b.binding_id).await
}

#[tokio::test]
async fn routed_calls_are_answered_from_memory_with_their_events_recorded() {
    let s = TestServer::start().await;
    let b = xyb_converted(&s).await;
    let r = until_served_from_memory(&s, A, &b.number_x, "", "a").await;
    assert_eq!(connected_to(&r), Some((B, b.number_y.as_str())));
    assert!(
        r.binding
            .as_ref()
            .is_some_and(|x| x.binding_id == b.binding_id)
    );
    // B -> Y reaches A, also from memory.
    let r = until_served_from_memory(&s, B, &b.number_y, "", "b").await;
    assert_eq!(connected_to(&r), Some((A, b.number_x.as_str())));
    assert!(s.store.route_index_len() >= 2);

    // Every call-in answered from memory recorded its own call.incoming event, with the
    // sequence it was answered with.
    let hits = s.store.route_index_hits();
    let mut seqs = Vec::new();
    for i in 0..20 {
        let r = notify(&s, A, &b.number_x, "", &format!("many-{i}")).await;
        assert_eq!(connected_to(&r), Some((B, b.number_y.as_str())));
        seqs.push(r.event_sequence);
    }
    assert!(
        s.store.route_index_hits() >= hits + 20,
        "all 20 from memory"
    );
    let events = s
        .calls()
        .watch_events(pb::WatchEventsRequest {
            after_sequence: seqs[0] - 1,
            kinds: vec!["call.incoming".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = events;
    let mut got = Vec::new();
    while got.len() < 20 {
        let e = events.message().await.unwrap().unwrap();
        got.push((e.sequence, e.call_id));
    }
    for (i, seq) in seqs.iter().enumerate() {
        assert!(
            got.contains(&(*seq, format!("many-{i}"))),
            "event of many-{i} at {seq}"
        );
    }

    // A retried call id gets the answer (and sequence) it got the first time.
    let again = notify(&s, A, &b.number_x, "", "many-3").await;
    assert_eq!(again.event_sequence, seqs[3]);
    // The same call id with another caller is refused, as on the database path.
    let err = s
        .calls()
        .notify_call_in(call_in(B, &b.number_x, "", "many-3"))
        .await
        .unwrap_err();
    assert_reason(&err, tonic::Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn an_acknowledged_unbind_stops_routing_at_once() {
    let s = TestServer::start().await;
    let b = xyb_converted(&s).await;
    until_served_from_memory(&s, A, &b.number_x, "", "warm").await;
    s.bindings()
        .unbind(pb::UnbindRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // No wait: the unbind was acknowledged, so this process must not route by it any more.
    let r = notify(&s, A, &b.number_x, "", "after-unbind").await;
    assert_eq!(r.decision, pb::Decision::NoBinding as i32, "{r:?}");
}

#[tokio::test]
async fn an_acknowledged_update_is_routed_by_at_once() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 2, "").await;
    let mut req = axn("p", A, 3600);
    req.phone_b = B.into();
    let b = s
        .bindings()
        .bind_axn_extension(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    // A calling X (no extension, nobody called A yet) reaches the default B.
    let r = until_served_from_memory(&s, A, &b.number_x, "", "warm").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(B));
    s.bindings()
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            phone_b: Some(C1.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = notify(&s, A, &b.number_x, "", "after-update").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(C1), "{r:?}");
}

#[tokio::test]
async fn expiry_is_checked_at_lookup() {
    let s = TestServer::start_with(pns_gateway::app::Settings {
        // No sweeper during the test: the lookup alone must notice the expiry.
        sweep_interval: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    let b = xyb_converted(&s).await;
    until_served_from_memory(&s, A, &b.number_x, "", "warm").await;
    let expire_ms = b.expire_time.unwrap().seconds * 1000;
    s.clock.advance(expire_ms - s.clock.now() + 1_000);
    let r = notify(&s, A, &b.number_x, "", "late").await;
    assert_eq!(r.decision, pb::Decision::NoBinding as i32, "{r:?}");
    assert_eq!(r.no_binding_reason, pb::NoBindingReason::Expired as i32);
}

#[tokio::test]
async fn an_extension_call_moves_a_s_call_back_at_once() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 2, "").await;
    let b = s
        .bindings()
        .bind_axn_extension(axn("p", A, 3600))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let (x, ext) = (b.number_x.clone(), b.extension.clone());
    let r = until_served_from_memory(&s, C1, &x, &ext, "c1").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(A));
    let r = until_served_from_memory(&s, A, &x, "", "back1").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(C1));
    // C2 calls the extension — answered from memory, as any caller without a route of its
    // own on X — and A's call-back goes to C2 from now on.
    let hits = s.store.route_index_hits();
    let r = notify(&s, C2, &x, &ext, "c2").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(A));
    assert_eq!(
        s.store.route_index_hits(),
        hits + 1,
        "the extension call came from memory"
    );
    let r = notify(&s, A, &x, "", "back2").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(C2), "{r:?}");
    // Many callers in turn: each call-back reaches the last of them.
    for i in 0..10 {
        let caller = format!("86137000001{i:02}");
        let r = notify(&s, &caller, &x, &ext, &format!("many-{i}")).await;
        assert_eq!(connected_to(&r).map(|c| c.0), Some(A));
        let r = notify(&s, A, &x, "", &format!("many-back-{i}")).await;
        assert_eq!(
            connected_to(&r).map(|c| c.0),
            Some(caller.as_str()),
            "{r:?}"
        );
    }
    // A itself keying the extension is A's own route (the call-back), never the extension.
    let r = notify(&s, A, &x, &ext, "a-with-ext").await;
    assert_eq!(
        connected_to(&r).map(|c| c.0),
        Some("8613700000109"),
        "{r:?}"
    );
}

/// Two servers on one database: a binding unbound through one stops routing on the other
/// within the index's staleness bound (the tailer's poll; `route_cache::STALE_AFTER` at most).
#[tokio::test]
async fn across_replicas_an_unbind_stops_routing_within_the_bound() {
    let one = TestServer::start().await;
    let two = TestServer::start_on(one.db.clone(), Default::default()).await;
    let b = xyb_converted(&one).await;
    let r = until_served_from_memory(&two, A, &b.number_x, "", "warm").await;
    assert_eq!(connected_to(&r).map(|c| c.0), Some(B));
    one.bindings()
        .unbind(pb::UnbindRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let t = Instant::now();
    let mut i = 0;
    loop {
        let r = notify(&two, A, &b.number_x, "", &format!("poll-{i}")).await;
        if r.decision == pb::Decision::NoBinding as i32 {
            break;
        }
        i += 1;
        // A liveness bound only (the figure is measured in BENCHMARKS.md): far above the
        // 500 ms staleness bound, so a loaded CI machine cannot fail it by being slow.
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still routed after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "replica stopped routing {} ms after the unbind",
        t.elapsed().as_millis()
    );
}
