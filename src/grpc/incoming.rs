//! The gRPC server's connections come from `net::accept` (connection cap, TLS handshake done
//! there); this adapts them to tonic.

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::net::Conn;

impl Connected for Conn {
    // Plain TCP info for TLS connections too, so `Request::remote_addr` works on both.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: Some(self.local),
            remote_addr: Some(self.remote),
        }
    }
}

/// The stream `Server::serve_with_incoming_shutdown` takes.
pub fn incoming(rx: mpsc::Receiver<Conn>) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    ReceiverStream::new(rx).map(Ok)
}
