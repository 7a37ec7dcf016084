//! `pns-load`: measures the routing decision (`NotifyCallIn`) and binds against the same
//! server's gRPC health check in one run, so the results are ratios that survive noisy machines.
//!
//! By default it starts the gateway in-process on a fresh temporary SQLite file;
//! `--database-url` runs that server on another database (e.g. PostgreSQL), `--target` loads a
//! server that is already running. `--check` audits the database's invariants after the run
//! (the queries of `pns-gateway check`). `--preload N` writes N active bindings into the
//! database first (the bulk path of `storage::preload`); `--replicas N` starts N
//! `pns-gateway serve` processes on `--database-url` and spreads the connections over them.
#![forbid(unsafe_code)]

/// As the server's (`pns-gateway`, src/main.rs): mimalloc, not glibc's malloc: a request allocates and frees many small buffers across the
/// runtime's threads, and glibc's arenas spent a fifth of all CPU on it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "pns_load/driver.rs"]
mod driver;
#[path = "pns_load/report.rs"]
mod report;
#[path = "pns_load/scenarios.rs"]
mod scenarios;
#[path = "pns_load/servers.rs"]
mod servers;
#[path = "pns_load/watch.rs"]
mod watch;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};
use pns_gateway::{
    app::{self, Settings},
    domain::anomaly::verdict,
    storage::{PreloadSpec, Store, StoreOptions},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, Endpoint};

use report::Row;
use scenarios::Ctx;

#[derive(Parser)]
#[command(
    name = "pns-load",
    version,
    about = "Load tool: NotifyCallIn and binds, as ratios to the same server's health check"
)]
struct Cli {
    /// Load a running server (e.g. http://127.0.0.1:50051) instead of starting one in-process.
    #[arg(long)]
    target: Option<String>,
    /// Database of the in-process server (default: a fresh temporary SQLite file). With
    /// --target: the target's database, for --check.
    #[arg(long)]
    database_url: Option<String>,
    /// After the run, check the database's invariants (as `pns-gateway check`): print each
    /// anomaly, exit non-zero if any. With --target it needs --database-url.
    #[arg(long)]
    check: bool,
    /// Group-commit writers of the in-process server on PostgreSQL (0: a transaction per write).
    #[arg(long, default_value_t = pns_gateway::storage::DEFAULT_WRITERS)]
    db_writers: usize,
    /// gRPC connections (one HTTP/2 connection each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per timed scenario.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Numbers in the pools of `bind-xyb` and `full-pool` (loaded 10000 per AddNumbers).
    #[arg(long, default_value_t = 20_000)]
    pool_size: usize,
    /// Scenarios to run, comma-separated, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,notify,bind-xyb,bind-axn,full-pool"
    )]
    scenarios: Vec<Scenario>,
    /// Print one JSON object per measured row on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// API key sent as `authorization: Bearer <key>` to a server with keys: the admin key
    /// (scenarios create pools and send call-ins). Read from the environment, not the command
    /// line, so it does not show in process lists.
    #[arg(long = "api-key", env = "PNS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// `watch`: WatchEvents subscribers open during the second bind run.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// `watch`: how many of the subscribers never read (they watch every pool).
    #[arg(long, default_value_t = 100)]
    stuck: usize,
    /// `watch`: pools the binds are spread over; each reading subscriber watches one of them.
    /// 1 = every subscriber receives every event (mostly measures the client's decoding).
    #[arg(long, default_value_t = 100)]
    watch_groups: usize,
    /// Before the scenarios, write this many active AXYB bindings (with their routes, numbers
    /// and share counts, as the server writes them) straight into the database: multi-row
    /// INSERTs in transactions of 50,000 bindings, in a pool of their own. With --target it
    /// needs --database-url (the server keeps running).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Numbers of the preload's pool (default: one per 100 bindings, at least 2).
    #[arg(long)]
    preload_numbers: Option<u64>,
    /// Start this many `pns-gateway serve` processes (the binary next to pns-load) on
    /// --database-url instead of the in-process server, spread the connections over them, and
    /// report each one's share. 0: in-process server.
    #[arg(long, default_value_t = 0)]
    replicas: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Health,
    Notify,
    BindXyb,
    BindAxn,
    FullPool,
    Watch,
    NotifyPreloaded,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Notify => "notify",
            Scenario::BindXyb => "bind-xyb",
            Scenario::BindAxn => "bind-axn",
            Scenario::FullPool => "full-pool",
            Scenario::Watch => "watch",
            Scenario::NotifyPreloaded => "notify-preloaded",
        }
    }
}

/// The in-process server and what to clean up after it.
struct Local {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
    sqlite_file: Option<PathBuf>,
    /// For `--check`.
    url: String,
    /// The in-process server's store: route-index and group-commit figures per scenario.
    store: Store,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.connections == 0 || cli.concurrency == 0 || cli.duration <= 0.0 {
        eprintln!("--connections, --concurrency and --duration must be positive");
        return ExitCode::from(2);
    }
    let needs_url = cli.check || cli.preload > 0;
    if cli.target.is_some() && cli.database_url.is_some() != needs_url {
        eprintln!(
            "with --target, --database-url names the target's database for --check and \
             --preload: give it with one of them, not without"
        );
        return ExitCode::from(2);
    }
    if cli.replicas > 0 {
        let url = cli.database_url.as_deref().unwrap_or_default();
        if cli.target.is_some() || url.is_empty() || url.starts_with("sqlite:") {
            eprintln!(
                "--replicas needs --database-url of a PostgreSQL or MySQL server, and no --target"
            );
            return ExitCode::from(2);
        }
    }
    let _ = report::REPLICAS.set(cli.replicas.max(1));
    if let Some(k) = cli.api_key.as_deref().filter(|k| !k.is_empty()) {
        match format!("Bearer {k}").parse() {
            Ok(v) => {
                let _ = scenarios::API_KEY.set(v);
            }
            Err(_) => {
                eprintln!("PNS_API_KEY is not a valid header value");
                return ExitCode::from(2);
            }
        }
    }
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pns-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every scenario; `Ok(false)` when a scenario failed or saw errors.
async fn run(cli: Cli) -> Result<bool, String> {
    // Six digits unique to this run: in pool keys and virtual numbers, so reruns on the same
    // database (PostgreSQL, `--target`) do not collide.
    let run = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
    let spec = (cli.preload > 0).then(|| preload_spec(&cli, &run));
    let mut preload_meta = serde_json::Value::Null;
    let (targets, backend, local, replicas) = if let Some(t) = &cli.target {
        if let Some(spec) = &spec {
            // main requires --database-url with --target --preload.
            let url = cli.database_url.as_deref().unwrap_or_default();
            let store = Store::connect_existing(url)
                .await
                .map_err(|e| format!("--preload: cannot open {}: {e}", redact(url)))?;
            preload_meta = preload(&store, spec, None).await?;
        }
        (vec![t.clone()], "remote".to_owned(), None, Vec::new())
    } else if cli.replicas > 0 {
        let url = cli.database_url.as_deref().unwrap_or_default();
        let store = Store::connect(url)
            .await
            .map_err(|e| format!("connect {}: {e}", redact(url)))?;
        store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
        let backend = store.backend_name().to_owned();
        if let Some(spec) = &spec {
            preload_meta = preload(&store, spec, None).await?;
        }
        drop(store);
        let replicas = servers::start(cli.replicas, url, &run).await?;
        let rss: Vec<f64> = replicas
            .iter()
            .filter_map(|r| servers::rss_mib(Some(r.pid())))
            .collect();
        if spec.is_some() {
            let rounded: Vec<f64> = rss.iter().map(|m| (m * 10.0).round() / 10.0).collect();
            preload_meta["server_rss_mib_after"] = serde_json::json!(rounded);
        }
        eprintln!(
            "{} replicas on {backend} at {}, RSS {rss:.0?} MiB",
            replicas.len(),
            redact(url)
        );
        let targets = replicas.iter().map(|r| r.grpc.clone()).collect();
        (targets, backend, None, replicas)
    } else {
        let (addr, backend, local) = start_local(
            cli.database_url.as_deref(),
            spec.as_ref(),
            &mut preload_meta,
            cli.db_writers,
        )
        .await?;
        (
            vec![format!("http://{addr}")],
            backend,
            Some(local),
            Vec::new(),
        )
    };
    let pids: Vec<Option<u32>> = if replicas.is_empty() {
        // In-process server: this process (the load tool's own memory included).
        if local.is_some() {
            vec![None]
        } else {
            Vec::new()
        }
    } else {
        replicas.iter().map(|r| Some(r.pid())).collect()
    };
    let servers = Servers {
        targets,
        backend,
        pids,
        run,
        preload: spec,
        preload_meta,
    };
    let result = measure(&cli, &servers, local.as_ref().map(|l| &l.store)).await;
    servers::stop(replicas);
    // Checked after the servers stopped (nothing moves), before the SQLite file goes.
    let mut checked = Ok(true);
    if cli.check && local.is_none() {
        // The target's or the replicas' database: main requires --database-url for both.
        checked = check(cli.database_url.as_deref().unwrap_or_default()).await;
    }
    if let Some(local) = local {
        let _ = local.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), local.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("in-process server: {e}"),
            Ok(Err(e)) => eprintln!("in-process server task: {e}"),
            Err(_) => eprintln!("in-process server did not stop within 10 s"),
        }
        if cli.check {
            checked = check(&local.url).await;
        }
        if let Some(f) = local.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = f.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(result? & checked?)
}

/// The servers a run loads and what was preloaded into their database.
struct Servers {
    /// gRPC URLs; channel `c` goes to `targets[c % len]`.
    targets: Vec<String>,
    backend: String,
    /// Server processes whose RSS is reported (`None`: this process).
    pids: Vec<Option<u32>>,
    run: String,
    preload: Option<PreloadSpec>,
    preload_meta: serde_json::Value,
}

impl Servers {
    fn rss(&self) -> Vec<f64> {
        self.pids
            .iter()
            .filter_map(|p| servers::rss_mib(*p))
            .collect()
    }
}

/// `--preload`: pool `preload-<run>`, numbers `9<run>7…`, A `86137…`, B `86138…`.
fn preload_spec(cli: &Cli, run: &str) -> PreloadSpec {
    PreloadSpec {
        pool_key: format!("preload-{run}"),
        tenant: "default".into(),
        bindings: cli.preload,
        numbers: cli
            .preload_numbers
            .unwrap_or(cli.preload.div_ceil(100))
            .max(2),
        number_prefix: format!("9{run}7"),
        a_prefix: "86137".into(),
        b_prefix: "86138".into(),
        ttl_seconds: 86_400,
    }
}

/// Runs the bulk preload and prints what it took; `pid`: the server whose RSS to print after.
async fn preload(
    store: &Store,
    spec: &PreloadSpec,
    pid: Option<Option<u32>>,
) -> Result<serde_json::Value, String> {
    eprintln!(
        "preload: {} AXYB bindings on {} numbers (pool {})",
        spec.bindings, spec.numbers, spec.pool_key
    );
    let t0 = std::time::Instant::now();
    let mut last = t0;
    let done = store
        .preload_axyb(spec, |n| {
            if last.elapsed() >= Duration::from_secs(10) {
                last = std::time::Instant::now();
                eprintln!("preload: {n} after {:.1} s", t0.elapsed().as_secs_f64());
            }
        })
        .await
        .map_err(|e| format!("preload: {e}"))?;
    let s = done.elapsed.as_secs_f64();
    let rss = pid.and_then(servers::rss_mib);
    eprintln!(
        "preload: {} bindings, {} routes, {} numbers in {s:.1} s ({:.0} bindings/s, {} transactions){}",
        done.bindings,
        done.routes,
        done.numbers,
        done.bindings as f64 / s.max(1e-9),
        done.transactions,
        rss.map(|m| format!("; server RSS {m:.0} MiB"))
            .unwrap_or_default()
    );
    Ok(serde_json::json!({
        "bindings": done.bindings,
        "numbers": done.numbers,
        "routes": done.routes,
        "seconds": (s * 1000.0).round() / 1000.0,
        "transactions": done.transactions,
        "server_rss_mib_after": rss.map(|m| (m * 10.0).round() / 10.0),
    }))
}

/// `--check`: the invariant queries of `pns-gateway check`; `Ok(false)` if any anomaly.
async fn check(url: &str) -> Result<bool, String> {
    let store = Store::connect_existing(url)
        .await
        .map_err(|e| format!("--check: cannot open {}: {e}", redact(url)))?;
    let found = store
        .check_invariants()
        .await
        .map_err(|e| format!("--check: {e}"))?;
    let scope = store
        .check_scope()
        .await
        .map_err(|e| format!("--check: {e}"))?;
    for a in &found {
        eprintln!("check: {a}");
    }
    eprintln!("check: {}", verdict(&found, &scope));
    Ok(found.is_empty())
}

async fn start_local(
    database_url: Option<&str>,
    spec: Option<&PreloadSpec>,
    preload_meta: &mut serde_json::Value,
    writers: usize,
) -> Result<(String, String, Local), String> {
    let (url, sqlite_file) = match database_url {
        Some(u) => (u.to_owned(), None),
        None => {
            let f = std::env::temp_dir().join(format!("pns-load-{}.db", uuid::Uuid::new_v4()));
            (format!("sqlite://{}?mode=rwc", f.display()), Some(f))
        }
    };
    let opts = StoreOptions {
        writers,
        ..Default::default()
    };
    let store = Store::connect_with(&url, opts)
        .await
        .map_err(|e| format!("connect {}: {e}", redact(&url)))?;
    store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
    let backend = store.backend_name().to_owned();
    if let Some(spec) = spec {
        // Before the server starts (it would route them as well if it ran: see storage::preload).
        *preload_meta = preload(&store, spec, Some(None)).await?;
    }
    let grpc = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = grpc.local_addr().map_err(|e| e.to_string())?.to_string();
    let (stop, rx) = oneshot::channel();
    let kept = store.clone();
    let task = tokio::spawn(app::run(store, grpc, None, Settings::default(), async {
        let _ = rx.await;
    }));
    eprintln!("in-process server on {addr}, {backend} at {}", redact(&url));
    let local = Local {
        stop,
        task,
        sqlite_file,
        url: url.clone(),
        store: kept,
    };
    Ok((addr, backend, local))
}

/// Drops a password from a database URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `n` connections, channel `c` to `targets[c % len]`.
async fn connect(targets: &[String], n: usize) -> Result<Vec<Channel>, String> {
    let mut eps = Vec::with_capacity(targets.len());
    for target in targets {
        eps.push(
            Endpoint::from_shared(target.to_owned())
                .map_err(|e| format!("--target {target}: {e}"))?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .tcp_nodelay(true),
        );
    }
    let mut channels = Vec::with_capacity(n);
    for c in 0..n {
        // One Endpoint::connect = one HTTP/2 connection.
        let (ep, target) = (&eps[c % eps.len()], &targets[c % targets.len()]);
        channels.push(
            ep.connect()
                .await
                .map_err(|e| format!("connect {target}: {e}"))?,
        );
    }
    Ok(channels)
}

async fn measure(cli: &Cli, servers: &Servers, local: Option<&Store>) -> Result<bool, String> {
    let target_is_local = local.is_some();
    let channels = connect(&servers.targets, cli.connections).await?;
    let (run, backend) = (servers.run.clone(), servers.backend.as_str());
    let target = servers.targets.join(",");
    let target = target.as_str();
    let ctx = Ctx {
        channels,
        concurrency: cli.concurrency,
        duration: Duration::from_secs_f64(cli.duration),
        pool_size: cli.pool_size,
        run: run.clone(),
        preload: servers.preload.clone(),
    };
    let meta = serde_json::json!({
        "target": target,
        "backend": backend,
        "replicas": cli.replicas,
        "preload": servers.preload_meta,
        "connections": cli.connections,
        "concurrency": cli.concurrency,
        "duration_s": cli.duration,
        "pool_size": cli.pool_size,
        "run_id": run,
    });
    eprintln!(
        "run {run}: {} connections × {} in flight, {} s per scenario, pool size {}",
        cli.connections, cli.concurrency, cli.duration, cli.pool_size
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut clean = true;
    let mut seen = Vec::new();
    for &s in &cli.scenarios {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        eprintln!("{}: running", s.name());
        let t0 = std::time::Instant::now();
        let uv0 = pns_gateway::storage::unique_violations();
        let hits0 = local.map(|s| (s.route_index_hits(), s.route_index_misses()));
        let gc0 = local.and_then(Store::group_commit_stats);
        let st0 = local.map(|s| (s.statements(), s.statement_time()));
        let sh0 = local.and_then(Store::group_commit_shared);
        let pc0 = local.and_then(Store::group_commit_pre_claimed);
        let busy0 = local.and_then(Store::group_commit_busy);
        let res = match s {
            Scenario::Health => scenarios::health(&ctx).await,
            Scenario::Notify => scenarios::notify(&ctx).await,
            Scenario::BindXyb => scenarios::bind_xyb(&ctx).await,
            Scenario::BindAxn => scenarios::bind_axn(&ctx).await,
            Scenario::FullPool => scenarios::full_pool(&ctx).await,
            Scenario::NotifyPreloaded => scenarios::notify_preloaded(&ctx).await,
            Scenario::Watch => {
                let shape = watch::Shape {
                    subscribers: cli.subscribers,
                    stuck: cli.stuck.min(cli.subscribers),
                    groups: cli.watch_groups,
                };
                watch::watch(&ctx, target, shape).await
            }
        };
        match res {
            Ok(mut r) => {
                let rss = servers.rss();
                eprintln!(
                    "{}: done in {:.1} s, server RSS {rss:.0?} MiB",
                    s.name(),
                    t0.elapsed().as_secs_f64()
                );
                for row in &mut r {
                    row.server_rss_mib = rss.clone();
                }
                if target_is_local {
                    // Conflicts the allocator met (in-process server only): retry storms show
                    // up here long before they show up as errors.
                    let uv = pns_gateway::storage::unique_violations() - uv0;
                    let ok: u64 = r.iter().map(|row| row.ok).sum();
                    for row in &mut r {
                        row.unique_violations = Some(uv);
                    }
                    eprintln!(
                        "{}: {uv} unique violations over {ok} successful requests ({:.4} per request)",
                        s.name(),
                        uv as f64 / ok.max(1) as f64
                    );
                    if let (Some(store), Some((h0, m0))) = (local, hits0) {
                        let m = store.route_index_misses();
                        eprintln!(
                            "{}: {} call-ins answered by the route index; not answered: {} \
                             unknown, {} tailer behind, {} own change unapplied",
                            s.name(),
                            store.route_index_hits() - h0,
                            m.unknown - m0.unknown,
                            m.stale - m0.stale,
                            m.unapplied - m0.unapplied,
                        );
                    }
                    if let (Some(store), Some((st0, time0))) = (local, st0) {
                        // Set-up (pools, numbers) included; on SQLite the event tailer reads
                        // through its own connection and is not counted.
                        let n = store.statements() - st0;
                        let waited = store.statement_time() - time0;
                        eprintln!(
                            "{}: {n} SQL statements on the main pool ({:.2} per successful request), waited for {:.0} ms in all ({:.3} ms each)",
                            s.name(),
                            n as f64 / ok.max(1) as f64,
                            waited.as_secs_f64() * 1e3,
                            waited.as_secs_f64() * 1e3 / n.max(1) as f64
                        );
                    }
                    if let (Some((b1, w1)), Some((b0, w0))) =
                        (local.and_then(Store::group_commit_stats), gc0)
                    {
                        let (b, w) = (b1 - b0, w1 - w0);
                        let shared = match (local.and_then(Store::group_commit_shared), sh0) {
                            (Some((s1, f1)), Some((s0, f0))) if s1 > s0 => format!(
                                "; {} under one shared savepoint, {} of them run again write by write",
                                s1 - s0,
                                f1 - f0
                            ),
                            _ => String::new(),
                        };
                        let pre = match (local.and_then(Store::group_commit_pre_claimed), pc0) {
                            (Some(p1), Some(p0)) if p1 > p0 => format!(
                                "; {} numbers claimed for their batch's binds at once",
                                p1 - p0
                            ),
                            _ => String::new(),
                        };
                        let busy = match (local.and_then(Store::group_commit_busy), busy0) {
                            (Some((t1, c1)), Some((t0w, c0))) if b > 0 => {
                                let (t, c) = (t1 - t0w, c1 - c0);
                                format!(
                                    "; writers busy {:.0} % of the scenario, {:.2} ms a transaction ({:.2} ms of it committing)",
                                    100.0 * t.as_secs_f64() / t0.elapsed().as_secs_f64(),
                                    t.as_secs_f64() * 1e3 / b as f64,
                                    c.as_secs_f64() * 1e3 / b as f64
                                )
                            }
                            _ => String::new(),
                        };
                        eprintln!(
                            "{}: group commit: {w} writes in {b} transactions ({:.1} per transaction){shared}{pre}{busy}",
                            s.name(),
                            w as f64 / b.max(1) as f64
                        );
                    }
                }
                clean &= r.iter().all(|row| row.errors.is_empty());
                rows.append(&mut r);
            }
            Err(e) => {
                eprintln!("{}: FAILED: {e}", s.name());
                clean = false;
            }
        }
    }

    let health_rps = rows.iter().find(|r| r.scenario == "health").map(|r| r.rps);
    let table = report::table(&rows, health_rps);
    let mut header = format!(
        "pns-load against {target} ({backend}), {} connections × {} in flight, {} s per timed run",
        cli.connections, cli.concurrency, cli.duration
    );
    if let Some(p) = &servers.preload {
        header.push_str(&format!(
            "\npreloaded {} AXYB bindings on {} numbers in {} s; server RSS after the preload {} MiB, after the run {:.0?} MiB",
            p.bindings,
            p.numbers,
            servers.preload_meta["seconds"],
            servers.preload_meta["server_rss_mib_after"],
            servers.rss()
        ));
    }
    if cli.json {
        for r in &rows {
            println!("{}", r.json(health_rps, &meta));
        }
        eprintln!("\n{header}\n{table}");
    } else {
        println!("\n{header}\n{table}");
    }
    if health_rps.is_none() {
        eprintln!("(no health scenario in this run: no ratios)");
    }
    Ok(clean)
}
