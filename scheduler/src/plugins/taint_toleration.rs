//! TaintToleration: NoSchedule/NoExecute taints must be tolerated (a filter); fewer
//! untolerated PreferNoSchedule taints score higher.

use super::{normalize_max, Cycle, Filter, Score};
use crate::cache::NodeInfo;
use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Filter and score.
pub struct TaintToleration;

/// Whether `tol` tolerates `t` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(tol: &Toleration, t: &Taint) -> bool {
    let op_exists = tol.operator.as_deref() == Some("Exists");
    let key_ok = tol
        .key
        .as_deref()
        .is_none_or(|k| k.is_empty() || k == t.key);
    let val_ok =
        op_exists || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
    let eff_ok = tol
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == t.effect);
    key_ok && val_ok && eff_ok
}

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
