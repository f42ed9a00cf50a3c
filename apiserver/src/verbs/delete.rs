//! DELETE of an object (graceful for what the kind gives a grace period, deferred while
//! finalizers remain, with propagation policies and preconditions), POST `eviction` (a
//! graceful delete as `kubectl drain` sends it), and `deletecollection` (DELETE on a
//! collection, with label and field selectors).

use super::{object_response, success, value_object_response};
use crate::error::{json_response, value_response};
use crate::kinds::{self, Kind};
use crate::request::{accept, decode_body, Accept, Query};
use crate::routes::Target;
use crate::state::{AppState, WriteOptions};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use coxswain_api::status::ApiError;
use coxswain_api::At;
use serde_json::{json, Value};

/// How a DELETE is carried out (the request's `DeleteOptions` and query).
pub struct DeleteOptions {
    grace: Option<i64>,
    policy: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    /// From the body (a `DeleteOptions`, may be empty) and the query.
    pub fn parse(q: &Query, h: &HeaderMap, body: &[u8]) -> Result<DeleteOptions, ApiError> {
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
        let dry_run = q.dry_run()
            || opts["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All"));
        let text = |p: &str| opts.at(p).and_then(Value::as_str).map(str::to_string);
        Ok(DeleteOptions {
            grace,
            policy,
            uid: text("/preconditions/uid"),
            resource_version: text("/preconditions/resourceVersion"),
            dry_run,
        })
    }
}

/// The object marked for deletion (deletionTimestamp, finalizers), or `None` when it can be
/// removed right away.
fn mark_deleting(k: &dyn Kind, cur: &Value, o: &DeleteOptions) -> Option<Value> {
    let mut finalizers: Vec<Value> = cur["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match o.policy.as_deref().or(k.default_propagation()) {
        Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
            finalizers.push(json!("foregroundDeletion"))
        }
        Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
            finalizers.push(json!("orphan"))
        }
        _ => {}
    }
    let grace = k.grace_period(cur, o.grace).max(0);
    let mut new = cur.clone();
    let always_marked = k.mark_deleting(&mut new);
    if finalizers.is_empty() && grace == 0 && !always_marked {
        return None;
    }
    let cur_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if cur["metadata"].get("deletionTimestamp").is_none() || cur_grace.is_some_and(|g| grace < g) {
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
        new["metadata"]["deletionTimestamp"] =
            json!(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    }
    if !finalizers.is_empty() {
        new["metadata"]["finalizers"] = json!(finalizers);
    }
    Some(new)
}

/// What a delete did.
pub enum Deleted {
    /// Marked for deletion (grace period or finalizers): the object as it is now.
    Marked(Bytes),
    /// Removed: its final state.
    Removed(Value),
}

/// Delete one object.
pub async fn delete_one(
    st: &AppState,
    t: &Target,
    name: &str,
    o: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    let r = t.resource;
    let kind = kinds::of(r);
    let ns = t.namespace.clone().unwrap_or_default();
    for _ in 0..64 {
        let (rev, _, cur) = st.current(r, &ns, name).await?;
        kind.check_delete(&cur)?;
        let uid = cur
            .at("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = &o.uid {
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
        if let Some(want) = &o.resource_version {
            if *want != rev.to_string() {
                return Err(ApiError::conflict(r, name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                )));
            }
        }
        if mark_deleting(kind, &cur, o).is_some() {
            let change = |c: &Value| Ok(mark_deleting(kind, c, o).unwrap_or_else(|| c.clone()));
            let opts = WriteOptions {
                dry_run: o.dry_run,
                ..Default::default()
            };
            let (b, _) = st.write(r, &ns, name, opts, &change).await?;
            return Ok(Deleted::Marked(b));
        }
        if o.dry_run {
            return Ok(Deleted::Removed(cur));
        }
        match st.remove(r, &ns, name, rev, cur.clone()).await {
            Ok(()) => return Ok(Deleted::Removed(cur)),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(r, name, "too many concurrent updates"))
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
    let o = DeleteOptions::parse(q, h, body)?;
    let kind = kinds::of(t.resource);
    Ok(match delete_one(st, t, name, &o).await? {
        Deleted::Marked(b) => object_response(h, 200, b),
        Deleted::Removed(cur) if kind.delete_returns_object() => {
            value_object_response(h, 200, &cur)
        }
        Deleted::Removed(cur) => {
            let uid = cur.at("/metadata/uid").cloned().unwrap_or(Value::Null);
            value_response(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": t.resource.group, "kind": t.resource.plural, "uid": uid}}),
            )
        }
    })
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
    let opts = serde_json::to_vec(&opts).map_err(crate::state::internal)?;
    let o = DeleteOptions::parse(q, &HeaderMap::new(), &opts)?;
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = st
        .cache
        .get(t.resource, &ns, name)
        .ok_or_else(|| ApiError::not_found(t.resource, name))?;
    let pod: Value = serde_json::from_slice(&pod.bytes).map_err(crate::state::internal)?;
    crate::kinds::poddisruptionbudget::admit_eviction(st, &ns, &pod, o.dry_run).await?;
    delete_one(st, t, name, &o).await?;
    Ok(value_response(201, &success(201)))
}

/// DELETE a collection: every object the namespace and selectors match is deleted as one
/// DELETE would (objects already gone are skipped); the answer is the list of what was
/// deleted, as Kubernetes answers.
pub async fn delete_collection(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let o = DeleteOptions::parse(q, h, body)?;
    let f = q.filter(t.namespace.as_deref(), crate::kinds::of(t.resource))?;
    if q.get("resourceVersion").is_none_or(str::is_empty) {
        st.consistent_read().await;
    }
    let (objs, rev) = st.cache.list(t.resource, &f);
    let metadata_only = accept(h) == Accept::Metadata;
    let mut items: Vec<Bytes> = Vec::with_capacity(objs.len());
    for obj in objs {
        let one = Target {
            namespace: Some(obj.namespace.clone()).filter(|n| !n.is_empty()),
            ..t.clone()
        };
        let bytes = match delete_one(st, &one, &obj.name, &o).await {
            Ok(Deleted::Marked(b)) => b,
            Ok(Deleted::Removed(v)) => {
                Bytes::from(serde_json::to_vec(&v).map_err(crate::state::internal)?)
            }
            Err(e) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        items.push(bytes);
    }
    let out = super::read::encode_list(
        t.resource,
        items.iter().map(|b| &b[..]),
        rev,
        None,
        metadata_only,
    );
    Ok(json_response(200, out))
}
