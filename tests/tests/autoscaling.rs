//! Autoscaling on the real binaries with the real kubectl: the resource metrics API fed by
//! the simulated runtime (`kubectl top`), and HorizontalPodAutoscalers at autoscaling/v2 and
//! v1 scaling a Deployment as the simulated load changes.

use coxswain_testkit::{eventually, ok, stderr, stdout, Options, TestCluster};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const HPAS: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

fn load_config(path: &Path, cpu: &str) {
    std::fs::write(
        path,
        format!("images:\n- image: 'load*'\n  cpu: {cpu}\n  memory: 32Mi\n"),
    )
    .unwrap();
}

/// A cluster whose kubelets read `rt.yaml` (per-image load) and whose autoscaler looks
/// every 3 s (not faster: its Warnings while pods start would use up the 25 events an object
/// may have, as in Kubernetes, and its rescale events be dropped) and stabilizes scale-downs
/// for 5 s.
fn cluster(dir: &Path) -> TestCluster {
    let rt = dir.join("rt.yaml");
    load_config(&rt, "150m");
    TestCluster::with(Options {
        nodes: 2,
        kubelet_args: vec!["--runtime-config".into(), rt.display().to_string()],
        controller_args: vec![
            "--horizontal-pod-autoscaler-sync-period".into(),
            "3s".into(),
            "--horizontal-pod-autoscaler-downscale-stabilization".into(),
            "5s".into(),
        ],
        ..Default::default()
    })
}

fn deployment(c: &TestCluster, dir: &Path, name: &str, replicas: u32) {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &f,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n        image: load:1\n        resources:\n          requests: {{cpu: 100m}}\n"
        ),
    )
    .unwrap();
    ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()]));
}

fn replicas(c: &TestCluster, name: &str) -> i64 {
    let (_, d) = c.get(&format!(
        "/apis/apps/v1/namespaces/default/deployments/{name}"
    ));
    d["spec"]["replicas"].as_i64().unwrap_or(-1)
}

fn rescales(c: &TestCluster, hpa: &str) -> Vec<String> {
    c.items(&format!(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{hpa},reason%3DSuccessfulRescale"
    ))
    .iter()
    .filter_map(|e| e["message"].as_str().map(String::from))
    .collect()
}

/// `kubectl top` rows (header first), cells split on whitespace.
fn top_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn kubectl_top_and_an_hpa_scale_2_to_6_to_2_as_load_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    deployment(&c, dir.path(), "web", 2);
    // Each pod of the image uses 150m of its 100m request, as the runtime config says.
    let rows = eventually(T, "kubectl top pods shows both pods", || {
        let o = c.kubectl(&["top", "pods"]);
        let rows = top_rows(&stdout(&o));
        (o.status.success() && rows.len() == 3).then_some(rows)
    });
    assert_eq!(rows[0], ["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    assert!(
        rows[1..].iter().all(|r| r[1] == "150m" && r[2] == "32Mi"),
        "{rows:?}"
    );
    let nodes = top_rows(&ok(&c.kubectl(&["top", "nodes"])));
    assert_eq!(
        nodes[0],
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    );
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // Node usage: its pods plus the system's share (50m, 400Mi) of 4 cores.
    let total: i64 = nodes[1..]
        .iter()
        .map(|r| r[1].trim_end_matches('m').parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 2 * 50 + 2 * 150, "{nodes:?}");

    // kubectl autoscale creates an autoscaling/v1 HPA (protobuf).
    assert_eq!(
        ok(&c.kubectl(&[
            "autoscale",
            "deployment",
            "web",
            "--cpu-percent=50",
            "--min=2",
            "--max=6"
        ]))
        .trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );
    // 150% against 50%: three times the pods, through 4 (a scale-up at most doubles).
    eventually(T, "scaled to 6", || {
        (replicas(&c, "web") == 6).then_some(())
    });
    let up = "reason: cpu resource utilization (percentage of request) above target";
    eventually(T, "the two rescale events", || {
        let events = rescales(&c, "web");
        (events.contains(&format!("New size: 4; {up}"))
            && events.contains(&format!("New size: 6; {up}")))
        .then_some(())
    });
    let row = eventually(T, "kubectl get hpa shows the measurement", || {
        let out = ok(&c.kubectl(&["get", "hpa", "web"]));
        let row: Vec<String> = out
            .lines()
            .nth(1)?
            .split_whitespace()
            .map(String::from)
            .collect();
        (row[3..7] == ["150%/50%", "2", "6", "6"]).then_some(row)
    });
    assert_eq!(row[..3], ["web", "Deployment/web", "cpu:"]);
    let describe = ok(&c.kubectl(&["describe", "hpa", "web"]));
    assert!(
        describe.contains("resource cpu on pods  (as a percentage of request):  150% (150m) / 50%"),
        "{describe}"
    );
    assert!(describe.contains("ValidMetricFound"), "{describe}");
    // The same object through autoscaling/v1.
    let (code, v1) = c.get("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web");
    assert_eq!(code, 200);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 150);

    // The load drops: back to the minimum once the 5 s window has passed.
    load_config(&dir.path().join("rt.yaml"), "10m");
    eventually(T, "scaled back to 2", || {
        (replicas(&c, "web") == 2).then_some(())
    });
    eventually(T, "the scale-down event", || {
        rescales(&c, "web")
            .contains(&"New size: 2; reason: All metrics below target".to_string())
            .then_some(())
    });
    let hpa = eventually(T, "the status follows", || {
        let (_, hpa) = c.get(&format!("{HPAS}/web"));
        (hpa["status"]["currentReplicas"] == 2).then_some(hpa)
    });
    assert_eq!(
        hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        10
    );
}

#[test]
fn hpa_behavior_conditions_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    deployment(&c, dir.path(), "slow", 2);
    // At most one pod more a minute: 2 -> 3 and held there, ScalingLimited says why.
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "slow"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "slow"},
            "minReplicas": 2, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}});
    let (code, created) = c.post(HPAS, &hpa);
    assert_eq!(code, 201, "{created}");
    // Defaults fill the rest of the rules as Kubernetes does.
    assert_eq!(
        created["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        0
    );
    assert_eq!(
        created["spec"]["behavior"]["scaleDown"]["policies"][0]["type"],
        "Percent"
    );
    assert!(created["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"].is_null());
    eventually(T, "one pod more, and limited", || {
        let (_, h) = c.get(&format!("{HPAS}/slow"));
        let limited = h["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ScalingLimited")?
            .clone();
        (replicas(&c, "slow") == 3 && limited["status"] == "True").then_some(limited)
    });
    let (_, h) = c.get(&format!("{HPAS}/slow"));
    let limited = h["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingLimited")
        .unwrap()
        .clone();
    assert_eq!(limited["reason"], "ScaleUpLimit");
    assert_eq!(
        limited["message"],
        "the desired replica count is increasing faster than the maximum scale rate"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(replicas(&c, "slow"), 3, "the policy holds for its period");

    // A target that does not exist: AbleToScale False with the reason.
    let (code, _) = c.post(
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
        &json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "ghost"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost"}, "maxReplicas": 3}}),
    );
    assert_eq!(code, 201);
    let able = eventually(T, "AbleToScale is False", || {
        let (_, h) = c.get(&format!("{HPAS}/ghost"));
        h["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "AbleToScale" && c["status"] == "False")
            .cloned()
    });
    assert_eq!(able["reason"], "FailedGetScale");
    assert_eq!(
        able["message"],
        "the HPA controller was unable to get the target's current scale: deployments.apps \"ghost\" not found"
    );
    // v1 with no target: CPU at 80 %, as Kubernetes defaults it.
    let (_, g) = c.get(&format!("{HPAS}/ghost"));
    assert_eq!(
        g["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    // A merge patch through v1 changes the v2 metric.
    let (code, _) = c.patch(
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/ghost",
        &json!({"spec": {"targetCPUUtilizationPercentage": 70}}),
    );
    assert_eq!(code, 200);
    let out = ok(&c.kubectl(&["get", "hpa", "ghost"]));
    assert!(out.contains("cpu: <unknown>/70%"), "{out}");

    // Bad input: every problem named, nothing stored.
    let bad = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": ""}, "minReplicas": 5, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000, "policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}}});
    let (code, status) = c.post(HPAS, &bad);
    assert_eq!(code, 422, "{status}");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in [
        "spec.scaleTargetRef.name",
        "spec.maxReplicas",
        "spec.metrics[0].resource.target.averageUtilization",
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
        "spec.behavior.scaleDown.policies[0].value",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    assert_eq!(c.get(&format!("{HPAS}/bad")).0, 404);
    let (code, status) = c.post(
        HPAS,
        &json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": "many"}}),
    );
    assert_eq!(code, 400, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("spec.maxReplicas"));
}

#[test]
fn resource_metrics_api_follows_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    deployment(&c, dir.path(), "m", 1);
    let pod = eventually(T, "a pod with metrics", || {
        let items =
            c.items("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dm");
        items.first().cloned()
    });
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        pod["containers"],
        json!([{"name": "app", "usage": {"cpu": "150m", "memory": "32Mi"}}])
    );
    assert_eq!(pod["window"], "15s");
    assert_eq!(pod["metadata"]["labels"]["app"], "m");
    // One pod by name; the pod annotation scripts its load, a ramp from 0 to 1 core.
    ok(&c.kubectl(&[
        "annotate",
        "pod",
        &name,
        "runtime.coxswain.dev/app={cpu: {from: 0, to: 1, overMs: 1000}, memory: 64Mi}",
    ]));
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{name}");
    eventually(T, "the annotation's load", || {
        let (_, v) = c.get(&path);
        (v["containers"][0]["usage"] == json!({"cpu": "1", "memory": "64Mi"})).then_some(())
    });
    let (_, v) = c.get(&path);
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str()),
        (Some("PodMetrics"), Some("metrics.k8s.io/v1beta1"))
    );
    // What metrics-server answers for what it does not have.
    let (code, e) = c.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope");
    assert_eq!(
        (code, e["message"].as_str()),
        (404, Some("pods \"nope\" not found"))
    );
    let (code, e) = c.get("/apis/metrics.k8s.io/v1beta1/nodes/nope");
    assert_eq!(
        (code, e["message"].as_str()),
        (404, Some("node \"nope\" not found"))
    );
    let (code, e) = c.get("/apis/metrics.k8s.io/v1beta1/pods?watch=true");
    assert_eq!(code, 405, "{e}");
    let (code, e) = c.get("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx");
    assert_eq!(code, 400, "{e}");
    let nodes = c.items("/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(nodes.len(), 2);
    // kubectl's Table of pod metrics.
    let out = ok(&c.kubectl(&["get", "podmetrics"]));
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains(&name), "{out}");
    // A selector nothing matches: kubectl says so.
    let o = c.kubectl(&["top", "pods", "-l", "app=none"]);
    assert!(stderr(&o).contains("No resources found"), "{}", stderr(&o));
}
