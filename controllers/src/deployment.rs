//! The Deployment controller: one ReplicaSet per pod template (named `<deployment>-<hash>`,
//! labelled `pod-template-hash`), scaled to the Deployment's replicas while older ReplicaSets
//! are scaled to zero, and the Deployment's status computed from its ReplicaSets.

use crate::util::{controller_ref, normalized_template, template_hash};
use crate::Ctx;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::Action;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Resolve `maxUnavailable`-style values (absolute or percent, rounded down) against `total`.
pub fn resolve_int_or_percent(
    v: Option<&IntOrString>,
    total: i32,
    default_pct: i32,
    round_up: bool,
) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i32 = s.trim_end_matches('%').parse().unwrap_or(default_pct);
            percent(total, pct, round_up)
        }
        None => percent(total, default_pct, round_up),
    }
}

fn percent(total: i32, pct: i32, round_up: bool) -> i32 {
    let x = total as i64 * pct as i64;
    (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
}

/// Reconcile one Deployment.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(d) = ctx.deployments.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::AwaitChange);
    };
    let desired = spec.replicas.unwrap_or(1);
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let owned = ctx.replicasets.by_index("controller", &uid);
    let hash = template_hash(&spec.template);
    let want_template = normalized_template(&spec.template);
    let new_rs = owned
        .iter()
        .find(|rs| {
            rs.spec.as_ref().is_some_and(|s| {
                s.template.as_ref().map(normalized_template) == Some(want_template.clone())
            })
        })
        .cloned();
    let api: Api<ReplicaSet> = Api::namespaced(&ctx.client, ns);
    let max_rev = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let new_name = match &new_rs {
        None => {
            let rs = new_replicaset(&d, &hash, desired, max_rev + 1);
            let rs_name = rs.metadata.name.clone().unwrap_or_default();
            match api.create(&rs).await {
                Ok(_) => ctx.recorder.record(
                    object_ref(&*d),
                    "Normal",
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {rs_name} from 0 to {desired}"),
                ),
                Err(e) if e.is_conflict() => {
                    // Exists but our cache has not seen it yet: its event will requeue us.
                    tracing::debug!(rs = %rs_name, "replica set exists; waiting for the cache");
                }
                Err(e) => return Err(e.into()),
            }
            rs_name
        }
        Some(rs) => {
            let rs_name = rs.metadata.name.clone().unwrap_or_default();
            let have = replicas(rs);
            if have != desired {
                api.patch(&rs_name, &json!({"spec": {"replicas": desired}}))
                    .await?;
                let verb = if desired > have { "up" } else { "down" };
                ctx.recorder.record(
                    object_ref(&*d),
                    "Normal",
                    "ScalingReplicaSet",
                    format!("Scaled {verb} replica set {rs_name} from {have} to {desired}"),
                );
            }
            rs_name
        }
    };
    for old in owned
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != Some(&new_name))
    {
        let n = replicas(old);
        if n > 0 {
            let old_name = old.metadata.name.clone().unwrap_or_default();
            api.patch(&old_name, &json!({"spec": {"replicas": 0}}))
                .await?;
            ctx.recorder.record(
                object_ref(&*d),
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled down replica set {old_name} from {n} to 0"),
            );
        }
    }
    let new_rev = new_rs.as_deref().map(revision).unwrap_or(max_rev + 1);
    let cur_rev = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .cloned();
    if cur_rev != Some(new_rev.to_string()) {
        let dapi: Api<Deployment> = Api::namespaced(&ctx.client, ns);
        dapi.patch(
            name,
            &json!({"metadata": {"annotations": {REVISION: new_rev.to_string()}}}),
        )
        .await?;
    }
    let status = compute_status(&d, &owned, new_rs.as_deref(), &new_name);
    if d.status.as_ref() != Some(&status) {
        let dapi: Api<Deployment> = Api::namespaced(&ctx.client, ns);
        dapi.patch_status(name, &json!({"status": status})).await?;
    }
    Ok(Action::AwaitChange)
}

fn new_replicaset(d: &Deployment, hash: &str, replicas: i32, revision: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let mut labels = template
        .metadata
        .clone()
        .unwrap_or_default()
        .labels
        .unwrap_or_default();
    labels.insert("pod-template-hash".into(), hash.to_string());
    let mut tmeta = template.metadata.clone().unwrap_or_default();
    tmeta.labels = Some(labels.clone());
    template.metadata = Some(tmeta);
    let mut selector: LabelSelector = spec.selector.clone();
    let mut ml = selector.match_labels.clone().unwrap_or_default();
    ml.insert("pod-template-hash".into(), hash.to_string());
    selector.match_labels = Some(ml);
    let mut annotations = BTreeMap::new();
    annotations.insert(REVISION.to_string(), revision.to_string());
    annotations.insert(
        "deployment.kubernetes.io/desired-replicas".into(),
        replicas.to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{}",
                d.metadata.name.as_deref().unwrap_or(""),
                hash
            )),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

fn condition(
    old: Option<&DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    if let Some(o) = old {
        if o.status == status
            && o.reason.as_deref() == Some(reason)
            && o.message.as_deref() == Some(message.as_str())
        {
            return o.clone();
        }
    }
    let now = Time(chrono::Utc::now());
    let transition = match old {
        Some(o) if o.status == status => o.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(now),
        last_transition_time: transition,
    }
}

/// The Deployment's status as its ReplicaSets show it.
fn compute_status(
    d: &Deployment,
    owned: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
    new_name: &str,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let total: i32 = owned.iter().map(|rs| st(rs).replicas).sum();
    let ready: i32 = owned
        .iter()
        .map(|rs| st(rs).ready_replicas.unwrap_or(0))
        .sum();
    let available: i32 = owned
        .iter()
        .map(|rs| st(rs).available_replicas.unwrap_or(0))
        .sum();
    let updated = new_rs.map(|rs| st(rs).replicas).unwrap_or(0);
    let max_unavailable = resolve_int_or_percent(
        spec.strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref()),
        desired,
        25,
        false,
    );
    let old = d.status.clone().unwrap_or_default();
    let old_cond = |t: &str| {
        old.conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
    };
    let avail = if available >= desired - max_unavailable {
        condition(
            old_cond("Available"),
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        condition(
            old_cond("Available"),
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    let complete = updated == desired && total == desired && available == desired;
    let progressing = if complete {
        condition(
            old_cond("Progressing"),
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        condition(
            old_cond("Progressing"),
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    // Zeros are written, not omitted, so a merge patch of the status clears old counts.
    let opt = Some;
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: opt(total),
        updated_replicas: opt(updated),
        ready_replicas: opt(ready),
        available_replicas: opt(available),
        unavailable_replicas: opt((desired - available).max(0)),
        conditions: Some(vec![avail, progressing]),
        collision_count: old.collision_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounding() {
        let p = |s: &str| IntOrString::String(s.to_string());
        assert_eq!(resolve_int_or_percent(Some(&p("25%")), 3, 25, false), 0);
        assert_eq!(resolve_int_or_percent(Some(&p("25%")), 3, 25, true), 1);
        assert_eq!(resolve_int_or_percent(Some(&p("50%")), 10, 25, false), 5);
        assert_eq!(
            resolve_int_or_percent(Some(&IntOrString::Int(2)), 10, 25, false),
            2
        );
        assert_eq!(resolve_int_or_percent(None, 8, 25, false), 2);
    }
}
