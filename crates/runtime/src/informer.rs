//! [`Informer`]: list, then watch from the list's resourceVersion, keeping a [`Store`] current
//! and telling handlers what changed.
//!
//! # Recovery
//! - A watch that ends or drops is resumed from the last resourceVersion seen.
//! - A 410 Expired (the server's window has moved past us) relists: the store is replaced
//!   atomically and handlers see every object that appeared, changed or vanished meanwhile.
//! - List and watch failures retry with backoff (100 ms doubling to 5 s).
//! - An object that does not decode as `K` (written by someone who did not go through a
//!   validating API server) is skipped with a warning and counted ([`undecodable_total`]);
//!   the watch goes on after it, and the last good version stays in the store.

use crate::store::{key_of, IndexFn, Store};
use coxswain_client::{Api, ListParams, Object};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// A change seen by an informer.
pub enum Change<K> {
    /// Created or updated (`old` is the previous cached version, if any).
    Applied {
        /// The previous version.
        old: Option<Arc<K>>,
        /// The new version.
        new: Arc<K>,
    },
    /// Deleted (the last known state).
    Deleted(Arc<K>),
}

type Handler<K> = Box<dyn Fn(&Change<K>) + Send + Sync>;

static UNDECODABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Objects this process's informers skipped because they did not decode.
pub fn undecodable_total() -> u64 {
    UNDECODABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Count and report a skipped object.
fn skip(e: &coxswain_client::Error) {
    let n = UNDECODABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    tracing::warn!(error = %e, skipped_so_far = n, "skipping an object that does not decode");
}

/// List+watch of one kind into a store.
pub struct Informer<K: Object> {
    api: Api<K>,
    params: ListParams,
    store: Store<K>,
    handlers: Vec<Handler<K>>,
}

fn key<K: Object>(k: &K) -> String {
    let m = k.metadata();
    key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

impl<K: Object> Informer<K> {
    /// An informer for what `api` and `params` select.
    pub fn new(api: Api<K>, params: ListParams) -> Self {
        Informer {
            api,
            params,
            store: Store::default(),
            handlers: Vec::new(),
        }
    }

    /// A reader of this informer's cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Add a named index.
    pub fn index(
        self,
        name: &'static str,
        f: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        let f: IndexFn<K> = Arc::new(f);
        self.store.add_index(name, f);
        self
    }

    /// Call `f` on every change (after the store is updated). Handlers should only enqueue.
    pub fn on_change(&mut self, f: impl Fn(&Change<K>) + Send + Sync + 'static) {
        self.handlers.push(Box::new(f));
    }

    fn emit(&self, c: Change<K>) {
        for h in &self.handlers {
            h(&c);
        }
    }

    fn apply(&self, obj: K) {
        let new = Arc::new(obj);
        let old = self.store.apply(key(&*new), new.clone());
        self.emit(Change::Applied { old, new });
    }

    fn replace(&self, items: Vec<K>) {
        let mut seen = std::collections::HashSet::new();
        for obj in items {
            seen.insert(key(&obj));
            let unchanged = self
                .store
                .get(&key(&obj))
                .is_some_and(|o| o.metadata().resource_version == obj.metadata().resource_version);
            if !unchanged {
                self.apply(obj);
            }
        }
        for k in self.store.keys() {
            if !seen.contains(&k) {
                if let Some(old) = self.store.delete(&k) {
                    self.emit(Change::Deleted(old));
                }
            }
        }
    }

    /// Start the list/watch loop as a task.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    /// The list/watch loop (runs forever).
    pub async fn run(self) {
        let mut rv: Option<String> = None;
        let mut backoff = Duration::from_millis(100);
        let kind = K::KIND;
        loop {
            if rv.is_none() {
                match self.api.list_lenient(&self.params).await {
                    Ok((list, skipped)) => {
                        skipped.iter().for_each(skip);
                        self.replace(list.items);
                        rv = Some(list.metadata.resource_version);
                        self.store.mark_ready();
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "list failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let from = rv.clone().unwrap_or_default();
            let stream = match self.api.watch(&self.params, &from).await {
                Ok(s) => s,
                Err(e) => {
                    if e.code() == Some(410) {
                        rv = None;
                    }
                    tracing::debug!(kind, error = %e, "watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        backoff = Duration::from_millis(100);
                        if let Some(r) = ev.object.metadata().resource_version.clone() {
                            rv = Some(r);
                        }
                        match ev.type_.as_str() {
                            "ADDED" | "MODIFIED" => self.apply(ev.object),
                            "DELETED" => {
                                if let Some(old) = self.store.delete(&key(&ev.object)) {
                                    let _ = old;
                                }
                                self.emit(Change::Deleted(Arc::new(ev.object)));
                            }
                            _ => {}
                        }
                    }
                    Err(e @ coxswain_client::Error::Undecodable { .. }) => {
                        // Skip it and go on: the watch resumes after it.
                        skip(&e);
                        if let coxswain_client::Error::Undecodable { rv: r, .. } = e {
                            if !r.is_empty() {
                                rv = Some(r);
                            }
                        }
                    }
                    Err(e) => {
                        if e.code() == Some(410) {
                            tracing::info!(kind, "watch expired; relisting");
                            rv = None;
                        } else {
                            tracing::debug!(kind, error = %e, "watch stream error");
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
