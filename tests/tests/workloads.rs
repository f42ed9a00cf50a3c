//! Workload kinds besides Deployments and Jobs on the real binaries, with the real kubectl:
//! ReplicationControllers.

use coxswain_testkit::{eventually, ok, stderr, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const PODS: &str = "/api/v1/namespaces/default/pods";

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
    // A budget without a selector covers nothing (policy/v1): evictions go through.
    let (code, _) = c.post(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "none"},
            "spec": {"maxUnavailable": 0}}),
    );
    assert_eq!(code, 201);
    eventually(T, "one disruption allowed again", || {
        (c.get(pdb).1["status"]["disruptionsAllowed"] == 1).then_some(())
    });
    let victim = running(&c, "app%3Dweb")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, s) = c.post(
        &format!("{PODS}/{victim}/eviction"),
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}}),
    );
    assert_eq!(code, 201, "only the budget with a selector counts: {s}");
    // Validation: not both.
    let (code, s) = c.post(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "both"},
            "spec": {"minAvailable": 1, "maxUnavailable": "50%"}}),
    );
    assert_eq!(code, 422, "{s}");
}

const STS: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.24
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

fn ready_at(p: &Value) -> Option<String> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
}

fn image_of(c: &TestCluster, pod: &str) -> String {
    c.get(&format!("{PODS}/{pod}")).1["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn statefulsets_start_in_order_update_from_the_top_and_roll_back() {
    let c = TestCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sts.yaml");
    std::fs::write(&f, STS).unwrap();
    assert_eq!(
        ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()])).trim(),
        "statefulset.apps/web created"
    );
    // OrderedReady: at every sample the pods are a prefix web-0..web-k, and web-(k+1) is
    // created only after web-k is Ready.
    eventually(T, "3 ready pods, in order", || {
        let pods = c.items(&format!("{PODS}?labelSelector=app%3Dnginx"));
        let mut names: Vec<String> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        let prefix: Vec<String> = (0..names.len()).map(|i| format!("web-{i}")).collect();
        assert_eq!(names, prefix, "pods appear in ordinal order");
        for i in 1..pods.len() {
            let next = pods
                .iter()
                .find(|p| p["metadata"]["name"] == format!("web-{i}").as_str())
                .unwrap();
            let prev = pods
                .iter()
                .find(|p| p["metadata"]["name"] == format!("web-{}", i - 1).as_str())
                .unwrap();
            let prev_ready = ready_at(prev).expect("web-(k) is Ready before web-(k+1) exists");
            assert!(next["metadata"]["creationTimestamp"].as_str().unwrap() >= prev_ready.as_str());
        }
        (pods.len() == 3 && pods.iter().all(|p| ready_at(p).is_some())).then_some(())
    });
    let (_, p) = c.get(&format!("{PODS}/web-1"));
    assert_eq!(
        (
            p["spec"]["hostname"].as_str(),
            p["spec"]["subdomain"].as_str()
        ),
        (Some("web-1"), Some("nginx"))
    );
    assert_eq!(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(
        p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(
        p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-1"
    );
    let claims: Vec<String> = c
        .items("/api/v1/namespaces/default/persistentvolumeclaims")
        .iter()
        .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(claims.len(), 3, "{claims:?}");
    for i in 0..3 {
        assert!(claims.contains(&format!("www-web-{i}")));
    }
    // Each claim was provisioned (class `standard`) for its pod's node and is Bound.
    for i in 0..3 {
        let (_, pvc) = c.get(&format!(
            "/api/v1/namespaces/default/persistentvolumeclaims/www-web-{i}"
        ));
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
        let (_, p) = c.get(&format!("/api/v1/namespaces/default/pods/web-{i}"));
        assert_eq!(
            pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            p["spec"]["nodeName"]
        );
    }
    let out = ok(&c.kubectl(&["rollout", "status", "sts/web", "--timeout=60s"]));
    assert!(
        out.trim_end()
            .ends_with("partitioned roll out complete: 3 new pods have been updated..."),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "sts"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["web", "3/3"], "{out}");

    // A new template rolls from the highest ordinal down, one pod at a time.
    ok(&c.kubectl(&[
        "set",
        "image",
        "sts/web",
        "nginx=registry.k8s.io/nginx-slim:0.27",
    ]));
    let mut order: Vec<String> = Vec::new();
    eventually(T, "all pods updated", || {
        for i in (0..3).rev() {
            let n = format!("web-{i}");
            if !order.contains(&n) && image_of(&c, &n).ends_with(":0.27") {
                order.push(n);
            }
        }
        (order.len() == 3).then_some(())
    });
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    ok(&c.kubectl(&["rollout", "status", "sts/web", "--timeout=60s"]));
    let out = ok(&c.kubectl(&["rollout", "history", "sts/web"]));
    assert!(
        out.contains("REVISION") && out.contains("\n1 ") && out.contains("\n2 "),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "controllerrevisions"]));
    assert!(out.contains("statefulset.apps/web"), "{out}");
    // Undo brings back the first template, as revision 3.
    assert_eq!(
        ok(&c.kubectl(&["rollout", "undo", "sts/web"])).trim(),
        "statefulset.apps/web rolled back"
    );
    eventually(T, "rolled back", || {
        (0..3)
            .all(|i| image_of(&c, &format!("web-{i}")).ends_with(":0.24"))
            .then_some(())
    });
    eventually(T, "the old revision renumbered", || {
        let revs = c.items("/apis/apps/v1/namespaces/default/controllerrevisions");
        let mut nums: Vec<i64> = revs
            .iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect();
        nums.sort();
        (nums == [2, 3]).then_some(())
    });

    // Scaling down removes the highest ordinals first; the claims stay (Retain).
    ok(&c.kubectl(&["scale", "sts/web", "--replicas=1"]));
    eventually(T, "only web-0 left", || {
        let pods = c.items(&format!("{PODS}?labelSelector=app%3Dnginx"));
        let names: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        if names.contains(&"web-1") {
            assert!(names.contains(&"web-0"));
        }
        (names == ["web-0"]).then_some(())
    });
    assert_eq!(
        c.items("/api/v1/namespaces/default/persistentvolumeclaims")
            .len(),
        3
    );
    // Deleted with --cascade=orphan and created again: the pods and the revisions are
    // adopted, nothing is created twice.
    let web0 = c.get(&format!("{PODS}/web-0")).1["metadata"]["uid"].clone();
    ok(&c.kubectl(&["delete", "sts", "web", "--cascade=orphan"]));
    eventually(T, "the set is gone", || {
        (c.get("/apis/apps/v1/namespaces/default/statefulsets/web").0 == 404).then_some(())
    });
    ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()]));
    ok(&c.kubectl(&["scale", "sts/web", "--replicas=1"]));
    eventually(T, "web-0 adopted", || {
        let (_, p) = c.get(&format!("{PODS}/web-0"));
        let (_, set) = c.get("/apis/apps/v1/namespaces/default/statefulsets/web");
        (p["metadata"]["ownerReferences"][0]["uid"] == set["metadata"]["uid"]
            && set["status"]["readyReplicas"] == 1)
            .then_some(())
    });
    assert_eq!(
        c.get(&format!("{PODS}/web-0")).1["metadata"]["uid"],
        web0,
        "the same pod"
    );
    // Deleting the set deletes its pods and its revisions.
    ok(&c.kubectl(&["delete", "sts", "web"]));
    eventually(T, "pods and revisions gone", || {
        (c.items(&format!("{PODS}?labelSelector=app%3Dnginx"))
            .is_empty()
            && c.items("/apis/apps/v1/namespaces/default/controllerrevisions")
                .is_empty())
        .then_some(())
    });
    // Only some fields may change.
    std::fs::write(&f, STS.replace("serviceName: nginx", "serviceName: other")).unwrap();
    ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()]));
    let (code, s) = c.patch(
        "/apis/apps/v1/namespaces/default/statefulsets/web",
        &json!({"spec": {"serviceName": "third"}}),
    );
    assert_eq!(code, 422);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("updates to statefulset spec for fields other than"),
        "{s}"
    );
}

const DS: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd
  namespace: kube-system
spec:
  selector:
    matchLabels:
      name: fluentd
  template:
    metadata:
      labels:
        name: fluentd
    spec:
      containers:
      - name: fluentd
        image: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
";

#[test]
fn daemonsets_run_one_pod_per_eligible_node_and_roll() {
    let mut c = TestCluster::start(3);
    let ks_pods = "/api/v1/namespaces/kube-system/pods?labelSelector=name%3Dfluentd";
    ok(&c.kubectl(&["taint", "nodes", "node-3", "dedicated=infra:NoSchedule"]));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ds.yaml");
    std::fs::write(&f, DS).unwrap();
    assert_eq!(
        ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()])).trim(),
        "daemonset.apps/fluentd created"
    );
    let on_nodes = |c: &TestCluster| -> Vec<String> {
        let mut n: Vec<String> = c
            .items(ks_pods)
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    // One pod per node, none on the tainted one.
    eventually(T, "pods on node-1 and node-2", || {
        (on_nodes(&c) == ["node-1", "node-2"]).then_some(())
    });
    let p = &c.items(ks_pods)[0];
    let term = &p["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"]
        [0];
    assert_eq!(term["key"], "metadata.name");
    let tolerations: Vec<&str> = p["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap_or(""))
        .collect();
    assert!(
        tolerations.contains(&"node.kubernetes.io/unschedulable")
            && tolerations.contains(&"node.kubernetes.io/not-ready"),
        "{tolerations:?}"
    );
    eventually(T, "status", || {
        let out = ok(&c.kubectl(&["get", "ds", "-n", "kube-system"]));
        let row: Vec<String> = out
            .lines()
            .nth(1)?
            .split_whitespace()
            .map(String::from)
            .collect();
        (row[..7] == ["fluentd", "2", "2", "2", "2", "2", "<none>"]).then_some(())
    });
    // A new node gets a pod; so does the tainted one once the taint goes.
    c.start_component("node-4");
    eventually(T, "a pod on node-4", || {
        (on_nodes(&c) == ["node-1", "node-2", "node-4"]).then_some(())
    });
    ok(&c.kubectl(&["taint", "nodes", "node-3", "dedicated=infra:NoSchedule-"]));
    eventually(T, "a pod on node-3", || {
        (on_nodes(&c).len() == 4).then_some(())
    });
    ok(&c.kubectl(&[
        "rollout",
        "status",
        "ds/fluentd",
        "-n",
        "kube-system",
        "--timeout=60s",
    ]));
    // RollingUpdate with maxUnavailable 1: at every sample at most one node lacks its pod.
    ok(&c.kubectl(&[
        "set",
        "image",
        "ds/fluentd",
        "-n",
        "kube-system",
        "fluentd=quay.io/fluentd_elasticsearch/fluentd:v2.6.0",
    ]));
    eventually(T, "every pod updated", || {
        let pods = c.items(ks_pods);
        let serving = pods
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count();
        assert!(
            serving >= 3,
            "at most one node without its daemon: {serving} serving"
        );
        let new = pods
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running"
                    && p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("v2.6.0")
            })
            .count();
        (new == 4 && pods.len() == 4).then_some(())
    });
    let out = ok(&c.kubectl(&[
        "rollout",
        "status",
        "ds/fluentd",
        "-n",
        "kube-system",
        "--timeout=60s",
    ]));
    assert!(
        out.trim_end()
            .ends_with("daemon set \"fluentd\" successfully rolled out"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["rollout", "history", "ds/fluentd", "-n", "kube-system"]));
    assert!(out.contains("\n1 ") && out.contains("\n2 "), "{out}");
    // A node that goes loses its pod; deleting the DaemonSet deletes the rest.
    ok(&c.kubectl(&["delete", "node", "node-4"]));
    c.kill("node-4");
    eventually(T, "node-4's pod deleted", || {
        (on_nodes(&c).len() == 3 && c.items(ks_pods).len() == 3).then_some(())
    });
    ok(&c.kubectl(&["delete", "ds", "fluentd", "-n", "kube-system"]));
    eventually(T, "pods gone", || c.items(ks_pods).is_empty().then_some(()));
}

#[test]
fn the_examples_run_and_describe_as_against_kubernetes() {
    let c = TestCluster::start(2);
    let ex = |f: &str| format!("{}/../examples/{f}", env!("CARGO_MANIFEST_DIR"));
    let out = ok(&c.kubectl(&[
        "apply",
        "-f",
        &ex("statefulset.yaml"),
        "-f",
        &ex("job.yaml"),
        "-f",
        &ex("cronjob.yaml"),
        "-f",
        &ex("daemonset.yaml"),
    ]));
    for line in [
        "statefulset.apps/web created",
        "job.batch/pi created",
        "cronjob.batch/hello created",
        "daemonset.apps/fluentd-elasticsearch created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    ok(&c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]));
    assert_eq!(
        ok(&c.kubectl(&[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=60s"
        ]))
        .trim(),
        "job.batch/pi condition met"
    );
    ok(&c.kubectl(&[
        "rollout",
        "status",
        "ds/fluentd-elasticsearch",
        "-n",
        "kube-system",
        "--timeout=60s",
    ]));
    for (what, expect) in [
        (
            vec!["describe", "statefulset", "web"],
            "Pods Status:        2 Running / 0 Waiting / 0 Succeeded / 0 Failed",
        ),
        (
            vec!["describe", "job", "pi"],
            "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed",
        ),
        (
            vec!["describe", "cronjob", "hello"],
            "Schedule:                      * * * * *",
        ),
        (
            vec![
                "describe",
                "ds",
                "fluentd-elasticsearch",
                "-n",
                "kube-system",
            ],
            "Desired Number of Nodes Scheduled: 2",
        ),
        (vec!["describe", "pvc", "www-web-0"], "Status:        Bound"),
    ] {
        let out = ok(&c.kubectl(&what));
        assert!(out.contains(expect), "{what:?}:\n{out}");
    }
    let out = ok(&c.kubectl(&["get", "all"]));
    for name in [
        "statefulset.apps/web",
        "job.batch/pi",
        "cronjob.batch/hello",
        "service/kubernetes",
        "pod/web-0",
    ] {
        assert!(out.contains(name), "{out}");
    }
}

#[test]
fn statefulset_claims_follow_the_retention_policy() {
    let c = TestCluster::start(2);
    let claims = |c: &TestCluster| -> Vec<String> {
        let mut v: Vec<String> = c
            .items("/api/v1/namespaces/default/persistentvolumeclaims")
            .iter()
            .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let sts = STS.replace("replicas: 3", "replicas: 2").replace(
        "  volumeClaimTemplates:",
        "  persistentVolumeClaimRetentionPolicy:\n    whenScaled: Delete\n    whenDeleted: Retain\n  volumeClaimTemplates:",
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sts.yaml");
    std::fs::write(&f, sts).unwrap();
    ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()]));
    ok(&c.kubectl(&["rollout", "status", "sts/web", "--timeout=60s"]));
    assert_eq!(claims(&c), ["www-web-0", "www-web-1"]);
    // whenScaled: Delete - the claim of a pod scaled away goes with it.
    ok(&c.kubectl(&["scale", "sts/web", "--replicas=1"]));
    eventually(T, "www-web-1 deleted", || {
        (claims(&c) == ["www-web-0"]).then_some(())
    });
    // whenDeleted: Retain - deleting the set keeps the claims of the pods it had.
    ok(&c.kubectl(&["delete", "sts", "web"]));
    eventually(T, "pods gone", || {
        c.items(&format!("{PODS}?labelSelector=app%3Dnginx"))
            .is_empty()
            .then_some(())
    });
    assert_eq!(claims(&c), ["www-web-0"]);
    // Changing the policy to whenDeleted: Delete gives the claims to the set.
    std::fs::write(&f, STS.replace("replicas: 3", "replicas: 1").replace(
        "  volumeClaimTemplates:",
        "  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Delete\n  volumeClaimTemplates:",
    ))
    .unwrap();
    ok(&c.kubectl(&["apply", "-f", f.to_str().unwrap()]));
    eventually(T, "the claim owned by the set", || {
        let (_, pvc) = c.get("/api/v1/namespaces/default/persistentvolumeclaims/www-web-0");
        (pvc["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet").then_some(())
    });
    ok(&c.kubectl(&["delete", "sts", "web"]));
    eventually(T, "claims deleted with the set", || {
        claims(&c).is_empty().then_some(())
    });
}

#[test]
fn statefulset_rolling_update_takes_max_unavailable_at_once() {
    let c = TestCluster::start(2);
    // Pods take 1.5 s to stop, so pods being replaced at the same time are seen together.
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "mu"},
        "spec": {"replicas": 4, "podManagementPolicy": "Parallel", "serviceName": "mu",
            "selector": {"matchLabels": {"app": "mu"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
            "template": {"metadata": {"labels": {"app": "mu"},
                    "annotations": {"runtime.coxswain.dev/app": "{stopMs: 1500}"}},
                "spec": {"terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
    let (code, body) = c.post("/apis/apps/v1/namespaces/default/statefulsets", &sts);
    assert_eq!(code, 201, "{body}");
    eventually(T, "4 running", || {
        (running(&c, "app%3Dmu").len() == 4).then_some(())
    });
    ok(&c.kubectl(&["set", "image", "sts/mu", "app=nginx:1.27"]));
    // Until every pod runs the new image: never more than 2 pods missing or not ready, and
    // at some sample 2 at once.
    let mut most = 0;
    eventually(T, "rolled out", || {
        let pods = c.items(&format!("{PODS}?labelSelector=app%3Dmu"));
        let healthy = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && ready_at(p).is_some())
            .count();
        let down = 4usize.saturating_sub(healthy);
        assert!(down <= 2, "at most maxUnavailable pods down: {down}");
        most = most.max(down);
        let done = healthy == 4
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27");
        done.then_some(())
    });
    assert_eq!(most, 2, "two pods were replaced at once");
    // Zero is refused, as Kubernetes does.
    let (code, status) = c.patch(
        "/apis/apps/v1/namespaces/default/statefulsets/mu",
        &json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}}),
    );
    assert_eq!(code, 422, "{status}");
    assert!(status["message"].as_str().unwrap().contains(
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0"
    ));
}
