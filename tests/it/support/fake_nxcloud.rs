//! A fake NXCloud PNS server over real HTTP: checks headers and the signature (with its own
//! MD5, see `md5.rs`), allocates DIDs from a small list, de-duplicates binds by
//! `customerBindId`, records every request, and plays injected failures.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

mod rules;

use rules::{check, perform};

pub(crate) struct FakeNxcloudConfig {
    pub access_key: String,
    pub access_secret: String,
    pub dids: Vec<String>,
}

impl Default for FakeNxcloudConfig {
    fn default() -> Self {
        FakeNxcloudConfig {
            access_key: "fake-ak".into(),
            access_secret: "fake-secret".into(),
            dids: vec![
                "85213135313".into(),
                "85213135356".into(),
                "85213135357".into(),
            ],
        }
    }
}

/// What the next request gets instead of the normal answer (queued, one per request).
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// The documented envelope with this non-zero `code`.
    ErrorCode(i64),
    /// This HTTP status with a plain-text body.
    Http(u16),
    /// A 200 whose body is not JSON.
    NotJson,
    /// Handle the request normally (the bind happens), then wait this long before answering.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub(crate) struct RecordedRequest {
    pub path: String,
    /// Names as received (lower-case on HTTP/1.1).
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FakeBinding {
    pub bind_id: String,
    pub customer_bind_id: Option<String>,
    pub action: String,
    pub phone: String,
    pub did_x: String,
    pub did_y: Option<String>,
    pub extension_x: Option<String>,
}

struct Inner {
    access_key: String,
    access_secret: String,
    free_dids: Vec<String>,
    all_dids: Vec<String>,
    next: VecDeque<Behaviour>,
    requests: Vec<RecordedRequest>,
    bindings: Vec<FakeBinding>,
    seq: u64,
}

type Shared = Arc<Mutex<Inner>>;

pub(crate) struct FakeNxcloud {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNxcloud {
    pub(crate) async fn start(cfg: FakeNxcloudConfig) -> FakeNxcloud {
        let state = Arc::new(Mutex::new(Inner {
            access_key: cfg.access_key,
            access_secret: cfg.access_secret,
            free_dids: cfg.dids.clone(),
            all_dids: cfg.dids,
            next: VecDeque::new(),
            requests: Vec::new(),
            bindings: Vec::new(),
            seq: 0,
        }));
        // Bound before serving, so the address is live when `start` returns.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake nxcloud");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeNxcloud { addr, state, task }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_next(&self, b: Behaviour) {
        self.state.lock().unwrap().next.push_back(b);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub(crate) fn active_bindings(&self) -> Vec<FakeBinding> {
        self.state.lock().unwrap().bindings.clone()
    }
}

impl Drop for FakeNxcloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address nobody listens on (bound, then released), for "connection refused".
pub(crate) async fn unused_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("local addr")
}

/// Accepts connections, reads a little of the request and hangs up without answering: the
/// request was sent, the answer never comes ("connection reset mid-response").
pub(crate) async fn hang_up_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
        }
    });
    (addr, accepted)
}

fn envelope(code: i64, msg: &str, data: Option<Value>, seq: u64) -> Response {
    let mut v = json!({ "code": code, "msg": msg, "requestId": format!("18435377683717{seq:05}") });
    if let Some(d) = data {
        v["data"] = d;
    }
    axum::Json(v).into_response()
}

async fn handle(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (behaviour, result, seq) = {
        let mut st = state.lock().unwrap();
        st.seq += 1;
        let seq = st.seq;
        let hs = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        st.requests.push(RecordedRequest {
            path: uri.path().to_owned(),
            headers: hs,
            body: body.to_vec(),
        });
        let behaviour = st.next.pop_front();
        match behaviour {
            Some(Behaviour::ErrorCode(c)) => return envelope(c, "injected error", None, seq),
            Some(Behaviour::Http(s)) => {
                let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (code, "injected failure").into_response();
            }
            Some(Behaviour::NotJson) => {
                return (StatusCode::OK, "<html>gateway</html>").into_response();
            }
            _ => {}
        }
        let result = check(&st, uri.path(), &headers, &body)
            .and_then(|(action, req)| perform(&mut st, &action, &req));
        (behaviour, result, seq)
    };
    // The bind has happened; a client that gave up meanwhile cannot know it.
    if let Some(Behaviour::Delay(d)) = behaviour {
        tokio::time::sleep(d).await;
    }
    match result {
        Ok(data) => envelope(0, "success", data, seq),
        Err((code, msg)) => envelope(code, msg, None, seq),
    }
}
