//! TLS on both listeners (issue 9 item 3), through the real server with certificates made in
//! the test (rcgen): the generated gRPC client over rustls, reqwest for HTTP, and a raw rustls
//! client where the test must see the certificate presented. Plaintext is refused; mutual TLS
//! requires a certificate from the configured CA; replaced certificate files are picked up by
//! new connections while established ones keep working.

mod binary;
mod reload;

use std::{path::PathBuf, sync::Arc, time::Duration};

use pns_gateway::{
    app::Settings,
    grpc::pb::{self, number_pool_service_client::NumberPoolServiceClient},
    net::{
        NetOptions,
        tls::{Tls, TlsFiles},
    },
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::support::TestServer;

/// A test CA and the files a server is started with.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub(crate) struct Pair {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Pair {
    /// The DER of the (leaf) certificate, as a TLS peer presents it.
    pub(crate) fn der(&self) -> Vec<u8> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(self.cert.as_bytes())
            .unwrap()
            .to_vec()
    }
}

impl Pki {
    pub(crate) fn new(ca_name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, ca_name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        }
    }

    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn issue(&self, cn: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &self.ca).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub(crate) fn server(&self, cn: &str) -> Pair {
        self.issue(
            cn,
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub(crate) fn client(&self, cn: &str) -> Pair {
        self.issue(cn, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `pair` as `server.pem` / `server.key` (and the CA as `ca.pem` when `mutual`).
    pub(crate) fn files(&self, pair: &Pair, mutual: bool) -> TlsFiles {
        TlsFiles {
            cert: self.write("server.pem", &pair.cert),
            key: self.write("server.key", &pair.key),
            client_ca: mutual.then(|| self.write("ca.pem", &self.ca_pem())),
        }
    }
}

pub(crate) fn tls_settings(tls: Arc<Tls>) -> Settings {
    Settings {
        net: NetOptions {
            tls: Some(tls),
            ..NetOptions::default()
        },
        ..Settings::default()
    }
}

pub(crate) async fn tls_channel(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&Pair>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(p) = identity {
        tls = tls.identity(Identity::from_pem(&p.cert, &p.key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)?
        .connect()
        .await
}

/// A call any caller may make (open mode).
pub(crate) async fn list_pools(ch: Channel) -> Result<usize, tonic::Status> {
    Ok(NumberPoolServiceClient::new(ch)
        .list_pools(pb::ListPoolsRequest::default())
        .await?
        .into_inner()
        .pools
        .len())
}

pub(crate) fn https(ca_pem: &str, identity: Option<&Pair>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
    if let Some(p) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{}{}", p.cert, p.key).as_bytes()).unwrap(),
        );
    }
    b.build().unwrap()
}

/// Sends bytes in the clear and returns everything the server sends back before it closes.
async fn plaintext_exchange(addr: std::net::SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(send).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the server closes a plaintext connection");
    got
}

#[tokio::test]
async fn both_listeners_serve_tls_and_refuse_plaintext() {
    let pki = Pki::new("pns test CA");
    let tls = Tls::load(pki.files(&pki.server("pns-server"), false)).unwrap();
    let s = TestServer::start_with(tls_settings(tls)).await;

    // gRPC with the generated client over rustls.
    let ch = tls_channel(s.addr, &pki.ca_pem(), None).await.unwrap();
    assert_eq!(list_pools(ch).await.unwrap(), 0);
    // HTTP: readiness over TLS.
    let r = https(&pki.ca_pem(), None)
        .get(format!("https://127.0.0.1:{}/readyz", s.http_addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");

    // Plaintext gRPC: the call fails; nothing is served.
    let plain = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect_lazy();
    assert!(list_pools(plain).await.is_err());
    // Plaintext HTTP/1.1 and HTTP/2 on both ports: no HTTP answer, at most a TLS alert.
    for addr in [s.addr, s.http_addr] {
        for hello in [
            &b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            let got = plaintext_exchange(addr, hello).await;
            assert!(
                got.is_empty() || got[0] == 0x15,
                "only a TLS alert record (0x15) or nothing, got {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
    // A client that does not trust this CA refuses the server.
    let other = Pki::new("another CA");
    let refused = match tls_channel(s.addr, &other.ca_pem(), None).await {
        Err(_) => true,
        Ok(ch) => list_pools(ch).await.is_err(),
    };
    assert!(refused);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = Pki::new("pns test CA");
    let tls = Tls::load(pki.files(&pki.server("pns-server"), true)).unwrap();
    assert!(tls.mutual());
    let s = TestServer::start_with(tls_settings(tls)).await;
    let ca = pki.ca_pem();

    // No client certificate: refused (TLS 1.3 reports it on the first exchange).
    let refused = match tls_channel(s.addr, &ca, None).await {
        Err(_) => true,
        Ok(ch) => list_pools(ch).await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    // A certificate from another CA: refused.
    let stranger = Pki::new("stranger CA").client("mallory");
    let refused = match tls_channel(s.addr, &ca, Some(&stranger)).await {
        Err(_) => true,
        Ok(ch) => list_pools(ch).await.is_err(),
    };
    assert!(refused, "a certificate from another CA is refused");
    // A certificate from the configured CA: served, on gRPC and HTTP.
    let alice = pki.client("alice");
    let ch = tls_channel(s.addr, &ca, Some(&alice)).await.unwrap();
    assert_eq!(list_pools(ch).await.unwrap(), 0);
    let url = format!("https://127.0.0.1:{}/readyz", s.http_addr.port());
    assert_eq!(
        https(&ca, Some(&alice))
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(https(&ca, None).get(&url).send().await.is_err());
}

#[tokio::test]
async fn bad_certificate_files_fail_at_load_naming_the_file() {
    let pki = Pki::new("pns test CA");
    let a = pki.server("a");
    let b = pki.server("b");
    let missing = pki.dir.path().join("missing.pem");
    let key = pki.write("a.key", &a.key);
    let e = Tls::load(TlsFiles {
        cert: missing.clone(),
        key: key.clone(),
        client_ca: None,
    })
    .unwrap_err();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    // The key of another certificate.
    let cert_b = pki.write("b.pem", &b.cert);
    let e = Tls::load(TlsFiles {
        cert: cert_b.clone(),
        key: key.clone(),
        client_ca: None,
    })
    .unwrap_err();
    assert!(
        e.contains("does not match") && e.contains(&key.display().to_string()),
        "{e}"
    );

    // Not PEM; and the key's text never appears in an error.
    let junk = pki.write("junk.pem", "hello");
    let e = Tls::load(TlsFiles {
        cert: junk.clone(),
        key: key.clone(),
        client_ca: None,
    })
    .unwrap_err();
    assert!(e.contains(&junk.display().to_string()), "{e}");
    let cert_as_key = Tls::load(TlsFiles {
        cert: cert_b.clone(),
        key: cert_b.clone(),
        client_ca: None,
    })
    .unwrap_err();
    assert!(
        cert_as_key.contains("no usable private key"),
        "{cert_as_key}"
    );
    let body = |pem: &str| -> String {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    for err in [&e, &cert_as_key] {
        assert!(!err.contains(&body(&a.key)[..40]));
    }
    let ca_junk = Tls::load(TlsFiles {
        cert: cert_b,
        key: pki.write("b.key", &b.key),
        client_ca: Some(junk.clone()),
    })
    .unwrap_err();
    assert!(ca_junk.contains(&junk.display().to_string()), "{ca_junk}");
}

/// The certificate the server presents to a new connection on `addr`, and the connection
/// (kept open by callers that reuse it).
pub(crate) async fn handshake(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> (
    Vec<u8>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let der = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (der, s)
}

/// One `GET /livez` on an open HTTP/1.1 connection (kept alive).
pub(crate) async fn livez<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
) -> String {
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // The reply is small: headers then "ok" (content-length 2).
    while !(got.ends_with(b"\r\n\r\nok")) {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}
