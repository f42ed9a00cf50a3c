//! NodeAffinity: `nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` node
//! selector terms (ORed; each term's `matchExpressions` and `matchFields` ANDed; operators In,
//! NotIn, Exists, DoesNotExist, Gt, Lt) filter; the weights of matching
//! `preferredDuringSchedulingIgnoredDuringExecution` terms score.

use super::{normalize_max, Cycle, Filter, Score};
use crate::framework::{node_selection_matches, term_matches, NodeInfo};

/// Filter and score.
pub struct NodeAffinity;

impl Filter for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        if node_selection_matches(c.pod, n) {
            Ok(())
        } else {
            Err("node(s) didn't match Pod's node affinity/selector".into())
        }
    }
}

impl Score for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        c.pod
            .node_affinity
            .as_ref()
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| term_matches(&p.preference, n))
            .map(|p| p.weight as i64)
            .sum()
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_max(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn selector_required_terms_and_preferences() {
        let zone_a = node("a", &[("zone", "a"), ("size", "8")]);
        let zone_b = node("b", &[("zone", "b"), ("size", "2")]);
        let sel = pod(
            json!({"containers": [], "nodeSelector": {"zone": "a"}}),
            json!({}),
        );
        assert_eq!(NodeAffinity.filter(&Cycle::new(&sel), &zone_a), Ok(()));
        assert!(NodeAffinity.filter(&Cycle::new(&sel), &zone_b).is_err());
        let req = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["4"]}]}]}}}}),
            json!({}),
        );
        assert_eq!(NodeAffinity.filter(&Cycle::new(&req), &zone_a), Ok(()));
        assert_eq!(
            NodeAffinity.filter(&Cycle::new(&req), &zone_b),
            Err("node(s) didn't match Pod's node affinity/selector".into())
        );
        let pref = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}}),
            json!({}),
        );
        let c = Cycle::new(&pref);
        let mut scores = vec![
            NodeAffinity.score(&c, &zone_a),
            NodeAffinity.score(&c, &zone_b),
        ];
        NodeAffinity.normalize(&mut scores);
        assert_eq!(scores, [0, 100]);
    }
}
