//! API machinery every resource shares, over raw HTTP against the real API server:
//! `deletecollection`, metadata-only responses (`PartialObjectMetadata`), field selectors on
//! unset booleans, dry runs through the write path, the pod QoS class, and stopping on SIGTERM
//! while clients watch.

use coxswain_testkit::{eventually, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn configmap(name: &str, tier: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": "v"}})
}

fn names(items: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn deletecollection_deletes_what_the_selectors_match() {
    let c = TestCluster::apiserver_only(&[]);
    for (n, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        assert_eq!(c.post(CMS, &configmap(n, tier)).0, 201);
    }
    let (code, out) = c.send_body(
        "DELETE",
        &format!("{CMS}?labelSelector=tier%3Dweb"),
        "application/json",
        "",
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["kind"], "ConfigMapList");
    assert_eq!(names(out["items"].as_array().unwrap()), ["a", "b"]);
    assert_eq!(names(&c.items(CMS)), ["c"]);
    // A field selector, and DeleteOptions in the body with a dry run: nothing goes.
    let (code, out) = c.send_body(
        "DELETE",
        &format!("{CMS}?fieldSelector=metadata.name%3Dc"),
        "application/json",
        r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#,
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(names(out["items"].as_array().unwrap()), ["c"]);
    assert_eq!(names(&c.items(CMS)), ["c"]);
    // Bad selectors are a 400 Status, not a deletion of everything.
    let (code, s) = c.send_body(
        "DELETE",
        &format!("{CMS}?labelSelector=%3D%3D%3D"),
        "application/json",
        "",
    );
    assert_eq!(code, 400, "{s}");
    assert_eq!(s["kind"], "Status");
    assert_eq!(names(&c.items(CMS)), ["c"]);
    // As in Kubernetes: not across all namespaces, and never for namespaces.
    let (code, s) = c.send_body("DELETE", "/api/v1/configmaps", "application/json", "");
    assert_eq!(code, 405, "{s}");
    let (code, s) = c.send_body("DELETE", "/api/v1/namespaces", "application/json", "");
    assert_eq!(code, 405, "{s}");
    assert_eq!(names(&c.items(CMS)), ["c"]);
    let (code, ns) = c.get("/api/v1/namespaces/default");
    assert_eq!(code, 200);
    assert!(ns["metadata"].get("deletionTimestamp").is_none(), "{ns}");
}

#[test]
fn metadata_only_responses() {
    let c = TestCluster::apiserver_only(&[]);
    assert_eq!(c.post(CMS, &configmap("a", "web")).0, 201);
    assert_eq!(c.post(CMS, &configmap("b", "web")).0, 201);
    // get
    let (code, m) = c.get_accept(&format!("{CMS}/a"), META);
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["kind"], "PartialObjectMetadata");
    assert_eq!(m["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(m["metadata"]["name"], "a");
    assert_eq!(m["metadata"]["labels"]["tier"], "web");
    assert!(m.get("data").is_none(), "{m}");
    // list, with paging
    let (code, l) = c.get_accept(&format!("{CMS}?limit=1"), META_LIST);
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert!(l["metadata"]["continue"].is_string(), "{l}");
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "PartialObjectMetadata");
    assert!(items[0].get("data").is_none());
    // patch
    let (code, p) = c.send_accept(
        "PATCH",
        &format!("{CMS}/a"),
        "application/merge-patch+json",
        META,
        r#"{"metadata":{"labels":{"x":"y"}}}"#,
    );
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["kind"], "PartialObjectMetadata");
    assert_eq!(p["metadata"]["labels"]["x"], "y");
    assert!(p.get("data").is_none());
    // watch: the initial state and a change, as metadata
    let lines = c.watch_lines_accept(
        &format!("{CMS}?watch=true&timeoutSeconds=5"),
        META,
        T,
        |l| l.len() >= 2,
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["type"], "ADDED");
        assert_eq!(l["object"]["kind"], "PartialObjectMetadata");
        assert!(l["object"].get("data").is_none(), "{l}");
    }
    let (_, list) = c.get(CMS);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.patch(&format!("{CMS}/b"), &json!({"data": {"k": "w"}}));
    let lines = c.watch_lines_accept(
        &format!("{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=5"),
        META,
        T,
        |l| !l.is_empty(),
    );
    assert_eq!(lines[0]["type"], "MODIFIED", "{lines:?}");
    assert_eq!(lines[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "b");
    // Bookmarks of a metadata watch are PartialObjectMetadata too (client-go decodes them
    // as such).
    let lines = c.watch_lines_accept(
        &format!(
            "{CMS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=10"
        ),
        META,
        T,
        |l| l.iter().any(|e| e["type"] == "BOOKMARK"),
    );
    let bookmark = lines
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert_eq!(
        bookmark["object"]["kind"], "PartialObjectMetadata",
        "{bookmark}"
    );
    assert_eq!(bookmark["object"]["apiVersion"], "meta.k8s.io/v1");
}

#[test]
fn field_selector_on_an_unset_boolean_matches_its_default() {
    let c = TestCluster::apiserver_only(&[]);
    assert_eq!(
        c.post("/api/v1/nodes", &json!({"metadata": {"name": "plain"}}))
            .0,
        201
    );
    assert_eq!(
        c.post(
            "/api/v1/nodes",
            &json!({"metadata": {"name": "cordoned"}, "spec": {"unschedulable": true}})
        )
        .0,
        201
    );
    let sel = |s: &str| names(&c.items(&format!("/api/v1/nodes?fieldSelector={s}")));
    assert_eq!(sel("spec.unschedulable%3Dfalse"), ["plain"]);
    assert_eq!(sel("spec.unschedulable%3Dtrue"), ["cordoned"]);
    assert_eq!(sel("spec.unschedulable!%3Dtrue"), ["plain"]);
}

#[test]
fn dry_runs_go_through_the_write_path() {
    let c = TestCluster::apiserver_only(&[]);
    let (_, d) = c.post(DEPLOYS, &deployment("web", 2));
    let rv = d["metadata"]["resourceVersion"].clone();
    // An update's dry run is merged with the stored object and defaulted ...
    let mut body = deployment("web", 5);
    body["metadata"]["resourceVersion"] = rv.clone();
    let (code, out) = c.put(&format!("{DEPLOYS}/web?dryRun=All"), &body);
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["spec"]["revisionHistoryLimit"], 10, "defaulted: {out}");
    assert_eq!(
        out["metadata"]["uid"], d["metadata"]["uid"],
        "merged: {out}"
    );
    assert_eq!(out["metadata"]["generation"], 2);
    // ... validated ...
    let mut bad = body.clone();
    bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
    let (code, s) = c.put(&format!("{DEPLOYS}/web?dryRun=All"), &bad);
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"].as_str().unwrap().contains("spec.selector"),
        "{s}"
    );
    // ... and needs the object to exist.
    let (code, s) = c.put(
        &format!("{DEPLOYS}/ghost?dryRun=All"),
        &deployment("ghost", 1),
    );
    assert_eq!(code, 404, "{s}");
    // Patch dry runs are validated and defaulted too.
    let (code, s) = c.patch(
        &format!("{DEPLOYS}/web?dryRun=All"),
        &json!({"spec": {"replicas": -1}}),
    );
    assert_eq!(code, 422, "{s}");
    let (code, out) = c.patch(
        &format!("{DEPLOYS}/web?dryRun=All"),
        &json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": null}}}),
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "defaulted: {out}"
    );
    // Nothing of it was stored.
    let (_, now) = c.get(&format!("{DEPLOYS}/web"));
    assert_eq!(now["spec"]["replicas"], 2);
    assert_eq!(now["metadata"]["resourceVersion"], rv);
}

#[test]
fn qos_class_compares_quantities() {
    let c = TestCluster::apiserver_only(&[]);
    let pod = json!({"metadata": {"name": "g"}, "spec": {"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1000m", "memory": "1024Mi"}}}]}});
    let (code, p) = c.post("/api/v1/namespaces/default/pods", &pod);
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    // Init containers count: one without limits makes the pod Burstable.
    let pod = json!({"metadata": {"name": "b"}, "spec": {
        "initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "100m"}}}],
        "containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
    let (code, p) = c.post("/api/v1/namespaces/default/pods", &pod);
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["status"]["qosClass"], "Burstable");
    // Limits without requests: the requests default to them (and the pod is Guaranteed).
    let pod = json!({"metadata": {"name": "l"}, "spec": {"containers": [{"name": "c", "image": "x",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}});
    let (_, p) = c.post("/api/v1/namespaces/default/pods", &pod);
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "64Mi"})
    );
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
}

fn running(c: &TestCluster, app: &str) -> usize {
    c.items(&format!(
        "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}&fieldSelector=status.phase%3DRunning"
    ))
    .len()
}

#[test]
fn sigterm_stops_the_apiserver_while_clients_watch() {
    let mut c = TestCluster::start(1);
    assert_eq!(c.post(DEPLOYS, &deployment("before", 2)).0, 201);
    eventually(T, "2 Running pods", || {
        (running(&c, "before") == 2).then_some(())
    });
    let mut kubectl_watch = c.kubectl_spawn(&["get", "pods", "-w"]);
    // kubectl prints the list, then watches: wait until it has printed the pods.
    let out = kubectl_watch.stdout.take().expect("kubectl's stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    eventually(T, "kubectl get pods -w printed the pods", || {
        printed.extend(rx.try_iter());
        (printed.iter().filter(|l| l.contains("Running")).count() >= 2).then_some(())
    });
    let pods_before = c.items("/api/v1/namespaces/default/pods");
    // Every component holds watches, and so does kubectl.
    let took = c.terminate("apiserver", Duration::from_secs(5));
    let _ = kubectl_watch.kill();
    let _ = kubectl_watch.wait();
    let took = took.expect("the API server exited within 5 s of SIGTERM");
    assert!(took < Duration::from_secs(5), "{took:?}");
    c.start_apiserver();
    // Nothing lost: every pod is back with its uid.
    let pods_after = c.items("/api/v1/namespaces/default/pods");
    let uids = |items: &[Value]| {
        let mut u: Vec<String> = items
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap_or("").to_string())
            .collect();
        u.sort();
        u
    };
    assert_eq!(uids(&pods_after), uids(&pods_before));
    // The controllers, the scheduler and the kubelet resumed their watches.
    assert_eq!(c.post(DEPLOYS, &deployment("after", 2)).0, 201);
    eventually(T, "the new deployment's pods Running", || {
        (running(&c, "after") == 2).then_some(())
    });
    assert_eq!(running(&c, "before"), 2);
}
