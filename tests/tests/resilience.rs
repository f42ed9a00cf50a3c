//! Restarts: the API server keeps everything (and its revision counter) across a restart, and
//! a killed controller manager heals the cluster when it comes back (level-triggered).

use coxswain_testkit::{eventually, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn apiserver_restart_keeps_state_and_revisions() {
    let mut c = TestCluster::apiserver_only(&[]);
    let (code, ns) = c.post("/api/v1/namespaces", &json!({"metadata": {"name": "shop"}}));
    assert_eq!(code, 201);
    let (code, cm) = c.post(
        "/api/v1/namespaces/shop/pods",
        &json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert_eq!(code, 201, "{cm}");
    let before = rv(&cm).max(rv(&ns));
    c.kill("apiserver");
    c.start_apiserver();
    let (code, p) = c.get("/api/v1/namespaces/shop/pods/p");
    assert_eq!(code, 200);
    assert_eq!(p["metadata"]["uid"], cm["metadata"]["uid"]);
    let (_, p2) = c.post(
        "/api/v1/namespaces/shop/pods",
        &json!({"metadata": {"name": "q"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert!(
        rv(&p2) > before,
        "revisions continue after a restart: {} <= {before}",
        rv(&p2)
    );
    let (_, list) = c.get("/api/v1/namespaces/shop/pods");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[test]
fn a_killed_controller_manager_heals_on_restart() {
    let mut c = TestCluster::start(2);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "heal"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "heal"}},
            "template": {"metadata": {"labels": {"app": "heal"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let running = |c: &TestCluster| {
        c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dheal&fieldSelector=status.phase%3DRunning").len()
    };
    eventually(T, "2 Running pods", || (running(&c) == 2).then_some(()));
    c.kill("controllers");
    // While the controllers are down: scale up and remove a pod by hand.
    c.patch(
        "/apis/apps/v1/namespaces/default/deployments/heal",
        &json!({"spec": {"replicas": 3}}),
    );
    let pods = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dheal");
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    c.delete(&format!("/api/v1/namespaces/default/pods/{victim}"));
    c.start_component("controllers");
    eventually(T, "3 Running pods after the controllers came back", || {
        (running(&c) == 3).then_some(())
    });
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/heal");
    eventually(T, "deployment status caught up", || {
        let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/heal");
        (d.pointer("/status/availableReplicas") == Some(&json!(3))).then_some(())
    });
    assert_eq!(d["spec"]["replicas"], 3);
}
