//! A highly available control plane on a real etcd: two API servers, two controller managers
//! and two schedulers with `--leader-elect`. Exactly one of each acts (no duplicate
//! ReplicaSets or pods, every pod bound once); killing a leader hands its Lease to the other
//! within the lease duration and the cluster keeps converging.

use coxswain_testkit::{eventually, Etcd, Options, TestCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

fn holder(c: &TestCluster, lease: &str) -> Option<String> {
    let (code, l) = c.get(&format!("{LEASES}/{lease}"));
    (code == 200).then_some(())?;
    l["spec"]["holderIdentity"].as_str().map(str::to_string)
}

fn pods(c: &TestCluster) -> Vec<Value> {
    c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dha")
}

fn converged(c: &TestCluster, n: usize) -> bool {
    let p = pods(c);
    p.len() == n
        && p.iter()
            .all(|p| p["status"]["phase"] == "Running" && p["spec"]["nodeName"].is_string())
        && c.items("/apis/apps/v1/namespaces/default/replicasets")
            .len()
            == 1
}

#[test]
fn two_of_everything_with_leader_election() {
    let etcd = Etcd::start();
    let mut c = TestCluster::with(Options {
        nodes: 2,
        controllers: false,
        scheduler: false,
        apiserver_args: etcd.apiserver_args("/ha/"),
        ..Default::default()
    });
    let a = c.server.clone();
    let b = c.start_extra_apiserver("apiserver-2");
    let elect = |id: &str| -> Vec<String> {
        [
            "--leader-elect",
            "--leader-elect-lease-duration",
            "2s",
            "--leader-elect-renew-deadline",
            "1500ms",
            "--leader-elect-retry-period",
            "250ms",
            "--leader-elect-identity",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    c.start_component_at("controllers-1", &a, &elect("controllers-1"));
    c.start_component_at("controllers-2", &b, &elect("controllers-2"));
    c.start_component_at("scheduler-1", &a, &elect("scheduler-1"));
    c.start_component_at("scheduler-2", &b, &elect("scheduler-2"));
    let cm_leader = eventually(T, "a controller-manager leader", || {
        holder(&c, "cox-controllers")
    });
    let sched_leader = eventually(T, "a scheduler leader", || holder(&c, "cox-scheduler"));

    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ha"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "ha"}},
            "template": {"metadata": {"labels": {"app": "ha"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    eventually(T, "6 running pods from one ReplicaSet", || {
        converged(&c, 6).then_some(())
    });
    let scheduled = c
        .items("/api/v1/namespaces/default/events?fieldSelector=reason%3DScheduled")
        .iter()
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .sum::<i64>();
    assert_eq!(scheduled, 6, "each pod was bound once, by one scheduler");

    // Kill both leaders; the standbys take over within the lease duration.
    let t0 = Instant::now();
    c.kill(&cm_leader);
    c.kill(&sched_leader);
    let new_cm = eventually(T, "a new controller-manager leader", || {
        holder(&c, "cox-controllers").filter(|h| *h != cm_leader)
    });
    let new_sched = eventually(T, "a new scheduler leader", || {
        holder(&c, "cox-scheduler").filter(|h| *h != sched_leader)
    });
    let took = t0.elapsed();
    eprintln!("takeover after {took:?}");
    assert!(took < Duration::from_secs(10), "took over in {took:?}");
    assert!(c.is_running(&new_cm) && c.is_running(&new_sched));
    let (_, lease) = c.get(&format!("{LEASES}/cox-controllers"));
    assert!(
        lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1,
        "{lease}"
    );

    // The new leaders do the work.
    let out = c.kubectl(&["scale", "deployment", "ha", "--replicas=9"]);
    assert!(out.status.success());
    eventually(T, "9 running pods, still one ReplicaSet", || {
        converged(&c, 9).then_some(())
    });
    let names: std::collections::BTreeSet<String> = pods(&c)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 9);
}
