//! The scheduler's vocabulary, shared by the cache, the plugins and the algorithm (and
//! depending on none of them): what scheduling reads of a pod ([`PodInfo`]) and of a node
//! ([`NodeInfo`]), one attempt's precomputed state ([`Cycle`], kube-scheduler's PreFilter
//! state), the [`Filter`] and [`Score`] plugin traits, score normalisation, and whether a
//! pod's node selection (nodeSelector, required node affinity) allows a node.

use coxswain_api::quantity;
use coxswain_api::selector::LabelSelector;
use k8s_openapi::api::core::v1::{
    Node, NodeAffinity, NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One inter-pod (anti-)affinity term: pods matching `selector` in `namespaces`, counted per
/// value of the node label `topology_key`.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// `labelSelector`; `None` matches no pod.
    pub selector: Option<LabelSelector>,
    /// Namespaces the term looks in; empty means every namespace.
    pub namespaces: Vec<String>,
    /// The node label that defines a domain (`kubernetes.io/hostname`, a zone label...).
    pub topology_key: String,
}

impl AffinityTerm {
    pub fn from_k8s(t: &PodAffinityTerm, own_ns: &str) -> AffinityTerm {
        let all_ns = t
            .namespace_selector
            .as_ref()
            .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none());
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && !all_ns {
            namespaces.push(own_ns.to_string());
        }
        AffinityTerm {
            selector: t
                .label_selector
                .as_ref()
                .and_then(|s| LabelSelector::from_k8s(s).ok()),
            namespaces,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether a pod is one this term counts.
    pub fn matches(&self, p: &PodInfo) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(&p.namespace))
            && self.selector.as_ref().is_some_and(|s| s.matches(&p.labels))
    }
}

/// One `topologySpreadConstraints` entry.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    /// `maxSkew`.
    pub max_skew: i64,
    /// `topologyKey`.
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (a filter) rather than `ScheduleAnyway` (a score).
    pub hard: bool,
    /// `labelSelector`; `None` matches no pod.
    pub selector: Option<LabelSelector>,
    /// `minDomains`.
    pub min_domains: usize,
}

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
    /// The owner's number in the cache (set when the pod is placed).
    pub owner_id: Option<u32>,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `affinity.nodeAffinity`.
    pub node_affinity: Option<NodeAffinity>,
    /// Required pod affinity terms.
    pub affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub anti_affinity: Vec<AffinityTerm>,
    /// Preferred terms with their weight (negative for anti-affinity).
    pub preferred: Vec<(i64, AffinityTerm)>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.preemptionPolicy: Never`.
    pub preempt_never: bool,
    /// `status.startTime` (RFC 3339), if started.
    pub start_time: Option<String>,
    /// Being deleted (`deletionTimestamp` set).
    pub terminating: bool,
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
        let ns = p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let aff = spec.affinity.clone().unwrap_or_default();
        let pa = aff.pod_affinity.unwrap_or_default();
        let paa = aff.pod_anti_affinity.unwrap_or_default();
        let terms = |ts: Option<Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.iter()
                .flatten()
                .map(|t| AffinityTerm::from_k8s(t, &ns))
                .collect()
        };
        let preferred = pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .map(|w| {
                (
                    w.weight as i64,
                    AffinityTerm::from_k8s(&w.pod_affinity_term, &ns),
                )
            })
            .chain(
                paa.preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|w| {
                        (
                            -(w.weight as i64),
                            AffinityTerm::from_k8s(&w.pod_affinity_term, &ns),
                        )
                    }),
            )
            .collect();
        let spread = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| SpreadConstraint {
                max_skew: c.max_skew.max(1) as i64,
                topology_key: c.topology_key.clone(),
                hard: c.when_unsatisfiable == "DoNotSchedule",
                selector: c
                    .label_selector
                    .as_ref()
                    .and_then(|s| LabelSelector::from_k8s(s).ok()),
                min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
            })
            .collect();
        PodInfo {
            cpu,
            mem,
            namespace: ns.clone(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            node_affinity: aff.node_affinity,
            affinity: terms(pa.required_during_scheduling_ignored_during_execution),
            anti_affinity: terms(paa.required_during_scheduling_ignored_during_execution),
            preferred,
            spread,
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
            owner_id: None,
            priority: spec.priority.unwrap_or(0),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            start_time: p
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.to_rfc3339()),
            terminating: p.metadata.deletion_timestamp.is_some(),
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
    /// Pods on it per controller owner (numbered by the cache: a score reads this for
    /// every node it looks at, so it is a short list of integers, not a map of UIDs).
    pub owners: Vec<(u32, u32)>,
}

impl NodeInfo {
    pub fn from_node(n: &Node) -> NodeInfo {
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

    pub fn add(&mut self, p: &PodInfo, sign: i64) {
        self.req_cpu += sign * p.cpu;
        self.req_mem += sign * p.mem;
        self.req_cpu_scored += sign * if p.cpu == 0 { 100 } else { p.cpu };
        self.req_mem_scored += sign * if p.mem == 0 { 200 * 1024 * 1024 } else { p.mem };
        self.pods += sign;
        if let Some(id) = p.owner_id {
            match self.owners.iter().position(|(o, _)| *o == id) {
                Some(i) if sign > 0 => self.owners[i].1 += 1,
                Some(i) => {
                    self.owners[i].1 = self.owners[i].1.saturating_sub(1);
                    if self.owners[i].1 == 0 {
                        self.owners.swap_remove(i);
                    }
                }
                None if sign > 0 => self.owners.push((id, 1)),
                None => {}
            }
        }
    }

    /// Pods on it of the owner numbered `id`.
    pub fn owned_by(&self, id: u32) -> u32 {
        self.owners
            .iter()
            .find(|(o, _)| *o == id)
            .map_or(0, |(_, n)| *n)
    }
}

/// One scheduling attempt's state shared by the plugins.
pub struct Cycle<'a> {
    /// The pod being scheduled.
    pub pod: &'a PodInfo,
    /// Per required affinity term: domain value -> matching pods.
    pub affinity: Vec<HashMap<String, i64>>,
    /// Per required anti-affinity term: domain value -> matching pods.
    pub anti_affinity: Vec<HashMap<String, i64>>,
    /// Per preferred term (same order as `PodInfo::preferred`): domain value -> matching pods.
    pub preferred: Vec<HashMap<String, i64>>,
    /// (topology key, value) domains where an existing pod's anti-affinity forbids this pod.
    pub forbidden: HashSet<(String, String)>,
    /// Per spread constraint: every eligible domain -> matching pods (zeros included).
    pub spread: Vec<HashMap<String, i64>>,
    /// The number the cache gave the pod's controller owner, if any of its pods is placed.
    pub owner_id: Option<u32>,
    /// What the pod's PersistentVolumeClaims demand of a node (none without claims).
    pub volumes: Option<&'a crate::volumes::Check>,
}

impl<'a> Cycle<'a> {
    /// An empty state for `pod`.
    pub fn new(pod: &'a PodInfo) -> Cycle<'a> {
        Cycle {
            pod,
            affinity: Vec::new(),
            anti_affinity: Vec::new(),
            preferred: Vec::new(),
            forbidden: HashSet::new(),
            spread: Vec::new(),
            owner_id: None,
            volumes: None,
        }
    }
}

/// Can the node run the pod? `Err(reason)` if not.
pub trait Filter: Send + Sync {
    /// Plugin name.
    fn name(&self) -> &'static str;
    /// Check one node.
    fn filter(&self, c: &Cycle, node: &NodeInfo) -> Result<(), String>;
    /// Whether evicting lower-priority pods could lift this rejection (kube-scheduler's
    /// `Unschedulable` as opposed to `UnschedulableAndUnresolvable`; the preemption part of
    /// the message).
    fn preemption_could_help(&self, _reason: &str) -> bool {
        false
    }
}

/// How good is a feasible node for the pod?
pub trait Score: Send + Sync {
    /// Plugin name.
    fn name(&self) -> &'static str;
    /// Score one feasible node.
    fn score(&self, c: &Cycle, node: &NodeInfo) -> i64;
    /// Map the raw scores of all feasible nodes onto 0..=100 (default: already there).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// kube-scheduler's `DefaultNormalizeScore`: scale so the best is 100 (or, reversed, so the
/// lowest raw score gets 100).
pub fn normalize_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        let v = if max > 0 { *s * 100 / max } else { 0 };
        *s = if reverse { 100 - v } else { v };
    }
}

/// Min-max scaling onto 0..=100 (for scores that may be negative).
pub fn normalize_min_max(scores: &mut [i64]) {
    let (min, max) = (
        scores.iter().copied().min().unwrap_or(0),
        scores.iter().copied().max().unwrap_or(0),
    );
    for s in scores.iter_mut() {
        *s = if max > min {
            (*s - min) * 100 / (max - min)
        } else {
            0
        };
    }
}

/// Whether a node selector term matches a node (an empty term matches nothing).
pub fn term_matches(t: &NodeSelectorTerm, n: &NodeInfo) -> bool {
    coxswain_api::placement::term_matches(t, &n.labels, &n.name)
}

/// Whether the pod's nodeSelector and required node affinity allow the node.
pub fn node_selection_matches(p: &PodInfo, n: &NodeInfo) -> bool {
    if !p
        .node_selector
        .iter()
        .all(|(k, v)| n.labels.get(k) == Some(v))
    {
        return false;
    }
    let required = p.node_affinity.as_ref().and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, n)))
}
