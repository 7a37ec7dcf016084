//! `pns-gateway`: serve, migrate, and load numbers from the command line.
#![forbid(unsafe_code)]

/// mimalloc, not glibc's malloc: a request allocates and frees many small buffers across the
/// runtime's threads, and glibc's arenas spent a fifth of all CPU on it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use pns_gateway::{
    app::{self, Settings},
    config::{Exposure, FileConfig},
    domain::{Pool, Provider, Repository, anomaly::verdict},
    grpc::pool_service::parse_new_numbers,
    storage::{Store, StoreOptions},
};

#[derive(Parser)]
#[command(
    name = "pns-gateway",
    version,
    about = "Privacy-number (number masking) gateway"
)]
struct Cli {
    /// Database URL: postgres://…, mysql://… or sqlite://…; a bare path is a SQLite file (created
    /// if missing).
    #[arg(
        long,
        env = "PNS_DATABASE_URL",
        default_value = "pns.db",
        global = true
    )]
    database_url: String,
    /// Optional TOML config file (carrier pools, webhooks).
    #[arg(long, env = "PNS_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PNS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC and HTTP servers (migrates first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage local pools.
    #[command(subcommand)]
    Pools(PoolsCmd),
    /// Load numbers into a local pool.
    #[command(subcommand)]
    Numbers(NumbersCmd),
    /// Check the database's invariants (read-only): prints each anomaly; exit 0 if none,
    /// 1 if any, 2 if the check could not run.
    Check,
}

#[derive(Args)]
struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "PNS_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// HTTP listen address (carrier webhooks, /livez, /readyz, /metrics).
    #[arg(long, env = "PNS_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: String,
    /// Sweeper period in milliseconds (overrides the config file).
    #[arg(long, env = "PNS_SWEEP_INTERVAL_MS")]
    sweep_interval_ms: Option<u64>,
    /// Longest wait for the database (a pooled or a new connection; ten times this for a
    /// PostgreSQL statement) before a request fails with UNAVAILABLE.
    #[arg(long, env = "PNS_DB_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    db_timeout_ms: u64,
    /// Group-commit writers on PostgreSQL: each batches concurrent writes into one transaction
    /// on a connection of its own (0: a transaction per write). SQLite always has one.
    #[arg(long, env = "PNS_DB_WRITERS", default_value_t = pns_gateway::storage::DEFAULT_WRITERS as u64, value_parser = clap::value_parser!(u64).range(0..=16))]
    db_writers: u64,
    /// Concurrent WatchEvents streams; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PNS_MAX_EVENT_STREAMS", default_value_t = pns_gateway::events::DEFAULT_MAX_STREAMS)]
    max_event_streams: usize,
    /// A WatchEvents subscriber that reads nothing for this long is cut off (it resumes).
    #[arg(long, env = "PNS_STREAM_CUTOFF_MS", default_value_t = 30_000)]
    stream_cutoff_ms: u64,
    /// Days the real numbers of ended bindings and of their events are kept (overrides the
    /// config file's `retention_days`; default 30).
    #[arg(long, env = "PNS_RETENTION_DAYS", value_parser = clap::value_parser!(u64).range(1..=36_500))]
    retention_days: Option<u64>,
    /// Serve without API keys on a non-loopback address (anyone reaching the ports is admin).
    #[arg(long, env = "PNS_ALLOW_UNAUTHENTICATED")]
    allow_unauthenticated: bool,
    /// PEM certificate chain: serve TLS on both listeners (plaintext is then refused).
    /// Overrides the config file's `[tls] cert`. Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "PNS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (overrides `[tls] key`).
    #[arg(long, env = "PNS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates issued by them (mutual TLS;
    /// overrides `[tls] client_ca`).
    #[arg(long, env = "PNS_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Concurrent connections of both listeners together; more are closed at accept.
    #[arg(long, env = "PNS_MAX_CONNECTIONS", default_value_t = pns_gateway::net::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Largest gRPC request message in bytes; larger ones get OUT_OF_RANGE.
    #[arg(long, env = "PNS_MAX_MESSAGE_BYTES", default_value_t = pns_gateway::net::DEFAULT_MAX_MESSAGE_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=64 * 1024 * 1024))]
    max_message_bytes: usize,
}

#[derive(Subcommand)]
enum PoolsCmd {
    /// Create a local pool.
    Create { pool_key: String },
    /// List pools.
    List,
}

#[derive(Subcommand)]
enum NumbersCmd {
    /// Add numbers given on the command line.
    Add {
        #[arg(long)]
        pool: String,
        /// ISO 3166 alpha-2 country of these numbers.
        #[arg(long, default_value = "")]
        iso2: String,
        /// City of these numbers.
        #[arg(long, default_value = "")]
        city: String,
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Import a CSV file of `number[,iso2[,city]]` lines (a header line starting with "number" is skipped).
    Import {
        #[arg(long)]
        pool: String,
        #[arg(long)]
        file: PathBuf,
    },
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PNS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: logs collected from a pipe or a file stay plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let json_logs = cli.log_format == "json";
    if let Command::Check = cli.command {
        return check(&cli.database_url).await;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: as a log record for collectors of JSON logs, else as plain text.
            if json_logs {
                tracing::error!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn open(cli: &Cli) -> Result<Store, String> {
    open_with(cli, StoreOptions::default()).await
}

async fn open_with(cli: &Cli, opts: StoreOptions) -> Result<Store, String> {
    let store = Store::connect_with(&cli.database_url, opts)
        .await
        .map_err(|e| format!("cannot open database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    Ok(store)
}

async fn run(cli: Cli) -> Result<(), String> {
    let cfg = FileConfig::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    match &cli.command {
        Command::Migrate => {
            open(&cli).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve(a) => {
            // Everything that can be checked without the database is checked first, and every
            // problem is reported at once: nothing is created or migrated for a bad config.
            let resolved = cfg
                .resolve(
                    |name| std::env::var(name).ok(),
                    &Exposure {
                        listeners: vec![a.listen.clone(), a.http_listen.clone()],
                        allow_unauthenticated: a.allow_unauthenticated,
                    },
                )
                .map_err(|e| e.to_string())?;
            match &resolved.open_mode {
                Some(w) if a.allow_unauthenticated => tracing::error!("{w}"),
                Some(w) => tracing::warn!("{w}"),
                None => tracing::info!("API keys required on the gRPC services"),
            }
            // Certificate files are read and checked before anything listens.
            let ft = cfg.tls.as_ref();
            let tls = pns_gateway::net::tls::TlsFiles::pick(
                a.tls_cert
                    .clone()
                    .or_else(|| ft.and_then(|t| t.cert.clone())),
                a.tls_key.clone().or_else(|| ft.and_then(|t| t.key.clone())),
                a.tls_client_ca
                    .clone()
                    .or_else(|| ft.and_then(|t| t.client_ca.clone())),
            )?
            .map(pns_gateway::net::tls::Tls::load)
            .transpose()?;
            match &tls {
                Some(t) => tracing::info!(
                    cert = %t.files().cert.display(),
                    mutual = t.mutual(),
                    "TLS on both listeners; plaintext is refused"
                ),
                None => tracing::info!("no TLS configured: both listeners serve plaintext"),
            }
            let grpc = tokio::net::TcpListener::bind(&a.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
            let http = tokio::net::TcpListener::bind(&a.http_listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", a.http_listen))?;
            let store = open_with(
                &cli,
                StoreOptions {
                    timeout: Duration::from_millis(a.db_timeout_ms),
                    writers: a.db_writers as usize,
                },
            )
            .await?;
            app::apply_pools(&store, &resolved.pools).await?;
            let sweep = a
                .sweep_interval_ms
                .or(cfg.sweep_interval_ms)
                .unwrap_or(1000);
            let settings = Settings {
                sweep_interval: Duration::from_millis(sweep.max(10)),
                carriers: resolved.carriers,
                webhook_tokens: resolved.webhook_tokens,
                auth: resolved.auth,
                retention: a
                    .retention_days
                    .or(cfg.retention_days)
                    .map(|d| Duration::from_secs(d.max(1) * 24 * 3600))
                    .unwrap_or(app::DEFAULT_RETENTION),
                max_event_streams: a.max_event_streams,
                net: pns_gateway::net::NetOptions {
                    tls,
                    max_connections: a.max_connections,
                    max_message_bytes: a.max_message_bytes,
                },
                webhook_networks: resolved.webhook_networks,
                stream_cutoff: Duration::from_millis(a.stream_cutoff_ms),
                ..Settings::default()
            };
            app::run(store, grpc, Some(http), settings, shutdown_signal()).await
        }
        Command::Pools(PoolsCmd::Create { pool_key }) => {
            let store = open(&cli).await?;
            pns_gateway::domain::validate_pool_key(pool_key)
                .map_err(|e| format!("pool key {e}"))?;
            store
                .create_pool(Pool {
                    pool_key: pool_key.clone(),
                    provider: Provider::Local,
                    carrier_pool_key: String::new(),
                    tenants: Vec::new(),
                })
                .await
                .map_err(|e| e.to_string())?;
            println!("pool {pool_key} created");
            Ok(())
        }
        Command::Pools(PoolsCmd::List) => {
            let store = open(&cli).await?;
            for p in store.list_pools().await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    p.pool_key,
                    p.provider.as_str(),
                    p.carrier_pool_key
                );
            }
            Ok(())
        }
        Command::Numbers(NumbersCmd::Add {
            pool,
            iso2,
            city,
            numbers,
        }) => {
            let specs: Vec<_> = numbers
                .iter()
                .map(|n| (n.clone(), iso2.clone(), city.clone()))
                .collect();
            add(&cli, pool, &specs).await
        }
        Command::Numbers(NumbersCmd::Import { pool, file }) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let specs = parse_csv(&text);
            add(&cli, pool, &specs).await
        }
        Command::Check => unreachable!("`check` is dispatched by main"),
    }
}

/// `pns-gateway check`: every anomaly on its own line, then a one-line verdict.
async fn check(database_url: &str) -> ExitCode {
    let res = async {
        let store = Store::connect_existing(database_url)
            .await
            .map_err(|e| format!("cannot open database: {e}"))?;
        let found = store.check_invariants().await.map_err(|e| e.to_string())?;
        let scope = store.check_scope().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((store.backend_name(), found, scope))
    };
    match res.await {
        Ok((backend, found, scope)) => {
            for a in &found {
                println!("{a}");
            }
            println!("{} ({backend})", verdict(&found, &scope));
            if found.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: check could not run: {e}");
            ExitCode::from(2)
        }
    }
}

async fn add(cli: &Cli, pool: &str, specs: &[(String, String, String)]) -> Result<(), String> {
    let store = open(cli).await?;
    let p = store.get_pool(pool).await.map_err(|e| e.to_string())?;
    if p.provider != Provider::Local {
        return Err(format!(
            "pool {pool} is a {} pool; numbers are added only to local pools",
            p.provider.as_str()
        ));
    }
    let (mut added, mut skipped) = (0, 0);
    for chunk in specs.chunks(pns_gateway::grpc::pool_service::MAX_ADD_NUMBERS) {
        let numbers = parse_new_numbers(chunk).map_err(|e| e.to_string())?;
        let (a, s) = store
            .add_numbers(pool, numbers)
            .await
            .map_err(|e| e.to_string())?;
        added += a;
        skipped += s;
    }
    println!("added {added}, skipped {skipped} already in pool {pool}");
    Ok(())
}

fn parse_csv(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.to_ascii_lowercase().starts_with("number")
        })
        .map(|l| {
            let mut f = l.split(',').map(|s| s.trim().trim_matches('"').to_owned());
            (
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
            )
        })
        .collect()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
