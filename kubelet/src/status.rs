//! What the kubelet reports (read-only over the lifecycle's slots, `crate::lifecycle`): each
//! container's state ([`Slot`] -> ContainerStatus: waiting
//! with ContainerCreating/PodInitializing/ErrImagePull/ImagePullBackOff/CrashLoopBackOff,
//! running, terminated; lastState; restartCount; ready from the simulated readiness probe)
//! and the pod's phase and conditions by Kubernetes' rules (`getPhase` in the kubelet).

use crate::lifecycle::{err_shown_until, Slot, Stage};
use crate::runtime::{ContainerInfo, ContainerRuntime, Ts};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A duration the way Go prints it (`500ms`, `10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: chrono::Duration) -> String {
    let total_ms = d.num_milliseconds().max(0);
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let (m, rem) = (total_ms / 60_000, total_ms % 60_000);
    let s = if rem % 1000 == 0 {
        format!("{}s", rem / 1000)
    } else {
        format!("{}s", rem as f64 / 1000.0)
    };
    if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

/// Everything the status of one pod is computed from.
pub struct PodView<'a> {
    /// Init containers.
    pub init: &'a [Slot],
    /// Containers.
    pub main: &'a [Slot],
    /// restartPolicy.
    pub policy: &'a str,
    /// `name_ns(uid)`.
    pub pod_ref: String,
    /// Node IP.
    pub host_ip: &'a str,
    /// Pod IP.
    pub pod_ip: &'a str,
    /// When the kubelet took the pod on.
    pub started: Ts,
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

fn terminated(c: &ContainerInfo, now: Ts) -> Option<ContainerState> {
    let (t, code) = c.exited(now)?;
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            started_at: Some(Time(c.started_at)),
            finished_at: Some(Time(t)),
            container_id: Some(c.id.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn container_status(
    s: &Slot,
    rt: &dyn ContainerRuntime,
    view: &PodView,
    initializing: bool,
    now: Ts,
) -> ContainerStatus {
    let cur = s.current(rt);
    let shown = cur.as_ref().or(s.last.as_ref());
    let not_started = if initializing || s.init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let state = match (&s.stage, &cur) {
        (
            Stage::PullFailed {
                since,
                retry_at,
                message,
                ..
            },
            _,
        ) => {
            if now < err_shown_until(*since, *retry_at) {
                waiting("ErrImagePull", Some(message.clone()))
            } else {
                let m = format!(
                    "Back-off pulling image \"{}\": ErrImagePull: {message}",
                    s.image
                );
                waiting("ImagePullBackOff", Some(m))
            }
        }
        (Stage::ConfigError { message, .. }, _) => {
            waiting("CreateContainerConfigError", Some(message.clone()))
        }
        (Stage::CrashBackOff { wait, .. }, _) => {
            let m = format!(
                "back-off {} restarting failed container={} pod={}",
                go_duration(*wait),
                s.name,
                view.pod_ref
            );
            waiting("CrashLoopBackOff", Some(m))
        }
        (Stage::Running { .. }, Some(c)) if now >= c.started_at => terminated(c, now)
            .unwrap_or_else(|| ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(c.started_at)),
                }),
                ..Default::default()
            }),
        _ => waiting(not_started, None),
    };
    let running = state.running.is_some();
    let ready = running
        && !s.init
        && cur
            .as_ref()
            .and_then(|c| s.ready_at(c))
            .is_some_and(|t| now >= t);
    ContainerStatus {
        name: s.name.clone(),
        image: s.image.clone(),
        image_id: shown.map(|c| c.image_id.clone()).unwrap_or_default(),
        container_id: shown.map(|c| c.id.clone()),
        ready,
        started: Some(running),
        restart_count: s.restarts,
        state: Some(state),
        last_state: Some(
            s.last
                .as_ref()
                .and_then(|l| terminated(l, now))
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

/// The pod phase from its container statuses (Kubernetes' `getPhase`).
fn phase(
    policy: &str,
    init_pending: bool,
    init_failed: bool,
    main: &[ContainerStatus],
) -> &'static str {
    if init_pending {
        return if init_failed && policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for cs in main {
        let st = cs.state.clone().unwrap_or_default();
        let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref());
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = st.terminated.as_ref().or(last) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        },
        _ => "Pending",
    }
}

/// The status of a pod at `now`; `prev` keeps condition transition times.
pub fn pod_status(
    view: &PodView,
    rt: &dyn ContainerRuntime,
    prev: Option<&PodStatus>,
    now: Ts,
) -> PodStatus {
    let incomplete: Vec<&str> = view
        .init
        .iter()
        .filter(|s| !s.succeeded(rt, now))
        .map(|s| s.name.as_str())
        .collect();
    let init_failed = view.init.iter().any(|s| {
        s.current(rt)
            .and_then(|c| c.exited(now))
            .is_some_and(|(_, code)| code != 0)
    });
    let initializing = !incomplete.is_empty();
    let init_statuses: Vec<ContainerStatus> = view
        .init
        .iter()
        .map(|s| container_status(s, rt, view, false, now))
        .collect();
    let statuses: Vec<ContainerStatus> = view
        .main
        .iter()
        .map(|s| container_status(s, rt, view, initializing, now))
        .collect();
    let phase = phase(view.policy, initializing, init_failed, &statuses);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let cond = |t: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let before = prev
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t));
        PodCondition {
            type_: t.to_string(),
            status: status.to_string(),
            reason: if ok { None } else { reason.map(str::to_string) },
            message: if ok { None } else { message },
            last_probe_time: None,
            last_transition_time: match before {
                Some(b) if b.status == status => b.last_transition_time.clone(),
                _ => Some(Time(now)),
            },
        }
    };
    let (ready_reason, ready_msg) = if terminal {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let ready = unready.is_empty() && !terminal;
    let conditions = vec![
        cond("PodReadyToStartContainers", true, None, None),
        cond(
            "Initialized",
            !initializing,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        ),
        cond("Ready", ready, Some(ready_reason), ready_msg.clone()),
        cond("ContainersReady", ready, Some(ready_reason), ready_msg),
        cond("PodScheduled", true, None, None),
    ];
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        host_ip: Some(view.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.to_string(),
        }]),
        pod_ip: Some(view.pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: view.pod_ip.to_string(),
        }]),
        start_time: prev
            .and_then(|p| p.start_time.clone())
            .or(Some(Time(view.started))),
        qos_class: prev.and_then(|p| p.qos_class.clone()),
        ..Default::default()
    }
}

/// Equal statuses, whatever the order of conditions.
pub fn same(old: &PodStatus, new: &PodStatus) -> bool {
    fn by_type(s: &PodStatus) -> Vec<&PodCondition> {
        let mut c: Vec<&PodCondition> = s.conditions.iter().flatten().collect();
        c.sort_by(|x, y| x.type_.cmp(&y.type_));
        c
    }
    let rest = |s: &PodStatus| PodStatus {
        conditions: None,
        ..s.clone()
    };
    old.conditions.is_some() == new.conditions.is_some()
        && by_type(old) == by_type(new)
        && rest(old) == rest(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(state: ContainerState, last: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            state: Some(state),
            last_state: Some(ContainerState {
                terminated: last.map(|code| ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn term(code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let creating = waiting("ContainerCreating", None);
        assert_eq!(
            phase(
                "Always",
                false,
                false,
                &[cs(run(), None), cs(creating, None)]
            ),
            "Pending"
        );
        assert_eq!(phase("Always", false, false, &[cs(run(), None)]), "Running");
        let crash = waiting("CrashLoopBackOff", None);
        assert_eq!(
            phase("Always", false, false, &[cs(crash.clone(), Some(1))]),
            "Running"
        );
        assert_eq!(
            phase("OnFailure", false, false, &[cs(crash, Some(1))]),
            "Running"
        );
        assert_eq!(
            phase("Never", false, false, &[cs(term(0), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase("OnFailure", false, false, &[cs(term(0), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase(
                "Never",
                false,
                false,
                &[cs(term(0), None), cs(term(2), None)]
            ),
            "Failed"
        );
        assert_eq!(phase("Never", true, true, &[]), "Failed");
        assert_eq!(phase("Always", true, true, &[]), "Pending");
    }

    #[test]
    fn same_ignores_condition_order_only() {
        let cond = |t: &str, st: &str| PodCondition {
            type_: t.into(),
            status: st.into(),
            ..Default::default()
        };
        let a = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("Ready", "True"), cond("Initialized", "True")]),
            ..Default::default()
        };
        let mut b = a.clone();
        b.conditions = Some(vec![cond("Initialized", "True"), cond("Ready", "True")]);
        assert!(same(&a, &b));
        b.conditions = Some(vec![cond("Initialized", "True"), cond("Ready", "False")]);
        assert!(!same(&a, &b));
        let mut c = a.clone();
        c.phase = Some("Succeeded".into());
        assert!(!same(&a, &c));
        c = a.clone();
        c.conditions = None;
        assert!(!same(&a, &c));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(chrono::Duration::milliseconds(500)), "500ms");
        assert_eq!(go_duration(chrono::Duration::seconds(10)), "10s");
        assert_eq!(go_duration(chrono::Duration::seconds(80)), "1m20s");
        assert_eq!(go_duration(chrono::Duration::seconds(300)), "5m0s");
    }
}
