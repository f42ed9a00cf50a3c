//! PATCH of an object or its `status`: JSON merge patch, strategic merge patch, JSON patch,
//! and server-side apply (`application/apply-patch+yaml`, which creates a missing object).
//! Every form goes through the write path, dry runs included.

use super::object_response;
use crate::fields;
use crate::kinds::{self, Sub};
use crate::ownership;
use crate::request::{content_type, decode_body, Query};
use crate::routes::Target;
use crate::state::{
    check_type, internal, merge_for_subresource, store_key, AppState, WriteOptions,
};
use axum::http::HeaderMap;
use axum::response::Response;
use coxswain_api::patch;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use serde_json::{json, Value};

/// Kubernetes' limit on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// What a JSON patch may copy in all, and how big its result may be: the request size limit.
pub const MAX_PATCH_BYTES: usize = crate::MAX_BODY_BYTES;

/// PATCH an object, or (with `sub`) its `status`.
pub async fn patch(
    st: &AppState,
    t: &Target,
    name: &str,
    sub: Option<Sub>,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let kind = kinds::of(r);
    let ct = content_type(h);
    let mut p = decode_body(h, body)?;
    let ns = t.namespace.clone().unwrap_or_default();
    let owns = sub.and_then(Sub::owns);
    let mode = fields::Mode::parse(q.get("fieldValidation"))?;
    // At another version than the stored one the patch applies to the object as that
    // version shows it; unknown fields are not checked against the stored version's type.
    let view = crate::versions::converted(t).then(|| t.api_version());
    let mode = if view.is_some() {
        fields::Mode::Ignore
    } else {
        mode
    };
    let warnings = if ct == "application/json-patch+json" || view.is_some() {
        Vec::new()
    } else {
        fields::check(r, &mut p, mode)?
    };
    if ct == "application/apply-patch+yaml" {
        let mut resp = server_side_apply(st, t, name, q, h, p).await?;
        fields::add_warnings(&mut resp, &warnings);
        return Ok(resp);
    }
    if ct == "application/json-patch+json" {
        let ops = p.as_array().map_or(0, Vec::len);
        if ops > MAX_JSON_PATCH_OPERATIONS {
            return Err(ApiError::too_large(format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {ops}"
            )));
        }
    }
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut target = cur.clone();
        if let Some(m) = target["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if let Some(v) = &view {
            kind.convert(&mut target, v);
            target["apiVersion"] = json!(v);
        }
        match ct.as_str() {
            "application/json-patch+json" => {
                patch::json_patch_limited(&mut target, &p, MAX_PATCH_BYTES).map_err(|e| {
                    ApiError::invalid(r, name, vec![Cause::invalid("patch", "", &e.0)])
                })?;
                // What a JSON patch adds is checked as a body is: unknown fields are refused
                // or dropped, and the result must fit in a request.
                if view.is_none() {
                    fields::check(r, &mut target, mode)?;
                }
                let size = serde_json::to_vec(&target).map_or(0, |b| b.len());
                if size > MAX_PATCH_BYTES {
                    return Err(ApiError::too_large(format!(
                        "the patched object is {size} bytes; at most {MAX_PATCH_BYTES} are allowed"
                    )));
                }
            }
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&mut target, &p)
                    .map_err(|e| ApiError::bad_request(e.0))?
            }
            "application/merge-patch+json" => patch::merge_patch(&mut target, &p),
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        if view.is_some() {
            kind.convert(&mut target, &r.api_version());
            target["apiVersion"] = json!(r.api_version());
            fields::check(r, &mut target, fields::Mode::Ignore)?;
        }
        Ok(merge_for_subresource(kind, cur, target, owns))
    };
    let opts = WriteOptions {
        manager: q.get("fieldManager"),
        dry_run: q.dry_run(),
        ..Default::default()
    };
    let (bytes, _) = st.write(r, &ns, name, opts, &change).await?;
    let mut resp = object_response(h, 200, bytes);
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
    h: &HeaderMap,
    config: Value,
) -> Result<Response, ApiError> {
    let r = t.resource;
    let kind = kinds::of(r);
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
    if config
        .at("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        config["metadata"]["name"] = json!(name);
    }
    if st
        .store
        .get(&store_key(r, &ns, name))
        .await
        .map_err(internal)?
        .is_none()
    {
        return super::create::create_as(st, t, q, h, config, Some((manager, "Apply"))).await;
    }
    let force = q.flag("force")?;
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let mut base = cur.clone();
        if let Some(m) = base["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let applied = ownership::apply(r, name, &base, &config, manager, force)?;
        Ok(merge_for_subresource(kind, cur, applied, None))
    };
    let opts = WriteOptions {
        dry_run: q.dry_run(),
        ..Default::default()
    };
    let (bytes, _) = st.write(r, &ns, name, opts, &change).await?;
    Ok(object_response(h, 200, bytes))
}
