//! Health, reflection and graceful shutdown.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::TestServer;

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let s = TestServer::start().await;
    let mut h = HealthClient::new(s.channel.clone());
    for svc in ["", "pns.v1.BindingService", "pns.v1.NumberPoolService"] {
        let r = h
            .check(HealthCheckRequest {
                service: svc.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "service {svc:?}");
    }
}

#[tokio::test]
async fn reflection_lists_every_service_without_proto_files() {
    let s = TestServer::start().await;
    let mut c = ServerReflectionClient::new(s.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected {resp:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "pns.v1.BindingService",
        "pns.v1.NumberPoolService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_cleanly() {
    let s = TestServer::start().await;
    let addr = s.addr;
    s.stop().await.expect("server stops without error");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port is closed after shutdown"
    );
}

#[tokio::test]
async fn http_liveness_and_readiness_answer() {
    let s = TestServer::start().await;
    for path in ["/livez", "/readyz"] {
        let body = http_get(s.http_addr, path).await;
        assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out
}
