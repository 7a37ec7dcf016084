//! Server processes: `--replicas N` starts N `pns-gateway serve` children on one database,
//! and the resident memory (VmRSS) of whichever servers the run loads.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long a child gets to answer its health check.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// VmRSS of `pid` (this process when `None`) in MiB, from `/proc/<pid>/status`.
pub(crate) fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One `pns-gateway serve` child.
pub(crate) struct Replica {
    child: Child,
    pub(crate) grpc: String,
    pub(crate) log: PathBuf,
}

impl Replica {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The `pns-gateway` binary next to this one (`target/release/`).
fn server_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let bin = me.with_file_name("pns-gateway");
    if !bin.exists() {
        return Err(format!(
            "--replicas needs {} (build it: cargo build --release --bins)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// A port that was free a moment ago (the child binds it; the race is accepted).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `n` servers on `database_url` and waits until each answers SERVING. On failure the
/// ones started are killed.
pub(crate) async fn start(n: usize, database_url: &str, run: &str) -> Result<Vec<Replica>, String> {
    let bin = server_binary()?;
    let mut out: Vec<Replica> = Vec::with_capacity(n);
    for k in 0..n {
        match spawn(&bin, database_url, run, k).await {
            Ok(r) => out.push(r),
            Err(e) => {
                stop(out);
                return Err(e);
            }
        }
    }
    for k in 0..out.len() {
        if let Err(e) = ready(&mut out[k]).await {
            let log = out[k].log.display().to_string();
            stop(out);
            return Err(format!("replica {}: {e} (log: {log})", k + 1));
        }
    }
    Ok(out)
}

async fn spawn(bin: &PathBuf, database_url: &str, run: &str, k: usize) -> Result<Replica, String> {
    let (grpc, http) = (free_port()?, free_port()?);
    let log = std::env::temp_dir().join(format!("pns-load-{run}-replica-{}.log", k + 1));
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{grpc}"))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http}"))
        // The URL by environment, not argv: it may hold a password.
        .env("PNS_DATABASE_URL", database_url)
        .env(
            "PNS_LOG",
            std::env::var("PNS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    eprintln!(
        "replica {}: pid {}, gRPC 127.0.0.1:{grpc}, log {}",
        k + 1,
        child.id(),
        log.display()
    );
    Ok(Replica {
        child,
        grpc: format!("http://127.0.0.1:{grpc}"),
        log,
    })
}

/// Polls the child's gRPC health check until SERVING.
async fn ready(r: &mut Replica) -> Result<(), String> {
    let t0 = Instant::now();
    let ep = Endpoint::from_shared(r.grpc.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(format!("exited with {status} before it was ready"));
        }
        if let Ok(ch) = ep.connect().await {
            let req = HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(resp) = HealthClient::new(ch).check(req).await
                && resp.get_ref().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        if t0.elapsed() > READY_WITHIN {
            return Err(format!("not SERVING within {} s", READY_WITHIN.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the children (SIGKILL: the measurement is over, and every acknowledged write is
/// committed) and reaps them.
pub(crate) fn stop(replicas: Vec<Replica>) {
    drop(replicas);
}

impl Drop for Replica {
    /// A child is never left running, whatever path the tool leaves by.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
