//! Issue 8 item 5: a database outage fails fast and heals by itself. The server reaches
//! PostgreSQL or MySQL through a proxy that the test cuts (every connection reset, new ones refused) and
//! restores. SQLite is embedded and cannot become unreachable: there the test checks only that
//! the database is reported reachable.

use std::{sync::Arc, time::Duration};

use pns_gateway::{app::Settings, grpc::pb, storage::StoreOptions};
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

use crate::support::{TestDb, TestServer, db::server_selected, fixtures::*, proxy::Proxy};

async fn status(s: &TestServer, service: &str) -> i32 {
    HealthClient::new(s.channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers even when the database does not")
        .into_inner()
        .status
}

async fn readyz(s: &TestServer) -> (u16, Duration) {
    let t0 = Instant::now();
    let code = reqwest::get(format!("http://{}/readyz", s.http_addr))
        .await
        .expect("readyz answers")
        .status()
        .as_u16();
    (code, t0.elapsed())
}

/// A fresh database and a proxy in front of it (PostgreSQL or MySQL).
async fn behind_proxy() -> (Arc<TestDb>, Proxy) {
    let db = Arc::new(TestDb::new().await);
    let (_, rest) = db.url.split_once('@').expect("user@host in the test URL");
    let (hostport, _) = rest.split_once('/').expect("/database");
    let proxy = Proxy::start(hostport.to_owned()).await;
    (db, proxy)
}

/// A server that reaches `db` through `proxy`, with a 1 s database timeout.
async fn start_through(proxy: &Proxy, db: Arc<TestDb>) -> TestServer {
    // postgres://user@host:port/name (or mysql://…) -> the same through the proxy.
    let (head, rest) = db.url.split_once('@').expect("user@host in the test URL");
    let (_, name) = rest.split_once('/').expect("/database");
    let via = format!("{head}@127.0.0.1:{}/{name}", proxy.port);
    let opts = StoreOptions {
        timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    TestServer::start_at(db, &via, opts, Settings::default()).await
}

/// Polls `f` every 50 ms until it holds; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t0.elapsed()
}

#[tokio::test]
async fn a_database_outage_fails_fast_reports_not_serving_and_heals_by_itself() {
    const BINDING: &str = "pns.v1.BindingService";
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    if !server_selected() {
        let s = TestServer::start().await;
        assert_eq!(readyz(&s).await.0, 200);
        assert_eq!(status(&s, BINDING).await, serving);
        return;
    }
    let (db, proxy) = behind_proxy().await;
    let s = start_through(&proxy, db).await;
    pool_with(&s, "p", "8521313", 4, "").await;
    let b = s
        .bindings()
        .bind_xyb(xyb("p", "85264654798"))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(readyz(&s).await.0, 200);
    // A's first call-in converts the binding; later ones come from the route index.
    const A: &str = "8613800000001";
    let notify = |id: String| {
        let mut calls = s.calls();
        let req = call_in(A, &b.number_x, "", &id);
        async move { calls.notify_call_in(req).await }
    };
    notify("first".into()).await.unwrap();
    let hits = s.store.route_index_hits();
    let mut i = 0;
    within(
        Duration::from_secs(5),
        "a call-in from the route index",
        || {
            i += 1;
            let f = notify(format!("warm-{i}"));
            let store = s.store.clone();
            async move { f.await.is_ok() && store.route_index_hits() > hits }
        },
    )
    .await;

    proxy.cut();
    let t = within(Duration::from_millis(1500), "NOT_SERVING", || async {
        status(&s, BINDING).await == not_serving
    })
    .await;
    eprintln!("health NOT_SERVING {t:?} after the cut");
    assert_eq!(status(&s, "").await, not_serving);
    assert_eq!(status(&s, "pns.v1.NumberPoolService").await, not_serving);
    let (code, took) = readyz(&s).await;
    assert_eq!(code, 503);
    assert!(took < Duration::from_secs(1), "readyz took {took:?}");

    // Writes fail fast, with a retry hint; nothing hangs for the 30 s of old.
    for _ in 0..3 {
        let t0 = Instant::now();
        let st = s
            .bindings()
            .bind_xyb(xyb("p", "85264654799"))
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::Unavailable, "{st:?}");
        assert!(st.get_details_retry_info().is_some(), "{st:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
    // A call-in whose route this process knows still connects (its event cannot be recorded:
    // sequence 0); one it would have to look up fails fast like any read.
    let r = notify("during-outage".into()).await.unwrap().into_inner();
    assert_eq!(r.decision, pb::Decision::Connect as i32, "{r:?}");
    assert_eq!(r.connect_to, "85264654798");
    assert_eq!(
        r.event_sequence, 0,
        "not recorded while the database is unreachable"
    );
    let st = s
        .calls()
        .notify_call_in(call_in("8613800000002", &b.number_x, "", "unknown-caller"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    // Reads too (they do not go through the write path's short cut).
    let t0 = Instant::now();
    let st = s
        .pools()
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: "p".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Long after the flip: CallService stays SERVING, the route index answers the calls this
    // server knows.
    assert_eq!(status(&s, "pns.v1.CallService").await, serving);

    proxy.restore();
    let t = within(Duration::from_secs(5), "SERVING again", || async {
        status(&s, BINDING).await == serving
    })
    .await;
    eprintln!("health SERVING {t:?} after the restore");
    assert_eq!(readyz(&s).await.0, 200);
    // The pool heals too: the first requests may meet a dead pooled connection once.
    within(Duration::from_secs(5), "a bind succeeds", || async {
        s.bindings().bind_xyb(xyb("p", "85264654799")).await.is_ok()
    })
    .await;
    // Call-ins record their events again.
    let r = notify("after-outage".into()).await.unwrap().into_inner();
    assert!(r.event_sequence > 0, "{r:?}");
}

/// The event tailer cut off from the database retries until it reads again: what another
/// replica (connected directly) committed during the outage reaches this replica's live
/// subscriber after the restore — every event, in order, none twice. (The tailer polls every
/// 100 ms, so it fails many times over the two seconds the proxy is cut.)
#[tokio::test]
async fn the_event_tailer_reads_again_after_an_outage_and_misses_nothing() {
    if !server_selected() {
        // SQLite is embedded: it cannot become unreachable.
        return;
    }
    let (db, proxy) = behind_proxy().await;
    let cut_off = start_through(&proxy, db.clone()).await;
    let direct = TestServer::start_on(db.clone(), Settings::default()).await;
    pool_with(&direct, "p", "8521314", 10, "").await;
    let mut live = crate::events::watch(
        &cut_off,
        pb::WatchEventsRequest {
            from_now: true,
            pool_key: "p".into(),
            ..Default::default()
        },
    )
    .await;

    proxy.cut();
    within(Duration::from_millis(1500), "NOT_SERVING", || async {
        status(&cut_off, "pns.v1.BindingService").await == ServingStatus::NotServing as i32
    })
    .await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            bound(&direct, xyb("p", &format!("8526465480{i}")))
                .await
                .binding_id,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();

    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < made.len() {
        let e = crate::events::next(&mut live).await;
        assert!(
            e.sequence > last,
            "out of order or twice: {} after {last}",
            e.sequence
        );
        last = e.sequence;
        assert_eq!(e.kind, "binding.created");
        seen.push(e.binding_id);
    }
    assert_eq!(
        seen, made,
        "every event the other replica committed, in order"
    );
}
