//! ControllerRevisions, the history StatefulSets and DaemonSets keep of their pod templates
//! (`kubectl rollout history|undo` read and apply them): the revision of the current template
//! is found or made (named `<owner>-<hash>`, data `{"spec":{"template":{"$patch":"replace",
//! ...}}}`, numbered one past the newest; an old equal revision is renumbered instead, which
//! is what a rollback looks like), and the oldest revisions no pod uses are pruned beyond
//! the owner's `revisionHistoryLimit`.

use crate::util::controller_ref;
use crate::Ctx;
use coxswain_client::{Api, DeleteParams, Object};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The revision data of a template: a strategic merge patch that restores it.
pub fn patch_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
        // The stored template carries `creationTimestamp: null`, as Kubernetes' does.
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.entry("creationTimestamp").or_insert(Value::Null);
        }
    }
    json!({"spec": {"template": t}})
}

/// Kubernetes' revision hash: FNV-1 (32 bit) over the data and the collision count, its
/// decimal digits spelled in the alphabet of generated names.
pub fn hash(data: &[u8], collisions: i32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c9dc5;
    for b in data.iter().chain(collisions.to_string().as_bytes()) {
        h = h.wrapping_mul(0x01000193);
        h ^= u32::from(*b);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The owner's revisions, oldest first.
pub fn revisions(ctx: &Ctx, owner_uid: &str) -> Vec<Arc<ControllerRevision>> {
    let mut revs = ctx.revisions.by_index("controller", owner_uid);
    revs.sort_by_key(|r| (r.revision, r.metadata.name.clone()));
    revs
}

/// The revision of `template` for `owner`: found, renumbered, or created. `hash_label` is
/// the label the revision carries its hash in. Returns the revision and its hash.
pub async fn current<K: Object>(
    ctx: &Ctx,
    owner: &K,
    template: &PodTemplateSpec,
    collisions: i32,
    hash_label: &str,
    selector: &coxswain_api::selector::LabelSelector,
) -> anyhow::Result<(ControllerRevision, String)> {
    let m = owner.metadata();
    let ns = m.namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(&ctx.client, &ns);
    // Revisions left by an owner deleted with --cascade=orphan are adopted, as pods are.
    let orphans = ctx.revisions.by_index("orphan", &ns);
    if !orphans.is_empty() && !selector.is_empty() {
        crate::claim::claim(&api, owner, selector, Vec::new(), orphans).await;
    }
    let revs = revisions(ctx, m.uid.as_deref().unwrap_or(""));
    let data = patch_data(template);
    let h = hash(&serde_json::to_vec(&data)?, collisions);
    let newest = revs.last().map_or(0, |r| r.revision);
    if let Some(same) = revs
        .iter()
        .rev()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        if same.revision == newest {
            return Ok(((**same).clone(), h));
        }
        // Back to an older template: that revision becomes the newest.
        let name = same.metadata.name.clone().unwrap_or_default();
        let patch = json!({"revision": newest + 1});
        return Ok((api.patch(&name, &patch).await?, h));
    }
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|t| t.labels.clone())
        .unwrap_or_default();
    labels.insert(hash_label.into(), h.clone());
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{h}", m.name.as_deref().unwrap_or(""))),
            namespace: Some(ns),
            labels: Some(labels),
            annotations: m.annotations.clone(),
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: newest + 1,
    };
    match api.create(&rev).await {
        Ok(r) => Ok((r, h)),
        Err(e) if e.code() == Some(409) => {
            // A revision of that name exists: ours not yet in the cache, or left behind
            // by an owner deleted with --cascade=orphan (adopted), or a true hash
            // collision (the owner's collisionCount goes up and the next pass hashes anew).
            let name = rev.metadata.name.clone().unwrap_or_default();
            let existing = api.get(&name).await?;
            if existing.data.as_ref().map(|d| &d.0) == rev.data.as_ref().map(|d| &d.0) {
                if existing
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
                {
                    let refs = json!({"metadata": {"ownerReferences": [controller_ref(owner)],
                        "resourceVersion": existing.metadata.resource_version}});
                    return Ok((api.patch(&name, &refs).await?, h));
                }
                return Ok((existing, h));
            }
            let owners: Api<K> = Api::namespaced(&ctx.client, m.namespace.as_deref().unwrap_or(""));
            let bump = json!({"status": {"collisionCount": collisions.saturating_add(1)}});
            owners
                .patch_status(m.name.as_deref().unwrap_or(""), &bump)
                .await?;
            anyhow::bail!("revision {name} collides with another template; hashing again");
        }
        Err(e) => Err(e.into()),
    }
}

/// Delete the oldest revisions beyond `limit` that no pod and neither named revision uses.
pub async fn prune(
    ctx: &Ctx,
    owner_uid: &str,
    ns: &str,
    limit: i32,
    live: &HashSet<String>,
) -> anyhow::Result<()> {
    let revs = revisions(ctx, owner_uid);
    let unused: Vec<&Arc<ControllerRevision>> = revs
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or("")))
        .collect();
    let extra = unused.len().saturating_sub(limit.max(0) as usize);
    let api: Api<ControllerRevision> = Api::namespaced(&ctx.client, ns);
    for r in unused.into_iter().take(extra) {
        let name = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_spells_digits_as_kubernetes_does() {
        // Digits map 0->4 1->5 2->6 3->7 4->8 5->9 6->b 7->c 8->d 9->f.
        let h = hash(b"{}", 0);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
        assert_ne!(hash(b"{}", 0), hash(b"{}", 1));
    }

    #[test]
    fn data_replaces_the_template() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        .unwrap();
        let d = serde_json::to_string(&patch_data(&t)).unwrap();
        assert!(
            d.starts_with(r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}}"#),
            "{d}"
        );
    }
}
