//! The ReplicaSet controller: claims the pods its selector matches (adopting orphans,
//! releasing pods whose labels changed), keeps the number of active pods it owns equal to
//! `spec.replicas`, creating pods in slow-start batches and deleting the least useful first,
//! with expectations so a lagging cache never causes double creation; then writes status.

use crate::claim::{claim, labels};
use crate::util::{controller_ref, is_active, is_ready, ready_since};
use crate::wiring::{
    adopters, changed_meta, meta_key, owner_refs, status_batch_of, status_only, Informers,
};
use crate::Ctx;
use coxswain_api::selector::LabelSelector;
use coxswain_client::{Api, DeleteParams, Object};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::Action;
use coxswain_runtime::{Change, Queue};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most pods created or deleted in one pass.
const BURST: usize = 500;

/// How long a ReplicaSet of `pods` pods waits after a change to one of them that only its
/// status reflects (a pod turning Ready, a create not yet the last of its batch) before it is
/// reconciled: changes in that window share one reconcile. A reconcile counts every pod of
/// the ReplicaSet (~1 us each), so the window grows with the ReplicaSet (20 us per pod, at
/// least 200 ms, at most 5 s) and counting stays near 5 % of a core however many pods it has:
/// 200 ms up to 10,000 pods, 2 s at 100,000 (where a fixed 200 ms made counting half the
/// controller manager's CPU). Changes that need pods created or deleted (a batch complete, a
/// pod gone or finished, labels changed) go at once.
pub fn status_batch(pods: usize) -> Duration {
    (Duration::from_micros(20) * pods.min(1_000_000) as u32)
        .clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// Creates and deletes in flight per ReplicaSet key, not yet seen in the pod cache.
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, (i64, i64, Instant)>>);

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, i64, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the cache has caught up with our last writes (or they timed out).
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some((adds, dels, at)) => {
                (*adds <= 0 && *dels <= 0) || at.elapsed() > Duration::from_secs(300)
            }
        }
    }

    /// Expect `adds` creations and `dels` deletions for `key`.
    pub fn expect(&self, key: &str, adds: i64, dels: i64) {
        self.lock()
            .insert(key.to_string(), (adds, dels, Instant::now()));
    }

    /// Note what a change of a pod owned by `key` tells: for a pod that appeared or went,
    /// whether nothing more is expected; `None` for an update (which expects nothing).
    pub fn observe<K>(&self, key: &str, c: &Change<K>) -> Option<bool> {
        match c {
            Change::Applied { old: None, .. } => Some(self.observed_add(key)),
            Change::Deleted(_) => Some(self.observed_delete(key)),
            Change::Applied { .. } => None,
        }
    }

    /// A pod owned by `key` appeared in the cache; true when nothing more is expected.
    fn observed_add(&self, key: &str) -> bool {
        self.observed(key, 1, 0)
    }

    /// A pod owned by `key` left the cache; true when nothing more is expected.
    fn observed_delete(&self, key: &str) -> bool {
        self.observed(key, 0, 1)
    }

    fn observed(&self, key: &str, adds: i64, dels: i64) -> bool {
        match self.lock().get_mut(key) {
            None => true,
            Some(e) => {
                e.0 -= adds;
                e.1 -= dels;
                e.0 <= 0 && e.1 <= 0
            }
        }
    }

    /// Expect fewer (writes that failed).
    pub fn lower(&self, key: &str, adds: i64, dels: i64) {
        if let Some(e) = self.lock().get_mut(key) {
            e.0 -= adds;
            e.1 -= dels;
        }
    }

    /// Forget a deleted ReplicaSet.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }
}

fn new_pod<K: Object>(rs: &ReplicaSet, owner: &K) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or("pod"))),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletion order: unscheduled, then pending, then not ready, then newest first.
fn deletion_rank(
    p: &Pod,
) -> (
    bool,
    u8,
    bool,
    std::cmp::Reverse<Option<chrono::DateTime<chrono::Utc>>>,
) {
    let assigned = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (assigned, phase, is_ready(p), std::cmp::Reverse(created))
}

/// What a ReplicaSet's status counts, gathered one pod at a time.
struct Census<'a> {
    template_labels: &'a std::collections::BTreeMap<String, String>,
    /// When each ready pod became ready.
    ready_since: Vec<chrono::DateTime<chrono::Utc>>,
    /// Pods carrying every label of the pod template.
    labeled: i32,
}

impl<'a> Census<'a> {
    fn new(template_labels: &'a std::collections::BTreeMap<String, String>) -> Self {
        Census {
            template_labels,
            ready_since: Vec::new(),
            labeled: 0,
        }
    }

    fn add(&mut self, p: &Pod) {
        let l = p.metadata.labels.as_ref();
        if self
            .template_labels
            .iter()
            .all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v))
        {
            self.labeled += 1;
        }
        self.ready_since.extend(ready_since(p));
    }

    /// Pods ready for at least `min_ready` at `now`, and when the next one will be.
    fn available(
        &self,
        min_ready: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (i32, Option<Duration>) {
        let (mut available, mut recheck) = (0, None::<Duration>);
        for since in &self.ready_since {
            match (*since + min_ready - now).to_std() {
                Ok(d) if !d.is_zero() => recheck = Some(recheck.map_or(d, |r| r.min(d))),
                _ => available += 1,
            }
        }
        (available, recheck)
    }
}

/// What wakes a ReplicaSet: a change to it (its own status write only after the status
/// batch); a change to a pod it owns (at once when the pod appeared, vanished, or changed
/// what the ReplicaSet counts; else after the status batch), or may adopt.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let (rq, pods) = (q.clone(), ctx.pods.clone());
    inf.replicasets.on_change(move |c| {
        let m = changed_meta(c);
        // A change only to the status (most often this controller's own status write)
        // does not change what the ReplicaSet wants: recount after the status batch
        // instead of at once, or each status write would start the next count of all
        // its pods.
        let status_write = matches!(c, Change::Applied { old: Some(old), new }
            if status_only(&old.metadata, &new.metadata));
        if status_write {
            rq.add_after(meta_key(m), status_batch_of(&pods, m));
        } else {
            rq.add(meta_key(m));
        }
    });
    let (rq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        let m = changed_meta(c);
        for k in adopters(m, &ctx.replicasets, |rs: &ReplicaSet| {
            rs.spec.as_ref().map(|s| s.selector.clone())
        }) {
            rq.add(k);
        }
        for uid in owner_refs(c) {
            let Some(rs) = ctx.replicasets.by_index("uid", &uid).first().cloned() else {
                continue;
            };
            let k = meta_key(&rs.metadata);
            let now = ctx.expectations.observe(&k, c).unwrap_or_else(|| match c {
                Change::Applied {
                    old: Some(old),
                    new,
                } => {
                    is_active(old) != is_active(new)
                        || old.metadata.labels != new.metadata.labels
                        || old.metadata.owner_references != new.metadata.owner_references
                        || old.metadata.deletion_timestamp.is_some()
                            != new.metadata.deletion_timestamp.is_some()
                }
                _ => true,
            });
            if now {
                rq.add(k);
            } else {
                rq.add_after(k, status_batch_of(&ctx.pods, &rs.metadata));
            }
        }
    });
}

/// Reconcile one ReplicaSet.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(rs) = ctx.replicasets.get(&key) else {
        ctx.expectations.remove(&key);
        return Ok(Action::AwaitChange);
    };
    sync(&ctx, &key, &*rs, &rs).await
}

/// Keep `owner`'s pods at its replicas and write its status, given the owner as a ReplicaSet
/// (`rs`): a ReplicaSet is itself, a ReplicationController its conversion, as Kubernetes'
/// ReplicationManager runs the ReplicaSet controller's code.
pub async fn sync<K: Object>(
    ctx: &Ctx,
    key: &str,
    owner: &K,
    rs: &ReplicaSet,
) -> anyhow::Result<Action> {
    let key = key.to_string();
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(&ctx.client, ns);
    let selector = rs
        .spec
        .as_ref()
        .and_then(|s| LabelSelector::from_k8s(&s.selector).ok())
        .unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut census = Census::new(&template_labels);
    // One pass over the owned pods (a ReplicaSet may have 100,000): the active ones whose
    // labels still match are kept and counted for the status; the others go to `claim`,
    // which releases them, with the orphans it may adopt.
    let (mut pods, mut unmatched) = (Vec::new(), Vec::new());
    for p in ctx.pods.by_index("controller", &uid) {
        if !is_active(&p) {
            continue;
        }
        if !selector.is_empty() && selector.matches(labels(&*p)) {
            census.add(&p);
            pods.push(p);
        } else {
            unmatched.push(p);
        }
    }
    let orphans = ctx.pods.by_index("orphan", ns);
    let orphans = orphans.into_iter().filter(|p| is_active(p)).collect();
    for p in claim(&pod_api, owner, &selector, unmatched, orphans).await {
        census.add(&p);
        pods.push(p);
    }
    let desired = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    if rs.metadata.deletion_timestamp.is_none() && ctx.expectations.satisfied(&key) {
        if pods.len() < desired {
            let want = (desired - pods.len()).min(BURST);
            ctx.expectations.expect(&key, want as i64, 0);
            let template = new_pod(rs, owner);
            let mut created = 0;
            let mut batch = 1;
            'outer: while created < want {
                let n = batch.min(want - created);
                let results =
                    futures::future::join_all((0..n).map(|_| pod_api.create(&template))).await;
                for r in results {
                    match r {
                        Ok(p) => {
                            created += 1;
                            ctx.recorder.record(
                                object_ref(owner),
                                "Normal",
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                            );
                        }
                        Err(e) => {
                            ctx.expectations.lower(&key, (want - created) as i64, 0);
                            ctx.recorder.record(
                                object_ref(owner),
                                "Warning",
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            break 'outer;
                        }
                    }
                }
                batch *= 2;
            }
            if created < want {
                anyhow::bail!("created {created} of {want} pods");
            }
        } else if pods.len() > desired {
            pods.sort_by_key(|p| deletion_rank(p));
            let victims: Vec<Arc<Pod>> = pods
                .iter()
                .take((pods.len() - desired).min(BURST))
                .cloned()
                .collect();
            ctx.expectations.expect(&key, 0, victims.len() as i64);
            for p in &victims {
                let pname = p.metadata.name.clone().unwrap_or_default();
                match pod_api.delete(&pname, &DeleteParams::default()).await {
                    Ok(true) => ctx.recorder.record(
                        object_ref(owner),
                        "Normal",
                        "SuccessfulDelete",
                        format!("Deleted pod: {pname}"),
                    ),
                    Ok(false) => ctx.expectations.lower(&key, 0, 1),
                    Err(e) => {
                        ctx.expectations.lower(&key, 0, 1);
                        return Err(e.into());
                    }
                }
            }
        }
    }
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
    let min_ready = chrono::Duration::seconds(i64::from(min_ready.unwrap_or(0)));
    let (available, recheck) = census.available(min_ready, chrono::Utc::now());
    let status = ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(census.labeled),
        ready_replicas: Some(census.ready_since.len() as i32),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: None,
    };
    if rs.status.as_ref() != Some(&status) {
        let api: Api<K> = Api::namespaced(&ctx.client, ns);
        api.patch_status(name, &json!({"status": status})).await?;
    }
    Ok(recheck.map_or(Action::AwaitChange, |d| {
        Action::RequeueAfter(d + Duration::from_millis(50))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_counts_ready_available_and_labeled() {
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let template: std::collections::BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "fe".into())].into();
        let pod = |labels: &[(&str, &str)], ready_secs_ago: Option<i64>| Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready_secs_ago.is_some() {
                        "True"
                    } else {
                        "False"
                    }
                    .into(),
                    last_transition_time: Some(Time(
                        chrono::Utc::now() - chrono::Duration::seconds(ready_secs_ago.unwrap_or(0)),
                    )),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = Census::new(&template);
        c.add(&pod(&[("app", "web"), ("tier", "fe")], Some(60))); // available
        c.add(&pod(&[("app", "web"), ("tier", "fe")], Some(4))); // ready, available in ~6 s
        c.add(&pod(&[("app", "web")], None)); // not ready, lacks a template label
        let min_ready = chrono::Duration::seconds(10);
        let (available, recheck) = c.available(min_ready, chrono::Utc::now());
        assert_eq!((c.ready_since.len(), available, c.labeled), (2, 1, 2));
        let recheck = recheck.expect("a pod becomes available later");
        assert!(recheck > Duration::from_secs(5) && recheck <= Duration::from_secs(6));
    }

    #[test]
    fn status_batch_grows_with_the_replicaset() {
        assert_eq!(status_batch(0), Duration::from_millis(200));
        assert_eq!(status_batch(10_000), Duration::from_millis(200));
        assert_eq!(status_batch(50_000), Duration::from_secs(1));
        assert_eq!(status_batch(100_000), Duration::from_secs(2));
        assert_eq!(status_batch(10_000_000), Duration::from_secs(5));
    }
}
