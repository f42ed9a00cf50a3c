//! The disruption controller: keeps each PodDisruptionBudget's status - the pods it covers
//! (`expectedPods`), how many must stay healthy (`desiredHealthy`, from minAvailable or
//! maxUnavailable, percentages against the scale of the pods' controllers), how many are
//! (`currentHealthy`: Ready, not being deleted, not just evicted), `disruptionsAllowed`, the
//! evictions still in flight (`disruptedPods`, forgotten once the pod is deleted or after two
//! minutes) and the DisruptionAllowed condition. The API server's eviction subresource reads
//! this status to allow or refuse evictions.

use crate::util::is_ready;
use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_api::selector::LabelSelector;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an eviction counts against a budget before its pod is deleted.
const DELETION_TIMEOUT: i64 = 120;

/// Whether the budget covers a pod with these labels (policy/v1: an empty selector covers
/// the whole namespace, a missing or malformed one covers nothing).
fn covers(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| LabelSelector::from_k8s(s).ok())
        .is_some_and(|s| s.is_empty() || s.matches(labels))
}

/// What wakes a budget: a change to it, or to a pod of its namespace it selects.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let pq = q.clone();
    inf.pdbs
        .on_change(move |c| pq.add(meta_key(changed_meta(c))));
    let (pq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        let m = changed_meta(c);
        let ns = m.namespace.as_deref().unwrap_or("");
        let empty = BTreeMap::new();
        let labels = m.labels.as_ref().unwrap_or(&empty);
        // Old labels too: a pod that leaves a budget changes it.
        let old = match c {
            coxswain_runtime::Change::Applied { old: Some(o), .. } => o.metadata.labels.clone(),
            _ => None,
        };
        for pdb in ctx.pdbs.by_index("namespace", ns) {
            if covers(&pdb, labels) || old.as_ref().is_some_and(|o| covers(&pdb, o)) {
                pq.add(meta_key(&pdb.metadata));
            }
        }
    });
}

/// `value` of `total` (a count or a percentage, rounded up).
fn scaled(value: &IntOrString, total: i32) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// The replicas the controllers of `pods` want, each controller once; `None` when a pod has
/// no controller whose scale is known.
fn controllers_scale(ctx: &Ctx, pods: &[Arc<Pod>]) -> Option<i32> {
    let mut seen = HashSet::new();
    let mut total = 0i32;
    for p in pods {
        let r = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))?;
        if !seen.insert(r.uid.clone()) {
            continue;
        }
        let replicas = if let Some(rs) = ctx.replicasets.by_index("uid", &r.uid).first() {
            // A ReplicaSet of a Deployment counts as the Deployment.
            let dep = crate::util::controller_uid(&rs.metadata)
                .and_then(|u| ctx.deployments.by_index("uid", &u).first().cloned());
            match dep {
                Some(d) if seen.insert(d.metadata.uid.clone().unwrap_or_default()) => {
                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
                }
                Some(_) => 0,
                None => rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }
        } else if let Some(rc) = ctx.replicationcontrollers.by_index("uid", &r.uid).first() {
            rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        } else if let Some(sts) = ctx.statefulsets.by_index("uid", &r.uid).first() {
            sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        } else {
            return None;
        };
        total = total.saturating_add(replicas);
    }
    Some(total)
}

/// Reconcile one budget.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(pdb) = ctx.pdbs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let empty = BTreeMap::new();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .by_index("namespace", ns)
        .into_iter()
        .filter(|p| covers(&pdb, p.metadata.labels.as_ref().unwrap_or(&empty)))
        .collect();
    let spec = pdb.spec.clone().unwrap_or_default();
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (Some(pods.len() as i32), Some(*n)),
        (Some(min), _) => {
            let total = controllers_scale(&ctx, &pods);
            (total, total.and_then(|t| scaled(min, t)))
        }
        (None, Some(max)) => {
            let total = controllers_scale(&ctx, &pods);
            (
                total,
                total.and_then(|t| scaled(max, t).map(|m| (t - m).max(0))),
            )
        }
        (None, None) => (Some(pods.len() as i32), Some(0)),
    };
    let (Some(expected), Some(desired)) = (expected, desired) else {
        ctx.recorder.record(object_ref(&*pdb), "Warning", "NoControllers", "found no controllers for the pods this budget covers, so no percentage can be worked out".into());
        // Fail safe: no disruption is allowed while the budget cannot be worked out.
        let api: Api<PodDisruptionBudget> = Api::namespaced(&ctx.client, ns);
        let status = json!({"status": {"disruptionsAllowed": 0, "observedGeneration": pdb.metadata.generation,
            "conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed",
                "message": "found no controllers for the pods this budget covers",
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(chrono::Utc::now()),
                "observedGeneration": pdb.metadata.generation}]}});
        api.patch_status(name, &status).await?;
        return Ok(Action::RequeueAfter(Duration::from_secs(30)));
    };
    // Evictions in flight: until their pod is deleted, for two minutes at most.
    let now = chrono::Utc::now();
    let mut disrupted = BTreeMap::new();
    let mut recheck = None;
    let old = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    for p in &pods {
        let pname = p.metadata.name.clone().unwrap_or_default();
        if let (Some(t), None) = (old.get(&pname), &p.metadata.deletion_timestamp) {
            let expires = t.0 + chrono::Duration::seconds(DELETION_TIMEOUT);
            if let Ok(left) = (expires - now).to_std() {
                disrupted.insert(pname, t.clone());
                recheck = Some(recheck.map_or(left, |r: Duration| r.min(left)));
            }
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or("")))
        .count() as i32;
    let allowed = (healthy - desired).max(0);
    let (cond, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let prev = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed").cloned());
    let since = match &prev {
        Some(c) if c.status == cond => c.last_transition_time.clone(),
        _ => k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    };
    let status = json!({
        "currentHealthy": healthy, "desiredHealthy": desired, "disruptionsAllowed": allowed,
        "expectedPods": expected, "observedGeneration": pdb.metadata.generation,
        "disruptedPods": if disrupted.is_empty() { serde_json::Value::Null } else { json!(disrupted) },
        "conditions": [{"type": "DisruptionAllowed", "status": cond, "reason": reason, "message": "",
            "lastTransitionTime": since, "observedGeneration": pdb.metadata.generation}],
    });
    let cur = serde_json::to_value(pdb.status.clone().unwrap_or_default())?;
    let same = [
        "currentHealthy",
        "desiredHealthy",
        "disruptionsAllowed",
        "expectedPods",
        "observedGeneration",
        "conditions",
    ]
    .iter()
    .all(|k| cur.get(*k) == status.get(*k))
        && cur.get("disruptedPods").filter(|d| !d.is_null())
            == status.get("disruptedPods").filter(|d| !d.is_null());
    if !same {
        let api: Api<PodDisruptionBudget> = Api::namespaced(&ctx.client, ns);
        let patch = json!({"metadata": {"resourceVersion": pdb.metadata.resource_version}, "status": status});
        api.patch_status(name, &patch).await?;
    }
    Ok(recheck.map_or(Action::AwaitChange, |d| {
        Action::RequeueAfter(d + Duration::from_millis(100))
    }))
}
