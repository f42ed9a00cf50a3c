//! Running the pods bound to this node: one worker task per pod (like the kubelet's pod
//! workers). Each pass of a worker reads the pod (desired) and its containers in the runtime
//! (actual), takes the next step for each container (pull, start, restart after back-off,
//! kill on a failed liveness probe, stop on deletion), writes the status when it changed, and
//! sleeps until the pod changes or the next thing is due. Init containers run one by one
//! first; restartPolicy decides restarts; Succeeded/Failed pods are left as they are.

use crate::behaviour::{SharedConfig, ANNOTATION_PREFIX};
pub use crate::lifecycle::Timing;
use crate::lifecycle::{Driver, Note, Slot};
use crate::runtime::{ms, ContainerRuntime, Ts};
use crate::status;
use coxswain_client::{Api, Client, DeleteParams};
use coxswain_runtime::events::{object_ref, Recorder};
use coxswain_runtime::store::split_key;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What a pod worker is fed: the latest pod, `None` once it is gone.
type PodInput = watch::Sender<Option<Arc<Pod>>>;
/// Container name -> (current runtime ID, previous runtime ID).
type ContainerIds = HashMap<String, (String, Option<String>)>;

/// A container's command and arguments, as one argv.
fn argv(c: &Container) -> Vec<String> {
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect()
}

/// What every node of the process shares.
#[derive(Clone)]
pub struct Shared {
    /// The runtime config in force.
    pub config: SharedConfig,
    /// The caches of what pods refer to.
    pub lookup: crate::refs::Lookup,
    /// Pull, start and back-off times.
    pub timing: Timing,
}

/// Per-node pod management.
pub struct PodManager {
    /// API client.
    pub client: Client,
    /// This node.
    pub node: String,
    /// Node IP.
    pub host_ip: String,
    /// The container runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Events.
    pub recorder: Recorder,
    /// When this node's kubelet started.
    pub started: Ts,
    config: SharedConfig,
    lookup: crate::refs::Lookup,
    timing: Timing,
    /// Pod key -> (worker generation, the worker's input).
    workers: Mutex<HashMap<String, (u64, PodInput)>>,
    /// Pod key -> container -> (current ID, previous ID), for logs.
    ids: Mutex<HashMap<String, ContainerIds>>,
    next: Mutex<(u64, u32)>,
    subnet: u32,
}

/// The worker's view of one pod incarnation (one UID).
struct PodState {
    uid: String,
    ip: String,
    started: Ts,
    init: Vec<Slot>,
    main: Vec<Slot>,
    /// When every container will have stopped, once deletion began.
    terminating: Option<Ts>,
    /// The pod reached Succeeded or Failed.
    terminal: bool,
    /// The status last written.
    written: Option<PodStatus>,
    /// The status last computed (its condition times carry over).
    computed: Option<PodStatus>,
    /// Since when a computed status has waited to be written.
    dirty_since: Option<Ts>,
    /// The volume error last reported (`FailedMount`), while the pod waits for it.
    mount_error: Option<String>,
}

/// A status change is held back when the pod's next step is due within this many ms.
const COALESCE_MS: u64 = 250;
/// ... but never longer than this.
const COALESCE_MAX_MS: u64 = 1000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodManager {
    /// A manager for `node`.
    pub fn new(
        client: Client,
        node: &str,
        host_ip: &str,
        runtime: Arc<dyn ContainerRuntime>,
        recorder: Recorder,
        shared: Shared,
    ) -> PodManager {
        let Shared {
            config,
            lookup,
            timing,
        } = shared;
        let subnet = node
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
            % 250;
        PodManager {
            client,
            node: node.to_string(),
            host_ip: host_ip.to_string(),
            runtime,
            recorder,
            started: chrono::Utc::now(),
            config,
            lookup,
            timing,
            workers: Mutex::default(),
            ids: Mutex::default(),
            next: Mutex::new((0, 2)),
            subnet,
        }
    }

    fn alloc_ip(&self) -> String {
        let mut g = lock(&self.next);
        let n = g.1;
        g.1 = if n >= 65000 { 2 } else { n + 1 };
        format!(
            "10.{}.{}.{}",
            100 + self.subnet / 2,
            (self.subnet % 2) * 128 + (n / 250) % 128,
            n % 250 + 1
        )
    }

    /// A container's runtime ID (the previous instance's with `previous`), for logs.
    pub fn container_id(&self, key: &str, container: &str, previous: bool) -> Option<String> {
        let ids = lock(&self.ids);
        let (cur, prev) = ids.get(key)?.get(container)?;
        if previous {
            prev.clone()
        } else {
            Some(cur.clone())
        }
    }

    /// What each running container of each pod on this node uses at `now`, from its
    /// behaviour as the runtime config and the pod's annotation say now (so a changed config
    /// file or annotation changes the load at once).
    pub fn usage(&self, now: Ts) -> Vec<crate::stats::PodUsage> {
        let pods: Vec<Arc<Pod>> = lock(&self.workers)
            .values()
            .filter_map(|(_, tx)| tx.borrow().clone())
            .collect();
        let config = crate::behaviour::current(&self.config);
        let mut out = Vec::with_capacity(pods.len());
        for pod in pods {
            let key = coxswain_runtime::store::key_of(
                pod.metadata.namespace.as_deref(),
                pod.metadata.name.as_deref().unwrap_or(""),
            );
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            let Some(spec) = pod.spec.as_ref() else {
                continue;
            };
            let batch = spec
                .restart_policy
                .as_deref()
                .is_some_and(|r| r != "Always");
            let mut containers = Vec::new();
            for c in &spec.containers {
                let Some(id) = self.container_id(&key, &c.name, false) else {
                    continue;
                };
                let Some(info) = self.runtime.inspect(&id) else {
                    continue;
                };
                if !info.running(now) {
                    continue;
                }
                let argv = argv(c);
                let annotation = annotations.get(&format!("{ANNOTATION_PREFIX}{}", c.name));
                let image = c.image.as_deref().unwrap_or("");
                let b = config
                    .resolve(image, &argv, annotation.map(String::as_str), batch)
                    .or_else(|_| config.resolve(image, &argv, None, batch))
                    .unwrap_or_default();
                let elapsed = (now - info.started_at).num_milliseconds().max(0) as u64;
                containers.push(crate::stats::ContainerUsage::of(
                    &c.name,
                    info.started_at,
                    &b,
                    elapsed,
                ));
            }
            if containers.is_empty() {
                continue;
            }
            out.push(crate::stats::PodUsage {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                containers,
            });
        }
        out
    }

    /// Hand the latest version of a pod (or its removal) to its worker, starting one if needed.
    pub fn dispatch(self: &Arc<Self>, key: String, pod: Option<Arc<Pod>>) {
        let mut workers = lock(&self.workers);
        if let Some((_, tx)) = workers.get(&key) {
            if tx.send(pod.clone()).is_ok() {
                return;
            }
        }
        let Some(pod) = pod else { return };
        let gen = {
            let mut g = lock(&self.next);
            g.0 += 1;
            g.0
        };
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(key.clone(), (gen, tx));
        tokio::spawn(self.clone().worker(key, gen, rx));
    }

    async fn worker(
        self: Arc<Self>,
        key: String,
        gen: u64,
        mut rx: watch::Receiver<Option<Arc<Pod>>>,
    ) {
        let mut state: Option<PodState> = None;
        loop {
            let pod = rx.borrow_and_update().clone();
            let uid = pod.as_ref().and_then(|p| p.metadata.uid.clone());
            if state.as_ref().is_some_and(|s| Some(&s.uid) != uid.as_ref()) {
                // Gone, or the same name with a new UID: the old containers go first.
                if let Some(old) = state.take() {
                    self.forget(&key, old);
                }
            }
            let Some(pod) = pod else {
                // Under the registry lock no new version can arrive unseen: exit if the pod
                // is still gone, else go round and run it.
                let mut workers = lock(&self.workers);
                if rx.borrow().is_some() {
                    continue;
                }
                if workers.get(&key).is_some_and(|(g, _)| *g == gen) {
                    workers.remove(&key);
                    lock(&self.ids).remove(&key);
                }
                return;
            };
            let st = state.get_or_insert_with(|| self.new_state(&pod));
            let now = chrono::Utc::now();
            let wake = match self.sync(&key, st, &pod, now).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(node = %self.node, pod = %key, error = %e, "pod sync failed; retrying");
                    Some(now + ms(1000))
                }
            };
            // A due time already past means: go again now (not "never").
            let sleep = wake
                .map(|t| (t - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(sleep.max(Duration::from_millis(1))) => {}
            }
        }
    }

    fn new_state(&self, pod: &Pod) -> PodState {
        let spec = pod.spec.clone().unwrap_or_default();
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let defaults = crate::behaviour::Behaviour {
            pull_ms: Some(self.timing.pull_ms),
            start_ms: Some(self.timing.start_ms),
            ..Default::default()
        };
        let batch = spec
            .restart_policy
            .as_deref()
            .is_some_and(|r| r != "Always");
        let config = crate::behaviour::current(&self.config);
        let slot = |c: &Container, init: bool| {
            let image = c.image.clone().unwrap_or_default();
            let argv = argv(c);
            let annotation = annotations.get(&format!("{ANNOTATION_PREFIX}{}", c.name));
            let behaviour =
                match config.resolve(&image, &argv, annotation.map(String::as_str), batch) {
                    Ok(b) => defaults.overlay(&b),
                    Err(e) => {
                        self.recorder.record(
                            object_ref(pod),
                            "Warning",
                            "InvalidRuntimeAnnotation",
                            format!("{ANNOTATION_PREFIX}{}: {e}", c.name),
                        );
                        defaults.overlay(
                            &config
                                .resolve(&image, &argv, None, batch)
                                .unwrap_or_default(),
                        )
                    }
                };
            Slot::new(c, init, behaviour)
        };
        PodState {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            ip: self.alloc_ip(),
            started: chrono::Utc::now(),
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| slot(c, true))
                .collect(),
            main: spec.containers.iter().map(|c| slot(c, false)).collect(),
            terminating: None,
            terminal: false,
            written: None,
            computed: None,
            dirty_since: None,
            mount_error: None,
        }
    }

    fn forget(&self, key: &str, st: PodState) {
        let now = chrono::Utc::now();
        for s in st.init.iter().chain(&st.main) {
            for id in s.ids() {
                self.runtime.kill(id, Duration::ZERO, now);
                self.runtime.remove(id);
            }
        }
        lock(&self.ids).remove(key);
    }

    /// One pass over a pod; returns when the next pass is due (`None`: only on a change).
    #[tracing::instrument(skip_all, fields(node = %self.node, pod = %key))]
    async fn sync(
        &self,
        key: &str,
        st: &mut PodState,
        pod: &Pod,
        now: Ts,
    ) -> anyhow::Result<Option<Ts>> {
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(&self.client, ns.unwrap_or("default"));
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always");
        let pod_ref = format!("{name}_{}({})", ns.unwrap_or("default"), st.uid);
        let grace = |deleting: Option<i64>| {
            let spec = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds);
            Duration::from_secs(deleting.or(spec).unwrap_or(30).max(0) as u64)
        };
        let namespace = ns.unwrap_or("default");
        let lookup = &self.lookup;
        let config_error = |refs: &[crate::refs::Ref]| lookup.env_error(namespace, refs);
        let mut driver = Driver {
            runtime: &*self.runtime,
            timing: self.timing,
            key,
            pod_ref: &pod_ref,
            policy,
            grace: grace(None),
            notes: Vec::new(),
            config_error: &config_error,
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let done = match st.terminating {
                Some(t) => t,
                None => {
                    let grace = grace(pod.metadata.deletion_grace_period_seconds);
                    let t = driver.stop(st.init.iter().chain(&st.main), grace, now);
                    self.record(pod, driver.notes);
                    st.terminating = Some(t);
                    t
                }
            };
            if now < done {
                return Ok(Some(done));
            }
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                uid: Some(st.uid.clone()),
                ..Default::default()
            };
            api.delete(name, &params).await?;
            return Ok(None);
        }
        // Volumes first: until they mount, no container is created.
        let mount_error = if st.terminal {
            None
        } else {
            self.lookup.volume_error(pod)
        };
        if let Some(msg) = &mount_error {
            if st.mount_error.as_ref() != Some(msg) {
                self.recorder
                    .record(object_ref(pod), "Warning", "FailedMount", msg.clone());
            }
        }
        st.mount_error = mount_error;
        if !st.terminal && st.mount_error.is_none() {
            driver.run_pod(&mut st.init, &mut st.main, now);
            self.record(pod, driver.notes);
            self.note_ids(key, st);
        }
        let prev = st.computed.as_ref().or(pod.status.as_ref());
        let view = status::PodView {
            init: &st.init,
            main: &st.main,
            policy,
            pod_ref,
            host_ip: &self.host_ip,
            pod_ip: &st.ip,
            started: st.started,
        };
        let new = status::pod_status(&view, &*self.runtime, prev, now);
        st.terminal = matches!(new.phase.as_deref(), Some("Succeeded" | "Failed"));
        st.computed = Some(new.clone());
        let next = if st.terminal {
            None
        } else if st.mount_error.is_some() {
            Some(now + ms(2000))
        } else {
            st.init
                .iter()
                .chain(&st.main)
                .filter_map(|s| s.next_due(&*self.runtime, now))
                .min()
        };
        let unchanged = |old: Option<&PodStatus>| old.is_some_and(|o| status::same(o, &new));
        if unchanged(st.written.as_ref()) || unchanged(pod.status.as_ref()) {
            st.dirty_since = None;
            return Ok(next);
        }
        // Like the kubelet's status manager, which keeps only the latest status of a pod:
        // a change about to be superseded (the next step is due within COALESCE) waits for
        // it, for at most COALESCE_MAX, so a quick start writes Running once.
        let dirty_since = *st.dirty_since.get_or_insert(now);
        let soon = next.is_some_and(|t| t - now <= ms(COALESCE_MS));
        if soon && now - dirty_since < ms(COALESCE_MAX_MS) {
            return Ok(next);
        }
        api.patch_status(name, &json!({ "status": new })).await?;
        st.written = Some(new);
        st.dirty_since = None;
        Ok(next)
    }

    /// Record the Events the lifecycle noted.
    fn record(&self, pod: &Pod, notes: Vec<Note>) {
        for n in notes {
            let mut r = object_ref(pod);
            let list = if n.init {
                "initContainers"
            } else {
                "containers"
            };
            r.field_path = Some(format!("spec.{list}{{{}}}", n.container));
            self.recorder.record(r, n.type_, n.reason, n.message);
        }
    }

    /// Remember each container's current runtime ID (the last instance while it waits to
    /// restart) and the one before it, for `logs` and `logs --previous`.
    fn note_ids(&self, key: &str, st: &PodState) {
        let mut all = lock(&self.ids);
        if !all.contains_key(key) {
            all.insert(key.to_string(), ContainerIds::default());
        }
        let Some(ids) = all.get_mut(key) else { return };
        for s in st.init.iter().chain(&st.main) {
            let cur = s
                .current_id()
                .or_else(|| s.last.as_ref().map(|l| l.id.as_str()));
            let Some(cur) = cur else { continue };
            match ids.get_mut(&s.name) {
                Some((c, _)) if c == cur => {}
                Some((c, p)) => *p = Some(std::mem::replace(c, cur.to_string())),
                None => {
                    ids.insert(s.name.clone(), (cur.to_string(), None));
                }
            }
        }
    }
}
