//! The outermost layer of the gRPC server: request ids, request metrics and one INFO line per
//! rejected request, for every call whoever answers it (a handler, the API-key interceptor,
//! tonic's router for an unknown method).
//!
//! - **Request id** (`telemetry::request_id`): the caller's `x-request-id` if it is a safe token,
//!   else a UUID v7; every log line of the call carries it (span `rpc`, around the handler), the
//!   response's `x-request-id` metadata echoes it, and every non-OK status gets it in its
//!   ErrorInfo metadata (`request_id`). Statuses are rewritten here, where they are on the wire
//!   (`grpc-status-details-bin` of a trailers-only response's headers, or of the trailers after
//!   a stream), rather than where they are built: so no error path can miss it, including those
//!   of the interceptor, of spawned stream tasks and of tonic itself. A status without ErrorInfo
//!   gets one (reason = the code's name, domain `pns.gateway`); other details are kept as sent.
//! - **Metrics**: `pns_grpc_requests_total{service,method,code}` when the status is known, and
//!   the latency of unary calls. Service and method labels come from the served descriptors;
//!   any other path counts as `unknown`, so a client cannot create series.
//! - **Rejections** are logged once at INFO with the code, the ErrorInfo reason and the method
//!   (the span), never the message: messages may quote client input such as numbers.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll, ready},
    time::Instant,
};

use base64::Engine as _;
use prost::Message as _;
use tonic::Code;
use tonic::codegen::{
    Body, Service,
    http::{self, HeaderMap, HeaderValue},
};
use tonic_types::pb::{ErrorInfo, Status as RpcStatus};
use tracing::Span;

use super::status::{ERROR_DOMAIN, MAX_MESSAGE_BYTES};
use crate::domain::text::cut_bytes;
use crate::telemetry::{metrics as m, request_id};

const ERROR_INFO_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";
const STATUS: &str = "grpc-status";
const DETAILS: &str = "grpc-status-details-bin";
const MESSAGE: &str = "grpc-message";

/// Like tonic: encodes without padding, decodes with or without.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Labels of one served method.
#[derive(Debug, Clone, Copy)]
struct Method {
    service: &'static str,
    method: &'static str,
    /// Server-streaming calls last as long as the subscription: no latency histogram.
    streaming: bool,
}

const UNKNOWN: Method = Method {
    service: "unknown",
    method: "unknown",
    streaming: false,
};

/// Every method the server serves, by HTTP path (`/pns.v1.BindingService/BindXyb`), read from
/// the descriptor sets of the services `app::run` adds.
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut out = HashMap::new();
        for fds in [
            super::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(fds) else {
                continue;
            };
            for file in set.file {
                for svc in &file.service {
                    let service: &'static str =
                        Box::leak(format!("{}.{}", file.package(), svc.name()).into_boxed_str());
                    for md in &svc.method {
                        let method: &'static str = Box::leak(md.name().to_owned().into_boxed_str());
                        out.insert(
                            format!("/{service}/{method}"),
                            Method {
                                service,
                                method,
                                streaming: md.server_streaming(),
                            },
                        );
                    }
                }
            }
        }
        out
    })
}

fn method_of(path: &str) -> Method {
    methods().get(path).copied().unwrap_or(UNKNOWN)
}

/// The canonical name of a code, as gRPC documents it (label values, log fields, ErrorInfo
/// reasons of statuses that had none).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `Server::builder().layer(Observe)`: see the module doc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

/// One call, until its status is recorded.
struct Call {
    id: String,
    method: Method,
    start: Instant,
    span: Span,
}

/// The status code of a trailers-only response's headers or of trailers.
fn status_code(map: &HeaderMap) -> Option<Code> {
    map.get(STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from_i32)
}

impl Call {
    /// Stamps the request id into the status `map` carries (`code`), then records and logs it.
    fn finish(self, code: Code, map: &mut HeaderMap) {
        let reason = if code == Code::Ok {
            None
        } else {
            stamp(map, code, &self.id)
        };
        self.record(code, reason.as_deref());
    }

    fn record(self, code: Code, reason: Option<&str>) {
        let Method {
            service,
            method,
            streaming,
        } = self.method;
        let name = code_name(code);
        metrics::counter!(m::GRPC_REQUESTS, "service" => service, "method" => method, "code" => name)
            .increment(1);
        if !streaming {
            metrics::histogram!(m::GRPC_DURATION, "service" => service, "method" => method)
                .record(self.start.elapsed().as_secs_f64());
        }
        if code != Code::Ok {
            self.span.in_scope(|| {
                tracing::info!(
                    code = name,
                    reason = reason.unwrap_or(""),
                    "request rejected"
                );
            });
        }
    }
}

/// Records a call whose response ended without a status — the client went away (closed its
/// event stream, hit its deadline) — as CANCELLED; the server rejected nothing, so it is
/// logged at DEBUG only.
struct FinishOnDrop(Option<Call>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            let Method {
                service, method, ..
            } = call.method;
            metrics::counter!(m::GRPC_REQUESTS, "service" => service, "method" => method, "code" => code_name(Code::Cancelled))
                .increment(1);
            call.span
                .in_scope(|| tracing::debug!("call ended by the client before its status"));
        }
    }
}

/// Adds `request_id` to the ErrorInfo of the status in `map` (adding an ErrorInfo if it has
/// none) and returns the ErrorInfo's reason. Details that do not decode are left as they are.
fn stamp(map: &mut HeaderMap, code: Code, id: &str) -> Option<String> {
    let mut status = match map.get(DETAILS) {
        Some(v) => {
            let bytes = B64.decode(v.as_bytes()).ok()?;
            RpcStatus::decode(bytes.as_slice()).ok()?
        }
        None => RpcStatus {
            code: code as i32,
            message: map
                .get(MESSAGE)
                .map(|v| {
                    // Bounded like every message we build (the trailer must stay small).
                    cut_bytes(
                        &percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy(),
                        MAX_MESSAGE_BYTES,
                    )
                })
                .unwrap_or_default(),
            details: Vec::new(),
        },
    };
    let existing = status.details.iter_mut().find_map(|any| {
        if any.type_url != ERROR_INFO_URL {
            return None;
        }
        ErrorInfo::decode(any.value.as_slice())
            .ok()
            .map(|info| (any, info))
    });
    let reason = match existing {
        Some((any, mut info)) => {
            info.metadata
                .insert(request_id::ERROR_INFO_KEY.to_owned(), id.to_owned());
            any.value = info.encode_to_vec();
            info.reason
        }
        None => {
            let info = ErrorInfo {
                reason: code_name(code).to_owned(),
                domain: ERROR_DOMAIN.to_owned(),
                metadata: HashMap::from([(request_id::ERROR_INFO_KEY.to_owned(), id.to_owned())]),
            };
            status.details.push(prost_types::Any {
                type_url: ERROR_INFO_URL.to_owned(),
                value: info.encode_to_vec(),
            });
            info.reason
        }
    };
    if let Ok(v) = HeaderValue::from_str(&B64.encode(status.encode_to_vec())) {
        map.insert(DETAILS, v);
    }
    Some(reason)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observe<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let id = request_id::accept_or_generate(
            req.headers()
                .get(request_id::HEADER)
                .map(HeaderValue::as_bytes),
        );
        // Handlers (and logs) see the id that is echoed, not an invalid one the caller sent.
        if let Ok(v) = HeaderValue::from_str(&id) {
            req.headers_mut().insert(request_id::HEADER, v);
        }
        let method = method_of(req.uri().path());
        let span = tracing::info_span!(
            "rpc",
            request_id = %id,
            method = format_args!("{}/{}", method.service, method.method)
        );
        let inner = span.in_scope(|| self.inner.call(req));
        ObservedFuture {
            inner,
            call: Some(Call {
                id,
                method,
                start: Instant::now(),
                span,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ObservedFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ObservedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ObservedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.call.as_ref() {
            Some(call) => {
                let _entered = call.span.enter();
                ready!(this.inner.poll(cx))
            }
            None => ready!(this.inner.poll(cx)),
        };
        let mut resp = res?;
        let Some(call) = this.call.take() else {
            return Poll::Ready(Ok(resp.map(|b| ObservedBody {
                inner: b,
                call: FinishOnDrop(None),
            })));
        };
        if let Ok(v) = HeaderValue::from_str(&call.id) {
            resp.headers_mut().insert(request_id::HEADER, v);
        }
        // A trailers-only response (every unary error) has its status in the headers.
        let pending = match status_code(resp.headers()) {
            Some(code) => {
                call.finish(code, resp.headers_mut());
                FinishOnDrop(None)
            }
            None => FinishOnDrop(Some(call)),
        };
        Poll::Ready(Ok(resp.map(|b| ObservedBody {
            inner: b,
            call: pending,
        })))
    }
}

pin_project_lite::pin_project! {
    /// The response body: stamps and records the status of the trailers.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: FinishOnDrop,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = frame.as_mut()
            && let Some(trailers) = f.trailers_mut()
            && let Some(code) = status_code(trailers)
            && let Some(call) = this.call.0.take()
        {
            call.finish(code, trailers);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tonic::Status;
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    fn headers_of(st: Status) -> HeaderMap {
        st.into_http::<()>().headers().clone()
    }

    #[test]
    fn labels_come_from_the_served_descriptors_only() {
        let m = method_of("/pns.v1.BindingService/BindXyb");
        assert_eq!(
            (m.service, m.method, m.streaming),
            ("pns.v1.BindingService", "BindXyb", false)
        );
        assert!(method_of("/pns.v1.CallService/WatchEvents").streaming);
        assert_eq!(method_of("/grpc.health.v1.Health/Check").method, "Check");
        for unknown in [
            "/pns.v1.BindingService/Nope",
            "/x/y",
            "/",
            "/pns.v1.BindingService/BindXyb/",
        ] {
            let m = method_of(unknown);
            assert_eq!((m.service, m.method), ("unknown", "unknown"), "{unknown}");
        }
    }

    #[test]
    fn the_request_id_joins_existing_error_info_and_keeps_other_details() {
        let mut d = ErrorDetails::new();
        d.set_error_info(
            "POOL_NOT_FOUND",
            ERROR_DOMAIN,
            HashMap::from([("pool_key".to_owned(), "p".to_owned())]),
        );
        d.add_bad_request_violation("pool_key", "unknown");
        d.set_retry_info(Some(std::time::Duration::from_secs(2)));
        let mut h = headers_of(Status::with_error_details(
            Code::NotFound,
            "pool p not found",
            d,
        ));
        assert_eq!(
            stamp(&mut h, Code::NotFound, "rid-1").as_deref(),
            Some("POOL_NOT_FOUND")
        );
        let st = Status::from_header_map(&h).unwrap();
        assert_eq!(st.message(), "pool p not found");
        let info = st.get_details_error_info().unwrap();
        assert_eq!(info.metadata["request_id"], "rid-1");
        assert_eq!(info.metadata["pool_key"], "p");
        assert_eq!(
            st.get_details_bad_request().unwrap().field_violations.len(),
            1
        );
        assert!(st.get_details_retry_info().is_some());
    }

    #[test]
    fn a_status_without_error_info_gets_one() {
        let mut h = headers_of(Status::unavailable("server is shutting down"));
        assert_eq!(
            stamp(&mut h, Code::Unavailable, "rid-2").as_deref(),
            Some("UNAVAILABLE")
        );
        let st = Status::from_header_map(&h).unwrap();
        let info = st.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("UNAVAILABLE", ERROR_DOMAIN)
        );
        assert_eq!(info.metadata["request_id"], "rid-2");
        assert_eq!(st.message(), "server is shutting down");
    }

    #[test]
    fn undecodable_details_are_left_alone() {
        let mut h = headers_of(Status::internal("x"));
        h.insert(DETAILS, HeaderValue::from_static("!!not-base64!!"));
        assert_eq!(stamp(&mut h, Code::Internal, "rid-3"), None);
        assert_eq!(h[DETAILS], "!!not-base64!!");
    }
}
