//! The PersistentVolume controller (kube-controller-manager's `persistentvolume-binder`):
//! binds each claim to the smallest Available volume that satisfies it (or to the volume it
//! names, or the one pre-bound to it), asks the class's provisioner for a volume when none
//! fits (after the scheduler picked a node, for `WaitForFirstConsumer`), marks volumes
//! Available/Bound/Released and claims Pending/Bound/Lost, and reclaims a released volume
//! by its policy. Keys: `namespace/name` is a claim, a bare name a volume.

use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_api::storage::*;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{Action, Change, Queue};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::{json, Value};
use std::sync::Arc;

/// Whether the volume's claimRef names this claim (an empty UID pre-binds by name).
fn refers_to(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    v.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| {
            r.namespace == c.metadata.namespace
                && r.name == c.metadata.name
                && r.uid
                    .as_deref()
                    .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
        })
}

/// The smallest Available volume of the claim's class that satisfies it (one pre-bound to
/// it wins at once); with `delay`, only pre-bound volumes (the scheduler binds the rest).
fn best_match(ctx: &Ctx, c: &PersistentVolumeClaim, delay: bool) -> Option<Arc<PersistentVolume>> {
    let selector = c
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| coxswain_api::selector::LabelSelector::from_k8s(s).ok());
    let pre_bound = ctx.volumes.by_index("claim", &meta_key(&c.metadata));
    if let Some(v) = pre_bound
        .into_iter()
        .find(|v| refers_to(v, c) && mismatch(v, c).is_none())
    {
        return Some(v);
    }
    if delay {
        return None;
    }
    let mut best: Option<Arc<PersistentVolume>> = None;
    for v in ctx.volumes.by_index("available", &claim_class(c)) {
        let labels = crate::claim::labels(&*v);
        if mismatch(&v, c).is_some() || selector.as_ref().is_some_and(|s| !s.matches(labels)) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| capacity_bytes(&v) < capacity_bytes(b))
        {
            best = Some(v);
        }
    }
    best
}

/// What wakes the controller: every claim and volume change, a claim's volume when the
/// claim goes, a volume's claim when the volume changes, and the unbound claims of its
/// class when a volume is free.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let cq = q.clone();
    inf.claims.on_change(move |c| {
        cq.add(meta_key(changed_meta(c)));
        if let Change::Deleted(old) = c {
            let v = volume_name(old);
            if !v.is_empty() {
                cq.add(v.to_string());
            }
        }
    });
    let vq = q.clone();
    let claims = ctx.claims.clone();
    inf.volumes.on_change(move |c| {
        let m = changed_meta(c);
        vq.add(m.name.clone().unwrap_or_default());
        if let Change::Applied { new, .. } = c {
            match new.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                Some(r) => vq.add(key_of(
                    r.namespace.as_deref(),
                    r.name.as_deref().unwrap_or(""),
                )),
                None => {
                    for c in claims.by_index("unbound", &volume_class(new)) {
                        vq.add(meta_key(&c.metadata));
                    }
                }
            }
        }
    });
}

/// Reconcile one claim (`namespace/name`) or volume (`name`).
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    if key.contains('/') {
        let Some(c) = ctx.claims.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        if annotation(&c.metadata, BIND_COMPLETED).is_some() {
            sync_bound_claim(&ctx, &c).await
        } else {
            sync_unbound_claim(&ctx, &c).await
        }
    } else {
        let Some(v) = ctx.volumes.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        sync_volume(&ctx, &v).await
    }
}

fn warn(ctx: &Ctx, c: &PersistentVolumeClaim, type_: &str, reason: &str, msg: String) {
    ctx.recorder.record(object_ref(c), type_, reason, msg);
}

async fn sync_unbound_claim(ctx: &Ctx, c: &PersistentVolumeClaim) -> anyhow::Result<Action> {
    let wanted = volume_name(c);
    if wanted.is_empty() {
        let class = claim_class(c);
        let sc = ctx.storageclasses.get(&class);
        let delay = sc.as_ref().and_then(|s| s.volume_binding_mode.as_deref())
            == Some("WaitForFirstConsumer");
        if let Some(v) = best_match(ctx, c, delay) {
            return bind(ctx, &v, c).await;
        }
        if delay && annotation(&c.metadata, SELECTED_NODE).is_none() {
            let pods: Vec<String> = ctx
                .pods
                .by_index("claim", &meta_key(&c.metadata))
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            match pods.as_slice() {
                [] => warn(
                    ctx,
                    c,
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding".into(),
                ),
                [p] => warn(
                    ctx,
                    c,
                    "Normal",
                    "WaitForPodScheduled",
                    format!("waiting for pod {p} to be scheduled"),
                ),
                ps => warn(
                    ctx,
                    c,
                    "Normal",
                    "WaitForPodScheduled",
                    format!("waiting for pods {} to be scheduled", ps.join(",")),
                ),
            }
        } else if !class.is_empty() {
            provision(ctx, c, &class, sc.as_deref()).await?;
        } else {
            warn(
                ctx,
                c,
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            );
        }
        return claim_phase(ctx, c, "Pending").await;
    }
    let Some(v) = ctx.volumes.get(wanted) else {
        return claim_phase(ctx, c, "Pending").await;
    };
    let claim_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if claim_ref.is_none() {
        if let Some(why) = mismatch(&v, c) {
            let msg = format!("Cannot bind to requested volume {wanted:?}: {why}");
            warn(ctx, c, "Warning", "VolumeMismatch", msg);
            return claim_phase(ctx, c, "Pending").await;
        }
        return bind(ctx, &v, c).await;
    }
    if refers_to(&v, c) {
        return bind(ctx, &v, c).await;
    }
    let msg = format!("volume {wanted:?} already bound to a different claim.");
    warn(ctx, c, "Warning", "FailedBinding", msg);
    claim_phase(ctx, c, "Pending").await
}

async fn sync_bound_claim(ctx: &Ctx, c: &PersistentVolumeClaim) -> anyhow::Result<Action> {
    let name = volume_name(c);
    let lost = if name.is_empty() {
        Some((
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ))
    } else {
        match ctx.volumes.get(name) {
            None => Some((
                "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            )),
            Some(v) => {
                let r = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                if r.is_none() || r.and_then(|r| r.uid.as_ref()) == c.metadata.uid.as_ref() {
                    return bind(ctx, &v, c).await;
                }
                Some((
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                ))
            }
        }
    };
    if let Some((reason, msg)) = lost {
        if claim_phase_of(c) != "Lost" {
            warn(ctx, c, "Warning", reason, msg.into());
        }
        return claim_phase(ctx, c, "Lost").await;
    }
    Ok(Action::AwaitChange)
}

fn claim_phase_of(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn claim_phase(ctx: &Ctx, c: &PersistentVolumeClaim, phase: &str) -> anyhow::Result<Action> {
    if claim_phase_of(c) == phase {
        return Ok(Action::AwaitChange);
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(
        &ctx.client,
        c.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let mut status = json!({"phase": phase});
    if phase == "Pending" {
        status["accessModes"] = Value::Null;
        status["capacity"] = Value::Null;
    }
    let patch =
        json!({"metadata": {"resourceVersion": c.metadata.resource_version}, "status": status});
    ignore_gone(
        api.patch_status(c.metadata.name.as_deref().unwrap_or(""), &patch)
            .await,
    )
}

fn ignore_gone<T>(r: Result<T, coxswain_client::Error>) -> anyhow::Result<Action> {
    match r {
        Ok(_) => Ok(Action::AwaitChange),
        // Changed or gone meanwhile: the informer brings the next version.
        Err(e) if e.is_conflict() || e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e.into()),
    }
}

/// Ask for a volume: an external provisioner is named on the claim and waited for; a
/// `kubernetes.io/` one has no plugin here.
async fn provision(
    ctx: &Ctx,
    c: &PersistentVolumeClaim,
    class: &str,
    sc: Option<&k8s_openapi::api::storage::v1::StorageClass>,
) -> anyhow::Result<()> {
    let Some(sc) = sc else {
        let msg = format!("storageclass.storage.k8s.io {class:?} not found");
        warn(ctx, c, "Warning", "ProvisioningFailed", msg);
        return Ok(());
    };
    let prov = sc.provisioner.as_str();
    if prov.starts_with("kubernetes.io/") {
        let msg = format!("Failed to provision volume with StorageClass {class:?}: no volume plugin matched name: {prov}");
        warn(ctx, c, "Warning", "ProvisioningFailed", msg);
        return Ok(());
    }
    if annotation(&c.metadata, STORAGE_PROVISIONER) != Some(prov) {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            &ctx.client,
            c.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = json!({"metadata": {"resourceVersion": c.metadata.resource_version,
            "annotations": {STORAGE_PROVISIONER: prov, STORAGE_PROVISIONER_BETA: prov}}});
        if let Err(e) = api
            .patch(c.metadata.name.as_deref().unwrap_or(""), &patch)
            .await
        {
            if !e.is_conflict() && !e.is_not_found() {
                return Err(e.into());
            }
        }
    }
    let msg = format!("Waiting for a volume to be created either by the external provisioner '{prov}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.");
    warn(ctx, c, "Normal", "ExternalProvisioning", msg);
    Ok(())
}

/// Bind volume and claim: the volume's claimRef, its phase, the claim's volumeName and
/// annotations, the claim's phase, capacity and access modes; each write only if needed.
async fn bind(
    ctx: &Ctx,
    v: &PersistentVolume,
    c: &PersistentVolumeClaim,
) -> anyhow::Result<Action> {
    let vname = v.metadata.name.clone().unwrap_or_default();
    let cname = c.metadata.name.clone().unwrap_or_default();
    let ns = c
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let pvs: Api<PersistentVolume> = Api::all(&ctx.client);
    let full_ref = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
        "name": cname, "uid": c.metadata.uid, "resourceVersion": c.metadata.resource_version});
    let cur_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if cur_ref.and_then(|r| r.uid.as_deref()) != c.metadata.uid.as_deref() {
        let mut meta = json!({"resourceVersion": v.metadata.resource_version});
        if cur_ref.is_none() {
            meta["annotations"] = json!({BOUND_BY_CONTROLLER: "yes"});
        }
        let r = pvs
            .patch(
                &vname,
                &json!({"metadata": meta, "spec": {"claimRef": full_ref}}),
            )
            .await;
        return ignore_gone(r);
    }
    if volume_phase(v) != "Bound" {
        let r = pvs
            .patch_status(
                &vname,
                &json!({"status": {"phase": "Bound", "message": null, "reason": null}}),
            )
            .await;
        return ignore_gone(r);
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(&ctx.client, &ns);
    if volume_name(c) != vname || annotation(&c.metadata, BIND_COMPLETED).is_none() {
        let mut ann = json!({BIND_COMPLETED: "yes"});
        if volume_name(c) != vname {
            ann[BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({"metadata": {"resourceVersion": c.metadata.resource_version, "annotations": ann},
            "spec": {"volumeName": vname}});
        return ignore_gone(api.patch(&cname, &patch).await);
    }
    let spec = v.spec.clone().unwrap_or_default();
    let status = c.status.clone().unwrap_or_default();
    if claim_phase_of(c) != "Bound"
        || status.capacity != spec.capacity
        || status.access_modes != spec.access_modes
    {
        let patch = json!({"status": {"phase": "Bound", "accessModes": spec.access_modes, "capacity": spec.capacity}});
        ignore_gone(api.patch_status(&cname, &patch).await)?;
        tracing::info!(claim = %key_of(Some(&ns), &cname), volume = %vname, "bound");
    }
    Ok(Action::AwaitChange)
}

async fn sync_volume(ctx: &Ctx, v: &PersistentVolume) -> anyhow::Result<Action> {
    let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        return volume_phase_to(ctx, v, "Available").await;
    };
    if r.uid.as_deref().is_none_or(str::is_empty) {
        return volume_phase_to(ctx, v, "Available").await;
    }
    let (ns, name) = (
        r.namespace.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
    );
    // The cache may trail: ask the API server before declaring the claim gone.
    let claim = match ctx.claims.get(&key_of(Some(&ns), &name)) {
        Some(c) if c.metadata.uid == r.uid => Some(c),
        _ if ns.is_empty() || name.is_empty() => None,
        _ => Api::<PersistentVolumeClaim>::namespaced(&ctx.client, &ns)
            .get_opt(&name)
            .await?
            .filter(|c| c.metadata.uid == r.uid)
            .map(Arc::new),
    };
    let vname = v.metadata.name.as_deref().unwrap_or("");
    let Some(c) = claim else {
        return release(ctx, v).await;
    };
    match volume_name(&c) {
        "" => Ok(Action::AwaitChange), // the claim's own sync binds it (it was woken too)
        n if n == vname => volume_phase_to(ctx, v, "Bound").await,
        _ if annotation(&v.metadata, PROVISIONED_BY).is_some()
            && v.spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                == Some("Delete") =>
        {
            release(ctx, v).await
        }
        _ => {
            // The claim went to another volume: this one is free again.
            let pvs: Api<PersistentVolume> = Api::all(&ctx.client);
            let patch = if annotation(&v.metadata, BOUND_BY_CONTROLLER).is_some() {
                json!({"metadata": {"resourceVersion": v.metadata.resource_version, "annotations": {BOUND_BY_CONTROLLER: null}}, "spec": {"claimRef": null}})
            } else {
                json!({"metadata": {"resourceVersion": v.metadata.resource_version}, "spec": {"claimRef": {"uid": null}}})
            };
            ignore_gone(pvs.patch(vname, &patch).await)
        }
    }
}

/// The claim is gone: Released, then reclaimed by the volume's policy.
async fn release(ctx: &Ctx, v: &PersistentVolume) -> anyhow::Result<Action> {
    if !matches!(volume_phase(v), "Released" | "Failed") {
        return volume_phase_to(ctx, v, "Released").await;
    }
    let policy = v
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    let failed = match policy {
        "Retain" => None,
        // An external provisioner deletes its own volumes.
        "Delete" if annotation(&v.metadata, PROVISIONED_BY).is_some_and(|p| !p.starts_with("kubernetes.io/")) => None,
        "Delete" => Some(("VolumeFailedDelete", format!("error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched", v.metadata.name.as_deref().unwrap_or("")))),
        "Recycle" => Some(("VolumeFailedRecycle", "No recycler plugin found for the volume!".to_string())),
        _ => Some(("VolumeUnknownReclaimPolicy", "Volume has unrecognized PersistentVolumeReclaimPolicy".to_string())),
    };
    if let Some((reason, msg)) = failed {
        if volume_phase(v) != "Failed" {
            ctx.recorder
                .record(object_ref(v), "Warning", reason, msg.clone());
            let pvs: Api<PersistentVolume> = Api::all(&ctx.client);
            let patch = json!({"status": {"phase": "Failed", "message": msg}});
            return ignore_gone(
                pvs.patch_status(v.metadata.name.as_deref().unwrap_or(""), &patch)
                    .await,
            );
        }
    }
    Ok(Action::AwaitChange)
}

async fn volume_phase_to(ctx: &Ctx, v: &PersistentVolume, phase: &str) -> anyhow::Result<Action> {
    if volume_phase(v) == phase {
        return Ok(Action::AwaitChange);
    }
    let pvs: Api<PersistentVolume> = Api::all(&ctx.client);
    let patch = json!({"metadata": {"resourceVersion": v.metadata.resource_version},
        "status": {"phase": phase, "message": null, "reason": null}});
    ignore_gone(
        pvs.patch_status(v.metadata.name.as_deref().unwrap_or(""), &patch)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, size: &str, class: &str, modes: &[&str]) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "storageClassName": class, "accessModes": modes}}))
        .unwrap_or_default()
    }

    fn pvc(size: &str, class: &str, modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "default", "uid": "u1"},
            "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": class, "accessModes": modes}}))
        .unwrap_or_default()
    }

    #[test]
    fn a_volume_satisfies_a_claim_only_when_size_class_and_modes_fit() {
        let c = pvc("1Gi", "fast", &["ReadWriteOnce"]);
        assert_eq!(
            mismatch(
                &pv("a", "2Gi", "fast", &["ReadWriteOnce", "ReadOnlyMany"]),
                &c
            ),
            None
        );
        assert_eq!(
            mismatch(&pv("a", "500Mi", "fast", &["ReadWriteOnce"]), &c).as_deref(),
            Some("requested PV is too small")
        );
        assert_eq!(
            mismatch(&pv("a", "2Gi", "slow", &["ReadWriteOnce"]), &c).as_deref(),
            Some("storageClassName does not match")
        );
        assert_eq!(
            mismatch(&pv("a", "2Gi", "fast", &["ReadOnlyMany"]), &c).as_deref(),
            Some("incompatible accessMode")
        );
    }

    #[test]
    fn pre_binding_by_name_or_uid() {
        let c = pvc("1Gi", "", &["ReadWriteOnce"]);
        let mut v = pv("a", "1Gi", "", &["ReadWriteOnce"]);
        assert!(!refers_to(&v, &c));
        v.spec.get_or_insert_with(Default::default).claim_ref =
            serde_json::from_value(json!({"namespace": "default", "name": "c"})).ok();
        assert!(refers_to(&v, &c), "an empty UID binds by name");
        v.spec.get_or_insert_with(Default::default).claim_ref =
            serde_json::from_value(json!({"namespace": "default", "name": "c", "uid": "other"}))
                .ok();
        assert!(!refers_to(&v, &c), "another claim of the same name");
    }
}
