//! The `binding` subresource (POST `pods/NAME/binding`): assign a pod to a node, once, and
//! mark it `PodScheduled`, as the scheduler asks.

use super::success;
use crate::error::value_response;
use crate::request::{decode_body, Query};
use crate::routes::Target;
use crate::state::{AppState, WriteOptions};
use axum::http::HeaderMap;
use axum::response::Response;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use serde_json::{json, Value};

/// POST a Binding.
pub async fn bind(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let ns = t.namespace.clone().unwrap_or_default();
    let b = decode_body(h, body)?;
    let node = b
        .at("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            r,
            name,
            vec![Cause::required("target.name")],
        ));
    }
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let existing = cur
            .at("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
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
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        out["status"]["conditions"] = json!(conds);
        Ok(out)
    };
    let opts = WriteOptions {
        internal: true,
        dry_run: q.dry_run(),
        ..Default::default()
    };
    st.write(r, &ns, name, opts, &change).await?;
    Ok(value_response(201, &success(201)))
}
