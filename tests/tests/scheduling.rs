//! Scheduler plugins as a user sees them: node affinity (required and preferred), pod affinity
//! and anti-affinity, topology spread constraints, and unschedulable pods that say why, get a
//! FailedScheduling event, and are retried after a back-off when a node changes.
//! Three nodes: node-1 in zone a, node-2 and node-3 in zone b.

use coxswain_testkit::{eventually, stdout, Options, TestCluster};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const PODS: &str = "/api/v1/namespaces/default/pods";

fn zoned_cluster() -> TestCluster {
    let c = TestCluster::with(Options {
        nodes: 3,
        ..Default::default()
    });
    for (node, zone, gen) in [
        ("node-1", "a", "1"),
        ("node-2", "b", "2"),
        ("node-3", "b", "3"),
    ] {
        let out = c.kubectl(&[
            "label",
            "node",
            node,
            &format!("topology.kubernetes.io/zone={zone}"),
            &format!("generation={gen}"),
        ]);
        assert!(out.status.success(), "{}", stdout(&out));
    }
    c
}

fn pod(name: &str, labels: Value, spec_extra: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec})
}

fn node_of(c: &TestCluster, name: &str) -> String {
    eventually(T, &format!("{name} bound"), || {
        let (_, p) = c.get(&format!("{PODS}/{name}"));
        p["spec"]["nodeName"].as_str().map(str::to_string)
    })
}

fn create(c: &TestCluster, body: &Value) {
    let (code, b) = c.post(PODS, body);
    assert_eq!(code, 201, "{b}");
}

/// Pods per node of the pods labelled `app=<app>`, once `n` of them are bound.
fn placement(c: &TestCluster, app: &str, n: usize) -> BTreeMap<String, usize> {
    eventually(T, &format!("{n} {app} pods bound"), || {
        let pods = c.items(&format!("{PODS}?labelSelector=app%3D{app}"));
        let bound: Vec<String> = pods
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        (bound.len() == n).then(|| {
            let mut m = BTreeMap::new();
            for b in bound {
                *m.entry(b).or_insert(0) += 1;
            }
            m
        })
    })
}

fn deployment(name: &str, replicas: i64, spec_extra: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
}

fn pending_message(c: &TestCluster, name: &str) -> String {
    eventually(T, &format!("{name} PodScheduled=False"), || {
        let (_, p) = c.get(&format!("{PODS}/{name}"));
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")?["message"]
            .as_str()
            .map(str::to_string)
    })
}

#[test]
fn node_affinity_required_and_preferred() {
    let c = zoned_cluster();
    let zone_b = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]},
            {"key": "generation", "operator": "Gt", "values": ["2"]}]}]}}});
    create(
        &c,
        &pod("in-b-gen3", json!({}), json!({"affinity": zone_b})),
    );
    assert_eq!(node_of(&c, "in-b-gen3"), "node-3");

    let by_name = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}]},
            {"matchExpressions": [{"key": "no-such-label", "operator": "Exists"}]}]}}});
    create(&c, &pod("by-name", json!({}), json!({"affinity": by_name})));
    assert_eq!(node_of(&c, "by-name"), "node-2");

    let prefer_a = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}}]}});
    for i in 0..3 {
        create(
            &c,
            &pod(
                &format!("prefers-a-{i}"),
                json!({}),
                json!({"affinity": prefer_a}),
            ),
        );
    }
    for i in 0..3 {
        assert_eq!(
            node_of(&c, &format!("prefers-a-{i}")),
            "node-1",
            "preferred zone a"
        );
    }

    // A pod that names its node skips the scheduler; that node's kubelet runs it.
    create(&c, &pod("pinned", json!({}), json!({"nodeName": "node-2"})));
    eventually(T, "pinned pod Running on node-2", || {
        let (_, p) = c.get(&format!("{PODS}/pinned"));
        (p["status"]["phase"] == "Running" && p["spec"]["nodeName"] == "node-2").then_some(())
    });

    let nowhere = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["a", "b"]}]}]}}});
    create(&c, &pod("nowhere", json!({}), json!({"affinity": nowhere})));
    assert_eq!(
        pending_message(&c, "nowhere"),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn pod_affinity_and_anti_affinity() {
    let c = zoned_cluster();
    let spread_hosts = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}});
    let d = deployment("db", 3, json!({"affinity": spread_hosts}));
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let placed = placement(&c, "db", 3);
    assert_eq!(
        placed.values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1],
        "{placed:?}"
    );

    // A fourth replica has nowhere to go.
    let out = c.kubectl(&["scale", "deployment", "db", "--replicas=4"]);
    assert!(out.status.success());
    let pending = eventually(T, "a pending db pod", || {
        c.items(&format!("{PODS}?labelSelector=app%3Ddb"))
            .into_iter()
            .find(|p| p["spec"]["nodeName"].is_null())
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    });
    assert_eq!(
        pending_message(&c, &pending),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );

    // Affinity: the web pod goes where the cache pod runs (same zone here).
    create(
        &c,
        &pod(
            "cache",
            json!({"app": "cache"}),
            json!({"nodeSelector": {"topology.kubernetes.io/zone": "a"}}),
        ),
    );
    assert_eq!(node_of(&c, "cache"), "node-1");
    let near_cache = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}]}});
    create(
        &c,
        &pod(
            "web",
            json!({"app": "web"}),
            json!({"affinity": near_cache}),
        ),
    );
    assert_eq!(node_of(&c, "web"), "node-1");

    // Symmetry: an existing pod's anti-affinity keeps matching pods out of its zone.
    let lonely = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"role": "noisy"}}, "topologyKey": "topology.kubernetes.io/zone"}]}});
    create(
        &c,
        &pod(
            "lonely",
            json!({}),
            json!({"affinity": lonely, "nodeSelector": {"generation": "2"}}),
        ),
    );
    assert_eq!(node_of(&c, "lonely"), "node-2");
    for i in 0..2 {
        create(
            &c,
            &pod(&format!("noisy-{i}"), json!({"role": "noisy"}), json!({})),
        );
        assert_eq!(
            node_of(&c, &format!("noisy-{i}")),
            "node-1",
            "zone b is taken by lonely's anti-affinity"
        );
    }
}

#[test]
fn topology_spread_and_retry_after_a_node_change() {
    let c = zoned_cluster();
    let spread = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]);
    let d = deployment("spread", 6, json!({"topologySpreadConstraints": spread}));
    assert_eq!(
        c.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let placed = placement(&c, "spread", 6);
    let zone_a = placed.get("node-1").copied().unwrap_or(0);
    assert_eq!(
        zone_a, 3,
        "zones a and b get 3 each (skew <= 1): {placed:?}"
    );

    // Unschedulable until a node gets the label; the scheduler retries after its back-off.
    create(
        &c,
        &pod(
            "needs-ssd",
            json!({}),
            json!({"nodeSelector": {"disk": "ssd"}}),
        ),
    );
    let msg = pending_message(&c, "needs-ssd");
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
    let ev = eventually(T, "FailedScheduling event", || {
        c.items("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dneeds-ssd")
            .into_iter()
            .find(|e| e["reason"] == "FailedScheduling")
    });
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["message"], msg.as_str());
    assert!(c
        .kubectl(&["label", "node", "node-2", "disk=ssd"])
        .status
        .success());
    assert_eq!(node_of(&c, "needs-ssd"), "node-2");
}
