//! Starting and stopping a whole cluster as child processes: the API server first (waiting
//! for `/readyz`), then the controllers, the scheduler and N kubelets, each one's output
//! prefixed with its name (or written to a log file).

use anyhow::{bail, Context};
use coxswain_launch::{Output, Proc};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where component output goes.
#[derive(Clone)]
pub enum Logs {
    /// Printed with a `name | ` prefix.
    Prefixed,
    /// Written to `<dir>/<name>.log`.
    Files(PathBuf),
}

/// A running cluster; dropping it kills the processes.
pub struct Cluster {
    children: Vec<Proc>,
    /// API server URL.
    pub server: String,
    /// When `start` began.
    pub started: Instant,
}

/// The directory holding the Coxswain binaries (next to this one), built first when run
/// through `cargo run` so they are never stale.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the cox binary")?;
    let dir = exe
        .parent()
        .context("cox binary has no directory")?
        .to_path_buf();
    coxswain_launch::cargo_build(
        &dir,
        &[
            "-p",
            "cox-apiserver",
            "-p",
            "cox-controllers",
            "-p",
            "cox-scheduler",
            "-p",
            "cox-kubelet",
            "-p",
            "coxctl",
        ],
    )
    .context("building the cluster binaries")?;
    for b in [
        "cox-apiserver",
        "cox-controllers",
        "cox-scheduler",
        "cox-kubelet",
    ] {
        if !dir.join(b).exists() {
            bail!(
                "{} not found next to cox; build the workspace first (cargo build --release)",
                b
            );
        }
    }
    Ok(dir)
}

fn spawn(dir: &Path, name: &str, bin: &str, args: &[String], logs: &Logs) -> anyhow::Result<Proc> {
    let out = match logs {
        Logs::Prefixed => Output::Prefixed,
        Logs::Files(d) => Output::File(d.join(format!("{name}.log"))),
    };
    Ok(Proc::spawn(name, &dir.join(bin), args, out, &[])?)
}

/// Options for [`Cluster::start`].
pub struct Options {
    /// API server listen address.
    pub listen: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Number of kubelets.
    pub nodes: usize,
    /// Output handling.
    pub logs: Logs,
    /// Run all nodes in one kubelet process (`--nodes N`) instead of one process each.
    pub one_kubelet: bool,
    /// Extra kubelet flags.
    pub kubelet_args: Vec<String>,
}

impl Cluster {
    /// Start every component; returns once the API server answers `/readyz`.
    pub async fn start(o: &Options) -> anyhow::Result<Cluster> {
        let dir = bin_dir()?;
        let started = Instant::now();
        let server = format!("http://{}", o.listen);
        let mut children = Vec::new();
        let api = spawn(
            &dir,
            "apiserver",
            "cox-apiserver",
            &[
                "--listen".into(),
                o.listen.clone(),
                "--data-dir".into(),
                o.data_dir.display().to_string(),
            ],
            &o.logs,
        )?;
        let url = format!("{server}/readyz");
        let listen = o.listen.clone();
        let api = tokio::task::spawn_blocking(move || {
            let mut api = api;
            coxswain_launch::wait_healthy(&url, Duration::from_secs(20), Some(&mut api))
                .map(|()| api)
        })
        .await?
        .with_context(|| format!("starting cox-apiserver (is {listen} already in use?)"))?;
        children.push(api);
        let s = vec!["--server".to_string(), server.clone()];
        children.push(spawn(&dir, "controllers", "cox-controllers", &s, &o.logs)?);
        children.push(spawn(&dir, "scheduler", "cox-scheduler", &s, &o.logs)?);
        if o.one_kubelet {
            let mut a = s.clone();
            a.extend([
                "--node-name".to_string(),
                "node".into(),
                "--nodes".into(),
                o.nodes.to_string(),
            ]);
            a.extend(o.kubelet_args.clone());
            children.push(spawn(&dir, "kubelets", "cox-kubelet", &a, &o.logs)?);
        } else {
            for i in 1..=o.nodes {
                let name = format!("node-{i}");
                let mut a = s.clone();
                a.extend(["--node-name".to_string(), name.clone()]);
                a.extend(o.kubelet_args.clone());
                children.push(spawn(&dir, &name, "cox-kubelet", &a, &o.logs)?);
            }
        }
        Ok(Cluster {
            children,
            server,
            started,
        })
    }

    /// The process ID of a component (`apiserver`, `controllers`, ...).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.iter().find(|p| p.name == name).map(Proc::pid)
    }

    /// Wait until every node reports Ready.
    pub async fn wait_nodes_ready(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            let ready = match http
                .get(format!("{}/api/v1/nodes", self.server))
                .send()
                .await
            {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .map(|v| {
                        v["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|n| {
                                n.pointer("/status/conditions")
                                    .and_then(|c| c.as_array())
                                    .is_some_and(|cs| {
                                        cs.iter()
                                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                                    })
                            })
                            .count()
                    })
                    .unwrap_or(0),
                Err(_) => 0,
            };
            if ready >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ready} of {n} nodes became Ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop every process (SIGTERM, then kill after 3 s), clients first, API server last.
    pub async fn stop(self) {
        let mut children = self.children;
        let _ = tokio::task::spawn_blocking(move || {
            for p in children.iter_mut().rev() {
                if p.terminate(Duration::from_secs(3)).is_none() {
                    eprintln!("{} did not stop; killed it", p.name);
                }
            }
        })
        .await;
    }
}
