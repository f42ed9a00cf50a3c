//! The pod lifecycle on the kubelet's simulated runtime, as a user sees it through the API and
//! the real kubectl: restart policies and CrashLoopBackOff with restart counts, Jobs-style
//! completion, init containers, image pull failures (ErrImagePull -> ImagePullBackOff, from a
//! `--runtime-config` file), readiness and liveness probes, and graceful termination that
//! honours the grace period. Back-offs are shortened with `--backoff-initial-ms`.

use coxswain_testkit::{eventually, stays, stdout, Options, TestCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const PODS: &str = "/api/v1/namespaces/default/pods";

fn cluster(extra_kubelet: &[&str]) -> TestCluster {
    let mut kubelet_args: Vec<String> = ["--backoff-initial-ms", "400", "--backoff-max-ms", "1600"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    kubelet_args.extend(extra_kubelet.iter().map(|s| s.to_string()));
    TestCluster::with(Options {
        nodes: 1,
        kubelet_args,
        ..Default::default()
    })
}

fn pod(name: &str, policy: &str, containers: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 30, "containers": containers}})
}

fn create(c: &TestCluster, p: &Value) {
    let (code, body) = c.post(PODS, p);
    assert_eq!(code, 201, "{body}");
}

fn get(c: &TestCluster, name: &str) -> Value {
    c.get(&format!("{PODS}/{name}")).1
}

/// The pod's row in `kubectl get pods`: (READY, STATUS, RESTARTS).
fn row(c: &TestCluster, name: &str) -> Option<(String, String, String)> {
    let out = stdout(&c.kubectl(&["get", "pod", name, "--no-headers"]));
    let cols: Vec<&str> = out.split_whitespace().collect();
    if cols.len() < 5 {
        return None;
    }
    // RESTARTS may read `3 (2s ago)`.
    let restarts = cols[3..cols.len() - 1].join(" ");
    Some((cols[1].to_string(), cols[2].to_string(), restarts))
}

fn condition<'a>(p: &'a Value, t: &str) -> Option<&'a Value> {
    p.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

fn events(c: &TestCluster, name: &str) -> Vec<Value> {
    c.items(&format!(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{name}"
    ))
}

fn has_event(c: &TestCluster, name: &str, reason: &str, text: &str) -> bool {
    events(c, name)
        .iter()
        .any(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text)))
}

#[test]
fn crash_loops_back_off_and_count_restarts() {
    let c = cluster(&[]);
    let crash =
        json!({"runtime.coxswain.dev/app": "{exitAfterMs: 150, exitCode: 1, logs: [boom]}"});
    create(
        &c,
        &pod(
            "crash",
            "Always",
            json!([{"name": "app", "image": "busybox"}]),
            crash,
        ),
    );
    let seen = eventually(T, "CrashLoopBackOff in kubectl get pods", || {
        row(&c, "crash").filter(|(_, status, _)| status == "CrashLoopBackOff")
    });
    assert_eq!(seen.0, "0/1", "a crashing container is not ready");
    let p = eventually(T, "at least 3 restarts", || {
        let p = get(&c, "crash");
        (p.pointer("/status/containerStatuses/0/restartCount")?
            .as_i64()?
            >= 3)
            .then_some(p)
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    assert_eq!(
        p["status"]["phase"], "Running",
        "a restarting pod stays Running"
    );
    // The back-off doubles: 400ms, 800ms, then the 1.6s cap.
    let backoff = eventually(T, "a back-off message at the cap", || {
        let p = get(&c, "crash");
        let m = p
            .pointer("/status/containerStatuses/0/state/waiting/message")?
            .as_str()?
            .to_string();
        m.starts_with("back-off 1.6s restarting failed container=app pod=crash_default(")
            .then_some(m)
    });
    assert!(
        backoff.contains(p["metadata"]["uid"].as_str().unwrap()),
        "{backoff}"
    );
    assert!(has_event(
        &c,
        "crash",
        "BackOff",
        "Back-off restarting failed container app in pod crash_default("
    ));
    let restarted = events(&c, "crash")
        .into_iter()
        .find(|e| e["reason"] == "Started")
        .expect("a Started event");
    assert!(
        restarted["count"].as_i64().unwrap() >= 2,
        "repeats are aggregated: {restarted}"
    );
    assert_eq!(
        restarted["involvedObject"]["fieldPath"],
        "spec.containers{app}"
    );
    let (_, _, restarts) = row(&c, "crash").unwrap();
    assert!(
        restarts.contains("ago)"),
        "RESTARTS shows the last restart's age: {restarts}"
    );
    let logs = c.kubectl(&["logs", "crash", "--previous"]);
    assert_eq!(
        stdout(&logs),
        "boom\n",
        "logs --previous: the last crashed instance"
    );

    // OnFailure restarts failures only; a clean exit completes the pod.
    let fail_once = json!({"runtime.coxswain.dev/app": "{exitAfterMs: 100, exitCode: 2}"});
    create(
        &c,
        &pod(
            "onfailure",
            "OnFailure",
            json!([{"name": "app", "image": "busybox"}]),
            fail_once,
        ),
    );
    eventually(T, "OnFailure restarts a failing container", || {
        let p = get(&c, "onfailure");
        (p.pointer("/status/containerStatuses/0/restartCount")?
            .as_i64()?
            >= 1)
            .then_some(())
    });
    let ok =
        json!([{"name": "app", "image": "busybox", "command": ["sh", "-c", "echo done; exit 0"]}]);
    create(&c, &pod("onfailure-ok", "OnFailure", ok, json!({})));
    let p = eventually(T, "OnFailure pod exiting 0 Succeeded", || {
        let p = get(&c, "onfailure-ok");
        (p["status"]["phase"] == "Succeeded").then_some(p)
    });
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn never_pods_complete_like_jobs() {
    let c = cluster(&[]);
    let hello = json!([{"name": "say", "image": "busybox:1.36", "command": ["sh", "-c", "echo hello; sleep 0.2; echo bye"]}]);
    create(&c, &pod("hello", "Never", hello, json!({})));
    let p = eventually(T, "Succeeded", || {
        let p = get(&c, "hello");
        (p["status"]["phase"] == "Succeeded").then_some(p)
    });
    let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    let ready = condition(&p, "Ready").unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("PodCompleted"))
    );
    assert_eq!(row(&c, "hello").unwrap().1, "Completed");
    assert_eq!(stdout(&c.kubectl(&["logs", "hello"])), "hello\nbye\n");

    let fails = json!([{"name": "job", "image": "busybox", "args": ["sh", "-c", "exit 3"]}]);
    create(&c, &pod("fails", "Never", fails, json!({})));
    let p = eventually(T, "Failed", || {
        let p = get(&c, "fails");
        (p["status"]["phase"] == "Failed").then_some(p)
    });
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    assert_eq!(
        p["status"]["containerStatuses"][0]["restartCount"], 0,
        "Never never restarts"
    );
    assert_eq!(row(&c, "fails").unwrap().1, "Error");
}

#[test]
fn init_containers_run_first_in_order() {
    let c = cluster(&[]);
    let spec = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init"},
        "spec": {
            "initContainers": [
                {"name": "migrate", "image": "busybox", "command": ["sh", "-c", "echo migrating; sleep 1"]},
                {"name": "warm", "image": "busybox", "command": ["true"]}],
            "containers": [{"name": "web", "image": "nginx"}]}});
    create(&c, &spec);
    let status = eventually(T, "Init:0/2 while the first init container runs", || {
        row(&c, "init").map(|r| r.1).filter(|s| s == "Init:0/2")
    });
    assert_eq!(status, "Init:0/2");
    let p = get(&c, "init");
    let init = condition(&p, "Initialized").unwrap();
    assert_eq!(init["status"], "False");
    assert_eq!(
        init["message"],
        "containers with incomplete status: [migrate warm]"
    );
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    let p = eventually(T, "Running after both init containers", || {
        let p = get(&c, "init");
        (p["status"]["phase"] == "Running" && condition(&p, "Ready")?["status"] == "True")
            .then_some(p)
    });
    assert_eq!(condition(&p, "Initialized").unwrap()["status"], "True");
    for (i, name) in ["migrate", "warm"].iter().enumerate() {
        let s = &p["status"]["initContainerStatuses"][i];
        assert_eq!(s["name"], *name);
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    }
    let started = |n: &str| -> String {
        p["status"]["initContainerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .chain(p["status"]["containerStatuses"].as_array().unwrap())
            .find(|s| s["name"] == n)
            .and_then(|s| {
                s["state"].as_object()?.values().next()?["startedAt"]
                    .as_str()
                    .map(String::from)
            })
            .unwrap()
    };
    assert!(started("migrate") < started("warm") && started("warm") <= started("web"));

    // A failing init container fails a Never pod before its containers start.
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-init"},
        "spec": {"restartPolicy": "Never",
            "initContainers": [{"name": "check", "image": "busybox", "command": ["sh", "-c", "exit 1"]}],
            "containers": [{"name": "web", "image": "nginx"}]}});
    create(&c, &bad);
    let p = eventually(T, "Failed", || {
        let p = get(&c, "bad-init");
        (p["status"]["phase"] == "Failed").then_some(p)
    });
    assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_null());
    assert_eq!(row(&c, "bad-init").unwrap().1, "Init:Error");
}

#[test]
fn failed_pulls_back_off_and_probes_gate_readiness() {
    let dir = tempfile_dir();
    let cfg = dir.join("runtime.yaml");
    std::fs::write(
        &cfg,
        "images:\n- image: 'registry.example/private/*'\n  pullError: 'pull access denied, repository does not exist or may require authorization'\n- image: 'slow/*'\n  pullMs: 1500\n",
    )
    .unwrap();
    let c = cluster(&["--runtime-config", cfg.to_str().unwrap()]);
    create(
        &c,
        &pod(
            "private",
            "Always",
            json!([{"name": "app", "image": "registry.example/private/app:1"}]),
            json!({}),
        ),
    );
    eventually(T, "ImagePullBackOff in kubectl get pods", || {
        row(&c, "private").filter(|r| r.1 == "ImagePullBackOff")
    });
    let p = get(&c, "private");
    assert_eq!(p["status"]["phase"], "Pending");
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap();
    assert!(
        msg.starts_with("Back-off pulling image \"registry.example/private/app:1\""),
        "{msg}"
    );
    assert!(has_event(
        &c,
        "private",
        "Failed",
        "Failed to pull image \"registry.example/private/app:1\""
    ));
    assert!(has_event(&c, "private", "Failed", "Error: ErrImagePull"));
    assert!(has_event(
        &c,
        "private",
        "BackOff",
        "Back-off pulling image"
    ));

    // A slow pull shows ContainerCreating until it is done.
    let t0 = Instant::now();
    create(
        &c,
        &pod(
            "slow",
            "Always",
            json!([{"name": "app", "image": "slow/app"}]),
            json!({}),
        ),
    );
    assert_eq!(
        eventually(T, "ContainerCreating", || row(&c, "slow")
            .filter(|r| r.1 == "ContainerCreating"))
        .1,
        "ContainerCreating"
    );
    eventually(T, "Running after the pull", || {
        row(&c, "slow").filter(|r| r.1 == "Running")
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "the pull took its time"
    );
    assert!(has_event(
        &c,
        "slow",
        "Pulled",
        "Successfully pulled image \"slow/app\" in 1500ms"
    ));

    // Readiness: running but not ready until the probe passes; never-ready stays unready.
    let probe = json!({"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1});
    let late = json!([{"name": "app", "image": "nginx", "readinessProbe": probe}]);
    create(
        &c,
        &pod(
            "late",
            "Always",
            late,
            json!({"runtime.coxswain.dev/app": "{readyAfterMs: 2000}"}),
        ),
    );
    let (ready, status, _) = eventually(T, "Running", || {
        row(&c, "late").filter(|r| r.1 == "Running")
    });
    assert_eq!((ready.as_str(), status.as_str()), ("0/1", "Running"));
    eventually(T, "ready after 2 s", || {
        row(&c, "late").filter(|r| r.0 == "1/1")
    });
    let never = json!([{"name": "app", "image": "nginx", "readinessProbe": probe}]);
    create(
        &c,
        &pod(
            "never",
            "Always",
            never,
            json!({"runtime.coxswain.dev/app": "{neverReady: true}"}),
        ),
    );
    eventually(T, "Unhealthy event", || {
        has_event(&c, "never", "Unhealthy", "Readiness probe failed").then_some(())
    });
    stays(Duration::from_secs(1), "never-ready stays 0/1", || {
        row(&c, "never").is_some_and(|r| r.0 == "0/1" && r.1 == "Running")
    });
    let p = get(&c, "never");
    assert_eq!(
        condition(&p, "Ready").unwrap()["message"],
        "containers with unready status: [app]"
    );

    // Liveness: failing probes kill and restart the container.
    let live = json!([{"name": "app", "image": "nginx",
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1, "failureThreshold": 2}}]);
    create(
        &c,
        &pod(
            "sick",
            "Always",
            live,
            json!({"runtime.coxswain.dev/app": "{unhealthyAfterMs: 300}"}),
        ),
    );
    eventually(T, "restarted by its liveness probe", || {
        let p = get(&c, "sick");
        (p.pointer("/status/containerStatuses/0/restartCount")?
            .as_i64()?
            >= 1)
            .then_some(())
    });
    assert!(has_event(
        &c,
        "sick",
        "Killing",
        "Container app failed liveness probe, will be restarted"
    ));
    assert!(has_event(&c, "sick", "Unhealthy", "Liveness probe failed"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn deletion_honours_the_grace_period() {
    let c = cluster(&[]);
    // The process ignores SIGTERM for 60 s: the kubelet kills it when the 2 s grace ends.
    let stubborn = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn",
            "annotations": {"runtime.coxswain.dev/app": "{stopMs: 60000}"}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "app", "image": "nginx"}]}});
    create(&c, &stubborn);
    eventually(T, "Running", || {
        row(&c, "stubborn").filter(|r| r.1 == "Running")
    });
    let t0 = Instant::now();
    assert_eq!(c.delete(&format!("{PODS}/stubborn")).0, 200);
    assert_eq!(row(&c, "stubborn").unwrap().1, "Terminating");
    stays(
        Duration::from_millis(1500),
        "Terminating within the grace period",
        || row(&c, "stubborn").is_some_and(|r| r.1 == "Terminating"),
    );
    eventually(T, "gone after the grace period", || {
        (c.get(&format!("{PODS}/stubborn")).0 == 404).then_some(())
    });
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(has_event(
        &c,
        "stubborn",
        "Killing",
        "Stopping container app"
    ));

    // A process that exits on SIGTERM goes at once, whatever the grace period.
    let polite = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "polite"},
        "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": "nginx"}]}});
    create(&c, &polite);
    eventually(T, "Running", || {
        row(&c, "polite").filter(|r| r.1 == "Running")
    });
    let t0 = Instant::now();
    c.delete(&format!("{PODS}/polite"));
    eventually(T, "gone", || {
        (c.get(&format!("{PODS}/polite")).0 == 404).then_some(())
    });
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cox-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
