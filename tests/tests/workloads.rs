//! Workload kinds besides Deployments and Jobs on the real binaries, with the real kubectl:
//! ReplicationControllers.

use coxswain_testkit::{eventually, stderr, stdout, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const PODS: &str = "/api/v1/namespaces/default/pods";

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed:\n{}\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn running(c: &TestCluster, selector: &str) -> Vec<Value> {
    c.items(&format!("{PODS}?labelSelector={selector}"))
        .into_iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

#[test]
fn replication_controllers_keep_their_pods() {
    let c = TestCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rc.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: nginx\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels:\n        app: nginx\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n        ports:\n        - containerPort: 80\n",
    )
    .unwrap();
    assert_eq!(
        ok(&c.kubectl(&["create", "-f", f.to_str().unwrap()])).trim(),
        "replicationcontroller/nginx created"
    );
    // The selector and the labels came from the template.
    let (_, rc) = c.get("/api/v1/namespaces/default/replicationcontrollers/nginx");
    assert_eq!(rc["spec"]["selector"], json!({"app": "nginx"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "nginx"}));
    let pods = eventually(T, "3 running pods", || {
        let p = running(&c, "app%3Dnginx");
        (p.len() == 3).then_some(p)
    });
    let owner = &pods[0]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["apiVersion"].as_str()),
        (Some("ReplicationController"), Some("v1"))
    );
    eventually(T, "status counts ready pods", || {
        let out = ok(&c.kubectl(&["get", "rc", "nginx"]));
        let row: Vec<String> = out
            .lines()
            .nth(1)?
            .split_whitespace()
            .map(String::from)
            .collect();
        (row[..4] == ["nginx", "3", "3", "3"]).then_some(())
    });
    // A deleted pod is replaced; scale goes through /scale.
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    ok(&c.kubectl(&["delete", "pod", &victim, "--wait=false"]));
    eventually(T, "the pod is replaced", || {
        let p = running(&c, "app%3Dnginx");
        (p.len() == 3 && p.iter().all(|p| p["metadata"]["name"] != victim.as_str())).then_some(())
    });
    assert_eq!(
        ok(&c.kubectl(&["scale", "rc", "nginx", "--replicas=1"])).trim(),
        "replicationcontroller/nginx scaled"
    );
    let (_, scale) = c.get("/api/v1/namespaces/default/replicationcontrollers/nginx/scale");
    assert_eq!(scale["status"]["selector"], "app=nginx");
    eventually(T, "one pod left", || {
        (running(&c, "app%3Dnginx").len() == 1).then_some(())
    });
    assert!(ok(&c.kubectl(&["get", "all"])).contains("replicationcontroller/nginx"));
    // Deleting it deletes its pods.
    ok(&c.kubectl(&["delete", "rc", "nginx"]));
    eventually(T, "pods gone", || {
        c.items(&format!("{PODS}?labelSelector=app%3Dnginx"))
            .is_empty()
            .then_some(())
    });
    // Validation: the template must restart always and match the selector.
    let bad = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bad"},
        "spec": {"selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "y"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, s) = c.post("/api/v1/namespaces/default/replicationcontrollers", &bad);
    assert_eq!(code, 422);
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.template.metadata.labels",
            "spec.template.spec.restartPolicy"
        ],
        "{s}"
    );
}

#[test]
fn disruption_budgets_refuse_evictions_and_drain_waits() {
    let c = TestCluster::start(2);
    ok(&c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]));
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]));
    // kubectl's generator sends protobuf.
    assert_eq!(
        ok(&c.kubectl(&[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=2"
        ]))
        .trim(),
        "poddisruptionbudget.policy/web created"
    );
    let pdb = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web";
    eventually(T, "the budget's status", || {
        let (_, b) = c.get(pdb);
        let s = &b["status"];
        (s["currentHealthy"] == 2
            && s["desiredHealthy"] == 2
            && s["disruptionsAllowed"] == 0
            && s["expectedPods"] == 2
            && s["observedGeneration"] == 1)
            .then_some(())
    });
    let out = ok(&c.kubectl(&["get", "pdb"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "0"], "{out}");
    // An eviction the budget does not allow: 429 with Kubernetes' words; the pod stays.
    let pods = running(&c, "app%3Dweb");
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let (code, s) = c.post(
        &format!("{PODS}/{victim}/eviction"),
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}}),
    );
    assert_eq!(code, 429, "{s}");
    assert_eq!(s["reason"], "TooManyRequests");
    assert_eq!(
        s["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        s["details"]["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert_eq!(running(&c, "app%3Dweb").len(), 2);
    // kubectl drain retries, and gives up at its timeout.
    let out = c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=6s"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        stderr(&out)
    );
    // With room for one disruption, the drain goes through: one pod at a time.
    ok(&c.kubectl(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]));
    eventually(T, "one disruption allowed", || {
        (c.get(pdb).1["status"]["disruptionsAllowed"] == 1).then_some(())
    });
    let out = ok(&c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=60s"]));
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    eventually(T, "both pods elsewhere", || {
        let p = running(&c, "app%3Dweb");
        (p.len() == 2 && p.iter().all(|p| p["spec"]["nodeName"] != node.as_str())).then_some(())
    });
    // Validation: not both.
    let (code, s) = c.post(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "both"},
            "spec": {"minAvailable": 1, "maxUnavailable": "50%"}}),
    );
    assert_eq!(code, 422, "{s}");
}
