//! Filter and score plugins, one module each, in the shape of kube-scheduler's framework. A
//! filter says why a node cannot take a pod (the reason becomes the user's
//! `FailedScheduling` message); a score ranks the feasible nodes, then may normalise its
//! scores to 0..=100 across them. The traits and the per-attempt state ([`Cycle`]) are in
//! `crate::framework`; [`defaults`] is the default plugin set.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_ready;
pub mod node_unschedulable;
pub mod resources;
pub mod selector_spread;
pub mod taint_toleration;
pub mod topology_spread;
pub mod volume_binding;

pub use crate::framework::{normalize_max, normalize_min_max, Cycle, Filter, Score};

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
            Box::new(volume_binding::VolumeBinding),
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

/// Pods and nodes for the plugins' unit tests.
#[cfg(test)]
pub mod testing {
    use crate::framework::{NodeInfo, PodInfo};
    use serde_json::Value;

    /// A Ready node with 4 cpus, 8 GiB, 110 pod slots, and these labels.
    pub fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            alloc_cpu: 4000,
            alloc_mem: 8 << 30,
            alloc_pods: 110,
            ..Default::default()
        }
    }

    /// A pod from its JSON `spec` (and labels), as the scheduler reads it.
    pub fn pod(spec: Value, labels: Value) -> PodInfo {
        let p = serde_json::json!({"metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": spec});
        PodInfo::from_pod(&serde_json::from_value(p).expect("a pod"))
    }
}
