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

/// A pod with this priority class and cpu request, optionally never preempting.
fn prioritized(name: &str, class: &str, cpu: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"priorityClassName": class, "containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": cpu}}}]}})
}

#[test]
fn a_higher_priority_pod_that_fits_nowhere_preempts_lower_priority_ones() {
    let c = TestCluster::start(1);
    c.wait_nodes_ready(1);
    let pcs = "/apis/scheduling.k8s.io/v1/priorityclasses";
    for (name, value) in [("low", 100), ("mid", 500), ("high", 1000)] {
        let (code, _) = c.post(pcs, &json!({"metadata": {"name": name}, "value": value}));
        assert_eq!(code, 201);
    }
    // The node (4 cpus) is full: low-a and low-b (1500m each), mid (800m).
    for (name, class, cpu) in [
        ("low-a", "low", "1500m"),
        ("low-b", "low", "1500m"),
        ("mid", "mid", "800m"),
    ] {
        assert_eq!(c.post(PODS, &prioritized(name, class, cpu)).0, 201);
    }
    let phase = |name: &str| {
        let (_, p) = c.get(&format!("{PODS}/{name}"));
        p["status"]["phase"].as_str().unwrap_or("").to_string()
    };
    eventually(T, "the three running", || {
        ["low-a", "low-b", "mid"]
            .iter()
            .all(|n| phase(n) == "Running")
            .then_some(())
    });
    // A pod of the same low priority: no victims.
    assert_eq!(c.post(PODS, &prioritized("low-c", "low", "1")).0, 201);
    let msg = |name: &str| {
        let (_, p) = c.get(&format!("{PODS}/{name}"));
        p["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    eventually(T, "no victims for an equal priority", || {
        (msg("low-c") == "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.").then_some(())
    });
    // One whose class never preempts says so.
    let never =
        json!({"metadata": {"name": "high-polite"}, "value": 1000, "preemptionPolicy": "Never"});
    assert_eq!(c.post(pcs, &never).0, 201);
    assert_eq!(
        c.post(PODS, &prioritized("polite", "high-polite", "1")).0,
        201
    );
    eventually(T, "not eligible by its policy", || {
        (msg("polite") == "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.").then_some(())
    });
    // Too big even with every lower pod gone: the filter's reason.
    assert_eq!(c.post(PODS, &prioritized("giant", "high", "5")).0, 201);
    eventually(T, "nothing to gain", || {
        (msg("giant") == "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Insufficient cpu.").then_some(())
    });
    ok_delete(&c, "polite");
    ok_delete(&c, "giant");
    // high needs 1500m: one low pod is enough (not mid, which matters more), and of the two
    // low pods the one started later goes (either, when they started the same second).
    let start = |name: &str| c.get(&format!("{PODS}/{name}")).1["status"]["startTime"].clone();
    let (a, b) = (start("low-a"), start("low-b"));
    let (code, high) = c.post(PODS, &prioritized("high", "high", "1500m"));
    assert_eq!(code, 201);
    let uid = high["metadata"]["uid"].as_str().unwrap().to_string();
    eventually(T, "high Running on node-1", || {
        (phase("high") == "Running").then_some(())
    });
    let (_, h) = c.get(&format!("{PODS}/high"));
    assert_eq!(h["spec"]["nodeName"], "node-1");
    assert_eq!(h["status"]["nominatedNodeName"], "node-1");
    // The victim: evicted, with an event naming the preemptor.
    let gone = |name: &str| c.get(&format!("{PODS}/{name}")).0 == 404;
    let later = eventually(T, "a low pod gone", || {
        match (gone("low-a"), gone("low-b")) {
            (true, false) => Some("low-a"),
            (false, true) => Some("low-b"),
            _ => None,
        }
    });
    if a != b {
        let want = if a.as_str() > b.as_str() {
            "low-a"
        } else {
            "low-b"
        };
        assert_eq!(later, want, "the later started of {a} and {b}");
    }
    assert_eq!(phase("mid"), "Running");
    let events = c.items("/api/v1/namespaces/default/events");
    let preempted: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "Preempted")
        .collect();
    assert_eq!(preempted.len(), 1, "{preempted:?}");
    assert_eq!(preempted[0]["involvedObject"]["name"], later);
    assert_eq!(
        preempted[0]["message"],
        format!("Preempted by pod {uid} on node node-1")
    );
    assert_eq!(preempted[0]["source"]["component"], "default-scheduler");
    // low-c (waiting all along) did not take the room high was given.
    assert_eq!(phase("low-c"), "Pending");
}

fn ok_delete(c: &TestCluster, name: &str) {
    let out = c.kubectl(&["delete", "pod", name, "--grace-period=0", "--force"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn preemption_spares_pods_a_disruption_budget_protects() {
    let c = TestCluster::start(1);
    c.wait_nodes_ready(1);
    let pcs = "/apis/scheduling.k8s.io/v1/priorityclasses";
    for (name, value) in [("low", 100), ("high", 1000)] {
        assert_eq!(
            c.post(pcs, &json!({"metadata": {"name": name}, "value": value}))
                .0,
            201
        );
    }
    let phase = |name: &str| {
        let (_, p) = c.get(&format!("{PODS}/{name}"));
        p["status"]["phase"].as_str().unwrap_or("").to_string()
    };
    // web starts first, db later: by start time alone db would be the victim.
    for name in ["web", "db"] {
        let mut p = prioritized(name, "low", "1500m");
        p["metadata"]["labels"] = json!({"app": name});
        assert_eq!(c.post(PODS, &p).0, 201);
        eventually(T, "running", || (phase(name) == "Running").then_some(()));
        // Start times are in seconds: the next pod starts in a later one.
        let started = c.get(&format!("{PODS}/{name}")).1["status"]["startTime"].clone();
        eventually(T, "a later second", || {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (Some(now.as_str()) > started.as_str()).then_some(())
        });
    }
    let pdb = json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 1,
        "selector": {"matchLabels": {"app": "db"}}}});
    assert_eq!(
        c.post(
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            &pdb
        )
        .0,
        201
    );
    eventually(T, "the budget allowing no disruption", || {
        let (_, b) = c.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/db");
        (b["status"]["currentHealthy"] == 1 && b["status"]["disruptionsAllowed"] == 0).then_some(())
    });
    assert_eq!(c.post(PODS, &prioritized("high", "high", "1500m")).0, 201);
    eventually(T, "high Running", || {
        (phase("high") == "Running").then_some(())
    });
    eventually(T, "web evicted", || {
        (c.get(&format!("{PODS}/web")).0 == 404).then_some(())
    });
    assert_eq!(phase("db"), "Running", "the budget's pod stays");
}
