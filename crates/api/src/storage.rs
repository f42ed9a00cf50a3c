//! Storage binding vocabulary shared by the PersistentVolume controller, the provisioner and
//! the scheduler's volume binding: the well-known annotations, a claim's and a volume's
//! class, sizes, whether a claim is fully bound, and whether a volume can hold a claim.

use crate::quantity;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A claim whose binding the controller finished.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// A binding the controller (not the user) made.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The provisioner that created a volume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The node the scheduler chose for a `WaitForFirstConsumer` claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The provisioner asked to provision a claim (and its beta twin).
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const STORAGE_PROVISIONER_BETA: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const CLASS_BETA: &str = "volume.beta.kubernetes.io/storage-class";

/// `namespace/claim` of each PersistentVolumeClaim a pod's volumes name.
pub fn pod_claims(p: &Pod) -> Vec<String> {
    let ns = p.metadata.namespace.as_deref().unwrap_or("default");
    p.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| format!("{ns}/{}", c.claim_name))
        .collect()
}

/// Index of free volumes: the class of an Available volume no claim holds (none otherwise),
/// so matching a claim visits only the volumes it could get.
pub fn available_class(v: &PersistentVolume) -> Vec<String> {
    let free = volume_phase(v) == "Available"
        && v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none();
    if free {
        vec![volume_class(v)]
    } else {
        Vec::new()
    }
}

/// Index of claimed volumes: `namespace/name` of the claim a volume's claimRef names.
pub fn claimed_by(v: &PersistentVolume) -> Vec<String> {
    v.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|r| {
            format!(
                "{}/{}",
                r.namespace.as_deref().unwrap_or(""),
                r.name.as_deref().unwrap_or("")
            )
        })
        .into_iter()
        .collect()
}

/// An annotation's value.
pub fn annotation<'a>(m: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

/// A claim's class (`""` for none).
pub fn claim_class(c: &PersistentVolumeClaim) -> String {
    annotation(&c.metadata, CLASS_BETA)
        .map(str::to_string)
        .or_else(|| c.spec.as_ref()?.storage_class_name.clone())
        .unwrap_or_default()
}

/// A volume's class (`""` for none).
pub fn volume_class(v: &PersistentVolume) -> String {
    annotation(&v.metadata, CLASS_BETA)
        .map(str::to_string)
        .or_else(|| v.spec.as_ref()?.storage_class_name.clone())
        .unwrap_or_default()
}

/// Whether the claim's binding is complete (what the scheduler waits for).
pub fn fully_bound(c: &PersistentVolumeClaim) -> bool {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty())
        && annotation(&c.metadata, BIND_COMPLETED).is_some()
}

/// The volume a claim names (`""` for none).
pub fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

/// The storage a claim requests, in bytes.
pub fn requested_bytes(c: &PersistentVolumeClaim) -> i64 {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .and_then(|q| quantity::bytes(&q.0))
        .unwrap_or(0)
}

/// A volume's capacity, in bytes.
pub fn capacity_bytes(v: &PersistentVolume) -> i64 {
    v.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref()?.get("storage"))
        .and_then(|q| quantity::bytes(&q.0))
        .unwrap_or(0)
}

/// A volume's phase (`""` before it has one).
pub fn volume_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Why `v` cannot hold `c`, if it cannot (Kubernetes' `checkVolumeSatisfyClaim`).
pub fn mismatch(v: &PersistentVolume, c: &PersistentVolumeClaim) -> Option<String> {
    let name = v.metadata.name.as_deref().unwrap_or("");
    if v.metadata.deletion_timestamp.is_some() {
        return Some(format!("the volume is marked for deletion {name:?}"));
    }
    if capacity_bytes(v) < requested_bytes(c) {
        return Some("requested PV is too small".into());
    }
    if volume_class(v) != claim_class(c) {
        return Some("storageClassName does not match".into());
    }
    let mode = |m: Option<&String>| m.map_or("Filesystem", |m| m.as_str()).to_string();
    let (vs, cs) = (
        v.spec.clone().unwrap_or_default(),
        c.spec.clone().unwrap_or_default(),
    );
    if mode(vs.volume_mode.as_ref()) != mode(cs.volume_mode.as_ref()) {
        return Some("incompatible volumeMode".into());
    }
    let have = vs.access_modes.unwrap_or_default();
    if !cs.access_modes.iter().flatten().all(|m| have.contains(m)) {
        return Some("incompatible accessMode".into());
    }
    None
}
