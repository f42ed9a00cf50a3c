//! The `scale` subresource (autoscaling/v1 Scale over `spec.replicas` and the selector): GET,
//! PUT, and merge or JSON patches, through the write path.

use crate::error::value_response;
use crate::request::{content_type, decode_body, Query};
use crate::routes::Target;
use crate::state::{internal, AppState, WriteOptions};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use coxswain_api::patch;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use serde_json::{json, Value};

/// The Scale of an object (its selector as the kind states it, in label-selector syntax).
fn to_scale(k: &dyn crate::kinds::Kind, v: &Value) -> Value {
    let sel = crate::kinds::shared::selector_cell(k.label_selector(v).as_ref());
    let sel = if sel == "<none>" { String::new() } else { sel };
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": v["metadata"]["name"], "namespace": v["metadata"]["namespace"],
            "uid": v["metadata"]["uid"], "resourceVersion": v["metadata"]["resourceVersion"],
            "creationTimestamp": v["metadata"]["creationTimestamp"]},
        "spec": {"replicas": v.at("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": v.at("/status/replicas").cloned().unwrap_or(json!(0)), "selector": sel}})
}

/// GET, PUT or PATCH the `scale` subresource.
pub async fn scale(
    st: &AppState,
    t: &Target,
    name: &str,
    method: &Method,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    if method == Method::GET {
        let o = st
            .cache
            .get(r, &ns, name)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let v: Value = serde_json::from_slice(&o.bytes).map_err(internal)?;
        return Ok(value_response(200, &to_scale(crate::kinds::of(r), &v)));
    }
    let p = decode_body(h, body)?;
    let is_put = method == Method::PUT;
    let ct = content_type(h);
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut s = to_scale(crate::kinds::of(r), cur);
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
    let opts = WriteOptions {
        manager: q.get("fieldManager"),
        dry_run: q.dry_run(),
        ..Default::default()
    };
    let (bytes, _) = st.write(r, &ns, name, opts, &change).await?;
    let v: Value = serde_json::from_slice(&bytes).map_err(internal)?;
    Ok(value_response(200, &to_scale(crate::kinds::of(r), &v)))
}
