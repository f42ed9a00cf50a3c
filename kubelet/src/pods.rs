//! Running the pods bound to this node: one worker task per pod (like the kubelet's pod
//! workers). Each pass of a worker reads the pod (desired) and its containers in the runtime
//! (actual), takes the next step for each container (pull, start, restart after back-off,
//! kill on a failed liveness probe, stop on deletion), writes the status when it changed, and
//! sleeps until the pod changes or the next thing is due. Init containers run one by one
//! first; restartPolicy decides restarts; Succeeded/Failed pods are left as they are.

use crate::behaviour::{RuntimeConfig, ANNOTATION_PREFIX};
use crate::runtime::{ms, ContainerInfo, ContainerRuntime, SimRuntime, Ts};
use crate::status::{self, Slot, Stage};
use coxswain_client::{Api, Client, DeleteParams};
use coxswain_runtime::events::{object_ref, Recorder};
use coxswain_runtime::store::split_key;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Timings of the kubelet's own behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Default image pull time.
    pub pull_ms: u64,
    /// Default container start time.
    pub start_ms: u64,
    /// First back-off of a crashing container or failing pull (Kubernetes: 10 s).
    pub backoff_initial_ms: u64,
    /// Back-off cap (Kubernetes: 300 s).
    pub backoff_max_ms: u64,
}

/// What a pod worker is fed: the latest pod, `None` once it is gone.
type PodInput = watch::Sender<Option<Arc<Pod>>>;
/// Container name -> (current runtime ID, previous runtime ID).
type ContainerIds = HashMap<String, (String, Option<String>)>;

/// Per-node pod management.
pub struct PodManager {
    /// API client.
    pub client: Client,
    /// This node.
    pub node: String,
    /// Node IP.
    pub host_ip: String,
    /// The runtime.
    pub runtime: SimRuntime,
    /// Events.
    pub recorder: Recorder,
    config: Arc<RuntimeConfig>,
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
        runtime: SimRuntime,
        recorder: Recorder,
        config: Arc<RuntimeConfig>,
        timing: Timing,
    ) -> PodManager {
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
            config,
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
        let slot = |c: &Container, init: bool| {
            let image = c.image.clone().unwrap_or_default();
            let argv: Vec<String> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect();
            let annotation = annotations.get(&format!("{ANNOTATION_PREFIX}{}", c.name));
            let behaviour = match self
                .config
                .resolve(&image, &argv, annotation.map(String::as_str))
            {
                Ok(b) => defaults.overlay(&b),
                Err(e) => {
                    self.recorder.record(
                        object_ref(pod),
                        "Warning",
                        "InvalidRuntimeAnnotation",
                        format!("{ANNOTATION_PREFIX}{}: {e}", c.name),
                    );
                    defaults.overlay(&self.config.resolve(&image, &argv, None).unwrap_or_default())
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
        if pod.metadata.deletion_timestamp.is_some() {
            let done = match st.terminating {
                Some(t) => t,
                None => {
                    let t = self.stop_containers(st, pod, now);
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
        if !st.terminal {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.clone())
                .unwrap_or_else(|| "Always".into());
            let mut initialized = true;
            for i in 0..st.init.len() {
                self.drive(key, pod, &mut st.init[i], &policy, now);
                if !st.init[i].succeeded(&self.runtime, now) {
                    initialized = false;
                    break;
                }
            }
            if initialized {
                for i in 0..st.main.len() {
                    self.drive(key, pod, &mut st.main[i], &policy, now);
                }
            }
        }
        let prev = st.computed.as_ref().or(pod.status.as_ref());
        let view = status::PodView {
            init: &st.init,
            main: &st.main,
            policy: pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                .unwrap_or("Always"),
            pod_ref: format!("{name}_{}({})", ns.unwrap_or("default"), st.uid),
            host_ip: &self.host_ip,
            pod_ip: &st.ip,
            started: st.started,
        };
        let new = status::pod_status(&view, &self.runtime, prev, now);
        st.terminal = matches!(new.phase.as_deref(), Some("Succeeded" | "Failed"));
        st.computed = Some(new.clone());
        let next = if st.terminal {
            None
        } else {
            st.init
                .iter()
                .chain(&st.main)
                .filter_map(|s| s.next_due(&self.runtime, now))
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

    /// Start killing every running container; returns when all will have stopped.
    fn stop_containers(&self, st: &mut PodState, pod: &Pod, now: Ts) -> Ts {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0) as u64;
        let mut done = now;
        for s in st.init.iter().chain(&st.main) {
            let Stage::Running { id } = &s.stage else {
                continue;
            };
            if self
                .runtime
                .inspect(id)
                .is_some_and(|c| c.exited(now).is_none())
            {
                self.event(
                    pod,
                    s,
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", s.name),
                );
                if let Some(t) = self.runtime.kill(id, Duration::from_secs(grace), now) {
                    done = done.max(t);
                }
            }
        }
        done
    }

    fn event(&self, pod: &Pod, slot: &Slot, type_: &str, reason: &str, message: String) {
        let mut r = object_ref(pod);
        let list = if slot.init {
            "initContainers"
        } else {
            "containers"
        };
        r.field_path = Some(format!("spec.{list}{{{}}}", slot.name));
        self.recorder.record(r, type_, reason, message);
    }

    fn backoff(&self, cur: Option<chrono::Duration>) -> (chrono::Duration, chrono::Duration) {
        let initial = ms(self.timing.backoff_initial_ms);
        let max = ms(self.timing.backoff_max_ms);
        let wait = cur.unwrap_or(chrono::Duration::zero());
        let next = match cur {
            None => initial,
            Some(b) => (b * 2).min(max),
        };
        (wait, next)
    }

    /// Take the next step for one container.
    fn drive(&self, key: &str, pod: &Pod, s: &mut Slot, policy: &str, now: Ts) {
        for _ in 0..4 {
            match s.stage.clone() {
                Stage::Waiting => {
                    if self.runtime.has_image(&s.image) {
                        self.event(
                            pod,
                            s,
                            "Normal",
                            "Pulled",
                            format!("Container image \"{}\" already present on machine", s.image),
                        );
                        self.start(key, pod, s, now);
                    } else {
                        self.begin_pull(pod, s, now);
                    }
                }
                Stage::Pulling { since, until } if now >= until => {
                    if let Some(err) = s.behaviour.pull_error.clone() {
                        let msg = format!("failed to pull and unpack image \"{}\": {err}", s.image);
                        self.event(
                            pod,
                            s,
                            "Warning",
                            "Failed",
                            format!("Failed to pull image \"{}\": {msg}", s.image),
                        );
                        self.event(pod, s, "Warning", "Failed", "Error: ErrImagePull".into());
                        let (_, next) = self.backoff(s.pull_backoff);
                        s.pull_backoff = Some(next);
                        s.stage = Stage::PullFailed {
                            since: now,
                            retry_at: now + next,
                            message: msg,
                            announced: false,
                        };
                    } else {
                        self.runtime.add_image(&s.image);
                        let took = (until - since).num_milliseconds();
                        self.event(pod, s, "Normal", "Pulled", format!("Successfully pulled image \"{}\" in {took}ms ({took}ms including waiting). Image size: 0 bytes.", s.image));
                        s.pull_backoff = None;
                        self.start(key, pod, s, now);
                    }
                }
                Stage::PullFailed { retry_at, .. } if now >= retry_at => {
                    self.begin_pull(pod, s, now);
                }
                Stage::PullFailed {
                    since,
                    retry_at,
                    message,
                    announced: false,
                } if now >= status::err_shown_until(since, retry_at) => {
                    self.event(
                        pod,
                        s,
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{}\"", s.image),
                    );
                    self.event(
                        pod,
                        s,
                        "Warning",
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                    );
                    s.stage = Stage::PullFailed {
                        since,
                        retry_at,
                        message,
                        announced: true,
                    };
                }
                Stage::Running { id } => {
                    let Some(info) = self.runtime.inspect(&id) else {
                        return;
                    };
                    if !s.warned_ready && s.readiness_failing(&info, now) {
                        s.warned_ready = true;
                        self.event(
                            pod,
                            s,
                            "Warning",
                            "Unhealthy",
                            "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                        );
                    }
                    self.check_liveness(pod, s, &info, now);
                    let Some(info) = self.runtime.inspect(&id) else {
                        return;
                    };
                    let Some((t, code)) = info.exited(now) else {
                        return;
                    };
                    let restart = match policy {
                        "Never" => false,
                        "OnFailure" => code != 0,
                        _ => !s.init || code != 0,
                    };
                    if !restart {
                        return;
                    }
                    s.last = Some(info.clone());
                    if t - info.started_at >= ms(self.timing.backoff_max_ms) * 2 {
                        s.backoff = None; // it ran long enough: back-off starts over
                    }
                    let (wait, next) = self.backoff(s.backoff);
                    s.backoff = Some(next);
                    s.stage = Stage::CrashBackOff {
                        restart_at: t + wait,
                        wait,
                    };
                    if t + wait > now {
                        let msg = format!(
                            "Back-off restarting failed container {} in pod {}",
                            s.name,
                            status::pod_ref(pod)
                        );
                        self.event(pod, s, "Warning", "BackOff", msg);
                    }
                }
                Stage::CrashBackOff { restart_at, .. } if now >= restart_at => {
                    s.restarts += 1;
                    self.event(
                        pod,
                        s,
                        "Normal",
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", s.image),
                    );
                    self.start(key, pod, s, now);
                }
                _ => return,
            }
        }
    }

    fn begin_pull(&self, pod: &Pod, s: &mut Slot, now: Ts) {
        let msg = format!("Pulling image \"{}\"", s.image);
        self.event(pod, s, "Normal", "Pulling", msg);
        let until = now + ms(s.behaviour.pull_ms.unwrap_or(0));
        s.stage = Stage::Pulling { since: now, until };
    }

    fn check_liveness(&self, pod: &Pod, s: &mut Slot, info: &ContainerInfo, now: Ts) {
        let Some((fail_from, kill_at)) = s.liveness_failure(info) else {
            return;
        };
        if info.exited(now).is_some() || now < fail_from {
            return;
        }
        if !s.warned {
            s.warned = true;
            self.event(
                pod,
                s,
                "Warning",
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500".into(),
            );
        }
        if now >= kill_at {
            self.event(
                pod,
                s,
                "Normal",
                "Killing",
                format!(
                    "Container {} failed liveness probe, will be restarted",
                    s.name
                ),
            );
            let grace = pod
                .spec
                .as_ref()
                .and_then(|p| p.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64;
            self.runtime.kill(&info.id, Duration::from_secs(grace), now);
        }
    }

    fn start(&self, key: &str, pod: &Pod, s: &mut Slot, now: Ts) {
        let info = self.runtime.run(key, &s.name, &s.image, &s.behaviour, now);
        self.event(
            pod,
            s,
            "Normal",
            "Created",
            format!("Created container: {}", s.name),
        );
        self.event(
            pod,
            s,
            "Normal",
            "Started",
            format!("Started container {}", s.name),
        );
        let mut ids = lock(&self.ids);
        let entry = ids.entry(key.to_string()).or_default();
        let prev = entry.get(&s.name).map(|(cur, _)| cur.clone());
        entry.insert(s.name.clone(), (info.id.clone(), prev));
        if let Some(old) = s.last.as_ref().map(|l| l.id.clone()) {
            // Keep the previous instance for `logs --previous`; drop older ones.
            if let Some(older) = s.previous_id.replace(old) {
                self.runtime.remove(&older);
            }
        }
        s.stage = Stage::Running { id: info.id };
        s.warned = false;
        s.warned_ready = false;
    }
}
