//! Node loss: a kubelet that stops renewing its Lease makes its node unreachable (Ready
//! Unknown, NoExecute taint); its pods are evicted after their toleration and replaced on the
//! other node. The real kubectl shows it.

use coxswain_testkit::{eventually, stdout, Options, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_lost_node_is_tainted_and_its_pods_move() {
    let mut c = TestCluster::with(Options {
        nodes: 2,
        controller_args: vec!["--node-monitor-grace-period".into(), "3s".into()],
        kubelet_args: vec!["--lease-renew-seconds".into(), "1".into()],
        ..Default::default()
    });
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}],
                    "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 1}]}}}});
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let running = |c: &TestCluster| -> Vec<Value> {
        c.items("/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DRunning")
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    };
    eventually(T, "4 Running pods on both nodes", || {
        let pods = running(&c);
        let on1 = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == "node-1")
            .count();
        (pods.len() == 4 && on1 > 0 && on1 < 4).then_some(())
    });
    let t0 = std::time::Instant::now();
    c.kill("node-1");
    // The taint and the Ready condition are two writes: wait for both.
    let node = eventually(T, "node-1 tainted unreachable and Ready Unknown", || {
        let (_, n) = c.get("/api/v1/nodes/node-1");
        let tainted = n["spec"]["taints"]
            .as_array()?
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute");
        let unknown = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown");
        (tainted && unknown).then_some(n)
    });
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "Unknown");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    eprintln!("tainted after {:?}", t0.elapsed());
    let out = c.kubectl(&["get", "nodes"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("node-1") && l.contains("NotReady")),
        "{}",
        stdout(&out)
    );
    let (_, n2) = c.get("/api/v1/nodes/node-2");
    assert!(
        n2["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()),
        "the healthy node stays untainted: {}",
        n2["spec"]
    );
    eventually(T, "all 4 pods Running on node-2", || {
        let pods = running(&c);
        (pods.len() == 4 && pods.iter().all(|p| p["spec"]["nodeName"] == "node-2")).then_some(())
    });
    eprintln!("moved after {:?}", t0.elapsed());
    let evicted = c
        .items("/api/v1/namespaces/default/events")
        .iter()
        .filter(|e| e["reason"] == "TaintManagerEviction")
        .count();
    assert!(evicted > 0, "evictions were recorded");
    // The kubelet comes back: the taint goes.
    c.start_component("node-1");
    eventually(T, "taint removed", || {
        let (_, n) = c.get("/api/v1/nodes/node-1");
        n["spec"]["taints"]
            .as_array()
            .is_none_or(|ts| {
                ts.iter()
                    .all(|t| t["key"] != "node.kubernetes.io/unreachable")
            })
            .then_some(())
    });
}

#[test]
fn one_kubelet_process_simulates_many_nodes() {
    let mut c = TestCluster::with(Options {
        nodes: 0,
        ..Default::default()
    });
    c.start_multi_kubelet("sim", 5);
    let out = c.kubectl(&["get", "nodes", "-o", "name"]);
    let names: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        names,
        (1..=5).map(|i| format!("node/sim-{i}")).collect::<Vec<_>>()
    );
    let leases = eventually(T, "a Lease per node", || {
        let l = c.items("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases");
        (l.len() == 5).then_some(l)
    });
    assert!(leases.iter().all(|l| l["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .starts_with("sim-")));
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "many"}},
            "template": {"metadata": {"labels": {"app": "many"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let pods = eventually(T, "10 Running pods over the 5 simulated nodes", || {
        let pods = c.items("/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DRunning");
        (pods.len() == 10).then_some(pods)
    });
    let nodes: std::collections::HashSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(
        nodes.len(),
        5,
        "spread over every simulated node: {nodes:?}"
    );
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let out = c.kubectl(&["logs", pod]);
    assert!(
        stdout(&out).contains("container started"),
        "{}",
        stdout(&out)
    );
}
