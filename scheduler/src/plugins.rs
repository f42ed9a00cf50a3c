//! Filter and score plugins. A filter says why a node cannot take a pod (the reason becomes
//! the user's `FailedScheduling` message); a score ranks the nodes that can (0..=100).

use crate::cache::{NodeInfo, PodInfo};

/// Can the node run the pod? `Err(reason)` if not.
pub trait Filter: Send + Sync {
    /// Plugin name.
    fn name(&self) -> &'static str;
    /// Check one node.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), String>;
}

/// How good is the node for the pod (0..=100)?
pub trait Score: Send + Sync {
    /// Plugin name.
    fn name(&self) -> &'static str;
    /// Score one feasible node.
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64;
}

/// The node reports Ready.
pub struct NodeReady;
impl Filter for NodeReady {
    fn name(&self) -> &'static str {
        "NodeReady"
    }
    fn filter(&self, _: &PodInfo, n: &NodeInfo) -> Result<(), String> {
        if n.ready {
            Ok(())
        } else {
            Err("node(s) were not ready".into())
        }
    }
}

/// The node is not cordoned.
pub struct NodeUnschedulable;
impl Filter for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<(), String> {
        if n.unschedulable && !p.tolerates_unschedulable {
            Err("node(s) were unschedulable".into())
        } else {
            Ok(())
        }
    }
}

/// The pod's nodeSelector matches the node's labels.
pub struct NodeSelector;
impl Filter for NodeSelector {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<(), String> {
        if p.node_selector
            .iter()
            .all(|(k, v)| n.labels.get(k) == Some(v))
        {
            Ok(())
        } else {
            Err("node(s) didn't match Pod's node affinity/selector".into())
        }
    }
}

/// NoSchedule/NoExecute taints must be tolerated.
pub struct TaintToleration;
impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<(), String> {
        for t in &n.taints {
            if t.effect == "PreferNoSchedule" {
                continue;
            }
            let tolerated = p.tolerations.iter().any(|tol| {
                let key_ok = tol
                    .key
                    .as_deref()
                    .is_none_or(|k| k.is_empty() || k == t.key);
                let op_exists = tol.operator.as_deref() == Some("Exists");
                let val_ok = op_exists
                    || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
                let eff_ok = tol
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == t.effect);
                key_ok && val_ok && eff_ok && (tol.key.is_some() || op_exists)
            });
            if !tolerated {
                return Err(format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or("")
                ));
            }
        }
        Ok(())
    }
}

/// Enough allocatable cpu, memory and pod slots.
pub struct Fit;
impl Filter for Fit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<(), String> {
        if n.pods + 1 > n.alloc_pods {
            return Err("Too many pods".into());
        }
        if n.req_cpu + p.cpu > n.alloc_cpu {
            return Err("Insufficient cpu".into());
        }
        if n.req_mem + p.mem > n.alloc_mem {
            return Err("Insufficient memory".into());
        }
        Ok(())
    }
}

/// Prefer the node with the most free cpu and memory after placing the pod.
pub struct LeastAllocated;
impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesLeastAllocated"
    }
    fn score(&self, p: &PodInfo, n: &NodeInfo) -> i64 {
        let free = |used: i64, cap: i64| {
            if cap <= 0 {
                0
            } else {
                ((cap - used).max(0) * 100) / cap
            }
        };
        // Pods without requests still count a little, as kube-scheduler's defaults do.
        let cpu = if p.cpu == 0 { 100 } else { p.cpu };
        let mem = if p.mem == 0 { 200 * 1024 * 1024 } else { p.mem };
        (free(n.req_cpu_scored + cpu, n.alloc_cpu) + free(n.req_mem_scored + mem, n.alloc_mem)) / 2
    }
}

/// Spread the pods of one owner across nodes.
pub struct SelectorSpread;
impl Score for SelectorSpread {
    fn name(&self) -> &'static str {
        "SelectorSpread"
    }
    fn score(&self, p: &PodInfo, n: &NodeInfo) -> i64 {
        let Some(owner) = &p.owner else { return 100 };
        let same = n.owners.get(owner).copied().unwrap_or(0);
        100 / (1 + same as i64)
    }
}

/// Filter plugins, run in order; the first that rejects gives the reason.
pub type Filters = Vec<Box<dyn Filter>>;
/// Score plugins with their weights.
pub type Scores = Vec<(Box<dyn Score>, i64)>;

/// The default plugin set.
pub fn defaults() -> (Filters, Scores) {
    (
        vec![
            Box::new(NodeUnschedulable),
            Box::new(NodeReady),
            Box::new(NodeSelector),
            Box::new(TaintToleration),
            Box::new(Fit),
        ],
        vec![(Box::new(LeastAllocated), 1), (Box::new(SelectorSpread), 2)],
    )
}
