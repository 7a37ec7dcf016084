//! gRPC deadlines (`grpc-timeout`): a call whose deadline has already passed when it arrives
//! is answered DEADLINE_EXCEEDED before any handler runs (no read, no write); any other call
//! runs under its deadline and is stopped (its future dropped, so an open transaction rolls
//! back) when the deadline passes, answered DEADLINE_EXCEEDED as well.
//!
//! tonic's own timeout (outside every layer) would answer CANCELLED at the same instant; this
//! layer's timer is set 1 ms earlier so its DEADLINE_EXCEEDED is the answer.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tonic::{Status, codegen::http};

/// A deadline shorter than this counts as already passed: no call can be served in it.
const EXPIRED_BELOW: Duration = Duration::from_millis(1);
/// How much earlier than tonic's own timer this layer's fires (see the module doc).
const AHEAD: Duration = Duration::from_millis(1);

/// Adds [`Deadline`] to the gRPC server.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_timeout(v.as_bytes()));
        match timeout {
            None => Box::pin(self.inner.call(req)),
            Some(t) if t < EXPIRED_BELOW => Box::pin(std::future::ready(Ok(Status::deadline_exceeded(
                "the call's deadline (grpc-timeout) had passed when it arrived; nothing was done",
            )
            .into_http()))),
            Some(t) => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    match tokio::time::timeout(t.saturating_sub(AHEAD), fut).await {
                        Ok(r) => r,
                        Err(_) => Ok(Status::deadline_exceeded(
                            "the call's deadline (grpc-timeout) passed while it ran; it was \
                             stopped, and a write it made may or may not have been committed",
                        )
                        .into_http()),
                    }
                })
            }
        }
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n), per the gRPC HTTP/2
/// protocol. A malformed value is ignored, as tonic does.
fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_per_the_protocol() {
        assert_eq!(parse_timeout(b"0u"), Some(Duration::ZERO));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout(b"99999999S"),
            Some(Duration::from_secs(99_999_999))
        );
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1m", b"1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
