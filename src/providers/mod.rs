//! Carrier adapters: one module per carrier, each implementing `domain::provider::Carrier`.
//! They speak HTTP (reqwest) and the carrier's wire format; nothing else in the crate does.

pub mod aliyun;
pub mod aliyun_push;
pub mod nxcloud;
pub mod nxcloud_push;
mod push_fields;

/// Records one carrier API request (`pns_upstream_requests_total`, `…_duration_seconds`).
fn record_request(
    provider: &'static str,
    action: &'static str,
    start: std::time::Instant,
    outcome: Option<&crate::domain::provider::ProviderError>,
) {
    use crate::telemetry::metrics as m;
    let result = outcome.map_or("ok", |e| e.result_label());
    metrics::counter!(m::UPSTREAM_REQUESTS, "provider" => provider, "action" => action, "result" => result)
        .increment(1);
    metrics::histogram!(m::UPSTREAM_DURATION, "provider" => provider, "action" => action)
        .record(start.elapsed().as_secs_f64());
}
