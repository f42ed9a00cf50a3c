//! What the Job controller remembers between reconciles because its caches may lag its own
//! writes: pods whose tracking finalizer it removed (until the pod cache shows it gone, so no
//! pod is counted twice), and the resourceVersion of each Job's last status write (until the
//! Job cache has it, nothing is decided from an older status, so no pod is created twice).

use k8s_openapi::api::batch::v1::Job;
use std::collections::HashMap;
use std::sync::Mutex;

/// The Job controller's memory of its own writes.
#[derive(Default)]
pub struct Memory {
    /// Job UID -> pods (UID -> cache key) whose finalizer was removed.
    removed: Mutex<HashMap<String, HashMap<String, String>>>,
    /// Job UID -> resourceVersion of the last status write.
    written: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn rv(job: &Job) -> Option<u64> {
    job.metadata.resource_version.as_deref()?.parse().ok()
}

impl Memory {
    /// Whether the cached Job is older than our last status write of it.
    pub fn stale(&self, job: &Job, uid: &str) -> bool {
        let written = lock(&self.written).get(uid).copied();
        matches!((written, rv(job)), (Some(w), Some(r)) if r < w)
    }

    /// We wrote the Job's status at `rv`.
    pub fn wrote(&self, uid: &str, rv: Option<&str>) {
        if let Some(r) = rv.and_then(|r| r.parse().ok()) {
            lock(&self.written).insert(uid.to_string(), r);
        }
    }

    /// We removed the finalizer of pod `pod` (cache key `key`) of Job `uid`.
    pub fn removed(&self, uid: &str, pod: &str, key: &str) {
        lock(&self.removed)
            .entry(uid.to_string())
            .or_default()
            .insert(pod.to_string(), key.to_string());
    }

    /// Whether pod `pod` of Job `uid` had its finalizer removed and the cache may not show it.
    pub fn is_removed(&self, uid: &str, pod: &str) -> bool {
        lock(&self.removed)
            .get(uid)
            .is_some_and(|m| m.contains_key(pod))
    }

    /// Forget the removals the pod cache now shows (`still_tracked(key, pod uid)` says
    /// whether the cached pod still has the finalizer).
    pub fn settle(&self, uid: &str, still_tracked: impl Fn(&str, &str) -> bool) {
        let mut g = lock(&self.removed);
        if let Some(m) = g.get_mut(uid) {
            m.retain(|pod, key| still_tracked(key, pod));
            if m.is_empty() {
                g.remove(uid);
            }
        }
    }

    /// Forget a Job that finished or is gone.
    pub fn forget(&self, uid: &str) {
        lock(&self.removed).remove(uid);
        lock(&self.written).remove(uid);
    }
}
