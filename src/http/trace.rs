//! Request spans that never carry a secret. The carriers cannot sign their pushes, so the
//! webhook URL's last segment is the credential (`/webhooks/{carrier}/{token}`), and
//! tower-http's default span would log the whole URI at DEBUG. Here the span logs the method and
//! the path with every segment that is not a literal of one of our routes replaced by `***`
//! (the query string is left out entirely), so no token — right, wrong, or sent to the wrong
//! path (`//webhooks/...`, a trailing segment) — can reach a log at any level.

use axum::http::Request;
use tracing::Span;

/// The literal path segments of the routes; anything else in a path is masked.
const ROUTE_LITERALS: [&str; 6] = [
    "webhooks", "nxcloud", "aliyun", "livez", "readyz", "metrics",
];

pub(super) const MASK: &str = "***";

/// `path` with every segment that is not a route literal replaced by [`MASK`].
pub(super) fn masked_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.is_empty() || ROUTE_LITERALS.contains(&seg) {
                seg
            } else {
                MASK
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `make_span_with` of the HTTP `TraceLayer`: like tower-http's default (DEBUG, named
/// `request`), with the masked path instead of the URI.
pub(super) fn make_span<B>(req: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %masked_path(req.uri().path()),
        version = ?req.version(),
    )
}

#[cfg(test)]
mod tests {
    use super::masked_path;

    #[test]
    fn only_route_literals_survive() {
        assert_eq!(
            masked_path("/webhooks/aliyun/s3cret"),
            "/webhooks/aliyun/***"
        );
        assert_eq!(
            masked_path("/webhooks/nxcloud/s3cret/x"),
            "/webhooks/nxcloud/***/***"
        );
        assert_eq!(
            masked_path("//webhooks/aliyun/s3cret"),
            "//webhooks/aliyun/***"
        );
        assert_eq!(masked_path("/webhooks/s3cret"), "/webhooks/***");
        assert_eq!(masked_path("/livez"), "/livez");
        assert_eq!(masked_path("/"), "/");
        assert_eq!(masked_path("/s3cret%2Fwebhooks"), "/***");
    }
}
