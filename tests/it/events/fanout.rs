//! Issue 8 item 4: the in-process fan-out. Streams are capped (RESOURCE_EXHAUSTED beyond the
//! cap, with a retry hint); a subscriber that stops reading is cut off after the cut-off with a
//! resumable status and gives its slot back while filtered readers keep receiving; subscribers resuming from before the ring read the
//! database and join the ring without a gap or a duplicate.

use std::time::Duration;

use futures_util::future::join_all;
use pns_gateway::{app::Settings, grpc::pb};
use tonic::Code;
use tonic_types::StatusExt;

use super::{bind, strictly_increasing};
use crate::support::{TestServer, fixtures::*};

fn watch_all(after: i64) -> pb::WatchEventsRequest {
    pb::WatchEventsRequest {
        after_sequence: after,
        ..Default::default()
    }
}

/// `n` call-ins to a pool number nobody holds: one `call.incoming` event each.
async fn call_ins(s: &TestServer, number: &str, n: usize, tag: &str) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        join_all(chunk.iter().map(|i| {
            let mut c = s.calls();
            let req = call_in("13800000002", number, "", &format!("{tag}-{i}"));
            async move { c.notify_call_in(req).await.expect("call-in") }
        }))
        .await;
    }
}

/// A WatchEvents stream of everything on a client that never reads it, with HTTP/2 windows of
/// the protocol's default 64 KiB (tonic's own default would buffer megabytes in the client before
/// the server notices), so the server's buffer for it fills.
async fn never_reading(s: &TestServer) -> tonic::Streaming<pb::Event> {
    let small = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    pb::call_service_client::CallServiceClient::new(small)
        .watch_events(watch_all(0))
        .await
        .unwrap()
        .into_inner()
}

/// Reads a cut-off stream to its end: what it had buffered, in order and without a gap, then the
/// resumable RESOURCE_EXHAUSTED status. Returns the last sequence received.
async fn drain_until_cut_off(stuck: &mut tonic::Streaming<pb::Event>) -> i64 {
    let mut last = 0;
    let status = loop {
        match stuck.message().await {
            Ok(Some(ev)) => {
                assert_eq!(ev.sequence, last + 1, "in order, no gap");
                last = ev.sequence;
            }
            Ok(None) => panic!("the stream ended without a status"),
            Err(st) => break st,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("after_sequence"), "{status:?}");
    assert!(last > 0 && last < 1500, "{last}");
    last
}

#[tokio::test]
async fn streams_are_capped_and_a_subscriber_that_stops_reading_is_cut_off() {
    let s = capped_server(2).await;
    let numbers = pool_with(&s, "p", "8521313", 1, "").await;
    // A client that reads nothing.
    let mut stuck = never_reading(&s).await;
    let reader = s
        .calls()
        .watch_events(watch_all(0))
        .await
        .unwrap()
        .into_inner();
    let st = s.calls().watch_events(watch_all(0)).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert_eq!(
        st.get_details_error_info().map(|i| i.reason),
        Some("TOO_MANY_STREAMS".to_owned())
    );
    assert!(st.get_details_retry_info().is_some());
    drop(reader);

    // Far more than the stream's buffers hold; the stuck subscriber reads nothing meanwhile.
    call_ins(&s, &numbers[0], 1500, "flood").await;
    // Its slot comes back once it is cut off (the other slot was freed by `drop(reader)`).
    let t0 = std::time::Instant::now();
    let mut open = Vec::new();
    loop {
        match s.calls().watch_events(watch_all(0)).await {
            Ok(st) => open.push(st.into_inner()),
            Err(st) => assert_eq!(st.code(), Code::ResourceExhausted),
        }
        if open.len() == 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stuck subscriber kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reading it now: what was buffered, then the resumable status.
    let last = drain_until_cut_off(&mut stuck).await;
    // Resuming after the last sequence received gets the rest, nothing twice.
    drop(open);
    // The slots of the dropped streams come back once the server sees them go (a client
    // retries as RetryInfo says).
    let t0 = std::time::Instant::now();
    let mut resumed = loop {
        match s.calls().watch_events(watch_all(last)).await {
            Ok(st) => break st.into_inner(),
            Err(st)
                if st.code() == Code::ResourceExhausted
                    && t0.elapsed() < Duration::from_secs(5) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(st) => panic!("{st:?}"),
        }
    };
    let total = 1500;
    let mut next = last + 1;
    while next <= total {
        let ev = tokio::time::timeout(Duration::from_secs(5), resumed.message())
            .await
            .expect("resumed stream delivers")
            .unwrap()
            .unwrap();
        assert_eq!(ev.sequence, next);
        next += 1;
    }
}

#[tokio::test]
async fn many_subscribers_from_old_and_new_cursors_all_see_every_event_once() {
    let s = TestServer::start_with(Settings {
        event_ring: 64, // small, so early cursors start in the database and join the ring
        ..Settings::default()
    })
    .await;
    let numbers = pool_with(&s, "p", "8521313", 1, "").await;
    call_ins(&s, &numbers[0], 200, "before").await;
    let mut subs = Vec::new();
    for after in [0, 10, 150, 199, 200] {
        subs.push((
            after,
            s.calls()
                .watch_events(watch_all(after))
                .await
                .unwrap()
                .into_inner(),
        ));
    }
    call_ins(&s, &numbers[0], 200, "after").await;
    for (after, mut st) in subs {
        for want in after + 1..=400 {
            let ev = tokio::time::timeout(Duration::from_secs(5), st.message())
                .await
                .unwrap_or_else(|_| panic!("subscriber after {after} stalled at {want}"))
                .unwrap()
                .unwrap();
            assert_eq!(ev.sequence, want, "subscriber after {after}");
        }
    }
}

/// A subscriber of `pool`'s events that reads `n` of them as they come.
async fn reader(s: &TestServer, pool: &str, n: usize) -> tokio::task::JoinHandle<Vec<pb::Event>> {
    let req = pb::WatchEventsRequest {
        pool_key: pool.into(),
        ..watch_all(0)
    };
    let mut st = s.calls().watch_events(req).await.unwrap().into_inner();
    tokio::spawn(async move {
        let mut got: Vec<pb::Event> = Vec::new();
        while got.len() < n {
            // Nothing of its pool arrives while the flood is written (slow on a busy machine).
            match tokio::time::timeout(Duration::from_secs(120), st.message()).await {
                Ok(Ok(Some(ev))) => got.push(ev),
                other => panic!("reader stopped after {} events: {other:?}", got.len()),
            }
        }
        got
    })
}

#[tokio::test]
async fn a_stuck_subscriber_is_cut_off_while_filtered_readers_keep_receiving() {
    const BINDS: usize = 20; // per pool, before and again after the cut-off
    let s = capped_server(3).await;
    let flood = pool_with(&s, "flood", "8521313", 1, "").await;
    pool_with(&s, "p", "8521314", 1, "").await;
    pool_with(&s, "q", "8521315", 1, "").await;
    // Watches everything and never reads.
    let mut stuck = never_reading(&s).await;
    // Two readers, each of one pool, reading as the events come.
    let (read_p, read_q) = (
        reader(&s, "p", 2 * BINDS).await,
        reader(&s, "q", 2 * BINDS).await,
    );
    // One at a time: each pool has one number, which concurrent binds would contend for.
    let binds = async |from: usize| {
        let mut made = Vec::new();
        for i in from..from + BINDS {
            made.push(bind(&s, "p", i, "p-user").await);
            made.push(bind(&s, "q", BINDS * 10 + i, "q-user").await);
        }
        made
    };
    // The pools' events, then far more than the stuck stream's buffers hold (call-ins, which
    // only the stuck stream watches).
    binds(0).await;
    call_ins(&s, &flood[0], 1500, "flood").await;
    // The stuck stream is cut off: its slot comes back (the cap is 3).
    let t0 = std::time::Instant::now();
    let extra = loop {
        match s.calls().watch_events(watch_all(0)).await {
            Ok(st) => break st.into_inner(),
            Err(st) => assert_eq!(st.code(), Code::ResourceExhausted),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stuck subscriber kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(extra);
    // The readers keep receiving after the cut-off.
    let after = binds(BINDS).await;
    for (pool, task) in [("p", read_p), ("q", read_q)] {
        let got = task.await.unwrap();
        assert!(got.iter().all(|e| e.pool_key == pool), "only pool {pool}");
        strictly_increasing(&got);
        let last = got.last().unwrap();
        assert!(
            after.iter().any(|b| b.binding_id == last.binding_id),
            "pool {pool}: its last event is from a bind after the cut-off"
        );
    }
    // The stuck stream: what it had buffered, in order, then the resumable status.
    drain_until_cut_off(&mut stuck).await;
}

/// A server allowing `max` event streams that cuts a non-reading one off after 300 ms.
async fn capped_server(max: usize) -> TestServer {
    TestServer::start_with(Settings {
        max_event_streams: max,
        stream_cutoff: Duration::from_millis(300),
        ..Settings::default()
    })
    .await
}
