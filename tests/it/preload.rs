//! Issue 8 item 7: the bulk preload of `pns-load --preload` (`Store::preload_axyb`). The rows
//! it writes straight into the database are the ones the server writes: `check` finds nothing,
//! and a running server routes every preloaded binding (A -> X reaches B, B -> Y reaches A)
//! without a restart.

use std::process::Command;

use pns_gateway::{grpc::pb, storage::PreloadSpec};

use crate::support::{TestDb, TestServer, fixtures::*};

fn spec(bindings: u64, numbers: u64) -> PreloadSpec {
    PreloadSpec {
        pool_key: "preload".into(),
        tenant: "default".into(),
        bindings,
        numbers,
        number_prefix: "9123457".into(),
        a_prefix: "86137".into(),
        b_prefix: "86138".into(),
        ttl_seconds: 3600,
    }
}

async fn connects(s: &TestServer, caller: &str, called: &str, id: &str) -> (i32, String, String) {
    let r = s
        .calls()
        .notify_call_in(call_in(caller, called, "", id))
        .await
        .expect("notify")
        .into_inner();
    (r.decision, r.connect_to, r.display_number)
}

/// 2,000 bindings on 7 numbers (each number X and Y of hundreds of bindings) into the
/// database of a running server: clean check, every sampled binding routes both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preloaded_bindings_pass_the_check_and_route_on_a_running_server() {
    let s = TestServer::start().await;
    let spec = spec(2_000, 7);
    let mut seen = Vec::new();
    let done = s
        .store
        .preload_axyb(&spec, |n| seen.push(n))
        .await
        .expect("preload");
    assert_eq!(
        (done.bindings, done.routes, done.numbers),
        (2_000, 4_000, 7)
    );
    assert_eq!(seen.last(), Some(&2_000));

    let found = s.store.check_invariants().await.expect("check");
    assert!(found.is_empty(), "{found:?}");
    let scope = s.store.check_scope().await.expect("scope");
    assert_eq!((scope.active_bindings, scope.routes), (2_000, 4_000));

    let stats = stats(&s, "preload").await;
    assert_eq!((stats.total, stats.locked), (7, 0), "{stats:?}");

    for i in [0u64, 1, 6, 7, 999, 1_000, 1_999] {
        let (a, b) = (spec.caller_a(i), spec.caller_b(i));
        let (x, y) = (spec.number_x(i), spec.number_y(i));
        // Twice: the database path, then the route index.
        for round in 0..2 {
            let (d, to, shown) = connects(&s, &a, &x, &format!("pre-{i}-a-{round}")).await;
            assert_eq!(d, pb::Decision::Connect as i32, "binding {i}: A -> X");
            assert_eq!((to.as_str(), shown.as_str()), (b.as_str(), y.as_str()));
            let (d, to, shown) = connects(&s, &b, &y, &format!("pre-{i}-b-{round}")).await;
            assert_eq!(d, pb::Decision::Connect as i32, "binding {i}: B -> Y");
            assert_eq!((to.as_str(), shown.as_str()), (a.as_str(), x.as_str()));
        }
    }
    // A caller of another binding on the same X is routed to its own B, not this one's.
    let (d, to, _) = connects(&s, &spec.caller_a(7), &spec.number_x(0), "pre-cross").await;
    assert_eq!(d, pb::Decision::Connect as i32);
    assert_eq!(to, spec.caller_b(7));
}

/// Through the tool: `pns-load --preload` then call-ins on the preloaded bindings, `--check`
/// clean after.
#[tokio::test]
async fn pns_load_preload_routes_and_checks_clean() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pns-load"))
            .args([
                "--database-url",
                &url,
                "--preload",
                "2000",
                "--scenarios",
                "notify-preloaded",
                "--duration",
                "0.3",
                "--connections",
                "2",
                "--concurrency",
                "2",
                "--check",
                "--json",
            ])
            .env("PNS_LOG", "warn")
            .output()
            .expect("run pns-load")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("preload: 2000 bindings, 4000 routes, 20 numbers"),
        "{text}"
    );
    assert!(text.contains("check: ok: no anomalies in "), "{text}");
    let row: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("a json row"),
    )
    .expect("json");
    assert_eq!(row["scenario"], "notify-preloaded", "{row}");
    assert!(row["ok"].as_u64().unwrap_or(0) > 0, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    assert_eq!(row["run"]["preload"]["bindings"], 2000, "{row}");
    assert!(
        row["server_rss_mib"][0].as_f64().unwrap_or(0.0) > 0.0,
        "{row}"
    );
}
