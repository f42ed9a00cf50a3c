//! The scheduler's view of the cluster: nodes with their pre-aggregated requests, fed by the
//! node and pod informers, plus pods the scheduler has bound but not yet seen bound
//! ("assumed"), so a node is never double-booked while the watch catches up.

use coxswain_api::quantity;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What scheduling needs to know about a pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// Requested millicores.
    pub cpu: i64,
    /// Requested bytes of memory.
    pub mem: i64,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Tolerates `node.kubernetes.io/unschedulable`.
    pub tolerates_unschedulable: bool,
    /// Controller owner UID (for spreading).
    pub owner: Option<String>,
}

impl PodInfo {
    /// Extract from a pod.
    pub fn from_pod(p: &Pod) -> PodInfo {
        let spec = p.spec.clone().unwrap_or_default();
        let mut cpu = 0;
        let mut mem = 0;
        for c in &spec.containers {
            if let Some(req) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
                cpu += req
                    .get("cpu")
                    .and_then(|q| quantity::cpu_millis(&q.0))
                    .unwrap_or(0);
                mem += req
                    .get("memory")
                    .and_then(|q| quantity::bytes(&q.0))
                    .unwrap_or(0);
            }
        }
        let tolerations = spec.tolerations.unwrap_or_default();
        let tolerates_unschedulable = tolerations.iter().any(|t| {
            t.key.as_deref() == Some("node.kubernetes.io/unschedulable")
                || (t.key.is_none() && t.operator.as_deref() == Some("Exists"))
        });
        PodInfo {
            cpu,
            mem,
            node_selector: spec.node_selector.unwrap_or_default(),
            tolerations,
            tolerates_unschedulable,
            owner: p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.clone()),
        }
    }
}

/// A node as the filters and scores see it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Ready condition is True.
    pub ready: bool,
    /// Cordoned.
    pub unschedulable: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// Allocatable millicores.
    pub alloc_cpu: i64,
    /// Allocatable bytes.
    pub alloc_mem: i64,
    /// Allocatable pod slots.
    pub alloc_pods: i64,
    /// Requested millicores of pods on it.
    pub req_cpu: i64,
    /// Requested bytes of pods on it.
    pub req_mem: i64,
    /// Requested millicores, counting request-less pods at a default (for scoring).
    pub req_cpu_scored: i64,
    /// Requested bytes, counting request-less pods at a default (for scoring).
    pub req_mem_scored: i64,
    /// Pods on it.
    pub pods: i64,
    /// Pods on it per controller owner UID.
    pub owners: HashMap<String, u32>,
}

impl NodeInfo {
    fn from_node(n: &Node) -> NodeInfo {
        let status = n.status.clone().unwrap_or_default();
        let spec = n.spec.clone().unwrap_or_default();
        let alloc = status.allocatable.unwrap_or_default();
        NodeInfo {
            name: n.metadata.name.clone().unwrap_or_default(),
            ready: status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            unschedulable: spec.unschedulable.unwrap_or(false),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            alloc_cpu: alloc
                .get("cpu")
                .and_then(|q| quantity::cpu_millis(&q.0))
                .unwrap_or(0),
            alloc_mem: alloc
                .get("memory")
                .and_then(|q| quantity::bytes(&q.0))
                .unwrap_or(0),
            alloc_pods: alloc
                .get("pods")
                .and_then(|q| q.0.parse().ok())
                .unwrap_or(110),
            ..Default::default()
        }
    }

    fn add(&mut self, p: &PodInfo, sign: i64) {
        self.req_cpu += sign * p.cpu;
        self.req_mem += sign * p.mem;
        self.req_cpu_scored += sign * if p.cpu == 0 { 100 } else { p.cpu };
        self.req_mem_scored += sign * if p.mem == 0 { 200 * 1024 * 1024 } else { p.mem };
        self.pods += sign;
        if let Some(o) = &p.owner {
            let e = self.owners.entry(o.clone()).or_insert(0);
            if sign > 0 {
                *e += 1;
            } else {
                *e = e.saturating_sub(1);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    nodes: BTreeMap<String, NodeInfo>,
    /// Pod key -> (node, info) for every pod counted on a node (bound or assumed).
    placed: HashMap<String, (String, PodInfo)>,
}

/// The cache; share behind an `Arc`.
#[derive(Default)]
pub struct SchedCache(Mutex<Inner>);

impl SchedCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node was added or changed.
    pub fn set_node(&self, n: &Node) {
        let mut g = self.lock();
        let mut info = NodeInfo::from_node(n);
        let name = info.name.clone();
        // Keep the aggregates: recompute from placed pods on this node.
        for (node, p) in g.placed.values() {
            if *node == name {
                info.add(p, 1);
            }
        }
        g.nodes.insert(name, info);
    }

    /// A node was deleted.
    pub fn remove_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    /// Count a pod on a node (bound, or assumed by us). Idempotent per pod key.
    pub fn place(&self, key: &str, node: &str, p: PodInfo) {
        let mut g = self.lock();
        if let Some((old_node, old)) = g.placed.remove(key) {
            if let Some(n) = g.nodes.get_mut(&old_node) {
                n.add(&old, -1);
            }
        }
        if let Some(n) = g.nodes.get_mut(node) {
            n.add(&p, 1);
        }
        g.placed.insert(key.to_string(), (node.to_string(), p));
    }

    /// Stop counting a pod (deleted, finished, or a failed bind).
    pub fn unplace(&self, key: &str) {
        let mut g = self.lock();
        if let Some((node, p)) = g.placed.remove(key) {
            if let Some(n) = g.nodes.get_mut(&node) {
                n.add(&p, -1);
            }
        }
    }

    /// Whether a pod is counted on some node.
    pub fn is_placed(&self, key: &str) -> bool {
        self.lock().placed.contains_key(key)
    }

    /// Run one scheduling decision over every node, under the cache lock (no copies: a
    /// decision is pure arithmetic on the aggregates).
    pub fn with_nodes<T>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &NodeInfo>, usize) -> T,
    ) -> T {
        let g = self.lock();
        let n = g.nodes.len();
        f(&mut g.nodes.values(), n)
    }
}
