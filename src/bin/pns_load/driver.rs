//! The closed-loop driver: `connections × concurrency` workers, each sending one request at a
//! time until the deadline, the request budget, or a worker reporting the pool exhausted.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;
use tonic::{Status, transport::Channel};
use tonic_types::StatusExt;

/// What one request came back with.
pub(crate) enum Outcome {
    Ok,
    /// `RESOURCE_EXHAUSTED` `NO_AVAILABLE_NUMBER`: the pool ran out; stops the run, not an error.
    Exhausted,
    /// Anything unexpected, keyed for the report (`CODE/REASON` or a short label).
    Error(String),
}

impl Outcome {
    /// Classifies a failed call.
    pub(crate) fn from_status(st: &Status) -> Self {
        let reason = st.get_details_error_info().map(|i| i.reason);
        if st.code() == tonic::Code::ResourceExhausted
            && reason.as_deref() == Some("NO_AVAILABLE_NUMBER")
        {
            return Outcome::Exhausted;
        }
        Outcome::Error(error_key(st))
    }
}

/// `Code/REASON` of a status, e.g. `Unavailable/UNAVAILABLE` or `DeadlineExceeded`.
pub(crate) fn error_key(st: &Status) -> String {
    match st.get_details_error_info() {
        Some(i) => format!("{:?}/{}", st.code(), i.reason),
        None => format!("{:?}", st.code()),
    }
}

/// Bounds of one run. Every run stops by itself: at `duration`, after `max_requests`, or when
/// the pool is exhausted.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) duration: Duration,
    pub(crate) max_requests: u64,
}

/// Raw results of one run.
#[derive(Default)]
pub(crate) struct RunResult {
    pub(crate) ok: u64,
    pub(crate) exhausted: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// Latency of every completed request (ok or not), in microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) elapsed: Duration,
    /// The same, per channel (index into the `channels` the run was given): `--replicas`
    /// reports each server's share from these.
    pub(crate) by_channel: Vec<RunResult>,
}

impl RunResult {
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.ok + self.exhausted + self.error_count()
    }

    /// Successful requests per second.
    pub(crate) fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok as f64 / s } else { 0.0 }
    }

    /// Latency at quantile `q` (0..=1) in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[idx.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    pub(crate) fn max_ms(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// Runs `concurrency` workers on each channel. `call(channel, i)` gets a run-wide unique
/// request index `i` (0, 1, 2 …), used to make every request distinct.
pub(crate) async fn drive<F, Fut>(
    channels: &[Channel],
    concurrency: usize,
    limits: Limits,
    call: F,
) -> RunResult
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + limits.duration;
    let mut set = JoinSet::new();
    for (c, ch) in channels.iter().enumerate() {
        for _ in 0..concurrency.max(1) {
            let (ch, call, next, stop) = (ch.clone(), call.clone(), next.clone(), stop.clone());
            let max = limits.max_requests;
            set.spawn(async move {
                let mut part = RunResult::default();
                let mut last = start;
                loop {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= max {
                        break;
                    }
                    let t0 = Instant::now();
                    let outcome = call(ch.clone(), i).await;
                    last = Instant::now();
                    let us = (last - t0).as_micros().min(u32::MAX as u128) as u32;
                    part.latencies_us.push(us);
                    match outcome {
                        Outcome::Ok => part.ok += 1,
                        Outcome::Exhausted => {
                            part.exhausted += 1;
                            stop.store(true, Ordering::Relaxed);
                        }
                        Outcome::Error(k) => *part.errors.entry(k).or_default() += 1,
                    }
                }
                part.elapsed = last - start;
                (c, part)
            });
        }
    }
    let mut total = RunResult::default();
    let mut by_channel: Vec<RunResult> = channels.iter().map(|_| RunResult::default()).collect();
    while let Some(joined) = set.join_next().await {
        let (c, part) = match joined {
            Ok(p) => p,
            Err(e) => {
                *total
                    .errors
                    .entry(format!("worker panicked: {e}"))
                    .or_default() += 1;
                continue;
            }
        };
        by_channel[c].merge(&part);
        total.merge(&part);
    }
    total.latencies_us.sort_unstable();
    for r in &mut by_channel {
        r.latencies_us.sort_unstable();
    }
    total.by_channel = by_channel;
    total
}

impl RunResult {
    fn merge(&mut self, part: &RunResult) {
        self.ok += part.ok;
        self.exhausted += part.exhausted;
        for (k, n) in &part.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        self.latencies_us.extend_from_slice(&part.latencies_us);
        self.elapsed = self.elapsed.max(part.elapsed);
    }

    /// Channels `c` with `c % groups == g`, merged, for each group `g`: channel `c` of a
    /// `--replicas` run talks to replica `c % replicas`.
    pub(crate) fn grouped(&self, groups: usize) -> Vec<RunResult> {
        let mut out: Vec<RunResult> = (0..groups).map(|_| RunResult::default()).collect();
        for (c, r) in self.by_channel.iter().enumerate() {
            out[c % groups].merge(r);
        }
        for r in &mut out {
            r.latencies_us.sort_unstable();
        }
        out
    }
}
