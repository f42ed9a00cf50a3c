//! The simulated local-path provisioner (kind's and k3s' `rancher.io/local-path`): a claim
//! the PersistentVolume controller handed to it gets a volume `pvc-<claim uid>`, a host
//! directory on the node the scheduler selected (`WaitForFirstConsumer`, pinned there by node
//! affinity) or, for an `Immediate` class, a directory any node reaches; a released volume
//! with policy `Delete` is deleted. No directory is made: the container runtime is simulated.

use crate::wiring::{claim_and_volume_keys, Informers};
use crate::Ctx;
use coxswain_api::storage::{
    claim_class, fully_bound, PROVISIONED_BY, SELECTED_NODE, STORAGE_PROVISIONER,
};
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::{json, Value};
use std::sync::Arc;

/// The provisioner's name.
pub const NAME: &str = "rancher.io/local-path";
/// Where its directories live on a node (kind's configuration).
const BASE: &str = "/var/local-path-provisioner";

/// What wakes it: claims (to provision) and volumes (to delete).
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    claim_and_volume_keys(inf, q);
}

/// Reconcile one claim (`namespace/name`) or volume (`name`).
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    if key.contains('/') {
        let Some(c) = ctx.claims.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        provision(&ctx, &c).await
    } else {
        let Some(v) = ctx.volumes.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let ours = v
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| p == NAME);
        let spec = v.spec.clone().unwrap_or_default();
        let released = v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        if ours
            && released
            && spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete")
            && v.metadata.deletion_timestamp.is_none()
        {
            let api: Api<PersistentVolume> = Api::all(&ctx.client);
            api.delete(&key, &DeleteParams::default()).await?;
            tracing::info!(volume = %key, "deleted its directory and the volume");
        }
        Ok(Action::AwaitChange)
    }
}

fn fail(ctx: &Ctx, c: &PersistentVolumeClaim, class: &str, why: &str) -> anyhow::Result<Action> {
    let msg = format!("failed to provision volume with StorageClass {class:?}: {why}");
    ctx.recorder
        .record(object_ref(c), "Warning", "ProvisioningFailed", msg);
    Ok(Action::AwaitChange)
}

async fn provision(ctx: &Ctx, c: &PersistentVolumeClaim) -> anyhow::Result<Action> {
    let ann = c.metadata.annotations.clone().unwrap_or_default();
    if c.metadata.deletion_timestamp.is_some()
        || fully_bound(c)
        || ann.get(STORAGE_PROVISIONER).map(String::as_str) != Some(NAME)
    {
        return Ok(Action::AwaitChange);
    }
    let class = claim_class(c);
    let Some(sc) = ctx
        .storageclasses
        .get(&class)
        .filter(|s| s.provisioner == NAME)
    else {
        return Ok(Action::AwaitChange);
    };
    let node = ann.get(SELECTED_NODE);
    let wait = sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    if wait && node.is_none() {
        return Ok(Action::AwaitChange);
    }
    let uid = c.metadata.uid.clone().unwrap_or_default();
    let pv_name = format!("pvc-{uid}");
    if ctx.volumes.get(&pv_name).is_some() {
        return Ok(Action::AwaitChange);
    }
    let (ns, name) = (
        c.metadata.namespace.clone().unwrap_or_default(),
        c.metadata.name.clone().unwrap_or_default(),
    );
    let api: Api<PersistentVolumeClaim> = Api::namespaced(&ctx.client, &ns);
    let spec = c.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return fail(ctx, c, &class, "claim.Spec.Selector is not supported");
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes
        .iter()
        .any(|m| m != "ReadWriteOnce" && m != "ReadWriteOncePod")
    {
        return fail(
            ctx,
            c,
            &class,
            "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes",
        );
    }
    let mut annotations = json!({PROVISIONED_BY: NAME});
    let mut affinity = Value::Null;
    if let Some(node) = node {
        // The node is gone: hand the claim back to the scheduler.
        let Some(n) = ctx.nodes.get(node) else {
            let patch = json!({"metadata": {"annotations": {SELECTED_NODE: null}}});
            api.patch(&name, &patch).await?;
            return fail(ctx, c, &class, &format!("nodes {node:?} not found"));
        };
        let host = crate::claim::labels(&*n)
            .get("kubernetes.io/hostname")
            .cloned()
            .unwrap_or_else(|| node.clone());
        annotations["local.path.provisioner/selected-node"] = json!(node);
        affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}});
    }
    ctx.recorder.record(
        object_ref(c),
        "Normal",
        "Provisioning",
        format!("External provisioner is provisioning volume for claim \"{ns}/{name}\""),
    );
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name, "annotations": annotations},
        "spec": {
            "accessModes": modes,
            "capacity": {"storage": spec.resources.as_ref().and_then(|r| r.requests.as_ref()?.get("storage").cloned())},
            "hostPath": {"path": format!("{BASE}/{pv_name}_{ns}_{name}"), "type": "DirectoryOrCreate"},
            "nodeAffinity": affinity,
            "persistentVolumeReclaimPolicy": sc.reclaim_policy.as_deref().unwrap_or("Delete"),
            "storageClassName": class,
            "volumeMode": spec.volume_mode.as_deref().unwrap_or("Filesystem"),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                "uid": uid, "resourceVersion": c.metadata.resource_version},
        }
    }))?;
    match Api::<PersistentVolume>::all(&ctx.client).create(&pv).await {
        Ok(_) => {
            ctx.recorder.record(
                object_ref(c),
                "Normal",
                "ProvisioningSucceeded",
                format!("Successfully provisioned volume {pv_name}"),
            );
            Ok(Action::AwaitChange)
        }
        Err(e) if e.is_conflict() => Ok(Action::AwaitChange),
        Err(e) => fail(ctx, c, &class, &e.message()),
    }
}
