//! [`Store`]: the informer's cache. One writer (the informer), many cheap readers; objects are
//! `Arc<K>` and never mutated in place. Named indexes (owner UID, node name, ...) answer
//! "which objects have value V" without scanning.
//!
//! The cache may lag the server; controllers must tolerate stale reads (the server's
//! compare-and-swap catches conflicting writes).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// `namespace/name`, or `name` for cluster-scoped objects.
pub type ObjectKey = String;

/// Build the key of an object.
pub fn key_of(ns: Option<&str>, name: &str) -> ObjectKey {
    match ns {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Split a key back into namespace and name.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// A function giving the index values of an object.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Inner<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    indexers: Vec<(&'static str, IndexFn<K>)>,
    /// Index name -> value -> the objects with that value (the `Arc`s themselves, so a
    /// lookup of 100,000 pods of one owner is one pass, not a second lookup per key).
    indexes: HashMap<&'static str, HashMap<String, HashMap<ObjectKey, Arc<K>>>>,
}

/// The cache. Clone to share a reader.
pub struct Store<K> {
    inner: Arc<RwLock<Inner<K>>>,
    ready_rx: watch::Receiver<bool>,
    ready_tx: Arc<watch::Sender<bool>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            inner: self.inner.clone(),
            ready_rx: self.ready_rx.clone(),
            ready_tx: self.ready_tx.clone(),
        }
    }
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Store {
            inner: Arc::new(RwLock::new(Inner {
                objects: HashMap::new(),
                indexers: Vec::new(),
                indexes: HashMap::new(),
            })),
            ready_rx: rx,
            ready_tx: Arc::new(tx),
        }
    }
}

impl<K> Store<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a named index (before the informer starts).
    pub fn add_index(&self, name: &'static str, f: IndexFn<K>) {
        let mut g = self.write();
        g.indexers.push((name, f));
        g.indexes.insert(name, HashMap::new());
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects whose index `name` has `value`.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let g = self.read();
        g.indexes
            .get(name)
            .and_then(|ix| ix.get(value))
            .map(|objs| objs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many objects index `name` has under `value` (no copy of them).
    pub fn count_index(&self, name: &str, value: &str) -> usize {
        self.read()
            .indexes
            .get(name)
            .and_then(|ix| ix.get(value))
            .map_or(0, |objs| objs.len())
    }

    /// Whether the first list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.ready_rx.borrow()
    }

    /// Wait for the first list.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready_rx.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    pub(crate) fn mark_ready(&self) {
        self.ready_tx.send_replace(true);
    }

    fn unindex(g: &mut Inner<K>, key: &str, obj: &K) {
        let Inner {
            indexers, indexes, ..
        } = g;
        for (name, f) in indexers.iter() {
            if let Some(ix) = indexes.get_mut(name) {
                for v in f(obj) {
                    if let Some(set) = ix.get_mut(&v) {
                        set.remove(key);
                        if set.is_empty() {
                            ix.remove(&v);
                        }
                    }
                }
            }
        }
    }

    fn index(g: &mut Inner<K>, key: &str, obj: &Arc<K>) {
        let Inner {
            indexers, indexes, ..
        } = g;
        for (name, f) in indexers.iter() {
            if let Some(ix) = indexes.get_mut(name) {
                for v in f(obj) {
                    ix.entry(v)
                        .or_default()
                        .insert(key.to_string(), obj.clone());
                }
            }
        }
    }

    /// Insert or replace; returns the previous object.
    pub(crate) fn apply(&self, key: ObjectKey, obj: Arc<K>) -> Option<Arc<K>> {
        let mut g = self.write();
        let old = g.objects.insert(key.clone(), obj.clone());
        if let Some(o) = &old {
            Self::unindex(&mut g, &key, o);
        }
        Self::index(&mut g, &key, &obj);
        old
    }

    /// Remove; returns the removed object.
    pub(crate) fn delete(&self, key: &str) -> Option<Arc<K>> {
        let mut g = self.write();
        let old = g.objects.remove(key);
        if let Some(o) = &old {
            Self::unindex(&mut g, key, o);
        }
        old
    }

    /// Keys currently cached.
    pub(crate) fn keys(&self) -> Vec<ObjectKey> {
        self.read().objects.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_counts_follow_updates_and_deletes() {
        // Objects are `owner:name` strings, indexed by owner.
        let s: Store<String> = Store::default();
        s.add_index(
            "owner",
            Arc::new(|o: &String| vec![o.split(':').next().unwrap_or("").to_string()]),
        );
        for (k, v) in [("a", "rs1:a"), ("b", "rs1:b"), ("c", "rs2:c")] {
            s.apply(k.to_string(), Arc::new(v.to_string()));
        }
        assert_eq!(s.count_index("owner", "rs1"), 2);
        assert_eq!(s.count_index("owner", "rs2"), 1);
        assert_eq!(s.count_index("owner", "none"), 0);
        assert_eq!(s.count_index("no-such-index", "rs1"), 0);
        // `b` moves to rs2; `a` goes.
        s.apply("b".to_string(), Arc::new("rs2:b".to_string()));
        s.delete("a");
        assert_eq!(s.count_index("owner", "rs1"), 0);
        assert_eq!(s.count_index("owner", "rs2"), 2);
        assert_eq!(
            s.count_index("owner", "rs2"),
            s.by_index("owner", "rs2").len()
        );
    }
}
