//! The Deployment controller: one ReplicaSet per pod template (named `<deployment>-<hash>`,
//! labelled `pod-template-hash`, annotated with its revision); replicas move from old to new
//! ReplicaSets as the strategy allows (`rollout.rs`); a rollback reuses the old ReplicaSet;
//! old ones beyond `revisionHistoryLimit` are pruned; status and the Available/Progressing
//! conditions (with `progressDeadlineSeconds`) come from the ReplicaSets.

use crate::claim::claim;
use crate::rollout::{self, RsView, Strategy};
use crate::util::{controller_ref, normalized_template, template_hash};
use crate::wiring::{adopters, changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::Action;
use coxswain_runtime::Queue;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
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

fn view(rs: &ReplicaSet) -> RsView {
    let st = rs.status.clone().unwrap_or_default();
    RsView {
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas: replicas(rs),
        current: st.replicas,
        available: st.available_replicas.unwrap_or(0),
    }
}

fn strategy(spec: &DeploymentSpec, desired: i32) -> Strategy {
    let s = spec.strategy.clone().unwrap_or_default();
    if s.type_.as_deref() == Some("Recreate") {
        return Strategy::Recreate;
    }
    let ru = s.rolling_update.unwrap_or_default();
    Strategy::RollingUpdate {
        max_surge: resolve_int_or_percent(ru.max_surge.as_ref(), desired, 25, true),
        max_unavailable: resolve_int_or_percent(ru.max_unavailable.as_ref(), desired, 25, false),
    }
}

/// What wakes a Deployment: a change to it; a change to a ReplicaSet it owns (by owner
/// reference, old or new) or may adopt (an orphan its selector matches).
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let dq = q.clone();
    inf.deployments
        .on_change(move |c| dq.add(meta_key(changed_meta(c))));
    let (dq, deps) = (q.clone(), ctx.deployments.clone());
    inf.replicasets.on_change(move |c| {
        let m = changed_meta(c);
        for k in adopters(m, &deps, |d: &Deployment| {
            d.spec.as_ref().map(|s| s.selector.clone())
        }) {
            dq.add(k);
        }
        for uid in owner_refs(c) {
            if let Some(d) = deps.by_index("uid", &uid).first() {
                dq.add(meta_key(&d.metadata));
            }
        }
    });
}

/// Reconcile one Deployment: find or create the ReplicaSet of the current template, move
/// replicas to it as the strategy allows, prune old ReplicaSets, write status.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(d) = ctx.deployments.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let Some(spec) = d
        .spec
        .clone()
        .filter(|_| d.metadata.deletion_timestamp.is_none())
    else {
        return Ok(Action::AwaitChange);
    };
    let desired = spec.replicas.unwrap_or(1);
    let paused = spec.paused.unwrap_or(false);
    let api: Api<ReplicaSet> = Api::namespaced(&ctx.client, ns);
    let selector =
        coxswain_api::selector::LabelSelector::from_k8s(&spec.selector).unwrap_or_default();
    let mut owned = claim(
        &api,
        &*d,
        &selector,
        ctx.replicasets
            .by_index("controller", d.metadata.uid.as_deref().unwrap_or("")),
        ctx.replicasets.by_index("orphan", ns),
    )
    .await;
    owned.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let want = normalized_template(&spec.template);
    let new_rs = owned
        .iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .map(normalized_template)
                == Some(want.clone())
        })
        .cloned();
    let max_rev = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let hash = template_hash(&spec.template);
    let new_name = new_rs
        .as_ref()
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_else(|| format!("{name}-{hash}"));
    let olds: Vec<RsView> = owned
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != Some(&new_name))
        .map(|rs| view(rs))
        .collect();
    let new_view = new_rs.as_deref().map(view).unwrap_or(RsView {
        name: new_name.clone(),
        replicas: 0,
        current: 0,
        available: 0,
    });
    let steps = if paused {
        // Paused: no rollout, only scaling of a settled deployment.
        let settled = olds.iter().all(|o| o.replicas == 0);
        if settled && new_rs.is_some() && new_view.replicas != desired {
            vec![(new_name.clone(), desired)]
        } else {
            Vec::new()
        }
    } else {
        rollout::plan(desired, strategy(&spec, desired), &new_view, &olds)
    };
    let mut new_rev = new_rs.as_deref().map(revision).unwrap_or(max_rev + 1);
    if new_rs.is_none() && !paused {
        let n = steps
            .iter()
            .find(|(n, _)| *n == new_name)
            .map_or(0, |(_, r)| *r);
        match api.create(&new_replicaset(&d, &hash, n, max_rev + 1)).await {
            Ok(_) => scaled(&ctx, &d, &new_name, 0, n),
            Err(e) if e.is_conflict() => {
                tracing::debug!(rs = %new_name, "replica set exists; waiting for the cache")
            }
            Err(e) => return Err(e.into()),
        }
    } else if new_rs.is_some() && new_rev < max_rev {
        // A rollback reuses an old ReplicaSet: it becomes the newest revision.
        new_rev = max_rev + 1;
        api.patch(
            &new_name,
            &json!({"metadata": {"annotations": {REVISION: new_rev.to_string()}}}),
        )
        .await?;
    }
    for (rs, n) in steps
        .iter()
        .filter(|(rs, _)| new_rs.is_some() || *rs != new_name)
    {
        let from = if *rs == new_name {
            new_view.replicas
        } else {
            olds.iter()
                .find(|o| o.name == *rs)
                .map_or(0, |o| o.replicas)
        };
        api.patch(rs, &json!({"spec": {"replicas": n}})).await?;
        scaled(&ctx, &d, rs, from, *n);
    }
    prune_history(
        &api,
        &owned,
        &new_name,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    if d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        != Some(&new_rev.to_string())
    {
        let dapi: Api<Deployment> = Api::namespaced(&ctx.client, ns);
        dapi.patch(
            name,
            &json!({"metadata": {"annotations": {REVISION: new_rev.to_string()}}}),
        )
        .await?;
    }
    let (status, recheck) = compute_status(&d, &owned, new_rs.as_deref(), &new_name);
    if d.status.as_ref() != Some(&status) {
        let dapi: Api<Deployment> = Api::namespaced(&ctx.client, ns);
        dapi.patch_status(name, &json!({"status": status})).await?;
    }
    Ok(recheck.map_or(Action::AwaitChange, Action::RequeueAfter))
}

fn scaled(ctx: &Ctx, d: &Deployment, rs: &str, from: i32, to: i32) {
    let verb = if to > from { "up" } else { "down" };
    ctx.recorder.record(
        object_ref(d),
        "Normal",
        "ScalingReplicaSet",
        format!("Scaled {verb} replica set {rs} from {from} to {to}"),
    );
}

/// Delete the oldest fully scaled-down ReplicaSets beyond `revisionHistoryLimit`.
async fn prune_history(
    api: &Api<ReplicaSet>,
    owned: &[Arc<ReplicaSet>],
    new_name: &str,
    limit: i32,
) -> anyhow::Result<()> {
    let mut idle: Vec<&Arc<ReplicaSet>> = owned
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != Some(new_name))
        .filter(|rs| replicas(rs) == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0))
        .collect();
    idle.sort_by_key(|rs| revision(rs));
    let extra = idle.len().saturating_sub(limit.max(0) as usize);
    for rs in idle.into_iter().take(extra) {
        api.delete(
            rs.metadata.name.as_deref().unwrap_or(""),
            &Default::default(),
        )
        .await?;
    }
    Ok(())
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
) -> (DeploymentStatus, Option<std::time::Duration>) {
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
    let moved = old.updated_replicas != Some(updated)
        || old.available_replicas != Some(available)
        || old.replicas != Some(total)
        || old.observed_generation != d.metadata.generation;
    let prev = old_cond("Progressing");
    let deadline = chrono::Duration::seconds(spec.progress_deadline_seconds.unwrap_or(600) as i64);
    let mut recheck = None;
    let progressing = if complete {
        condition(
            prev,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else if spec.paused == Some(true) {
        condition(
            prev,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        )
    } else if !moved
        && prev.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        // Timed out stays timed out until the rollout moves again.
        prev.cloned().unwrap_or_default()
    } else {
        let since = prev
            .filter(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"))
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| chrono::Utc::now() - t.0);
        match since {
            Some(stalled) if !moved && stalled > deadline => condition(
                prev,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            ),
            _ => {
                let mut c = condition(
                    prev,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{new_name}\" is progressing."),
                );
                if moved {
                    c.last_update_time = Some(Time(chrono::Utc::now()));
                }
                let left = if moved {
                    deadline
                } else {
                    deadline - since.unwrap_or_default()
                };
                recheck = left
                    .to_std()
                    .ok()
                    .map(|d| d + std::time::Duration::from_secs(1));
                c
            }
        }
    };
    // Zeros are written, not omitted, so a merge patch of the status clears old counts.
    let opt = Some;
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: opt(total),
        updated_replicas: opt(updated),
        ready_replicas: opt(ready),
        available_replicas: opt(available),
        unavailable_replicas: opt((desired - available).max(0)),
        conditions: Some(vec![avail, progressing]),
        collision_count: old.collision_count,
    };
    (status, recheck)
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
