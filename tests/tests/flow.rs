//! The ten steps end to end: the real binaries, the example Deployment created with the real
//! kubectl, and what a user then sees: owner chain, Running pods spread over nodes, events,
//! logs, scaling both ways, and the cascade on delete.

use coxswain_testkit::{eventually, stderr, stdout, TestCluster};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn example() -> String {
    format!("{}/../examples/deployment.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn running_pods(c: &TestCluster) -> Vec<Value> {
    c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .into_iter()
        .filter(|p| p.pointer("/status/phase") == Some(&Value::from("Running")))
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

#[test]
fn deployment_becomes_running_pods_through_the_ten_steps() {
    let c = TestCluster::start(3);
    let out = c.kubectl(&["create", "-f", &example()]);
    assert!(
        out.status.success(),
        "kubectl create failed: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), "deployment.apps/web created");

    let pods = eventually(T, "3 Running pods", || {
        let p = running_pods(&c);
        (p.len() == 3).then_some(p)
    });
    // The owner chain: pod -> ReplicaSet -> Deployment, each a controller reference.
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    let rss = c.items("/apis/apps/v1/namespaces/default/replicasets");
    assert_eq!(rss.len(), 1, "one ReplicaSet per template");
    let rs = &rss[0];
    assert_eq!(
        s(rs, "/metadata/ownerReferences/0/uid"),
        s(&d, "/metadata/uid")
    );
    assert_eq!(
        rs.pointer("/metadata/ownerReferences/0/controller"),
        Some(&Value::Bool(true))
    );
    let hash = s(rs, "/metadata/labels/pod-template-hash");
    assert!(!hash.is_empty());
    assert_eq!(s(rs, "/metadata/name"), format!("web-{hash}"));
    let mut nodes = HashSet::new();
    for p in &pods {
        assert_eq!(
            s(p, "/metadata/ownerReferences/0/uid"),
            s(rs, "/metadata/uid")
        );
        assert!(s(p, "/metadata/name").starts_with(&format!("web-{hash}-")));
        nodes.insert(s(p, "/spec/nodeName").to_string());
        assert!(!s(p, "/status/podIP").is_empty());
        assert!(!s(p, "/status/hostIP").is_empty());
        assert!(!s(p, "/status/startTime").is_empty());
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["ready"], Value::Bool(true));
        assert_eq!(cs["started"], Value::Bool(true));
        assert!(s(cs, "/imageID").contains("@sha256:"));
        assert!(s(cs, "/containerID").starts_with("containerd://"));
        assert!(cs.pointer("/state/running/startedAt").is_some());
    }
    assert_eq!(
        nodes.len(),
        3,
        "pods of one owner spread over the 3 nodes: {nodes:?}"
    );

    // Deployment status as kubectl rollout status reads it.
    let d = eventually(T, "deployment status available 3", || {
        let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
        (d.pointer("/status/availableReplicas") == Some(&Value::from(3))).then_some(d)
    });
    assert_eq!(
        d.pointer("/status/observedGeneration"),
        d.pointer("/metadata/generation")
    );
    let conds = d["status"]["conditions"].as_array().unwrap();
    assert!(conds
        .iter()
        .any(|c| c["type"] == "Available" && c["status"] == "True"));
    assert!(conds
        .iter()
        .any(|c| c["type"] == "Progressing" && c["status"] == "True"));

    // Every step left an Event.
    let reasons: HashSet<String> = eventually(T, "events of every step", || {
        let r: HashSet<String> = c
            .items("/api/v1/namespaces/default/events")
            .iter()
            .map(|e| s(e, "/reason").to_string())
            .collect();
        [
            "ScalingReplicaSet",
            "SuccessfulCreate",
            "Scheduled",
            "Pulling",
            "Pulled",
            "Created",
            "Started",
        ]
        .iter()
        .all(|x| r.contains(*x))
        .then_some(r)
    });
    assert!(reasons.contains("Scheduled"));

    // The real kubectl lists them, with server-side columns.
    let out = c.kubectl(&["get", "pods", "-o", "wide"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("READY") && text.contains("NODE"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("Running") && l.contains("1/1"))
            .count(),
        3,
        "{text}"
    );
    let out = c.kubectl(&["get", "deployment", "web"]);
    assert!(
        stdout(&out)
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web") && l.contains("3/3")),
        "{}",
        stdout(&out)
    );

    // Logs come from the pod's kubelet through the API server.
    let pod = s(&pods[0], "/metadata/name").to_string();
    let out = c.kubectl(&["logs", &pod]);
    assert!(
        stdout(&out).contains("container started from image nginx:1.27"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = c.coxctl(&["logs", &pod]);
    assert!(
        stdout(&out).contains("configuration complete"),
        "{}",
        stderr(&out)
    );

    // Scale up and down with kubectl (the /scale subresource).
    let out = c.kubectl(&["scale", "deployment", "web", "--replicas=5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "5 Running pods", || {
        (running_pods(&c).len() == 5).then_some(())
    });
    let out = c.coxctl(&["scale", "deployment/web", "--replicas", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "2 pods left after scale down", || {
        let all = c.items("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
        (all.len() == 2 && running_pods(&c).len() == 2).then_some(())
    });
    let (_, rs) = c.get(&format!(
        "/apis/apps/v1/namespaces/default/replicasets/web-{hash}"
    ));
    assert_eq!(rs.pointer("/spec/replicas"), Some(&Value::from(2)));

    // Deleting the Deployment cascades to its ReplicaSet and pods.
    let out = c.kubectl(&["delete", "deployment", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "ReplicaSet and pods garbage-collected", || {
        (c.items("/apis/apps/v1/namespaces/default/replicasets")
            .is_empty()
            && c.items("/api/v1/namespaces/default/pods").is_empty())
        .then_some(())
    });
}

#[test]
fn a_template_change_rolls_to_a_new_replicaset_and_an_unschedulable_pod_says_why() {
    let c = TestCluster::start(2);
    let out = c.coxctl(&["create", "-f", &example()]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(T, "3 Running pods", || {
        (running_pods(&c).len() == 3).then_some(())
    });
    let out = c.kubectl(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(
        T,
        "3 Running pods of the new image, old ReplicaSet at 0",
        || {
            let pods = running_pods(&c);
            let new = pods
                .iter()
                .filter(|p| s(p, "/spec/containers/0/image") == "nginx:1.28")
                .count();
            let rss = c.items("/apis/apps/v1/namespaces/default/replicasets");
            let zero = rss
                .iter()
                .filter(|r| r.pointer("/spec/replicas") == Some(&Value::from(0)))
                .count();
            (new == 3 && pods.len() == 3 && rss.len() == 2 && zero == 1).then_some(())
        },
    );

    // A pod asking for more cpu than any node has stays Pending with the reason.
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "huge"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "64"}}}]}});
    let (code, _) = c.post("/api/v1/namespaces/default/pods", &pod);
    assert_eq!(code, 201);
    let msg = eventually(T, "PodScheduled=False on the huge pod", || {
        let (_, p) = c.get("/api/v1/namespaces/default/pods/huge");
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            .map(|c| s(c, "/message").to_string())
    });
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
}
