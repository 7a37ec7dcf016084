//! TLS for both listeners (rustls): the certificate and key are loaded once at start-up (a bad
//! file fails `serve` before it listens, naming the file), then reloaded on SIGHUP and whenever
//! the files' contents change (polled), without touching established connections: the two
//! `ServerConfig`s (gRPC with ALPN `h2`, HTTP with `h2` and `http/1.1`) share one certificate
//! resolver whose current key is swapped; a connection keeps the key it was made with. A new
//! pair that does not load (unreadable, not PEM, key not matching the certificate) leaves the
//! old one in place and logs a warning. With `client_ca`, every client must present a
//! certificate issued by it (mutual TLS); the CA is read at start-up only.
//!
//! No key material is ever logged: errors name the file and the kind of problem, never bytes
//! from it.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are compared with the last loaded contents.
pub const POLL: Duration = Duration::from_secs(1);

/// Paths of the PEM files (`--tls-cert`, `--tls-key`, `--tls-client-ca` or `[tls]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (mutual TLS); `None` = no client auth.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files named by flags/environment (first) or the config file; `Ok(None)` when
    /// neither names any. A key without a certificate (or the reverse) is an error.
    pub fn pick(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Option<Self>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert,
                key,
                client_ca,
            })),
            (None, None) if client_ca.is_none() => Ok(None),
            (None, None) => Err("TLS: a client CA needs a certificate and a key too \
                 (--tls-cert and --tls-key, or [tls] cert and key)"
                .into()),
            (Some(_), None) => {
                Err("TLS: a certificate needs its key (--tls-key, PNS_TLS_KEY or [tls] key)".into())
            }
            (None, Some(_)) => Err(
                "TLS: a key needs its certificate (--tls-cert, PNS_TLS_CERT or [tls] cert)".into(),
            ),
        }
    }
}

/// The loaded TLS setup shared by both listeners.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    /// The contents last tried (cert, key), so an unchanged pair is not reloaded and a bad
    /// one is warned about once.
    last: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// Hands out the current certificate; swapped on reload.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Tls {
    /// Reads and checks every file; the error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert_pem = read(&files.cert, "certificate")?;
        let key_pem = read(&files.key, "key")?;
        let key = certified_key(&files, &cert_pem, &key_pem, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let verifier = match &files.client_ca {
            None => None,
            Some(path) => Some(client_verifier(path, &provider)?),
        };
        let config = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, String> {
            let b = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?;
            let mut c = match &verifier {
                Some(v) => b.with_client_cert_verifier(v.clone()),
                None => b.with_no_client_auth(),
            }
            .with_cert_resolver(resolver.clone());
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(Arc::new(Self {
            grpc: config(&[b"h2"])?,
            http: config(&[b"h2", b"http/1.1"])?,
            files,
            provider,
            resolver,
            last: Mutex::new((cert_pem, key_pem)),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The acceptor of the gRPC listener (ALPN `h2`).
    pub fn grpc_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.grpc.clone())
    }

    /// The acceptor of the HTTP listener (ALPN `h2`, `http/1.1`).
    pub fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.http.clone())
    }

    /// Re-reads the files; when their contents differ from the last attempt (or `force`),
    /// loads them and swaps the certificate. `Ok(true)`: swapped; `Ok(false)`: unchanged;
    /// `Err`: the new pair is bad and the old one stays.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let cert_pem = read(&self.files.cert, "certificate")?;
        let key_pem = read(&self.files.key, "key")?;
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.0 == cert_pem && last.1 == key_pem {
                return Ok(false);
            }
            *last = (cert_pem.clone(), key_pem.clone());
        }
        let key = certified_key(&self.files, &cert_pem, &key_pem, &self.provider)?;
        *self.resolver.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(true)
    }

    /// Reloads on SIGHUP and when the files change, until `stop`.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut hup = hangups();
        // A file being replaced may be missing or half-written for a moment: each distinct
        // problem is warned about once.
        let mut last_err = None;
        loop {
            let force = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                _ = recv(&mut hup) => true,
                _ = stop.wait_for(|s| *s) => return,
            };
            match self.reload(force) {
                Ok(true) => tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded; new connections use it"
                ),
                Ok(false) => {}
                Err(e) if last_err.as_ref() == Some(&e) => continue,
                Err(e) => {
                    tracing::warn!("TLS certificate not reloaded, the previous one stays: {e}");
                    last_err = Some(e);
                    continue;
                }
            }
            last_err = None;
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .map_err(
            |e| tracing::warn!(error = %e, "no SIGHUP handler; TLS reloads on file change only"),
        )
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

#[cfg(unix)]
async fn recv(h: &mut Hangups) {
    if let Some(s) = h
        && s.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangups) {
    std::future::pending().await
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("TLS: cannot read {what} file {}: {e}", path.display()))
}

/// A PEM error by kind only: some variants quote lines of the file, which may be key material.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM section has no END line",
        E::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        E::Base64Decode(_) => "a PEM section is not valid base64",
        E::NoItemsFound => "no PEM item of the expected kind",
        E::SectionTooLarge => "a PEM section is too large",
        _ => "not a readable PEM file",
    }
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS: {}: {}", path.display(), pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS: {} holds no certificate (expected PEM `BEGIN CERTIFICATE`)",
            path.display()
        ));
    }
    Ok(certs)
}

fn certified_key(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = certs(&files.cert, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        format!(
            "TLS: {} holds no usable private key: {}",
            files.key.display(),
            pem_problem(&e)
        )
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| format!("TLS: {}: unsupported private key", files.key.display()))?;
    let ck = CertifiedKey::new(chain, key);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "TLS: the key in {} does not match the certificate in {}",
                files.key.display(),
                files.cert.display()
            ))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(e) => Err(format!(
            "TLS: the certificate in {} is not usable: {e}",
            files.cert.display()
        )),
    }
}

fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let pem = read(path, "client CA")?;
    let mut roots = RootCertStore::empty();
    for c in certs(path, &pem)? {
        roots.add(c).map_err(|e| {
            format!(
                "TLS: a certificate in {} is not a usable CA: {e}",
                path.display()
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS: client CA {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_a_certificate_is_refused() {
        assert!(TlsFiles::pick(None, None, None).unwrap().is_none());
        assert!(TlsFiles::pick(Some("c".into()), None, None).is_err());
        assert!(TlsFiles::pick(None, Some("k".into()), None).is_err());
        assert!(TlsFiles::pick(None, None, Some("ca".into())).is_err());
        let f = TlsFiles::pick(Some("c".into()), Some("k".into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(f.cert, PathBuf::from("c"));
    }

    #[test]
    fn pem_errors_never_quote_the_file() {
        let e = rustls::pki_types::pem::Error::IllegalSectionStart {
            line: b"-----BEGIN SECRET abc".to_vec(),
        };
        assert!(!pem_problem(&e).contains("abc"));
    }
}
