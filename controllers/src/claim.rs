//! Adoption and release by selector (Kubernetes' ControllerRefManager): a controller owns the
//! objects whose controller reference points at it *and* whose labels match its selector. It
//! adopts orphans that match (adding its controller reference) and releases owned objects
//! whose labels stopped matching (removing it). Both writes carry the object's
//! resourceVersion, so a concurrent change wins and the next reconcile looks again.

use crate::util::controller_ref;
use coxswain_api::selector::LabelSelector;
use coxswain_client::{Api, Object};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// An object's labels, borrowed (a reconcile looks at every pod of its ReplicaSet).
/// An object's labels (empty when it has none).
pub fn labels<K: Object>(k: &K) -> &std::collections::BTreeMap<String, String> {
    static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    k.metadata().labels.as_ref().unwrap_or(&NONE)
}

fn refs_patch<K: Object>(k: &K, refs: Vec<Value>) -> Value {
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        Value::Array(refs)
    };
    json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": k.metadata().resource_version,
    }})
}

/// The objects `owner` controls after adopting matching `orphans` and releasing `owned`
/// objects that no longer match `selector`.
pub async fn claim<O, K>(
    api: &Api<K>,
    owner: &O,
    selector: &LabelSelector,
    owned: Vec<Arc<K>>,
    orphans: Vec<Arc<K>>,
) -> Vec<Arc<K>>
where
    O: Object,
    K: Object + Clone + Serialize + DeserializeOwned,
{
    let owner_uid = owner.metadata().uid.clone().unwrap_or_default();
    let mut claimed = Vec::with_capacity(owned.len());
    for k in owned {
        if !selector.is_empty() && selector.matches(labels(&*k)) {
            claimed.push(k);
            continue;
        }
        let name = k.metadata().name.clone().unwrap_or_default();
        let rest: Vec<Value> = k
            .metadata()
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner_uid)
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        match api.patch(&name, &refs_patch(&*k, rest)).await {
            Ok(_) => tracing::info!(object = %name, "released: labels no longer match"),
            Err(e) => tracing::debug!(object = %name, error = %e, "release failed; retried later"),
        }
    }
    if owner.metadata().deletion_timestamp.is_some() || selector.is_empty() {
        return claimed;
    }
    for k in orphans {
        let m = k.metadata();
        if m.deletion_timestamp.is_some() || !selector.matches(labels(&*k)) {
            continue;
        }
        let name = m.name.clone().unwrap_or_default();
        let mut refs: Vec<Value> = m
            .owner_references
            .iter()
            .flatten()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        refs.extend(serde_json::to_value(controller_ref(owner)).ok());
        match api.patch(&name, &refs_patch(&*k, refs)).await {
            Ok(adopted) => {
                tracing::info!(object = %name, "adopted: labels match the selector");
                claimed.push(Arc::new(adopted));
            }
            Err(e) => tracing::debug!(object = %name, error = %e, "adoption failed; retried later"),
        }
    }
    claimed
}
