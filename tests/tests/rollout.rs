//! Rollouts with the real binaries: RollingUpdate bounds sampled during a rollout, Recreate
//! never running old and new pods together, undo reusing the old ReplicaSet, history pruning.

use coxswain_testkit::{eventually, stays, stderr, stdout, TestCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str, replicas: i64, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "strategy": strategy, "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
}

fn ready(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_none()
        && p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn available(c: &TestCluster, name: &str, replicas: i64) -> bool {
    let (_, d) = c.get(&format!("{DEPLOYS}/{name}"));
    d.pointer("/status/updatedReplicas") == Some(&json!(replicas))
        && d.pointer("/status/availableReplicas") == Some(&json!(replicas))
        && d.pointer("/status/replicas") == Some(&json!(replicas))
        && d.pointer("/status/observedGeneration") == d.pointer("/metadata/generation")
}

#[test]
fn rolling_update_stays_within_surge_and_unavailability_at_every_sample() {
    let c = TestCluster::start(3);
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    assert_eq!(c.post(DEPLOYS, &deployment("roll", 4, strategy)).0, 201);
    eventually(T, "4 available", || available(&c, "roll", 4).then_some(()));
    c.patch(&format!("{DEPLOYS}/roll"), &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}}));
    let start = Instant::now();
    let mut samples = 0;
    let mut max_total = 0;
    let mut min_ready = i64::MAX;
    loop {
        let rss = c.items("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Droll");
        let total: i64 = rss
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
            .sum();
        let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Droll");
        let ready_now = pods.iter().filter(|p| ready(p)).count() as i64;
        max_total = max_total.max(total);
        min_ready = min_ready.min(ready_now);
        samples += 1;
        assert!(
            total <= 5,
            "more than replicas + maxSurge scheduled: {total}"
        );
        assert!(
            ready_now >= 4,
            "fewer than replicas - maxUnavailable ready: {ready_now}"
        );
        if available(&c, "roll", 4) && rss.len() == 2 && pods.len() == 4 {
            break;
        }
        assert!(start.elapsed() < T, "rollout did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(samples > 5, "the rollout was sampled ({samples} samples)");
    assert_eq!(max_total, 5, "the rollout used its surge");
    assert!(min_ready >= 4);
    let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Droll");
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.28"));
}

#[test]
fn recreate_never_runs_old_and_new_together() {
    let c = TestCluster::start(2);
    assert_eq!(
        c.post(DEPLOYS, &deployment("re", 3, json!({"type": "Recreate"})))
            .0,
        201
    );
    eventually(T, "3 available", || available(&c, "re", 3).then_some(()));
    c.patch(&format!("{DEPLOYS}/re"), &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}}));
    let start = Instant::now();
    loop {
        let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dre");
        let live = |img: &str| {
            pods.iter()
                .filter(|p| {
                    p.pointer("/metadata/deletionTimestamp").is_none()
                        && p["spec"]["containers"][0]["image"] == img
                })
                .count()
        };
        assert!(
            live("nginx:1.27") == 0 || live("nginx:1.28") == 0,
            "old and new pods at once"
        );
        if available(&c, "re", 3) && live("nginx:1.28") == 3 {
            break;
        }
        assert!(start.elapsed() < T, "recreate did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn undo_reuses_the_old_replicaset_and_history_is_pruned() {
    let c = TestCluster::start(2);
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    assert_eq!(c.post(DEPLOYS, &deployment("undo", 2, strategy)).0, 201);
    eventually(T, "available", || available(&c, "undo", 2).then_some(()));
    let first = c.items("/apis/apps/v1/namespaces/default/replicasets")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c.kubectl(&["set", "image", "deployment/undo", "c=nginx:1.28"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "rolled to 1.28", || {
        available(&c, "undo", 2).then_some(())
    });
    let out = c.kubectl(&["rollout", "undo", "deployment/undo"]);
    assert_eq!(
        stdout(&out).trim(),
        "deployment.apps/undo rolled back",
        "{}",
        stderr(&out)
    );
    eventually(T, "rolled back", || {
        let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dundo");
        (available(&c, "undo", 2)
            && pods.len() == 2
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27"))
        .then_some(())
    });
    let (_, rs) = c.get(&format!(
        "/apis/apps/v1/namespaces/default/replicasets/{first}"
    ));
    assert_eq!(rs["spec"]["replicas"], 2, "the first ReplicaSet was reused");
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        c.items("/apis/apps/v1/namespaces/default/replicasets")
            .len(),
        2
    );
    let (_, d) = c.get(&format!("{DEPLOYS}/undo"));
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let out = c.kubectl(&["rollout", "history", "deployment/undo"]);
    let text = stdout(&out);
    assert!(
        text.contains("REVISION")
            && text.lines().any(|l| l.starts_with('2'))
            && text.lines().any(|l| l.starts_with('3')),
        "{text}"
    );
    // Two more templates: with revisionHistoryLimit 2 only two old ReplicaSets are kept.
    for img in ["nginx:1.29", "nginx:1.30"] {
        c.kubectl(&["set", "image", "deployment/undo", &format!("c={img}")]);
        eventually(T, "rolled", || {
            let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dundo");
            (available(&c, "undo", 2)
                && pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p["spec"]["containers"][0]["image"] == img))
            .then_some(())
        });
    }
    eventually(T, "history pruned to 2 old + 1 current", || {
        (c.items("/apis/apps/v1/namespaces/default/replicasets")
            .len()
            == 3)
            .then_some(())
    });
    let detail = stdout(&c.kubectl(&["rollout", "history", "deployment/undo", "--revision=4"]));
    assert!(
        detail.contains("deployment.apps/undo with revision #4") && detail.contains("nginx:1.29"),
        "{detail}"
    );
    let out = c.kubectl(&["rollout", "undo", "deployment/undo", "--to-revision=3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let images = |c: &TestCluster| -> Vec<String> {
        c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dundo")
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    eventually(T, "back at revision 3's template", || {
        (available(&c, "undo", 2) && images(&c) == vec!["nginx:1.27"; 2]).then_some(())
    });

    // `rollout restart` replaces every pod through a new ReplicaSet with the same image.
    let before: Vec<String> = c
        .items("/api/v1/namespaces/default/pods?labelSelector=app%3Dundo")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let out = c.kubectl(&["rollout", "restart", "deployment/undo"]);
    assert_eq!(
        stdout(&out).trim(),
        "deployment.apps/undo restarted",
        "{}",
        stderr(&out)
    );
    eventually(T, "every pod replaced", || {
        let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dundo");
        (available(&c, "undo", 2)
            && pods.len() == 2
            && pods.iter().all(|p| {
                !before.contains(&p["metadata"]["name"].as_str().unwrap().to_string())
                    && p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
            }))
        .then_some(())
    });
    assert_eq!(images(&c), vec!["nginx:1.27"; 2]);
}

#[test]
fn pause_holds_the_rollout_and_a_stuck_rollout_exceeds_its_deadline() {
    let c = TestCluster::start(1);
    let mut d = deployment("stuck", 1, json!({"type": "RollingUpdate"}));
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    assert_eq!(c.post(DEPLOYS, &d).0, 201);
    eventually(T, "available", || available(&c, "stuck", 1).then_some(()));
    let out = c.kubectl(&["rollout", "pause", "deployment/stuck"]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.kubectl(&["set", "image", "deployment/stuck", "c=nginx:1.28"]);
    stays(Duration::from_secs(1), "no rollout while paused", || {
        c.items("/apis/apps/v1/namespaces/default/replicasets")
            .len()
            == 1
    });
    let out = c.kubectl(&["rollout", "resume", "deployment/stuck"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "resumed rollout done", || {
        available(&c, "stuck", 1).then_some(())
    });
    // A pod that cannot be scheduled never becomes available: the deadline passes.
    c.patch(
        &format!("{DEPLOYS}/stuck"),
        &json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "none"}}}}}),
    );
    let t_stuck = Instant::now();
    let cond = eventually(T, "Progressing=False", || {
        let (_, d) = c.get(&format!("{DEPLOYS}/stuck"));
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Progressing" && c["status"] == "False")
            .cloned()
    });
    assert!(
        t_stuck.elapsed() < Duration::from_secs(15),
        "deadline noticed late: {:?}",
        t_stuck.elapsed()
    );
    assert_eq!(cond["reason"], "ProgressDeadlineExceeded");
    // It stays exceeded while nothing moves.
    stays(
        Duration::from_secs(4),
        "Progressing stays ProgressDeadlineExceeded",
        || {
            let (_, d) = c.get(&format!("{DEPLOYS}/stuck"));
            d["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                })
            })
        },
    );
    let out = c.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=10s"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exceeded its progress deadline"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn min_ready_seconds_delays_availability() {
    let c = TestCluster::start(1);
    let mut d = deployment("slow", 2, json!({"type": "RollingUpdate"}));
    // 3 s: `lastTransitionTime` has whole seconds, so a pod that turned Ready late in a second
    // counts as ready up to 1 s earlier, and the ReplicaSet reports readiness after its
    // status batch; availability still comes well over 1 s after readiness is seen.
    d["spec"]["minReadySeconds"] = json!(3);
    assert_eq!(c.post(DEPLOYS, &d).0, 201);
    let became_ready = eventually(T, "2 ready pods", || {
        let (_, d) = c.get(&format!("{DEPLOYS}/slow"));
        (d.pointer("/status/readyReplicas") == Some(&json!(2))).then(Instant::now)
    });
    let (_, d) = c.get(&format!("{DEPLOYS}/slow"));
    assert_eq!(
        d.pointer("/status/availableReplicas"),
        Some(&json!(0)),
        "ready is not yet available"
    );
    eventually(T, "2 available", || available(&c, "slow", 2).then_some(()));
    assert!(
        became_ready.elapsed() >= Duration::from_millis(1000),
        "available only after minReadySeconds"
    );
}

/// Pods labelled `app=<app>` that are not being deleted: (name, controller UID).
fn live_pods(c: &TestCluster, app: &str) -> Vec<(String, Option<String>)> {
    c.items(&format!(
        "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
    ))
    .into_iter()
    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    .map(|p| {
        let owner = p["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["controller"] == true))
            .and_then(|r| r["uid"].as_str().map(String::from));
        (p["metadata"]["name"].as_str().unwrap().to_string(), owner)
    })
    .collect()
}

#[test]
fn replicasets_adopt_orphans_and_release_relabelled_pods() {
    let c = TestCluster::start(2);
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "adopt"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "adopt"}},
            "template": {"metadata": {"labels": {"app": "adopt"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    const RSS: &str = "/apis/apps/v1/namespaces/default/replicasets";
    assert_eq!(c.post(RSS, &rs).0, 201);
    let first = eventually(T, "2 pods", || {
        let p = live_pods(&c, "adopt");
        (p.len() == 2).then_some(p)
    });
    let out = c.kubectl(&["delete", "rs", "adopt", "--cascade=orphan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "orphaned pods", || {
        let p = live_pods(&c, "adopt");
        (p.len() == 2 && p.iter().all(|(_, o)| o.is_none())).then_some(())
    });

    // A new ReplicaSet with the same selector adopts them instead of creating pods.
    let (_, created) = c.post(RSS, &rs);
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    eventually(T, "both adopted", || {
        let p = live_pods(&c, "adopt");
        p.iter()
            .all(|(_, o)| o.as_deref() == Some(uid.as_str()))
            .then_some(())
    });
    stays(
        Duration::from_secs(1),
        "no new pods: the orphans were adopted",
        || {
            let mut names: Vec<String> = live_pods(&c, "adopt").into_iter().map(|p| p.0).collect();
            names.sort();
            let mut before: Vec<String> = first.iter().map(|p| p.0.clone()).collect();
            before.sort();
            names == before
        },
    );

    // Relabelled: released (no controller any more) and replaced.
    let victim = first[0].0.clone();
    let out = c.kubectl(&["label", "pod", &victim, "app=elsewhere", "--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "released and replaced", || {
        let released = live_pods(&c, "elsewhere");
        let owned = live_pods(&c, "adopt");
        (released == vec![(victim.clone(), None)]
            && owned.len() == 2
            && owned
                .iter()
                .all(|(n, o)| *n != victim && o.as_deref() == Some(uid.as_str())))
        .then_some(())
    });

    // A matching bare pod is adopted too, and the surplus is scaled away.
    let bare = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    assert_eq!(c.post("/api/v1/namespaces/default/pods", &bare).0, 201);
    eventually(T, "back to 2 owned pods", || {
        let owned = live_pods(&c, "adopt");
        (owned.len() == 2
            && owned
                .iter()
                .all(|(_, o)| o.as_deref() == Some(uid.as_str())))
        .then_some(())
    });
}

#[test]
fn scale_down_deletes_unscheduled_pods_first() {
    // One node with room for two pods of 400m cpu: a ReplicaSet of 4 has 2 Running and 2
    // Pending; scaling it to 2 removes the Pending ones and keeps the Running ones.
    let c = coxswain_testkit::TestCluster::with(coxswain_testkit::Options {
        nodes: 1,
        kubelet_args: vec!["--cpu".into(), "1".into()],
        ..Default::default()
    });
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "order"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "order"}},
            "template": {"metadata": {"labels": {"app": "order"}},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                    "resources": {"requests": {"cpu": "400m"}}}]}}}});
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/replicasets", &rs)
            .0,
        201
    );
    let (running, pending) = eventually(T, "2 Running and 2 unschedulable pods", || {
        let pods = live_pods_full(&c, "order");
        let running: Vec<String> = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let pending: Vec<String> = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"].is_null())
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        (running.len() == 2 && pending.len() == 2).then_some((running, pending))
    });
    let out = c.kubectl(&["scale", "rs", "order", "--replicas=2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "the unscheduled pods deleted, the running kept", || {
        let mut names: Vec<String> = live_pods_full(&c, "order")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        let mut want = running.clone();
        want.sort();
        (names == want).then_some(())
    });
    assert!(pending.iter().all(|p| !running.contains(p)));
}

fn live_pods_full(c: &TestCluster, app: &str) -> Vec<Value> {
    c.items(&format!(
        "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
    ))
    .into_iter()
    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    .collect()
}
