//! The one process launcher of Coxswain's tests (`crates/testkit`), `cox up` and `cox bench`:
//! where the binaries are (built first when run through cargo), free ports, spawning a
//! component with its output to a file, to stdout with a `name | ` prefix, or nowhere,
//! waiting until an HTTP endpoint answers 2xx, stopping with SIGTERM then SIGKILL, and a real
//! etcd on free ports. Blocking and std-only, so both the tests and the async `cox` use it.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a launch failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Spawning, building or a port.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A process exited before it was ready.
    #[error("{name} exited ({status}) before answering {url}")]
    Exited {
        /// The component.
        name: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it was to answer.
        url: String,
    },
    /// Nothing answered in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// `cargo build` failed.
    #[error("building the binaries failed ({0})")]
    Build(ExitStatus),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, LaunchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("finding a free port"))
}

/// `cargo build --quiet ARGS` (`--release` when `dir` is a release target dir), when run
/// through cargo (`CARGO` set); otherwise nothing.
pub fn cargo_build(dir: &Path, args: &[&str]) -> Result<(), LaunchError> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--quiet").args(args);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let st = cmd.status().map_err(io("running cargo build"))?;
    if st.success() {
        Ok(())
    } else {
        Err(LaunchError::Build(st))
    }
}

/// Where a spawned process's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Appended to this file.
    File(PathBuf),
    /// Printed to stdout, each line as `name | line`.
    Prefixed,
    /// Dropped.
    Null,
}

/// A child process; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    /// Its name (`apiserver`, `node-1`, `etcd`).
    pub name: String,
    /// Its log file, with [`Output::File`].
    pub log: Option<PathBuf>,
    child: Child,
}

impl Proc {
    /// Start `bin` with `args`; stdin is closed.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        out: Output,
        envs: &[(&str, String)],
    ) -> Result<Proc, LaunchError> {
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).env("NO_COLOR", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut log = None;
        match &out {
            Output::File(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(io(format!("opening {}", p.display())))?;
                let f2 = f.try_clone().map_err(io("log file"))?;
                cmd.stdout(f).stderr(f2);
                log = Some(p.clone());
            }
            Output::Prefixed => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(io(format!("starting {}", bin.display())))?;
        if let Output::Prefixed = out {
            let streams: [Option<Box<dyn Read + Send>>; 2] = [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
            ];
            for s in streams.into_iter().flatten() {
                let n = name.to_string();
                std::thread::spawn(move || {
                    for l in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                        println!("{n:>12} | {l}");
                    }
                });
            }
        }
        Ok(Proc {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait up to `limit` for it to exit; returns how long it took, or `None`
    /// when it had to be killed (SIGKILL).
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        if self.is_running() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid().to_string())
                .status();
        }
        while started.elapsed() < limit {
            if self.exited().is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        None
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `n` lines of its log file.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let mut tail: Vec<String> = text.lines().rev().take(n).map(str::to_string).collect();
        tail.reverse();
        tail
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `http://HOST:PORT/PATH` answers 2xx (one plain HTTP/1.0 GET, 1 s at most).
pub fn http_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Ok(addr) = host.parse::<std::net::SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && head[9] == b'2'
}

/// Wait until `url` answers 2xx; fails when `proc` exits first or `timeout` passes.
pub fn wait_healthy(
    url: &str,
    timeout: Duration,
    mut proc: Option<&mut Proc>,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if http_ok(url) {
            return Ok(());
        }
        if let Some(p) = proc.as_deref_mut() {
            if let Some(status) = p.exited() {
                return Err(LaunchError::Exited {
                    name: p.name.clone(),
                    status,
                    url: url.to_string(),
                });
            }
        }
        if Instant::now() > deadline {
            return Err(LaunchError::Timeout {
                url: url.to_string(),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A real etcd (Debian's `etcd-server`) on free ports, its data in `dir`, its log in
/// `dir/etcd.log`; killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    /// Client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The process.
    pub proc: Proc,
}

/// Whether an `etcd` binary is installed.
pub fn etcd_installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Start etcd and wait (20 s at most) until it answers `/health`.
pub fn start_etcd(dir: &Path) -> Result<Etcd, LaunchError> {
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let args: Vec<String> = [
        "--name",
        "cox",
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("cox={peer_url}"),
        "--data-dir",
        &dir.join("data").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut proc = Proc::spawn(
        "etcd",
        Path::new("etcd"),
        &args,
        Output::File(dir.join("etcd.log")),
        &[],
    )?;
    wait_healthy(
        &format!("{url}/health"),
        Duration::from_secs(20),
        Some(&mut proc),
    )?;
    Ok(Etcd { url, proc })
}

/// Members of an etcd cluster on free ports, each with its data in `dir/<name>`.
#[derive(Debug, Clone)]
pub struct EtcdMember {
    /// `m0`, `m1`, ...
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Peer URL.
    pub peer_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
}

/// Plan an `n`-member etcd cluster (ports chosen, nothing started).
pub fn plan_etcd_cluster(dir: &Path, n: usize) -> Result<Vec<EtcdMember>, LaunchError> {
    (0..n)
        .map(|i| {
            Ok(EtcdMember {
                name: format!("m{i}"),
                client_url: format!("http://127.0.0.1:{}", free_port()?),
                peer_url: format!("http://127.0.0.1:{}", free_port()?),
                data_dir: dir.join(format!("m{i}")),
            })
        })
        .collect()
}

/// Start (or restart, on its existing data) member `i` of `members`; does not wait.
pub fn start_etcd_member(members: &[EtcdMember], i: usize) -> Result<Proc, LaunchError> {
    let m = &members[i];
    let initial: Vec<String> = members
        .iter()
        .map(|x| format!("{}={}", x.name, x.peer_url))
        .collect();
    let args: Vec<String> = [
        "--name",
        &m.name,
        "--data-dir",
        &m.data_dir.display().to_string(),
        "--listen-client-urls",
        &m.client_url,
        "--advertise-client-urls",
        &m.client_url,
        "--listen-peer-urls",
        &m.peer_url,
        "--initial-advertise-peer-urls",
        &m.peer_url,
        "--initial-cluster",
        &initial.join(","),
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "cox-chaos",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = m.data_dir.with_extension("log");
    Proc::spawn(&m.name, Path::new("etcd"), &args, Output::File(log), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_of_a_local_http_server() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                let status = if i == 0 { "503 No" } else { "200 OK" };
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\n\r\nok").as_bytes());
            }
        });
        assert!(!http_ok(&url), "503 is not healthy");
        wait_healthy(&url, Duration::from_secs(5), None).unwrap();
        assert!(!http_ok("http://127.0.0.1:1/readyz"));
    }

    #[test]
    fn terminate_and_exit_before_ready() {
        let mut p = Proc::spawn(
            "sleeper",
            Path::new("sleep"),
            &["30".into()],
            Output::Null,
            &[],
        )
        .unwrap();
        assert!(p.is_running());
        let took = p
            .terminate(Duration::from_secs(5))
            .expect("sleep exits on SIGTERM");
        assert!(took < Duration::from_secs(5));
        let mut gone = Proc::spawn("false", Path::new("false"), &[], Output::Null, &[]).unwrap();
        let e = wait_healthy(
            "http://127.0.0.1:1/x",
            Duration::from_secs(5),
            Some(&mut gone),
        );
        assert!(matches!(e, Err(LaunchError::Exited { .. })), "{e:?}");
    }
}
