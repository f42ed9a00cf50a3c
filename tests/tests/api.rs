//! The API server alone, over raw HTTP: watch resume, optimistic concurrency, expiry, bad
//! input, and what kubectl needs from discovery.

use coxswain_testkit::{stderr, stdout, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[test]
fn server_sets_metadata_and_defaults() {
    let c = TestCluster::apiserver_only(&[]);
    let (code, d) = c.post(DEPLOYS, &deployment("web", 2));
    assert_eq!(code, 201, "{d}");
    assert!(!d["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(d["metadata"]["creationTimestamp"].is_string());
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    // A spec change bumps the generation; a status change does not.
    let (_, d2) = c.patch(&format!("{DEPLOYS}/web"), &json!({"spec": {"replicas": 4}}));
    assert_eq!(d2["metadata"]["generation"], 2);
    let (_, d3) = c.patch(
        &format!("{DEPLOYS}/web/status"),
        &json!({"status": {"replicas": 4}}),
    );
    assert_eq!(d3["metadata"]["generation"], 2);
    assert_eq!(d3["status"]["replicas"], 4);
    // Status sent to the main resource is ignored.
    let (_, d4) = c.patch(
        &format!("{DEPLOYS}/web"),
        &json!({"status": {"replicas": 9}}),
    );
    assert_eq!(d4["status"]["replicas"], 4);
    // generateName.
    let (code, p) = c.post(
        "/api/v1/namespaces/default/pods",
        &json!({"metadata": {"generateName": "gen-"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert_eq!(code, 201);
    let name = p["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(p["status"]["phase"], "Pending");
}

#[test]
fn stale_update_is_a_conflict() {
    let c = TestCluster::apiserver_only(&[]);
    let (_, d) = c.post(DEPLOYS, &deployment("web", 1));
    let mut a = d.clone();
    a["spec"]["replicas"] = json!(2);
    let (code, _) = c.put(&format!("{DEPLOYS}/web"), &a);
    assert_eq!(code, 200);
    let mut b = d.clone();
    b["spec"]["replicas"] = json!(3);
    let (code, s) = c.put(&format!("{DEPLOYS}/web"), &b);
    assert_eq!(code, 409, "{s}");
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(s["kind"], "Status");
    let (_, now) = c.get(&format!("{DEPLOYS}/web"));
    assert_eq!(
        now["spec"]["replicas"], 2,
        "the stale write changed nothing"
    );
}

#[test]
fn watch_resumes_from_a_resource_version() {
    let c = TestCluster::apiserver_only(&[]);
    let (_, d) = c.post(DEPLOYS, &deployment("web", 1));
    let rv = d["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.patch(&format!("{DEPLOYS}/web"), &json!({"spec": {"replicas": 2}}));
    c.patch(&format!("{DEPLOYS}/web"), &json!({"spec": {"replicas": 3}}));
    c.delete(&format!("{DEPLOYS}/web"));
    let evs = c.watch_lines(
        &format!("{DEPLOYS}?watch=true&resourceVersion={rv}"),
        Duration::from_secs(10),
        |e| e.len() >= 3,
    );
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["MODIFIED", "MODIFIED", "DELETED"]);
    assert_eq!(evs[0]["object"]["spec"]["replicas"], 2);
    assert_eq!(evs[1]["object"]["spec"]["replicas"], 3);
    let rvs: Vec<u64> = evs
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    // Without a resourceVersion the watch starts with the current state (the Python client relies on it).
    c.post(DEPLOYS, &deployment("api", 1));
    let evs = c.watch_lines(
        &format!("{DEPLOYS}?watch=True&labelSelector=app%3Dapi"),
        Duration::from_secs(10),
        |e| !e.is_empty(),
    );
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[0]["object"]["metadata"]["name"], "api");
}

#[test]
fn an_expired_resource_version_gets_410() {
    let c = TestCluster::apiserver_only(&["--watch-cache-size", "16"]);
    c.post(DEPLOYS, &deployment("web", 0));
    for i in 0..40 {
        c.patch(&format!("{DEPLOYS}/web"), &json!({"spec": {"replicas": i}}));
    }
    let evs = c.watch_lines(
        &format!("{DEPLOYS}?watch=true&resourceVersion=2"),
        Duration::from_secs(10),
        |e| !e.is_empty(),
    );
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
}

#[test]
fn bad_input_gets_a_status_and_stores_nothing() {
    let c = TestCluster::apiserver_only(&[]);
    let check = |code: u16, body: &Value, want_code: u16, reason: &str, field: Option<&str>| {
        assert_eq!(code, want_code, "{body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        if let Some(f) = field {
            let causes = body["details"]["causes"].as_array().expect("causes");
            assert!(
                causes.iter().any(|c| c["field"] == f),
                "no cause for {f}: {body}"
            );
            assert!(body["message"].as_str().unwrap().contains(f), "{body}");
        }
    };
    let (code, b) = c.send_body("POST", DEPLOYS, "application/json", "{not json");
    check(code, &b, 400, "BadRequest", None);
    let (code, b) = c.send_body(
        "POST",
        DEPLOYS,
        "application/vnd.kubernetes.protobuf",
        "k8s\0",
    );
    check(code, &b, 415, "UnsupportedMediaType", None);
    let (code, b) = c.post(DEPLOYS, &deployment("Bad_Name", 1));
    check(code, &b, 422, "Invalid", Some("metadata.name"));
    let (code, b) = c.post(DEPLOYS, &deployment("neg", -1));
    check(code, &b, 422, "Invalid", Some("spec.replicas"));
    assert_eq!(b["message"], "Deployment.apps \"neg\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
    let mut no_containers = deployment("empty", 1);
    no_containers["spec"]["template"]["spec"]["containers"] = json!([]);
    let (code, b) = c.post(DEPLOYS, &no_containers);
    check(
        code,
        &b,
        422,
        "Invalid",
        Some("spec.template.spec.containers"),
    );
    let mut no_selector = deployment("nosel", 1);
    no_selector["spec"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    let (code, b) = c.post(DEPLOYS, &no_selector);
    check(code, &b, 422, "Invalid", Some("spec.selector"));
    let mut wrong_kind = deployment("wk", 1);
    wrong_kind["kind"] = json!("ReplicaSet");
    let (code, b) = c.post(DEPLOYS, &wrong_kind);
    check(code, &b, 400, "BadRequest", None);
    let (code, b) = c.post(
        "/apis/apps/v1/namespaces/nowhere/deployments",
        &deployment("x", 1),
    );
    check(code, &b, 404, "NotFound", None);
    assert_eq!(b["message"], "namespaces \"nowhere\" not found");
    let (code, b) = c.post(
        "/apis/apps/v1/namespaces/default/widgets",
        &deployment("x", 1),
    );
    check(code, &b, 404, "NotFound", None);
    let (code, b) = c.get(&format!("{DEPLOYS}/nope"));
    check(code, &b, 404, "NotFound", None);
    assert_eq!(b["message"], "deployments.apps \"nope\" not found");
    let (code, b) = c.get(&format!("{DEPLOYS}?labelSelector=a%20b%3Dc"));
    check(code, &b, 400, "BadRequest", None);
    let (code, b) = c.send_body(
        "PATCH",
        &format!("{DEPLOYS}/nope"),
        "application/merge-patch+json",
        "{}",
    );
    check(code, &b, 404, "NotFound", None);
    assert!(c.items(DEPLOYS).is_empty(), "nothing was stored");
    // A duplicate is AlreadyExists.
    assert_eq!(c.post(DEPLOYS, &deployment("web", 1)).0, 201);
    let (code, b) = c.post(DEPLOYS, &deployment("web", 1));
    check(code, &b, 409, "AlreadyExists", None);
}

#[test]
fn the_real_kubectl_discovers_and_lists() {
    let c = TestCluster::apiserver_only(&[]);
    let out = c.kubectl(&["api-resources"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for r in [
        "pods",
        "deployments",
        "replicasets",
        "nodes",
        "namespaces",
        "events",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(r)),
            "{r} missing from:\n{text}"
        );
    }
    let out = c.kubectl(&["version"]);
    assert!(
        stdout(&out).contains("Server Version: v1.32.0+coxswain"),
        "{}",
        stdout(&out)
    );
    let out = c.kubectl(&["get", "namespaces"]);
    let text = stdout(&out);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{text}"
        );
    }
    let out = c.kubectl(&["get", "pods"]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "No resources found in default namespace."
    );
    let out = c.kubectl(&["get", "deployment", "nope"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[test]
fn events_expire_after_their_ttl() {
    let c = TestCluster::apiserver_only(&["--event-ttl-seconds", "1"]);
    let now = "2026-01-01T00:00:00Z";
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "old.1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Test", "message": "an old event", "type": "Normal",
        "firstTimestamp": now, "lastTimestamp": now});
    assert_eq!(c.post("/api/v1/namespaces/default/events", &ev).0, 201);
    coxswain_testkit::eventually(Duration::from_secs(20), "the event to expire", || {
        (c.get("/api/v1/namespaces/default/events/old.1").0 == 404).then_some(())
    });
}

#[test]
fn metrics_count_requests_by_verb_resource_and_code() {
    let c = TestCluster::apiserver_only(&[]);
    let counter = |text: &str, labels: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("apiserver_request_total{{{labels}}} ")))
            .map_or(0, |n| n.parse().unwrap())
    };
    let metrics = || {
        reqwest::blocking::get(format!("{}/metrics", c.server))
            .unwrap()
            .text()
            .unwrap()
    };
    let pod = json!({"metadata": {"name": "m"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let created = r#"code="201",resource="pods",subresource="",verb="POST""#;
    let conflict = r#"code="409",resource="pods",subresource="",verb="POST""#;
    let listed = r#"code="200",resource="pods",subresource="",verb="LIST""#;
    let before = metrics();
    assert_eq!(c.post("/api/v1/namespaces/default/pods", &pod).0, 201);
    assert_eq!(c.post("/api/v1/namespaces/default/pods", &pod).0, 409);
    assert_eq!(c.get("/api/v1/namespaces/default/pods").0, 200);
    let after = metrics();
    assert!(
        after.contains("# TYPE apiserver_request_total counter"),
        "{after}"
    );
    assert_eq!(
        counter(&after, created),
        counter(&before, created) + 1,
        "{after}"
    );
    assert_eq!(
        counter(&after, conflict),
        counter(&before, conflict) + 1,
        "{after}"
    );
    assert_eq!(
        counter(&after, listed),
        counter(&before, listed) + 1,
        "{after}"
    );
}
