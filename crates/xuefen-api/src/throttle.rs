//! Time and rate bounds on requests: a body-read deadline, a request
//! timeout, and a per-key token bucket answered with 429 `Retry-After`.

use crate::problem_code::ProblemCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// How long a request may take, and how fast one key may call.
#[derive(Debug, Clone, Copy)]
pub struct RequestBounds {
    /// The whole body must arrive within this, counted from its headers.
    pub body_read_timeout: Duration,
    /// Longest from the headers to the response's head (body read included).
    pub request_timeout: Duration,
    /// Requests one API key may make per second, sustained (0: no limit).
    pub rate_per_second: u32,
    /// Requests one API key may make at once above the sustained rate.
    pub rate_burst: u32,
}

impl Default for RequestBounds {
    fn default() -> Self {
        Self {
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            rate_per_second: 20_000,
            rate_burst: 40_000,
        }
    }
}

/// Gives the body `body_read_timeout` to arrive and the whole request
/// `request_timeout` to be answered; past it the client gets a 503
/// problem with `Retry-After` (an event already handed to the group
/// committer is still written, and its retry is answered as a duplicate).
pub async fn bound_request(State(bounds): State<RequestBounds>, req: Request, next: Next) -> Response {
    let req = crate::server::with_body_deadline(req, bounds.body_read_timeout);
    match tokio::time::timeout(bounds.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let mut resp = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::RequestTimeout,
                format!(
                    "the request was not answered within request_timeout_ms ({} ms); retry later",
                    bounds.request_timeout.as_millis()
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}

/// The 408 problem for a body that did not arrive in time.
pub fn body_timeout_problem() -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        ProblemCode::BodyTimeout,
        "the request body was not received in full within body_read_timeout_ms",
    )
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones are dropped. Buckets are keyed by
/// authenticated key ids, so this bounds only what revoked and idle keys
/// leave behind.
const BUCKETS_MAX: usize = 65_536;

/// Token buckets by API key id.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(bounds: &RequestBounds) -> Self {
        Self {
            per_second: f64::from(bounds.rate_per_second),
            burst: f64::from(bounds.rate_burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says in how many whole
    /// seconds one will be there.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(key) {
            // A bucket that has refilled to its burst holds no state a new
            // one would not have: drop those.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// The 429 problem for a key over its rate, with `Retry-After`.
pub fn rate_limited(retry_after: u64) -> crate::problem::ApiError {
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        ProblemCode::RateLimited,
        format!("this API key is over its request rate (rate_limit_per_second); retry after {retry_after} s"),
    );
    p.retry_after = Some(retry_after);
    p.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buckets_are_dropped_when_the_map_is_at_its_bound() {
        let limiter = RateLimiter::new(&RequestBounds {
            rate_per_second: 1_000_000,
            rate_burst: 1,
            ..RequestBounds::default()
        });
        for i in 0..BUCKETS_MAX + 10 {
            assert!(limiter.take(&format!("k{i}")).is_ok());
        }
        let len = limiter.buckets.lock().map(|b| b.len()).unwrap_or(usize::MAX);
        assert!(len <= BUCKETS_MAX, "{len} buckets kept");
    }

    #[test]
    fn a_key_over_its_burst_waits() {
        let limiter = RateLimiter::new(&RequestBounds {
            rate_per_second: 1,
            rate_burst: 2,
            ..RequestBounds::default()
        });
        assert!(limiter.take("k").is_ok());
        assert!(limiter.take("k").is_ok());
        assert_eq!(limiter.take("k"), Err(1));
    }
}
