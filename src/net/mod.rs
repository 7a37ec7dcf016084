//! The listeners' front door, shared by gRPC and HTTP: accepting connections under the
//! connection cap and, with TLS configured, completing the handshake before a connection is
//! handed to a server (so a plaintext client never gets an answer). Each listener gets a
//! stream of ready [`Conn`]s from its own accept task.

pub mod tls;

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Default `--max-connections` (both listeners together).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `--max-message-bytes` (largest gRPC request message): above the largest valid
/// request — `AddNumbers` with 10,000 numbers whose cities are 64 four-byte characters, ~2.9 MB
/// — and tonic's implicit default, now explicit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused connections are logged at most once per this interval (with their count).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// TLS and connection caps of both listeners.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// `None`: plaintext.
    pub tls: Option<Arc<tls::Tls>>,
    /// Concurrent connections of both listeners together; more are closed at accept.
    pub max_connections: usize,
    /// Largest gRPC request message (decoded); larger ones get OUT_OF_RANGE.
    pub max_message_bytes: usize,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The connection cap of the process; every accepted connection holds a slot until it closes.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    /// When the last warning was logged, and connections refused since.
    refused: Mutex<(Option<Instant>, u64)>,
}

impl Gate {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refused: Mutex::new((None, 0)),
        })
    }

    fn admit(&self, listener: &'static str) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Some(p);
        }
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.1 += 1;
        if r.0.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                listener,
                max_connections = self.max,
                refused = r.1,
                "connection cap reached: new connections are closed at accept"
            );
            *r = (Some(Instant::now()), 0);
        }
        None
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection (TLS established if configured), holding its slot of the cap.
pub struct Conn {
    io: Io,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts on `listener` until the returned receiver is dropped (the server stopped
/// accepting; the listening socket closes with it). Connections over the cap are closed at
/// once; with `tls`, each handshake runs in its own task and only established connections
/// are delivered.
pub fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gate: Arc<Gate>,
    name: &'static str,
) -> (SocketAddr, mpsc::Receiver<Conn>) {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = tx.closed() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: back off a
                        // little rather than spin.
                        tracing::debug!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(slot) = gate.admit(name) else {
                drop(tcp);
                continue;
            };
            // Streamed events are small writes; with Nagle's algorithm each one could wait
            // ~40 ms for the client's delayed ACK.
            let _ = tcp.set_nodelay(true);
            match &tls {
                None => {
                    let conn = Conn {
                        io: Io::Plain(tcp),
                        local,
                        remote,
                        _slot: slot,
                    };
                    if tx.send(conn).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => {
                                let conn = Conn {
                                    io: Io::Tls(Box::new(s)),
                                    local,
                                    remote,
                                    _slot: slot,
                                };
                                let _ = tx.send(conn).await;
                            }
                            // A plaintext client, a client without a valid certificate (mutual
                            // TLS) or a scanner: not the server's fault, so not a warning.
                            Ok(Err(e)) => tracing::debug!(
                                listener = name, peer = %remote, error = %e,
                                "TLS handshake failed; connection closed"
                            ),
                            Err(_) => tracing::debug!(
                                listener = name, peer = %remote,
                                "TLS handshake not completed in time; connection closed"
                            ),
                        }
                    });
                }
            }
        }
    });
    (local, rx)
}

/// Both listeners' connection streams, opened by [`Front::open`].
pub struct Front {
    pub grpc_addr: SocketAddr,
    pub grpc: mpsc::Receiver<Conn>,
    pub http: Option<(SocketAddr, mpsc::Receiver<Conn>)>,
}

impl Front {
    /// Starts accepting on both listeners under one connection cap, and (with TLS) the
    /// certificate reloader, which stops with `stop`.
    pub fn open(
        grpc: TcpListener,
        http: Option<TcpListener>,
        opts: &NetOptions,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let gate = Gate::new(opts.max_connections);
        let tls = opts.tls.clone();
        if let Some(t) = &tls {
            tokio::spawn(t.clone().watch(stop));
        }
        let (grpc_addr, grpc) = accept(
            grpc,
            tls.as_ref().map(|t| t.grpc_acceptor()),
            gate.clone(),
            "grpc",
        );
        let http = http.map(|l| accept(l, tls.as_ref().map(|t| t.http_acceptor()), gate, "http"));
        Self {
            grpc_addr,
            grpc,
            http,
        }
    }
}
