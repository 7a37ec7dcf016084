//! `x-request-id` on the HTTP listener (carrier pushes, probes, metrics): the caller's id if it
//! is a safe token, else a new one (`telemetry::request_id`); echoed in the response and a
//! field of the request's span, so every log line of a push carries it.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use tracing::Instrument;

use crate::telemetry::request_id;

pub(super) async fn layer(mut req: Request, next: Next) -> Response {
    let id = request_id::accept_or_generate(
        req.headers()
            .get(request_id::HEADER)
            .map(HeaderValue::as_bytes),
    );
    let value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        req.headers_mut().insert(request_id::HEADER, v.clone());
    }
    let span = tracing::info_span!("http", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    if let Some(v) = value {
        resp.headers_mut().insert(request_id::HEADER, v);
    }
    resp
}
