//! PodTopologySpread: for each `DoNotSchedule` constraint, placing the pod in the node's
//! domain must keep `count + 1 - min(count over eligible domains) <= maxSkew` (with fewer
//! than `minDomains` domains the minimum is 0), and the node must carry the topology key;
//! `ScheduleAnyway` constraints score emptier domains higher.

use super::{normalize_max, Cycle, Filter, Score};
use crate::framework::NodeInfo;

/// Filter and score.
pub struct PodTopologySpread;

impl Filter for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        for (sc, counts) in c.pod.spread.iter().zip(&c.spread).filter(|(s, _)| s.hard) {
            let Some(domain) = n.labels.get(&sc.topology_key) else {
                return Err(
                    "node(s) didn't match pod topology spread constraints (missing required label)"
                        .into(),
                );
            };
            let min = if counts.len() < sc.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            let own = i64::from(
                sc.selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&c.pod.labels)),
            );
            let here = counts.get(domain).copied().unwrap_or(0);
            if here + own - min > sc.max_skew {
                return Err("node(s) didn't match pod topology spread constraints".into());
            }
        }
        Ok(())
    }
    fn preemption_could_help(&self, reason: &str) -> bool {
        !reason.ends_with("(missing required label)")
    }
}

impl Score for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        c.pod
            .spread
            .iter()
            .zip(&c.spread)
            .filter(|(s, _)| !s.hard)
            .map(|(sc, counts)| {
                n.labels
                    .get(&sc.topology_key)
                    .and_then(|v| counts.get(v))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_max(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    fn spread(when: &str) -> serde_json::Value {
        json!({"containers": [], "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn max_skew_filters_and_soft_constraints_score() {
        let a = node("a", &[("zone", "a")]);
        let b = node("b", &[("zone", "b")]);
        let p = pod(spread("DoNotSchedule"), json!({"app": "web"}));
        let mut c = Cycle::new(&p);
        c.spread = vec![[("a".to_string(), 2), ("b".to_string(), 1)].into()];
        // Zone a would have 3 against b's 1: skew 2 > 1.
        assert_eq!(
            PodTopologySpread.filter(&c, &a),
            Err("node(s) didn't match pod topology spread constraints".into())
        );
        assert_eq!(PodTopologySpread.filter(&c, &b), Ok(()));
        assert!(PodTopologySpread
            .filter(&c, &node("n", &[]))
            .is_err_and(|r| !PodTopologySpread.preemption_could_help(&r)));
        let p = pod(spread("ScheduleAnyway"), json!({"app": "web"}));
        let mut c = Cycle::new(&p);
        c.spread = vec![[("a".to_string(), 2), ("b".to_string(), 1)].into()];
        assert_eq!(PodTopologySpread.filter(&c, &a), Ok(()));
        let mut scores = vec![
            PodTopologySpread.score(&c, &a),
            PodTopologySpread.score(&c, &b),
        ];
        PodTopologySpread.normalize(&mut scores);
        assert_eq!(scores, [0, 50]);
    }
}
