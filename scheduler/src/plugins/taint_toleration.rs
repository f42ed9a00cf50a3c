//! TaintToleration: NoSchedule/NoExecute taints must be tolerated (a filter); fewer
//! untolerated PreferNoSchedule taints score higher.

use super::{normalize_max, Cycle, Filter, Score};
use crate::framework::NodeInfo;

/// Filter and score.
pub struct TaintToleration;

pub use coxswain_api::placement::tolerates;

impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        let untolerated = n
            .taints
            .iter()
            .filter(|t| t.effect != "PreferNoSchedule")
            .find(|t| !c.pod.tolerations.iter().any(|tol| tolerates(tol, t)));
        match untolerated {
            None => Ok(()),
            Some(t) => Err(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl Score for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        n.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !c.pod.tolerations.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_max(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::{Taint, Toleration};
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn taints_filter_and_prefer() {
        let plain = pod(json!({"containers": []}), json!({}));
        let tolerant = pod(
            json!({"containers": [], "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]}),
            json!({}),
        );
        let mut n = node("a", &[]);
        n.taints = vec![taint("gpu", "yes", "NoSchedule")];
        assert_eq!(
            TaintToleration.filter(&Cycle::new(&plain), &n),
            Err("node(s) had untolerated taint {gpu: yes}".into())
        );
        assert_eq!(TaintToleration.filter(&Cycle::new(&tolerant), &n), Ok(()));
        // PreferNoSchedule only scores: the node with fewer untolerated ones wins.
        let mut soft = node("b", &[]);
        soft.taints = vec![taint("x", "", "PreferNoSchedule")];
        assert_eq!(TaintToleration.filter(&Cycle::new(&plain), &soft), Ok(()));
        let c = Cycle::new(&plain);
        let mut scores = vec![
            TaintToleration.score(&c, &node("c", &[])),
            TaintToleration.score(&c, &soft),
        ];
        TaintToleration.normalize(&mut scores);
        assert_eq!(scores, [100, 0]);
        // Exists with an empty key tolerates everything.
        let all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert!(tolerates(&all, &taint("any", "v", "NoExecute")));
    }
}
