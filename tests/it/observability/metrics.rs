//! `GET /metrics` on a real server: every series of issue 10 item 1 exists and moves.

use std::time::Duration;

use pns_gateway::grpc::pb;
use tonic::Code;

use super::{Scrape, scrape};
use crate::carriers::{self, ALI_TOKEN};
use crate::events::{after, next, watch};
use crate::support::{TestServer, fake_nxcloud, fixtures::*};

const BINDINGS: &str = "pns.v1.BindingService";

/// A pool key no other test uses (the registry is shared by every server of the process).
fn unique_pool() -> String {
    format!(
        "metrics-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let d = after.sum(name, labels) - before.sum(name, labels);
    assert!(
        d > 0.0,
        "{name}{labels:?} did not move: {} -> {}",
        before.sum(name, labels),
        after.sum(name, labels)
    );
    d
}

async fn post_push(s: &TestServer, path: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}{path}", s.http_addr))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_bind_a_carrier_failure_a_push_and_a_stream_move_their_series() {
    let e = carriers::start(None, None, 2000).await;
    let s = &e.s;
    let pool = unique_pool();
    pool_with(s, &pool, "8521313", 3, "").await;
    let before = scrape(s).await;

    // A local bind, a carrier bind the carrier refuses, and one it accepts.
    let mut c = s.bindings();
    c.bind_xyb(xyb(&pool, "85264654798")).await.unwrap();
    e.nx.set_next(fake_nxcloud::Behaviour::ErrorCode(10010));
    let err = c.bind_xyb(xyb("nx", "85264654798")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    c.bind_xyb(xyb("nx", "85264654799")).await.unwrap();
    // A carrier push, stored; one with a wrong token.
    let push = r#"[{"call_id":"m1","phone_no":"13800000001","secret_no":"17000000001","call_type":0,"call_time":"2019-03-28 20:01:05"}]"#;
    assert_eq!(
        post_push(s, &format!("/webhooks/aliyun/{ALI_TOKEN}"), push).await,
        200
    );
    assert_eq!(
        post_push(s, "/webhooks/aliyun/wrong-token", push).await,
        401
    );
    // An event stream that has read its first event and stays open.
    let mut stream = watch(s, after(0)).await;
    next(&mut stream).await;

    let after = scrape(s).await;
    let ok = [("service", BINDINGS), ("method", "BindXyb"), ("code", "OK")];
    assert!(moved(&before, &after, "pns_grpc_requests_total", &ok) >= 2.0);
    moved(
        &before,
        &after,
        "pns_grpc_requests_total",
        &[
            ("service", BINDINGS),
            ("method", "BindXyb"),
            ("code", "RESOURCE_EXHAUSTED"),
        ],
    );
    let latency = [("service", BINDINGS), ("method", "BindXyb")];
    assert!(
        moved(
            &before,
            &after,
            "pns_grpc_request_duration_seconds_count",
            &latency
        ) >= 3.0
    );
    assert!(after.sum("pns_grpc_request_duration_seconds_sum", &latency) > 0.0);
    assert!(after.has(
        "pns_grpc_request_duration_seconds_bucket",
        &[("method", "BindXyb"), ("le", "+Inf")]
    ));

    for provider in ["local", "nxcloud"] {
        moved(
            &before,
            &after,
            "pns_binds_total",
            &[
                ("provider", provider),
                ("mode", "xyb"),
                ("outcome", "created"),
            ],
        );
    }
    let nx_bind = [("provider", "nxcloud"), ("action", "bindXYB")];
    moved(
        &before,
        &after,
        "pns_upstream_requests_total",
        &[nx_bind[0], nx_bind[1], ("result", "ok")],
    );
    moved(
        &before,
        &after,
        "pns_upstream_requests_total",
        &[nx_bind[0], nx_bind[1], ("result", "no_available_number")],
    );
    assert!(
        moved(
            &before,
            &after,
            "pns_upstream_request_duration_seconds_count",
            &nx_bind
        ) >= 2.0
    );

    for result in ["stored", "unauthorized"] {
        moved(
            &before,
            &after,
            "pns_webhook_pushes_total",
            &[("provider", "aliyun"), ("result", result)],
        );
    }
    moved(
        &before,
        &after,
        "pns_webhook_reports_stored_total",
        &[("provider", "aliyun")],
    );

    assert!(
        after.sum("pns_event_streams", &[]) >= 1.0,
        "our stream is open"
    );
    assert!(after.has("pns_event_stream_lag_events", &[]));
    assert!(after.sum("pns_event_log_sequence", &[]) >= 1.0);
    assert_eq!(after.sum("pns_db_up", &[]), 1.0);
    assert!(after.sum("pns_db_pool_max_connections", &[]) >= 1.0);
    assert!(after.has("pns_db_pool_connections", &[("state", "idle")]));
    assert!(after.has("pns_db_pool_connections", &[("state", "in_use")]));
    moved(&before, &after, "pns_db_commit_batch_writes_count", &[]);

    // Descriptions and types are exported with the series.
    assert_eq!(after.kind["pns_grpc_requests_total"], "counter");
    assert_eq!(after.kind["pns_grpc_request_duration_seconds"], "histogram");
    assert_eq!(after.kind["pns_pool_numbers"], "gauge");
    assert!(after.help["pns_binds_total"].contains("provider"));

    // No binding id, number or request id became a label value.
    let b = c
        .bind_xyb(xyb(&pool, "85264654790"))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let text = reqwest::get(format!("http://{}/metrics", s.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [b.binding_id.as_str(), &b.number_x, "85264654790"] {
        assert!(!text.contains(secret), "{secret} appears in /metrics");
    }

    // A stream the client closes counts as CANCELLED once the server notices (bounded wait).
    let cancelled = [
        ("service", "pns.v1.CallService"),
        ("method", "WatchEvents"),
        ("code", "CANCELLED"),
    ];
    let base = scrape(s).await.sum("pns_grpc_requests_total", &cancelled);
    drop(stream);
    let mut now = base;
    for _ in 0..200 {
        now = scrape(s).await.sum("pns_grpc_requests_total", &cancelled);
        if now > base {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(now > base, "closed stream counted: {base} -> {now}");
}

#[tokio::test]
async fn pool_numbers_are_exported_per_pool_and_state() {
    let s = TestServer::start().await;
    let pool = unique_pool();
    pool_with(&s, &pool, "8521314", 4, "").await;
    // XYB: X locked, Y shared; one number retired.
    s.bindings()
        .bind_xyb(xyb(&pool, "85264654798"))
        .await
        .unwrap();
    let free = s
        .pools()
        .list_numbers(pb::ListNumbersRequest {
            pool_key: pool.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .numbers
        .into_iter()
        .find(|n| n.locked_by_binding_id.is_empty() && n.shared_bindings == 0)
        .unwrap();
    s.pools()
        .set_number_state(pb::SetNumberStateRequest {
            pool_key: pool.clone(),
            number: free.number,
            state: pb::NumberState::Retired as i32,
        })
        .await
        .unwrap();

    // The first scrape of this server reads the pools.
    let m = scrape(&s).await;
    let get = |state: &str| m.sum("pns_pool_numbers", &[("pool", &pool), ("state", state)]);
    assert_eq!(
        [
            get("free"),
            get("locked"),
            get("shared"),
            get("reserved"),
            get("retired")
        ],
        [1.0, 1.0, 1.0, 0.0, 1.0]
    );
    let stats = stats(&s, &pool).await;
    assert_eq!(
        (stats.free, stats.locked, stats.shared),
        (1, 1, 1),
        "the gauge counts as GetPoolStats does"
    );
}

#[tokio::test]
async fn the_sweeper_reports_its_last_successful_round() {
    let s = TestServer::start_with(crate::support::server::fast_sweeper()).await;
    let first = scrape(&s)
        .await
        .sum("pns_sweeper_last_success_timestamp_seconds", &[]);
    // Wait (bounded) for a round of this server's sweeper after the first scrape.
    let mut last = first;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = scrape(&s)
            .await
            .sum("pns_sweeper_last_success_timestamp_seconds", &[]);
        if last > first {
            break;
        }
    }
    assert!(last > first, "the gauge moved: {first} -> {last}");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - 3600.0..=now + 1.0).contains(&last),
        "unix seconds: {last}"
    );
}
