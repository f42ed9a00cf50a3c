//! Volume binding (kube-scheduler's VolumeBinding plugin): what a pod's PersistentVolumeClaims
//! demand of a node. Before a decision ([`Volumes::check`], PreFilter) a missing, deleting or
//! unbound `Immediate` claim makes the pod unschedulable anywhere; on each node
//! ([`Check::filter`]) a bound claim's volume must allow the node, and a `WaitForFirstConsumer`
//! claim needs an Available volume reachable there or a class that can provision there. Once
//! a node is chosen ([`Volumes::assume`], [`Volumes::bind`], Reserve and PreBind) matched
//! volumes are pre-bound and claims to provision get `volume.kubernetes.io/selected-node`,
//! and the pod is bound only after every claim is.

use crate::framework::NodeInfo;
use coxswain_api::placement::term_matches;
use coxswain_api::storage::*;
use coxswain_client::{Api, Client};
use coxswain_runtime::Store;
use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long PreBind waits for the claims to be bound (kube-scheduler's bindTimeoutSeconds).
const BIND_TIMEOUT: Duration = Duration::from_secs(600);

/// The scheduler's view of claims, volumes and classes, and what it has assumed.
pub struct Volumes {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    /// Claim key -> the node chosen for it, until its binding is seen.
    assumed_nodes: Mutex<HashMap<String, String>>,
    /// Volumes pre-bound by an attempt in flight.
    assumed_volumes: Mutex<HashSet<String>>,
}

/// A `WaitForFirstConsumer` claim still to bind.
#[derive(Debug, Clone)]
struct Delayed {
    key: String,
    claim: Arc<PersistentVolumeClaim>,
    /// The node already chosen for it, if any.
    selected: Option<String>,
    /// Its class can provision (a provisioner, not `kubernetes.io/no-provisioner`), and where.
    provisionable: Option<Option<Vec<k8s_openapi::api::core::v1::TopologySelectorTerm>>>,
}

/// One pod's volume demands (the PreFilter state).
#[derive(Debug, Default)]
pub struct Check {
    /// Node affinities of the volumes its bound claims hold.
    affinities: Vec<NodeSelector>,
    /// A bound claim's volume does not exist.
    missing_volume: bool,
    /// Claims to bind on the chosen node.
    delayed: Vec<Delayed>,
    /// Available volumes of the delayed claims' classes (name, volume), smallest first.
    candidates: Vec<Arc<PersistentVolume>>,
}

/// What to do for each delayed claim on the chosen node.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Pre-bind this volume to the claim.
    Volume { claim: String, volume: String },
    /// Have the claim provisioned for the node.
    Provision { claim: String },
}

fn affinity_ok(v: &PersistentVolume, n: &NodeInfo) -> bool {
    let required = v
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref()?.required.as_ref());
    required.is_none_or(|r| {
        r.node_selector_terms
            .iter()
            .any(|t| term_matches(t, &n.labels, &n.name))
    })
}

impl Check {
    /// Can the node take the pod's volumes? `Err(reason)` if not.
    pub fn filter(&self, n: &NodeInfo) -> Result<(), String> {
        if self.affinities.iter().any(|a| {
            !a.node_selector_terms
                .iter()
                .any(|t| term_matches(t, &n.labels, &n.name))
        }) {
            return Err("node(s) had volume node affinity conflict".into());
        }
        if self.plan(n).is_none() {
            return Err("node(s) didn't find available persistent volumes to bind".into());
        }
        if self.missing_volume {
            return Err(
                "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)".into(),
            );
        }
        Ok(())
    }

    /// How the delayed claims bind on this node (largest request first, each to the smallest
    /// volume that fits and is not taken), or `None` if one cannot.
    pub fn plan(&self, n: &NodeInfo) -> Option<Vec<Plan>> {
        let mut taken: HashSet<&str> = HashSet::new();
        let mut out = Vec::new();
        for d in &self.delayed {
            if d.selected.as_deref().is_some_and(|s| s != n.name) {
                return None;
            }
            let found = self.candidates.iter().find(|v| {
                let name = v.metadata.name.as_deref().unwrap_or("");
                !taken.contains(name)
                    && mismatch(v, &d.claim).is_none()
                    && affinity_ok(v, n)
                    && selects(&d.claim, v)
            });
            if let Some(v) = found {
                let name = v.metadata.name.as_deref().unwrap_or("");
                taken.insert(name);
                out.push(Plan::Volume {
                    claim: d.key.clone(),
                    volume: name.into(),
                });
                continue;
            }
            let topology_ok = |terms: &Option<Vec<_>>| {
                terms.as_ref().is_none_or(
                    |ts: &Vec<k8s_openapi::api::core::v1::TopologySelectorTerm>| {
                        ts.is_empty()
                            || ts.iter().any(|t| {
                                t.match_label_expressions.iter().flatten().all(|e| {
                                    n.labels.get(&e.key).is_some_and(|v| e.values.contains(v))
                                })
                            })
                    },
                )
            };
            match &d.provisionable {
                Some(terms) if topology_ok(terms) => out.push(Plan::Provision {
                    claim: d.key.clone(),
                }),
                _ => return None,
            }
        }
        Some(out)
    }
}

fn selects(c: &PersistentVolumeClaim, v: &PersistentVolume) -> bool {
    let Some(sel) = c.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return true;
    };
    coxswain_api::selector::LabelSelector::from_k8s(sel)
        .is_ok_and(|s| s.matches(v.metadata.labels.as_ref().unwrap_or(&Default::default())))
}

impl Volumes {
    pub fn new(
        claims: Store<PersistentVolumeClaim>,
        volumes: Store<PersistentVolume>,
        classes: Store<StorageClass>,
    ) -> Volumes {
        Volumes {
            claims,
            volumes,
            classes,
            assumed_nodes: Mutex::default(),
            assumed_volumes: Mutex::default(),
        }
    }

    /// PreFilter: `Ok(None)` for a pod without claims, `Err(message)` when no node can do.
    pub fn check(&self, p: &Pod) -> Result<Option<Check>, String> {
        let keys = pod_claims(p);
        if keys.is_empty() {
            return Ok(None);
        }
        let mut check = Check::default();
        let assumed_nodes = lock(&self.assumed_nodes).clone();
        let mut classes = HashSet::new();
        for key in keys {
            let name = key.rsplit('/').next().unwrap_or("").to_string();
            let Some(c) = self.claims.get(&key) else {
                return Err(format!("persistentvolumeclaim {name:?} not found"));
            };
            if c.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase == Some("Lost") {
                return Err(format!(
                    "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                    volume_name(&c)
                ));
            }
            if fully_bound(&c) {
                match self.volumes.get(volume_name(&c)) {
                    Some(v) => check.affinities.extend(
                        v.spec
                            .as_ref()
                            .and_then(|s| s.node_affinity.as_ref()?.required.clone()),
                    ),
                    None => check.missing_volume = true,
                }
                continue;
            }
            let class_name = claim_class(&c);
            let class = self.classes.get(&class_name);
            let delayed = volume_name(&c).is_empty()
                && class
                    .as_ref()
                    .and_then(|s| s.volume_binding_mode.as_deref())
                    == Some("WaitForFirstConsumer");
            if !delayed {
                return Err("pod has unbound immediate PersistentVolumeClaims".into());
            }
            let provisionable = class
                .as_ref()
                .filter(|s| {
                    !s.provisioner.is_empty() && s.provisioner != "kubernetes.io/no-provisioner"
                })
                .map(|s| s.allowed_topologies.clone());
            let selected = annotation(&c.metadata, SELECTED_NODE)
                .map(str::to_string)
                .or_else(|| assumed_nodes.get(&key).cloned());
            classes.insert(class_name);
            check.delayed.push(Delayed {
                key,
                claim: c,
                selected,
                provisionable,
            });
        }
        let taken = lock(&self.assumed_volumes).clone();
        for class in classes {
            check.candidates.extend(
                self.available(&class)
                    .into_iter()
                    .filter(|v| !taken.contains(v.metadata.name.as_deref().unwrap_or(""))),
            );
        }
        check.candidates.sort_by_key(|v| capacity_bytes(v));
        check
            .delayed
            .sort_by_key(|d| std::cmp::Reverse(requested_bytes(&d.claim)));
        Ok(Some(check))
    }

    /// Available, unclaimed volumes of a class.
    fn available(&self, class: &str) -> Vec<Arc<PersistentVolume>> {
        self.volumes.by_index("available", class)
    }

    /// Reserve: remember the plan so the next decisions see it before the API does.
    pub fn assume(&self, node: &str, plan: &[Plan]) {
        for p in plan {
            match p {
                Plan::Volume { volume, .. } => {
                    lock(&self.assumed_volumes).insert(volume.clone());
                }
                Plan::Provision { claim } => {
                    lock(&self.assumed_nodes).insert(claim.clone(), node.to_string());
                }
            }
        }
    }

    /// Unreserve: forget the plan.
    pub fn forget(&self, plan: &[Plan]) {
        for p in plan {
            match p {
                Plan::Volume { volume, .. } => {
                    lock(&self.assumed_volumes).remove(volume);
                }
                Plan::Provision { claim } => {
                    lock(&self.assumed_nodes).remove(claim);
                }
            }
        }
    }

    /// PreBind: write the plan, then wait until every claim of the pod is bound.
    pub async fn bind(
        &self,
        client: &Client,
        pod: &Pod,
        node: &str,
        plan: &[Plan],
        alive: impl Fn() -> bool,
    ) -> Result<(), String> {
        for p in plan {
            let r = match p {
                Plan::Volume { claim, volume } => {
                    let Some(c) = self.claims.get(claim) else {
                        return Err(format!("persistentvolumeclaim {claim:?} not found"));
                    };
                    let patch = json!({"metadata": {"annotations": {BOUND_BY_CONTROLLER: "yes"}},
                        "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                            "namespace": c.metadata.namespace, "name": c.metadata.name,
                            "uid": c.metadata.uid, "resourceVersion": c.metadata.resource_version}}});
                    Api::<PersistentVolume>::all(client)
                        .patch(volume, &patch)
                        .await
                        .map(|_| ())
                }
                Plan::Provision { claim } => {
                    let (ns, name) = claim.split_once('/').unwrap_or(("default", claim));
                    let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
                    Api::<PersistentVolumeClaim>::namespaced(client, ns)
                        .patch(name, &patch)
                        .await
                        .map(|_| ())
                }
            };
            r.map_err(|e| format!("binding volumes: {e}"))?;
        }
        let claims = pod_claims(pod);
        let start = Instant::now();
        // Claims whose selected node the informer has shown (a later removal is a failure).
        let mut seen: HashSet<&str> = HashSet::new();
        loop {
            let mut done = true;
            for key in &claims {
                let Some(c) = self.claims.get(key) else {
                    return Err(format!(
                        "binding volumes: persistentvolumeclaim {key:?} not found"
                    ));
                };
                if fully_bound(&c) {
                    continue;
                }
                done = false;
                let provisioning = plan
                    .iter()
                    .any(|p| matches!(p, Plan::Provision { claim } if claim == key));
                if provisioning {
                    if annotation(&c.metadata, SELECTED_NODE) == Some(node) {
                        seen.insert(key);
                    } else if seen.contains(key.as_str()) {
                        return Err(format!(
                            "binding volumes: provisioning failed for PVC {:?}",
                            c.metadata.name.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
            if done {
                return Ok(());
            }
            if !alive() {
                return Err("binding volumes: pod does not exist any more".into());
            }
            if start.elapsed() > BIND_TIMEOUT {
                return Err("binding volumes: context deadline exceeded".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::node;

    fn claim(name: &str, size: &str) -> Arc<PersistentVolumeClaim> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                    "resources": {"requests": {"storage": size}}}}))
            .unwrap_or_default(),
        )
    }

    fn volume(name: &str, size: &str, host: &str) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                    "capacity": {"storage": size},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}}))
            .unwrap_or_default(),
        )
    }

    #[test]
    fn a_delayed_claim_takes_the_smallest_fitting_volume_on_the_node_or_fails_there() {
        let check = Check {
            delayed: vec![Delayed {
                key: "default/data".into(),
                claim: claim("data", "1Gi"),
                selected: None,
                provisionable: None,
            }],
            candidates: vec![
                volume("small", "500Mi", "a"),
                volume("mid", "2Gi", "a"),
                volume("big", "5Gi", "a"),
                volume("other", "1Gi", "b"),
            ],
            ..Default::default()
        };
        let a = node("a", &[("kubernetes.io/hostname", "a")]);
        let c = node("c", &[("kubernetes.io/hostname", "c")]);
        match check.plan(&a).as_deref() {
            Some([Plan::Volume { volume, .. }]) => assert_eq!(volume, "mid"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            check.filter(&c),
            Err("node(s) didn't find available persistent volumes to bind".into())
        );
        // A class that provisions makes any node do.
        let check = Check {
            delayed: vec![Delayed {
                provisionable: Some(None),
                ..check.delayed[0].clone()
            }],
            ..check
        };
        assert!(matches!(
            check.plan(&c).as_deref(),
            Some([Plan::Provision { .. }])
        ));
        // Once a node was selected for the claim, only that node does.
        let check = Check {
            delayed: vec![Delayed {
                selected: Some("a".into()),
                ..check.delayed[0].clone()
            }],
            ..check
        };
        assert!(check.plan(&c).is_none());
    }

    #[test]
    fn a_bound_volume_pins_the_pod_to_its_nodes() {
        let v = volume("pv", "1Gi", "a");
        let check = Check {
            affinities: v
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref()?.required.clone())
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            check.filter(&node("a", &[("kubernetes.io/hostname", "a")])),
            Ok(())
        );
        assert_eq!(
            check.filter(&node("b", &[("kubernetes.io/hostname", "b")])),
            Err("node(s) had volume node affinity conflict".into())
        );
    }
}
