//! Starting and stopping a whole cluster as child processes: the API server first (waiting
//! for `/readyz`), then the controllers, the scheduler and N kubelets, each one's output
//! prefixed with its name (or written to a log file).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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
    children: Vec<(String, Child)>,
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
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = dir.ends_with("release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
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
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().context("building the cluster binaries")?;
        if !status.success() {
            bail!("building the cluster binaries failed");
        }
    }
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

fn spawn(dir: &Path, name: &str, bin: &str, args: &[String], logs: &Logs) -> anyhow::Result<Child> {
    let mut cmd = Command::new(dir.join(bin));
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    match logs {
        Logs::Prefixed => {
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .env("NO_COLOR", "1");
        }
        Logs::Files(d) => {
            let f = std::fs::File::create(d.join(format!("{name}.log")))?;
            cmd.stdout(f.try_clone()?).stderr(f);
        }
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {bin}"))?;
    if let Logs::Prefixed = logs {
        let width = 12;
        if let Some(out) = child.stdout.take() {
            let n = name.to_string();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    println!("{n:>width$} | {l}");
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let n = name.to_string();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    println!("{n:>width$} | {l}");
                }
            });
        }
    }
    Ok(child)
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
        children.push(("apiserver".to_string(), api));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{server}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some((_, c)) = children.first_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "cox-apiserver exited ({st}); is {} already in use?",
                        o.listen
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("cox-apiserver did not become ready at {server}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = vec!["--server".to_string(), server.clone()];
        children.push((
            "controllers".into(),
            spawn(&dir, "controllers", "cox-controllers", &s, &o.logs)?,
        ));
        children.push((
            "scheduler".into(),
            spawn(&dir, "scheduler", "cox-scheduler", &s, &o.logs)?,
        ));
        if o.one_kubelet {
            let mut a = s.clone();
            a.extend([
                "--node-name".to_string(),
                "node".into(),
                "--nodes".into(),
                o.nodes.to_string(),
            ]);
            a.extend(o.kubelet_args.clone());
            children.push((
                "kubelets".into(),
                spawn(&dir, "kubelets", "cox-kubelet", &a, &o.logs)?,
            ));
        } else {
            for i in 1..=o.nodes {
                let name = format!("node-{i}");
                let mut a = s.clone();
                a.extend(["--node-name".to_string(), name.clone()]);
                a.extend(o.kubelet_args.clone());
                children.push((
                    name.clone(),
                    spawn(&dir, &name, "cox-kubelet", &a, &o.logs)?,
                ));
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
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.id())
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

    /// Stop every process (SIGTERM, then kill), clients first, API server last.
    pub async fn stop(mut self) {
        for (_, c) in self.children.iter_mut().rev() {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for (name, c) in self.children.iter_mut().rev() {
            match tokio::time::timeout(Duration::from_secs(3), c.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    eprintln!("{name} did not stop; killing it");
                    let _ = c.kill().await;
                }
            }
        }
    }
}
