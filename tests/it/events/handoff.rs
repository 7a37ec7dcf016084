//! `storage::handoff`: the events a process's group writer commits reach its own event tailer
//! from memory, exactly as the log holds them — so its subscribers get the same stream whether
//! an event was handed over or read back (the tailer's side: `events::fanout` and the rest of
//! `events`, which now run on handed-over events).

use futures_util::future::join_all;
use pns_gateway::domain::{
    AxnBind, CallIn, CallReport, CityMatch, EventFilter, PhoneNumber, Repository,
    call::CallEventKind, now_ms,
};

use crate::support::{TestServer, fixtures::*};

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).expect("phone")
}

/// AXN binds (their events appended at the batch's end), call-ins (the call's own event) and
/// call reports (appended by the write itself, with dedupe keys; one of each repeated) on the
/// store of a server whose tailer has stopped: every event the writer committed is held, and
/// what it hands over is exactly what the log reads back.
#[tokio::test]
async fn every_event_the_writer_commits_is_handed_over_as_the_log_holds_it() {
    let s = TestServer::start().await;
    pool_with(&s, "p", "1700000", 4, "").await;
    // The server's tailer ends with it; this test takes its place (the hand-over holds events
    // once a tailer has taken).
    let (store, _db) = (s.store.clone(), s.db.clone());
    s.stop().await.expect("server stopped");
    let before = store.latest_sequence().await.expect("latest");
    assert!(store.committed_after(before).is_empty());

    let now = now_ms();
    let binds = join_all((0..40).map(|i| {
        let store = store.clone();
        async move {
            let cmd = AxnBind {
                tenant: "default".into(),
                pool_key: "p".into(),
                phone_a: phone(&format!("139{i:08}")),
                phone_b: None,
                extension: None,
                number_x: None,
                expect_city: None,
                city_match: CityMatch::Loose,
                expire_at: now + 3_600_000,
                recording: false,
                out_id: String::new(),
                customer_bind_id: Some(format!("cb-{i}")),
                customer_user_id: "u".into(),
                ext: String::new(),
            };
            store.bind_axn(&cmd, now).await.expect("bind").0
        }
    }))
    .await;
    for (i, b) in binds.iter().take(10).enumerate() {
        let c = CallIn {
            caller: phone(b.phone_a.as_deref().expect("A")),
            called: phone(&b.number_x),
            extension: None,
            call_id: format!("handoff-{i}"),
        };
        let first = store.call_in(&c, now).await.expect("call-in").1;
        if i == 0 {
            assert_eq!(store.call_in(&c, now).await.expect("repeat").1, first);
        }
    }
    for i in 0..5 {
        let r = CallReport {
            kind: Some(CallEventKind::Hangup),
            call_id: format!("handoff-{i}"),
            ..Default::default()
        };
        let (seq, _) = store.report_call(r.clone(), now).await.expect("report");
        if i == 0 {
            assert_eq!(
                store.report_call(r, now).await.expect("repeat"),
                (seq, true)
            );
        }
    }

    let logged = store
        .read_events(&EventFilter {
            after: before,
            limit: 1_000,
            ..Default::default()
        })
        .await
        .expect("read the log");
    assert_eq!(logged.len(), 55, "40 binds, 10 call-ins, 5 reports");
    let handed = store.committed_after(before);
    if store.backend_name() == "mysql" {
        // No group writer on MySQL: a transaction per write, nothing handed over.
        assert!(handed.is_empty());
    } else {
        assert!(handed == logged, "handed over and read back differ");
    }
}
