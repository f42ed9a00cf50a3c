//! NodeAffinity: `nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` node
//! selector terms (ORed; each term's `matchExpressions` and `matchFields` ANDed; operators In,
//! NotIn, Exists, DoesNotExist, Gt, Lt) filter; the weights of matching
//! `preferredDuringSchedulingIgnoredDuringExecution` terms score.

use super::{normalize_max, Cycle, Filter, Score};
use crate::cache::{NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

/// Filter and score.
pub struct NodeAffinity;

fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (value.and_then(num), values.first().and_then(|b| num(b)))
            else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches a node (an empty term matches nothing).
pub fn term_matches(t: &NodeSelectorTerm, n: &NodeInfo) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement(r, n.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(n.name.as_str());
            requirement(r, v)
        })
}

/// Whether the pod's nodeSelector and required node affinity allow the node.
pub fn matches(p: &PodInfo, n: &NodeInfo) -> bool {
    if !p
        .node_selector
        .iter()
        .all(|(k, v)| n.labels.get(k) == Some(v))
    {
        return false;
    }
    let required = p.node_affinity.as_ref().and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, n)))
}

impl Filter for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        if matches(c.pod, n) {
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
