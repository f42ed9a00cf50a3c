//! The scheduling algorithm as a plain function: given one attempt's state ([`Cycle`]) and
//! the nodes in the order to look at them, filter until enough feasible nodes are found, score
//! them with every score plugin, normalise, weight, and choose the best (ties go to the node
//! looked at first). No IO, no locks: the cache hands it a consistent view under its lock.

use crate::framework::{Cycle, NodeInfo};
use crate::plugins::{Filters, Scores};
use std::collections::BTreeMap;

/// The plugins one scheduler runs (a kube-scheduler profile).
pub struct Profile {
    /// Filters, in order; the first that rejects a node gives the reason.
    pub filters: Filters,
    /// Scores with their weights.
    pub scores: Scores,
}

/// What one attempt decided.
#[derive(Debug, Default)]
pub struct Decision {
    /// The chosen node, if any node is feasible.
    pub node: Option<String>,
    /// How many nodes the cluster has.
    pub total: usize,
    /// Why nodes were rejected: reason -> (how many nodes, whether preemption could help).
    pub reasons: BTreeMap<String, (usize, bool)>,
    /// The last node looked at (the next attempt starts after it).
    pub last: Option<String>,
}

/// How many feasible nodes to find before scoring (kube-scheduler's adaptive
/// `percentageOfNodesToScore`: all of up to 100 nodes, then 50 % minus 1 % per 125 nodes,
/// at least 5 % and at least 100), so a decision does not visit all 5,000 nodes.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < 100 {
        return all.max(1);
    }
    let percentage = 50usize.saturating_sub(all / 125).max(5);
    (all * percentage / 100).max(100)
}

/// Choose a node for `cycle.pod` among `nodes` (`total` of them in the cluster).
pub fn choose(
    profile: &Profile,
    cycle: &Cycle,
    nodes: &mut dyn Iterator<Item = &NodeInfo>,
    total: usize,
) -> Decision {
    let mut d = Decision {
        total,
        ..Default::default()
    };
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let enough = feasible_nodes_to_find(total);
    let mut last = None;
    for n in nodes {
        if feasible.len() >= enough {
            break;
        }
        last = Some(n);
        let rejected = profile.filters.iter().find_map(|f| {
            f.filter(cycle, n)
                .err()
                .map(|r| (f.name(), f.preemption_could_help(&r), r))
        });
        match rejected {
            Some((plugin, could_help, reason)) => {
                tracing::trace!(node = %n.name, plugin, reason = %reason, "filtered out");
                d.reasons.entry(reason).or_insert((0, could_help)).0 += 1;
            }
            None => feasible.push(n),
        }
    }
    d.last = last.map(|n| n.name.clone());
    let mut totals = vec![0i64; feasible.len()];
    for (plugin, weight) in &profile.scores {
        let mut scores: Vec<i64> = feasible.iter().map(|n| plugin.score(cycle, n)).collect();
        plugin.normalize(&mut scores);
        tracing::trace!(plugin = plugin.name(), ?scores, "scored");
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += weight * s;
        }
    }
    d.node = totals
        .iter()
        .enumerate()
        .max_by_key(|(i, t)| (**t, std::cmp::Reverse(*i)))
        .map(|(i, _)| feasible[i].name.clone());
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::PodInfo;
    use crate::plugins;

    fn node(name: &str, cpu: i64, used: i64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            alloc_cpu: cpu,
            alloc_mem: 8 << 30,
            alloc_pods: 110,
            req_cpu: used,
            req_cpu_scored: used,
            ..Default::default()
        }
    }

    fn pod(cpu: i64) -> PodInfo {
        PodInfo {
            namespace: "default".into(),
            cpu,
            ..Default::default()
        }
    }

    fn defaults() -> Profile {
        let (filters, scores) = plugins::defaults();
        Profile { filters, scores }
    }

    #[test]
    fn chooses_the_least_allocated_feasible_node() {
        let nodes = [
            node("a", 4000, 3000),
            node("b", 4000, 500),
            node("c", 4000, 1000),
        ];
        let p = pod(500);
        let d = choose(&defaults(), &Cycle::new(&p), &mut nodes.iter(), 3);
        assert_eq!(d.node.as_deref(), Some("b"));
        assert!(d.reasons.is_empty());
        assert_eq!(d.last.as_deref(), Some("c"));
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let mut cordoned = node("a", 4000, 0);
        cordoned.unschedulable = true;
        let mut not_ready = node("b", 4000, 0);
        not_ready.ready = false;
        let nodes = [cordoned, not_ready, node("c", 1000, 900)];
        let p = pod(500);
        let d = choose(&defaults(), &Cycle::new(&p), &mut nodes.iter(), 3);
        assert_eq!(d.node, None);
        assert_eq!(d.reasons.len(), 3, "{:?}", d.reasons);
        assert_eq!(d.reasons.get("Insufficient cpu"), Some(&(1, true)));
        assert!(d.reasons.values().all(|(n, _)| *n == 1));
    }

    #[test]
    fn ties_go_to_the_first_node_looked_at() {
        let nodes = [node("x", 4000, 0), node("y", 4000, 0)];
        let p = pod(100);
        let d = choose(&defaults(), &Cycle::new(&p), &mut nodes.iter(), 2);
        assert_eq!(d.node.as_deref(), Some("x"));
    }

    #[test]
    fn stops_after_enough_feasible_nodes() {
        assert_eq!(feasible_nodes_to_find(3), 3);
        assert_eq!(feasible_nodes_to_find(0), 1);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        let nodes: Vec<NodeInfo> = (0..300)
            .map(|i| node(&format!("n{i:03}"), 4000, 0))
            .collect();
        let p = pod(100);
        let d = choose(&defaults(), &Cycle::new(&p), &mut nodes.iter(), 300);
        // 300 nodes: 48 % of them, at least 100, are looked at.
        assert_eq!(d.last.as_deref(), Some("n143"));
        assert_eq!(d.node.as_deref(), Some("n000"));
    }
}
