//! The scenarios: set-up (untimed) and the measured runs.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use pns_gateway::grpc::pb::{
    self, binding_service_client::BindingServiceClient, call_service_client::CallServiceClient,
    number_pool_service_client::NumberPoolServiceClient,
};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::driver::{Limits, Outcome, RunResult, drive, error_key};
use super::report::Row;

/// Set-up steps get this long before the tool gives up on them.
const SETUP_LIMIT: Duration = Duration::from_secs(600);
/// Budget of a timed run (the duration stops it long before).
const MAX_TIMED: u64 = 50_000_000;
/// AddNumbers takes at most this many numbers per request.
const ADD_CHUNK: usize = 10_000;
/// Share of the pool the `full-pool` scenario locks before probing.
const FULL: f64 = 0.995;

/// The key `--api-key` gave (sent as `authorization: Bearer <key>` on every pns.v1 call).
pub(crate) static API_KEY: std::sync::OnceLock<
    tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
> = std::sync::OnceLock::new();

/// Adds the API key, if any, to a request.
pub(crate) type Authed = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

fn authed(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(k) = API_KEY.get() {
        req.metadata_mut().insert("authorization", k.clone());
    }
    Ok(req)
}

type Intercepted = tonic::service::interceptor::InterceptedService<Channel, Authed>;

pub(crate) fn binding_client(ch: Channel) -> BindingServiceClient<Intercepted> {
    BindingServiceClient::with_interceptor(ch, authed as Authed)
}

pub(crate) fn call_client(ch: Channel) -> CallServiceClient<Intercepted> {
    CallServiceClient::with_interceptor(ch, authed as Authed)
}

pub(crate) fn pool_client(ch: Channel) -> NumberPoolServiceClient<Intercepted> {
    NumberPoolServiceClient::with_interceptor(ch, authed as Authed)
}

pub(crate) struct Ctx {
    pub(crate) channels: Vec<Channel>,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) pool_size: usize,
    /// Six digits unique to this run: in pool keys and virtual numbers, so reruns on the same
    /// database (PostgreSQL, `--target`) do not collide.
    pub(crate) run: String,
    /// What `--preload` wrote, for `notify-preloaded`.
    pub(crate) preload: Option<pns_gateway::storage::PreloadSpec>,
}

impl Ctx {
    pub(crate) fn timed(&self) -> Limits {
        Limits {
            duration: self.duration,
            max_requests: MAX_TIMED,
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.channels.len() * self.concurrency
    }

    pub(crate) fn pool_key(&self, name: &str) -> String {
        format!("load-{name}-{}", self.run)
    }

    fn pools(&self) -> NumberPoolServiceClient<Intercepted> {
        pool_client(self.channels[0].clone())
    }
}

/// Untimed limits for `n` set-up requests.
fn setup(n: u64) -> Limits {
    Limits {
        duration: SETUP_LIMIT,
        max_requests: n,
    }
}

/// A 15-digit virtual number unique to (run, scenario, index).
fn virtual_number(run: &str, scenario: u8, i: usize) -> String {
    format!("9{run}{scenario}{i:07}")
}

/// A 13-digit real number for role `role` (0–9) and index `i`.
pub(crate) fn real(role: u8, i: u64) -> String {
    format!("8613{role}{:08}", i % 100_000_000)
}

fn far_expiry() -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    prost_types::Timestamp {
        seconds: now + 86_400,
        nanos: 0,
    }
}

/// Fails a set-up step that did not complete every request.
fn require_all(step: &str, r: &RunResult, n: u64) -> Result<(), String> {
    if r.ok == n {
        return Ok(());
    }
    Err(format!(
        "{step}: {} of {n} succeeded (no number: {}, errors: {:?})",
        r.ok, r.exhausted, r.errors
    ))
}

/// Creates a local pool and loads `n` numbers into it in chunks of 10000.
pub(crate) async fn make_pool(
    ctx: &Ctx,
    key: &str,
    scenario: u8,
    n: usize,
) -> Result<Vec<String>, String> {
    make_pool_at(ctx, key, scenario, 0, n).await
}

/// `make_pool` with the scenario's numbers `first..first + n` (several pools of a scenario).
pub(crate) async fn make_pool_at(
    ctx: &Ctx,
    key: &str,
    scenario: u8,
    first: usize,
    n: usize,
) -> Result<Vec<String>, String> {
    let mut pools = ctx.pools();
    pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: key.to_owned(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        })
        .await
        .map_err(|s| format!("CreatePool {key}: {}: {}", error_key(&s), s.message()))?;
    let numbers: Vec<String> = (first..first + n)
        .map(|i| virtual_number(&ctx.run, scenario, i))
        .collect();
    for chunk in numbers.chunks(ADD_CHUNK) {
        let resp = pools
            .add_numbers(pb::AddNumbersRequest {
                pool_key: key.to_owned(),
                numbers: chunk
                    .iter()
                    .map(|n| pb::NumberSpec {
                        number: n.clone(),
                        iso2: "HK".into(),
                        city: "Hong Kong".into(),
                    })
                    .collect(),
            })
            .await
            .map_err(|s| format!("AddNumbers {key}: {}: {}", error_key(&s), s.message()))?
            .into_inner();
        if resp.added as usize != chunk.len() {
            return Err(format!(
                "AddNumbers {key}: added {} of {} (skipped {}): numbers of an earlier run?",
                resp.added,
                chunk.len(),
                resp.skipped
            ));
        }
    }
    Ok(numbers)
}

async fn pool_stats(ctx: &Ctx, key: &str) -> Result<pb::GetPoolStatsResponse, String> {
    ctx.pools()
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: key.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("GetPoolStats {key}: {}", error_key(&s)))
}

/// `grpc.health.v1.Health/Check` of the whole server: the transport's ceiling.
pub(crate) async fn health(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let r = drive(
        &ctx.channels,
        ctx.concurrency,
        ctx.timed(),
        |ch, _| async move {
            let req = HealthCheckRequest {
                service: String::new(),
            };
            match HealthClient::new(ch).check(req).await {
                Ok(resp) if resp.get_ref().status == ServingStatus::Serving as i32 => Outcome::Ok,
                Ok(_) => Outcome::Error("NOT_SERVING".into()),
                Err(st) => Outcome::Error(error_key(&st)),
            }
        },
    )
    .await;
    Ok(vec![Row::new("health", "Check", ctx.in_flight(), &r)])
}

/// The extension numbers, their AXN bindings, and the XYB bindings of the `notify` scenario.
const EXT_X: usize = 4;
const AXN_ROUTES: usize = 1000;
const XYB_ROUTES: usize = 500;

/// NotifyCallIn across AXN extension routes and AXYB routes (both directions).
pub(crate) async fn notify(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let pool = ctx.pool_key("notify");
    let numbers = make_pool(ctx, &pool, 1, EXT_X + XYB_ROUTES + 100).await?;
    let ext_x: Arc<Vec<String>> = Arc::new(numbers[..EXT_X].to_vec());

    // AXN extension bindings with explicit extensions 100… on the first few numbers.
    let (p, xs) = (pool.clone(), ext_x.clone());
    let r = drive(
        &ctx.channels,
        ctx.concurrency,
        setup(AXN_ROUTES as u64),
        move |ch, i| {
            let req = pb::BindAxnExtensionRequest {
                pool_key: p.clone(),
                phone_a: real(0, i),
                number_x: xs[i as usize % EXT_X].clone(),
                extension: (100 + i as usize / EXT_X).to_string(),
                expire_time: Some(far_expiry()),
                ..Default::default()
            };
            async move {
                match binding_client(ch).bind_axn_extension(req).await {
                    Ok(_) => Outcome::Ok,
                    Err(st) => Outcome::from_status(&st),
                }
            }
        },
    )
    .await;
    require_all("notify set-up: AXN binds", &r, AXN_ROUTES as u64)?;

    // XYB bindings (Y now), then each converted to AXYB by A's first call-in.
    let xy: Arc<Mutex<Vec<(String, String)>>> =
        Arc::new(Mutex::new(vec![Default::default(); XYB_ROUTES]));
    let (p, out) = (pool.clone(), xy.clone());
    let r = drive(
        &ctx.channels,
        ctx.concurrency,
        setup(XYB_ROUTES as u64),
        move |ch, i| {
            let req = pb::BindXybRequest {
                pool_key: p.clone(),
                phone_b: real(2, i),
                ..Default::default()
            };
            let out = out.clone();
            async move {
                match binding_client(ch).bind_xyb(req).await {
                    Ok(resp) => {
                        let b = resp.into_inner().binding.unwrap_or_default();
                        if b.number_y.is_empty() {
                            return Outcome::Error("XYB bind without Y".into());
                        }
                        out.lock().expect("xy lock")[i as usize] = (b.number_x, b.number_y);
                        Outcome::Ok
                    }
                    Err(st) => Outcome::from_status(&st),
                }
            }
        },
    )
    .await;
    require_all("notify set-up: XYB binds", &r, XYB_ROUTES as u64)?;
    let xy: Arc<Vec<(String, String)>> = Arc::new(xy.lock().expect("xy lock").clone());

    let (run, routes) = (ctx.run.clone(), xy.clone());
    let r = drive(
        &ctx.channels,
        ctx.concurrency,
        setup(XYB_ROUTES as u64),
        move |ch, i| {
            let req = pb::NotifyCallInRequest {
                caller: real(1, i),
                called: routes[i as usize].0.clone(),
                extension: String::new(),
                call_id: format!("load-{run}-convert-{i}"),
            };
            call_in(ch, req, real(2, i))
        },
    )
    .await;
    require_all(
        "notify set-up: first call-ins (XYB -> AXYB)",
        &r,
        XYB_ROUTES as u64,
    )?;

    // Warm-up: every route called once (the route index learns it), then timed: a third
    // extension calls (each from a new caller), a third A -> X, a third B -> Y.
    let (run, xs, routes) = (ctx.run.clone(), ext_x.clone(), xy.clone());
    let r = drive(
        &ctx.channels,
        ctx.concurrency,
        setup(3 * AXN_ROUTES.max(XYB_ROUTES) as u64),
        move |ch, i| {
            let (req, want) = notify_request(&format!("load-{run}-warm-{i}"), i, &xs, &routes);
            call_in(ch, req, want)
        },
    )
    .await;
    require_all(
        "notify set-up: warm-up call-ins",
        &r,
        3 * AXN_ROUTES.max(XYB_ROUTES) as u64,
    )?;
    let run = ctx.run.clone();
    let r = drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
        let (req, want) = notify_request(&format!("load-{run}-{i}"), i, &ext_x, &xy);
        call_in(ch, req, want)
    })
    .await;
    let note = format!(
        "{AXN_ROUTES} AXN extension routes on {EXT_X} numbers + {XYB_ROUTES} AXYB bindings \
         (both directions), each route called once before the timed run; every call-in writes \
         its call.incoming event"
    );
    Ok(vec![
        Row::new("notify", "NotifyCallIn", ctx.in_flight(), &r).with_note(note),
    ])
}

/// The `i`-th call-in of the `notify` scenario and whom it must reach: a third extension calls
/// (a new caller each), a third A -> X, a third B -> Y.
fn notify_request(
    call_id: &str,
    i: u64,
    ext_x: &[String],
    xy: &[(String, String)],
) -> (pb::NotifyCallInRequest, String) {
    match i % 3 {
        0 => {
            let k = (i / 3) % AXN_ROUTES as u64;
            let req = pb::NotifyCallInRequest {
                caller: real(3, i),
                called: ext_x[k as usize % EXT_X].clone(),
                extension: (100 + k as usize / EXT_X).to_string(),
                call_id: call_id.to_owned(),
            };
            (req, real(0, k))
        }
        kind => {
            let j = (i / 3) % XYB_ROUTES as u64;
            let (x, y) = &xy[j as usize];
            let (caller, called, want) = if kind == 1 {
                (real(1, j), x.clone(), real(2, j))
            } else {
                (real(2, j), y.clone(), real(1, j))
            };
            let req = pb::NotifyCallInRequest {
                caller,
                called,
                extension: String::new(),
                call_id: call_id.to_owned(),
            };
            (req, want)
        }
    }
}

/// One NotifyCallIn that must CONNECT to `want`.
async fn call_in(ch: Channel, req: pb::NotifyCallInRequest, want: String) -> Outcome {
    match call_client(ch).notify_call_in(req).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            if resp.decision != pb::Decision::Connect as i32 {
                let d = pb::Decision::try_from(resp.decision)
                    .map(|d| d.as_str_name().to_owned())
                    .unwrap_or_else(|_| resp.decision.to_string());
                let why = pb::NoBindingReason::try_from(resp.no_binding_reason)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_default();
                return Outcome::Error(format!("{d}/{why}"));
            }
            if resp.connect_to != want {
                return Outcome::Error("CONNECT to the wrong party".into());
            }
            Outcome::Ok
        }
        Err(st) => Outcome::Error(error_key(&st)),
    }
}

/// The BindXyb of the bind scenarios: delayed Y, B given.
pub(crate) fn delayed_xyb(pool_key: String, phone_b: String) -> pb::BindXybRequest {
    pb::BindXybRequest {
        pool_key,
        phone_b,
        delayed_y: true,
        ..Default::default()
    }
}

pub(crate) async fn bind_xyb_once(ch: Channel, pool: String, phone_b: String) -> Outcome {
    match binding_client(ch)
        .bind_xyb(delayed_xyb(pool, phone_b))
        .await
    {
        Ok(_) => Outcome::Ok,
        Err(st) => Outcome::from_status(&st),
    }
}

/// BindXyb (delayed Y, a distinct B each) on a pool of `pool_size` numbers.
pub(crate) async fn bind_xyb(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let pool = ctx.pool_key("bind-xyb");
    make_pool(ctx, &pool, 2, ctx.pool_size).await?;
    let p = pool.clone();
    let r = drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
        bind_xyb_once(ch, p.clone(), real(4, i))
    })
    .await;
    let mut row = Row::new("bind-xyb", "BindXyb delayed_y", ctx.in_flight(), &r);
    if r.exhausted > 0 {
        row = row.with_note(format!(
            "pool of {} numbers ran out; stopped early",
            ctx.pool_size
        ));
    }
    Ok(vec![row])
}

/// BindAxnExtension (auto extension, a distinct A each) on a pool with room for 900 extensions
/// per number.
pub(crate) async fn bind_axn(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let pool = ctx.pool_key("bind-axn");
    let n = (ctx.pool_size / 20).max(100);
    make_pool(ctx, &pool, 3, n).await?;
    let p = pool.clone();
    let r = drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
        let req = pb::BindAxnExtensionRequest {
            pool_key: p.clone(),
            phone_a: real(5, i),
            expire_time: Some(far_expiry()),
            ..Default::default()
        };
        async move {
            match binding_client(ch).bind_axn_extension(req).await {
                Ok(_) => Outcome::Ok,
                Err(st) => Outcome::from_status(&st),
            }
        }
    })
    .await;
    let row = Row::new("bind-axn", "BindAxnExtension auto", ctx.in_flight(), &r).with_note(
        format!("pool of {n} numbers (room for {} extensions)", n * 900),
    );
    Ok(vec![row])
}

/// Single binds on an empty pool vs the same pool locked to 99.5%.
pub(crate) async fn full_pool(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let pool = ctx.pool_key("full-pool");
    let n = ctx.pool_size;
    make_pool(ctx, &pool, 4, n).await?;
    let target = ((n as f64) * FULL).floor() as usize;
    let free_at_probe = n - target;
    let k = (free_at_probe * 2 / 5).clamp(1, 40);
    if target < 2 * k || free_at_probe < 2 * k {
        return Err(format!(
            "--pool-size {n} is too small for the full-pool scenario"
        ));
    }
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut rows = Vec::new();

    rows.push(probe(ctx, &pool, &seen, "empty: sequential", k, false).await);
    rows.push(probe(ctx, &pool, &seen, "empty: concurrent", k, true).await);

    // Fill to 50 %, then to 99.5 %, as fast as the server takes it (untimed).
    let half = n / 2;
    let mut locked = 2 * k;
    for (phase, upto) in [("fill to 50%", half), ("fill 50% -> 99.5%", target)] {
        let count = upto.saturating_sub(locked) as u64;
        let (p, base) = (
            pool.clone(),
            seen.fetch_add(count, std::sync::atomic::Ordering::Relaxed),
        );
        let r = drive(
            &ctx.channels,
            ctx.concurrency,
            setup(count),
            move |ch, i| bind_xyb_once(ch, p.clone(), real(6, base + i)),
        )
        .await;
        rows.push(Row::new("full-pool", phase, ctx.in_flight(), &r));
        require_all(&format!("full-pool {phase}"), &r, count)?;
        locked = upto;
    }
    let stats = pool_stats(ctx, &pool).await?;
    let note = format!(
        "pool {} numbers, {} locked ({:.2}%), {} free before the probes",
        stats.total,
        stats.locked,
        100.0 * stats.locked as f64 / stats.total.max(1) as f64,
        stats.free
    );

    rows.push(
        probe(ctx, &pool, &seen, "99.5% full: sequential", k, false)
            .await
            .with_note(note),
    );
    rows.push(probe(ctx, &pool, &seen, "99.5% full: concurrent", k, true).await);
    Ok(rows)
}

/// `k` BindXyb on `pool`, one after another or all at once.
async fn probe(
    ctx: &Ctx,
    pool: &str,
    seen: &Arc<std::sync::atomic::AtomicU64>,
    phase: &str,
    k: usize,
    concurrent: bool,
) -> Row {
    let base = seen.fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
    let p = pool.to_owned();
    let call = move |ch: Channel, i: u64| bind_xyb_once(ch, p.clone(), real(6, base + i));
    let (r, in_flight) = if concurrent {
        let per = k.div_ceil(ctx.channels.len());
        (drive(&ctx.channels, per, setup(k as u64), call).await, k)
    } else {
        (drive(&ctx.channels[..1], 1, setup(k as u64), call).await, 1)
    };
    Row::new("full-pool", phase, in_flight, &r)
}

/// NotifyCallIn on the preloaded AXYB bindings, spread over all of them (a pseudo-random
/// binding per request, A -> X and B -> Y alternately): most are not in the route index yet
/// when called, and with more than its capacity most cannot stay there.
pub(crate) async fn notify_preloaded(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let Some(spec) = ctx.preload.clone().filter(|s| s.bindings > 0) else {
        return Err("notify-preloaded needs --preload N (N > 0)".into());
    };
    let spec = Arc::new(spec);
    let (run, sp) = (ctx.run.clone(), spec.clone());
    let r = drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
        let k = mix(i) % sp.bindings;
        let (caller, called, want) = if i % 2 == 0 {
            (sp.caller_a(k), sp.number_x(k), sp.caller_b(k))
        } else {
            (sp.caller_b(k), sp.number_y(k), sp.caller_a(k))
        };
        let req = pb::NotifyCallInRequest {
            caller,
            called,
            extension: String::new(),
            call_id: format!("load-{run}-pre-{i}"),
        };
        call_in(ch, req, want)
    })
    .await;
    let note = format!(
        "{} preloaded AXYB bindings on {} numbers, a pseudo-random one per call-in (both \
         directions), no warm-up",
        spec.bindings, spec.numbers
    );
    Ok(vec![
        Row::new("notify-preloaded", "NotifyCallIn", ctx.in_flight(), &r).with_note(note),
    ])
}

/// splitmix64: request index -> well-spread binding index.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
