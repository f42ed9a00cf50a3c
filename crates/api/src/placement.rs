//! Which nodes a pod may run on, as pure rules the scheduler and the DaemonSet controller
//! share: node selector requirements (In, NotIn, Exists, DoesNotExist, Gt, Lt) over a node's
//! labels and name, node selector terms, and whether a toleration tolerates a taint
//! (Kubernetes' `ToleratesTaint`).

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};
use std::collections::BTreeMap;

/// Whether a requirement holds for `value` (the node's label, or its name for a field).
pub fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
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
pub fn term_matches(t: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(name);
            requirement(r, v)
        })
}

/// Whether `tol` tolerates `t`.
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
