//! Storage object in-use protection (Kubernetes' pvc-protection and pv-protection
//! controllers): admission gives every claim `kubernetes.io/pvc-protection` and every volume
//! `kubernetes.io/pv-protection`; a deleted claim keeps its finalizer while a scheduled pod
//! names it, a deleted volume while it is Bound. Keys: `namespace/name` is a claim, a bare
//! name a volume.

use crate::wiring::{claim_and_volume_keys, Informers};
use crate::Ctx;
use coxswain_api::storage::pod_claims;
use coxswain_client::Api;
use coxswain_runtime::{Action, Change, Queue};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use std::sync::Arc;

const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// What wakes it: claims and volumes changing, and the claims of a pod that changes or goes.
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    claim_and_volume_keys(inf, q);
    let pq = q.clone();
    inf.pods.on_change(move |c| {
        let p = match c {
            Change::Applied { new, .. } => new,
            Change::Deleted(old) => old,
        };
        for k in pod_claims(p) {
            pq.add(k);
        }
    });
}

fn holds(m: &ObjectMeta, f: &str) -> bool {
    m.deletion_timestamp.is_some() && m.finalizers.iter().flatten().any(|x| x == f)
}

fn without(m: &ObjectMeta, f: &str) -> serde_json::Value {
    let rest: Vec<&String> = m.finalizers.iter().flatten().filter(|x| *x != f).collect();
    json!({"metadata": {"resourceVersion": m.resource_version, "finalizers": if rest.is_empty() { serde_json::Value::Null } else { json!(rest) }}})
}

/// Reconcile one claim (`namespace/name`) or volume (`name`).
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let res = if key.contains('/') {
        let Some(c) = ctx
            .claims
            .get(&key)
            .filter(|c| holds(&c.metadata, PVC_PROTECTION))
        else {
            return Ok(Action::AwaitChange);
        };
        // In use: a pod scheduled to a node names it (whatever its phase).
        let in_use = ctx
            .pods
            .by_index("claim", &key)
            .iter()
            .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
        if in_use {
            return Ok(Action::AwaitChange);
        }
        let ns = c.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<PersistentVolumeClaim> = Api::namespaced(&ctx.client, ns);
        api.patch(
            c.metadata.name.as_deref().unwrap_or(""),
            &without(&c.metadata, PVC_PROTECTION),
        )
        .await
        .map(|_| ())
    } else {
        let Some(v) = ctx
            .volumes
            .get(&key)
            .filter(|v| holds(&v.metadata, PV_PROTECTION))
        else {
            return Ok(Action::AwaitChange);
        };
        if v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
            return Ok(Action::AwaitChange);
        }
        let api: Api<PersistentVolume> = Api::all(&ctx.client);
        api.patch(&key, &without(&v.metadata, PV_PROTECTION))
            .await
            .map(|_| ())
    };
    match res {
        Ok(()) => Ok(Action::AwaitChange),
        Err(e) if e.is_conflict() || e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e.into()),
    }
}
