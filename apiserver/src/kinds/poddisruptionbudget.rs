//! policy/v1 PodDisruptionBudget: validation (one of minAvailable/maxUnavailable, each a
//! non-negative integer or a percentage), generation, the `status` subresource, kubectl's
//! columns, and what an eviction must ask of the budget covering its pod
//! ([`admit_eviction`]): 429 `TooManyRequests` when no disruption is allowed, otherwise one
//! disruption taken from the budget's status (with the pod in `disruptedPods`) before the
//! pod is deleted, as Kubernetes' eviction subresource does.

use super::Kind;
use crate::cache::Filter;
use crate::state::{AppState, WriteOptions};
use crate::table::{age, col, n, s, Column};
use coxswain_api::protobuf::{Schema, PDB_SCHEMA};
use coxswain_api::resources::{ResourceInfo, PODDISRUPTIONBUDGETS};
use coxswain_api::selector::LabelSelector;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use k8s_openapi::api::policy::v1 as policy;
use serde_json::{json, Value};

/// The PodDisruptionBudget kind.
pub struct PodDisruptionBudget;

impl Kind for PodDisruptionBudget {
    fn info(&self) -> &'static ResourceInfo {
        &PODDISRUPTIONBUDGETS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<policy::PodDisruptionBudget>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(PDB_SCHEMA)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
            );
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        let (min, max) = (v.at("/spec/minAvailable"), v.at("/spec/maxUnavailable"));
        if min.is_some_and(|x| !x.is_null()) && max.is_some_and(|x| !x.is_null()) {
            causes.push(Cause::invalid(
                "spec",
                "{...}",
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        super::shared::check_int_or_percent(min, "spec.minAvailable", causes);
        super::shared::check_int_or_percent(max, "spec.maxUnavailable", causes);
        if let Some(p) = v
            .at("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
        {
            if !["IfHealthyBudget", "AlwaysAllow"].contains(&p) {
                causes.push(Cause::not_supported(
                    "spec.unhealthyPodEvictionPolicy",
                    p,
                    &["AlwaysAllow", "IfHealthyBudget"],
                ));
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let or_na = |p: &str| match s(v, p) {
            x if x.is_empty() => "N/A".to_string(),
            x => x,
        };
        vec![
            json!(s(v, "/metadata/name")),
            json!(or_na("/spec/minAvailable")),
            json!(or_na("/spec/maxUnavailable")),
            json!(n(v, "/status/disruptionsAllowed")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}

/// Whether a pod counts as healthy for a budget: Ready and not being deleted.
fn is_ready(pod: &Value) -> bool {
    pod.at("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The one budget covering `pod` may allow its eviction: take one disruption from it (or
/// answer 429 when it allows none). Pods that are not running, or already being deleted,
/// need no budget; a pod covered by more than one budget cannot be evicted.
pub async fn admit_eviction(
    st: &AppState,
    ns: &str,
    pod: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let phase = pod.at("/status/phase").and_then(Value::as_str);
    if pod.at("/metadata/deletionTimestamp").is_some()
        || matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
    {
        return Ok(());
    }
    let labels: std::collections::BTreeMap<String, String> = pod
        .at("/metadata/labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let filter = Filter {
        namespace: Some(ns.to_string()),
        labels: LabelSelector::default(),
        fields: Default::default(),
    };
    let (budgets, _) = st.cache.list(&PODDISRUPTIONBUDGETS, &filter);
    let mut covering = Vec::new();
    for b in budgets {
        let v: Value = serde_json::from_slice(&b.bytes).map_err(crate::state::internal)?;
        let sel = v
            .at("/spec/selector")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .and_then(|s| LabelSelector::from_k8s(&s).ok());
        // policy/v1: an empty selector covers every pod of the namespace; a missing one none.
        if sel.is_some_and(|s| s.is_empty() || s.matches(&labels)) {
            covering.push(v);
        }
    }
    let budget = match covering.len() {
        0 => return Ok(()),
        1 => covering.remove(0),
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ))
        }
    };
    let pod_name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let always = budget.at("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
    let desired = n(&budget, "/status/desiredHealthy");
    let healthy_budget = desired > 0 && n(&budget, "/status/currentHealthy") >= desired;
    // An unready pod takes nothing from a healthy budget (or from any, with AlwaysAllow).
    if !is_ready(pod) && (always || healthy_budget) {
        return Ok(());
    }
    let name = budget
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        let refuse = |detail: String| {
            ApiError::too_many_requests_because(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                vec![Cause {
                    reason: "DisruptionBudget".into(),
                    message: detail,
                    field: String::new(),
                }],
            )
        };
        if n(cur, "/status/observedGeneration") < n(cur, "/metadata/generation") {
            return Err(refuse(format!(
                "The disruption budget {name} is still being processed by the server."
            )));
        }
        let allowed = n(cur, "/status/disruptionsAllowed");
        if allowed <= 0 {
            return Err(refuse(format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                n(cur, "/status/desiredHealthy"),
                n(cur, "/status/currentHealthy")
            )));
        }
        let mut out = cur.clone();
        out["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if !out["status"]["disruptedPods"].is_object() {
            out["status"]["disruptedPods"] = json!({});
        }
        out["status"]["disruptedPods"][&pod_name] = json!(now);
        Ok(out)
    };
    let opts = WriteOptions {
        internal: true,
        dry_run,
        ..Default::default()
    };
    let bname = budget
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    st.write(&PODDISRUPTIONBUDGETS, ns, bname, opts, &change)
        .await
        .map(|_| ())
}
