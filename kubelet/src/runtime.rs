//! The container runtime seam ([`ContainerRuntime`], CRI-like: images, run, kill, remove,
//! inspect) and [`SimRuntime`], the simulated runtime behind it. A simulated container is a
//! timeline fixed by its [`Behaviour`]: it starts `startMs` after creation, exits at
//! `exitAfterMs` with `exitCode` (or runs until killed, taking `stopMs` to honour SIGTERM
//! within the grace period, else SIGKILL and 137), and prints its lines. State is computed
//! from the clock on read, so an idle container costs nothing.

use crate::behaviour::Behaviour;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A point in time.
pub type Ts = DateTime<Utc>;

/// `d` as a chrono duration.
pub fn ms(d: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(d.min(i64::MAX as u64) as i64)
}

/// A container as the runtime reports it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// `containerd://<64 hex>`.
    pub id: String,
    /// Resolved image ID (`docker.io/library/nginx@sha256:...`).
    pub image_id: String,
    /// When it is (or will be) running.
    pub started_at: Ts,
    /// When it exits (or exited), with its exit code; `None` runs until killed.
    pub exit: Option<(Ts, i32)>,
    /// Killed by the kubelet (SIGTERM, then SIGKILL after the grace period).
    pub killed: bool,
    /// Lines printed at start.
    pub logs: Vec<String>,
    /// Prints a heartbeat line every 5 s while running (the default server process).
    pub heartbeat: bool,
    /// How long it takes to exit after SIGTERM.
    pub stop_ms: u64,
}

impl ContainerInfo {
    /// Exit time and code, once it has exited.
    pub fn exited(&self, now: Ts) -> Option<(Ts, i32)> {
        self.exit.filter(|(t, _)| *t <= now)
    }

    /// Running at `now`.
    pub fn running(&self, now: Ts) -> bool {
        now >= self.started_at && self.exited(now).is_none()
    }
}

/// The runtime interface the kubelet drives.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Whether the image is already on the node.
    fn has_image(&self, image: &str) -> bool;
    /// Record a finished pull.
    fn add_image(&self, image: &str);
    /// Create and start a container; it is running from `started_at`.
    fn run(&self, pod: &str, name: &str, image: &str, b: &Behaviour, now: Ts) -> ContainerInfo;
    /// Stop a container: SIGTERM, SIGKILL after `grace`. Returns when it will have exited.
    fn kill(&self, id: &str, grace: Duration, now: Ts) -> Option<Ts>;
    /// Forget a container.
    fn remove(&self, id: &str);
    /// A container's state.
    fn inspect(&self, id: &str) -> Option<ContainerInfo>;
    /// A container's log lines up to `now`, with their times.
    fn log_lines(&self, id: &str, now: Ts) -> Vec<(Ts, String)>;
}

/// The simulated runtime of one node.
#[derive(Clone)]
pub struct SimRuntime {
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
    /// An empty runtime for `node`.
    pub fn new(node: &str) -> SimRuntime {
        SimRuntime {
            images: Arc::default(),
            containers: Arc::default(),
            node: node.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A container's log lines up to `now`: its start lines, then (for a default server
    /// process) one line every 5 s it has been running, then its exit.
    fn sim_log_lines(&self, id: &str, now: Ts) -> Vec<(Ts, String)> {
        let Some(c) = self.inspect(id) else {
            return Vec::new();
        };
        if now < c.started_at {
            return Vec::new();
        }
        let mut lines: Vec<(Ts, String)> =
            c.logs.iter().map(|l| (c.started_at, l.clone())).collect();
        let end = c.exited(now).map(|(t, _)| t).unwrap_or(now);
        if c.heartbeat {
            let mut t = c.started_at + chrono::Duration::seconds(5);
            let mut n = 1;
            while t <= end {
                lines.push((t, format!("heartbeat {n}: serving")));
                t += chrono::Duration::seconds(5);
                n += 1;
            }
        }
        if let Some((t, code)) = c.exited(now).filter(|_| c.killed) {
            lines.push((t, format!("received SIGTERM, exiting with code {code}")));
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

    fn add_image(&self, image: &str) {
        if let Ok(mut g) = self.images.lock() {
            g.insert(image.to_string());
        }
    }

    fn run(&self, pod: &str, name: &str, image: &str, b: &Behaviour, now: Ts) -> ContainerInfo {
        let id = format!(
            "containerd://{}",
            hex64(&format!(
                "{pod}/{name}/{}",
                now.timestamp_nanos_opt().unwrap_or(0)
            ))
        );
        let started_at = now + ms(b.start_ms.unwrap_or(0));
        let (logs, heartbeat) = match &b.logs {
            Some(l) => (l.clone(), false),
            None => (
                vec![
                    format!(
                        "[cox-runtime] container started from image {image} on node {}",
                        self.node
                    ),
                    format!("{image}: configuration complete; ready for start up"),
                ],
                b.exit_after_ms.is_none(),
            ),
        };
        let info = ContainerInfo {
            id: id.clone(),
            image_id: image_id(image),
            started_at,
            exit: b
                .exit_after_ms
                .map(|e| (started_at + ms(e), b.exit_code.unwrap_or(0))),
            killed: false,
            logs,
            heartbeat,
            stop_ms: b.stop_ms.unwrap_or(0),
        };
        self.lock().insert(id, info.clone());
        info
    }

    fn kill(&self, id: &str, grace: Duration, now: Ts) -> Option<Ts> {
        let mut g = self.lock();
        let c = g.get_mut(id)?;
        if let Some((t, _)) = c.exit.filter(|(t, _)| *t <= now) {
            return Some(t);
        }
        let grace_ms = grace.as_millis().min(u64::MAX as u128) as u64;
        // SIGTERM is honoured after stop_ms; past the grace period SIGKILL ends it with 137.
        let (after, code) = if c.stop_ms <= grace_ms {
            (c.stop_ms, 0)
        } else {
            (grace_ms, 137)
        };
        let at = now.max(c.started_at) + ms(after);
        if let Some((t, _)) = c.exit.filter(|(t, _)| *t <= at) {
            return Some(t); // it ends by itself first
        }
        c.exit = Some((at, code));
        c.killed = true;
        Some(at)
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn inspect(&self, id: &str) -> Option<ContainerInfo> {
        self.lock().get(id).cloned()
    }

    fn log_lines(&self, id: &str, now: Ts) -> Vec<(Ts, String)> {
        self.sim_log_lines(id, now)
    }
}
