//! The ReplicationController controller: Kubernetes runs the ReplicaSet controller's code for
//! ReplicationControllers through a conversion, and so does this one - each reconcile views
//! the ReplicationController as a ReplicaSet (its map selector as `matchLabels`) and calls
//! [`crate::replicaset::sync`], which owns pods, events and status as the
//! ReplicationController itself.

use crate::wiring::{adopters, changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::sync::Arc;

/// What wakes a ReplicationController: a change to it, to a pod it owns, or to an orphan
/// pod it may adopt.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let rq = q.clone();
    inf.replicationcontrollers
        .on_change(move |c| rq.add(meta_key(changed_meta(c))));
    let (rq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        let m = changed_meta(c);
        let selector = |rc: &ReplicationController| -> Option<LabelSelector> {
            Some(LabelSelector {
                match_labels: rc.spec.as_ref()?.selector.clone(),
                match_expressions: None,
            })
        };
        for k in adopters(m, &ctx.replicationcontrollers, selector) {
            rq.add(k);
        }
        for uid in owner_refs(c) {
            if let Some(rc) = ctx.replicationcontrollers.by_index("uid", &uid).first() {
                let k = meta_key(&rc.metadata);
                ctx.expectations.observe(&k, c);
                rq.add(k);
            }
        }
    });
}

/// The ReplicationController as the ReplicaSet it behaves as.
fn as_replicaset(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: spec.selector,
                match_expressions: None,
            },
            template: spec.template,
        }),
        status: rc.status.as_ref().map(|s| ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            conditions: None,
        }),
    }
}

/// Reconcile one ReplicationController.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(rc) = ctx.replicationcontrollers.get(&key) else {
        ctx.expectations.remove(&key);
        return Ok(Action::AwaitChange);
    };
    crate::replicaset::sync(&ctx, &key, &*rc, &as_replicaset(&rc)).await
}
