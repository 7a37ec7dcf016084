//! The `watch` scenario: BindXyb with no event subscriber, then the same with `subscribers`
//! WatchEvents streams open — `stuck` of them never read — measuring what the fan-out costs the
//! write path, how late events reach the readers (write-to-delivery latency: receive time minus
//! the event's time), and how much memory the streams take (process RSS; with the in-process
//! server the client's buffers count too).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use pns_gateway::grpc::pb;
use tonic::transport::{Channel, Endpoint};

use super::driver::drive;
use super::report::Row;
use super::scenarios::{Ctx, bind_xyb_once, call_client, make_pool, real};

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) async fn watch(
    ctx: &Ctx,
    target: &str,
    subscribers: usize,
    stuck: usize,
) -> Result<Vec<Row>, String> {
    let pool = ctx.pool_key("watch");
    make_pool(ctx, &pool, 7, ctx.pool_size).await?;
    let bind_run = |from: u64| {
        let p = pool.clone();
        drive(&ctx.channels, ctx.concurrency, ctx.timed(), move |ch, i| {
            bind_xyb_once(ch, p.clone(), real(5, from + i))
        })
    };
    let alone = bind_run(0).await;
    let mut rows = vec![Row::new(
        "watch",
        "BindXyb, no subscriber",
        ctx.in_flight(),
        &alone,
    )];

    let rss0 = rss_mib();
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut readers = Vec::new();
    let mut held = Vec::new();
    // Never-reading clients get the protocol's default 64 KiB HTTP/2 windows (tonic's own
    // default would let the client buffer megabytes before the server notices).
    let small = Endpoint::from_shared(target.to_owned())
        .map_err(|e| e.to_string())?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = pb::WatchEventsRequest {
        from_now: true,
        pool_key: pool.clone(),
        ..Default::default()
    };
    for i in 0..subscribers {
        let ch: Channel = if i < stuck {
            small.clone()
        } else {
            ctx.channels[i % ctx.channels.len()].clone()
        };
        let mut stream = call_client(ch)
            .watch_events(req.clone())
            .await
            .map_err(|st| format!("subscriber {i}: {st}"))?
            .into_inner();
        if i < stuck {
            held.push(stream);
            continue;
        }
        let (delivered, latencies) = (delivered.clone(), latencies.clone());
        let timed = i - stuck < TIMED_READERS;
        readers.push(tokio::spawn(async move {
            while let Ok(Some(ev)) = stream.message().await {
                delivered.fetch_add(1, Ordering::Relaxed);
                if timed && let Some(t) = ev.time {
                    let at = t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
                    if let Ok(mut l) = latencies.lock() {
                        l.push((now_ms() - at) as f64);
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
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    let expected = with.ok * (subscribers - stuck) as u64;
    let got = delivered.load(Ordering::Relaxed);
    let ratio = if alone.rps() > 0.0 {
        with.rps() / alone.rps()
    } else {
        0.0
    };
    rows.push(
        Row::new(
            "watch",
            &format!("BindXyb, {subscribers} subscribers ({stuck} never read)"),
            ctx.in_flight(),
            &with,
        )
        .with_note(format!(
            "{ratio:.2}× the run without subscribers; delivery p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
             ({} timed); delivered {got} of {expected} events to the readers; RSS {rss0:.0} MiB -> \
             {rss_open:.0} MiB with the streams open -> {rss1:.0} MiB after the run (+{:.0} MiB)",
            quantile(&lat, 0.5),
            quantile(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0),
            lat.len(),
            rss1 - rss0
        )),
    );
    drop(held);
    for r in readers {
        r.abort();
    }
    Ok(rows)
}
