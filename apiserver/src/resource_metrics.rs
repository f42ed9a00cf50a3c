//! The resource metrics API, metrics.k8s.io/v1beta1 (`NodeMetrics`, `PodMetrics`: get and
//! list, label selectors, `metadata.name`/`metadata.namespace` field selectors, Tables), as
//! metrics-server serves it, read from the kubelets' Summary API (`/stats/summary`) when
//! asked: each kubelet process is asked once per request (a process simulating many nodes
//! answers for all of them at `/stats/nodes`). Only Running pods have metrics, as with
//! metrics-server; objects whose kubelet does not answer are left out of lists.
//!
//! Decision: served by the API server itself rather than by a metrics-server registered with
//! an APIService: there is no aggregation layer to proxy through, and no extra process to
//! start. The values are the simulated runtime's at the moment of the request, reported with
//! metrics-server's usual 15 s window.

use crate::error::value_response;
use crate::logs::kubelet_url;
use crate::request::{wants_table, Query};
use crate::state::AppState;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use coxswain_api::resources::{NODES, PODS};
use coxswain_api::selector::{FieldSelector, LabelSelector};
use coxswain_api::status::ApiError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub const VERSION: &str = "v1beta1";
/// The window every value is reported over (metrics-server's usual `--metric-resolution`).
const WINDOW: &str = "15s";
/// How long a kubelet may take to answer.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a path is this API's.
pub fn owns(path: &str) -> bool {
    path.strip_prefix("/apis/")
        .and_then(|rest| rest.strip_prefix(GROUP))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The aggregated discovery entry of the group.
pub fn aggregated_group() -> Value {
    json!({"metadata": {"name": GROUP}, "versions": [{"version": VERSION, "freshness": "Current",
        "resources": [
            {"resource": "nodes", "responseKind": {"group": "", "version": "", "kind": "NodeMetrics"},
             "scope": "Cluster", "singularResource": "", "verbs": ["get", "list"]},
            {"resource": "pods", "responseKind": {"group": "", "version": "", "kind": "PodMetrics"},
             "scope": "Namespaced", "singularResource": "", "verbs": ["get", "list"]}]}]})
}

/// The group in the legacy `/apis` list.
pub fn legacy_group() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

/// A node's or pod's usage: cpu in nanocores, memory in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    nanocores: i64,
    bytes: i64,
}

/// What the kubelets reported: node usage, and per pod (namespace, name) its containers'.
#[derive(Default)]
struct Sample {
    time: String,
    nodes: HashMap<String, Usage>,
    pods: HashMap<(String, String), Vec<(String, Usage)>>,
}

fn usage_of(v: &Value) -> Usage {
    Usage {
        nanocores: v["cpu"]["usageNanoCores"].as_i64().unwrap_or(0),
        bytes: v["memory"]["workingSetBytes"].as_i64().unwrap_or(0),
    }
}

/// Read one node Summary into the sample.
fn add_summary(s: &mut Sample, summary: &Value) {
    let Some(node) = summary["node"]["nodeName"].as_str() else {
        return;
    };
    if let Some(t) = summary["node"]["cpu"]["time"].as_str() {
        s.time = t.to_string();
    }
    s.nodes.insert(node.to_string(), usage_of(&summary["node"]));
    for p in summary["pods"].as_array().into_iter().flatten() {
        let key = (
            p["podRef"]["namespace"].as_str().unwrap_or("").to_string(),
            p["podRef"]["name"].as_str().unwrap_or("").to_string(),
        );
        let containers = p["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), usage_of(c)))
            .collect();
        s.pods.insert(key, containers);
    }
}

/// Ask the kubelets of `nodes` (names) for their Summaries: one request per kubelet
/// endpoint, concurrently; an endpoint that fails is left out.
async fn sample(st: &AppState, nodes: &[String]) -> Sample {
    let mut by_endpoint: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes {
        let Some(o) = st.cache.get(&NODES, "", n) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&o.bytes) else {
            continue;
        };
        by_endpoint
            .entry(kubelet_url(&v))
            .or_default()
            .push(n.clone());
    }
    let asks = by_endpoint.into_iter().map(|(base, names)| {
        let url = match names.as_slice() {
            [one] => format!("{base}/stats/summary?node={one}"),
            _ => format!("{base}/stats/nodes"),
        };
        let req = st.http.get(url).timeout(KUBELET_TIMEOUT);
        async move {
            let resp = req.send().await.ok()?.error_for_status().ok()?;
            resp.json::<Value>().await.ok()
        }
    });
    let mut s = Sample::default();
    for v in futures::future::join_all(asks).await.into_iter().flatten() {
        match v.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().for_each(|x| add_summary(&mut s, x)),
            None => add_summary(&mut s, &v),
        }
    }
    if s.time.is_empty() {
        s.time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    s
}

/// CPU as metrics-server writes it: nanocores as a canonical DecimalSI quantity
/// (`123456789n`, `150m`, `1`; `0` when idle).
fn cpu_quantity(nanocores: i64) -> String {
    if nanocores == 0 {
        return "0".into();
    }
    let (mut m, mut suffix) = (nanocores, 0);
    while m % 1000 == 0 && suffix < 3 {
        m /= 1000;
        suffix += 1;
    }
    format!("{m}{}", ["n", "u", "m", ""][suffix])
}

/// Memory as metrics-server writes it: `Ki` when it divides, else bytes.
fn memory_quantity(bytes: i64) -> String {
    match bytes {
        b if b >= 1024 && b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
        b if b >= 1024 && b % 1024 == 0 => format!("{}Ki", b >> 10),
        b => b.to_string(),
    }
}

fn usage_json(u: Usage) -> Value {
    json!({"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.bytes)})
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta(name: &str, namespace: Option<&str>, labels: &BTreeMap<String, String>) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m["creationTimestamp"] = json!(now());
    if !labels.is_empty() {
        m["labels"] = json!(labels);
    }
    m
}

fn not_found(what: &str, name: &str, group: &str) -> ApiError {
    let mut e = ApiError::bad_request(format!("{what} \"{name}\" not found"));
    e.code = 404;
    e.reason = "NotFound".into();
    e.details = Some(Box::new(coxswain_api::status::Details {
        name: Some(name.to_string()),
        group: Some(group.to_string()).filter(|g| !g.is_empty()),
        kind: Some(what.split('.').next().unwrap_or(what).to_string()),
        causes: Vec::new(),
    }));
    e
}

/// The selectors of a request: labels, and fields among `metadata.name`/`metadata.namespace`.
fn selectors(q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    for (name, _, _) in &fields.terms {
        if !matches!(name.as_str(), "metadata.name" | "metadata.namespace") {
            return Err(ApiError::bad_request(format!(
                "\"{name}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )));
        }
    }
    Ok((labels, fields))
}

/// NodeMetrics of the nodes selected.
async fn node_metrics(
    st: &AppState,
    name: Option<&str>,
    q: &Query,
) -> Result<Vec<Value>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let nodes: Vec<_> = match name {
        Some(n) => vec![st
            .cache
            .get(&NODES, "", n)
            .ok_or_else(|| not_found("node", n, ""))?],
        None => st.cache.list(&NODES, &crate::cache::Filter::default()).0,
    };
    let nodes: Vec<_> = nodes
        .into_iter()
        .filter(|o| {
            labels.matches(&o.labels)
                && fields.matches(|f| (f == "metadata.name").then(|| o.name.clone()))
        })
        .collect();
    let names: Vec<String> = nodes.iter().map(|o| o.name.clone()).collect();
    let s = sample(st, &names).await;
    let mut out = Vec::new();
    for o in &nodes {
        if let Some(u) = s.nodes.get(&o.name) {
            out.push(
                json!({"metadata": meta(&o.name, None, &o.labels), "timestamp": s.time,
                "window": WINDOW, "usage": usage_json(*u)}),
            );
        }
    }
    if let (Some(n), true) = (name, out.is_empty()) {
        return Err(not_found("nodemetrics.metrics.k8s.io", n, GROUP));
    }
    Ok(out)
}

/// PodMetrics of the Running pods selected.
async fn pod_metrics(
    st: &AppState,
    namespace: Option<&str>,
    name: Option<&str>,
    q: &Query,
) -> Result<Vec<Value>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let running = |o: &crate::cache::Obj| o.field("status.phase").as_deref() == Some("Running");
    let pods: Vec<_> = match (namespace, name) {
        (Some(ns), Some(n)) => vec![st
            .cache
            .get(&PODS, ns, n)
            .filter(|o| running(o))
            .ok_or_else(|| not_found(PODS.plural, n, ""))?],
        _ => {
            let f = crate::cache::Filter {
                namespace: namespace.map(str::to_string),
                ..Default::default()
            };
            st.cache.list(&PODS, &f).0
        }
    };
    let pods: Vec<_> = pods
        .into_iter()
        .filter(|o| {
            running(o)
                && labels.matches(&o.labels)
                && fields.matches(|f| match f {
                    "metadata.name" => Some(o.name.clone()),
                    "metadata.namespace" => Some(o.namespace.clone()),
                    _ => None,
                })
        })
        .collect();
    let mut nodes: Vec<String> = pods
        .iter()
        .filter_map(|o| o.field("spec.nodeName"))
        .collect();
    nodes.sort();
    nodes.dedup();
    let s = sample(st, &nodes).await;
    let mut out = Vec::new();
    for o in &pods {
        let Some(containers) = s.pods.get(&(o.namespace.clone(), o.name.clone())) else {
            continue;
        };
        let mut cs: Vec<Value> = containers
            .iter()
            .map(|(n, u)| json!({"name": n, "usage": usage_json(*u)}))
            .collect();
        cs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        out.push(
            json!({"metadata": meta(&o.name, Some(&o.namespace), &o.labels),
            "timestamp": s.time, "window": WINDOW, "containers": cs}),
        );
    }
    if let (Some(ns), Some(n), true) = (namespace, name, out.is_empty()) {
        return Err(not_found(
            "podmetrics.metrics.k8s.io",
            &format!("{ns}/{n}"),
            GROUP,
        ));
    }
    Ok(out)
}

/// The sum of a pod's containers' usage, or a node's usage, as quantities' raw numbers.
fn total(v: &Value) -> (i64, i64) {
    let parse = |u: &Value| {
        (
            coxswain_api::quantity::cpu_nanos(u["cpu"].as_str().unwrap_or("0")).unwrap_or(0),
            coxswain_api::quantity::bytes(u["memory"].as_str().unwrap_or("0")).unwrap_or(0),
        )
    };
    match v["containers"].as_array() {
        Some(cs) => cs
            .iter()
            .map(|c| parse(&c["usage"]))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        None => parse(&v["usage"]),
    }
}

/// The Table metrics-server answers `kubectl get podmetrics|nodemetrics` with.
fn table(items: &[Value]) -> Value {
    if items.is_empty() {
        return json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": [], "rows": []});
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|v| {
            let (cpu, mem) = total(v);
            json!({"cells": [v["metadata"]["name"], cpu_quantity(cpu), memory_quantity(mem), v["window"]],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
            {"name": "cpu", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "memory", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0}],
        "rows": rows})
}

/// Serve a request under `/apis/metrics.k8s.io`.
pub async fn serve(
    st: &AppState,
    method: &Method,
    path: &str,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["apis", _] => {
            let mut g = legacy_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            return Ok(value_response(200, &g));
        }
        ["apis", _, v, rest @ ..] if *v == VERSION => rest,
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return Ok(value_response(
            200,
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
                "resources": [
                    {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                    {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}]}),
        ));
    }
    let (plural, kind, items, one) = match rest {
        ["nodes"] => ("nodes", "NodeMetrics", None, None),
        ["nodes", n] => ("nodes", "NodeMetrics", None, Some(*n)),
        ["pods"] => ("pods", "PodMetrics", None, None),
        ["namespaces", ns, "pods"] => ("pods", "PodMetrics", Some(*ns), None),
        ["namespaces", ns, "pods", n] => ("pods", "PodMetrics", Some(*ns), Some(*n)),
        _ => return Err(ApiError::no_route()),
    };
    crate::request::get_only(method, q, &format!("{plural}.{GROUP}"))?;
    let mut found = if plural == "nodes" {
        node_metrics(st, one, q).await?
    } else {
        pod_metrics(st, items, one, q).await?
    };
    if wants_table(h) {
        return Ok(value_response(200, &table(&found)));
    }
    let api_version = format!("{GROUP}/{VERSION}");
    if one.is_some() {
        let mut v = found.pop().unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            let mut out = serde_json::Map::new();
            out.insert("kind".into(), json!(kind));
            out.insert("apiVersion".into(), json!(api_version));
            out.append(m);
            return Ok(value_response(200, &Value::Object(out)));
        }
    }
    Ok(value_response(
        200,
        &json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {}, "items": found}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_it_owns() {
        assert!(owns("/apis/metrics.k8s.io"));
        assert!(owns("/apis/metrics.k8s.io/v1beta1/pods"));
        assert!(!owns("/apis/metrics.k8s.io.example.com/v1"));
        assert!(!owns("/api/v1/pods"));
    }

    #[test]
    fn quantities_as_metrics_server_writes_them() {
        assert_eq!(cpu_quantity(123_456_789), "123456789n");
        assert_eq!(cpu_quantity(300_000_000), "300m");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(cpu_quantity(1_000_000_000), "1");
        assert_eq!(cpu_quantity(1_500_000), "1500u");
        assert_eq!(memory_quantity(4 << 20), "4Mi");
        assert_eq!(memory_quantity(4096000), "4000Ki");
        assert_eq!(memory_quantity(12345678), "12345678");
        let v = json!({"containers": [{"usage": {"cpu": "300m", "memory": "4Mi"}},
            {"usage": {"cpu": "1500000n", "memory": "1Ki"}}]});
        assert_eq!(total(&v), (301_500_000, (4 << 20) + 1024));
    }
}
