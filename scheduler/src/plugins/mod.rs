//! Filter and score plugins, one module each, in the shape of kube-scheduler's framework. A
//! filter says why a node cannot take a pod (the reason becomes the user's
//! `FailedScheduling` message); a score ranks the feasible nodes, then may normalise its
//! scores to 0..=100 across them. [`Cycle`] carries what one attempt computed once for all
//! nodes (PreFilter state): per-domain counts for inter-pod affinity and topology spread.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_ready;
pub mod node_unschedulable;
pub mod resources;
pub mod selector_spread;
pub mod taint_toleration;
pub mod topology_spread;

use crate::cache::{NodeInfo, PodInfo};
use std::collections::{HashMap, HashSet};

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

/// Filter plugins, run in order; the first that rejects gives the reason.
pub type Filters = Vec<Box<dyn Filter>>;
/// Score plugins with their weights.
pub type Scores = Vec<(Box<dyn Score>, i64)>;

/// The default plugin set (kube-scheduler's default weights where it has the plugin).
pub fn defaults() -> (Filters, Scores) {
    (
        vec![
            Box::new(node_unschedulable::NodeUnschedulable),
            Box::new(node_ready::NodeReady),
            Box::new(node_affinity::NodeAffinity),
            Box::new(taint_toleration::TaintToleration),
            Box::new(resources::Fit),
            Box::new(inter_pod_affinity::InterPodAffinity),
            Box::new(topology_spread::PodTopologySpread),
        ],
        vec![
            (Box::new(resources::LeastAllocated), 1),
            (Box::new(node_affinity::NodeAffinity), 2),
            (Box::new(taint_toleration::TaintToleration), 3),
            (Box::new(inter_pod_affinity::InterPodAffinity), 2),
            (Box::new(topology_spread::PodTopologySpread), 2),
            (Box::new(selector_spread::SelectorSpread), 2),
        ],
    )
}
