//! A fake Aliyun `Dyplsapi` endpoint for adapter tests: a real axum server on `127.0.0.1:0`
//! that checks the V2 signature with its own implementation, answers with the documented
//! gateway and business errors, keeps AXN-extension bindings and records every request.
// The helper's API is `pub` for the tests in this binary.
#![allow(unreachable_pub)]

mod gateway;
mod ops;
mod sign;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use tokio::sync::watch;

pub use sign::{reference_signature, rfc3986};

#[derive(Debug, Clone)]
pub struct FakeAliyunConfig {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub pool_key: String,
    /// The pool's X numbers. A bind without `PhoneNoX` takes one no live binding uses.
    pub numbers: Vec<String>,
}

impl Default for FakeAliyunConfig {
    fn default() -> Self {
        Self {
            access_key_id: "testid".into(),
            access_key_secret: "testsecret".into(),
            pool_key: "FC100000000000001".into(),
            numbers: vec!["17000000001".into(), "17000000002".into()],
        }
    }
}

/// What the next request (after the signature check) meets instead of normal handling.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// HTTP 200 with this business `Code`.
    BusinessError(String),
    /// HTTP 500 `InternalError`.
    InternalError,
    /// HTTP 400 `Throttling.User` with `x-ratelimit-user-api: TimeLeft:<ms>`.
    Throttle { time_left_ms: u64 },
    /// Answer only after this long, then handle the request normally (it still takes effect).
    Delay(Duration),
    /// Handle the request at once, but send the answer only after this long.
    AnswerLate(Duration),
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Decoded query parameters, `Signature` included.
    pub params: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    pub fn action(&self) -> &str {
        self.param("Action").unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBinding {
    /// 16 digits, as Aliyun's.
    pub subs_id: String,
    pub phone_a: String,
    pub phone_b: Option<String>,
    pub phone_x: String,
    pub extension: String,
    /// As sent: `yyyy-MM-dd HH:mm:ss` China Standard Time.
    pub expiration: String,
    pub recording: bool,
    pub out_id: Option<String>,
    /// Forced by `expire_binding`: `Status` 0, updates refused.
    pub expired: bool,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    next: VecDeque<Behaviour>,
    nonces: HashSet<String>,
    bindings: HashMap<String, FakeBinding>,
    next_subs: u64,
}

#[derive(Debug)]
struct Shared {
    cfg: FakeAliyunConfig,
    inner: Mutex<Inner>,
    in_flight: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FakeAliyun {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAliyun {
    pub async fn start(cfg: FakeAliyunConfig) -> Self {
        let shared = Arc::new(Shared {
            cfg,
            inner: Mutex::new(Inner {
                next_subs: 1_000_000_820_000_001,
                ..Inner::default()
            }),
            in_flight: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        // Bound before the server task starts: connections queue until it accepts them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake aliyun");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a behaviour for the next request that passes the signature check.
    pub fn set_next(&self, b: Behaviour) {
        self.shared.lock().next.push_back(b);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Bindings not unbound (expired ones included, with `expired` or a past `expiration`).
    pub fn active_bindings(&self) -> Vec<FakeBinding> {
        let mut v: Vec<_> = self.shared.lock().bindings.values().cloned().collect();
        v.sort_by(|a, b| a.subs_id.cmp(&b.subs_id));
        v
    }

    /// Makes a binding look expired upstream (`Status` 0, `isv.FORBIDDEN_ACTION` on update).
    pub fn expire_binding(&self, subs_id: &str) {
        if let Some(b) = self.shared.lock().bindings.get_mut(subs_id) {
            b.expired = true;
        }
    }

    /// Waits until no request is being handled (a delayed one finishes even after the client
    /// gave up).
    pub async fn idle(&self) {
        let mut rx = self.shared.in_flight.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

impl Drop for FakeAliyun {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A base URL on which nothing listens (the port was just released).
pub fn unused_base_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("local addr");
    drop(l);
    format!("http://{addr}")
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut params = BTreeMap::new();
    for pair in query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (sign::form_decode(k), sign::form_decode(v)) {
            (Some(k), Some(v)) => params.insert(k, v),
            _ => return gateway::gateway_error(400, "InvalidParameter", "malformed query string"),
        };
    }
    let req = RecordedRequest {
        method: method.to_string(),
        params,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    shared.lock().requests.push(req.clone());
    shared.in_flight.send_modify(|n| *n += 1);
    // Handled in its own task so that a client giving up does not cancel the work, as on a
    // real server.
    let task = tokio::spawn({
        let shared = shared.clone();
        async move {
            let resp = ops::process(&shared, &req).await;
            shared.in_flight.send_modify(|n| *n -= 1);
            resp
        }
    });
    task.await
        .unwrap_or_else(|_| gateway::gateway_error(500, "InternalError", "fake crashed"))
}
