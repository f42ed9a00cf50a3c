//! [`run`]: worker tasks that pop keys from a [`Queue`] and reconcile them, each in a tracing
//! span naming the controller and key; errors requeue with backoff.

use crate::queue::Queue;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// What to do with a key after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    AwaitChange,
    /// Reconcile again after a delay (time-based conditions, e.g. deadlines).
    RequeueAfter(Duration),
}

/// Run `workers` workers reconciling keys from `queue` forever.
pub async fn run<F, Fut, E>(name: &'static str, queue: Queue, workers: usize, reconcile: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: std::fmt::Display,
{
    let reconcile = Arc::new(reconcile);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let q = queue.clone();
        let rec = reconcile.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let key = q.pop().await;
                let span = tracing::info_span!("reconcile", controller = name, key = %key);
                let res = rec(key.clone()).instrument(span.clone()).await;
                match res {
                    Ok(Action::AwaitChange) => q.forget(&key),
                    Ok(Action::RequeueAfter(d)) => {
                        q.forget(&key);
                        q.add_after(key.clone(), d);
                    }
                    Err(e) => {
                        span.in_scope(|| tracing::warn!(error = %e, "reconcile failed; retrying"));
                        q.add_rate_limited(key.clone());
                    }
                }
                q.done(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
