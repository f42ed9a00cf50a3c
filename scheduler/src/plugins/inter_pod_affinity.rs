//! InterPodAffinity: required pod affinity (a matching pod must run in the node's domain,
//! unless none exists anywhere and the pod matches its own terms), required anti-affinity (no
//! matching pod in the domain), and existing pods' anti-affinity against this pod filter;
//! preferred terms score by weight times matching pods in the domain.

use super::{normalize_min_max, Cycle, Filter, Score};
use crate::framework::NodeInfo;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;
    use std::collections::HashMap;

    fn term(kind: &str) -> serde_json::Value {
        json!({"containers": [], "affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}})
    }

    #[test]
    fn affinity_anti_affinity_and_existing_pods() {
        let a = node("a", &[("zone", "a")]);
        let b = node("b", &[("zone", "b")]);
        let counts: HashMap<String, i64> = [("a".to_string(), 1)].into();
        // Affinity: only where a matching pod runs.
        let p = pod(term("podAffinity"), json!({"app": "web"}));
        let mut c = Cycle::new(&p);
        c.affinity = vec![counts.clone()];
        assert_eq!(InterPodAffinity.filter(&c, &a), Ok(()));
        assert_eq!(InterPodAffinity.filter(&c, &b), Err(AFFINITY.into()));
        assert!(!InterPodAffinity.preemption_could_help(AFFINITY));
        // Anti-affinity: never where one runs.
        let p = pod(term("podAntiAffinity"), json!({"app": "web"}));
        let mut c = Cycle::new(&p);
        c.anti_affinity = vec![counts];
        assert!(InterPodAffinity.filter(&c, &a).is_err());
        assert_eq!(InterPodAffinity.filter(&c, &b), Ok(()));
        // An existing pod's anti-affinity forbids its domain.
        let plain = pod(json!({"containers": []}), json!({"app": "db"}));
        let mut c = Cycle::new(&plain);
        c.forbidden.insert(("zone".into(), "b".into()));
        assert_eq!(InterPodAffinity.filter(&c, &a), Ok(()));
        assert_eq!(
            InterPodAffinity.filter(&c, &b),
            Err("node(s) didn't satisfy existing pods anti-affinity rules".into())
        );
    }

    #[test]
    fn preferred_terms_score() {
        let p = pod(
            json!({"containers": [], "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}}),
            json!({}),
        );
        let mut c = Cycle::new(&p);
        c.preferred = vec![[("b".to_string(), 2)].into()];
        let mut scores = vec![
            InterPodAffinity.score(&c, &node("a", &[("zone", "a")])),
            InterPodAffinity.score(&c, &node("b", &[("zone", "b")])),
        ];
        assert_eq!(scores, [0, 100]);
        InterPodAffinity.normalize(&mut scores);
        assert_eq!(scores, [0, 100]);
    }
}
