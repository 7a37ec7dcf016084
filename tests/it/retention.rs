//! Retention (issue 9 item 5): the sweeper erases the real numbers of bindings ended longer
//! ago than the retention, and of their events (and of events about no binding), with the test
//! clock; live bindings and recent history keep theirs.

use std::time::Duration;

use pns_gateway::{app::Settings, grpc::pb};

use crate::support::{TestServer, fixtures::*};

const A: &str = "85291112222";
const B: &str = "85264654798";
const B2: &str = "85264650000";
const HOUR_MS: i64 = 3_600_000;

async fn events(s: &TestServer) -> Vec<pb::Event> {
    let mut st = s
        .calls()
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(300), st.message())
        .await
        .map(|r| r.transpose())
    {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn real_numbers_of_ended_bindings_are_erased_after_the_retention() {
    let s = TestServer::start_with(Settings {
        sweep_interval: Duration::from_millis(30),
        retention: Duration::from_secs(3600),
        ..Settings::default()
    })
    .await;
    pool_with(&s, "p", "1700000", 4, "").await;
    let mut c = s.bindings();
    let ended = c
        .bind_xyb(xyb("p", B))
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let mut live_req = xyb("p", B2);
    live_req.bind_expire_seconds = 10 * 3600;
    let live = c
        .bind_xyb(live_req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    for (called, id) in [
        (&ended.number_x, "call-1"),
        (&"17000009999".to_owned(), "call-2"),
    ] {
        s.calls()
            .notify_call_in(pb::NotifyCallInRequest {
                caller: A.into(),
                called: called.clone(),
                extension: String::new(),
                call_id: id.into(),
            })
            .await
            .unwrap();
    }
    c.unbind(pb::UnbindRequest {
        binding_id: ended.binding_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    // Within the retention: nothing is erased (several sweeps run meanwhile).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = get_binding(&s, &ended.binding_id).await;
    assert_eq!((got.phone_a.as_str(), got.phone_b.as_str()), (A, B));
    let before = events(&s).await;
    assert_eq!(
        before.iter().filter(|e| e.caller == A).count(),
        2,
        "{before:?}"
    );

    s.clock.advance(HOUR_MS + 60_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = get_binding(&s, &ended.binding_id).await;
        if got.phone_b.is_empty() {
            assert!(got.phone_a.is_empty(), "{got:?}");
            assert_eq!(got.number_x, ended.number_x, "virtual numbers stay");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not purged: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = events(&s).await;
    assert_eq!(after.len(), before.len(), "events stay, their numbers go");
    for e in &after {
        let purged = e.binding_id == ended.binding_id || e.binding_id.is_empty();
        if purged {
            assert!(
                e.caller.is_empty() && e.called.is_empty() && e.callee.is_empty(),
                "{e:?}"
            );
            assert_eq!(e.detail_json, r#"{"purged":true}"#, "{e:?}");
            assert_eq!(e.details, None, "nothing typed is left either: {e:?}");
        } else {
            assert_eq!(e.binding_id, live.binding_id);
            assert_ne!(e.detail_json, r#"{"purged":true}"#, "{e:?}");
            assert!(e.details.is_some(), "{e:?}");
        }
    }
    // The live binding keeps its numbers.
    let l = get_binding(&s, &live.binding_id).await;
    assert_eq!(l.phone_b, B2);
}
