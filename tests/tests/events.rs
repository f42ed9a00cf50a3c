//! Events through both APIs (core/v1 and events.k8s.io/v1 serve the same objects, each in
//! its own shape) and v1 ComponentStatus, on the real binaries with the real kubectl.

use coxswain_testkit::{eventually, ok, stderr, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const CORE: &str = "/api/v1/namespaces/default/events";
const NEW: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn new_style(name: &str) -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
        "eventTime": "2026-11-30T10:00:00.000000Z", "type": "Warning", "reason": "BackOff",
        "action": "Pulling", "note": "pulling the image failed",
        "reportingController": "example.com/operator", "reportingInstance": "operator-0",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web-0", "apiVersion": "v1"}})
}

#[test]
fn events_are_one_resource_served_by_both_apis() {
    let c = TestCluster::start(0);
    // Written through events.k8s.io/v1 (as client-go's and kube-rs' recorders do).
    let (code, e) = c.post(NEW, &new_style("op.1"));
    assert_eq!(code, 201, "{e}");
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["note"], "pulling the image failed");
    assert_eq!(e["regarding"]["name"], "web-0");
    assert_eq!(e["reportingController"], "example.com/operator");
    assert!(e.get("deprecatedCount").is_none(), "{e}");
    // Read through core/v1: the same object in core's shape.
    let (_, core) = c.get(&format!("{CORE}/op.1"));
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "pulling the image failed");
    assert_eq!(core["involvedObject"]["name"], "web-0");
    assert_eq!(core["reportingComponent"], "example.com/operator");
    assert!(
        core.get("note").is_none() && core.get("regarding").is_none(),
        "{core}"
    );
    // Written through core/v1, read through events.k8s.io/v1.
    let old = json!({"metadata": {"name": "old.1"}, "reason": "Started", "message": "started",
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
        "source": {"component": "kubelet", "host": "node-1"}, "count": 3,
        "firstTimestamp": "2026-11-30T10:00:00Z", "lastTimestamp": "2026-11-30T10:05:00Z"});
    assert_eq!(c.post(CORE, &old).0, 201);
    let (_, e) = c.get(&format!("{NEW}/old.1"));
    assert_eq!(e["deprecatedCount"], 3);
    assert_eq!(e["deprecatedSource"]["component"], "kubelet");
    assert_eq!(e["eventTime"], Value::Null);
    assert_eq!(e["note"], "started");
    // Lists, field selectors by each API's names, patches at each version.
    let names = |path: &str| -> Vec<String> {
        c.items(path)
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&format!("{NEW}?fieldSelector=regarding.name%3Dweb-0")),
        ["op.1"]
    );
    assert_eq!(
        names(&format!("{CORE}?fieldSelector=involvedObject.name%3Dweb-1")),
        ["old.1"]
    );
    assert_eq!(
        names(&format!(
            "{NEW}?fieldSelector=reportingController%3Dexample.com/operator"
        )),
        ["op.1"]
    );
    let (code, p) = c.patch(&format!("{NEW}/old.1"), &json!({"note": "started again"}));
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["note"], "started again");
    assert_eq!(
        c.get(&format!("{CORE}/old.1")).1["message"],
        "started again"
    );
    // events.k8s.io's own rules, with Kubernetes' field names.
    let mut bad = new_style("bad");
    bad.as_object_mut().unwrap().remove("eventTime");
    bad["deprecatedCount"] = json!(2);
    let (code, st) = c.post(NEW, &bad);
    assert_eq!(code, 422, "{st}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("eventTime: Required value")
            && msg.contains("count: Invalid value: \"\": needs to be unset"),
        "{msg}"
    );
    let mut bad = new_style("bad");
    bad.as_object_mut().unwrap().remove("reportingController");
    let (code, st) = c.post(NEW, &bad);
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("reportingComponent: Required value"),
        "{st}"
    );
    assert_eq!(c.get(&format!("{CORE}/bad")).0, 404, "nothing stored");
    // kubectl: both resources, the same columns.
    let out = ok(&c.kubectl(&["get", "events.v1.events.k8s.io", "-o", "wide"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..5],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT"],
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("op.1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("pod/web-0") && row.contains("example.com/operator, operator-0"),
        "{row}"
    );
    let out = ok(&c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web-1",
    ]));
    assert!(
        out.contains("pod/web-1") && out.contains("started again"),
        "{out}"
    );
    // A watch through events.k8s.io/v1 sees events in its shape.
    let mut e = new_style("live");
    e["note"] = json!("live one");
    assert_eq!(c.post(NEW, &e).0, 201);
    let lines = c.watch_lines(
        &format!("{NEW}?watch=true&fieldSelector=metadata.name%3Dlive"),
        T,
        |l| !l.is_empty(),
    );
    assert_eq!(lines[0]["object"]["note"], "live one", "{lines:?}");
    assert_eq!(lines[0]["object"]["apiVersion"], "events.k8s.io/v1");
}

#[test]
fn component_statuses_say_which_components_are_there() {
    let mut c = TestCluster::start(0);
    let row = |out: &str, name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let out = eventually(T, "every component Healthy", || {
        let o = c.kubectl(&["get", "componentstatuses"]);
        let out = ok(&o);
        assert!(
            stderr(&o).contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
            "{}",
            stderr(&o)
        );
        (out.matches("Healthy").count() == 3 && !out.contains("Unhealthy")).then_some(out)
    });
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    assert_eq!(row(&out, "scheduler"), ["scheduler", "Healthy", "ok"]);
    assert_eq!(
        row(&out, "controller-manager"),
        ["controller-manager", "Healthy", "ok"]
    );
    assert_eq!(row(&out, "sled-0"), ["sled-0", "Healthy", "ok"]);
    // The scheduler stops: it is no longer there.
    c.kill("scheduler");
    eventually(T, "the scheduler Unhealthy", || {
        let out = ok(&c.kubectl(&["get", "cs"]));
        (row(&out, "scheduler")[1] == "Unhealthy").then_some(())
    });
    let (code, cs) = c.get("/api/v1/componentstatuses/scheduler");
    assert_eq!(code, 200);
    assert_eq!(cs["conditions"][0]["status"], "False");
    assert_eq!(
        cs["conditions"][0]["message"],
        "no kube-scheduler is watching the API server"
    );
    let (code, st) = c.get("/api/v1/componentstatuses/nope");
    assert_eq!(code, 500);
    assert_eq!(st["message"], "Component not found: nope");
    let (code, _) = c.post(
        "/api/v1/componentstatuses",
        &json!({"metadata": {"name": "x"}}),
    );
    assert_eq!(code, 405);
    let (_, list) = c.get("/api/v1");
    let cs = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "componentstatuses")
        .cloned();
    assert_eq!(cs.unwrap()["verbs"], json!(["get", "list"]));
}

#[test]
fn component_writes_are_in_managed_fields_only_when_asked() {
    // The managers of the pod a ReplicaSet (the controller manager) creates.
    let managers = |c: &TestCluster| -> Vec<String> {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        assert_eq!(
            c.post("/apis/apps/v1/namespaces/default/replicasets", &rs)
                .0,
            201
        );
        let p = eventually(T, "the pod Running", || {
            let pods = c.items("/api/v1/namespaces/default/pods");
            pods.into_iter().find(|p| p["status"]["phase"] == "Running")
        });
        p["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e["manager"].as_str().unwrap_or(""),
                    e["operation"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    // By default Coxswain's components are not tracked (a third of startup time).
    let c = TestCluster::start(1);
    let m = managers(&c);
    assert!(m.is_empty(), "{m:?}");
    drop(c);
    // Asked to, the API server records them as Kubernetes does.
    let c = TestCluster::with(coxswain_testkit::Options {
        nodes: 1,
        apiserver_args: vec!["--untracked-field-managers=".into()],
        ..Default::default()
    });
    let m = managers(&c);
    assert_eq!(m, ["kube-controller-manager Update"]);
}
