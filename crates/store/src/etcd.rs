//! The etcd v3 backend, spoken through etcd's JSON gRPC gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/kv/compaction`, `/v3/watch`) with reqwest: keys and values are base64,
//! 64-bit numbers are strings. No generated protobuf code, so building needs no `protoc`.
//!
//! - Writes are one transaction each, guarded like Kubernetes' etcd3 store: create compares
//!   `create_revision == 0`, compare-and-swap compares `mod_revision`; the failure branch reads
//!   the key so the error says why. The write's revision is the transaction's header revision.
//! - Reads stamp the key's `mod_revision` into the object ([`Stamp`]).
//! - One watch per API server (not per client) on the whole prefix with `prev_kv`, from the
//!   snapshot revision; after a disconnect it resumes from the last revision seen, and if that
//!   was compacted it lists again and sends [`Feed::Resync`].
//! - Endpoints are tried in turn; a connection error moves to the next.

use crate::{Committed, Expect, Feed, Op, Record, Stamp, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How to reach etcd.
pub struct EtcdConfig {
    /// Client URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster's objects (`/registry/`).
    pub prefix: String,
    /// Writes a revision into stored bytes.
    pub stamp: Stamp,
}

/// The etcd-backed store.
pub struct EtcdStore {
    http: reqwest::Client,
    endpoints: Vec<String>,
    next: AtomicUsize,
    prefix: Vec<u8>,
    stamp: Stamp,
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

/// A gateway int64 (a string, or absent for zero).
fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Etcd(e.to_string())
}

impl EtcdStore {
    /// Connect and check that etcd answers.
    pub async fn connect(cfg: EtcdConfig) -> Result<EtcdStore, StoreError> {
        if cfg.endpoints.is_empty() {
            return Err(err("no etcd endpoints given"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(err)?;
        let s = EtcdStore {
            http,
            endpoints: cfg
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            next: AtomicUsize::new(0),
            prefix: cfg.prefix.into_bytes(),
            stamp: cfg.stamp,
        };
        s.current_rev().await?;
        Ok(s)
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(key);
        k
    }

    /// POST a gateway call, failing over between endpoints on connection errors.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let n = self.endpoints.len();
        let first = self.next.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            let url = format!("{}{path}", self.endpoints[idx]);
            match self.http.post(&url).json(body).send().await {
                Ok(resp) => {
                    self.next.store(idx, Ordering::Relaxed);
                    let status = resp.status();
                    let v: Value = resp.json().await.map_err(err)?;
                    if !status.is_success() {
                        let msg = v["message"].as_str().or(v["error"].as_str()).unwrap_or("");
                        if msg.contains("compacted") {
                            return Err(StoreError::Compacted(0));
                        }
                        return Err(err(format!("{path}: {status}: {msg}")));
                    }
                    return Ok(v);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(err(format!(
            "no etcd endpoint answered: {}",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// The cluster's current revision.
    pub async fn current_rev(&self) -> Result<u64, StoreError> {
        // A range over one key nobody writes is the cheapest way to read the header.
        let probe = self.full_key(b"\x00revision-probe");
        let v = self
            .call(
                "/v3/kv/range",
                &json!({"key": b64(&probe), "count_only": true}),
            )
            .await?;
        Ok(num(&v["header"]["revision"]))
    }

    /// One key, stamped with its revision.
    pub async fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let v = self
            .call("/v3/kv/range", &json!({"key": b64(&self.full_key(key))}))
            .await?;
        Ok(v["kvs"].as_array().and_then(|kvs| kvs.first()).map(|kv| {
            let rev = num(&kv["mod_revision"]);
            (rev, (self.stamp)(&unb64(&kv["value"]), rev))
        }))
    }

    /// A guarded single-key write.
    pub async fn commit(
        &self,
        key: &[u8],
        expect: Expect,
        op: Op,
    ) -> Result<(u64, Arc<[u8]>), StoreError> {
        let k = b64(&self.full_key(key));
        let compare = match expect {
            Expect::Absent => {
                json!({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            }
            Expect::Present => {
                json!({"key": k, "target": "CREATE", "result": "GREATER", "create_revision": "0"})
            }
            Expect::Rev(r) => {
                json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": r.to_string()})
            }
        };
        let (bytes, request) = match op {
            Op::Put(b) => {
                let req = json!({"request_put": {"key": k, "value": b64(&b)}});
                (b, req)
            }
            Op::Delete(b) => (b, json!({"request_delete_range": {"key": k}})),
        };
        let body = json!({
            "compare": [compare],
            "success": [request],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.call("/v3/kv/txn", &body).await?;
        if v["succeeded"].as_bool() != Some(true) {
            let current = v["responses"][0]["response_range"]["kvs"][0]["mod_revision"].clone();
            let current = (!current.is_null()).then(|| num(&current));
            return Err(match (expect, current) {
                (Expect::Absent, Some(r)) => StoreError::AlreadyExists(r),
                (_, None) => StoreError::NotFound,
                (_, Some(r)) => StoreError::Conflict(r),
            });
        }
        let rev = num(&v["header"]["revision"]);
        Ok((rev, (self.stamp)(&bytes, rev).into()))
    }

    /// Compact history up to `rev`.
    pub async fn compact(&self, rev: u64) -> Result<(), StoreError> {
        match self
            .call("/v3/kv/compaction", &json!({"revision": rev.to_string()}))
            .await
        {
            Ok(_) | Err(StoreError::Compacted(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every record under the prefix at one revision, read in pages.
    async fn list(&self) -> Result<(Vec<Record>, u64), StoreError> {
        let end = b64(&prefix_end(&self.prefix));
        let mut from = self.prefix.clone();
        let mut rev = 0;
        let mut out = Vec::new();
        loop {
            let mut req = json!({"key": b64(&from), "range_end": end, "limit": "1000"});
            if rev > 0 {
                req["revision"] = json!(rev.to_string());
            }
            let v = self.call("/v3/kv/range", &req).await?;
            if rev == 0 {
                rev = num(&v["header"]["revision"]);
            }
            let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
            for kv in &kvs {
                let key = unb64(&kv["key"]);
                let r = num(&kv["mod_revision"]);
                let value = (self.stamp)(&unb64(&kv["value"]), r);
                out.push((key[self.prefix.len()..].to_vec(), r, value));
            }
            match (v["more"].as_bool(), kvs.last()) {
                (Some(true), Some(last)) => {
                    from = unb64(&last["key"]);
                    from.push(0);
                }
                _ => return Ok((out, rev)),
            }
        }
    }

    /// A snapshot and a feed of every later commit.
    pub async fn list_and_watch(
        self: Arc<Self>,
    ) -> Result<(Vec<Record>, u64, mpsc::UnboundedReceiver<Feed>), StoreError> {
        let (records, rev) = self.list().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.watch_loop(rev, tx));
        Ok((records, rev, rx))
    }

    /// Follow the prefix from `rev`, reconnecting and resyncing as needed, until the
    /// receiver is dropped.
    async fn watch_loop(self: Arc<Self>, mut rev: u64, tx: mpsc::UnboundedSender<Feed>) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.watch_once(&mut rev, &tx).await {
                Ok(()) => return, // receiver gone
                Err(StoreError::Compacted(_)) => match self.list().await {
                    Ok((records, r)) => {
                        tracing::warn!(
                            rev,
                            now = r,
                            "etcd history compacted past our watch; resyncing"
                        );
                        rev = r;
                        if tx.send(Feed::Resync { records, rev: r }).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "etcd relist failed"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, rev, "etcd watch broke; reconnecting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            delay = Duration::from_millis(100);
        }
    }

    async fn watch_once(
        &self,
        rev: &mut u64,
        tx: &mpsc::UnboundedSender<Feed>,
    ) -> Result<(), StoreError> {
        let body = json!({"create_request": {
            "key": b64(&self.prefix),
            "range_end": b64(&prefix_end(&self.prefix)),
            "start_revision": (*rev + 1).to_string(),
            "prev_kv": true,
        }});
        let idx = self.next.load(Ordering::Relaxed) % self.endpoints.len();
        let url = format!("{}/v3/watch", self.endpoints[idx]);
        let resp = match self.http.post(&url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => {
                self.next.store(idx + 1, Ordering::Relaxed);
                return Err(err(e));
            }
        };
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.map_err(err)?);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let v: Value = serde_json::from_slice(&line).map_err(err)?;
                let result = &v["result"];
                if num(&result["compact_revision"]) > 0 {
                    return Err(StoreError::Compacted(num(&result["compact_revision"])));
                }
                if result["canceled"].as_bool() == Some(true) {
                    return Err(err(format!("watch canceled: {}", result["cancel_reason"])));
                }
                let events = result["events"].as_array().cloned().unwrap_or_default();
                if events.is_empty() {
                    continue;
                }
                let mut batch = Vec::with_capacity(events.len());
                for e in &events {
                    let kv = &e["kv"];
                    let r = num(&kv["mod_revision"]);
                    let deleted = e["type"].as_str() == Some("DELETE");
                    let raw = if deleted {
                        unb64(&e["prev_kv"]["value"])
                    } else {
                        unb64(&kv["value"])
                    };
                    let key = unb64(&kv["key"]);
                    batch.push(Committed {
                        rev: r,
                        key: key.get(self.prefix.len()..).unwrap_or_default().to_vec(),
                        deleted,
                        value: (self.stamp)(&raw, r).into(),
                    });
                    *rev = (*rev).max(r);
                }
                if tx.send(Feed::Commits(batch)).is_err() {
                    return Ok(());
                }
            }
        }
        Err(err("watch stream ended"))
    }
}
