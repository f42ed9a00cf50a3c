//! The REST verbs: create, get, list, update, patch, delete, and the `status`, `scale`,
//! `binding` and `finalize` subresources. Every write goes through [`AppState::write`] (one
//! read-modify-write loop with compare-and-swap) so all verbs share the same rules.

use crate::cache::{Filter, Obj};
use crate::error::{json_response, value_response};
use crate::fields;
use crate::ownership;
use crate::routes::Target;
use crate::strategy;
use crate::table;
use crate::AppState;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use coxswain_api::patch;
use coxswain_api::resources::{by_plural, ResourceInfo};
use coxswain_api::selector::{FieldSelector, LabelSelector};
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use coxswain_store::{Expect, Op, StoreError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Query parameters every verb may read.
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query(pairs.into_iter().collect()))
    }

    /// A string parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter, parsed like Go's `strconv.ParseBool`.
    pub fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for query parameter {k:?}"
            ))),
        }
    }

    /// An integer parameter.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid value {s:?} for query parameter {k:?}"))
                })
            })
            .transpose()
    }

    /// The list/watch filter (namespace from the path, selectors from the query).
    pub fn filter(&self, ns: Option<&str>) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
        Ok(Filter {
            namespace: ns.map(str::to_string),
            labels,
            fields,
        })
    }

    /// `includeObject=Object`: Table rows carry whole objects.
    pub fn full_objects(&self) -> bool {
        self.get("includeObject") == Some("Object")
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.get("dryRun").is_some_and(|d| d == "All")
    }
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
    coxswain_api::resources::RESOURCES
        .iter()
        .find(|r| r.group == g && r.plural == plural)
}

fn content_type(h: &HeaderMap) -> String {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode a JSON (or YAML) request body; a body we cannot read is a 400 or 415 Status.
pub fn decode_body(h: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(h);
    let v: Value = match ct.as_str() {
        "" | "application/json" | "*/*" | "text/plain" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))?,
        "application/yaml" | "application/apply-patch+yaml" | "application/x-yaml" => {
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?
        }
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        "application/vnd.kubernetes.protobuf" => coxswain_api::protobuf::decode(body)
            .map_err(|e| ApiError::unsupported_media_type_because(&e.0))?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

/// Whether the client asked for a server-side Table.
pub fn wants_table(h: &HeaderMap) -> bool {
    h.get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.at(p).and_then(Value::as_str).unwrap_or("")
}

/// Check `apiVersion`/`kind` against the URL (filling them in when absent).
fn check_type(r: &ResourceInfo, v: &mut Value) -> Result<(), ApiError> {
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

/// The namespace a write goes to: the URL's, which the body must agree with.
fn write_namespace(r: &ResourceInfo, t: &Target, v: &mut Value) -> Result<String, ApiError> {
    if !r.namespaced {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(String::new());
    }
    let url_ns = t.namespace.clone().unwrap_or_default();
    let body_ns = str_at(v, "/metadata/namespace").to_string();
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    v["metadata"]["namespace"] = json!(url_ns);
    Ok(url_ns)
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn qos_class(pod: &Value) -> &'static str {
    let cs = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !cs.is_empty();
    for c in &cs {
        let req = c.at("/resources/requests");
        let lim = c.at("/resources/limits");
        if req.is_some_and(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            || lim.is_some_and(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
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

    fn check_namespace(&self, r: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !r.namespaced {
            return Ok(());
        }
        let nsr = by_plural("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no ns"))?;
        match self.cache.get(nsr, "", ns) {
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
    async fn current(
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
    async fn insert(&self, r: &ResourceInfo, ns: &str, v: Value) -> Result<Bytes, ApiError> {
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
    /// carried over, `generation` bumps on spec changes, and an object being deleted whose
    /// finalizers are all gone is removed.
    pub async fn write(
        &self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        internal_write: bool,
        manager: Option<&str>,
        change: &(dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync),
    ) -> Result<(Bytes, bool), ApiError> {
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
            if let Some(g) = current["metadata"].get("generation") {
                let mut g = g.as_i64().unwrap_or(1);
                if strategy::spec_changed(&current, &new) {
                    g += 1;
                }
                new["metadata"]["generation"] = json!(g);
            }
            if new.at("/metadata/managedFields").is_none() {
                if let Some(mf) = current.at("/metadata/managedFields") {
                    new["metadata"]["managedFields"] = mf.clone();
                }
            }
            if let Some(m) = manager {
                ownership::record_update(r, Some(&current), &mut new, m);
            }
            strategy::apply_defaults(r, &mut new);
            or_recheck!(strategy::validate(r, &new));
            if !internal_write {
                or_recheck!(strategy::validate_update(r, &current, &new));
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
            let finalizers_gone = new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
                && (r.plural != "namespaces"
                    || new["spec"]["finalizers"]
                        .as_array()
                        .is_none_or(|f| f.is_empty()));
            let remove = new["metadata"].get("deletionTimestamp").is_some()
                && finalizers_gone
                && !(r.plural == "pods" && pod_awaits_kubelet(&new));
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
                    return Ok((Bytes::copy_from_slice(&out), remove));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_error(r, name, e)),
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
        Ok(())
    }
}

/// A pod bound to a node whose kubelet has not yet confirmed the containers stopped.
fn pod_awaits_kubelet(pod: &Value) -> bool {
    !str_at(pod, "/spec/nodeName").is_empty()
        && pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0
        && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
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

/// POST to a collection.
pub async fn create(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let manager = q.get("fieldManager").map(|m| (m, "Update"));
    create_as(st, t, q, h, body, manager).await
}

/// Create, recording `manager` (name, operation) as the owner of the fields it sent.
async fn create_as(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
    manager: Option<(&str, &str)>,
) -> Result<Response, ApiError> {
    let r = t.resource;
    let mut v = decode_body(h, body)?;
    check_type(r, &mut v)?;
    let warnings = fields::check(r, &mut v, fields::Mode::parse(q.get("fieldValidation"))?)?;
    let ns = write_namespace(r, t, &mut v)?;
    if let Some((m, op)) = manager {
        ownership::on_create(r, &mut v, m, op);
    } else if let Some(md) = v["metadata"].as_object_mut() {
        md.remove("managedFields");
    }
    let md = v["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for k in [
        "resourceVersion",
        "uid",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        md.remove(k);
    }
    md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    md.insert("creationTimestamp".into(), json!(now()));
    if matches!(r.plural, "deployments" | "replicasets") {
        md.insert("generation".into(), json!(1));
    } else {
        md.remove("generation");
    }
    let generate = md
        .get("generateName")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|_| {
            md.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        });
    strategy::status_on_create(r, &mut v);
    strategy::apply_defaults(r, &mut v);
    if r.plural == "pods" {
        v["status"]["qosClass"] = json!(qos_class(&v));
    }
    for attempt in 0..8 {
        if let Some(g) = &generate {
            v["metadata"]["name"] = json!(format!("{g}{}", random_suffix()));
        }
        strategy::validate(r, &v)?;
        st.check_namespace(r, &ns)?;
        if q.dry_run() {
            return Ok(value_response(201, &v));
        }
        match st.insert(r, &ns, v.clone()).await {
            Ok(bytes) => {
                let mut resp = json_response(201, bytes);
                fields::add_warnings(&mut resp, &warnings);
                return Ok(resp);
            }
            Err(e) if e.reason == "AlreadyExists" && generate.is_some() && attempt < 7 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

/// GET one object.
pub async fn get(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    if q.get("resourceVersion").is_none_or(str::is_empty) {
        st.consistent_read().await;
    }
    let o = st
        .cache
        .get(t.resource, ns, name)
        .ok_or_else(|| ApiError::not_found(t.resource, name))?;
    if wants_table(h) {
        let rev = o.rev;
        return Ok(value_response(
            200,
            &table::table(t.resource, &[o], rev, q.full_objects()),
        ));
    }
    Ok(json_response(200, o.bytes.clone()))
}

/// Encode a list response by concatenating already-encoded items.
pub fn list_body(r: &ResourceInfo, items: &[Arc<Obj>], rev: u64) -> Bytes {
    list_body_page(r, items, rev, None)
}

/// A continue token: the snapshot's revision and the last key returned (Kubernetes encodes
/// the same two things, base64 JSON).
fn continue_token(rev: u64, last: &(String, String)) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": [last.0, last.1]});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn parse_continue(tok: &str) -> Result<(u64, (String, String)), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {tok}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["start"][0].as_str().ok_or_else(bad)?;
    let name = v["start"][1].as_str().ok_or_else(bad)?;
    Ok((rev, (ns.to_string(), name.to_string())))
}

/// A list page: items, the list's revision, and (when more remain) the continue token and
/// remaining count.
pub fn list_body_page(
    r: &ResourceInfo,
    items: &[Arc<Obj>],
    rev: u64,
    more: Option<(&str, usize)>,
) -> Bytes {
    let mut out = Vec::with_capacity(items.iter().map(|o| o.bytes.len() + 1).sum::<usize>() + 256);
    let more = more
        .map(|(tok, n)| format!(",\"continue\":\"{tok}\",\"remainingItemCount\":{n}"))
        .unwrap_or_default();
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"{more}}},\"items\":[",
            r.list_kind(),
            r.api_version(),
            rev
        )
        .as_bytes(),
    );
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&o.bytes);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// GET a collection, in pages with `limit` and `continue`: each page comes from the cache's
/// current state, continuing in key order after the previous page's last key; a token older
/// than the watch window gets 410 Expired, as a compacted one does in Kubernetes.
pub async fn list(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let f = q.filter(t.namespace.as_deref())?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        None => 0,
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let (rev, key) = parse_continue(tok)?;
            if rev < st.cache.floor() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            Some((rev, key))
        }
        None => {
            if q.get("resourceVersion").is_none_or(str::is_empty) {
                st.consistent_read().await;
            }
            None
        }
    };
    let (items, rev, rest) =
        st.cache
            .list_page(t.resource, &f, after.as_ref().map(|(_, k)| k), limit);
    let token = match items.last() {
        Some(last) if rest > 0 => {
            let snapshot = after.as_ref().map_or(rev, |(r, _)| *r);
            Some(continue_token(
                snapshot,
                &(last.namespace.clone(), last.name.clone()),
            ))
        }
        _ => None,
    };
    if wants_table(h) {
        let mut table = table::table(t.resource, &items, rev, q.full_objects());
        if let Some(tok) = &token {
            table["metadata"]["continue"] = json!(tok);
            table["metadata"]["remainingItemCount"] = json!(rest);
        }
        return Ok(value_response(200, &table));
    }
    let more = token.as_deref().map(|t| (t, rest));
    Ok(json_response(
        200,
        list_body_page(t.resource, &items, rev, more),
    ))
}

/// PUT an object (or its `status`).
pub async fn update(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let mut v = decode_body(h, body)?;
    check_type(r, &mut v)?;
    let ns = t.namespace.clone().unwrap_or_default();
    let body_ns = str_at(&v, "/metadata/namespace");
    if r.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let sub = t.sub.as_deref();
    let status_only = sub == Some("status");
    let finalize = sub == Some("finalize");
    let warnings = fields::check(r, &mut v, fields::Mode::parse(q.get("fieldValidation"))?)?;
    if q.dry_run() {
        return Ok(value_response(200, &v));
    }
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        Ok(merge_for_subresource(
            r,
            cur,
            v.clone(),
            status_only,
            finalize,
        ))
    };
    let (bytes, _) = st
        .write(r, &ns, name, false, q.get("fieldManager"), &change)
        .await?;
    let mut resp = json_response(200, bytes);
    fields::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// Keep what a write to the main resource may not change (status) or what a write to
/// `/status` may not change (everything else).
fn merge_for_subresource(
    r: &ResourceInfo,
    cur: &Value,
    mut new: Value,
    status_only: bool,
    finalize: bool,
) -> Value {
    if status_only {
        let mut out = cur.clone();
        out["status"] = new.get("status").cloned().unwrap_or(json!({}));
        if let Some(rv) = new.at("/metadata/resourceVersion") {
            out["metadata"]["resourceVersion"] = rv.clone();
        }
        return out;
    }
    if finalize {
        let mut out = cur.clone();
        out["spec"]["finalizers"] = new.at("/spec/finalizers").cloned().unwrap_or(json!([]));
        return out;
    }
    if r.has_status {
        match cur.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if r.plural == "namespaces" {
        new["spec"] = cur.get("spec").cloned().unwrap_or(json!({}));
    }
    new
}

/// PATCH an object (or its `status`): merge, strategic merge, JSON patch, or apply.
pub async fn patch(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ct = content_type(h);
    let mut p = decode_body(h, body)?;
    let ns = t.namespace.clone().unwrap_or_default();
    let status_only = t.sub.as_deref() == Some("status");
    let mode = fields::Mode::parse(q.get("fieldValidation"))?;
    let warnings = if ct == "application/json-patch+json" {
        Vec::new()
    } else {
        fields::check(r, &mut p, mode)?
    };
    if ct == "application/apply-patch+yaml" {
        let mut resp = server_side_apply(st, t, name, q, p).await?;
        fields::add_warnings(&mut resp, &warnings);
        return Ok(resp);
    }
    let kind = ct.clone();
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut target = cur.clone();
        if let Some(m) = target["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        match kind.as_str() {
            "application/json-patch+json" => patch::json_patch(&mut target, &p)
                .map_err(|e| ApiError::invalid(r, name, vec![Cause::invalid("patch", "", &e.0)]))?,
            "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
                patch::strategic_merge_patch(&mut target, &p)
                    .map_err(|e| ApiError::bad_request(e.0))?
            }
            "application/merge-patch+json" => patch::merge_patch(&mut target, &p),
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        Ok(merge_for_subresource(r, cur, target, status_only, false))
    };
    if q.dry_run() {
        let (_, _, cur) = st.current(r, &ns, name).await?;
        return Ok(value_response(200, &change(&cur)?));
    }
    let (bytes, _) = st
        .write(r, &ns, name, false, q.get("fieldManager"), &change)
        .await?;
    let mut resp = json_response(200, bytes);
    fields::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// PATCH with `application/apply-patch+yaml`: create the object if it is missing, else apply
/// the configuration as its field manager (conflicts are 409 unless `force=true`).
async fn server_side_apply(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    config: Value,
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiError::invalid_options(
            "PatchOptions.meta.k8s.io",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            }],
        ));
    };
    let mut config = config;
    check_type(r, &mut config)?;
    if str_at(&config, "/metadata/name").is_empty() {
        config["metadata"]["name"] = json!(name);
    }
    if st
        .store
        .get(&store_key(r, &ns, name))
        .await
        .map_err(internal)?
        .is_none()
    {
        let body = serde_json::to_vec(&config).map_err(internal)?;
        return create_as(st, t, q, &json_headers(), &body, Some((manager, "Apply"))).await;
    }
    let force = q.flag("force")?;
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut base = cur.clone();
        if let Some(m) = base["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let applied = ownership::apply(r, name, &base, &config, manager, force)?;
        Ok(merge_for_subresource(r, cur, applied, false, false))
    };
    if q.dry_run() {
        let (_, _, cur) = st.current(r, &ns, name).await?;
        return Ok(value_response(200, &change(&cur)?));
    }
    let (bytes, _) = st.write(r, &ns, name, false, None, &change).await?;
    Ok(json_response(200, bytes))
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    h
}

/// How a DELETE is carried out.
struct DeleteOptions {
    grace: Option<i64>,
    policy: Option<String>,
}

/// The object marked for deletion (deletionTimestamp, finalizers), or `None` when it can be
/// removed right away.
fn mark_deleting(r: &ResourceInfo, cur: &Value, o: &DeleteOptions) -> Option<Value> {
    let mut finalizers: Vec<Value> = cur["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match o.policy.as_deref() {
        Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
            finalizers.push(json!("foregroundDeletion"))
        }
        Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
            finalizers.push(json!("orphan"))
        }
        _ => {}
    }
    let bound_pod = r.plural == "pods"
        && !str_at(cur, "/spec/nodeName").is_empty()
        && !matches!(str_at(cur, "/status/phase"), "Succeeded" | "Failed");
    let grace = if bound_pod {
        o.grace.unwrap_or_else(|| {
            cur.at("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        })
    } else {
        0
    };
    if finalizers.is_empty() && grace <= 0 && r.plural != "namespaces" {
        return None;
    }
    let mut new = cur.clone();
    let cur_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if cur["metadata"].get("deletionTimestamp").is_none() || cur_grace.is_some_and(|g| grace < g) {
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace.max(0));
        new["metadata"]["deletionTimestamp"] =
            json!(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        new["metadata"]["deletionGracePeriodSeconds"] = json!(grace.max(0));
    }
    if !finalizers.is_empty() {
        new["metadata"]["finalizers"] = json!(finalizers);
    }
    if r.plural == "namespaces" {
        new["status"]["phase"] = json!("Terminating");
    }
    Some(new)
}

/// DELETE an object: graceful for bound pods, deferred while finalizers remain.
pub async fn delete(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(h, body)?
    };
    let grace = match opts.get("gracePeriodSeconds").and_then(Value::as_i64) {
        Some(g) => Some(g),
        None => q.int("gracePeriodSeconds")?,
    };
    let policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(q.get("propagationPolicy"))
        .map(str::to_string);
    if let Some(p) = &policy {
        if !["Background", "Foreground", "Orphan"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    let o = DeleteOptions { grace, policy };
    for _ in 0..64 {
        let (rev, bytes, cur) = st.current(r, &ns, name).await?;
        let uid = str_at(&cur, "/metadata/uid");
        if let Some(want) = opts.at("/preconditions/uid").and_then(Value::as_str) {
            if want != uid {
                return Err(ApiError::conflict(
                    r,
                    name,
                    &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
                ));
            }
        }
        if let Some(want) = opts
            .at("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            if want != rev.to_string() {
                return Err(ApiError::conflict(r, name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                )));
            }
        }
        if q.dry_run() {
            return Ok(json_response(200, bytes));
        }
        if mark_deleting(r, &cur, &o).is_some() {
            let change = |c: &Value| Ok(mark_deleting(r, c, &o).unwrap_or_else(|| c.clone()));
            let (b, _) = st.write(r, &ns, name, false, None, &change).await?;
            return Ok(json_response(200, b));
        }
        match st.remove(r, &ns, name, rev, cur.clone()).await {
            Ok(()) => {}
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
        if r.plural == "pods" {
            return Ok(value_response(200, &cur));
        }
        return Ok(value_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": r.group, "kind": r.plural, "uid": uid}}),
        ));
    }
    Err(ApiError::conflict(r, name, "too many concurrent updates"))
}

/// GET, PUT or PATCH the `scale` subresource (autoscaling/v1 Scale).
pub async fn scale(
    st: &AppState,
    t: &Target,
    name: &str,
    method: &axum::http::Method,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    let to_scale = |v: &Value| -> Value {
        let sel = v
            .at("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": v["metadata"]["name"], "namespace": v["metadata"]["namespace"],
                "uid": v["metadata"]["uid"], "resourceVersion": v["metadata"]["resourceVersion"],
                "creationTimestamp": v["metadata"]["creationTimestamp"]},
            "spec": {"replicas": v.at("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": v.at("/status/replicas").cloned().unwrap_or(json!(0)), "selector": sel}})
    };
    if method == axum::http::Method::GET {
        let o = st
            .cache
            .get(r, &ns, name)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let v: Value = serde_json::from_slice(&o.bytes).map_err(internal)?;
        return Ok(value_response(200, &to_scale(&v)));
    }
    let p = decode_body(h, body)?;
    let is_put = method == axum::http::Method::PUT;
    let ct = content_type(h);
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut s = to_scale(cur);
        if is_put {
            s = p.clone();
        } else if ct == "application/json-patch+json" {
            patch::json_patch(&mut s, &p).map_err(|e| ApiError::bad_request(e.0))?;
        } else {
            patch::merge_patch(&mut s, &p);
        }
        let replicas = s.at("/spec/replicas").cloned().unwrap_or(json!(0));
        if replicas.as_i64().is_none_or(|n| n < 0) {
            return Err(ApiError::invalid(
                r,
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut out = cur.clone();
        out["spec"]["replicas"] = replicas;
        if let Some(rv) = s.at("/metadata/resourceVersion").and_then(Value::as_str) {
            if is_put && !rv.is_empty() {
                out["metadata"]["resourceVersion"] = json!(rv);
            }
        }
        Ok(out)
    };
    let (bytes, _) = st
        .write(r, &ns, name, false, q.get("fieldManager"), &change)
        .await?;
    let v: Value = serde_json::from_slice(&bytes).map_err(internal)?;
    Ok(value_response(200, &to_scale(&v)))
}

/// POST `pods/NAME/binding`: assign a pod to a node, once.
pub async fn bind(
    st: &AppState,
    t: &Target,
    name: &str,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    let b = decode_body(h, body)?;
    let node = str_at(&b, "/target/name").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            r,
            name,
            vec![Cause::required("target.name")],
        ));
    }
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let existing = str_at(cur, "/spec/nodeName");
        if !existing.is_empty() {
            return Err(ApiError::conflict(
                r,
                name,
                &format!("pod {name} is already assigned to node \"{existing}\""),
            ));
        }
        if cur["metadata"].get("deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                r,
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let mut out = cur.clone();
        out["spec"]["nodeName"] = json!(node);
        let mut conds: Vec<Value> = cur
            .at("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
        out["status"]["conditions"] = json!(conds);
        Ok(out)
    };
    st.write(r, &ns, name, true, None, &change).await?;
    Ok(value_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// POST `pods/NAME/eviction` (policy/v1 Eviction): a graceful delete with the eviction's
/// `deleteOptions`, as `kubectl drain` uses it.
pub async fn evict(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ev = decode_body(h, body)?;
    let opts = ev.get("deleteOptions").cloned().unwrap_or(json!({}));
    let opts = serde_json::to_vec(&opts).map_err(internal)?;
    delete(st, t, name, q, &json_headers(), &opts).await?;
    Ok(value_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
