//! `cox-controllers`: the Deployment, ReplicaSet, garbage-collector and namespace controllers
//! in one process, sharing one informer per kind.

#![deny(clippy::unwrap_used, clippy::expect_used)]

/// mimalloc: informers decode and drop many small objects per event; glibc's malloc was
/// ~19 % of the controller manager's CPU in `perf` during `cox bench` (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod claim;
mod deployment;
mod gc;
mod namespace;
mod nodelifecycle;
mod replicaset;
mod rollout;
mod util;

use anyhow::Context;
use clap::Parser;
use coxswain_client::{Api, Client, ListParams};
use coxswain_runtime::events::Recorder;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{controller, Change, Informer, Queue, Store};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::sync::Arc;

/// Coxswain's controller manager.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[command(flatten)]
    api_client: coxswain_runtime::daemon::ApiClientArgs,
    /// Concurrent reconciles per controller.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// How long a node's Lease may go unrenewed before the node is marked unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    #[command(flatten)]
    leader: coxswain_runtime::leader::LeaderElection,
}

use coxswain_runtime::leader::parse_duration;

/// Everything a reconcile may read or use.
pub struct Ctx {
    /// API client.
    pub client: Client,
    /// Deployments cache.
    pub deployments: Store<Deployment>,
    /// ReplicaSets cache (indexed by controller and owner UID).
    pub replicasets: Store<ReplicaSet>,
    /// Pods cache (indexed by controller and owner UID).
    pub pods: Store<Pod>,
    /// Namespaces cache.
    pub namespaces: Store<Namespace>,
    /// Nodes cache.
    pub nodes: Store<Node>,
    /// Node leases cache (`kube-node-lease`).
    pub leases: Store<Lease>,
    /// Event recorder.
    pub recorder: Recorder,
    /// ReplicaSet expectations.
    pub expectations: replicaset::Expectations,
}

fn meta_key(m: &ObjectMeta) -> String {
    key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

fn uid_index(m: &ObjectMeta) -> Vec<String> {
    m.uid.clone().into_iter().collect()
}

fn namespace_index(m: &ObjectMeta) -> Vec<String> {
    vec![m.namespace.clone().unwrap_or_default()]
}

/// Objects without a controller, by namespace: the candidates for adoption.
fn orphan_index(m: &ObjectMeta) -> Vec<String> {
    if util::controller_uid(m).is_some() || m.deletion_timestamp.is_some() {
        return Vec::new();
    }
    namespace_index(m)
}

/// The keys of `owners` in the object's namespace whose selector matches its labels, when
/// it has no controller (it may be adopted).
fn adopters<O: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    m: &ObjectMeta,
    owners: &coxswain_runtime::Store<O>,
    selector: impl Fn(&O) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Vec<String> {
    if orphan_index(m).is_empty() {
        return Vec::new();
    }
    let labels = m.labels.clone().unwrap_or_default();
    owners
        .by_index("namespace", m.namespace.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|o| {
            selector(o)
                .and_then(|s| coxswain_api::selector::LabelSelector::from_k8s(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(&labels))
        })
        .map(|o| meta_key(o.metadata()))
        .collect()
}

/// Owner UIDs of both the old and the new version (a dropped reference must still wake the
/// owner it pointed at, e.g. when orphaning).
fn owner_refs<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(c: &Change<K>) -> Vec<String> {
    let mut uids = util::owner_uids(changed_meta(c));
    if let Change::Applied { old: Some(o), .. } = c {
        uids.extend(util::owner_uids(o.metadata()));
    }
    uids.sort();
    uids.dedup();
    uids
}

/// Whether an update left everything but the status as it was: same generation (a spec
/// change bumps it), labels, annotations, owners, finalizers and deletion state.
fn status_only(old: &ObjectMeta, new: &ObjectMeta) -> bool {
    old.generation == new.generation
        && old.labels == new.labels
        && old.annotations == new.annotations
        && old.owner_references == new.owner_references
        && old.finalizers == new.finalizers
        && old.deletion_timestamp == new.deletion_timestamp
}

/// The status batch of a ReplicaSet, from the number of pods it controls.
fn status_batch_of(pods: &coxswain_runtime::Store<Pod>, rs: &ObjectMeta) -> std::time::Duration {
    replicaset::status_batch(pods.count_index("controller", rs.uid.as_deref().unwrap_or("")))
}

fn changed_meta<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(c: &Change<K>) -> &ObjectMeta {
    match c {
        Change::Applied { new, .. } => new.metadata(),
        Change::Deleted(o) => o.metadata(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coxswain_runtime::daemon::init_tracing();
    let args = Args::parse();
    let client = args
        .api_client
        .client(&args.server)
        .context("building the API client")?;

    let mut deployments = Informer::new(Api::<Deployment>::all(&client), ListParams::default())
        .index("uid", |d: &Deployment| uid_index(&d.metadata))
        .index("namespace", |d: &Deployment| namespace_index(&d.metadata));
    let mut replicasets = Informer::new(Api::<ReplicaSet>::all(&client), ListParams::default())
        .index("controller", |rs: &ReplicaSet| {
            util::controller_uid(&rs.metadata).into_iter().collect()
        })
        .index("owner", |rs: &ReplicaSet| util::owner_uids(&rs.metadata))
        .index("uid", |rs: &ReplicaSet| uid_index(&rs.metadata))
        .index("namespace", |rs: &ReplicaSet| namespace_index(&rs.metadata))
        .index("orphan", |rs: &ReplicaSet| orphan_index(&rs.metadata));
    let mut pods = Informer::new(Api::<Pod>::all(&client), ListParams::default())
        .index("controller", |p: &Pod| {
            util::controller_uid(&p.metadata).into_iter().collect()
        })
        .index("owner", |p: &Pod| util::owner_uids(&p.metadata))
        .index("orphan", |p: &Pod| orphan_index(&p.metadata))
        .index("node", |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .into_iter()
                .collect()
        });
    let mut nodes = Informer::new(Api::<Node>::all(&client), ListParams::default());
    let leases = Informer::new(
        Api::<Lease>::namespaced(&client, "kube-node-lease"),
        ListParams::default(),
    );
    let mut namespaces = Informer::new(Api::<Namespace>::all(&client), ListParams::default());

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        deployments: deployments.store(),
        replicasets: replicasets.store(),
        pods: pods.store(),
        namespaces: namespaces.store(),
        nodes: nodes.store(),
        leases: leases.store(),
        recorder: Recorder::new(&client, "deployment-controller", None),
        expectations: replicaset::Expectations::default(),
    });
    let rs_ctx = Arc::new(Ctx {
        client: client.clone(),
        deployments: ctx.deployments.clone(),
        replicasets: ctx.replicasets.clone(),
        pods: ctx.pods.clone(),
        namespaces: ctx.namespaces.clone(),
        nodes: ctx.nodes.clone(),
        leases: ctx.leases.clone(),
        recorder: Recorder::new(&client, "replicaset-controller", None),
        expectations: replicaset::Expectations::default(),
    });

    let dq = Queue::new();
    let rq = Queue::new();
    let gq = Queue::new();
    let nq = Queue::new();
    let lq = Queue::new();
    {
        let lq = lq.clone();
        nodes.on_change(move |c| {
            if let Change::Applied { old: None, new } = c {
                lq.add(new.metadata.name.clone().unwrap_or_default());
            }
        });
    }

    // Deployments: reconcile the deployment; GC looks at it when it is being deleted.
    {
        let (dq, gq) = (dq.clone(), gq.clone());
        let rs_store = ctx.replicasets.clone();
        deployments.on_change(move |c| {
            let m = changed_meta(c);
            dq.add(meta_key(m));
            if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
                gq.add(gc::gc_key("Deployment", m));
                for rs in rs_store.by_index("owner", m.uid.as_deref().unwrap_or("")) {
                    gq.add(gc::gc_key("ReplicaSet", &rs.metadata));
                }
            }
        });
    }
    // ReplicaSets: reconcile the RS, its owning deployment, and GC it.
    {
        let (dq, rq, gq) = (dq.clone(), rq.clone(), gq.clone());
        let deps = ctx.deployments.clone();
        let pod_store = ctx.pods.clone();
        replicasets.on_change(move |c| {
            let m = changed_meta(c);
            // A change only to the status (most often this controller's own status write)
            // does not change what the ReplicaSet wants: recount after the status batch
            // instead of at once, or each status write would start the next count of all
            // its pods.
            let status_write = matches!(c, Change::Applied { old: Some(old), new }
                if status_only(&old.metadata, &new.metadata));
            if status_write {
                rq.add_after(meta_key(m), status_batch_of(&pod_store, m));
            } else {
                rq.add(meta_key(m));
            }
            gq.add(gc::gc_key("ReplicaSet", m));
            for k in adopters(m, &deps, |d: &Deployment| {
                d.spec.as_ref().map(|s| &s.selector)
            }) {
                dq.add(k);
            }
            for uid in owner_refs(c) {
                if let Some(d) = deps.by_index("uid", &uid).first() {
                    dq.add(meta_key(&d.metadata));
                    gq.add(gc::gc_key("Deployment", &d.metadata));
                }
            }
            if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
                for p in pod_store.by_index("owner", m.uid.as_deref().unwrap_or("")) {
                    gq.add(gc::gc_key("Pod", &p.metadata));
                }
            }
        });
    }
    // Pods: reconcile the owning RS (observing expectations) and GC the pod.
    {
        let (rq, gq) = (rq.clone(), gq.clone());
        let rs_store = ctx.replicasets.clone();
        let pod_store = ctx.pods.clone();
        let rs_ctx2 = rs_ctx.clone();
        pods.on_change(move |c| {
            let m = changed_meta(c);
            gq.add(gc::gc_key("Pod", m));
            for k in adopters(m, &rs_store, |rs: &ReplicaSet| {
                rs.spec.as_ref().map(|s| &s.selector)
            }) {
                rq.add(k);
            }
            for uid in owner_refs(c) {
                if let Some(rs) = rs_store.by_index("uid", &uid).first() {
                    let k = meta_key(&rs.metadata);
                    let now = match c {
                        Change::Applied { old: None, .. } => rs_ctx2.expectations.observed_add(&k),
                        Change::Deleted(_) => rs_ctx2.expectations.observed_delete(&k),
                        Change::Applied {
                            old: Some(old),
                            new,
                        } => {
                            util::is_active(old) != util::is_active(new)
                                || old.metadata.labels != new.metadata.labels
                                || old.metadata.owner_references != new.metadata.owner_references
                                || old.metadata.deletion_timestamp.is_some()
                                    != new.metadata.deletion_timestamp.is_some()
                        }
                    };
                    if now {
                        rq.add(k);
                    } else {
                        rq.add_after(k, status_batch_of(&pod_store, &rs.metadata));
                    }
                    gq.add(gc::gc_key("ReplicaSet", &rs.metadata));
                }
            }
        });
    }
    {
        let nq = nq.clone();
        namespaces.on_change(move |c| nq.add(meta_key(changed_meta(c))));
    }

    let stores_ready = {
        let c = ctx.clone();
        async move {
            c.deployments.wait_ready().await;
            c.replicasets.wait_ready().await;
            c.pods.wait_ready().await;
            c.namespaces.wait_ready().await;
            c.nodes.wait_ready().await;
            c.leases.wait_ready().await;
        }
    };
    deployments.spawn();
    replicasets.spawn();
    pods.spawn();
    namespaces.spawn();
    nodes.spawn();
    leases.spawn();
    stores_ready.await;
    let lease = coxswain_runtime::leader::lead(&client, "cox-controllers", &args.leader).await;
    tracing::info!(server = %args.server, "caches synced; controllers running");

    let w = args.workers;
    let d = ctx.clone();
    tokio::spawn(controller::run("deployment", dq, w, move |k| {
        deployment::reconcile(d.clone(), k)
    }));
    let r = rs_ctx.clone();
    tokio::spawn(controller::run("replicaset", rq, w, move |k| {
        replicaset::reconcile(r.clone(), k)
    }));
    let g = ctx.clone();
    tokio::spawn(controller::run("garbage-collector", gq, w, move |k| {
        gc::reconcile(g.clone(), k)
    }));
    let n = ctx.clone();
    tokio::spawn(controller::run("namespace", nq, 1, move |k| {
        namespace::reconcile(n.clone(), k)
    }));

    let l = ctx.clone();
    let grace = args.node_monitor_grace_period;
    tokio::spawn(controller::run("node-lifecycle", lq, 2, move |k| {
        nodelifecycle::reconcile(l.clone(), k, grace)
    }));

    coxswain_runtime::daemon::shutdown_signal().await;
    tracing::info!("shutting down");
    coxswain_runtime::leader::release(lease).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_tells_a_status_write_from_a_change_of_intent() {
        let old = ObjectMeta {
            name: Some("web-1".into()),
            generation: Some(1),
            resource_version: Some("10".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        // A status write: only the resourceVersion moved.
        let status_write = ObjectMeta {
            resource_version: Some("11".into()),
            ..old.clone()
        };
        assert!(status_only(&old, &status_write));
        // A spec change bumps the generation; labels, finalizers and deletion are intent too.
        let scaled = ObjectMeta {
            generation: Some(2),
            ..old.clone()
        };
        let relabeled = ObjectMeta {
            labels: None,
            ..old.clone()
        };
        let finalized = ObjectMeta {
            finalizers: Some(vec!["example.com/hold".into()]),
            ..old.clone()
        };
        let deleting = ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                chrono::Utc::now(),
            )),
            ..old.clone()
        };
        for changed in [scaled, relabeled, finalized, deleting] {
            assert!(!status_only(&old, &changed), "{changed:?}");
        }
    }
}
