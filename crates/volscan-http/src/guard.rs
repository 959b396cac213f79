//! Request guards for the writing endpoints: the bearer token (`AUTH_TOKEN`)
//! and the per-client rate limit (`RATE_LIMIT_RPM`).
//!
//! The token is compared in constant time and never logged. The rate limit is
//! a token bucket per peer address (not a forwarding header, which a client
//! could forge): `RATE_LIMIT_RPM` a minute, bursts of half that.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::ApiError;

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <token>` when a token is configured.
pub(crate) fn authorize(request: &HttpRequest, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Token buckets per client address.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute per client, in bursts of half that (at least 1).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute: per_minute.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    fn burst(&self) -> f64 {
        f64::from((self.per_minute / 2).max(1))
    }

    /// Takes one request for `client` at `now`, or says how long to wait.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.per_minute) / 60.0;
        let burst = self.burst();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget clients whose buckets are full again, so the map stays small.
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: burst, updated: now });
        let refill = now.saturating_duration_since(bucket.updated).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// Applies the rate limit to a request's peer address.
pub(crate) fn rate_limit(request: &HttpRequest, limiter: &RateLimiter) -> Result<(), ApiError> {
    let client = request.peer_addr().map(|addr| addr.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    limiter.check(client, Instant::now()).map_err(|retry_after| ApiError::RateLimited {
        message: format!(
            "more than {} requests a minute from this client; retry later",
            limiter.per_minute
        ),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_bucket_allows_a_burst_of_half_the_rate_then_refills() {
        let limiter = RateLimiter::new(60);
        let client = IpAddr::from([10, 0, 0, 1]);
        let t0 = Instant::now();
        for _ in 0..30 {
            assert!(limiter.check(client, t0).is_ok());
        }
        let wait = limiter.check(client, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO, "{wait:?}");
        assert!(limiter.check(IpAddr::from([10, 0, 0, 2]), t0).is_ok(), "clients are independent");
        assert!(
            limiter.check(client, t0 + Duration::from_secs(1)).is_ok(),
            "one token a second at 60 rpm"
        );
        assert!(limiter.check(client, t0 + Duration::from_secs(1)).is_err());
    }
}
