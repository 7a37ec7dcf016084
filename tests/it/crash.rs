//! Issue 8 item 7: the durability proof. The real binary (`pns-gateway serve`, a child
//! process) takes XYB and AXN binds and converting call-ins at full concurrency and is killed
//! with SIGKILL at a random moment, `PNS_CRASH_ROUNDS` times (default 5), restarted each time.
//! After the last restart:
//! - every acknowledged bind exists (GetBinding by customer_bind_id) with the acknowledged
//!   numbers, and every acknowledged conversion is still AXYB with its A;
//! - `pns-gateway check` finds nothing;
//! - replaying every request with its customer_bind_id converges to exactly one binding each:
//!   acknowledged ones answer `replayed: true`, unacknowledged ones are created once (or found),
//!   and ListBindings holds each customer_bind_id exactly once.
//!
//! Long form: `PNS_CRASH_ROUNDS=50 cargo test --test it crash -- --nocapture` (add
//! `PNS_TEST_POSTGRES_URL=…` for PostgreSQL). The kill delays are printed, per round.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use pns_gateway::grpc::pb::{
    self, binding_service_client::BindingServiceClient, call_service_client::CallServiceClient,
};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{check::check_cli, support::TestDb, support::fixtures::ts_in};

const BIN: &str = env!("CARGO_BIN_EXE_pns-gateway");
const POOL: &str = "crash";
const POOL_SIZE: usize = 6000;
const BIND_WORKERS: usize = 24;
const CALL_WORKERS: usize = 8;
/// A round's kill comes this long (ms, uniform) after its load started.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 150..=900;

/// A running `pns-gateway serve` child.
struct Server {
    child: Child,
    channel: Channel,
}

/// A failing test must not leave its server running (holding its database connections).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts the binary on `db` and waits until its health check answers SERVING. A port taken
/// between `free_port` and the child's bind is retried with fresh ones.
async fn start(db: &TestDb, log: &Path) -> Server {
    for _ in 0..3 {
        if let Some(s) = try_start(db, log).await {
            return s;
        }
    }
    panic!("server could not listen on free ports:\n{}", log_tail(log));
}

async fn try_start(db: &TestDb, log: &Path) -> Option<Server> {
    let (grpc, http) = (free_port(), free_port());
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = Command::new(BIN)
        .args(["serve", "--database-url", &db.url])
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .env("PNS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn pns-gateway serve");
    let ep = Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().expect("child status") {
            let tail = log_tail(log);
            if tail.contains("cannot listen") {
                return None;
            }
            panic!("server exited with {st} at start-up:\n{tail}");
        }
        if let Ok(channel) = ep.connect().await {
            let ok = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
            if ok {
                return Some(Server { child, channel });
            }
        }
        assert!(
            Instant::now() < deadline,
            "server not serving within 30 s:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Server {
    /// SIGKILL: no shutdown hook, no flush, no drain.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

#[derive(Clone)]
enum Req {
    Xyb(pb::BindXybRequest),
    Axn(pb::BindAxnExtensionRequest),
}

/// One bind request as sent, and what the server acknowledged for it (if it did).
struct Sent {
    req: Req,
    acked: Option<pb::Binding>,
}

/// Everything the test was told, across rounds.
#[derive(Default)]
struct Ledger {
    sent: Mutex<BTreeMap<usize, Sent>>,
    /// Acknowledged binds a call-in worker may dial: (k, X, extension or "").
    dialable: Mutex<Vec<(usize, String, String)>>,
    /// Acknowledged conversions: k → (A, display number = Y).
    converted: Mutex<HashMap<usize, (String, String)>>,
    next: AtomicUsize,
    calls_acked: AtomicUsize,
}

fn cbid(k: usize) -> String {
    format!("crash-{k}")
}

/// Request `k`: three XYB (every other one with a delayed Y) to one AXN.
fn request(k: usize) -> Req {
    if k % 4 == 3 {
        let mut r = pb::BindAxnExtensionRequest {
            pool_key: POOL.into(),
            phone_a: format!("139{k:08}"),
            expire_time: Some(ts_in(3600)),
            ..Default::default()
        };
        r.customer_bind_id = cbid(k);
        Req::Axn(r)
    } else {
        Req::Xyb(pb::BindXybRequest {
            pool_key: POOL.into(),
            phone_b: format!("8526{k:07}"),
            delayed_y: k % 2 == 0,
            customer_bind_id: cbid(k),
            ..Default::default()
        })
    }
}

async fn send(
    c: &mut BindingServiceClient<Channel>,
    req: &Req,
) -> Result<(pb::Binding, bool), tonic::Status> {
    let (b, replayed) = match req {
        Req::Xyb(r) => {
            let r = c.bind_xyb(r.clone()).await?.into_inner();
            (r.binding, r.replayed)
        }
        Req::Axn(r) => {
            let r = c.bind_axn_extension(r.clone()).await?.into_inner();
            (r.binding, r.replayed)
        }
    };
    Ok((b.expect("a bind response carries its binding"), replayed))
}

async fn bind_worker(ch: Channel, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let mut c = BindingServiceClient::new(ch);
    while !stop.load(Ordering::Relaxed) {
        let k = ledger.next.fetch_add(1, Ordering::Relaxed);
        let req = request(k);
        ledger.sent.lock().unwrap().insert(
            k,
            Sent {
                req: req.clone(),
                acked: None,
            },
        );
        let Ok((b, _)) = send(&mut c, &req).await else {
            // Unknown outcome (the server died) or refused: replayed at the end.
            continue;
        };
        ledger
            .dialable
            .lock()
            .unwrap()
            .push((k, b.number_x.clone(), b.extension.clone()));
        ledger.sent.lock().unwrap().get_mut(&k).unwrap().acked = Some(b);
    }
}

/// Dials acknowledged binds: an XYB's first call-in converts it (a write that must survive).
async fn call_worker(ch: Channel, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let mut c = CallServiceClient::new(ch);
    while !stop.load(Ordering::Relaxed) {
        let next = ledger.dialable.lock().unwrap().pop();
        let Some((k, x, ext)) = next else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        let caller = format!("8529{k:07}");
        let res = c
            .notify_call_in(pb::NotifyCallInRequest {
                caller: caller.clone(),
                called: x,
                extension: ext.clone(),
                call_id: format!("crash-call-{k}"),
            })
            .await;
        if let Ok(r) = res.map(|r| r.into_inner()) {
            assert_eq!(
                r.decision,
                pb::Decision::Connect as i32,
                "call-in for bind {k}: {r:?}"
            );
            ledger.calls_acked.fetch_add(1, Ordering::Relaxed);
            if ext.is_empty() {
                ledger
                    .converted
                    .lock()
                    .unwrap()
                    .insert(k, (caller, r.display_number));
            }
        }
    }
}

fn rounds() -> usize {
    std::env::var("PNS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn cli(db: &TestDb, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--database-url", &db.url])
        .env("PNS_LOG", "warn")
        .output()
        .expect("run pns-gateway");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_binds_survive_sigkill_and_replays_converge_to_one_binding_each() {
    let t0 = Instant::now();
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let csv = dir.path().join("numbers.csv");
    let numbers: String = (0..POOL_SIZE).map(|i| format!("8521700{i:04}\n")).collect();
    std::fs::write(&csv, numbers).unwrap();
    cli(&db, &["pools", "create", POOL]);
    cli(
        &db,
        &[
            "numbers",
            "import",
            "--pool",
            POOL,
            "--file",
            csv.to_str().unwrap(),
        ],
    );

    let ledger = Arc::new(Ledger::default());
    let rounds = rounds();
    for round in 1..=rounds {
        let server = start(&db, &log).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = JoinSet::new();
        for _ in 0..BIND_WORKERS {
            workers.spawn(bind_worker(
                server.channel.clone(),
                ledger.clone(),
                stop.clone(),
            ));
        }
        for _ in 0..CALL_WORKERS {
            workers.spawn(call_worker(
                server.channel.clone(),
                ledger.clone(),
                stop.clone(),
            ));
        }
        let delay = rand::random_range(KILL_AFTER_MS);
        let before = ledger.next.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let sent_now = ledger.next.load(Ordering::Relaxed) - before;
        // No new requests from here; the ones in flight meet the kill.
        stop.store(true, Ordering::Relaxed);
        server.kill();
        while let Some(r) = workers.join_next().await {
            r.expect("worker");
        }
        eprintln!("round {round}/{rounds}: SIGKILL after {delay} ms, {sent_now} binds sent");
    }

    let server = start(&db, &log).await;
    let sent = std::mem::take(&mut *ledger.sent.lock().unwrap());
    let converted = std::mem::take(&mut *ledger.converted.lock().unwrap());
    let acked = sent.values().filter(|s| s.acked.is_some()).count();
    assert!(acked > 0, "no bind was acknowledged: the load never ran");
    let mut c = BindingServiceClient::new(server.channel.clone());

    // 1. Every acknowledged bind is there, with the numbers it was acknowledged with.
    for (k, s) in &sent {
        let Some(a) = &s.acked else { continue };
        let got = c
            .get_binding(pb::GetBindingRequest {
                customer_bind_id: cbid(*k),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged bind {k} lost: {e:?}"))
            .into_inner()
            .binding
            .unwrap();
        assert_eq!(
            (&got.binding_id, &got.number_x, &got.extension, got.mode),
            (&a.binding_id, &a.number_x, &a.extension, a.mode),
            "bind {k}"
        );
        if !a.number_y.is_empty() {
            assert_eq!(got.number_y, a.number_y, "bind {k}: Y");
        }
        // 2. Every acknowledged conversion too.
        if let Some((caller, y)) = converted.get(k) {
            assert_eq!(got.state, pb::BindingState::Axyb as i32, "bind {k}");
            assert_eq!((&got.phone_a, &got.number_y), (caller, y), "bind {k}");
        }
    }

    // 3. The database is consistent as the crashes left it.
    let (code, out) = check_cli(&db);
    assert_eq!(code, 0, "check after the crashes:\n{out}");

    // 4. Replays: acknowledged → the same binding, replayed; unacknowledged → one binding, and
    // a second replay finds that same one.
    let replay = |k: usize, req: Req| {
        let mut c = c.clone();
        async move { (k, send(&mut c, &req).await) }
    };
    let mut first: HashMap<usize, String> = HashMap::new();
    // Unacknowledged binds that had committed before the kill (found by the replay).
    let mut committed_unacked = 0;
    let keys: Vec<usize> = sent.keys().copied().collect();
    for chunk in keys.chunks(64) {
        let res = join_all(chunk.iter().map(|k| replay(*k, sent[k].req.clone()))).await;
        for (k, r) in res {
            let (b, replayed) = r.unwrap_or_else(|e| panic!("replay of bind {k}: {e:?}"));
            assert_eq!(b.customer_bind_id, cbid(k));
            if let Some(a) = &sent[&k].acked {
                assert!(replayed, "acknowledged bind {k} was created again");
                assert_eq!(b.binding_id, a.binding_id, "bind {k}");
            } else if replayed {
                committed_unacked += 1;
            }
            first.insert(k, b.binding_id);
        }
    }
    let unacked: Vec<usize> = keys
        .iter()
        .copied()
        .filter(|k| sent[k].acked.is_none())
        .collect();
    for chunk in unacked.chunks(64) {
        let res = join_all(chunk.iter().map(|k| replay(*k, sent[k].req.clone()))).await;
        for (k, r) in res {
            let (b, replayed) = r.unwrap_or_else(|e| panic!("second replay of bind {k}: {e:?}"));
            assert!(replayed, "bind {k} was created twice");
            assert_eq!(
                b.binding_id, first[&k],
                "bind {k} converged to another binding"
            );
        }
    }

    // 5. ListBindings: each customer_bind_id exactly once, nothing else.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_bindings(pb::ListBindingsRequest {
                page_size: 500,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list bindings")
            .into_inner();
        for b in page.bindings {
            *seen.entry(b.customer_bind_id).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicated bindings: {dup:?}");
    assert_eq!(seen.len(), sent.len(), "one binding per request, no other");
    assert!(keys.iter().all(|k| seen.contains_key(&cbid(*k))));

    let (code, out) = check_cli(&db);
    assert_eq!(code, 0, "check after the replays:\n{out}");
    server.kill();
    eprintln!(
        "crash test: {rounds} SIGKILLs, {} binds sent, {acked} acknowledged, {} not \
         ({committed_unacked} of them had committed), {} call-ins acknowledged ({} conversions), \
         {:.1} s",
        sent.len(),
        unacked.len(),
        ledger.calls_acked.load(Ordering::Relaxed),
        converted.len(),
        t0.elapsed().as_secs_f64()
    );
}
