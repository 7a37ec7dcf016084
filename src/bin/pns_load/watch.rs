//! The `watch` scenario: BindXyb with no event subscriber, then the same with `subscribers`
//! WatchEvents streams open — `stuck` of them never read — measuring what the fan-out costs the
//! write path, how late events reach the readers, and how much memory the streams take
//! (process RSS; with the in-process server the client's buffers count too). Delivery latency
//! is measured two ways: from the bind's acknowledgement (the write is committed; what the
//! fan-out adds) and from the event's time (taken when the bind is processed, so it includes
//! the bind's own queueing at this many requests in flight).
//!
//! Subscribers are spread over `groups` pools the way services use the stream: the binds go
//! round-robin over the pools and each reader watches one pool (`pool_key` filter), so an event
//! matches `readers / groups` of them. The `stuck` never-reading subscribers watch every pool
//! (no filter, like a stalled archiver): every event matches them, so their buffers fill
//! within the run and they stall (and, after the server's cut-off, are cut off) on their own.
//! With `groups = 1` every reader receives every event too: then the in-process client
//! decoding `readers × binds/s` messages on the same two cores is most of what is measured.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use pns_gateway::grpc::pb;
use tonic::transport::{Channel, Endpoint};

use super::driver::{Outcome, drive};
use super::report::Row;
use super::scenarios::{Ctx, binding_client, call_client, make_pool_at, real};

/// Readers whose every delivery is timed (the others only count), to keep the sample small.
const TIMED_READERS: usize = 20;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Binding id -> when its bind was acknowledged (µs since the epoch).
type Acks = Arc<Mutex<HashMap<String, i64>>>;

/// BindXyb (delayed Y); notes when it was acknowledged.
async fn bind_acked(ch: Channel, pool: String, phone_b: String, acks: Acks) -> Outcome {
    match binding_client(ch)
        .bind_xyb(super::scenarios::delayed_xyb(pool, phone_b))
        .await
    {
        Ok(r) => {
            let at = now_us();
            if let (Some(b), Ok(mut a)) = (r.into_inner().binding, acks.lock()) {
                a.insert(b.binding_id, at);
            }
            Outcome::Ok
        }
        Err(st) => Outcome::from_status(&st),
    }
}

/// A timed reader's receipt: binding id, receive time (µs), event time (ms).
type Receipt = (String, i64, i64);

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// What the scenario opens: `subscribers` streams over `groups` pools, `stuck` never read.
pub(crate) struct Shape {
    pub subscribers: usize,
    pub stuck: usize,
    pub groups: usize,
}

pub(crate) async fn watch(ctx: &Ctx, target: &str, shape: Shape) -> Result<Vec<Row>, String> {
    let Shape {
        subscribers,
        stuck,
        groups,
    } = shape;
    let groups = groups.max(1);
    // Twice the pool size in all, so neither bind run runs out of numbers.
    let per_pool = (2 * ctx.pool_size / groups).max(100);
    let mut pools = Vec::with_capacity(groups);
    for g in 0..groups {
        let key = format!("{}-{g}", ctx.pool_key("watch"));
        make_pool_at(ctx, &key, 7, g * per_pool, per_pool).await?;
        pools.push(key);
    }
    let pools = Arc::new(pools);
    // Binds acknowledged per pool (to know how many deliveries each reader should get).
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..groups).map(|_| AtomicU64::new(0)).collect());
    let acks: Acks = Arc::default();
    let bind_run = |from: u64| {
        let (pools, acked, acks) = (pools.clone(), acked.clone(), acks.clone());
        drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
            let g = (i % groups as u64) as usize;
            let (pool, acked, acks) = (pools[g].clone(), acked.clone(), acks.clone());
            async move {
                let out = bind_acked(ch, pool, real(5, from + i), acks).await;
                if matches!(out, Outcome::Ok) {
                    acked[g].fetch_add(1, Ordering::Relaxed);
                }
                out
            }
        })
    };
    let alone = bind_run(0).await;
    let mut rows = vec![Row::new(
        "watch",
        "BindXyb, no subscriber",
        ctx.in_flight(),
        &alone,
    )];
    for a in acked.iter() {
        a.store(0, Ordering::Relaxed);
    }

    let rss0 = rss_mib();
    let delivered = Arc::new(AtomicU64::new(0));
    let receipts = Arc::new(Mutex::new(Vec::<Receipt>::new()));
    let mut readers = Vec::new();
    let mut held = Vec::new();
    let mut readers_of = vec![0u64; groups];
    // Never-reading clients get the protocol's default 64 KiB HTTP/2 windows (tonic's own
    // default would let the client buffer megabytes before the server notices).
    // (With --replicas, `target` lists them all; the never-reading clients use the first.)
    let first = target.split(',').next().unwrap_or(target);
    let small = Endpoint::from_shared(first.to_owned())
        .map_err(|e| e.to_string())?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    for i in 0..subscribers {
        let g = i.saturating_sub(stuck) % groups;
        let req = pb::WatchEventsRequest {
            from_now: true,
            pool_key: if i < stuck {
                String::new()
            } else {
                pools[g].clone()
            },
            ..Default::default()
        };
        let ch: Channel = if i < stuck {
            small.clone()
        } else {
            ctx.channels[i % ctx.channels.len()].clone()
        };
        let mut stream = call_client(ch)
            .watch_events(req)
            .await
            .map_err(|st| format!("subscriber {i}: {st}"))?
            .into_inner();
        if i < stuck {
            held.push(stream);
            continue;
        }
        readers_of[g] += 1;
        let (delivered, receipts) = (delivered.clone(), receipts.clone());
        let timed = i - stuck < TIMED_READERS;
        readers.push(tokio::spawn(async move {
            while let Ok(Some(ev)) = stream.message().await {
                delivered.fetch_add(1, Ordering::Relaxed);
                if timed && let Some(t) = ev.time {
                    let at = t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
                    if let Ok(mut r) = receipts.lock() {
                        r.push((ev.binding_id, now_us(), at));
                    }
                }
            }
        }));
    }
    let rss_open = rss_mib();
    let with = bind_run(10_000_000).await;
    // Let the readers drain what is in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = rss_mib();
    let receipts = receipts.lock().map(|r| r.clone()).unwrap_or_default();
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    // From the acknowledgement (an event may arrive before its bind's response: 0 then).
    let mut lat: Vec<f64> = receipts
        .iter()
        .filter_map(|(id, got, _)| acks.get(id).map(|ack| (got - ack).max(0) as f64 / 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut from_time: Vec<f64> = receipts
        .iter()
        .map(|(_, got, at)| (got / 1000 - at) as f64)
        .collect();
    from_time.sort_by(f64::total_cmp);
    let expected: u64 = acked
        .iter()
        .zip(&readers_of)
        .map(|(a, r)| a.load(Ordering::Relaxed) * r)
        .sum();
    let got = delivered.load(Ordering::Relaxed);
    let ratio = if alone.rps() > 0.0 {
        with.rps() / alone.rps()
    } else {
        0.0
    };
    let per_event = (subscribers - stuck).div_ceil(groups) + stuck;
    rows.push(
        Row::new(
            "watch",
            &format!("BindXyb, {subscribers} subscribers ({stuck} never read) over {groups} pools"),
            ctx.in_flight(),
            &with,
        )
        .with_note(format!(
            "{ratio:.2}× the run without subscribers; each event matches ~{per_event} streams \
             ({stuck} of them never read); delivery after the bind's acknowledgement p50 {:.1} \
             ms, p99 {:.1} ms, max {:.1} ms ({} timed); after the event's time p50 {:.0} ms, p99 \
             {:.0} ms; delivered {got} of {expected} events to the readers; RSS {rss0:.0} MiB -> \
             {rss_open:.0} MiB with the streams open -> {rss1:.0} MiB after the run (+{:.0} MiB)",
            quantile(&lat, 0.5),
            quantile(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0),
            lat.len(),
            quantile(&from_time, 0.5),
            quantile(&from_time, 0.99),
            rss1 - rss0
        )),
    );
    drop(held);
    for r in readers {
        r.abort();
    }
    Ok(rows)
}
