//! Running the pods bound to this node: one reconcile per pod key compares the pod (desired)
//! with the runtime's containers (actual), starts or stops containers, and reports status.
//! Starting runs in its own task per pod (pull, create, start), so a slow pull never blocks
//! other pods; the task requeues the pod when it is done.

use crate::runtime::{ContainerRuntime, SimRuntime};
use coxswain_client::{Api, Client, DeleteParams};
use coxswain_runtime::events::{object_ref, Recorder};
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue, Store};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a pod is in its life on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pulling images and starting containers.
    Starting,
    /// All containers running.
    Running,
    /// Containers stopped (being deleted).
    Stopped,
}

/// The runtime side of one pod.
#[derive(Debug, Clone)]
pub struct PodRuntime {
    /// Pod UID.
    pub uid: String,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Container name -> runtime ID.
    pub containers: Vec<(String, String)>,
    /// Pod IP.
    pub ip: String,
    /// When the kubelet took the pod on.
    pub started: chrono::DateTime<chrono::Utc>,
}

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
    /// Pods bound to this node.
    pub pods: Store<Pod>,
    /// Events.
    pub recorder: Recorder,
    /// The pod queue (to requeue after a start).
    pub queue: Queue,
    /// Pod key -> runtime state.
    pub state: Mutex<HashMap<String, PodRuntime>>,
    next_ip: Mutex<u32>,
    subnet: u32,
}

fn now() -> Time {
    Time(chrono::Utc::now())
}

impl PodManager {
    /// A manager for `node`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        node: &str,
        host_ip: &str,
        runtime: SimRuntime,
        pods: Store<Pod>,
        recorder: Recorder,
        queue: Queue,
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
            pods,
            recorder,
            queue,
            state: Mutex::new(HashMap::new()),
            next_ip: Mutex::new(2),
            subnet,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodRuntime>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alloc_ip(&self) -> String {
        let mut g = self.next_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = *g;
        *g = if n >= 65000 { 2 } else { n + 1 };
        format!(
            "10.{}.{}.{}",
            100 + self.subnet / 2,
            (self.subnet % 2) * 128 + (n / 250) % 128,
            n % 250 + 1
        )
    }

    /// The container ID of a pod's container (for logs).
    pub fn container_id(&self, key: &str, container: &str) -> Option<String> {
        self.lock().get(key).and_then(|p| {
            p.containers
                .iter()
                .find(|(n, _)| n == container)
                .map(|(_, id)| id.clone())
        })
    }

    /// Reconcile one pod key.
    pub async fn reconcile(self: Arc<Self>, key: String) -> anyhow::Result<Action> {
        let (ns, name) = split_key(&key);
        let ns = ns.unwrap_or("default").to_string();
        let api: Api<Pod> = Api::namespaced(&self.client, &ns);
        let Some(pod) = self.pods.get(&key) else {
            self.stop_all(&key, Duration::ZERO).await;
            return Ok(Action::AwaitChange);
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let existing = self.lock().get(&key).cloned();
        if let Some(rt) = &existing {
            if rt.uid != uid {
                // Same name, new pod: the old one's containers go first.
                self.stop_all(&key, Duration::ZERO).await;
                self.queue.add(key.clone());
                return Ok(Action::AwaitChange);
            }
        }
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            if existing.as_ref().is_some_and(|r| r.phase != Phase::Stopped) {
                for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                    self.recorder.record(
                        object_ref(&*pod),
                        "Normal",
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                }
                self.stop_all(&key, Duration::from_secs(grace)).await;
            }
            api.delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    uid: Some(uid),
                    ..Default::default()
                },
            )
            .await?;
            return Ok(Action::AwaitChange);
        }
        let rt = match existing {
            Some(rt) => rt,
            None => {
                let rt = PodRuntime {
                    uid: uid.clone(),
                    phase: Phase::Starting,
                    containers: Vec::new(),
                    ip: self.alloc_ip(),
                    started: chrono::Utc::now(),
                };
                self.lock().insert(key.clone(), rt.clone());
                let me = self.clone();
                let p = pod.clone();
                let k = key.clone();
                tokio::spawn(async move { me.start_pod(k, p).await });
                rt
            }
        };
        let status = self.desired_status(&pod, &rt);
        if !same_status(pod.status.as_ref(), &status) {
            api.patch_status(name, &json!({"status": status})).await?;
        }
        Ok(Action::AwaitChange)
    }

    async fn start_pod(self: Arc<Self>, key: String, pod: Arc<Pod>) {
        let spec = pod.spec.clone().unwrap_or_default();
        for c in &spec.containers {
            let image = c.image.clone().unwrap_or_default();
            if !self.runtime.has_image(&image) {
                self.recorder.record(
                    object_ref(&*pod),
                    "Normal",
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
            }
            let pulled = self.runtime.pull(&image).await;
            if pulled.cached {
                self.recorder.record(
                    object_ref(&*pod),
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
            } else {
                let ms = pulled.took.as_millis();
                self.recorder.record(object_ref(&*pod), "Normal", "Pulled", format!("Successfully pulled image \"{image}\" in {ms}ms ({ms}ms including waiting). Image size: 0 bytes."));
            }
            let id = self.runtime.create(&key, &c.name, &image, &pulled.image_id);
            self.recorder.record(
                object_ref(&*pod),
                "Normal",
                "Created",
                format!("Created container: {}", c.name),
            );
            self.runtime.start(&id).await;
            self.recorder.record(
                object_ref(&*pod),
                "Normal",
                "Started",
                format!("Started container {}", c.name),
            );
            if let Some(rt) = self.lock().get_mut(&key) {
                rt.containers.push((c.name.clone(), id));
            }
        }
        if let Some(rt) = self.lock().get_mut(&key) {
            if rt.phase == Phase::Starting {
                rt.phase = Phase::Running;
            }
        }
        tracing::info!(node = %self.node, pod = %key, "containers running");
        self.queue.add(key);
    }

    async fn stop_all(&self, key: &str, grace: Duration) {
        let rt = self.lock().get(key).cloned();
        let Some(rt) = rt else { return };
        for (_, id) in &rt.containers {
            self.runtime.stop(id, grace).await;
        }
        if let Some(r) = self.lock().get_mut(key) {
            r.phase = Phase::Stopped;
        }
        if self.pods.get(key).is_none() {
            if let Some(r) = self.lock().remove(key) {
                for (_, id) in r.containers {
                    self.runtime.remove(&id);
                }
            }
        }
    }

    /// The status this pod should report, from the runtime's view.
    fn desired_status(&self, pod: &Pod, rt: &PodRuntime) -> PodStatus {
        let spec = pod.spec.clone().unwrap_or_default();
        let old = pod.status.clone().unwrap_or_default();
        let running = rt.phase == Phase::Running;
        let mut statuses = Vec::new();
        for c in &spec.containers {
            let id = rt
                .containers
                .iter()
                .find(|(n, _)| *n == c.name)
                .map(|(_, id)| id.clone());
            let info = id.as_deref().and_then(|i| self.runtime.inspect(i));
            let state = match &info {
                Some(i) if i.finished.is_some() => ContainerState {
                    terminated: i.finished.map(|(t, code)| ContainerStateTerminated {
                        exit_code: code,
                        reason: Some("Completed".into()),
                        started_at: i.started_at.map(Time),
                        finished_at: Some(Time(t)),
                        container_id: Some(i.id.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Some(i) if i.started_at.is_some() => ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: i.started_at.map(Time),
                    }),
                    ..Default::default()
                },
                _ => ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ContainerCreating".into()),
                        message: None,
                    }),
                    ..Default::default()
                },
            };
            let ready = running
                && info
                    .as_ref()
                    .is_some_and(|i| i.started_at.is_some() && i.finished.is_none());
            statuses.push(ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: info
                    .as_ref()
                    .map(|i| i.image_id.clone())
                    .unwrap_or_default(),
                container_id: info.as_ref().map(|i| i.id.clone()),
                ready,
                started: Some(ready),
                restart_count: 0,
                state: Some(state),
                last_state: Some(ContainerState::default()),
                ..Default::default()
            });
        }
        let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
        let unready: Vec<String> = statuses
            .iter()
            .filter(|s| !s.ready)
            .map(|s| s.name.clone())
            .collect();
        let cond = |t: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
            let status = if ok { "True" } else { "False" };
            let prev = old.conditions.iter().flatten().find(|c| c.type_ == t);
            PodCondition {
                type_: t.to_string(),
                status: status.to_string(),
                reason: if ok { None } else { reason.map(str::to_string) },
                message: if ok { None } else { message },
                last_probe_time: None,
                last_transition_time: match prev {
                    Some(p) if p.status == status => p.last_transition_time.clone(),
                    _ => Some(now()),
                },
            }
        };
        let msg = format!("containers with unready status: [{}]", unready.join(" "));
        let conditions = vec![
            cond("PodReadyToStartContainers", true, None, None),
            cond("Initialized", true, None, None),
            cond(
                "Ready",
                all_ready,
                Some("ContainersNotReady"),
                Some(msg.clone()),
            ),
            cond(
                "ContainersReady",
                all_ready,
                Some("ContainersNotReady"),
                Some(msg),
            ),
            cond("PodScheduled", true, None, None),
        ];
        PodStatus {
            phase: Some(if running { "Running" } else { "Pending" }.into()),
            conditions: Some(conditions),
            container_statuses: Some(statuses),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: running.then(|| rt.ip.clone()),
            pod_ips: running.then(|| vec![PodIP { ip: rt.ip.clone() }]),
            start_time: old.start_time.clone().or(Some(Time(rt.started))),
            qos_class: old.qos_class.clone(),
            ..Default::default()
        }
    }
}

/// Compare statuses ignoring nothing but what we do not set; avoids needless writes.
fn same_status(old: Option<&PodStatus>, new: &PodStatus) -> bool {
    let Some(old) = old else { return false };
    let mut a = serde_json::to_value(old).unwrap_or_default();
    let b = serde_json::to_value(new).unwrap_or_default();
    // Conditions may come in another order from the server.
    let sort = |v: &mut serde_json::Value| {
        if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            cs.sort_by(|x, y| x["type"].as_str().cmp(&y["type"].as_str()));
        }
    };
    sort(&mut a);
    let mut b = b;
    sort(&mut b);
    a == b
}
