//! TestCluster: the real Coxswain binaries on free ports with temporary data dirs, killed on
//! drop (their logs are printed when the test failed), plus helpers to poll with a deadline,
//! speak raw HTTP, and run the real `kubectl` and `coxctl` against the cluster.

use coxswain_launch::Proc;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();

/// The directory with the workspace's binaries, built once per test process.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    BUILD.call_once(|| {
        // `--tests` makes cargo resolve features as `cargo test` does (dev-dependencies
        // included), so the binaries reuse the test build's dependencies instead of
        // rebuilding the whole tree with another feature set.
        coxswain_launch::cargo_build(&dir, &["--workspace", "--bins", "--tests"])
            .expect("cargo build --bins");
    });
    dir
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    coxswain_launch::free_port().expect("free port")
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `timeout` saying `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Check that `holds` stays true for all of `period`, polling every 50 ms (for "this must
/// not happen" checks); panics naming `what` at the first poll where it does not hold.
pub fn stays(period: Duration, what: &str, mut holds: impl FnMut() -> bool) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(holds(), "no longer true: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (20 s at most) until `url` answers 2xx; `what` names it in the panic.
fn wait_healthy(url: &str, what: &str) {
    if let Err(e) = coxswain_launch::wait_healthy(url, Duration::from_secs(20), None) {
        panic!("waiting for {what}: {e}");
    }
}

/// A real etcd (`apt-get install etcd-server`) on free ports with a temporary data dir,
/// killed on drop.
pub struct Etcd {
    /// Client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    etcd: coxswain_launch::Etcd,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Start etcd and wait until it answers.
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("cox-etcd-")
            .tempdir()
            .expect("temp dir");
        let etcd = coxswain_launch::start_etcd(dir.path())
            .expect("starting etcd (is etcd-server installed? scripts/setup installs it)");
        Etcd {
            url: etcd.url.clone(),
            etcd,
            dir,
        }
    }

    /// POST to etcd's JSON gateway (`/v3/kv/range`, ...): (status, JSON body).
    pub fn call(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .expect("etcd request");
        let code = resp.status().as_u16();
        (code, resp.json().unwrap_or(Value::Null))
    }

    /// The API server flags that store in this etcd under `prefix`.
    pub fn apiserver_args(&self, prefix: &str) -> Vec<String> {
        [
            "--storage",
            "etcd",
            "--etcd-servers",
            &self.url,
            "--etcd-prefix",
            prefix,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.etcd.proc.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- last lines of etcd ({}) -----",
                self.dir.path().display()
            );
            for l in self.etcd.proc.log_tail(20) {
                eprintln!("{l}");
            }
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of kubelets (`node-1` ...).
    pub nodes: usize,
    /// Start the controllers.
    pub controllers: bool,
    /// Start the scheduler.
    pub scheduler: bool,
    /// Extra API server flags.
    pub apiserver_args: Vec<String>,
    /// Extra controller-manager flags.
    pub controller_args: Vec<String>,
    /// Extra kubelet flags.
    pub kubelet_args: Vec<String>,
    /// Extra scheduler flags.
    pub scheduler_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            controllers: true,
            scheduler: true,
            apiserver_args: Vec::new(),
            controller_args: Vec::new(),
            kubelet_args: Vec::new(),
            scheduler_args: Vec::new(),
        }
    }
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A running cluster of real processes.
pub struct TestCluster {
    /// `http://127.0.0.1:PORT`.
    pub server: String,
    /// The API server port.
    pub port: u16,
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
    http: reqwest::blocking::Client,
    opts: Options,
}

impl TestCluster {
    /// A full cluster: API server, controllers, scheduler and `nodes` kubelets.
    pub fn start(nodes: usize) -> TestCluster {
        Self::with(Options {
            nodes,
            ..Default::default()
        })
    }

    /// Only the API server.
    pub fn apiserver_only(extra: &[&str]) -> TestCluster {
        Self::with(Options {
            nodes: 0,
            controllers: false,
            scheduler: false,
            apiserver_args: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    /// Start what `opts` says.
    pub fn with(opts: Options) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("cox-test-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut c = TestCluster {
            server: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            procs: Vec::new(),
            http: http_client(),
            opts: opts.clone(),
        };
        c.start_apiserver();
        if opts.controllers {
            c.start_component("controllers");
        }
        if opts.scheduler {
            c.start_component("scheduler");
        }
        for i in 1..=opts.nodes {
            c.start_component(&format!("node-{i}"));
        }
        if opts.nodes > 0 {
            let n = opts.nodes;
            c.wait_nodes_ready(n);
        }
        c
    }

    /// The data directory of the API server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self, name: &str, bin: &str, args: &[String]) {
        let log = self.dir.path().join(format!("{name}.log"));
        let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let p = Proc::spawn(
            name,
            &bin_dir().join(bin),
            args,
            coxswain_launch::Output::File(log),
            &[("RUST_LOG", level)],
        )
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        self.procs.push(p);
    }

    /// Start (or restart) the API server and wait for `/readyz`.
    pub fn start_apiserver(&mut self) {
        let mut args = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{}", self.port),
            "--data-dir".to_string(),
            self.data_dir().display().to_string(),
        ];
        args.extend(self.opts.apiserver_args.clone());
        self.spawn("apiserver", "cox-apiserver", &args);
        wait_healthy(&format!("{}/readyz", self.server), "the API server");
        // Pooled connections to a previous process are dead.
        self.http = http_client();
    }

    /// Another API server on the same storage (use with etcd); returns its URL. Its
    /// component name is `name`.
    pub fn start_extra_apiserver(&mut self, name: &str) -> String {
        let port = free_port();
        let mut args = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        args.extend(self.opts.apiserver_args.clone());
        self.spawn(name, "cox-apiserver", &args);
        let server = format!("http://127.0.0.1:{port}");
        wait_healthy(&format!("{server}/readyz"), name);
        server
    }

    /// Start a client component: `controllers[-X]`, `scheduler[-X]` or `node-N`.
    pub fn start_component(&mut self, name: &str) {
        let server = self.server.clone();
        self.start_component_at(name, &server, &[]);
    }

    /// Start a client component talking to `server`, with extra flags.
    pub fn start_component_at(&mut self, name: &str, server: &str, extra: &[String]) {
        let mut args = vec!["--server".to_string(), server.to_string()];
        let bin = match name {
            n if n.starts_with("controllers") => {
                args.extend(self.opts.controller_args.clone());
                "cox-controllers"
            }
            n if n.starts_with("scheduler") => {
                args.extend(self.opts.scheduler_args.clone());
                "cox-scheduler"
            }
            n if n.starts_with("node-") => {
                args.extend(["--node-name".to_string(), n.to_string()]);
                args.extend(self.opts.kubelet_args.clone());
                "cox-kubelet"
            }
            other => panic!("unknown component {other}"),
        };
        args.extend(extra.iter().cloned());
        self.spawn(name, bin, &args);
    }

    /// One kubelet process simulating `n` nodes `PREFIX-1` ... `PREFIX-n` (component name
    /// `kubelets-PREFIX`); waits until they are all Ready.
    pub fn start_multi_kubelet(&mut self, prefix: &str, n: usize) {
        let mut args = vec![
            "--server".to_string(),
            self.server.clone(),
            "--node-name".to_string(),
            prefix.to_string(),
            "--nodes".to_string(),
            n.to_string(),
        ];
        args.extend(self.opts.kubelet_args.clone());
        self.spawn(&format!("kubelets-{prefix}"), "cox-kubelet", &args);
        self.wait_nodes_ready(n);
    }

    /// Whether a component is still running.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.procs
            .iter_mut()
            .any(|p| p.name == name && p.is_running())
    }

    /// Kill a component (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self, name: &str) {
        for p in self.procs.iter_mut().filter(|p| p.name == name) {
            p.kill();
        }
        self.procs.retain(|p| p.name != name);
    }

    /// Send SIGTERM to a component and wait up to `limit` for it to exit; returns how long
    /// it took, or `None` if it was still running (then it is killed).
    pub fn terminate(&mut self, name: &str, limit: Duration) -> Option<Duration> {
        let mut took = None;
        for p in self.procs.iter_mut().filter(|p| p.name == name) {
            took = p.terminate(limit);
        }
        self.procs.retain(|p| p.name != name);
        took
    }

    /// Start the real kubectl in the background (e.g. `get pods -w`), its output piped.
    pub fn kubectl_spawn(&self, args: &[&str]) -> Child {
        let cache = self.dir.path().join("kube-cache");
        Command::new("kubectl")
            .arg("--server")
            .arg(&self.server)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kubectl")
    }

    /// GET with an `Accept` header.
    pub fn get_accept(&self, path: &str, accept: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.server))
                .header("Accept", accept),
        )
    }

    /// Send a body with a method, content type and `Accept` header.
    pub fn send_accept(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        accept: &str,
        body: &str,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.send(
            self.http
                .request(m, format!("{}{path}", self.server))
                .header("Content-Type", content_type)
                .header("Accept", accept)
                .body(body.to_string()),
        )
    }

    /// Wait until `n` nodes report Ready.
    pub fn wait_nodes_ready(&self, n: usize) {
        eventually(Duration::from_secs(30), &format!("{n} nodes Ready"), || {
            let (_, v) = self.get("/api/v1/nodes");
            let ready = v["items"]
                .as_array()?
                .iter()
                .filter(|n| {
                    n.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count();
            (ready >= n).then_some(())
        });
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let resp = req.send().expect("request to the API server");
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET a path: (status code, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.server)))
    }

    /// Send a body with a method and content type.
    pub fn send_body(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.send(
            self.http
                .request(m, format!("{}{path}", self.server))
                .header("Content-Type", content_type)
                .body(body.to_string()),
        )
    }

    /// POST JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_body("POST", path, "application/json", &body.to_string())
    }

    /// PUT JSON.
    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_body("PUT", path, "application/json", &body.to_string())
    }

    /// PATCH with a merge patch.
    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_body(
            "PATCH",
            path,
            "application/merge-patch+json",
            &body.to_string(),
        )
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.server)))
    }

    /// Items of a list path.
    pub fn items(&self, path: &str) -> Vec<Value> {
        let (code, v) = self.get(path);
        assert_eq!(code, 200, "listing {path}: {v}");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Open a watch and read raw lines until `until` says stop or `timeout` passes.
    pub fn watch_lines(
        &self,
        path_and_query: &str,
        timeout: Duration,
        until: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.watch_lines_accept(path_and_query, "application/json", timeout, until)
    }

    /// [`TestCluster::watch_lines`] with an `Accept` header.
    pub fn watch_lines_accept(
        &self,
        path_and_query: &str,
        accept: &str,
        timeout: Duration,
        mut until: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        use std::io::BufRead;
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .expect("client");
        let resp = http
            .get(format!("{}{path_and_query}", self.server))
            .header("Accept", accept)
            .send()
            .expect("watch request");
        let mut out = Vec::new();
        let reader = std::io::BufReader::new(resp);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            out.push(serde_json::from_str(&line).expect("watch line is JSON"));
            if until(&out) {
                break;
            }
        }
        out
    }

    /// Run the real kubectl against this cluster (with its own discovery cache).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let cache = self.dir.path().join("kube-cache");
        Command::new("kubectl")
            .arg("--server")
            .arg(&self.server)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("running kubectl")
    }

    /// Run coxctl against this cluster.
    pub fn coxctl(&self, args: &[&str]) -> Output {
        Command::new(bin_dir().join("coxctl"))
            .arg("--server")
            .arg(&self.server)
            .args(args)
            .output()
            .expect("running coxctl")
    }
}

/// stdout of a command that must have succeeded (panics with its output otherwise).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed:\n{}\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// stdout of a command as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a command as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
        if std::thread::panicking() {
            for p in &self.procs {
                eprintln!("----- last lines of {} -----", p.name);
                for l in p.log_tail(40) {
                    eprintln!("{l}");
                }
            }
        }
    }
}
