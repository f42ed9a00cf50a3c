//! The Summary API (`GET /stats/summary`, as the kubelet's stats/v1alpha1 shape): what each
//! running container uses (CPU in nanocores, memory working set in bytes) from its behaviour
//! (`cpu`, `memory`: a constant or a ramp since it started; unscripted containers idle at
//! 1m and 4Mi), each pod's sum, and each node's (its pods plus the system's share). The API
//! server's metrics.k8s.io (`kubectl top`, the HPA controller) reads it.

use crate::behaviour::{memory_bytes, nanocores, Behaviour, Usage};
use crate::logserver::Nodes;
use crate::runtime::Ts;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

/// An unscripted container's CPU: 1m.
const IDLE_NANOCORES: i64 = 1_000_000;
/// An unscripted container's memory: 4Mi.
const IDLE_BYTES: i64 = 4 << 20;
/// What a node's system daemons use besides its pods: 50m.
const SYSTEM_NANOCORES: i64 = 50_000_000;
/// ... and 400Mi.
const SYSTEM_BYTES: i64 = 400 << 20;

/// One running container's usage.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// When it started.
    pub started: Ts,
    /// CPU, nanocores.
    pub nanocores: i64,
    /// Memory working set, bytes.
    pub bytes: i64,
}

impl ContainerUsage {
    /// What container `name`, behaving as `b`, uses `elapsed_ms` after it started.
    pub fn of(name: &str, started: Ts, b: &Behaviour, elapsed_ms: u64) -> ContainerUsage {
        let amount = |u: &Option<Usage>, parse: fn(&str) -> Option<i64>, idle: i64| {
            u.as_ref()
                .and_then(|u| u.at(elapsed_ms, parse))
                .unwrap_or(idle)
        };
        ContainerUsage {
            name: name.to_string(),
            started,
            nanocores: amount(&b.cpu, nanocores, IDLE_NANOCORES),
            bytes: amount(&b.memory, memory_bytes, IDLE_BYTES),
        }
    }
}

/// One pod's running containers' usage.
#[derive(Debug, Clone)]
pub struct PodUsage {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Its running containers.
    pub containers: Vec<ContainerUsage>,
}

fn cpu_memory(now: Ts, nanocores: i64, bytes: i64) -> (Value, Value) {
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (
        json!({"time": time, "usageNanoCores": nanocores}),
        json!({"time": time, "workingSetBytes": bytes, "usageBytes": bytes}),
    )
}

fn rfc3339(t: Ts) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One node's Summary at `now`.
pub fn summary(node: &str, started: Ts, pods: &[PodUsage], now: Ts) -> Value {
    let mut node_cpu = SYSTEM_NANOCORES;
    let mut node_mem = SYSTEM_BYTES;
    let pods: Vec<Value> = pods
        .iter()
        .map(|p| {
            let cpu: i64 = p.containers.iter().map(|c| c.nanocores).sum();
            let mem: i64 = p.containers.iter().map(|c| c.bytes).sum();
            node_cpu = node_cpu.saturating_add(cpu);
            node_mem = node_mem.saturating_add(mem);
            let first = p.containers.iter().map(|c| c.started).min().unwrap_or(now);
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|c| {
                    let (cpu, memory) = cpu_memory(now, c.nanocores, c.bytes);
                    json!({"name": c.name, "startTime": rfc3339(c.started), "cpu": cpu, "memory": memory})
                })
                .collect();
            let (cpu, memory) = cpu_memory(now, cpu, mem);
            json!({"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": rfc3339(first), "containers": containers, "cpu": cpu, "memory": memory})
        })
        .collect();
    let (cpu, memory) = cpu_memory(now, node_cpu, node_mem);
    json!({"node": {"nodeName": node, "startTime": rfc3339(started), "cpu": cpu, "memory": memory},
        "pods": pods})
}

/// `GET /stats/summary[?node=NAME]`: one node's Summary (the process's only node when none is
/// named).
pub async fn node_summary(
    State(nodes): State<Nodes>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = chrono::Utc::now();
    let pm = match q.get("node") {
        Some(n) => nodes.get(n),
        None if nodes.len() == 1 => nodes.values().next(),
        None => None,
    };
    match pm {
        Some(pm) => Json(summary(&pm.node, pm.started, &pm.usage(now), now)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such node here; name one with ?node=NAME",
        )
            .into_response(),
    }
}

/// `GET /stats/nodes`: every node of this process, a list of Summaries (a process simulating
/// many nodes answers for all of them at once).
pub async fn all_summaries(State(nodes): State<Nodes>) -> Response {
    let now = chrono::Utc::now();
    let items: Vec<Value> = nodes
        .values()
        .map(|pm| summary(&pm.node, pm.started, &pm.usage(now), now))
        .collect();
    Json(json!({ "items": items })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_pods_and_node() {
        let now = chrono::Utc::now();
        let b = Behaviour {
            cpu: Some(Usage::Constant(crate::behaviour::Amount("300m".into()))),
            ..Default::default()
        };
        let pods = vec![PodUsage {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u".into(),
            containers: vec![
                ContainerUsage::of("a", now, &b, 0),
                ContainerUsage::of("b", now, &Behaviour::default(), 0),
            ],
        }];
        let s = summary("node-1", now, &pods, now);
        assert_eq!(s["pods"][0]["cpu"]["usageNanoCores"], 301_000_000);
        assert_eq!(s["pods"][0]["memory"]["workingSetBytes"], 2 * IDLE_BYTES);
        assert_eq!(
            s["node"]["cpu"]["usageNanoCores"],
            301_000_000 + SYSTEM_NANOCORES
        );
        assert_eq!(s["pods"][0]["containers"][1]["name"], "b");
    }
}
