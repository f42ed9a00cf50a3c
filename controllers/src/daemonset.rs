//! The DaemonSet controller: one pod on every node its template may run on (nodeSelector,
//! required node affinity, taints against the template's tolerations plus the ones every
//! daemon pod gets), pinned by a node affinity on `metadata.name` and bound by the scheduler,
//! as Kubernetes does. New nodes get a pod, nodes that no longer qualify lose theirs, failed
//! pods are replaced. Updates go through ControllerRevisions (`history.rs`): RollingUpdate
//! replaces up to `maxUnavailable` pods at a time (delete first), or with `maxSurge` starts
//! the new pod before the old one goes; OnDelete waits for the user.

use crate::history;
use crate::util::{available, controller_ref, is_ready, phase};
use crate::wiring::{changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_api::placement::{term_matches, tolerates};
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The label with the revision hash of a daemon pod.
const REVISION: &str = "controller-revision-hash";
/// The annotation apps/v1 carries the template generation in.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
/// The most pods created or deleted in one pass (Kubernetes' `burstReplicas`).
const BURST: usize = 250;

/// What wakes a DaemonSet: a change to it, to a pod it controls, or to any node.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let dq = q.clone();
    inf.daemonsets.on_change(move |c| {
        // Its own status writes change nothing it decides on.
        if let coxswain_runtime::Change::Applied { old: Some(o), new } = c {
            if crate::wiring::status_only(&o.metadata, &new.metadata) {
                return;
            }
        }
        dq.add(meta_key(changed_meta(c)));
    });
    let (dq, c2) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        // A DaemonSet looks at every node: pod changes within a short batch share one look.
        let m = changed_meta(c);
        let selector = |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone());
        for k in crate::wiring::adopters(m, &c2.daemonsets, selector) {
            dq.add(k);
        }
        for uid in owner_refs(c) {
            if let Some(d) = c2.daemonsets.by_index("uid", &uid).first() {
                let k = meta_key(&d.metadata);
                c2.expectations.observe(&k, c);
                dq.add_after(k, Duration::from_millis(100));
            }
        }
    });
    let (dq, c3) = (q.clone(), ctx.clone());
    inf.nodes.on_change(move |c| {
        // Heartbeats change nothing a daemon depends on.
        if let coxswain_runtime::Change::Applied { old: Some(o), new } = c {
            let same = o.metadata.labels == new.metadata.labels
                && o.spec.as_ref().and_then(|s| s.taints.clone())
                    == new.spec.as_ref().and_then(|s| s.taints.clone());
            if same {
                return;
            }
        }
        for d in c3.daemonsets.list() {
            dq.add_after(meta_key(&d.metadata), Duration::from_millis(100));
        }
    });
}

/// The tolerations every daemon pod gets, after its own.
fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// (should run, should keep running) for a node: its labels and name must match the
/// template's selection; its NoSchedule/NoExecute taints must be tolerated (an untolerated
/// NoSchedule taint keeps an existing pod).
fn should_run(ds: &DaemonSet, tolerations: &[Toleration], node: &Node) -> (bool, bool) {
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let name = node.metadata.name.as_deref().unwrap_or("");
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n != name)
    {
        return (false, false);
    }
    let selector_ok = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let required = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|r| {
        r.node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name))
    });
    if !selector_ok || !affinity_ok {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let untolerated: Vec<_> = taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
        .collect();
    (
        untolerated.is_empty(),
        !untolerated.iter().any(|t| t.effect == "NoExecute"),
    )
}

/// The node a daemon pod is for: its node, or the one its affinity pins it to.
fn target(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = &spec.node_name {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// A daemon pod for `node`.
fn new_pod(
    ds: &DaemonSet,
    node: &str,
    hash: &str,
    generation: &str,
    tolerations: &[Toleration],
) -> Pod {
    let t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = t.metadata.unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(REVISION.into(), hash.into());
    labels.insert("pod-template-generation".into(), generation.into());
    let mut spec = t.spec.unwrap_or_default();
    spec.tolerations = Some(tolerations.to_vec());
    let pin = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(pin);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.metadata.name.as_deref().unwrap_or(""))),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `v` of `total`, percentages rounded up.
fn scaled(v: Option<&IntOrString>, total: usize) -> usize {
    match v {
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let pct: usize = s
                .trim_end_matches('%')
                .parse::<usize>()
                .unwrap_or(0)
                .min(100);
            (pct * total).div_ceil(100)
        }
        None => 0,
    }
}

/// Reconcile one DaemonSet.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(ds) = ctx.daemonsets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let spec = ds.spec.clone().unwrap_or_default();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let selector =
        coxswain_api::selector::LabelSelector::from_k8s(&spec.selector).unwrap_or_default();
    let (rev, hash) =
        history::current(&ctx, &*ds, &spec.template, collisions, REVISION, &selector).await?;
    let generation = ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .cloned()
        .unwrap_or_else(|| "1".into());
    let mut tolerations = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let host_network = spec.template.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    for t in daemon_tolerations(host_network) {
        tolerations.retain(|x| {
            !(x.key == t.key
                && x.operator == t.operator
                && x.value == t.value
                && x.effect == t.effect)
        });
        tolerations.push(t);
    }
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    // The pods on each node, oldest first; finished pods that are being deleted do not count.
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    let api: Api<Pod> = Api::namespaced(&ctx.client, ns);
    // Orphans its selector matches are adopted (after a `--cascade=orphan` delete).
    let selector =
        coxswain_api::selector::LabelSelector::from_k8s(&spec.selector).unwrap_or_default();
    let orphans = ctx.pods.by_index("orphan", ns);
    let adopted = if orphans.is_empty() || selector.is_empty() {
        Vec::new()
    } else {
        crate::claim::claim(&api, &*ds, &selector, Vec::new(), orphans).await
    };
    for p in ctx
        .pods
        .by_index("controller", &uid)
        .into_iter()
        .chain(adopted)
    {
        let gone =
            p.metadata.deletion_timestamp.is_some() && matches!(phase(&p), "Succeeded" | "Failed");
        if let (false, Some(n)) = (gone, target(&p)) {
            by_node.entry(n).or_default().push(p);
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by_key(|p| {
            (
                p.spec.as_ref().and_then(|s| s.node_name.clone()).is_none(),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        });
    }
    let nodes = ctx.nodes.list();
    let mut want: Vec<String> = Vec::new();
    let mut create: Vec<String> = Vec::new();
    let mut delete: Vec<Arc<Pod>> = Vec::new();
    let mut misscheduled = 0;
    let known: HashSet<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for node in &nodes {
        let n = node.metadata.name.clone().unwrap_or_default();
        let (run, keep) = should_run(&ds, &tolerations, node);
        let pods: Vec<Arc<Pod>> = by_node
            .get(&n)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if run {
            want.push(n.clone());
        }
        if !keep {
            misscheduled += usize::from(!pods.is_empty());
            delete.extend(pods);
            continue;
        }
        let (failed, alive): (Vec<_>, Vec<_>) = pods
            .into_iter()
            .partition(|p| matches!(phase(p), "Failed" | "Succeeded"));
        for p in &failed {
            let pn = format!("{ns}/{}", p.metadata.name.as_deref().unwrap_or(""));
            ctx.recorder.record(
                object_ref(&*ds),
                "Warning",
                "FailedDaemonPod",
                format!("Found failed daemon pod {pn} on node {n}, will try to kill it"),
            );
        }
        delete.extend(failed);
        if !run && !alive.is_empty() {
            misscheduled += 1;
        }
        if run && alive.is_empty() {
            create.push(n.clone());
        }
        let surge = scaled(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.max_surge.as_ref()),
            1,
        ) > 0;
        if !surge && alive.len() > 1 {
            delete.extend(alive.into_iter().skip(1));
        } else if surge && alive.len() > 1 {
            // Surge: the oldest new pod and the oldest old one stay; any other goes.
            let is_new =
                |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION)) == Some(&hash);
            let (first_new, first_old) = (
                alive.iter().position(|p| is_new(p)),
                alive.iter().position(|p| !is_new(p)),
            );
            for (i, p) in alive.iter().enumerate() {
                if Some(i) != first_new && Some(i) != first_old {
                    delete.push(p.clone());
                }
            }
        }
    }
    // Pods for nodes that are gone.
    for (n, pods) in &by_node {
        if !known.contains(n) {
            delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .cloned(),
            );
        }
    }
    let updated = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION)) == Some(&hash);
    if spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        != Some("OnDelete")
    {
        rolling_update(
            &spec,
            &want,
            &by_node,
            &updated,
            min_ready,
            &mut create,
            &mut delete,
        );
    }
    // Each pod once, each node once; nothing until the cache has shown our last writes.
    let mut seen = HashSet::new();
    delete.retain(|p| seen.insert(p.metadata.uid.clone()));
    let mut seen = HashSet::new();
    create.retain(|n| seen.insert(n.clone()));
    if !ctx.expectations.satisfied(&key) {
        delete.clear();
        create.clear();
    }
    let (dels, adds) = (delete.len().min(BURST), create.len().min(BURST));
    ctx.expectations.expect(&key, adds as i64, dels as i64);
    for p in delete.iter().take(BURST) {
        let pn = p.metadata.name.clone().unwrap_or_default();
        match api.delete(&pn, &DeleteParams::default()).await {
            Ok(_) => ctx.recorder.record(
                object_ref(&*ds),
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {pn}"),
            ),
            Err(e) if e.is_not_found() => ctx.expectations.lower(&key, 0, 1),
            Err(e) => {
                ctx.expectations.lower(&key, adds as i64, 1);
                return Err(e.into());
            }
        }
    }
    let new: Vec<Pod> = create
        .iter()
        .take(BURST)
        .map(|n| new_pod(&ds, n, &hash, &generation, &tolerations))
        .collect();
    let mut failed = 0;
    for r in futures::future::join_all(new.iter().map(|p| api.create(p))).await {
        match r {
            Ok(p) => ctx.recorder.record(
                object_ref(&*ds),
                "Normal",
                "SuccessfulCreate",
                format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
            ),
            Err(e) => {
                failed += 1;
                ctx.recorder.record(
                    object_ref(&*ds),
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {e}"),
                );
            }
        }
    }
    if failed > 0 {
        ctx.expectations.lower(&key, failed, 0);
        anyhow::bail!("{failed} daemon pods could not be created");
    }
    // History and status.
    let mut live: HashSet<String> = [rev.metadata.name.clone().unwrap_or_default()].into();
    let hashes: HashSet<String> = by_node
        .values()
        .flatten()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION).cloned())
        .collect();
    live.extend(
        history::revisions(&ctx, &uid)
            .iter()
            .filter(|r| {
                r.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION))
                    .is_some_and(|h| hashes.contains(h))
            })
            .filter_map(|r| r.metadata.name.clone()),
    );
    history::prune(
        &ctx,
        &uid,
        ns,
        spec.revision_history_limit.unwrap_or(10),
        &live,
    )
    .await?;
    let oldest: Vec<&Arc<Pod>> = want
        .iter()
        .filter_map(|n| {
            by_node
                .get(n)?
                .iter()
                .find(|p| p.metadata.deletion_timestamp.is_none())
        })
        .collect();
    let available_n = oldest.iter().filter(|p| available(p, min_ready)).count() as i32;
    let st = DaemonSetStatus {
        desired_number_scheduled: want.len() as i32,
        current_number_scheduled: oldest.len() as i32,
        number_misscheduled: misscheduled as i32,
        number_ready: oldest.iter().filter(|p| is_ready(p)).count() as i32,
        number_available: Some(available_n).filter(|n| *n > 0),
        number_unavailable: Some(want.len() as i32 - available_n).filter(|n| *n > 0),
        updated_number_scheduled: Some(oldest.iter().filter(|p| updated(p)).count() as i32)
            .filter(|n| *n > 0),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: None,
    };
    if ds.status.as_ref() != Some(&st) {
        let api: Api<DaemonSet> = Api::namespaced(&ctx.client, ns);
        let mut status = serde_json::to_value(&st)?;
        for k in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
        ] {
            status
                .as_object_mut()
                .map(|m| m.entry(k).or_insert(serde_json::Value::Null));
        }
        api.patch_status(name, &json!({ "status": status })).await?;
    }
    let more = delete.len() > BURST || create.len() > BURST;
    Ok(if more {
        Action::RequeueAfter(Duration::ZERO)
    } else if min_ready > 0 && available_n < want.len() as i32 {
        Action::RequeueAfter(Duration::from_secs(min_ready.min(30) as u64))
    } else {
        Action::AwaitChange
    })
}

/// RollingUpdate: with no surge, delete up to `maxUnavailable` available old pods (less the
/// nodes already unavailable); with surge, start new pods next to up to `maxSurge` old ones
/// and delete an old pod once the new one beside it is available.
fn rolling_update(
    spec: &k8s_openapi::api::apps::v1::DaemonSetSpec,
    want: &[String],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    updated: &dyn Fn(&Pod) -> bool,
    min_ready: i64,
    create: &mut Vec<String>,
    delete: &mut Vec<Arc<Pod>>,
) {
    let ru = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref());
    let mut max_unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), want.len());
    let max_surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), want.len());
    if max_unavailable == 0 && max_surge == 0 && !want.is_empty() {
        max_unavailable = 1;
    }
    let (mut unavailable, mut surging, mut candidates) = (0, 0, Vec::new());
    for n in want {
        let pods: Vec<&Arc<Pod>> = by_node
            .get(n)
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let new = pods.iter().find(|p| updated(p));
        let old = pods.iter().find(|p| !updated(p));
        match (new, old) {
            (None, None) => unavailable += 1,
            (Some(nw), None) => unavailable += usize::from(!available(nw, min_ready)),
            (None, Some(o)) if !available(o, min_ready) => {
                // An old pod that is not even available goes (or gets its successor) now.
                if max_surge > 0 {
                    create.push(n.clone())
                } else {
                    delete.push((*o).clone())
                }
                unavailable += 1;
            }
            (None, Some(o)) => candidates.push((n.clone(), (*o).clone())),
            (Some(nw), Some(o)) => {
                if available(nw, min_ready) {
                    delete.push((*o).clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    if max_surge > 0 {
        for (n, _) in candidates
            .into_iter()
            .take(max_surge.saturating_sub(surging))
        {
            create.push(n);
        }
    } else {
        for (_, o) in candidates
            .into_iter()
            .take(max_unavailable.saturating_sub(unavailable))
        {
            delete.push(o);
        }
    }
}
