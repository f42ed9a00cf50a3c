//! The StatefulSet controller: pods with stable identities `<set>-<ordinal>` (hostname,
//! subdomain, the pod-name and pod-index labels, one PersistentVolumeClaim per claim template
//! named `<claim>-<set>-<ordinal>`). `OrderedReady` creates one pod at a time in ordinal
//! order, each Running and Ready (for `minReadySeconds`) before the next, and removes them
//! highest first; `Parallel` does all at once. Updates go through ControllerRevisions
//! (`history.rs`): `RollingUpdate` replaces one pod at a time from the highest ordinal down
//! to `partition` (pods below it keep the current revision), `OnDelete` waits for the user.

use crate::claim::claim;
use crate::history;
use crate::util::{controller_ref, is_ready, phase};
use crate::wiring::{adopters, changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_api::selector::LabelSelector;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::apps::v1::StatefulSetSpec;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The label naming the revision a pod was made from.
const REVISION: &str = "controller-revision-hash";
/// The label a StatefulSet's revisions carry their hash in.
const HASH: &str = "controller.kubernetes.io/hash";

/// What wakes a StatefulSet: a change to it or to a pod it controls.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let sq = q.clone();
    inf.statefulsets
        .on_change(move |c| sq.add(meta_key(changed_meta(c))));
    let (sq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        let m = changed_meta(c);
        let selector = |s: &StatefulSet| s.spec.as_ref().map(|s| s.selector.clone());
        for k in adopters(m, &ctx.statefulsets, selector) {
            sq.add(k);
        }
        for uid in owner_refs(c) {
            if let Some(s) = ctx.statefulsets.by_index("uid", &uid).first() {
                sq.add(meta_key(&s.metadata));
            }
        }
    });
}

/// The ordinal of a pod of set `name` (`web-3` -> 3).
fn ordinal(set: &str, pod: &Pod) -> Option<i64> {
    let n = pod.metadata.name.as_deref()?;
    let (parent, ord) = n.rsplit_once('-')?;
    (parent == set).then(|| ord.parse().ok()).flatten()
}

/// Running, and Ready for `min_ready` seconds.
fn available(p: &Pod, min_ready: i64) -> bool {
    phase(p) == "Running" && is_ready(p) && crate::util::available(p, min_ready)
}

fn rev_name(r: &ControllerRevision) -> String {
    r.metadata.name.clone().unwrap_or_default()
}

/// The template a revision restores.
fn template_of(r: &ControllerRevision) -> PodTemplateSpec {
    let mut t = r
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template").cloned())
        .unwrap_or_default();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).unwrap_or_default()
}

/// The pod of `ordinal`, made from revision `rev`.
fn new_pod(set: &StatefulSet, ordinal: i64, rev: &ControllerRevision) -> Pod {
    let name = set.metadata.name.clone().unwrap_or_default();
    let pod_name = format!("{name}-{ordinal}");
    let t = template_of(rev);
    let tm = t.metadata.unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        pod_name.clone(),
    );
    labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
    labels.insert(REVISION.into(), rev_name(rev));
    let mut spec = t.spec.unwrap_or_default();
    spec.hostname = Some(pod_name.clone());
    let service = set
        .spec
        .as_ref()
        .map(|s| s.service_name.clone())
        .unwrap_or_default();
    if !service.is_empty() {
        spec.subdomain = Some(service);
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in set
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
    {
        let cname = claim.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != cname);
        volumes.push(Volume {
            name: cname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{cname}-{name}-{ordinal}"),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            generate_name: Some(format!("{name}-")),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Create the claims of `ordinal`'s pod that do not exist yet.
async fn create_claims(ctx: &Ctx, set: &StatefulSet, ordinal: i64, ns: &str) -> anyhow::Result<()> {
    let spec = set.spec.clone().unwrap_or_default();
    let name = set.metadata.name.clone().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(&ctx.client, ns);
    let delete_with_set = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    for t in spec.volume_claim_templates.iter().flatten() {
        let claim = format!(
            "{}-{name}-{ordinal}",
            t.metadata.name.as_deref().unwrap_or("")
        );
        if api.get_opt(&claim).await?.is_some() {
            continue;
        }
        let mut labels = t.metadata.labels.clone().unwrap_or_default();
        labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(claim.clone()),
                namespace: Some(ns.into()),
                labels: Some(labels),
                annotations: t.metadata.annotations.clone(),
                owner_references: delete_with_set.then(|| vec![controller_ref(set)]),
                ..Default::default()
            },
            spec: t.spec.clone(),
            status: None,
        };
        match api.create(&pvc).await {
            Ok(_) => ctx.recorder.record(
                object_ref(set),
                "Normal",
                "SuccessfulCreate",
                format!("create Claim {claim} Pod {name}-{ordinal} in StatefulSet {name} success"),
            ),
            Err(e) if e.code() == Some(409) => {}
            Err(e) => {
                ctx.recorder.record(object_ref(set), "Warning", "FailedCreate", format!("create Claim {claim} for Pod {name}-{ordinal} in StatefulSet {name} failed error: {e}"));
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The owners the claims of a pod should have by the retention policy: the set while the
/// ordinal is in range and `whenDeleted: Delete`; the pod once it is scaled away and
/// `whenScaled: Delete` (so the claim goes with it); none otherwise (Retain).
fn claim_owners(set: &StatefulSet, pod: &Pod, condemned: bool) -> Option<Vec<OwnerReference>> {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.clone())
        .unwrap_or_default();
    let delete = |p: &Option<String>| p.as_deref() == Some("Delete");
    if condemned && delete(&policy.when_scaled) {
        Some(vec![controller_ref(pod)])
    } else if delete(&policy.when_deleted) {
        Some(vec![controller_ref(set)])
    } else {
        None
    }
}

/// Keep the owners of a pod's claims in step with the retention policy (which may change).
async fn sync_claim_owners(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i64,
    condemned: bool,
    ns: &str,
) -> anyhow::Result<()> {
    let want = claim_owners(set, pod, condemned);
    let name = set.metadata.name.clone().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(&ctx.client, ns);
    let templates = set
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten());
    for t in templates {
        let claim = format!(
            "{}-{name}-{ordinal}",
            t.metadata.name.as_deref().unwrap_or("")
        );
        let Some(cur) = ctx.claims.get(&format!("{ns}/{claim}")) else {
            continue;
        };
        let cur_refs = cur
            .metadata
            .owner_references
            .clone()
            .filter(|r| !r.is_empty());
        if cur_refs == want {
            continue;
        }
        let patch = json!({"metadata": {"ownerReferences": want,
            "resourceVersion": cur.metadata.resource_version}});
        match api.patch(&claim, &patch).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Create or delete one pod, with the StatefulSet's Event.
async fn act(
    ctx: &Ctx,
    set: &StatefulSet,
    api: &Api<Pod>,
    create: Option<Pod>,
    delete: Option<&Pod>,
) -> anyhow::Result<()> {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let (verb, pod, res) = match (create, delete) {
        (Some(p), _) => {
            let n = p.metadata.name.clone().unwrap_or_default();
            match api.create(&p).await {
                // Already there (a cache behind our own create): nothing happened.
                Err(e) if e.code() == Some(409) => return Ok(()),
                r => ("create", n, r.map(|_| ())),
            }
        }
        (None, Some(p)) => {
            let n = p.metadata.name.clone().unwrap_or_default();
            let r = api.delete(&n, &DeleteParams::default()).await.map(|_| ());
            (
                "delete",
                n,
                r.or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
            )
        }
        (None, None) => return Ok(()),
    };
    let reason = if verb == "create" { "Create" } else { "Delete" };
    match res {
        Ok(()) => {
            ctx.recorder.record(
                object_ref(set),
                "Normal",
                &format!("Successful{reason}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} successful"),
            );
            Ok(())
        }
        Err(e) => {
            ctx.recorder.record(
                object_ref(set),
                "Warning",
                &format!("Failed{reason}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} failed error: {e}"),
            );
            Err(e.into())
        }
    }
}

/// `rollingUpdate.maxUnavailable` of `replicas` (percentages rounded down), at least 1.
fn max_unavailable(spec: &StatefulSetSpec, replicas: i64) -> i64 {
    let v = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    let n = match v {
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(p)) => {
            p.trim_end_matches('%').parse::<i64>().unwrap_or(0) * replicas / 100
        }
        None => 1,
    };
    n.max(1)
}

/// Reconcile one StatefulSet.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(set) = ctx.statefulsets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let spec = set.spec.clone().unwrap_or_default();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let status = set.status.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(&ctx.client, ns);
    let collisions = status.collision_count.unwrap_or(0);
    let selector = LabelSelector::from_k8s(&spec.selector).unwrap_or_default();
    let (update, _) =
        history::current(&ctx, &*set, &spec.template, collisions, HASH, &selector).await?;
    let revs = history::revisions(&ctx, &uid);
    let current = match &status.current_revision {
        None => update.clone(),
        Some(n) if *n == rev_name(&update) => update.clone(),
        Some(n) => match revs.iter().find(|r| r.metadata.name.as_ref() == Some(n)) {
            Some(r) => (**r).clone(),
            // Pods below the partition must not get the new template by mistake.
            None => anyhow::bail!("the current revision {n} is not in the cache (yet)"),
        },
    };
    let (start, replicas) = (
        spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0) as i64,
        spec.replicas.unwrap_or(1).max(0) as i64,
    );
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let mut by_ordinal: BTreeMap<i64, Arc<Pod>> = BTreeMap::new();
    // Its pods, and the orphans named like its pods that its selector matches (adopted).
    let orphans: Vec<Arc<Pod>> = ctx
        .pods
        .by_index("orphan", ns)
        .into_iter()
        .filter(|p| ordinal(name, p).is_some())
        .collect();
    let adopted = if orphans.is_empty() {
        Vec::new()
    } else {
        claim(&pods_api, &*set, &selector, Vec::new(), orphans).await
    };
    for p in ctx
        .pods
        .by_index("controller", &uid)
        .into_iter()
        .chain(adopted)
    {
        if let Some(o) = ordinal(name, &p) {
            by_ordinal.insert(o, p);
        }
    }
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        != Some("OnDelete");
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0) as i64;
    let mut blocked = set.metadata.deletion_timestamp.is_some();
    let mut budget = 500usize;
    // 1. Every ordinal in range has a healthy pod, in order (OrderedReady waits for each).
    for ord in start..start + replicas {
        if blocked {
            break;
        }
        match by_ordinal.get(&ord) {
            None => {
                let rev = if rolling && ord < start + partition {
                    &current
                } else {
                    &update
                };
                create_claims(&ctx, &set, ord, ns).await?;
                act(&ctx, &set, &pods_api, Some(new_pod(&set, ord, rev)), None).await?;
                budget -= 1;
                blocked = monotonic || budget == 0;
            }
            Some(p) if matches!(phase(p), "Failed" | "Succeeded") => {
                if p.metadata.deletion_timestamp.is_none() {
                    act(&ctx, &set, &pods_api, None, Some(p)).await?;
                }
                blocked = monotonic;
            }
            Some(p) if p.metadata.deletion_timestamp.is_some() || !available(p, min_ready) => {
                blocked = monotonic
            }
            Some(_) => {}
        }
    }
    // 2. Pods beyond the range go, highest first (OrderedReady: one at a time, once healthy).
    let condemned: Vec<&Arc<Pod>> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| **o < start || **o >= start + replicas)
        .map(|(_, p)| p)
        .collect();
    // Claims follow the retention policy: the set's while in range, the pod's once scaled away.
    for (ord, p) in &by_ordinal {
        let condemned = *ord < start || *ord >= start + replicas;
        sync_claim_owners(&ctx, &set, p, *ord, condemned, ns).await?;
    }
    for p in &condemned {
        if blocked {
            break;
        }
        if p.metadata.deletion_timestamp.is_some() {
            blocked = monotonic;
            continue;
        }
        act(&ctx, &set, &pods_api, None, Some(p)).await?;
        blocked = monotonic;
    }
    // 3. RollingUpdate: the highest out-of-date pods down to the partition, as many at once
    // as `maxUnavailable` allows less those already unavailable (one by default).
    let update_name = rev_name(&update);
    if rolling && !blocked {
        let max_unavailable = max_unavailable(&spec, replicas);
        let unavailable = (start..start + replicas)
            .filter(|o| {
                by_ordinal.get(o).is_none_or(|p| {
                    p.metadata.deletion_timestamp.is_some() || !available(p, min_ready)
                })
            })
            .count() as i64;
        let mut allowed = max_unavailable - unavailable;
        for ord in (start + partition..start + replicas).rev() {
            if allowed <= 0 {
                break;
            }
            let Some(p) = by_ordinal.get(&ord) else {
                continue;
            };
            let hash = p.metadata.labels.as_ref().and_then(|l| l.get(REVISION));
            if hash != Some(&update_name) && p.metadata.deletion_timestamp.is_none() {
                act(&ctx, &set, &pods_api, None, Some(p)).await?;
                allowed -= 1;
            }
        }
    }
    // 4. History and status.
    let mut live: HashSet<String> = [rev_name(&current), update_name.clone()].into();
    live.extend(
        by_ordinal
            .values()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION).cloned()),
    );
    history::prune(
        &ctx,
        &uid,
        ns,
        spec.revision_history_limit.unwrap_or(10),
        &live,
    )
    .await?;
    let st = next_status(
        &set,
        &by_ordinal,
        &rev_name(&current),
        &update_name,
        rolling,
        min_ready,
    );
    if set.status.as_ref() != Some(&st) {
        let api: Api<StatefulSet> = Api::namespaced(&ctx.client, ns);
        api.patch_status(name, &json!({"status": st})).await?;
    }
    let waiting = min_ready > 0 && st.available_replicas != Some(replicas as i32);
    Ok(if waiting {
        Action::RequeueAfter(Duration::from_secs(min_ready as u64).min(Duration::from_secs(30)))
    } else {
        Action::AwaitChange
    })
}

/// The status the pods add up to; the current revision advances once every pod is updated
/// and ready.
fn next_status(
    set: &StatefulSet,
    pods: &BTreeMap<i64, Arc<Pod>>,
    current: &str,
    update: &str,
    rolling: bool,
    min_ready: i64,
) -> StatefulSetStatus {
    let alive = || {
        pods.values()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    };
    let with_rev = |r: &str| {
        alive()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION))
                    .map(String::as_str)
                    == Some(r)
            })
            .count() as i32
    };
    let mut st = StatefulSetStatus {
        replicas: pods.values().filter(|p| !phase(p).is_empty()).count() as i32,
        ready_replicas: Some(
            pods.values()
                .filter(|p| phase(p) == "Running" && is_ready(p))
                .count() as i32,
        ),
        available_replicas: Some(pods.values().filter(|p| available(p, min_ready)).count() as i32),
        current_replicas: Some(with_rev(current)),
        updated_replicas: Some(with_rev(update)),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        observed_generation: set.metadata.generation,
        conditions: None,
    };
    let want = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    if rolling
        && updated == st.ready_replicas.unwrap_or(0)
        && updated == st.replicas
        && st.replicas == want
    {
        st.current_replicas = Some(updated);
        st.current_revision = Some(update.to_string());
    }
    st
}
