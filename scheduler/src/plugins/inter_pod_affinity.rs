//! InterPodAffinity: required pod affinity (a matching pod must run in the node's domain,
//! unless none exists anywhere and the pod matches its own terms), required anti-affinity (no
//! matching pod in the domain), and existing pods' anti-affinity against this pod filter;
//! preferred terms score by weight times matching pods in the domain.

use super::{normalize_min_max, Cycle, Filter, Score};
use crate::cache::NodeInfo;

/// Filter and score.
pub struct InterPodAffinity;

const AFFINITY: &str = "node(s) didn't match pod affinity rules";

fn count(counts: &std::collections::HashMap<String, i64>, n: &NodeInfo, key: &str) -> i64 {
    n.labels
        .get(key)
        .and_then(|v| counts.get(v))
        .copied()
        .unwrap_or(0)
}

impl Filter for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        let terms = &c.pod.affinity;
        let first_of_its_kind =
            c.affinity.iter().all(|m| m.is_empty()) && terms.iter().all(|t| t.matches(c.pod));
        for (t, counts) in terms.iter().zip(&c.affinity) {
            let has_key = n.labels.contains_key(&t.topology_key);
            if !has_key || (count(counts, n, &t.topology_key) == 0 && !first_of_its_kind) {
                return Err(AFFINITY.into());
            }
        }
        for (t, counts) in c.pod.anti_affinity.iter().zip(&c.anti_affinity) {
            if count(counts, n, &t.topology_key) > 0 {
                return Err("node(s) didn't match pod anti-affinity rules".into());
            }
        }
        if c.forbidden.iter().any(|(k, v)| n.labels.get(k) == Some(v)) {
            return Err("node(s) didn't satisfy existing pods anti-affinity rules".into());
        }
        Ok(())
    }
    fn preemption_could_help(&self, reason: &str) -> bool {
        // Evicting the matching pods could satisfy anti-affinity, never affinity.
        reason != AFFINITY
    }
}

impl Score for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        c.pod
            .preferred
            .iter()
            .zip(&c.preferred)
            .map(|((w, t), counts)| w * count(counts, n, &t.topology_key))
            .sum()
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_min_max(scores);
    }
}
