//! axum's side of `net::accept`: a [`Listener`](axum::serve::Listener) over the connections
//! the accept task delivers (capped, TLS established if configured), with the peer's address
//! as connect info.

use std::net::SocketAddr;

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use tokio::sync::mpsc;

use crate::net::Conn;

/// The HTTP listener's connections.
pub struct ConnListener {
    rx: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl ConnListener {
    pub fn new(local: SocketAddr, rx: mpsc::Receiver<Conn>) -> Self {
        Self { rx, local }
    }
}

impl axum::serve::Listener for ConnListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => {
                let peer = c.remote;
                (c, peer)
            }
            // The accept task ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The TCP peer of a request (`ConnectInfo<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, ConnListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ConnListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
