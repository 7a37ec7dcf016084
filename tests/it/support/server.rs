//! Starts the real server on port 0 (listeners bound before the server task starts, so there
//! is nothing to wait for) and connects generated clients.

use std::time::Duration;

use pns_gateway::{
    app::{self, Settings},
    grpc::pb::{
        binding_service_client::BindingServiceClient, call_service_client::CallServiceClient,
        number_pool_service_client::NumberPoolServiceClient,
    },
    storage::{Store, StoreOptions},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use super::TestDb;

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub channel: Channel,
    pub db: std::sync::Arc<TestDb>,
    pub store: Store,
    pub clock: pns_gateway::domain::Clock,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// A server on a fresh database.
    pub async fn start() -> Self {
        Self::start_on(
            std::sync::Arc::new(TestDb::new().await),
            Settings::default(),
        )
        .await
    }

    /// A server with a fast sweeper.
    pub async fn start_with(settings: Settings) -> Self {
        Self::start_on(std::sync::Arc::new(TestDb::new().await), settings).await
    }

    /// Another server process-equivalent on an existing database (replica tests).
    pub async fn start_on(db: std::sync::Arc<TestDb>, settings: Settings) -> Self {
        let url = db.url.clone();
        Self::start_at(db, &url, StoreOptions::default(), settings).await
    }

    /// A server that reaches `db` at `url` (e.g. through a proxy) with the given options.
    pub async fn start_at(
        db: std::sync::Arc<TestDb>,
        url: &str,
        opts: StoreOptions,
        settings: Settings,
    ) -> Self {
        let store = Store::connect_with(url, opts).await.expect("connect");
        store.migrate().await.expect("migrate");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let addr = grpc.local_addr().expect("addr");
        let http_addr = http.local_addr().expect("addr");
        let clock = settings.clock.clone();
        let tls = settings.net.tls.is_some();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app::run(store.clone(), grpc, Some(http), settings, async {
            let _ = rx.await;
        }));
        let endpoint = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5));
        // A TLS server refuses this plaintext channel; TLS tests make their own.
        let channel = if tls {
            endpoint.connect_lazy()
        } else {
            endpoint.connect().await.expect("connect to test server")
        };
        TestServer {
            addr,
            http_addr,
            channel,
            db,
            store,
            clock,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn bindings(&self) -> BindingServiceClient<Channel> {
        BindingServiceClient::new(self.channel.clone())
    }

    pub fn calls(&self) -> CallServiceClient<Channel> {
        CallServiceClient::new(self.channel.clone())
    }

    pub fn pools(&self) -> NumberPoolServiceClient<Channel> {
        NumberPoolServiceClient::new(self.channel.clone())
    }

    /// Graceful shutdown; returns the server's result.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn fast_sweeper() -> Settings {
    Settings {
        sweep_interval: Duration::from_millis(50),
        ..Settings::default()
    }
}
