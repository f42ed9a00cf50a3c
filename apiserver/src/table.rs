//! Server-side Tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the columns
//! kubectl prints for each resource, computed here as a real API server does.

use crate::cache::Obj;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::At;
use serde_json::{json, Value};
use std::sync::Arc;

/// kubectl's human duration (`45s`, `3m12s`, `5h`, `2d3h`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / (24 * 365))
}

fn age(ts: &Value) -> String {
    match ts
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => {
            human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        }
        None => "<unknown>".into(),
    }
}

fn s(v: &Value, p: &str) -> String {
    match v.at(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn n(v: &Value, p: &str) -> i64 {
    v.at(p).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: String) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x
    }
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" },
        "description": format!("{name} of the object."), "priority": priority})
}

fn containers_images_selector(v: &Value) -> [String; 3] {
    let cs = v
        .at("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names = cs
        .iter()
        .map(|c| s(c, "/name"))
        .collect::<Vec<_>>()
        .join(",");
    let images = cs
        .iter()
        .map(|c| s(c, "/image"))
        .collect::<Vec<_>>()
        .join(",");
    let sel = v
        .at("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    [names, images, sel]
}

/// What `kubectl get pods` shows as STATUS and RESTARTS (kubectl's `printPod` rules:
/// `Init:N/M` or `Init:<reason>` while initializing, the last container's waiting or
/// terminated reason, `Running`/`NotReady` when a container still runs, `Terminating`).
pub fn pod_status_and_restarts(v: &Value) -> (String, String) {
    let mut reason = s(v, "/status/phase");
    let r = s(v, "/status/reason");
    if !r.is_empty() {
        reason = r;
    }
    let list = |p: &str| {
        v.at(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    fn note_restart(c: &Value, restarts: &mut i64, last: &mut Option<String>) {
        *restarts += n(c, "/restartCount");
        if let Some(t) = c
            .at("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
        {
            if last.as_deref().is_none_or(|cur| t > cur) {
                *last = Some(t.to_string());
            }
        }
    }
    let init = list("/status/initContainerStatuses");
    let init_total = v
        .at("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in init.iter().enumerate() {
        note_restart(c, &mut restarts, &mut last_restart);
        let code = c.at("/state/terminated/exitCode").and_then(Value::as_i64);
        let t = s(c, "/state/terminated/reason");
        let w = s(c, "/state/waiting/reason");
        match code {
            Some(0) => continue,
            Some(code) => {
                reason = if t.is_empty() {
                    format!("Init:ExitCode:{code}")
                } else {
                    format!("Init:{t}")
                };
            }
            None if !w.is_empty() && w != "PodInitializing" => reason = format!("Init:{w}"),
            None => reason = format!("Init:{i}/{init_total}"),
        }
        initializing = true;
        break;
    }
    let initialized = v
        .at("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        restarts = 0;
        last_restart = None;
        let mut running = false;
        for c in list("/status/containerStatuses").iter().rev() {
            note_restart(c, &mut restarts, &mut last_restart);
            let w = s(c, "/state/waiting/reason");
            let t = s(c, "/state/terminated/reason");
            if !w.is_empty() {
                reason = w;
            } else if !t.is_empty() {
                reason = t;
            } else if let Some(code) = c.at("/state/terminated/exitCode") {
                reason = format!("ExitCode:{code}");
            } else if c.at("/state/running").is_some() && c["ready"].as_bool() == Some(true) {
                running = true;
            }
        }
        if reason == "Completed" && running {
            let ready = v
                .at("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }
    let phase = s(v, "/status/phase");
    if v.at("/metadata/deletionTimestamp").is_some() {
        if s(v, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(t) => format!("{restarts} ({} ago)", age(&Value::String(t))),
        None => restarts.to_string(),
    };
    (reason, restarts)
}

fn columns_and_cells(r: &ResourceInfo, v: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = s(v, "/metadata/name");
    let a = age(&v["metadata"]["creationTimestamp"]);
    match r.plural {
        "pods" => {
            let statuses = v
                .at("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = v
                .at("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let (status, restarts) = pod_status_and_restarts(v);
            (
                vec![
                    col("Name", "string", 0),
                    col("Ready", "string", 0),
                    col("Status", "string", 0),
                    col("Restarts", "string", 0),
                    col("Age", "string", 0),
                    col("IP", "string", 1),
                    col("Node", "string", 1),
                    col("Nominated Node", "string", 1),
                    col("Readiness Gates", "string", 1),
                ],
                vec![
                    json!(name),
                    json!(format!("{ready}/{total}")),
                    json!(status),
                    json!(restarts),
                    json!(a),
                    json!(or_none(s(v, "/status/podIP"))),
                    json!(or_none(s(v, "/spec/nodeName"))),
                    json!(or_none(s(v, "/status/nominatedNodeName"))),
                    json!("<none>"),
                ],
            )
        }
        "deployments" => {
            let [c, i, sel] = containers_images_selector(v);
            (
                vec![
                    col("Name", "string", 0),
                    col("Ready", "string", 0),
                    col("Up-to-date", "integer", 0),
                    col("Available", "integer", 0),
                    col("Age", "string", 0),
                    col("Containers", "string", 1),
                    col("Images", "string", 1),
                    col("Selector", "string", 1),
                ],
                vec![
                    json!(name),
                    json!(format!(
                        "{}/{}",
                        n(v, "/status/readyReplicas"),
                        n(v, "/spec/replicas")
                    )),
                    json!(n(v, "/status/updatedReplicas")),
                    json!(n(v, "/status/availableReplicas")),
                    json!(a),
                    json!(c),
                    json!(i),
                    json!(sel),
                ],
            )
        }
        "replicasets" => {
            let [c, i, sel] = containers_images_selector(v);
            (
                vec![
                    col("Name", "string", 0),
                    col("Desired", "integer", 0),
                    col("Current", "integer", 0),
                    col("Ready", "integer", 0),
                    col("Age", "string", 0),
                    col("Containers", "string", 1),
                    col("Images", "string", 1),
                    col("Selector", "string", 1),
                ],
                vec![
                    json!(name),
                    json!(n(v, "/spec/replicas")),
                    json!(n(v, "/status/replicas")),
                    json!(n(v, "/status/readyReplicas")),
                    json!(a),
                    json!(c),
                    json!(i),
                    json!(sel),
                ],
            )
        }
        "nodes" => {
            let ready = v
                .at("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| match c["status"].as_str() {
                    Some("True") => "Ready",
                    _ => "NotReady",
                })
                .unwrap_or("Unknown");
            let mut status = ready.to_string();
            if v.at("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles = v
                .at("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                v.at("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .map(|x| s(x, "/address"))
                    .unwrap_or_default()
            };
            (
                vec![
                    col("Name", "string", 0),
                    col("Status", "string", 0),
                    col("Roles", "string", 0),
                    col("Age", "string", 0),
                    col("Version", "string", 0),
                    col("Internal-IP", "string", 1),
                    col("External-IP", "string", 1),
                    col("OS-Image", "string", 1),
                    col("Kernel-Version", "string", 1),
                    col("Container-Runtime", "string", 1),
                ],
                vec![
                    json!(name),
                    json!(status),
                    json!(or_none(roles)),
                    json!(a),
                    json!(s(v, "/status/nodeInfo/kubeletVersion")),
                    json!(or_none(addr("InternalIP"))),
                    json!(or_none(addr("ExternalIP"))),
                    json!(s(v, "/status/nodeInfo/osImage")),
                    json!(s(v, "/status/nodeInfo/kernelVersion")),
                    json!(s(v, "/status/nodeInfo/containerRuntimeVersion")),
                ],
            )
        }
        "namespaces" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            vec![json!(name), json!(s(v, "/status/phase")), json!(a)],
        ),
        "events" => {
            let last = [
                s(v, "/lastTimestamp"),
                s(v, "/eventTime"),
                s(v, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|x| !x.is_empty())
            .unwrap_or_default();
            let kind = s(v, "/involvedObject/kind").to_ascii_lowercase();
            (
                vec![
                    col("Last Seen", "string", 0),
                    col("Type", "string", 0),
                    col("Reason", "string", 0),
                    col("Object", "string", 0),
                    col("Subobject", "string", 1),
                    col("Source", "string", 1),
                    col("Message", "string", 0),
                    col("First Seen", "string", 1),
                    col("Count", "string", 1),
                    col("Name", "string", 1),
                ],
                vec![
                    json!(age(&json!(last))),
                    json!(s(v, "/type")),
                    json!(s(v, "/reason")),
                    json!(format!("{kind}/{}", s(v, "/involvedObject/name"))),
                    json!(s(v, "/involvedObject/fieldPath")),
                    json!(s(v, "/source/component")),
                    json!(s(v, "/message")),
                    json!(age(&v["firstTimestamp"])),
                    json!(n(v, "/count").to_string()),
                    json!(name),
                ],
            )
        }
        "configmaps" => {
            let count = |k: &str| v.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            (
                vec![
                    col("Name", "string", 0),
                    col("Data", "integer", 0),
                    col("Age", "string", 0),
                ],
                vec![
                    json!(name),
                    json!(count("data") + count("binaryData")),
                    json!(a),
                ],
            )
        }
        "leases" => (
            vec![
                col("Name", "string", 0),
                col("Holder", "string", 0),
                col("Age", "string", 0),
            ],
            vec![json!(name), json!(s(v, "/spec/holderIdentity")), json!(a)],
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            vec![json!(name), json!(a)],
        ),
    }
}

/// A Table of parsed objects. Each row carries the object's metadata, or the whole object when
/// the client asked for `includeObject=Object` (kubectl does for `--sort-by`).
pub fn table_of_values(r: &ResourceInfo, objs: &[Value], rev: u64, full: bool) -> Value {
    let mut columns = None;
    let rows: Vec<Value> = objs
        .iter()
        .map(|v| {
            let (cols, cells) = columns_and_cells(r, v);
            columns.get_or_insert(cols);
            let object = if full {
                v.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": v["metadata"]})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let columns = columns.unwrap_or_else(|| columns_and_cells(r, &json!({"metadata": {}})).0);
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rev.to_string()},
        "columnDefinitions": columns, "rows": rows})
}

/// A Table of cached objects.
pub fn table(r: &ResourceInfo, objs: &[Arc<Obj>], rev: u64, full: bool) -> Value {
    let vals: Vec<Value> = objs
        .iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect();
    table_of_values(r, &vals, rev, full)
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }
}
