//! Certificate reload: replaced files are picked up by new connections (polled; SIGHUP does
//! the same at once), connections made before keep working, and a bad replacement keeps the
//! certificate in use.

use std::time::{Duration, Instant};

use pns_gateway::{grpc::pb, net::tls::Tls};

use super::{Pki, handshake, list_pools, livez, tls_channel, tls_settings};
use crate::support::{
    TestServer,
    fixtures::{pool_with, xyb},
};

/// Waits (bounded) until a new connection is presented `want`.
async fn until_presented(addr: std::net::SocketAddr, ca: &str, alpn: &[u8], want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if handshake(addr, ca, alpn).await.0 == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replaced_files_reach_new_connections_and_old_ones_keep_working() {
    let pki = Pki::new("pns test CA");
    let first = pki.server("pns-first");
    let files = pki.files(&first, false);
    let tls = Tls::load(files.clone()).unwrap();
    let mut s = TestServer::start_with(tls_settings(tls.clone())).await;
    let ca = pki.ca_pem();

    // Before: an HTTP/1.1 connection (kept alive) and a gRPC stream, both on the first
    // certificate.
    let (der, mut old_http) = handshake(s.http_addr, &ca, b"http/1.1").await;
    assert_eq!(der, first.der());
    assert!(livez(&mut old_http).await.starts_with("HTTP/1.1 200"));
    let old_grpc = tls_channel(s.addr, &ca, None).await.unwrap();
    let mut stream = pb::call_service_client::CallServiceClient::new(old_grpc.clone())
        .watch_events(pb::WatchEventsRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // The files are replaced (key first: for a moment they do not match, which must not
    // matter).
    let second = pki.server("pns-second");
    pki.write("server.key", &second.key);
    pki.write("server.pem", &second.cert);
    until_presented(s.http_addr, &ca, b"http/1.1", &second.der()).await;
    until_presented(s.addr, &ca, b"h2", &second.der()).await;

    // The connections made before still work, on the certificate they were made with.
    assert_eq!(
        old_http.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        first.der()
    );
    assert!(livez(&mut old_http).await.starts_with("HTTP/1.1 200"));
    s.channel = old_grpc.clone();
    pool_with(&s, "p1", "8617000", 2, "").await;
    s.bindings()
        .bind_xyb(xyb("p1", "8613900000001"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("the stream was not ended");
    assert_eq!(ev.pool_key, "p1");
    // New gRPC connections work on the new certificate.
    let fresh = tls_channel(s.addr, &ca, None).await.unwrap();
    assert_eq!(list_pools(fresh).await.unwrap(), 1);

    // A bad replacement: the reload fails naming the file, and the second certificate stays.
    pki.write(
        "server.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let e = tls.reload(true).unwrap_err();
    assert!(e.contains(&files.cert.display().to_string()), "{e}");
    assert_eq!(handshake(s.addr, &ca, b"h2").await.0, second.der());
    // Another CA's certificate with its own key loads (the server does not check who issued
    // its own certificate), so a forced reload swaps to it.
    let third = Pki::new("other CA").server("pns-third");
    pki.write("server.key", &third.key);
    pki.write("server.pem", &third.cert);
    assert!(tls.reload(true).unwrap());
}
