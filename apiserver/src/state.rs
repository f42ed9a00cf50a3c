//! The server's state ([`AppState`]: storage, watch cache, metrics) and its one write path:
//! every change of a stored object, whatever the verb, goes through [`AppState::write`],
//! [`AppState::insert`] or [`AppState::remove`], and so through the kind's rules and one
//! compare-and-swap. Also the storage keys of objects.

use crate::cache::Cache;
use crate::kinds::{self, Kind};
use crate::metrics;
use crate::ownership;
use bytes::Bytes;
use coxswain_api::resources::{ResourceInfo, NAMESPACES, RESOURCES};
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, DNS1123_LABEL_MSG,
    DNS1123_SUBDOMAIN_MSG,
};
use coxswain_api::At;
use coxswain_store::{Expect, Op, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Shared state of all handlers.
pub struct AppState {
    /// Durable storage (writes and compare-and-swap reads; other reads come from the cache).
    pub store: Arc<Store>,
    /// In-memory objects and recent events.
    pub cache: Arc<Cache>,
    /// Client for proxying to kubelets.
    pub http: reqwest::Client,
    /// Request counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Becomes `true` when the server shuts down: watch streams end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Requests in flight and how long one may take.
    pub limits: Limits,
    /// The ranges Service IPs and node ports come from.
    pub ranges: crate::allocator::Ranges,
    /// Open watches per client (ComponentStatus reads them).
    pub watchers: Arc<crate::componentstatus::Watchers>,
    /// Clients whose writes are attributed to no field manager unless they name one.
    pub untracked_field_managers: Vec<String>,
}

/// The server's limits on requests (kube-apiserver's flags and defaults); long-running
/// requests (watches, followed logs) are not counted and have no timeout.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Reads in flight at once (`--max-requests-inflight`, 400).
    pub reads: Arc<tokio::sync::Semaphore>,
    /// Writes in flight at once (`--max-mutating-requests-inflight`, 200).
    pub writes: Arc<tokio::sync::Semaphore>,
    /// How long a request may take (`--request-timeout`, 60 s).
    pub request_timeout: std::time::Duration,
}

impl Limits {
    /// Limits of `reads` and `writes` requests in flight and a request timeout.
    pub fn new(reads: usize, writes: usize, request_timeout: std::time::Duration) -> Limits {
        Limits {
            reads: Arc::new(tokio::sync::Semaphore::new(reads.max(1))),
            writes: Arc::new(tokio::sync::Semaphore::new(writes.max(1))),
            request_timeout,
        }
    }
}

/// How a write is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions<'a> {
    /// A write by the server itself (binding): the kind's update rules are not applied.
    pub internal: bool,
    /// The field manager to record in `managedFields`.
    pub manager: Option<&'a str>,
    /// `dryRun=All`: everything but the commit.
    pub dry_run: bool,
}

/// The storage key of an object.
pub fn store_key(r: &ResourceInfo, ns: &str, name: &str) -> Vec<u8> {
    format!("{}/{}/{}/{}", group_key(r), r.plural, ns, name).into_bytes()
}

/// The storage key prefix of a resource.
pub fn store_prefix(r: &ResourceInfo) -> Vec<u8> {
    format!("{}/{}/", group_key(r), r.plural).into_bytes()
}

fn group_key(r: &ResourceInfo) -> &'static str {
    if r.group.is_empty() {
        "core"
    } else {
        r.group
    }
}

/// The resource a storage key belongs to.
pub fn resource_of_key(key: &[u8]) -> Option<&'static ResourceInfo> {
    let s = std::str::from_utf8(key).ok()?;
    let mut it = s.splitn(3, '/');
    let g = it.next()?;
    let plural = it.next()?;
    let g = if g == "core" { "" } else { g };
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == g && r.plural == plural)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.at(p).and_then(Value::as_str).unwrap_or("")
}

/// An unexpected failure as a 500.
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn store_error(r: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(r, name),
        StoreError::AlreadyExists(_) => ApiError::already_exists(r, name),
        StoreError::Conflict(_) => ApiError::stale(r, name),
        other => ApiError::internal(other.to_string()),
    }
}

/// Check `apiVersion`/`kind` against the URL (filling them in when absent), and that
/// `metadata` is an object.
pub fn check_type(r: &ResourceInfo, v: &mut Value) -> Result<(), ApiError> {
    let Some(m) = v.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let av = r.api_version();
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(av));
        }
        Some(a) if a == av => {}
        Some(a) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({av})"
            )))
        }
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(r.kind));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            )))
        }
    }
    if !m.get("metadata").is_some_and(Value::is_object) {
        if m.get("metadata").is_some_and(|x| !x.is_null()) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        m.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// Validate an object about to be stored: its name and labels, then the kind's rules.
pub fn validate(k: &dyn Kind, v: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let name = str_at(v, "/metadata/name");
    let bad_name = match k.name_rule() {
        _ if name.is_empty() => {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            });
            None
        }
        kinds::NameRule::Label => (!is_dns1123_label(name)).then_some(DNS1123_LABEL_MSG),
        kinds::NameRule::Dns1035 => (!coxswain_api::validation::is_dns1035_label(name))
            .then_some(coxswain_api::validation::DNS1035_LABEL_MSG),
        kinds::NameRule::Subdomain => {
            (!is_dns1123_subdomain(name)).then_some(DNS1123_SUBDOMAIN_MSG)
        }
        kinds::NameRule::Any => None,
    };
    if let Some(msg) = bad_name {
        causes.push(Cause::invalid("metadata.name", format!("\"{name}\""), msg));
    }
    if let Some(labels) = v.at("/metadata/labels").and_then(Value::as_object) {
        for (key, val) in labels {
            match val.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid(
                    &format!("metadata.labels.{key}"),
                    val,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )),
            }
        }
    }
    k.validate(v, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(k.info(), name, causes))
    }
}

/// What every object must be to be stored, whatever wrote it: it decodes as its kind's exact
/// type (so every component can read it back) and nests no deeper than JSON parsing reads.
pub fn check_storable(r: &ResourceInfo, v: &Value) -> Result<(), ApiError> {
    crate::fields::check_decodes(r, v)
}

/// Keep what a write to the main resource may not change (status, and what the kind keeps),
/// or, for a write through a subresource, everything but the part it owns (`owns`).
pub fn merge_for_subresource(
    k: &dyn Kind,
    cur: &Value,
    mut new: Value,
    owns: Option<&str>,
) -> Value {
    if let Some(pointer) = owns {
        let mut out = cur.clone();
        let part = new.pointer(pointer).cloned().unwrap_or(match pointer {
            "/status" => json!({}),
            _ => json!([]),
        });
        set_pointer(&mut out, pointer, part);
        if let Some(rv) = new.at("/metadata/resourceVersion") {
            out["metadata"]["resourceVersion"] = rv.clone();
        }
        return out;
    }
    if k.info().has_status {
        match cur.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    k.keep_on_update(cur, &mut new);
    new
}

/// Set the value at a JSON pointer of object keys, creating objects on the way.
fn set_pointer(v: &mut Value, pointer: &str, part: Value) {
    let mut at = v;
    let keys: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, key) in keys.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(m) = at.as_object_mut() else { return };
        if i + 1 == keys.len() {
            m.insert((*key).to_string(), part);
            return;
        }
        at = m.entry((*key).to_string()).or_insert_with(|| json!({}));
    }
}

impl AppState {
    /// Kubernetes' consistent reads: on etcd, wait until this server's cache has caught up
    /// with the cluster's current revision, so a write through another API server is seen.
    /// (On sled every acknowledged write is already in the cache.) Bounded, in case writes
    /// outside our key prefix moved etcd's revision past anything we will see.
    pub async fn consistent_read(&self) {
        if self.store.backend() != "etcd" {
            return;
        }
        if let Ok(rev) = self.store.current_rev().await {
            let wait = self.cache.wait_for(rev);
            if tokio::time::timeout(std::time::Duration::from_secs(1), wait)
                .await
                .is_err()
            {
                tracing::debug!(
                    rev,
                    "cache did not reach etcd's revision in 1 s; serving it as is"
                );
            }
        }
    }

    /// A namespaced object may only be created in a namespace that exists and is not
    /// terminating.
    pub fn check_namespace(&self, r: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !r.namespaced {
            return Ok(());
        }
        match self.cache.get(&NAMESPACES, "", ns) {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(o) => {
                let v: Value = serde_json::from_slice(&o.bytes).unwrap_or_default();
                if v.at("/metadata/deletionTimestamp").is_some() {
                    Err(ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The stored object: revision, bytes and parsed value, read from storage (the latest
    /// committed state, which compare-and-swap writes are checked against).
    pub async fn current(
        &self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<(u64, Vec<u8>, Value), ApiError> {
        let (rev, bytes) = self
            .store
            .get(&store_key(r, ns, name))
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let v = serde_json::from_slice(&bytes).map_err(internal)?;
        Ok((rev, bytes, v))
    }

    /// Store a new object; returns its encoded form.
    pub async fn insert(&self, r: &ResourceInfo, ns: &str, v: Value) -> Result<Bytes, ApiError> {
        let name = str_at(&v, "/metadata/name").to_string();
        let (rev, out) = self
            .store
            .commit(&store_key(r, ns, &name), Expect::Absent, |rev| {
                let mut v = v;
                v["metadata"]["resourceVersion"] = json!(rev.to_string());
                let out = serde_json::to_vec(&v).unwrap_or_default();
                self.cache.stash_built(rev, v);
                Op::Put(out)
            })
            .await
            .map_err(|e| store_error(r, &name, e))?;
        self.cache.wait_for(rev).await;
        Ok(Bytes::copy_from_slice(&out))
    }

    /// Read-modify-write with compare-and-swap, retried on concurrent writes.
    ///
    /// `change` gets the current object and returns the desired one; the caller's own
    /// `metadata.resourceVersion` (if it sets one) is a precondition. Server-owned metadata is
    /// carried over, `generation` bumps on spec changes, the kind's defaults and rules apply,
    /// and an object being deleted whose finalizers are all gone is removed. A dry run does
    /// all of it but the commit. Returns the object's encoded form and whether it was removed.
    pub async fn write(
        &self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: WriteOptions<'_>,
        change: &(dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync),
    ) -> Result<(Bytes, bool), ApiError> {
        let kind = kinds::of(r);
        let key = store_key(r, ns, name);
        for attempt in 0..64 {
            // First from the watch cache (no storage read); it can trail storage by the
            // writes being flushed, and then the compare-and-swap fails and the retry reads
            // storage.
            let cached = (attempt == 0)
                .then(|| self.cache.get(r, ns, name))
                .flatten()
                .and_then(|o| {
                    Some((
                        o.rev,
                        o.bytes.to_vec(),
                        serde_json::from_slice(&o.bytes).ok()?,
                    ))
                });
            let from_cache = cached.is_some();
            let (cur_rev, cur_bytes, mut current) = match cached {
                Some(c) => c,
                None => self.current(r, ns, name).await?,
            };
            // A verdict drawn from the cache's copy is checked against storage before it
            // is returned.
            macro_rules! or_recheck {
                ($e:expr) => {
                    match $e {
                        Ok(v) => v,
                        Err(_) if from_cache => continue,
                        Err(e) => return Err(e),
                    }
                };
            }
            let mut new = or_recheck!(change(&current));
            or_recheck!(check_type(r, &mut new));
            let given_rv = str_at(&new, "/metadata/resourceVersion").to_string();
            if !given_rv.is_empty() && given_rv != cur_rev.to_string() {
                if from_cache {
                    continue; // the cache may trail: check against storage
                }
                return Err(ApiError::stale(r, name));
            }
            if str_at(&new, "/metadata/name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    str_at(&new, "/metadata/name")
                )));
            }
            carry_server_metadata(kind, r, ns, &current, &mut new);
            if let Some(m) = opts.manager {
                ownership::record_update(r, Some(&current), &mut new, m);
            }
            kind.defaults(&mut new);
            // Decoding comes first, as in Kubernetes (400 before 422).
            or_recheck!(check_storable(r, &new));
            or_recheck!(validate(kind, &new));
            if !opts.internal {
                let mut causes = Vec::new();
                kind.validate_update(&current, &new, &mut causes);
                if !causes.is_empty() {
                    or_recheck!(Err(ApiError::invalid(r, name, causes)));
                }
            }
            // `current` is not needed after this: compare it without its resourceVersion.
            if let Some(m) = current["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            if current == new {
                if from_cache {
                    // "No change" must hold against storage: on etcd another API server's
                    // acknowledged write may not have reached this cache yet.
                    continue;
                }
                return Ok((Bytes::from(cur_bytes), false));
            }
            let remove = new["metadata"].get("deletionTimestamp").is_some()
                && new["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty())
                && !kind.removal_waits(&new);
            // What the object holds across the cluster: take what it newly asks for now,
            // give back what it no longer holds once the change is stored.
            let held = kind.holdings(&current);
            let wants = if remove {
                Vec::new()
            } else {
                kind.holdings(&new)
            };
            let uid = str_at(&new, "/metadata/uid").to_string();
            let taken = self
                .reserve(r, name, &held, wants, &mut new, &uid, opts.dry_run)
                .await?;
            let freed = crate::allocator::given_up(&held, &kind.holdings(&new));
            if opts.dry_run {
                new["metadata"]["resourceVersion"] = json!(cur_rev.to_string());
                return Ok((
                    Bytes::from(serde_json::to_vec(&new).map_err(internal)?),
                    remove,
                ));
            }
            let freed = if remove {
                crate::allocator::given_up(&held, &[])
            } else {
                freed
            };
            let res = self
                .store
                .commit(&key, Expect::Rev(cur_rev), |rev| {
                    let mut v = new;
                    v["metadata"]["resourceVersion"] = json!(rev.to_string());
                    let out = serde_json::to_vec(&v).unwrap_or_default();
                    self.cache.stash_built(rev, v);
                    if remove {
                        Op::Delete(out)
                    } else {
                        Op::Put(out)
                    }
                })
                .await;
            match res {
                Ok((rev, out)) => {
                    self.cache.wait_for(rev).await;
                    self.release(&freed).await;
                    return Ok((Bytes::copy_from_slice(&out), remove));
                }
                Err(StoreError::Conflict(_)) => {
                    self.release(&taken).await;
                    continue;
                }
                Err(e) => {
                    self.release(&taken).await;
                    return Err(store_error(r, name, e));
                }
            }
        }
        Err(ApiError::conflict(r, name, "too many concurrent updates"))
    }

    /// Remove an object at revision `rev`, publishing `final_state` as its DELETED event.
    pub async fn remove(
        &self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        rev: u64,
        final_state: Value,
    ) -> Result<(), ApiError> {
        let held = kinds::of(r).holdings(&final_state);
        let res = self
            .store
            .commit(&store_key(r, ns, name), Expect::Rev(rev), |new_rev| {
                let mut v = final_state;
                v["metadata"]["resourceVersion"] = json!(new_rev.to_string());
                let out = serde_json::to_vec(&v).unwrap_or_default();
                self.cache.stash_built(new_rev, v);
                Op::Delete(out)
            })
            .await
            .map_err(|e| store_error(r, name, e))?;
        self.cache.wait_for(res.0).await;
        self.release(&crate::allocator::given_up(&held, &[])).await;
        Ok(())
    }
}

/// Carry what the server owns from the current object to the new one: namespace, uid,
/// creation and deletion timestamps, generation (bumped when the spec changed), and the
/// managed fields when the client sent none.
fn carry_server_metadata(
    kind: &dyn Kind,
    r: &ResourceInfo,
    ns: &str,
    current: &Value,
    new: &mut Value,
) {
    if r.namespaced {
        new["metadata"]["namespace"] = json!(ns);
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match current["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    if k != "deletionTimestamp" && k != "deletionGracePeriodSeconds" {
                        m.remove(k);
                    }
                }
            }
        }
    }
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("generation");
        m.remove("resourceVersion");
    }
    if kind.has_generation() {
        let mut g = current["metadata"]["generation"].as_i64().unwrap_or(1);
        if current.get("spec") != new.get("spec") {
            g += 1;
        }
        new["metadata"]["generation"] = json!(g);
    }
    if new.at("/metadata/managedFields").is_none() {
        if let Some(mf) = current.at("/metadata/managedFields") {
            new["metadata"]["managedFields"] = mf.clone();
        }
    }
}
