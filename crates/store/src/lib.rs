//! Durable, ordered key-value storage with one global, monotonic revision, behind one type
//! ([`Store`]) with two backends: sled (embedded, the zero-setup default; [`sled`]) and etcd v3
//! (through its JSON gRPC gateway over HTTP, so no `protoc`; [`etcd`]).
//!
//! The store knows keys and bytes only; the API server hands the etcd backend a
//! [`Stamp`] that writes a revision into an object's bytes (etcd assigns revisions at commit,
//! as Kubernetes' storage layer sets resourceVersion from etcd's `mod_revision`).
//!
//! # Guarantees (both backends)
//! - Revisions are strictly increasing, also across restarts; an object's revision is the
//!   revision of its last write.
//! - A write whose future resolved `Ok` is durable (sled: flushed, group commit; etcd: applied
//!   by the etcd cluster).
//! - [`Store::list_and_watch`] gives a consistent snapshot and then every later commit once,
//!   in revision order ([`Feed::Commits`]); if the backend lost the history needed to go on
//!   (etcd compaction while disconnected) it sends a fresh snapshot ([`Feed::Resync`]).
//!
//! # Assumptions
//! - sled: one process opens a data directory at a time (sled locks it).
//! - etcd: every writer of the key prefix is a Coxswain API server.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;
pub mod sled;

use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key must exist but does not.
    #[error("key not found")]
    NotFound,
    /// The key must not exist but does.
    #[error("key already exists (revision {0})")]
    AlreadyExists(u64),
    /// The stored revision is not the expected one.
    #[error("revision conflict: stored revision is {0}")]
    Conflict(u64),
    /// The database failed.
    #[error("sled: {0}")]
    Sled(#[from] ::sled::Error),
    /// etcd failed or could not be reached.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The requested revision has been compacted.
    #[error("revision {0} has been compacted")]
    Compacted(u64),
    /// Stored bytes are not in the store's format.
    #[error("corrupt record under key {0:?}")]
    Corrupt(String),
    /// The data directory is damaged (records lost or changed since they were written).
    #[error("{0}")]
    Damaged(String),
    /// The store has stopped.
    #[error("store is shut down")]
    Closed,
}

/// One stored record: key, revision, bytes.
pub type Record = (Vec<u8>, u64, Vec<u8>);

/// Writes a revision into an object's bytes (the etcd backend's reads and commits).
pub type Stamp = Arc<dyn Fn(&[u8], u64) -> Vec<u8> + Send + Sync>;

/// What a write expects of the key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist (create).
    Absent,
    /// The key must exist, at any revision.
    Present,
    /// The key must exist at exactly this revision (compare-and-swap).
    Rev(u64),
}

/// What a write does once its precondition holds.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store these bytes under the key.
    Put(Vec<u8>),
    /// Remove the key; the bytes are published to watchers as the object's final state (on
    /// etcd, watchers see the last stored state instead).
    Delete(Vec<u8>),
}

/// One committed write, as published to the watch feed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The revision the write got.
    pub rev: u64,
    /// The key written.
    pub key: Vec<u8>,
    /// Whether it was a delete.
    pub deleted: bool,
    /// The stored bytes (for a delete: the final state).
    pub value: Arc<[u8]>,
}

/// What the watch feed delivers.
#[derive(Debug)]
pub enum Feed {
    /// Commits after the previous message, in revision order.
    Commits(Vec<Committed>),
    /// History was lost: every record now, and the revision of that snapshot.
    Resync {
        /// The current records.
        records: Vec<Record>,
        /// The snapshot's revision.
        rev: u64,
    },
}

/// The storage of one API server.
pub enum Store {
    /// Embedded sled.
    Sled {
        /// The store.
        store: Arc<sled::SledStore>,
        /// Its commit feed, until [`Store::list_and_watch`] takes it.
        feed: Mutex<Option<mpsc::UnboundedReceiver<Feed>>>,
    },
    /// etcd v3.
    Etcd(Arc<etcd::EtcdStore>),
}

impl Store {
    /// Open (or create) a sled store in `dir` (inside a tokio runtime).
    pub fn open_sled(dir: &std::path::Path) -> Result<Arc<Store>, StoreError> {
        let (store, feed) = sled::SledStore::open(dir)?;
        Ok(Arc::new(Store::Sled {
            store,
            feed: Mutex::new(Some(feed)),
        }))
    }

    /// Connect to etcd.
    pub async fn open_etcd(cfg: etcd::EtcdConfig) -> Result<Arc<Store>, StoreError> {
        Ok(Arc::new(Store::Etcd(Arc::new(
            etcd::EtcdStore::connect(cfg).await?,
        ))))
    }

    /// `sled` or `etcd`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sled { .. } => "sled",
            Store::Etcd(_) => "etcd",
        }
    }

    /// Read one key: its revision and bytes.
    pub async fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self {
            Store::Sled { store, .. } => store.get(key),
            Store::Etcd(e) => e.get(key).await,
        }
    }

    /// Write `key` if `expect` holds. On sled `build` receives the revision the write will
    /// get; on etcd it receives 0 and the stored bytes are stamped with the revision after.
    /// Resolves once the write is durable, with its revision and the bytes as published.
    pub async fn commit(
        &self,
        key: &[u8],
        expect: Expect,
        build: impl FnOnce(u64) -> Op,
    ) -> Result<(u64, Arc<[u8]>), StoreError> {
        match self {
            Store::Sled { store, .. } => store.commit(key, expect, build).await,
            Store::Etcd(e) => e.commit(key, expect, build(0)).await,
        }
    }

    /// The newest revision of the store (on etcd: asked of the cluster, for consistent reads).
    pub async fn current_rev(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sled { store, .. } => Ok(store.current_rev()),
            Store::Etcd(e) => e.current_rev().await,
        }
    }

    /// Drop history up to `rev` (etcd compaction; sled keeps no history).
    pub async fn compact(&self, rev: u64) -> Result<(), StoreError> {
        match self {
            Store::Sled { .. } => Ok(()),
            Store::Etcd(e) => e.compact(rev).await,
        }
    }

    /// Every record now, its revision, and a feed of every commit after it. Call once.
    pub async fn list_and_watch(
        &self,
    ) -> Result<(Vec<Record>, u64, mpsc::UnboundedReceiver<Feed>), StoreError> {
        match self {
            Store::Sled { store, feed } => {
                let rx = feed
                    .lock()
                    .map_err(|_| StoreError::Closed)?
                    .take()
                    .ok_or(StoreError::Closed)?;
                let (records, rev) = store.snapshot()?;
                Ok((records, rev, rx))
            }
            Store::Etcd(e) => e.clone().list_and_watch().await,
        }
    }
}
