//! Client-side request limits: client-go's QPS/burst token bucket (`--kube-api-qps`,
//! `--kube-api-burst`) and a cap on requests in flight, so a burst of fire-and-forget writes
//! (events, status) reuses pooled connections instead of opening new ones.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits for one [`crate::Client`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sustained requests per second; 0 means no limit.
    pub qps: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Requests in flight at once (the connection pool's size).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            qps: 0.0,
            burst: 0,
            max_in_flight: 64,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The shared state behind [`Limits`].
pub(crate) struct Limiter {
    limits: Limits,
    in_flight: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limits.burst.max(1)),
                last: Instant::now(),
            }),
        }
    }

    /// How long to wait before the next request may go (taking its token now).
    fn reserve(&self) -> Duration {
        let l = self.limits;
        if l.qps <= 0.0 {
            return Duration::ZERO;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let cap = f64::from(l.burst.max(1));
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * l.qps).min(cap);
        b.last = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / l.qps)
        }
    }

    /// Wait for a token and a free slot; the slot is held until the permit drops.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.in_flight.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_paces() {
        let l = Limiter::new(Limits {
            qps: 10.0,
            burst: 3,
            max_in_flight: 4,
        });
        let waits: Vec<Duration> = (0..5).map(|_| l.reserve()).collect();
        assert!(waits[..3].iter().all(|w| w.is_zero()), "{waits:?}");
        // The 4th and 5th wait about 0.1 s and 0.2 s.
        assert!(waits[3] > Duration::from_millis(80) && waits[3] <= Duration::from_millis(100));
        assert!(waits[4] > Duration::from_millis(180) && waits[4] <= Duration::from_millis(200));
        let unlimited = Limiter::new(Limits::default());
        assert!((0..1000).all(|_| unlimited.reserve().is_zero()));
    }

    #[tokio::test]
    async fn in_flight_is_capped() {
        let l = Limiter::new(Limits {
            max_in_flight: 2,
            ..Limits::default()
        });
        let a = l.acquire().await;
        let _b = l.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(50), l.acquire()).await;
        assert!(third.is_err(), "a third request must wait");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), l.acquire()).await;
        assert!(third.is_ok_and(|p| p.is_some()));
    }
}
