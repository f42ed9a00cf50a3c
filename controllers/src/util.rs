//! Pure helpers shared by the controllers: owner references, template hashing, pod state.

use coxswain_client::Object;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The controller owner reference pointing at `owner`.
pub fn controller_ref<K: Object>(owner: &K) -> OwnerReference {
    let m = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The UID of the object's controller, if it has one.
pub fn controller_uid(m: &ObjectMeta) -> Option<String> {
    m.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// UIDs of every owner (for the garbage collector's index).
pub fn owner_uids(m: &ObjectMeta) -> Vec<String> {
    m.owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

/// FNV-1a, 32 bit.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Drop what clients add or leave out without meaning a different template
/// (`creationTimestamp: null`, empty `resources`), so equal templates hash equal.
pub fn normalized_template(t: &PodTemplateSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(md) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        md.remove("creationTimestamp");
        if let Some(labels) = md.get_mut("labels").and_then(|l| l.as_object_mut()) {
            labels.remove("pod-template-hash");
        }
    }
    v
}

/// The `pod-template-hash` of a template: stable across processes and restarts.
pub fn template_hash(t: &PodTemplateSpec) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let json = serde_json::to_vec(&normalized_template(t)).unwrap_or_default();
    fnv1a32(&json)
        .to_string()
        .bytes()
        .map(|b| ALPHABET[(b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Not being deleted and not finished.
pub fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        )
}

/// The pod's phase (`""` while it has none).
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Ready for at least `min_ready` seconds (what Kubernetes calls available).
pub fn available(p: &Pod, min_ready: i64) -> bool {
    ready_since(p).is_some_and(|t| {
        chrono::Utc::now() - t
            >= chrono::Duration::try_seconds(min_ready).unwrap_or(chrono::Duration::MAX)
    })
}

/// The pod's Ready condition is True.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// When the pod's Ready condition last became True (None if not ready).
pub fn ready_since(p: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(chrono::Utc::now)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_null_timestamp_and_hash_label() {
        let a: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        .unwrap();
        let b: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "x"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})).unwrap();
        assert_eq!(template_hash(&a), template_hash(&b));
        let c: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}))
        .unwrap();
        assert_ne!(template_hash(&a), template_hash(&c));
        assert!(template_hash(&a).len() >= 8);
    }
}
