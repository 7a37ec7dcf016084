//! Issue 7 item 11: stored values decode strictly. A row that does not decode is an error the
//! operator sees (INTERNAL, logged with the cause), never a default that turns into a wrong
//! routing answer.

use pns_gateway::grpc::pb;
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;

use crate::support::{TestServer, fixtures::*};

const A: &str = "85291112222";
const B: &str = "85264654798";

async fn sql(s: &TestServer, stmt: &str) {
    let db = Database::connect(&s.db.url).await.expect("connect");
    db.execute_unprepared(stmt).await.expect(stmt);
    db.close().await.ok();
}

#[tokio::test]
async fn corrupt_stored_rows_surface_as_errors_not_as_routing_answers() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.number_x = numbers[0].clone();
    let b = s
        .bindings()
        .bind_xyb(req)
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    let first = s
        .calls()
        .notify_call_in(call_in(A, &b.number_x, "", "c-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.decision, pb::Decision::Connect as i32);

    // A retried call-in answers from the recorded decision: a corrupt record is an error, not
    // a made-up "direction not allowed".
    let x = b.number_x.clone();
    let id = b.binding_id.clone();
    for (corruption, call_id) in [
        // An unknown decision, then a detail that is not JSON.
        (
            "UPDATE events SET detail_json = '{\"decision\":\"teleport\"}' WHERE call_id = 'c-1'"
                .to_owned(),
            "c-1",
        ),
        (
            "UPDATE events SET detail_json = 'not json' WHERE call_id = 'c-1'".to_owned(),
            "c-1",
        ),
        // An unknown call-in strategy on the routed binding: not silently FIXED.
        (
            format!("UPDATE bindings SET call_in_strategy = 7 WHERE id = '{id}'"),
            "c-2",
        ),
        // An unknown state: not silently EXPIRED.
        (
            format!("UPDATE bindings SET call_in_strategy = 0, state = 'bogus' WHERE id = '{id}'"),
            "c-3",
        ),
    ] {
        sql(&s, &corruption).await;
        let st = s
            .calls()
            .notify_call_in(call_in(A, &x, "", call_id))
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::Internal, "{corruption}: {st:?}");
        assert_eq!(
            st.message(),
            "internal error",
            "the cause is logged, not sent"
        );
    }
    let st = s
        .bindings()
        .get_binding(pb::GetBindingRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Internal, "{st:?}");
}

/// An event whose stored provider is not one we know is an error for the reader, not an event
/// without a provider.
#[tokio::test]
async fn a_corrupt_event_is_an_error_for_the_stream_that_reads_it() {
    let s = TestServer::start().await;
    let numbers = pool_with(&s, "p", "8521313", 3, "").await;
    let mut req = xyb("p", B);
    req.number_x = numbers[0].clone();
    s.bindings().bind_xyb(req).await.unwrap();
    sql(&s, "UPDATE events SET provider = 'bogus'").await;
    // A fresh server: its event ring starts at the end of the log, so a stream from 0 reads
    // the stored events.
    let db = s.db.clone();
    drop(s);
    let s = TestServer::start_on(db, Default::default()).await;
    let mut stream = s
        .calls()
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let st = stream.message().await.unwrap_err();
    assert_eq!(st.code(), Code::Internal, "{st:?}");
}
