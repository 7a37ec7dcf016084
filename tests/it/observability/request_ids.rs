//! Request ids (issue 10 item 2): echoed when sent, generated when not (or when invalid), in
//! every error's ErrorInfo metadata, on every log line of the request; rejections logged once
//! at INFO with code and reason.

use std::time::Duration;

use pns_gateway::grpc::pb;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::carriers::NX_TOKEN;
use crate::support::{TestServer, fixtures::*, logs::Captured};

const HEADER: &str = "x-request-id";

fn with_id<T>(msg: T, id: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(HEADER, id.parse().unwrap());
    r
}

fn id_of(md: &tonic::metadata::MetadataMap) -> String {
    md.get(HEADER)
        .expect("x-request-id in the response metadata")
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_uuid_v7(id: &str) {
    let u = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id:?} is not a UUID"));
    assert_eq!(u.get_version_num(), 7, "{id}");
}

/// The request id in the status's ErrorInfo metadata (and the reason), asserting it equals
/// the one in the status metadata.
fn error_id(st: &Status) -> (String, String) {
    let info = st
        .get_details_error_info()
        .unwrap_or_else(|| panic!("ErrorInfo in {st:?}"));
    let id = info
        .metadata
        .get("request_id")
        .unwrap_or_else(|| panic!("request_id in {:?}", info.metadata))
        .clone();
    assert_eq!(id_of(st.metadata()), id, "metadata and ErrorInfo agree");
    (id, info.reason)
}

fn missing_binding() -> pb::GetBindingRequest {
    pb::GetBindingRequest {
        binding_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_sent_request_id_is_echoed_on_success_and_in_errors() {
    let s = TestServer::start().await;
    let r = s
        .pools()
        .list_pools(with_id(pb::ListPoolsRequest::default(), "order-42:retry.1"))
        .await
        .unwrap();
    assert_eq!(id_of(r.metadata()), "order-42:retry.1");

    let st = s
        .bindings()
        .get_binding(with_id(missing_binding(), "caller-id_7"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound);
    assert_eq!(
        error_id(&st),
        ("caller-id_7".to_owned(), "BINDING_NOT_FOUND".to_owned())
    );
}

#[tokio::test]
async fn a_missing_or_invalid_request_id_is_replaced_by_a_generated_one() {
    let s = TestServer::start().await;
    let r = s
        .pools()
        .list_pools(pb::ListPoolsRequest::default())
        .await
        .unwrap();
    let first = id_of(r.metadata());
    assert_uuid_v7(&first);
    let r = s
        .pools()
        .list_pools(pb::ListPoolsRequest::default())
        .await
        .unwrap();
    assert_ne!(id_of(r.metadata()), first, "a new id per request");

    for bad in [
        "a".repeat(65),
        "has space".into(),
        "quote\"d".into(),
        "{json}".into(),
    ] {
        let st = s
            .bindings()
            .get_binding(with_id(missing_binding(), &bad))
            .await
            .unwrap_err();
        let (id, _) = error_id(&st);
        assert_ne!(id, bad);
        assert_uuid_v7(&id);
    }
    // Validation errors keep their violations beside the id.
    let st = s
        .bindings()
        .bind_xyb(with_id(xyb("", "not a number"), "v-1"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(error_id(&st).0, "v-1");
    assert!(!violated_fields(&st).is_empty(), "BadRequest kept: {st:?}");
}

#[tokio::test]
async fn interceptor_rejections_carry_the_request_id_too() {
    let s = TestServer::start_with(crate::auth::keyed()).await;
    let st = s
        .bindings()
        .get_binding(with_id(missing_binding(), "no-key-1"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unauthenticated);
    assert_eq!(
        error_id(&st),
        ("no-key-1".to_owned(), "API_KEY_MISSING".to_owned())
    );
}

#[tokio::test]
async fn a_stream_ended_by_an_error_gets_error_info_with_the_request_id() {
    let s = TestServer::start().await;
    let stream = s
        .calls()
        .watch_events(with_id(crate::events::after(0), "watch-1"))
        .await
        .unwrap();
    assert_eq!(id_of(stream.metadata()), "watch-1");
    let mut stream = stream.into_inner();
    // Shutdown ends the stream with UNAVAILABLE in its trailers (a status built without
    // ErrorInfo in a task of its own).
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("stopped")
        .expect("clean stop");
    let st = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends")
        .expect_err("with a status");
    assert_eq!(st.code(), Code::Unavailable);
    let info = st.get_details_error_info().expect("ErrorInfo added");
    assert_eq!(info.reason, "UNAVAILABLE");
    assert_eq!(info.domain, "pns.gateway");
    assert_eq!(info.metadata["request_id"], "watch-1");
}

#[tokio::test]
async fn http_requests_echo_or_get_a_request_id() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{}/livez", s.http_addr))
        .header(HEADER, "probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[HEADER], "probe-1");
    let r = http
        .post(format!(
            "http://{}/webhooks/nxcloud/{NX_TOKEN}",
            s.http_addr
        ))
        .header(HEADER, "bad id")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token configured on this server");
    assert_uuid_v7(r.headers()[HEADER].to_str().unwrap());
}

// A current-thread runtime (the `tokio::test` default): the server's tasks run on this thread,
// so the thread-scoped subscriber sees every span and event they emit.
#[tokio::test]
async fn handler_log_lines_carry_the_request_id_and_rejections_are_logged_once() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let s = TestServer::start().await;
    pool_with(&s, "p", "8521313", 3, "").await;
    tracing::callsite::rebuild_interest_cache();
    s.bindings()
        .bind_xyb(with_id(xyb("p", "85264654798"), "bind-log-1"))
        .await
        .unwrap();
    let st = s
        .bindings()
        .get_binding(with_id(missing_binding(), "reject-log-1"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound);
    let st = s
        .bindings()
        .bind_xyb(with_id(xyb("p", "8526465479800000000000"), "reject-log-2"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    drop(s);

    let text = logs.text();
    let bound: Vec<&str> = text.lines().filter(|l| l.contains("xyb bound")).collect();
    assert_eq!(bound.len(), 1, "{text}");
    assert!(bound[0].contains("request_id=bind-log-1"), "{}", bound[0]);
    assert!(
        bound[0].contains("pns.v1.BindingService/BindXyb"),
        "{}",
        bound[0]
    );

    let rejected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request rejected"))
        .collect();
    assert_eq!(rejected.len(), 2, "once per rejected request:\n{text}");
    assert!(rejected[0].contains(" INFO "), "{}", rejected[0]);
    assert!(
        rejected[0].contains("request_id=reject-log-1"),
        "{}",
        rejected[0]
    );
    assert!(rejected[0].contains("code=\"NOT_FOUND\"") || rejected[0].contains("code=NOT_FOUND"));
    assert!(rejected[0].contains("BINDING_NOT_FOUND"), "{}", rejected[0]);
    assert!(rejected[0].contains("GetBinding"), "{}", rejected[0]);
    assert!(
        rejected[1].contains("request_id=reject-log-2"),
        "{}",
        rejected[1]
    );
    // The message (it quotes the number sent) is not logged with the rejection.
    assert!(
        !rejected[1].contains("8526465479800000000000"),
        "{}",
        rejected[1]
    );
}
