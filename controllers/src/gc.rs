//! The garbage collector: deletes objects whose owners are all gone (background propagation),
//! deletes the dependents of owners being deleted in the foreground and then releases them
//! (`foregroundDeletion` finalizer), and orphans dependents (`orphan` finalizer).
//!
//! Owners and dependents handled: Deployment -> ReplicaSet -> Pod. An owner missing from the
//! cache is confirmed with a live GET before anything is deleted.

use crate::wiring::{changed_meta, owner_refs, Informers};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams, Object};
use coxswain_runtime::store::{key_of, split_key};
use coxswain_runtime::{Action, Store};
use coxswain_runtime::{Change, Queue};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;
use std::sync::Arc;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// The queue key of an object for the collector: `Kind:ns/name`.
pub fn gc_key(kind: &str, m: &ObjectMeta) -> String {
    format!(
        "{kind}:{}",
        key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
    )
}

fn has_finalizer(m: &ObjectMeta, f: &str) -> bool {
    m.finalizers.iter().flatten().any(|x| x == f)
}

/// The owner an owner reference points at, or `None` if it is gone (checked live when the
/// cache does not have it).
async fn owner_of<K: Object>(
    ctx: &Ctx,
    store: &Store<K>,
    ns: &str,
    r: &OwnerReference,
) -> anyhow::Result<Option<ObjectMeta>> {
    if let Some(o) = store.by_index("uid", &r.uid).first() {
        return Ok(Some(o.metadata().clone()));
    }
    let api: Api<K> = Api::namespaced(&ctx.client, ns);
    Ok(api
        .get_opt(&r.name)
        .await?
        .filter(|o| o.metadata().uid.as_deref() == Some(r.uid.as_str()))
        .map(|o| o.metadata().clone()))
}

/// Decide for one dependent: delete it, drop an owner reference, or leave it.
async fn check_dependent<K: Object>(
    ctx: &Ctx,
    m: &ObjectMeta,
    owner_kind: &str,
) -> anyhow::Result<()> {
    let ns = m.namespace.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let refs: Vec<OwnerReference> = m.owner_references.clone().unwrap_or_default();
    if refs.is_empty() || m.deletion_timestamp.is_some() {
        return Ok(());
    }
    let mut gone = 0;
    let mut foreground = false;
    let mut orphan_uids = Vec::new();
    for r in &refs {
        if r.kind != owner_kind {
            continue;
        }
        let owner = match owner_kind {
            "Deployment" => owner_of(ctx, &ctx.deployments, &ns, r).await?,
            "ReplicaSet" => owner_of(ctx, &ctx.replicasets, &ns, r).await?,
            _ => continue,
        };
        match owner {
            None => gone += 1,
            Some(om) if om.deletion_timestamp.is_some() => {
                if has_finalizer(&om, FOREGROUND) {
                    foreground = true;
                } else if has_finalizer(&om, ORPHAN) {
                    orphan_uids.push(r.uid.clone());
                }
            }
            Some(_) => {}
        }
    }
    let api: Api<K> = Api::namespaced(&ctx.client, &ns);
    if gone == refs.len() || foreground {
        let policy = if foreground {
            "Foreground"
        } else {
            "Background"
        };
        tracing::info!(kind = K::KIND, name = %name, policy, "deleting dependent whose owner is gone");
        api.delete(
            &name,
            &DeleteParams {
                propagation_policy: Some(policy.into()),
                uid: m.uid.clone(),
                ..Default::default()
            },
        )
        .await?;
    } else if !orphan_uids.is_empty() {
        let keep: Vec<&OwnerReference> = refs
            .iter()
            .filter(|r| !orphan_uids.contains(&r.uid))
            .collect();
        api.patch(&name, &json!({"metadata": {"ownerReferences": keep}}))
            .await?;
    }
    Ok(())
}

/// Release an owner being deleted once its dependents are gone (foreground) or orphaned.
async fn check_owner<K: Object, D: Object>(
    ctx: &Ctx,
    m: &ObjectMeta,
    dependents: &Store<D>,
) -> anyhow::Result<Action> {
    if m.deletion_timestamp.is_none() {
        return Ok(Action::AwaitChange);
    }
    let uid = m.uid.clone().unwrap_or_default();
    let remaining = dependents.by_index("owner", &uid);
    let mut finalizers: Vec<String> = m.finalizers.clone().unwrap_or_default();
    let before = finalizers.len();
    if remaining.is_empty() {
        finalizers.retain(|f| f != FOREGROUND && f != ORPHAN);
    }
    if finalizers.len() != before {
        let api: Api<K> = Api::namespaced(&ctx.client, m.namespace.as_deref().unwrap_or(""));
        api.patch(
            m.name.as_deref().unwrap_or(""),
            &json!({"metadata": {"finalizers": finalizers, "resourceVersion": m.resource_version}}),
        )
        .await?;
    }
    Ok(Action::AwaitChange)
}

/// What the garbage collector looks at: every ReplicaSet and pod that changed, the owners
/// they reference, and, when an owner is being deleted, what it owns.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let (gq, rs_store) = (q.clone(), ctx.replicasets.clone());
    inf.deployments.on_change(move |c: &Change<Deployment>| {
        let m = changed_meta(c);
        if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
            gq.add(gc_key("Deployment", m));
            for rs in rs_store.by_index("owner", m.uid.as_deref().unwrap_or("")) {
                gq.add(gc_key("ReplicaSet", &rs.metadata));
            }
        }
    });
    let (gq, deps, pods) = (q.clone(), ctx.deployments.clone(), ctx.pods.clone());
    inf.replicasets.on_change(move |c: &Change<ReplicaSet>| {
        let m = changed_meta(c);
        gq.add(gc_key("ReplicaSet", m));
        for uid in owner_refs(c) {
            if let Some(d) = deps.by_index("uid", &uid).first() {
                gq.add(gc_key("Deployment", &d.metadata));
            }
        }
        if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
            for p in pods.by_index("owner", m.uid.as_deref().unwrap_or("")) {
                gq.add(gc_key("Pod", &p.metadata));
            }
        }
    });
    let (gq, rs_store) = (q.clone(), ctx.replicasets.clone());
    inf.pods.on_change(move |c: &Change<Pod>| {
        gq.add(gc_key("Pod", changed_meta(c)));
        for uid in owner_refs(c) {
            if let Some(rs) = rs_store.by_index("uid", &uid).first() {
                gq.add(gc_key("ReplicaSet", &rs.metadata));
            }
        }
    });
}

/// Reconcile one `Kind:ns/name` key.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some((kind, obj_key)) = key.split_once(':') else {
        return Ok(Action::AwaitChange);
    };
    let _ = split_key(obj_key);
    match kind {
        "Deployment" => {
            if let Some(d) = ctx.deployments.get(obj_key) {
                return check_owner::<Deployment, ReplicaSet>(&ctx, &d.metadata, &ctx.replicasets)
                    .await;
            }
        }
        "ReplicaSet" => {
            if let Some(rs) = ctx.replicasets.get(obj_key) {
                check_dependent::<ReplicaSet>(&ctx, &rs.metadata, "Deployment").await?;
                return check_owner::<ReplicaSet, Pod>(&ctx, &rs.metadata, &ctx.pods).await;
            }
        }
        "Pod" => {
            if let Some(p) = ctx.pods.get(obj_key) {
                check_dependent::<Pod>(&ctx, &p.metadata, "ReplicaSet").await?;
                // Pods own nothing: a deletion finalizer on one is released at once.
                return check_owner::<Pod, Pod>(&ctx, &p.metadata, &Store::default()).await;
            }
        }
        _ => {}
    }
    Ok(Action::AwaitChange)
}
