//! `cox-scheduler`: watches pods without a node, filters and scores the nodes, and binds each
//! pod through the `pods/binding` subresource. Pods that fit nowhere get PodScheduled=False
//! and a FailedScheduling event, and are retried after a back-off (1 s doubling to 10 s, like
//! kube-scheduler's backoff queue) when a pod goes away or a node changes in a way that
//! matters to scheduling, and every 5 minutes regardless.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod algorithm;
mod cache;
mod framework;
mod plugins;
mod preemption;
mod volumes;

use anyhow::Context;
use cache::SchedCache;
use clap::Parser;
use coxswain_client::{Api, Client, ListParams};
use coxswain_runtime::events::{object_ref, Recorder};
use coxswain_runtime::store::{key_of, split_key};
use coxswain_runtime::{controller, Action, Change, Informer, Queue, Store};
use framework::PodInfo;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Coxswain scheduler.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Config {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[command(flatten)]
    pub api_client: coxswain_runtime::daemon::ApiClientArgs,
    /// Concurrent scheduling workers.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Scheduler name this scheduler serves (`spec.schedulerName`).
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
    /// First back-off of an unschedulable pod (kube-scheduler's podInitialBackoffSeconds).
    #[arg(long, default_value_t = 1.0)]
    pub pod_initial_backoff_seconds: f64,
    /// Back-off cap (podMaxBackoffSeconds).
    #[arg(long, default_value_t = 10.0)]
    pub pod_max_backoff_seconds: f64,
    #[command(flatten)]
    pub leader: coxswain_runtime::leader::LeaderElection,
}

/// How long a pod that failed `attempts` times waits before the next try.
fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    initial.saturating_mul(factor).min(max)
}

struct Sched {
    client: Client,
    pods: Store<Pod>,
    cache: SchedCache,
    profile: algorithm::Profile,
    recorder: Recorder,
    /// Pods that fit nowhere: failed attempts and when the last one was.
    unschedulable: Mutex<HashMap<String, (u32, Instant)>>,
    initial_backoff: Duration,
    max_backoff: Duration,
    name: String,
    /// Serialises the choose-then-assume step so two workers never book the same room.
    choose: tokio::sync::Mutex<()>,
    /// The scheduling queue (binding failures go back into it).
    queue: Queue,
    /// Claims, volumes and classes, for pods with PersistentVolumeClaims.
    volumes: volumes::Volumes,
    /// PodDisruptionBudgets, which preemption weighs.
    pdbs: Store<PodDisruptionBudget>,
}

fn pod_key(p: &Pod) -> String {
    key_of(
        p.metadata.namespace.as_deref(),
        p.metadata.name.as_deref().unwrap_or(""),
    )
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// kube-scheduler's sorted `<count> <reason>` list.
fn histogram<'a>(parts: impl IntoIterator<Item = (&'a str, usize)>) -> String {
    let mut merged: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, n) in parts {
        *merged.entry(r).or_default() += n;
    }
    let mut v: Vec<String> = merged.iter().map(|(r, n)| format!("{n} {r}")).collect();
    v.sort();
    v.join(", ")
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.`
/// (kube-scheduler's FitError without its PostFilter part).
fn fit_message(total: usize, reasons: &BTreeMap<String, (usize, bool)>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let parts = reasons.iter().map(|(r, (n, _))| (r.as_str(), *n));
    format!("0/{total} nodes are available: {}.", histogram(parts))
}

/// The FitError with preemption's verdict per node: `... preemption: 0/3 nodes are
/// available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful
/// for scheduling.`
fn unschedulable_message(total: usize, reasons: &BTreeMap<String, (usize, bool)>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let verdicts = reasons.values().map(|(n, could_help)| {
        let v = if *could_help {
            preemption::NO_VICTIMS
        } else {
            preemption::NOT_HELPFUL
        };
        (v, *n)
    });
    format!(
        "{} preemption: 0/{total} nodes are available: {}.",
        fit_message(total, reasons),
        histogram(verdicts)
    )
}

/// The key a nominated pod's reserved room is counted under in the cache.
fn reservation(key: &str) -> String {
    format!("{key}\u{0}nominated")
}

/// `0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption:
/// 0/3 nodes are available: 3 Preemption is not helpful for scheduling.` (a PreFilter
/// rejection: the same for every node).
fn prefilter_message(total: usize, msg: &str) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    format!("0/{total} nodes are available: {msg}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.")
}

impl Sched {
    async fn schedule(self: Arc<Self>, key: String) -> anyhow::Result<Action> {
        let Some(pod) = self.pods.get(&key) else {
            self.lock_unsched().remove(&key);
            return Ok(Action::AwaitChange);
        };
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.node_name.is_some()
            || pod.metadata.deletion_timestamp.is_some()
            || spec
                .scheduler_name
                .as_deref()
                .unwrap_or("default-scheduler")
                != self.name
            || self.cache.is_placed(&key)
        {
            self.lock_unsched().remove(&key);
            return Ok(Action::AwaitChange);
        }
        let info = PodInfo::from_pod(&pod);
        let (ns, name) = split_key(&key);
        let ns = ns.unwrap_or("default").to_string();
        let guard = self.choose.lock().await;
        // Room reserved for the pod by an earlier preemption is its own to use.
        self.cache.unplace(&reservation(&key));
        // PreFilter of the pod's volumes: some claims make every node wrong.
        let check = match self.volumes.check(&pod) {
            Ok(c) => c,
            Err(msg) => {
                drop(guard);
                let msg = prefilter_message(self.cache.node_count(), &msg);
                return self.unschedulable(&pod, &key, &ns, name, &msg, None).await;
            }
        };
        let decision = self
            .cache
            .decide(&info, check.as_ref(), |cycle, nodes, total| {
                let d = algorithm::choose(&self.profile, cycle, nodes, total);
                let last = d.last.clone();
                (d, last)
            });
        let (choice, total, reasons) = (decision.node, decision.total, decision.reasons);
        let Some(node) = choice else {
            let (msg, nominate, victims) =
                self.post_filter(&pod, &info, check.as_ref(), total, &reasons);
            drop(guard);
            self.preempt(&pod, victims).await;
            return self
                .unschedulable(&pod, &key, &ns, name, &msg, nominate)
                .await;
        };
        // Reserve: the volumes' plan is remembered with the pod's place.
        let plan = match (&check, self.cache.node(&node)) {
            (Some(c), Some(n)) => c.plan(&n).unwrap_or_default(),
            _ => Vec::new(),
        };
        self.volumes.assume(&node, &plan);
        self.cache.place(&key, &node, info);
        drop(guard);
        // The binding cycle runs on its own, as in kube-scheduler: the pod is assumed on
        // the node (counted in the cache), so the next pod can be scheduled while this
        // bind is in flight.
        self.lock_unsched().remove(&key);
        let me = self.clone();
        let claims = check.is_some();
        tokio::spawn(async move { me.bind(key, pod, ns, node, claims.then_some(plan)).await });
        Ok(Action::AwaitChange)
    }

    /// PostFilter (under the decision lock): whether evicting lower-priority pods would make
    /// room. Returns the message, the nominated node to record (`Some("")` clears it), and
    /// the victims to evict; a nominated pod's room is reserved on its node.
    fn post_filter(
        &self,
        pod: &Pod,
        info: &PodInfo,
        check: Option<&volumes::Check>,
        total: usize,
        reasons: &BTreeMap<String, (usize, bool)>,
    ) -> (String, Option<String>, Vec<String>) {
        let key = pod_key(pod);
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        let fit = fit_message(total, reasons);
        if info.preempt_never {
            let msg = format!("{fit} preemption: not eligible due to preemptionPolicy=Never.");
            return (msg, None, Vec::new());
        }
        if let Some(n) = nominated.as_deref() {
            if self.cache.terminating_below(n, info.priority) {
                self.cache.place(&reservation(&key), n, info.clone());
                let msg = format!(
                    "{fit} preemption: not eligible due to a terminating pod on the nominated node."
                );
                return (msg, None, Vec::new());
            }
        }
        let clear = nominated.map(|_| String::new());
        if total == 0 || !reasons.values().any(|r| r.1) || !self.cache.any_below(info.priority) {
            return (unschedulable_message(total, reasons), clear, Vec::new());
        }
        match self
            .cache
            .preemption(info, check, &self.profile, &self.budgets())
        {
            Ok(c) => {
                tracing::info!(pod = %key, node = %c.node, victims = c.victims.len(), "preempting");
                self.cache.place(&reservation(&key), &c.node, info.clone());
                let victims = c.victims.into_iter().map(|v| v.0).collect();
                (fit, Some(c.node), victims)
            }
            Err(why) => {
                let parts = why.iter().map(|(r, n)| (r.as_str(), *n));
                let msg = format!(
                    "{fit} preemption: 0/{total} nodes are available: {}.",
                    histogram(parts)
                );
                (msg, clear, Vec::new())
            }
        }
    }

    /// The PodDisruptionBudgets as preemption weighs them.
    fn budgets(&self) -> Vec<preemption::Budget> {
        self.pdbs
            .list()
            .iter()
            .filter_map(|b| {
                let sel = b.spec.as_ref()?.selector.as_ref()?;
                let status = b.status.clone().unwrap_or_default();
                Some(preemption::Budget {
                    namespace: b.metadata.namespace.clone().unwrap_or_default(),
                    selector: coxswain_api::selector::LabelSelector::from_k8s(sel).ok()?,
                    allowed: status.disruptions_allowed,
                    disrupted: status
                        .disrupted_pods
                        .unwrap_or_default()
                        .into_keys()
                        .collect(),
                })
            })
            .collect()
    }

    /// Evict the victims for `pod`: a DisruptionTarget condition, a delete with the pod's
    /// own grace period, and a `Preempted` event on each.
    async fn preempt(&self, pod: &Pod, victims: Vec<String>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        for key in victims {
            let Some(v) = self.pods.get(&key) else {
                continue;
            };
            let (ns, name) = split_key(&key);
            let api: Api<Pod> = Api::namespaced(&self.client, ns.unwrap_or("default"));
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let condition = json!({"status": {"conditions": [{"type": "DisruptionTarget",
                "status": "True", "reason": "PreemptionByScheduler", "lastTransitionTime": now,
                "message": format!("{}: preempting to accommodate a higher priority pod", self.name)}]}});
            let res = match api.patch_status(name, &condition).await {
                Ok(_) => api.delete(name, &Default::default()).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => {
                    let node = v
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default();
                    let msg = format!("Preempted by pod {uid} on node {node}");
                    self.recorder
                        .record(object_ref(&*v), "Normal", "Preempted", msg);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(pod = %key, error = %e, "evicting a victim failed"),
            }
        }
    }

    /// No node for the pod: say why (recording a nominated node when `nominate` says one;
    /// `Some("")` clears it), and try again after a back-off.
    async fn unschedulable(
        &self,
        pod: &Pod,
        key: &str,
        ns: &str,
        name: &str,
        msg: &str,
        nominate: Option<String>,
    ) -> anyhow::Result<Action> {
        let attempts = {
            let mut u = self.lock_unsched();
            let e = u.entry(key.to_string()).or_insert((0, Instant::now()));
            *e = (e.0 + 1, Instant::now());
            e.0
        };
        self.mark_unschedulable(pod, ns, name, msg, nominate)
            .await?;
        tracing::debug!(pod = %key, attempts, "unschedulable");
        // kube-scheduler flushes pods unschedulable for 5 minutes back into the queue.
        Ok(Action::RequeueAfter(Duration::from_secs(300)))
    }

    /// Bind an assumed pod (after its volumes, with a `plan` when it has claims); on failure
    /// forget the assumption and try the pod again.
    async fn bind(
        self: Arc<Self>,
        key: String,
        pod: Arc<Pod>,
        ns: String,
        node: String,
        plan: Option<Vec<volumes::Plan>>,
    ) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(plan) = plan {
            let alive = || {
                self.pods
                    .get(&key)
                    .is_some_and(|p| p.metadata.uid == pod.metadata.uid)
            };
            let res = self
                .volumes
                .bind(&self.client, &pod, &node, &plan, alive)
                .await;
            self.volumes.forget(&plan);
            if let Err(e) = res {
                tracing::info!(pod = %key, node = %node, error = %e, "volumes not bound; retrying");
                self.cache.unplace(&key);
                if self.pods.get(&key).is_some() {
                    let msg = format!("running PreBind plugin \"VolumeBinding\": {e}");
                    if let Err(e) = self.unschedulable(&pod, &key, &ns, &name, &msg, None).await {
                        tracing::warn!(pod = %key, error = %e, "recording the failure");
                    }
                    self.queue.add_after(key, self.initial_backoff);
                }
                return;
            }
        }
        let api: Api<Pod> = Api::namespaced(&self.client, &ns);
        match api.bind(&name, &node).await {
            Ok(()) => {
                self.recorder.record(
                    object_ref(&*pod),
                    "Normal",
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                );
                tracing::info!(pod = %key, node = %node, "bound");
            }
            Err(e) if e.is_conflict() || e.is_not_found() => {
                // Bound by someone else meanwhile, or gone: the informer will tell us.
                self.cache.unplace(&key);
            }
            Err(e) => {
                tracing::warn!(pod = %key, node = %node, error = %e, "binding failed; retrying");
                self.cache.unplace(&key);
                self.queue.add_after(key, Duration::from_secs(1));
            }
        }
    }

    /// A pod was deleted: it is never tried again, and its node's room is free. Returns
    /// whether the others should be retried: only a placed pod's going may make them fit (a
    /// pod that was never placed frees nothing), so deleting many unschedulable pods does not
    /// retry every other one each time.
    fn pod_deleted(&self, key: &str) -> bool {
        let was_placed = self.cache.is_placed(key);
        self.cache.unplace(key);
        self.cache.unplace(&reservation(key));
        self.lock_unsched().remove(key);
        was_placed
    }

    fn lock_unsched(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.unschedulable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something changed that may make unschedulable pods fit: requeue each once its
    /// back-off has passed.
    fn retry_unschedulable(&self, queue: &Queue) {
        let now = Instant::now();
        for (k, (attempts, last)) in self.lock_unsched().iter() {
            let ready_at = *last + backoff(*attempts, self.initial_backoff, self.max_backoff);
            queue.add_after(k.clone(), ready_at.saturating_duration_since(now));
        }
    }

    async fn mark_unschedulable(
        &self,
        pod: &Pod,
        ns: &str,
        name: &str,
        msg: &str,
        nominate: Option<String>,
    ) -> anyhow::Result<()> {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .and_then(|c| c.message.clone());
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .unwrap_or_default();
        let nominate = nominate.filter(|n| *n != nominated);
        self.recorder.record(
            object_ref(pod),
            "Warning",
            "FailedScheduling",
            msg.to_string(),
        );
        if current.as_deref() == Some(msg) && nominate.is_none() {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(&self.client, ns);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut patch = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": msg, "lastProbeTime": null,
            "lastTransitionTime": now}]}});
        if let Some(n) = nominate {
            patch["status"]["nominatedNodeName"] =
                if n.is_empty() { json!(null) } else { json!(n) };
        }
        let res = api.patch_status(name, &patch).await;
        match res {
            Ok(_) => {}
            // Deleted meanwhile: forget it (the informer's delete will follow).
            Err(e) if e.is_not_found() => {
                self.lock_unsched().remove(&key_of(Some(ns), name));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(pod = %key_of(Some(ns), name), reason = %msg, "unschedulable");
        Ok(())
    }
}

/// Run until `shutdown` resolves.
pub async fn run(
    args: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = args
        .api_client
        .client(&args.server, "kube-scheduler")
        .context("building the API client")?;
    let (filters, scores) = plugins::defaults();
    let mut pods = Informer::new(Api::<Pod>::all(&client), ListParams::default());
    let mut nodes = Informer::new(Api::<Node>::all(&client), ListParams::default());
    let mut claims = Informer::new(
        Api::<PersistentVolumeClaim>::all(&client),
        ListParams::default(),
    );
    let mut pvs = Informer::new(Api::<PersistentVolume>::all(&client), ListParams::default())
        .index("available", coxswain_api::storage::available_class);
    let mut classes = Informer::new(Api::<StorageClass>::all(&client), ListParams::default());
    let pdbs = Informer::new(
        Api::<PodDisruptionBudget>::all(&client),
        ListParams::default(),
    );
    let sched = Arc::new(Sched {
        client: client.clone(),
        pods: pods.store(),
        cache: SchedCache::default(),
        profile: algorithm::Profile { filters, scores },
        recorder: Recorder::new(&client, "default-scheduler", None),
        unschedulable: Mutex::new(HashMap::new()),
        initial_backoff: Duration::from_secs_f64(args.pod_initial_backoff_seconds.max(0.0)),
        max_backoff: Duration::from_secs_f64(args.pod_max_backoff_seconds.max(0.0)),
        name: args.scheduler_name.clone(),
        choose: tokio::sync::Mutex::new(()),
        queue: Queue::new(),
        volumes: volumes::Volumes::new(claims.store(), pvs.store(), classes.store()),
        pdbs: pdbs.store(),
    });
    let queue = sched.queue.clone();
    let retry_unschedulable = {
        let s = sched.clone();
        let q = queue.clone();
        move || s.retry_unschedulable(&q)
    };
    {
        let s = sched.clone();
        let q = queue.clone();
        let retry = retry_unschedulable.clone();
        pods.on_change(move |c| match c {
            Change::Applied { new, .. } => {
                let key = pod_key(new);
                let node = new.spec.as_ref().and_then(|s| s.node_name.clone());
                match node {
                    Some(n) if !finished(new) => {
                        s.cache.unplace(&reservation(&key));
                        s.cache.place(&key, &n, PodInfo::from_pod(new))
                    }
                    Some(_) => {
                        s.cache.unplace(&key);
                        retry();
                    }
                    None => q.add(key),
                }
            }
            Change::Deleted(old) => {
                if s.pod_deleted(&pod_key(old)) {
                    retry();
                }
            }
        });
    }
    {
        let s = sched.clone();
        let retry = retry_unschedulable.clone();
        nodes.on_change(move |c| match c {
            Change::Applied { new, .. } => {
                if s.cache.set_node(new) {
                    retry();
                }
            }
            Change::Deleted(old) => s
                .cache
                .remove_node(old.metadata.name.as_deref().unwrap_or("")),
        });
    }
    // A claim, volume or class changing may let a pod waiting on its volumes fit.
    let r = retry_unschedulable.clone();
    claims.on_change(move |_| r());
    let r = retry_unschedulable.clone();
    pvs.on_change(move |_| r());
    let r = retry_unschedulable.clone();
    classes.on_change(move |_| r());
    let stores = (claims.store(), pvs.store(), classes.store());
    let pdb_store = pdbs.store();
    pdbs.spawn();
    claims.spawn();
    pvs.spawn();
    classes.spawn();
    stores.0.wait_ready().await;
    stores.1.wait_ready().await;
    stores.2.wait_ready().await;
    pdb_store.wait_ready().await;
    let node_store = nodes.store();
    let pod_store = pods.store();
    nodes.spawn();
    node_store.wait_ready().await;
    pods.spawn();
    pod_store.wait_ready().await;
    let lease = coxswain_runtime::leader::lead(&client, "cox-scheduler", &args.leader).await;
    tracing::info!(server = %args.server, "caches synced; scheduling");
    let s = sched.clone();
    tokio::spawn(controller::run(
        "scheduler",
        queue,
        args.workers,
        move |k| s.clone().schedule(k),
    ));
    shutdown.await;
    coxswain_runtime::leader::release(lease).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> Sched {
        let client = Client::new("http://127.0.0.1:1").unwrap();
        let (filters, scores) = plugins::defaults();
        Sched {
            recorder: Recorder::new(&client, "default-scheduler", None),
            client,
            pods: Store::default(),
            cache: SchedCache::default(),
            profile: algorithm::Profile { filters, scores },
            unschedulable: Mutex::default(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            name: "default-scheduler".into(),
            choose: tokio::sync::Mutex::new(()),
            queue: Queue::new(),
            volumes: volumes::Volumes::new(Store::default(), Store::default(), Store::default()),
            pdbs: Store::default(),
        }
    }

    #[tokio::test]
    async fn deleted_pods_are_forgotten_and_only_freed_room_retries_others() {
        let s = sched();
        for k in ["default/a", "default/b", "default/gone"] {
            s.lock_unsched().insert(k.into(), (3, Instant::now()));
        }
        // An unschedulable pod deleted: forgotten, and nothing else is retried.
        assert!(!s.pod_deleted("default/gone"));
        assert!(!s.lock_unsched().contains_key("default/gone"));
        assert_eq!(s.lock_unsched().len(), 2);
        // A pod that held room on a node: the others may fit now.
        s.cache
            .place("default/running", "node-1", PodInfo::default());
        assert!(s.pod_deleted("default/running"));
        assert!(!s.cache.is_placed("default/running"));
        let q = Queue::new();
        s.retry_unschedulable(&q);
        assert_eq!(
            q.delayed() + q.len(),
            2,
            "a and b come back, not the deleted one"
        );
    }
}
