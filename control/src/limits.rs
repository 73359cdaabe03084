//! Per-client limits, keyed by the authenticated user: a token-bucket rate limit on requests
//! and a cap on concurrent watches. Over either limit the answer is 429 TooManyRequests with
//! `Retry-After`, as kube-apiserver's max-in-flight and priority-and-fairness filters answer
//! (client-go waits and retries on it). Administrators (`system:masters`) are exempt, like
//! APF's `exempt` priority level. The request body size limit is `api::MAX_BODY_BYTES`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::status::ApiError;

/// The limits' settings.
#[derive(Clone, Copy, Debug)]
pub struct LimitsConfig {
    /// Sustained requests per second per client; 0 disables the rate limit.
    pub requests_per_second: f64,
    /// Requests a client may make at once above the sustained rate.
    pub burst: u32,
    /// Concurrent watches per client; 0 disables the cap.
    pub max_watches: usize,
}

impl Default for LimitsConfig {
    /// Generous: far above what a kubelet-like agent with a thousand pods needs.
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: 1000.0,
            burst: 2000,
            max_watches: 1000,
        }
    }
}

/// Buckets kept at most; full (idle) buckets are dropped first when there are more.
const MAX_BUCKETS: usize = 10_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The per-client rate limit and watch counts.
pub struct Limits {
    config: LimitsConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

/// A watch slot, given back when dropped (the watch's response body holds it).
pub struct WatchGuard {
    user: String,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = watches.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                watches.remove(&self.user);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            buckets: Mutex::default(),
            watches: Arc::default(),
        }
    }

    /// Takes one request token for `user`, or answers 429 with the time until the next one.
    pub fn request(&self, user: &str) -> Result<(), ApiError> {
        self.request_at(user, Instant::now())
    }

    fn request_at(&self, user: &str, now: Instant) -> Result<(), ApiError> {
        let rate = self.config.requests_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(self.config.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(user) {
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / rate);
        Err(too_many_requests(wait))
    }

    /// A watch slot for `user`, or 429 when it holds the most it may.
    pub fn watch(&self, user: &str) -> Result<Option<WatchGuard>, ApiError> {
        let max = self.config.max_watches;
        if max == 0 {
            return Ok(None);
        }
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let n = watches.entry(user.to_owned()).or_insert(0);
        if *n >= max {
            let mut e = too_many_requests(Duration::from_secs(1));
            e.message =
                format!("Too many requests: at most {max} concurrent watches per client, please try again later.");
            return Err(e);
        }
        *n += 1;
        Ok(Some(WatchGuard {
            user: user.to_owned(),
            watches: Arc::clone(&self.watches),
        }))
    }
}

/// kube-apiserver's 429: `Too many requests, please try again later.`, with the seconds to
/// wait (at least 1) in `details.retryAfterSeconds` and the `Retry-After` header.
pub fn too_many_requests(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Too many requests, please try again later.",
    );
    e.details = Some(serde_json::json!({"retryAfterSeconds": seconds}));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let limits = Limits::new(LimitsConfig {
            requests_per_second: 2.0,
            burst: 3,
            max_watches: 0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            limits.request_at("a", t0).unwrap();
        }
        let e = limits.request_at("a", t0).unwrap_err();
        assert_eq!(e.code, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.details.unwrap()["retryAfterSeconds"], 1);
        // Another client has its own bucket.
        limits.request_at("b", t0).unwrap();
        // Half a second later one token is back (2/s), and only one.
        let t1 = t0 + Duration::from_millis(500);
        limits.request_at("a", t1).unwrap();
        assert!(limits.request_at("a", t1).is_err());
    }

    #[test]
    fn watches_are_capped_per_client_and_given_back() {
        let limits = Limits::new(LimitsConfig {
            requests_per_second: 0.0,
            burst: 0,
            max_watches: 2,
        });
        let a1 = limits.watch("a").unwrap();
        let _a2 = limits.watch("a").unwrap();
        let e = limits.watch("a").err().unwrap();
        assert_eq!(e.reason, "TooManyRequests");
        let _b = limits.watch("b").unwrap();
        drop(a1);
        assert!(limits.watch("a").unwrap().is_some());
        assert!(Limits::new(LimitsConfig::default()).request("x").is_ok());
    }
}
