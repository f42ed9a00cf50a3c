//! The container runtime seam ([`ContainerRuntime`], CRI-like: pull, create, start, stop,
//! logs) and [`SimRuntime`], the simulated runtime behind it. The simulation behaves like a
//! real runtime from the outside: pulls take time (and are cached per node), containers get
//! IDs and start times, and write log lines.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A container as the runtime reports it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// `containerd://<64 hex>`.
    pub id: String,
    /// Image reference as given.
    pub image: String,
    /// Resolved image ID (`docker.io/library/nginx@sha256:...`).
    pub image_id: String,
    /// When it started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it stopped, with its exit code.
    pub finished: Option<(chrono::DateTime<chrono::Utc>, i32)>,
    /// Log lines written at start.
    pub logs: Vec<(chrono::DateTime<chrono::Utc>, String)>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Resolved image ID.
    pub image_id: String,
    /// Whether the image was already on the node.
    pub cached: bool,
    /// How long it took.
    pub took: Duration,
}

/// The runtime interface the kubelet drives.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Whether the image is already on the node.
    fn has_image(&self, image: &str) -> bool;
    /// Pull an image (a no-op when present).
    fn pull(&self, image: &str) -> impl Future<Output = Pulled> + Send;
    /// Create a container; returns its ID.
    fn create(&self, pod: &str, name: &str, image: &str, image_id: &str) -> String;
    /// Start a created container.
    fn start(&self, id: &str) -> impl Future<Output = ()> + Send;
    /// Stop a container, allowing up to `grace`.
    fn stop(&self, id: &str, grace: Duration) -> impl Future<Output = ()> + Send;
    /// Forget a stopped container.
    fn remove(&self, id: &str);
    /// A container's state.
    fn inspect(&self, id: &str) -> Option<ContainerInfo>;
}

/// The simulated runtime.
#[derive(Clone)]
pub struct SimRuntime {
    pull_time: Duration,
    start_time: Duration,
    images: Arc<Mutex<HashSet<String>>>,
    containers: Arc<Mutex<HashMap<String, ContainerInfo>>>,
    node: String,
}

fn hex64(seed: &str) -> String {
    let mut out = String::with_capacity(64);
    let mut h: u64 = 0xcbf29ce484222325;
    for i in 0..4u64 {
        for b in seed.bytes().chain(i.to_le_bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The image ID a registry would resolve `image` to (stable per image name).
pub fn image_id(image: &str) -> String {
    let (repo, _tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    };
    let full = if repo.contains('/') {
        if repo.split('/').next().is_some_and(|h| h.contains('.')) {
            repo.to_string()
        } else {
            format!("docker.io/{repo}")
        }
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}@sha256:{}", hex64(image))
}

impl SimRuntime {
    /// A runtime whose pulls take `pull_time` and starts `start_time`.
    pub fn new(node: &str, pull_time: Duration, start_time: Duration) -> SimRuntime {
        SimRuntime {
            pull_time,
            start_time,
            images: Arc::default(),
            containers: Arc::default(),
            node: node.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Log lines of a container: what it printed at start, then one line every 5 s it has
    /// been running (computed on read, so idle containers cost nothing).
    pub fn log_lines(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
        let Some(c) = self.inspect(id) else {
            return Vec::new();
        };
        let mut lines = c.logs.clone();
        if let Some(start) = c.started_at {
            let end = c.finished.map(|(t, _)| t).unwrap_or(now);
            let mut t = start + chrono::Duration::seconds(5);
            let mut n = 1;
            while t <= end {
                lines.push((t, format!("heartbeat {n}: serving")));
                t += chrono::Duration::seconds(5);
                n += 1;
            }
            if let Some((t, code)) = c.finished {
                lines.push((t, format!("received SIGTERM, exiting with code {code}")));
            }
        }
        lines
    }
}

impl ContainerRuntime for SimRuntime {
    fn has_image(&self, image: &str) -> bool {
        self.images
            .lock()
            .map(|g| g.contains(image))
            .unwrap_or(false)
    }

    async fn pull(&self, image: &str) -> Pulled {
        let cached = self
            .images
            .lock()
            .map(|g| g.contains(image))
            .unwrap_or(false);
        let took = if cached {
            Duration::ZERO
        } else {
            self.pull_time
        };
        tokio::time::sleep(took).await;
        if let Ok(mut g) = self.images.lock() {
            g.insert(image.to_string());
        }
        Pulled {
            image_id: image_id(image),
            cached,
            took,
        }
    }

    fn create(&self, pod: &str, name: &str, image: &str, image_id: &str) -> String {
        let id = format!(
            "containerd://{}",
            hex64(&format!(
                "{pod}/{name}/{}",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
            ))
        );
        self.lock().insert(
            id.clone(),
            ContainerInfo {
                id: id.clone(),
                image: image.to_string(),
                image_id: image_id.to_string(),
                started_at: None,
                finished: None,
                logs: Vec::new(),
            },
        );
        id
    }

    async fn start(&self, id: &str) {
        tokio::time::sleep(self.start_time).await;
        let now = chrono::Utc::now();
        let node = self.node.clone();
        if let Some(c) = self.lock().get_mut(id) {
            c.started_at = Some(now);
            c.logs.push((
                now,
                format!(
                    "[cox-runtime] container started from image {} on node {node}",
                    c.image
                ),
            ));
            c.logs.push((
                now,
                format!("{}: configuration complete; ready for start up", c.image),
            ));
        }
    }

    async fn stop(&self, id: &str, grace: Duration) {
        tokio::time::sleep(grace.min(Duration::from_millis(200))).await;
        if let Some(c) = self.lock().get_mut(id) {
            if c.finished.is_none() {
                c.finished = Some((chrono::Utc::now(), 0));
            }
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn inspect(&self, id: &str) -> Option<ContainerInfo> {
        self.lock().get(id).cloned()
    }
}
