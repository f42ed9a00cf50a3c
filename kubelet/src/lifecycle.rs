//! A pod's lifecycle in one place: where each of its containers is ([`Stage`] of a
//! [`Slot`]) and every transition, taken by [`Driver`] against the [`ContainerRuntime`] seam:
//! pull (with back-off on failure), create and start, readiness and liveness (a failed
//! liveness probe kills), exit and restart by `restartPolicy` after the crash back-off, init
//! containers one by one before the others, and stopping on deletion. The transitions do no
//! IO besides the runtime and only note the Events to record, so they are unit-tested with a
//! test runtime and a clock that is a plain value.

use crate::behaviour::Behaviour;
use crate::runtime::{ms, ContainerInfo, ContainerRuntime, Ts};
use k8s_openapi::api::core::v1::{Container, Probe};
use std::time::Duration;

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

/// An Event about one container, for the caller to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The container.
    pub container: String,
    /// An init container.
    pub init: bool,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// `Pulling`, `Started`, `BackOff`, ...
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// Takes the transitions of one pod's containers at one moment.
pub struct Driver<'a> {
    /// The runtime.
    pub runtime: &'a dyn ContainerRuntime,
    /// The kubelet's timings.
    pub timing: Timing,
    /// The pod's key (`ns/name`), the runtime's name for its containers.
    pub key: &'a str,
    /// `name_ns(uid)`, as the kubelet names the pod in messages.
    pub pod_ref: &'a str,
    /// `restartPolicy`.
    pub policy: &'a str,
    /// `terminationGracePeriodSeconds`, for liveness kills.
    pub grace: Duration,
    /// The Events noted so far.
    pub notes: Vec<Note>,
    /// Why a container's environment cannot be made (a missing ConfigMap, Secret or key).
    pub config_error: &'a (dyn Fn(&[crate::refs::Ref]) -> Option<String> + Sync),
}

impl Driver<'_> {
    fn event(&mut self, s: &Slot, type_: &'static str, reason: &'static str, message: String) {
        self.notes.push(Note {
            container: s.name.clone(),
            init: s.init,
            type_,
            reason,
            message,
        });
    }

    /// Run a pod's containers one step: the init containers one by one, then (once they
    /// all succeeded) the others.
    pub fn run_pod(&mut self, init: &mut [Slot], main: &mut [Slot], now: Ts) {
        for s in init.iter_mut() {
            self.drive(s, now);
            if !s.succeeded(self.runtime, now) {
                return;
            }
        }
        for s in main.iter_mut() {
            self.drive(s, now);
        }
    }

    /// Start killing every running container; returns when all will have stopped.
    pub fn stop<'s>(
        &mut self,
        slots: impl Iterator<Item = &'s Slot>,
        grace: Duration,
        now: Ts,
    ) -> Ts {
        let mut done = now;
        for s in slots {
            let Stage::Running { id } = &s.stage else {
                continue;
            };
            if self
                .runtime
                .inspect(id)
                .is_some_and(|c| c.exited(now).is_none())
            {
                self.event(
                    s,
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", s.name),
                );
                if let Some(t) = self.runtime.kill(id, grace, now) {
                    done = done.max(t);
                }
            }
        }
        done
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
    pub fn drive(&mut self, s: &mut Slot, now: Ts) {
        for _ in 0..4 {
            match s.stage.clone() {
                Stage::Waiting => {
                    if self.runtime.has_image(&s.image) {
                        self.event(
                            s,
                            "Normal",
                            "Pulled",
                            format!("Container image \"{}\" already present on machine", s.image),
                        );
                        self.start(s, now);
                    } else {
                        self.begin_pull(s, now);
                    }
                }
                Stage::Pulling { since, until } if now >= until => {
                    if let Some(err) = s.behaviour.pull_error.clone() {
                        let msg = format!("failed to pull and unpack image \"{}\": {err}", s.image);
                        self.event(
                            s,
                            "Warning",
                            "Failed",
                            format!("Failed to pull image \"{}\": {msg}", s.image),
                        );
                        self.event(s, "Warning", "Failed", "Error: ErrImagePull".into());
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
                        self.event(s, "Normal", "Pulled", format!("Successfully pulled image \"{}\" in {took}ms ({took}ms including waiting). Image size: 0 bytes.", s.image));
                        s.pull_backoff = None;
                        self.start(s, now);
                    }
                }
                Stage::PullFailed { retry_at, .. } if now >= retry_at => {
                    self.begin_pull(s, now);
                }
                Stage::PullFailed {
                    since,
                    retry_at,
                    message,
                    announced: false,
                } if now >= err_shown_until(since, retry_at) => {
                    self.event(
                        s,
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{}\"", s.image),
                    );
                    self.event(s, "Warning", "Failed", "Error: ImagePullBackOff".into());
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
                            s,
                            "Warning",
                            "Unhealthy",
                            "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                        );
                    }
                    self.check_liveness(s, &info, now);
                    let Some(info) = self.runtime.inspect(&id) else {
                        return;
                    };
                    let Some((t, code)) = info.exited(now) else {
                        return;
                    };
                    let restart = match self.policy {
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
                            s.name, self.pod_ref
                        );
                        self.event(s, "Warning", "BackOff", msg);
                    }
                }
                Stage::ConfigError { retry_at, .. } if now >= retry_at => self.start(s, now),
                Stage::CrashBackOff { restart_at, .. } if now >= restart_at => {
                    s.restarts += 1;
                    self.event(
                        s,
                        "Normal",
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", s.image),
                    );
                    self.start(s, now);
                }
                _ => return,
            }
        }
    }

    fn begin_pull(&mut self, s: &mut Slot, now: Ts) {
        let msg = format!("Pulling image \"{}\"", s.image);
        self.event(s, "Normal", "Pulling", msg);
        let until = now + ms(s.behaviour.pull_ms.unwrap_or(0));
        s.stage = Stage::Pulling { since: now, until };
    }

    fn check_liveness(&mut self, s: &mut Slot, info: &ContainerInfo, now: Ts) {
        let Some((fail_from, kill_at)) = s.liveness_failure(info) else {
            return;
        };
        if info.exited(now).is_some() || now < fail_from {
            return;
        }
        if !s.warned {
            s.warned = true;
            self.event(
                s,
                "Warning",
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500".into(),
            );
        }
        if now >= kill_at {
            self.event(
                s,
                "Normal",
                "Killing",
                format!(
                    "Container {} failed liveness probe, will be restarted",
                    s.name
                ),
            );
            self.runtime.kill(&info.id, self.grace, now);
        }
    }

    fn start(&mut self, s: &mut Slot, now: Ts) {
        if let Some(msg) = (self.config_error)(&s.refs) {
            // Retried every 2 s; the event once per distinct error.
            let same = matches!(&s.stage, Stage::ConfigError { message, .. } if *message == msg);
            if !same {
                self.event(s, "Warning", "Failed", format!("Error: {msg}"));
            }
            s.stage = Stage::ConfigError {
                message: msg,
                retry_at: now + ms(2000),
            };
            return;
        }
        let info = self
            .runtime
            .run(self.key, &s.name, &s.image, &s.behaviour, now);
        self.event(
            s,
            "Normal",
            "Created",
            format!("Created container: {}", s.name),
        );
        self.event(
            s,
            "Normal",
            "Started",
            format!("Started container {}", s.name),
        );
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

/// Where one container is.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Not started yet.
    Waiting,
    /// Pulling its image.
    Pulling {
        /// Pull began.
        since: Ts,
        /// Pull ends.
        until: Ts,
    },
    /// The pull failed; retried at `retry_at`.
    PullFailed {
        /// When it failed.
        since: Ts,
        /// When the next pull starts.
        retry_at: Ts,
        /// The pull error.
        message: String,
        /// The back-off events were recorded.
        announced: bool,
    },
    /// A container instance exists (starting, running or exited).
    Running {
        /// Its runtime ID.
        id: String,
    },
    /// Its environment could not be made (`CreateContainerConfigError`); tried again at
    /// `retry_at`.
    ConfigError {
        /// Why.
        message: String,
        /// The next try.
        retry_at: Ts,
    },
    /// Exited; restarts at `restart_at`.
    CrashBackOff {
        /// When it restarts.
        restart_at: Ts,
        /// The back-off it waits.
        wait: chrono::Duration,
    },
}

/// One container of a pod, as the kubelet tracks it.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// An init container.
    pub init: bool,
    /// What the simulated process does.
    pub behaviour: Behaviour,
    /// Where it is.
    pub stage: Stage,
    /// Restarts so far.
    pub restarts: i32,
    /// The last exited instance.
    pub last: Option<ContainerInfo>,
    /// The previous instance's ID still kept in the runtime (for `logs --previous`).
    pub previous_id: Option<String>,
    /// The next crash back-off.
    pub backoff: Option<chrono::Duration>,
    /// The next pull back-off.
    pub pull_backoff: Option<chrono::Duration>,
    /// The ConfigMaps and Secrets its environment reads.
    pub refs: Vec<crate::refs::Ref>,
    /// The liveness failure was reported for this instance.
    pub warned: bool,
    /// The readiness failure was reported for this instance.
    pub warned_ready: bool,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
}

fn secs(s: Option<i32>, default: i32) -> chrono::Duration {
    chrono::Duration::seconds(s.unwrap_or(default).max(0) as i64)
}

impl Slot {
    /// A slot for container `c`.
    pub fn new(c: &Container, init: bool, behaviour: Behaviour) -> Slot {
        Slot {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
            behaviour,
            stage: Stage::Waiting,
            restarts: 0,
            last: None,
            previous_id: None,
            backoff: None,
            pull_backoff: None,
            refs: crate::refs::env_refs(c),
            warned: false,
            warned_ready: false,
            readiness: c.readiness_probe.clone(),
            liveness: c.liveness_probe.clone(),
        }
    }

    /// Runtime IDs this slot holds.
    pub fn ids(&self) -> Vec<&String> {
        let cur = match &self.stage {
            Stage::Running { id } => Some(id),
            _ => None,
        };
        cur.into_iter().chain(self.previous_id.as_ref()).collect()
    }

    /// The current instance's runtime ID.
    pub fn current_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Running { id } => Some(id),
            _ => None,
        }
    }

    /// The current instance.
    pub fn current(&self, rt: &dyn ContainerRuntime) -> Option<ContainerInfo> {
        match &self.stage {
            Stage::Running { id } => rt.inspect(id),
            _ => None,
        }
    }

    /// Exited with 0 and will not run again.
    pub fn succeeded(&self, rt: &dyn ContainerRuntime, now: Ts) -> bool {
        self.current(rt)
            .and_then(|c| c.exited(now))
            .is_some_and(|(_, code)| code == 0)
    }

    /// When the readiness probe first passes; `None`: never.
    pub fn ready_at(&self, info: &ContainerInfo) -> Option<Ts> {
        let Some(p) = &self.readiness else {
            return Some(info.started_at);
        };
        if self.behaviour.never_ready == Some(true) {
            return None;
        }
        let after = ms(self.behaviour.ready_after_ms.unwrap_or(0));
        Some(info.started_at + after.max(secs(p.initial_delay_seconds, 0)))
    }

    /// The readiness probe has run and failed.
    pub fn readiness_failing(&self, info: &ContainerInfo, now: Ts) -> bool {
        let Some(p) = &self.readiness else {
            return false;
        };
        let first_probe = info.started_at + secs(p.initial_delay_seconds, 0);
        info.running(now) && now >= first_probe && self.ready_at(info).is_none_or(|t| now < t)
    }

    /// When the liveness probe starts failing and when the container is killed for it.
    pub fn liveness_failure(&self, info: &ContainerInfo) -> Option<(Ts, Ts)> {
        let p = self.liveness.as_ref()?;
        let after = ms(self.behaviour.unhealthy_after_ms?);
        let fail_from = info.started_at + after.max(secs(p.initial_delay_seconds, 0));
        let failures = p.failure_threshold.unwrap_or(3).max(1) - 1;
        Some((fail_from, fail_from + secs(p.period_seconds, 10) * failures))
    }

    /// The next moment something happens to this container by itself.
    pub fn next_due(&self, rt: &dyn ContainerRuntime, now: Ts) -> Option<Ts> {
        let times: Vec<Ts> = match &self.stage {
            Stage::Waiting => vec![],
            Stage::Pulling { until, .. } => vec![*until],
            Stage::PullFailed {
                since,
                retry_at,
                announced,
                ..
            } => {
                if *announced {
                    vec![*retry_at]
                } else {
                    vec![err_shown_until(*since, *retry_at)]
                }
            }
            Stage::CrashBackOff { restart_at, .. } => vec![*restart_at],
            Stage::ConfigError { retry_at, .. } => vec![*retry_at],
            Stage::Running { id } => {
                let c = rt.inspect(id)?;
                let mut t = vec![c.started_at];
                t.extend(c.exit.map(|(e, _)| e));
                t.extend(self.ready_at(&c));
                if let Some(p) = &self.readiness {
                    t.push(c.started_at + secs(p.initial_delay_seconds, 0));
                }
                if let Some((a, b)) = self.liveness_failure(&c) {
                    t.extend([a, b]);
                }
                t
            }
        };
        times.into_iter().filter(|t| *t > now).min()
    }
}

/// How long a failed pull shows ErrImagePull before ImagePullBackOff.
pub fn err_shown_until(since: Ts, retry_at: Ts) -> Ts {
    since + ms(1000).min((retry_at - since) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    /// A runtime for tests: containers are records whose times follow their behaviour, with
    /// no clock of its own, no processes and no simulation beyond that.
    #[derive(Default)]
    struct TestRuntime {
        images: Mutex<HashSet<String>>,
        containers: Mutex<HashMap<String, ContainerInfo>>,
        runs: Mutex<u32>,
    }

    impl ContainerRuntime for TestRuntime {
        fn has_image(&self, image: &str) -> bool {
            self.images.lock().unwrap().contains(image)
        }
        fn add_image(&self, image: &str) {
            self.images.lock().unwrap().insert(image.into());
        }
        fn run(
            &self,
            pod: &str,
            name: &str,
            _image: &str,
            b: &Behaviour,
            now: Ts,
        ) -> ContainerInfo {
            let mut n = self.runs.lock().unwrap();
            *n += 1;
            let started_at = now + ms(b.start_ms.unwrap_or(0));
            let info = ContainerInfo {
                id: format!("test://{pod}/{name}/{n}"),
                image_id: "test".into(),
                started_at,
                exit: b
                    .exit_after_ms
                    .map(|e| (started_at + ms(e), b.exit_code.unwrap_or(0))),
                killed: false,
                logs: Vec::new(),
                heartbeat: false,
                stop_ms: b.stop_ms.unwrap_or(0),
            };
            self.containers
                .lock()
                .unwrap()
                .insert(info.id.clone(), info.clone());
            info
        }
        fn kill(&self, id: &str, grace: Duration, now: Ts) -> Option<Ts> {
            let mut g = self.containers.lock().unwrap();
            let c = g.get_mut(id)?;
            let stop = ms(c.stop_ms.min(grace.as_millis() as u64));
            let at = now + stop;
            if c.exit.is_none_or(|(t, _)| t > at) {
                c.exit = Some((
                    at,
                    if c.stop_ms as u128 > grace.as_millis() {
                        137
                    } else {
                        0
                    },
                ));
                c.killed = true;
            }
            c.exit.map(|(t, _)| t)
        }
        fn remove(&self, id: &str) {
            self.containers.lock().unwrap().remove(id);
        }
        fn inspect(&self, id: &str) -> Option<ContainerInfo> {
            self.containers.lock().unwrap().get(id).cloned()
        }
        fn log_lines(&self, _id: &str, _now: Ts) -> Vec<(Ts, String)> {
            Vec::new()
        }
    }

    const TIMING: Timing = Timing {
        pull_ms: 400,
        start_ms: 100,
        backoff_initial_ms: 10_000,
        backoff_max_ms: 300_000,
    };

    fn t0() -> Ts {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn at(msecs: i64) -> Ts {
        t0() + chrono::Duration::milliseconds(msecs)
    }

    fn driver<'a>(rt: &'a TestRuntime, policy: &'a str) -> Driver<'a> {
        Driver {
            runtime: rt,
            timing: TIMING,
            key: "default/p",
            pod_ref: "p_default(uid)",
            policy,
            grace: Duration::from_secs(30),
            notes: Vec::new(),
            config_error: &|_| None,
        }
    }

    fn slot(name: &str, init: bool, b: Behaviour) -> Slot {
        let c: Container =
            serde_json::from_value(serde_json::json!({"name": name, "image": "nginx"})).unwrap();
        let defaults = Behaviour {
            pull_ms: Some(400),
            start_ms: Some(100),
            ..Default::default()
        };
        Slot::new(&c, init, defaults.overlay(&b))
    }

    fn reasons(d: &mut Driver) -> Vec<&'static str> {
        d.notes.drain(..).map(|n| n.reason).collect()
    }

    #[test]
    fn pulls_then_creates_and_starts() {
        let rt = TestRuntime::default();
        let mut s = slot("c", false, Behaviour::default());
        let mut d = driver(&rt, "Always");
        d.drive(&mut s, at(0));
        assert_eq!(reasons(&mut d), ["Pulling"]);
        assert!(matches!(s.stage, Stage::Pulling { .. }));
        assert_eq!(s.next_due(&rt, at(0)), Some(at(400)));
        d.drive(&mut s, at(399));
        assert!(d.notes.is_empty(), "nothing before the pull ends");
        d.drive(&mut s, at(400));
        assert_eq!(reasons(&mut d), ["Pulled", "Created", "Started"]);
        let info = s.current(&rt).expect("a container");
        assert_eq!(info.started_at, at(500));
        assert!(info.running(at(500)));
        // The next pod on the node finds the image present.
        let mut s2 = slot("c", false, Behaviour::default());
        d.drive(&mut s2, at(1000));
        assert_eq!(reasons(&mut d), ["Pulled", "Created", "Started"]);
        assert!(d.notes.is_empty());
    }

    #[test]
    fn a_crashing_container_restarts_with_back_off() {
        let rt = TestRuntime::default();
        rt.add_image("nginx");
        let crash = Behaviour {
            exit_after_ms: Some(1000),
            exit_code: Some(1),
            ..Default::default()
        };
        let mut s = slot("c", false, crash);
        let mut d = driver(&rt, "Always");
        d.drive(&mut s, at(0));
        assert_eq!(reasons(&mut d), ["Pulled", "Created", "Started"]);
        // Exits at 1.1 s: the first restart is at once.
        d.drive(&mut s, at(1100));
        assert_eq!(reasons(&mut d), ["Pulled", "Created", "Started"]);
        assert_eq!(s.restarts, 1);
        // Exits again at 2.2 s: now it waits the initial back-off (10 s).
        d.drive(&mut s, at(2200));
        assert_eq!(reasons(&mut d), ["BackOff"]);
        let Stage::CrashBackOff { restart_at, .. } = s.stage else {
            panic!("{:?}", s.stage)
        };
        assert_eq!(restart_at, at(12_200));
        d.drive(&mut s, at(12_199));
        assert!(d.notes.is_empty());
        d.drive(&mut s, at(12_200));
        assert_eq!(reasons(&mut d), ["Pulled", "Created", "Started"]);
        assert_eq!(s.restarts, 2);
    }

    #[test]
    fn restart_policy_never_and_on_failure() {
        let rt = TestRuntime::default();
        rt.add_image("nginx");
        for (policy, code, restarts) in [("Never", 1, 0), ("OnFailure", 0, 0), ("OnFailure", 1, 1)]
        {
            let b = Behaviour {
                exit_after_ms: Some(100),
                exit_code: Some(code),
                ..Default::default()
            };
            let mut s = slot("c", false, b);
            let mut d = driver(&rt, policy);
            d.drive(&mut s, at(0));
            d.drive(&mut s, at(200));
            assert_eq!(s.restarts, restarts, "{policy} exit {code}");
            assert_eq!(s.succeeded(&rt, at(200)), code == 0 && restarts == 0);
        }
    }

    #[test]
    fn init_containers_run_first_one_by_one() {
        let rt = TestRuntime::default();
        rt.add_image("nginx");
        let done = Behaviour {
            exit_after_ms: Some(500),
            ..Default::default()
        };
        let mut init = vec![slot("i1", true, done.clone()), slot("i2", true, done)];
        let mut main = vec![slot("app", false, Behaviour::default())];
        let mut d = driver(&rt, "Always");
        d.run_pod(&mut init, &mut main, at(0));
        let started: Vec<String> = d
            .notes
            .drain(..)
            .filter(|n| n.reason == "Started")
            .map(|n| n.container)
            .collect();
        assert_eq!(started, ["i1"]);
        d.run_pod(&mut init, &mut main, at(600));
        let started: Vec<String> = d
            .notes
            .drain(..)
            .filter(|n| n.reason == "Started")
            .map(|n| n.container)
            .collect();
        assert_eq!(started, ["i2"]);
        assert!(matches!(main[0].stage, Stage::Waiting));
        d.run_pod(&mut init, &mut main, at(1200));
        let started: Vec<(String, bool)> = d
            .notes
            .drain(..)
            .filter(|n| n.reason == "Started")
            .map(|n| (n.container, n.init))
            .collect();
        assert_eq!(started, [("app".to_string(), false)]);
    }

    #[test]
    fn failed_pulls_back_off() {
        let rt = TestRuntime::default();
        let b = Behaviour {
            pull_error: Some("not found".into()),
            ..Default::default()
        };
        let mut s = slot("c", false, b);
        let mut d = driver(&rt, "Always");
        d.drive(&mut s, at(0));
        d.drive(&mut s, at(400));
        assert_eq!(reasons(&mut d), ["Pulling", "Failed", "Failed"]);
        let Stage::PullFailed { retry_at, .. } = s.stage.clone() else {
            panic!("{:?}", s.stage)
        };
        assert_eq!(retry_at, at(10_400));
        // ErrImagePull shows for a second, then ImagePullBackOff.
        d.drive(&mut s, at(1400));
        assert_eq!(reasons(&mut d), ["BackOff", "Failed"]);
        d.drive(&mut s, at(10_400));
        assert_eq!(reasons(&mut d), ["Pulling"]);
    }

    #[test]
    fn a_failed_liveness_probe_kills_and_deletion_stops() {
        let rt = TestRuntime::default();
        rt.add_image("nginx");
        let c: Container =
            serde_json::from_value(serde_json::json!({"name": "c", "image": "nginx",
            "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 1, "failureThreshold": 2}}))
            .unwrap();
        let b = Behaviour {
            start_ms: Some(0),
            unhealthy_after_ms: Some(5000),
            stop_ms: Some(200),
            ..Default::default()
        };
        let mut s = Slot::new(&c, false, b);
        let mut d = driver(&rt, "Always");
        d.drive(&mut s, at(0));
        reasons(&mut d);
        d.drive(&mut s, at(5000));
        assert_eq!(reasons(&mut d), ["Unhealthy"]);
        d.drive(&mut s, at(6000));
        assert_eq!(reasons(&mut d), ["Killing"]);
        let info = s.current(&rt).unwrap();
        assert_eq!(info.exit, Some((at(6200), 0)));
        // A second instance, stopped by deletion within its grace period.
        let mut s2 = slot(
            "d",
            false,
            Behaviour {
                stop_ms: Some(3000),
                ..Default::default()
            },
        );
        d.drive(&mut s2, at(0));
        reasons(&mut d);
        let done = d.stop([&s2].into_iter(), Duration::from_secs(1), at(1000));
        assert_eq!(reasons(&mut d), ["Killing"]);
        assert_eq!(done, at(2000), "SIGKILL after the 1 s grace period");
        assert_eq!(s2.current(&rt).unwrap().exit, Some((at(2000), 137)));
    }
}
