//! Serving a resource at a version other than the one it is stored at (the registry's
//! `OTHER_VERSIONS`: autoscaling/v1 HorizontalPodAutoscalers, stored as autoscaling/v2), as
//! kube-apiserver does: whole objects sent (create, update, apply) are converted to the
//! stored version before the verb sees them, and every object answered (one, a list's items,
//! each watch event) is converted back, by the kind's [`crate::kinds::Kind::convert`].
//! Patches are applied to the object as the client's version shows it (`verbs::patch`).
//!
//! Decision: a watch at another version converts each event for its watcher, against the
//! rule that an event is encoded once for all; only a few, rarely changing objects are
//! served this way, and a watch at the stored version is untouched.

use crate::kinds::{self, Kind};
use crate::request::{content_type, decode_body};
use crate::routes::Target;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use coxswain_api::status::ApiError;
use futures::StreamExt;
use serde_json::Value;

/// Whether `t` addresses its resource at another version than the stored one.
pub fn converted(t: &Target) -> bool {
    (t.group, t.version) != (t.resource.group, t.resource.version)
}

fn is_kind(v: &Value, k: &dyn Kind) -> bool {
    v["kind"].as_str() == Some(k.info().kind)
}

/// The request body as the stored version: whole objects of the kind sent to create, update
/// or apply are converted (and sent on as JSON); anything else passes unchanged.
pub fn body_in(
    t: &Target,
    method: &Method,
    h: &HeaderMap,
    body: &[u8],
) -> Result<(HeaderMap, Bytes), ApiError> {
    let kind = kinds::of(t.resource);
    let ct = content_type(h);
    let whole = matches!(*method, Method::POST | Method::PUT)
        || (*method == Method::PATCH && ct == "application/apply-patch+yaml");
    if !whole || body.is_empty() {
        return Ok((h.clone(), Bytes::copy_from_slice(body)));
    }
    let mut v = decode_body(h, body)?;
    // A body without kind or apiVersion is of the kind and version the path names.
    let addressed = t.api_version();
    if v.is_object() && v.get("kind").is_none_or(Value::is_null) {
        v["kind"] = Value::from(kind.info().kind);
    }
    if v.is_object() && v.get("apiVersion").is_none_or(Value::is_null) {
        v["apiVersion"] = Value::from(addressed.clone());
    }
    if !is_kind(&v, kind) {
        return Ok((h.clone(), Bytes::copy_from_slice(body)));
    }
    let want = t.resource.api_version();
    let sent = v["apiVersion"].as_str().unwrap_or_default().to_string();
    if sent == want {
        return Ok((h.clone(), Bytes::copy_from_slice(body)));
    }
    if sent != addressed {
        // As in Kubernetes, the body must be of the version the path names.
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({sent}) does not match the expected API version ({addressed})"
        )));
    }
    let mut causes = Vec::new();
    kind.check_version(&v, &sent, &mut causes);
    if !causes.is_empty() {
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::invalid(t.resource, name, causes));
    }
    kind.convert(&mut v, &want);
    v["apiVersion"] = Value::String(want);
    let mut h = h.clone();
    if ct != "application/apply-patch+yaml" {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let bytes = serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((h, Bytes::from(bytes)))
}

/// One answered value at the addressed version: an object of the kind, or a list of them.
fn value_out(t: &Target, v: &mut Value) {
    let kind = kinds::of(t.resource);
    let api_version = t.api_version();
    if is_kind(v, kind) {
        kind.convert(v, &api_version);
        v["apiVersion"] = Value::String(api_version);
    } else if v["kind"].as_str() == Some(&t.resource.list_kind()) {
        if let Some(items) = v["items"].as_array_mut() {
            for item in items {
                kind.convert(item, &api_version);
                item["apiVersion"] = Value::String(api_version.clone());
            }
        }
        v["apiVersion"] = Value::String(api_version);
    }
}

/// One watch event line at the addressed version.
fn line_out(t: &Target, line: &[u8]) -> Vec<u8> {
    let Ok(mut ev) = serde_json::from_slice::<Value>(line) else {
        return line.to_vec();
    };
    value_out(t, &mut ev["object"]);
    let mut out = serde_json::to_vec(&ev).unwrap_or_else(|_| line.to_vec());
    out.push(b'\n');
    out
}

/// The answer at the addressed version.
pub async fn answer_out(t: &Target, watch: bool, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return Response::from_parts(parts, body);
    }
    if watch {
        let t = t.clone();
        let mut pending: Vec<u8> = Vec::new();
        let stream = body.into_data_stream().map(move |chunk| {
            let chunk = chunk?;
            pending.extend_from_slice(&chunk);
            let mut out = Vec::new();
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                out.extend(line_out(&t, &line[..line.len() - 1]));
            }
            Ok::<_, axum::Error>(Bytes::from(out))
        });
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    value_out(t, &mut v);
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec())),
    )
}
