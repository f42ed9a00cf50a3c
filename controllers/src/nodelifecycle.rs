//! The node lifecycle controller: a node whose Lease has not been renewed within
//! `--node-monitor-grace-period` gets its Ready condition set to Unknown and the
//! `node.kubernetes.io/unreachable:NoExecute` taint; its pods are evicted once their
//! toleration of that taint runs out (`tolerationSeconds`, 300 s by default admission), so
//! their ReplicaSets replace them elsewhere. A node whose Lease is fresh again loses the taint.
//! Pods bound to a node that no longer exists are deleted at once (Kubernetes' pod garbage
//! collector), since no kubelet will ever confirm they stopped.

use crate::wiring::Informers;
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::Action;
use coxswain_runtime::{Change, Queue};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The taint of a node whose kubelet stopped renewing its lease.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn lease_age(ctx: &Ctx, node: &str) -> Option<chrono::Duration> {
    let lease = ctx.leases.get(&format!("kube-node-lease/{node}"))?;
    let renewed = lease.spec.as_ref()?.renew_time.as_ref()?.0;
    Some(chrono::Utc::now() - renewed)
}

fn has_taint(n: &Node) -> Option<Taint> {
    n.spec
        .as_ref()?
        .taints
        .as_ref()?
        .iter()
        .find(|t| t.key == UNREACHABLE && t.effect == "NoExecute")
        .cloned()
}

/// When a pod must leave a node tainted since `since` (None: it tolerates it forever).
fn evict_at(
    p: &Pod,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let tolerations = p
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let tol = tolerations.iter().find(|t| {
        (t.key.as_deref() == Some(UNREACHABLE) || t.key.is_none())
            && t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute")
            && (t.operator.as_deref() == Some("Exists") || t.value.is_none())
    });
    match tol {
        None => Some(since),
        // A toleration too long for the calendar is forever.
        Some(t) => t
            .toleration_seconds
            .and_then(|s| since.checked_add_signed(chrono::Duration::try_seconds(s.max(0))?)),
    }
}

/// What starts watching a node: its registration (each reconcile then requeues itself
/// until the node's Lease is due).
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let lq = q.clone();
    inf.nodes.on_change(move |c| match c {
        Change::Applied { old: None, new } => lq.add(new.metadata.name.clone().unwrap_or_default()),
        Change::Deleted(old) => lq.add(old.metadata.name.clone().unwrap_or_default()),
        _ => {}
    });
}

/// Delete (without grace) the pods bound to a node that is gone, once the API server
/// confirms it is gone.
async fn orphaned_pods(ctx: &Ctx, name: &str) -> anyhow::Result<Action> {
    if Api::<Node>::all(&ctx.client).get_opt(name).await?.is_some() {
        return Ok(Action::AwaitChange);
    }
    for p in ctx.pods.by_index("node", name) {
        let api: Api<Pod> =
            Api::namespaced(&ctx.client, p.metadata.namespace.as_deref().unwrap_or(""));
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            uid: p.metadata.uid.clone(),
            ..Default::default()
        };
        match api
            .delete(p.metadata.name.as_deref().unwrap_or(""), &now)
            .await
        {
            Ok(_) => {
                tracing::info!(pod = ?p.metadata.name, node = name, "deleted a pod of a node that is gone")
            }
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::AwaitChange)
}

/// Reconcile one node.
pub async fn reconcile(ctx: Arc<Ctx>, name: String, grace: Duration) -> anyhow::Result<Action> {
    let Some(node) = ctx.nodes.get(&name) else {
        return orphaned_pods(&ctx, &name).await;
    };
    let api: Api<Node> = Api::all(&ctx.client);
    let grace_c =
        chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::seconds(40));
    let stale = match lease_age(&ctx, &name) {
        Some(age) => age > grace_c,
        // No lease yet: judge by the node's age, so a kubelet that never started is caught.
        None => node
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| chrono::Utc::now() - t.0 > grace_c),
    };
    let taint = has_taint(&node);
    let recheck = Duration::from_secs(1).max(grace / 4);
    if !stale {
        if taint.is_some() {
            let keep: Vec<Taint> = node
                .spec
                .iter()
                .flat_map(|s| s.taints.clone().unwrap_or_default())
                .filter(|t| t.key != UNREACHABLE)
                .collect();
            api.patch(&name, &json!({"spec": {"taints": keep}})).await?;
            tracing::info!(node = %name, "lease renewed again; unreachable taint removed");
        }
        return Ok(Action::RequeueAfter(recheck));
    }
    let since = match taint {
        Some(t) => t.time_added.map(|t| t.0).unwrap_or_else(chrono::Utc::now),
        None => {
            let now = chrono::Utc::now();
            let mut taints: Vec<Taint> = node
                .spec
                .iter()
                .flat_map(|s| s.taints.clone().unwrap_or_default())
                .collect();
            taints.push(Taint {
                key: UNREACHABLE.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
            api.patch(&name, &json!({"spec": {"taints": taints}}))
                .await?;
            let cond = json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.", "lastTransitionTime": Time(now)});
            let mut conds: Vec<serde_json::Value> = node
                .status
                .iter()
                .flat_map(|s| s.conditions.clone().unwrap_or_default())
                .filter(|c| c.type_ != "Ready")
                .map(|c| serde_json::to_value(c).unwrap_or_default())
                .collect();
            conds.push(cond);
            api.patch_status(&name, &json!({"status": {"conditions": conds}}))
                .await?;
            ctx.recorder.record(
                object_ref(&*node),
                "Normal",
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
            tracing::warn!(node = %name, "lease expired: node unreachable, tainted NoExecute");
            now
        }
    };
    let mut next: Option<chrono::DateTime<chrono::Utc>> = None;
    for pod in ctx.pods.by_index("node", &name) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = evict_at(&pod, since) else {
            continue;
        };
        if at <= chrono::Utc::now() {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let pname = pod.metadata.name.clone().unwrap_or_default();
            Api::<Pod>::namespaced(&ctx.client, &ns)
                .delete(&pname, &DeleteParams::default())
                .await?;
            ctx.recorder.record(
                object_ref(&*pod),
                "Normal",
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{pname}"),
            );
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    let until = next
        .map(|n| (n - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(recheck);
    Ok(Action::RequeueAfter(
        until.min(recheck).max(Duration::from_millis(100)),
    ))
}
