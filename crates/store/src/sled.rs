//! The sled backend: one global revision counter, group-commit flushes before acknowledging,
//! and commits published in revision order to the API server's watch cache. History is not
//! kept: the watch cache's window is the history, so "compaction" is that window's bound.
//!
//! Each value is stored with its revision in front, so the counter itself is only written
//! (in the same atomic batch) by deletes, whose revision no value keeps; on open the counter
//! is the larger of that and the newest value's. A map of every key's revision is kept in
//! memory for compare-and-swap checks, so a write reads nothing from sled.
//!
//! Integrity: every value carries a CRC-32 of its revision and bytes, checked when the store
//! opens; and after each group flush the newest acknowledged revision is written to
//! `acked-revision` beside sled's files. A store that opens with a value whose checksum does
//! not match, or without the writes up to that revision (sled's recovery stops at the first
//! damaged log entry and drops what follows), refuses to open, naming the problem, instead of
//! serving part of the state.

use crate::{Committed, Expect, Feed, Op, Record, StoreError};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::{mpsc, oneshot};

const REV_KEY: &[u8] = b"\x00rev";
/// The record format: absent in stores written before checksums (values are the revision and
/// the bytes); `2`: the revision, a CRC-32 of revision and bytes, then the bytes.
const FORMAT_KEY: &[u8] = b"\x00format";
/// The newest acknowledged revision, written after each group flush.
const ACKED_FILE: &str = "acked-revision";

/// sled's page cache size.
const SLED_CACHE_BYTES: u64 = 128 * 1024 * 1024;

struct Pending {
    committed: Committed,
    ack: oneshot::Sender<()>,
}

struct WriteState {
    rev: u64,
    /// The store was dropped: the flusher ends.
    closed: bool,
    /// Every stored key's revision.
    revs: std::collections::HashMap<Vec<u8>, u64>,
    pending: Vec<Pending>,
}

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    shared: Arc<Shared>,
    /// The records read at open and their revision, until the first
    /// [`SledStore::snapshot`].
    initial: Mutex<Option<(Vec<Record>, u64)>>,
}

/// What the store and its flusher thread share (not the database, so dropping the store
/// closes it).
struct Shared {
    state: Mutex<WriteState>,
    /// Signalled when `state.pending` gains a write or the store closes.
    wake: Condvar,
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.closed = true;
        }
        self.shared.wake.notify_all();
    }
}

fn checksum(rev: u64, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&rev.to_be_bytes());
    h.update(bytes);
    h.finalize()
}

fn encode(rev: u64, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + bytes.len());
    v.extend_from_slice(&rev.to_be_bytes());
    v.extend_from_slice(&checksum(rev, bytes).to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

/// Every record under `prefix` with its revision and bytes, in key order.
fn scan(tree: &sled::Tree, prefix: &[u8], checked: bool) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::new();
    for item in tree.scan_prefix(prefix) {
        let (k, raw) = item?;
        if k.as_ref() == REV_KEY || k.as_ref() == FORMAT_KEY {
            continue;
        }
        let (rev, bytes) = decode(&k, &raw, checked)?;
        out.push((k.to_vec(), rev, bytes));
    }
    Ok(out)
}

fn decode(key: &[u8], raw: &[u8], checked: bool) -> Result<(u64, Vec<u8>), StoreError> {
    let corrupt = |why: &str| {
        StoreError::Damaged(format!(
            "the record under key {:?} is damaged ({why})",
            String::from_utf8_lossy(key)
        ))
    };
    let head = if checked { 12 } else { 8 };
    if raw.len() < head {
        return Err(corrupt("too short"));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[..8]);
    let rev = u64::from_be_bytes(b);
    let bytes = &raw[head..];
    if checked {
        let mut c = [0u8; 4];
        c.copy_from_slice(&raw[8..12]);
        if u32::from_be_bytes(c) != checksum(rev, bytes) {
            return Err(corrupt("checksum mismatch"));
        }
    }
    Ok((rev, bytes.to_vec()))
}

/// A damaged record, said with the directory it is in.
fn damaged(dir: &std::path::Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Damaged(why) => StoreError::Damaged(format!(
            "the data directory {} is damaged: {why}; restore the directory from a copy, or move it away to start empty",
            dir.display()
        )),
        other => other,
    }
}

/// The newest acknowledged revision the data directory recorded (0: none).
fn read_acked(dir: &std::path::Path) -> u64 {
    std::fs::read(dir.join(ACKED_FILE))
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

impl SledStore {
    /// Open (or create) the store in `dir`; starts the flusher thread. Committed writes are
    /// published on the returned receiver.
    pub fn open(
        dir: &std::path::Path,
    ) -> Result<(Arc<SledStore>, mpsc::UnboundedReceiver<Feed>), StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            // Reads are served by the API server's watch cache; sled's own page cache only
            // needs the pages being written (its default is 1 GiB).
            .cache_capacity(SLED_CACHE_BYTES)
            .open()?;
        let tree = db.open_tree("objects")?;
        let checked = match tree.get(FORMAT_KEY)? {
            Some(v) if v.as_ref() == b"2" => true,
            Some(v) => {
                return Err(StoreError::Damaged(format!(
                    "unknown record format {:?} in {}",
                    String::from_utf8_lossy(&v),
                    dir.display()
                )))
            }
            None => false,
        };
        let mut rev = match tree.get(REV_KEY)? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                u64::from_be_bytes(b)
            }
            _ => 0,
        };
        // One scan at open: the revisions for compare-and-swap, and the records the first
        // `snapshot` hands to the API server's cache.
        let records = scan(&tree, b"", checked).map_err(|e| damaged(dir, e))?;
        let mut revs = std::collections::HashMap::with_capacity(records.len());
        for (k, r, _) in &records {
            rev = rev.max(*r);
            revs.insert(k.clone(), *r);
        }
        if !checked {
            // A store from before checksums: write every record again with its checksum.
            let mut batch = sled::Batch::default();
            for (k, r, bytes) in &records {
                batch.insert(k.as_slice(), encode(*r, bytes));
            }
            batch.insert(FORMAT_KEY, b"2".as_slice());
            tree.apply_batch(batch)?;
            db.flush()?;
        }
        let acked = read_acked(dir);
        if rev < acked {
            return Err(StoreError::Damaged(format!(
                "the data directory {} is damaged: writes up to revision {acked} were acknowledged, but only revisions up to {rev} are there (sled recovered only part of its log); restore the directory from a copy, or move it away to start empty",
                dir.display()
            )));
        }
        let acked_file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join(ACKED_FILE))
            .map_err(|e| StoreError::Sled(::sled::Error::Io(e)))?;
        let store = Arc::new(SledStore {
            db,
            tree,
            initial: Mutex::new(Some((records, rev))),
            shared: Arc::new(Shared {
                state: Mutex::new(WriteState {
                    rev,
                    closed: false,
                    revs,
                    pending: Vec::new(),
                }),
                wake: Condvar::new(),
            }),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (weak, shared) = (Arc::downgrade(&store), store.shared.clone());
        std::thread::Builder::new()
            .name("sled-flusher".into())
            .spawn(move || flusher(&shared, weak, tx, acked_file))
            .map_err(|e| StoreError::Sled(::sled::Error::Io(e)))?;
        Ok((store, rx))
    }

    /// The newest revision assigned (durable or about to be).
    pub fn current_rev(&self) -> u64 {
        self.shared.state.lock().map(|s| s.rev).unwrap_or(0)
    }

    /// Read one key: its revision and bytes.
    pub fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.tree.get(key)? {
            Some(raw) => Ok(Some(decode(key, &raw, true)?)),
            None => Ok(None),
        }
    }

    /// Every key under `prefix` with its revision and bytes, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        scan(&self.tree, prefix, true)
    }

    /// Every record and the revision they are current at: the first call returns those
    /// read at open (no second scan).
    pub fn snapshot(&self) -> Result<(Vec<Record>, u64), StoreError> {
        match self.initial.lock().ok().and_then(|mut i| i.take()) {
            Some(initial) => Ok(initial),
            None => {
                let rev = self.current_rev();
                Ok((self.scan_prefix(b"")?, rev))
            }
        }
    }

    /// Write `key` if `expect` holds. `build` receives the revision the write will get (so the
    /// caller can embed it) and says what to write. Resolves once the write is durable.
    pub async fn commit(
        &self,
        key: &[u8],
        expect: Expect,
        build: impl FnOnce(u64) -> Op,
    ) -> Result<(u64, Arc<[u8]>), StoreError> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let (rev, value) = {
            let mut st = self.shared.state.lock().map_err(|_| StoreError::Closed)?;
            let current = st.revs.get(key).copied();
            match (expect, current) {
                (Expect::Absent, Some(r)) => return Err(StoreError::AlreadyExists(r)),
                (Expect::Present, None) | (Expect::Rev(_), None) => {
                    return Err(StoreError::NotFound)
                }
                (Expect::Rev(want), Some(r)) if want != r => return Err(StoreError::Conflict(r)),
                _ => {}
            }
            let rev = st.rev + 1;
            let op = build(rev);
            let (deleted, value) = match op {
                Op::Put(bytes) => {
                    self.tree.insert(key, encode(rev, &bytes))?;
                    st.revs.insert(key.to_vec(), rev);
                    (false, bytes)
                }
                Op::Delete(bytes) => {
                    let mut batch = sled::Batch::default();
                    batch.insert(REV_KEY, &rev.to_be_bytes());
                    batch.remove(key);
                    self.tree.apply_batch(batch)?;
                    st.revs.remove(key);
                    (true, bytes)
                }
            };
            st.rev = rev;
            let value: Arc<[u8]> = value.into();
            st.pending.push(Pending {
                committed: Committed {
                    rev,
                    key: key.to_vec(),
                    deleted,
                    value: value.clone(),
                },
                ack: ack_tx,
            });
            (rev, value)
        };
        self.shared.wake.notify_one();
        ack_rx.await.map_err(|_| StoreError::Closed)?;
        Ok((rev, value))
    }
}

/// Group commit on its own thread: wait for pending writes, flush them with one blocking
/// `flush` (sled's async flush would hop through its IO thread pool for every group), then
/// publish and acknowledge them in order. Ends when the store is dropped.
fn flusher(
    shared: &Shared,
    store: std::sync::Weak<SledStore>,
    tx: mpsc::UnboundedSender<Feed>,
    acked_file: std::fs::File,
) {
    use std::os::unix::fs::FileExt;
    loop {
        let batch = {
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            while st.pending.is_empty() && !st.closed {
                st = match shared.wake.wait(st) {
                    Ok(st) => st,
                    Err(_) => return,
                };
            }
            if st.pending.is_empty() {
                return;
            }
            std::mem::take(&mut st.pending)
        };
        // Writers hold the store while they wait for this batch, so it is alive.
        let Some(s) = store.upgrade() else { return };
        let flushed = s.db.flush();
        drop(s);
        if let Err(e) = flushed {
            tracing::error!(error = %e, "sled flush failed; writes not acknowledged");
            return;
        }
        // What is acknowledged from here on must be found when the store opens again. No
        // fsync: sled's flush above made the writes durable; this file only says how far
        // they went (a lost update of it weakens the check, never makes it wrong).
        if let Some(newest) = batch.iter().map(|p| p.committed.rev).max() {
            if let Err(e) = acked_file.write_all_at(&newest.to_be_bytes(), 0) {
                tracing::warn!(error = %e, "recording the acknowledged revision");
            }
        }
        let (committed, acks): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.committed, p.ack)).unzip();
        if tx.send(Feed::Commits(committed)).is_err() {
            return;
        }
        for a in acks {
            let _ = a.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cas_and_revisions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, mut rx) = SledStore::open(dir.path()).unwrap();
            let r1 = s
                .commit(b"pods/default/a", Expect::Absent, |_| {
                    Op::Put(b"A".to_vec())
                })
                .await
                .unwrap()
                .0;
            assert_eq!(r1, 1);
            let err = s
                .commit(b"pods/default/a", Expect::Absent, |_| {
                    Op::Put(b"B".to_vec())
                })
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::AlreadyExists(1)));
            let err = s
                .commit(b"pods/default/a", Expect::Rev(7), |_| {
                    Op::Put(b"B".to_vec())
                })
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(1)));
            let r2 = s
                .commit(b"pods/default/a", Expect::Rev(1), |rev| {
                    Op::Put(format!("B{rev}").into_bytes())
                })
                .await
                .unwrap()
                .0;
            assert_eq!(r2, 2);
            let r3 = s
                .commit(b"pods/default/b", Expect::Absent, |_| {
                    Op::Put(b"C".to_vec())
                })
                .await
                .unwrap()
                .0;
            let r4 = s
                .commit(b"pods/default/b", Expect::Present, |_| {
                    Op::Delete(b"C".to_vec())
                })
                .await
                .unwrap()
                .0;
            assert_eq!((r3, r4), (3, 4));
            let mut seen = Vec::new();
            while seen.len() < 4 {
                if let Feed::Commits(batch) = rx.recv().await.unwrap() {
                    seen.extend(batch.into_iter().map(|c| c.rev));
                }
            }
            assert_eq!(seen, vec![1, 2, 3, 4]);
        }
        {
            // The last write was a delete: its revision survives in the counter key.
            let (s, _rx) = SledStore::open(dir.path()).unwrap();
            assert_eq!(s.current_rev(), 4);
            assert_eq!(s.get(b"pods/default/a").unwrap(), Some((2, b"B2".to_vec())));
            assert_eq!(s.get(b"pods/default/b").unwrap(), None);
            assert_eq!(s.scan_prefix(b"pods/").unwrap().len(), 1);
            let err = s
                .commit(b"pods/default/a", Expect::Rev(1), |_| {
                    Op::Put(b"X".to_vec())
                })
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(2)), "{err:?}");
            let r5 = s
                .commit(b"pods/default/c", Expect::Absent, |_| {
                    Op::Put(b"D".to_vec())
                })
                .await
                .unwrap()
                .0;
            assert_eq!(r5, 5);
        }
        // The last write was a put: the counter is the newest value's revision.
        let (s, _rx) = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.current_rev(), 5);
        // The first snapshot is what open read; later ones scan again.
        let (records, rev) = s.snapshot().unwrap();
        let keys: Vec<&[u8]> = records.iter().map(|r| r.0.as_slice()).collect();
        assert_eq!(keys, vec![&b"pods/default/a"[..], &b"pods/default/c"[..]]);
        assert_eq!((rev, records[1].1), (5, 5));
        assert_eq!(s.snapshot().unwrap().0, records);
    }

    async fn put(s: &SledStore, key: &[u8], v: &[u8]) -> u64 {
        s.commit(key, Expect::Absent, |_| Op::Put(v.to_vec()))
            .await
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn a_changed_value_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _rx) = SledStore::open(dir.path()).unwrap();
            put(&s, b"configmaps/default/a", b"{\"a\":1}").await;
            put(&s, b"configmaps/default/b", b"{\"b\":2}").await;
        }
        {
            // Flip one byte of a value behind the store's back.
            let db = sled::open(dir.path()).unwrap();
            let t = db.open_tree("objects").unwrap();
            let mut raw = t.get(b"configmaps/default/b").unwrap().unwrap().to_vec();
            let last = raw.len() - 2;
            raw[last] ^= 0x01;
            t.insert(b"configmaps/default/b", raw).unwrap();
            db.flush().unwrap();
        }
        let e = SledStore::open(dir.path()).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("configmaps/default/b") && msg.contains("checksum"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn lost_acknowledged_writes_are_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _rx) = SledStore::open(dir.path()).unwrap();
            for i in 0..5 {
                put(&s, format!("k/{i}").as_bytes(), b"v").await;
            }
        }
        assert_eq!(read_acked(dir.path()), 5);
        {
            // Lose the newest writes as a partial recovery of sled's log would.
            let db = sled::open(dir.path()).unwrap();
            let t = db.open_tree("objects").unwrap();
            t.remove(b"k/4").unwrap();
            t.remove(b"k/3").unwrap();
            db.flush().unwrap();
        }
        let msg = SledStore::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            msg.contains("acknowledged") && msg.contains("revision 5"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_store_without_checksums_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let t = db.open_tree("objects").unwrap();
            let mut old = 7u64.to_be_bytes().to_vec();
            old.extend_from_slice(b"{}");
            t.insert(b"pods/default/old", old).unwrap();
            db.flush().unwrap();
        }
        {
            let (s, _rx) = SledStore::open(dir.path()).unwrap();
            assert_eq!(
                s.get(b"pods/default/old").unwrap(),
                Some((7, b"{}".to_vec()))
            );
            assert_eq!(put(&s, b"pods/default/new", b"{}").await, 8);
        }
        let (s, _rx) = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            s.get(b"pods/default/old").unwrap(),
            Some((7, b"{}".to_vec()))
        );
    }
}
