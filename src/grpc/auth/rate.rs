//! Per-tenant request rates (issue 9 item 4): a token bucket per tenant key, refilled at
//! `per_second` up to `burst`. A call over the rate is answered RESOURCE_EXHAUSTED with a
//! `RetryInfo` that says when the next token is there, and does no work.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// `per_second` requests a second on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

pub(super) struct Bucket {
    limit: RateLimit,
    /// (tokens, when they were counted).
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(super) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            state: Mutex::new((limit.burst, Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub(super) fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let tokens = (tokens
            + now.saturating_duration_since(last).as_secs_f64() * self.limit.per_second)
            .min(self.limit.burst);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            Ok(())
        } else {
            *s = (tokens, now);
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.limit.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let b = Bucket::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take_at(t0).is_ok());
        }
        let wait = b.take_at(t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(b.take_at(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take_at(t0 + Duration::from_millis(100)).is_err());
        // Idle time refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take_at(later).is_ok());
        }
        assert!(b.take_at(later).is_err());
    }
}
