//! [`Queue`]: a work queue of object keys. A key is queued at most once however often it is
//! added; a key being processed is not handed to another worker (if it is added meanwhile it
//! is queued again when the worker calls `done`); failures back off per key. A key added
//! with a delay waits once: adding it again with a later time is a no-op, with an earlier
//! time brings it forward (client-go's delaying queue keeps the earliest time too).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    /// Keys added with a delay and when they are due.
    waiting: HashMap<String, Instant>,
}

/// The queue. Clone to share.
#[derive(Clone, Default)]
pub struct Queue {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Queue {
        Queue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a key (no-op if already queued).
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut g = self.lock();
        if !g.dirty.insert(key.clone()) {
            return;
        }
        if !g.processing.contains(&key) {
            g.queue.push_back(key);
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Queue a key after a delay (no-op if it already waits to be queued no later).
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        let due = Instant::now() + delay;
        {
            let mut g = self.lock();
            match g.waiting.get_mut(&key) {
                Some(d) if *d <= due => return,
                Some(d) => *d = due,
                None => {
                    g.waiting.insert(key.clone(), due);
                }
            }
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            {
                let mut g = q.lock();
                // Gone: an earlier timer of the same key queued it already.
                match g.waiting.get(&key) {
                    Some(d) if *d <= Instant::now() => {
                        g.waiting.remove(&key);
                    }
                    _ => return,
                }
            }
            q.add(key);
        });
    }

    /// Keys waiting for their delay.
    pub fn delayed(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Queue a key after its per-key backoff (5 ms doubling, at most 30 s).
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let n = {
            let mut g = self.lock();
            let n = g.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = Duration::from_millis(5u64.saturating_mul(1u64 << n.min(13)))
            .min(Duration::from_secs(30));
        self.add_after(key, delay);
    }

    /// Clear a key's backoff after a success.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Take the next key, waiting for one.
    pub async fn pop(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.lock();
                if let Some(k) = g.queue.pop_front() {
                    g.dirty.remove(&k);
                    g.processing.insert(k.clone());
                    if !g.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return k;
                }
            }
            notified.await;
        }
    }

    /// Mark a popped key finished; re-queues it if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut g = self.lock();
        g.processing.remove(key);
        if g.dirty.contains(key) {
            g.queue.push_back(key.to_string());
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_never_hands_out_a_key_twice() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.pop().await;
        assert_eq!(k, "a");
        q.add("a"); // added while processing: not queued yet
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().await, "b");
        q.done("a");
        assert_eq!(q.pop().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_key_waits_once_at_its_earliest_time() {
        let q = Queue::new();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(20)); // later: no-op
        q.add_after("a", Duration::from_secs(1)); // earlier: brought forward
        assert_eq!(q.delayed(), 1);
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(q.len(), 1, "due after 1 s");
        assert_eq!(q.delayed(), 0);
        assert_eq!(q.pop().await, "a");
        q.done("a");
        // The 10 s timer finds nothing waiting and queues nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(q.is_empty());
        // Waiting again after it fired works as before.
        q.add_after("a", Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(q.len(), 1);
    }
}
