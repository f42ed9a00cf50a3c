//! v1 ComponentStatus (`kubectl get componentstatuses`), as kube-apiserver still answers it:
//! get and list only, cluster-scoped, short name `cs`, each answer with the warning `v1
//! ComponentStatus is deprecated in v1.19+`. Kubernetes probes the components' `/healthz`;
//! Coxswain's components are clients only, so a component is Healthy while one of its
//! processes holds a watch open on this API server (its User-Agent names it), and the
//! storage (`etcd-0`, or `sled-0` for the embedded store) while it answers a read.

use crate::error::value_response;
use crate::request::{wants_table, Query};
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use coxswain_api::status::ApiError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATH: &str = "/api/v1/componentstatuses";

/// The components and the User-Agent their processes send (`<agent>/<version>`).
const COMPONENTS: &[(&str, &str)] = &[
    ("controller-manager", "kube-controller-manager"),
    ("scheduler", "kube-scheduler"),
];

/// Open watches per client (its User-Agent up to the first `/`).
#[derive(Default)]
pub struct Watchers(Mutex<HashMap<String, usize>>);

/// Counts one watch while it lives.
pub struct WatchGuard(Arc<Watchers>, String);

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a watch by the client that sent `h`.
    pub fn enter(self: &Arc<Self>, h: &HeaderMap) -> WatchGuard {
        let agent = h
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .unwrap_or("")
            .chars()
            .take(64)
            .collect::<String>();
        *self.lock().entry(agent.clone()).or_default() += 1;
        WatchGuard(self.clone(), agent)
    }

    fn open(&self, agent: &str) -> usize {
        self.lock().get(agent).copied().unwrap_or(0)
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut m = self.0.lock();
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Whether the path is this resource's.
pub fn owns(path: &str) -> bool {
    path == PATH || path.strip_prefix(PATH).is_some_and(|r| r.starts_with('/'))
}

/// The legacy discovery entry (`/api/v1`).
pub fn legacy_entry() -> Value {
    json!({"name": "componentstatuses", "singularName": "componentstatus", "namespaced": false,
        "kind": "ComponentStatus", "verbs": ["get", "list"], "shortNames": ["cs"]})
}

/// The aggregated discovery entry (`/api`, v2).
pub fn aggregated_entry() -> Value {
    json!({"resource": "componentstatuses", "responseKind": {"group": "", "version": "v1", "kind": "ComponentStatus"},
        "scope": "Cluster", "singularResource": "componentstatus", "verbs": ["get", "list"],
        "shortNames": ["cs"], "categories": [], "subresources": []})
}

fn status(name: &str, healthy: bool, message: &str, error: &str) -> Value {
    let mut c = json!({"type": "Healthy", "status": if healthy { "True" } else { "False" }});
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    if !error.is_empty() {
        c["error"] = json!(error);
    }
    json!({"kind": "ComponentStatus", "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null}, "conditions": [c]})
}

async fn statuses(st: &AppState) -> Vec<Value> {
    let mut out: Vec<Value> = COMPONENTS
        .iter()
        .map(|(name, agent)| {
            if st.watchers.open(agent) > 0 {
                status(name, true, "ok", "")
            } else {
                let msg = format!("no {agent} is watching the API server");
                status(name, false, &msg, "")
            }
        })
        .collect();
    let name = format!("{}-0", st.store.backend());
    let probe = tokio::time::timeout(Duration::from_secs(20), st.store.current_rev()).await;
    out.push(match probe {
        Ok(Ok(_)) => status(&name, true, "ok", ""),
        Ok(Err(e)) => status(&name, false, "", &e.to_string()),
        Err(_) => status(&name, false, "", "context deadline exceeded"),
    });
    out
}

fn table(items: &[Value]) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|v| {
            let c = &v["conditions"][0];
            let healthy = if c["status"] == "True" { "Healthy" } else { "Unhealthy" };
            json!({"cells": [v["metadata"]["name"], healthy, c["message"].as_str().unwrap_or(""),
                c["error"].as_str().unwrap_or("")],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"]}})
        })
        .collect();
    let col = |n: &str, f: &str| json!({"name": n, "type": "string", "format": f, "description": "", "priority": 0});
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": [col("Name", "name"), col("Status", ""), col("Message", ""), col("Error", "")],
        "rows": rows})
}

/// Serve `GET /api/v1/componentstatuses[/name]`.
pub async fn serve(
    st: &AppState,
    method: &Method,
    path: &str,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let name = path
        .strip_prefix(PATH)
        .unwrap_or("")
        .trim_start_matches('/');
    if name.contains('/') {
        return Err(ApiError::no_route());
    }
    crate::request::get_only(method, q, "componentstatuses")?;
    let mut items = statuses(st).await;
    if !name.is_empty() {
        items.retain(|v| v["metadata"]["name"] == name);
        if items.is_empty() {
            // As kube-apiserver: a plain error, so a 500 without a reason.
            return Err(ApiError::internal(format!("Component not found: {name}")));
        }
    }
    let body = if wants_table(h) {
        table(&items)
    } else if name.is_empty() {
        json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items})
    } else {
        items.swap_remove(0)
    };
    let mut resp = value_response(200, &body);
    resp.headers_mut().insert(
        header::WARNING,
        HeaderValue::from_static("299 - \"v1 ComponentStatus is deprecated in v1.19+\""),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_counted_per_client_while_they_last() {
        let w = Arc::new(Watchers::default());
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static("kube-scheduler/v1.32.0 (coxswain)"),
        );
        let a = w.enter(&h);
        let b = w.enter(&h);
        assert_eq!(w.open("kube-scheduler"), 2);
        drop(a);
        assert_eq!(w.open("kube-scheduler"), 1);
        drop(b);
        assert_eq!(w.open("kube-scheduler"), 0);
        assert!(owns("/api/v1/componentstatuses") && owns("/api/v1/componentstatuses/scheduler"));
        assert!(!owns("/api/v1/componentstatusesx"));
    }
}
