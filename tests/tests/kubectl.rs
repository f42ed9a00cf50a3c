//! The real kubectl (1.32) against a real cluster, flow by flow, checking what it prints.
//! Each test names the kubectl commands it proves; docs/compatibility.md points here.

use coxswain_testkit::{eventually, ok, stderr, stdout, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn example() -> String {
    format!("{}/../examples/deployment.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn apply_create_configure_unchanged_and_rollout() {
    let c = TestCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ok(&c.kubectl(&["apply", "-f", &example()])).trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        ok(&c.kubectl(&["apply", "-f", &example()])).trim(),
        "deployment.apps/web unchanged"
    );
    let four = std::fs::read_to_string(example())
        .unwrap()
        .replace("replicas: 3", "replicas: 4");
    let f = write(dir.path(), "four.yaml", &four);
    assert_eq!(
        ok(&c.kubectl(&["apply", "-f", &f])).trim(),
        "deployment.apps/web configured"
    );
    let out = ok(&c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]));
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert_eq!(d["spec"]["replicas"], 4);
    // wait --for=condition
    let out = ok(&c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]));
    assert_eq!(out.trim(), "deployment.apps/web condition met");
    // set image goes to a new ReplicaSet; rollout status follows it.
    assert_eq!(
        ok(&c.kubectl(&["set", "image", "deployment/web", "nginx=nginx:1.28"])).trim(),
        "deployment.apps/web image updated"
    );
    ok(&c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]));
    let out = ok(&c.kubectl(&["get", "rs", "-o", "wide"]));
    assert!(
        out.contains("nginx:1.28") && out.contains("nginx:1.27"),
        "{out}"
    );
    // get all lists pods, deployments and replicasets, in server-side columns.
    let out = ok(&c.kubectl(&["get", "all"]));
    for want in [
        "pod/web-",
        "deployment.apps/web",
        "replicaset.apps/web-",
        "UP-TO-DATE",
        "DESIRED",
    ] {
        assert!(out.contains(want), "{want} missing from get all:\n{out}");
    }
}

#[test]
fn label_annotate_patch_and_output_formats() {
    let c = TestCluster::start(1);
    ok(&c.kubectl(&["create", "-f", &example()]));
    assert_eq!(
        ok(&c.kubectl(&["label", "deployment", "web", "tier=front"])).trim(),
        "deployment.apps/web labeled"
    );
    assert_eq!(
        ok(&c.kubectl(&["annotate", "deployment", "web", "note=hi"])).trim(),
        "deployment.apps/web annotated"
    );
    assert_eq!(
        ok(&c.kubectl(&[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#
        ]))
        .trim(),
        "deployment.apps/web patched"
    );
    assert_eq!(
        ok(&c.kubectl(&[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#
        ]))
        .trim(),
        "deployment.apps/web patched"
    );
    assert_eq!(ok(&c.kubectl(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}}}"#])).trim(), "deployment.apps/web patched");
    let out = ok(&c.kubectl(&["get", "deployment", "web", "-o", "jsonpath={.metadata.labels.tier} {.metadata.annotations.note} {.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].terminationMessagePath}"]));
    assert_eq!(out, "front hi 2 nginx:1.29 /dev/termination-log");
    let out = ok(&c.kubectl(&["get", "deployment", "-l", "tier=front", "-o", "name"]));
    assert_eq!(out.trim(), "deployment.apps/web");
    let out = ok(&c.kubectl(&[
        "get",
        "deployment",
        "web",
        "-o",
        "custom-columns=NAME:.metadata.name,GEN:.metadata.generation",
    ]));
    assert_eq!(
        out.lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["web", "4"])
    );
    let out = ok(&c.kubectl(&["get", "deployment", "web", "-o", "json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "Deployment");
    let out = ok(&c.kubectl(&["get", "pods", "-A", "--show-labels"]));
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(
        out.lines()
            .skip(1)
            .all(|l| l.starts_with("default") && l.contains("app=web")),
        "{out}"
    );
    eventually(T, "pods Running for the field selector", || {
        let out = stdout(&c.kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running,spec.nodeName=node-1",
            "-o",
            "name",
        ]));
        (out.lines().count() == 2).then_some(())
    });
    let out = ok(&c.kubectl(&["get", "events", "--sort-by=.lastTimestamp"]));
    assert!(
        out.contains("Scheduled") && out.contains("ScalingReplicaSet"),
        "{out}"
    );
}

#[test]
fn errors_print_as_against_a_real_cluster() {
    let c = TestCluster::apiserver_only(&[]);
    let dir = tempfile::tempdir().unwrap();
    ok(&c.kubectl(&["create", "-f", &example()]));
    let out = c.kubectl(&["create", "-f", &example()]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), format!("Error from server (AlreadyExists): error when creating \"{}\": deployments.apps \"web\" already exists", example()));
    let bad = std::fs::read_to_string(example())
        .unwrap()
        .replace("name: web", "name: bad")
        .replace("replicas: 3", "replicas: -1");
    let f = write(dir.path(), "bad.yaml", &bad);
    let out = c.kubectl(&["create", "-f", &f]);
    assert_eq!(stderr(&out).trim(), "The Deployment \"bad\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
    let out = c.kubectl(&["delete", "pod", "nope"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
    let out = c.kubectl(&["scale", "deployment", "nope", "--replicas=2"]);
    assert!(
        stderr(&out).contains("deployments.apps \"nope\" not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn delete_cascades_orphan_foreground_and_namespaces() {
    let c = TestCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    ok(&c.kubectl(&["create", "-f", &example()]));
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]));
    // Orphan: the ReplicaSet and pods stay, without the owner reference.
    assert_eq!(
        ok(&c.kubectl(&["delete", "deployment", "web", "--cascade=orphan"])).trim(),
        "deployment.apps \"web\" deleted"
    );
    let rss = c.items("/apis/apps/v1/namespaces/default/replicasets");
    assert_eq!(rss.len(), 1);
    assert!(
        rss[0]["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{}",
        rss[0]
    );
    assert_eq!(c.items("/api/v1/namespaces/default/pods").len(), 3);
    // Foreground: the ReplicaSet goes only after its pods, and kubectl waits for it.
    let rs = rss[0]["metadata"]["name"].as_str().unwrap().to_string();
    ok(&c.kubectl(&["delete", "rs", &rs, "--cascade=foreground"]));
    assert!(c
        .items("/apis/apps/v1/namespaces/default/replicasets")
        .is_empty());
    assert!(
        c.items("/api/v1/namespaces/default/pods").is_empty(),
        "pods went before their owner"
    );
    // Namespace deletion removes everything in it.
    let ns = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    );
    ok(&c.kubectl(&["create", "-f", &ns]));
    ok(&c.kubectl(&["create", "-n", "shop", "-f", &example()]));
    eventually(T, "pods in shop", || {
        (c.items("/api/v1/namespaces/shop/pods").len() == 3).then_some(())
    });
    assert_eq!(
        ok(&c.kubectl(&["delete", "namespace", "shop"])).trim(),
        "namespace \"shop\" deleted"
    );
    let (code, _) = c.get("/api/v1/namespaces/shop");
    assert_eq!(code, 404);
    assert!(c
        .items("/api/v1/pods?fieldSelector=metadata.namespace%3Dshop")
        .is_empty());
}

#[test]
fn cordon_drain_describe_and_logs() {
    let c = TestCluster::start(2);
    ok(&c.kubectl(&["create", "-f", &example()]));
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]));
    assert_eq!(
        ok(&c.kubectl(&["cordon", "node-1"])).trim(),
        "node/node-1 cordoned"
    );
    let out = ok(&c.kubectl(&["get", "nodes"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("node-1") && l.contains("Ready,SchedulingDisabled")),
        "{out}"
    );
    let out = ok(&c.kubectl(&["drain", "node-1", "--ignore-daemonsets", "--timeout=30s"]));
    assert!(out.contains("node/node-1 drained"), "{out}");
    eventually(T, "all pods on node-2", || {
        let pods = c.items("/api/v1/namespaces/default/pods");
        (pods.len() == 3 && pods.iter().all(|p| p["spec"]["nodeName"] == "node-2")).then_some(())
    });
    assert_eq!(
        ok(&c.kubectl(&["uncordon", "node-1"])).trim(),
        "node/node-1 uncordoned"
    );
    let out = ok(&c.kubectl(&["describe", "deployment", "web"]));
    assert!(
        out.contains("Replicas:") && out.contains("3 desired") && out.contains("NewReplicaSet:"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["describe", "node", "node-2"]));
    assert!(
        out.contains("Non-terminated Pods:") && out.contains("(3 in total)"),
        "{out}"
    );
    let pod = c.items("/api/v1/namespaces/default/pods")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ok(&c.kubectl(&["describe", "pod", &pod]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("Status:") && l.trim_end().ends_with("Running")),
        "{out}"
    );
    assert!(out.contains("Successfully assigned"), "{out}");
    let out = ok(&c.kubectl(&["logs", "deploy/web", "--tail=2"]));
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn generators_send_protobuf_and_it_is_understood() {
    let c = TestCluster::start(1);
    assert_eq!(
        ok(&c.kubectl(&["create", "namespace", "shop"])).trim(),
        "namespace/shop created"
    );
    assert_eq!(
        ok(&c.kubectl(&[
            "create",
            "deployment",
            "hello",
            "--image=nginx:1.27",
            "--replicas=2",
            "-n",
            "shop"
        ]))
        .trim(),
        "deployment.apps/hello created"
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/shop/deployments/hello");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "hello");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    eventually(T, "2 Running pods in shop", || {
        (c.items("/api/v1/namespaces/shop/pods?fieldSelector=status.phase%3DRunning")
            .len()
            == 2)
            .then_some(())
    });
    assert_eq!(
        ok(&c.kubectl(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "--from-literal=level=3",
            "-n",
            "shop"
        ]))
        .trim(),
        "configmap/settings created"
    );
    let (_, cm) = c.get("/api/v1/namespaces/shop/configmaps/settings");
    assert_eq!(cm["data"], json!({"mode": "fast", "level": "3"}));
    let out = ok(&c.kubectl(&["get", "cm", "-n", "shop"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("settings") && l.split_whitespace().nth(1) == Some("2")),
        "{out}"
    );
    // --replicas=0 is a pointer field: zero is kept, not defaulted to 1.
    ok(&c.kubectl(&[
        "create",
        "deployment",
        "zero",
        "--image=nginx",
        "--replicas=0",
        "-n",
        "shop",
    ]));
    let (_, z) = c.get("/apis/apps/v1/namespaces/shop/deployments/zero");
    assert_eq!(z["spec"]["replicas"], 0);
}

#[test]
fn server_side_apply_owns_fields_and_reports_conflicts() {
    let c = TestCluster::apiserver_only(&[]);
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(example()).unwrap();
    let with_tier = base.replace(
        "    app: web\nspec:",
        "    app: web\n    tier: front\nspec:",
    );
    let f1 = write(dir.path(), "tier.yaml", &with_tier);
    assert_eq!(
        ok(&c.kubectl(&["apply", "--server-side", "-f", &f1])).trim(),
        "deployment.apps/web serverside-applied"
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    let mf = &d["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert!(
        mf["fieldsV1"]["f:metadata"]["f:labels"]["f:tier"].is_object(),
        "{mf}"
    );
    // Dropping a field from the configuration removes it (nobody else owns it).
    assert_eq!(
        ok(&c.kubectl(&["apply", "--server-side", "-f", &example()])).trim(),
        "deployment.apps/web serverside-applied"
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert!(
        d["metadata"]["labels"].get("tier").is_none(),
        "{}",
        d["metadata"]
    );
    // Another manager changes replicas; applying a different value conflicts.
    ok(&c.kubectl(&["scale", "deployment", "web", "--replicas=5"]));
    let out = c.kubectl(&["apply", "--server-side", "-f", &example()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        ),
        "{}",
        stderr(&out)
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(
        d["spec"]["replicas"], 5,
        "a conflicting apply changes nothing"
    );
    ok(&c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &example(),
    ]));
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(d["spec"]["replicas"], 3);
    // Apply without a field manager is refused, as in Kubernetes.
    let (code, s) = c.send_body(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/apply-patch+yaml",
        "{}",
    );
    assert_eq!(code, 422, "{s}");
}

#[test]
fn create_from_a_directory_and_stdin_edit_and_watch() {
    let c = TestCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a-ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    );
    let multi = format!(
        "{}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\n  namespace: shop\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        std::fs::read_to_string(example()).unwrap().replace("name: web", "name: web\n  namespace: shop")
    );
    write(dir.path(), "b-apps.yaml", &multi);
    let out = ok(&c.kubectl(&["create", "-f", &dir.path().display().to_string()]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "namespace/shop created",
            "deployment.apps/web created",
            "pod/solo created"
        ]
    );
    // stdin
    let mut child = std::process::Command::new("kubectl")
        .args(["--server", &c.server, "create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: piped\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out).trim(), "namespace/piped created");
    // edit, with a scripted editor
    let out = std::process::Command::new("kubectl")
        .args([
            "--server",
            &c.server,
            "-n",
            "shop",
            "edit",
            "deployment",
            "web",
        ])
        .env("EDITOR", "sed -i s/replicas:.3/replicas:\\ 1/")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "deployment.apps/web edited",
        "{}",
        stderr(&out)
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!(d["spec"]["replicas"], 1);
    // get -w prints the list, then rows as pods change
    eventually(T, "pods Running in shop", || {
        (c.items("/api/v1/namespaces/shop/pods?fieldSelector=status.phase%3DRunning")
            .len()
            == 2)
            .then_some(())
    });
    let out = c.kubectl(&["get", "pods", "-n", "shop", "-w", "--request-timeout=2s"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("NAME") && text.contains("solo") && text.contains("Running"),
        "{text}"
    );
    let out = ok(&c.kubectl(&["api-versions"]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "apiregistration.k8s.io/v1",
            "apps/v1",
            "autoscaling/v1",
            "autoscaling/v2",
            "batch/v1",
            "coordination.k8s.io/v1",
            "discovery.k8s.io/v1",
            "events.k8s.io/v1",
            "metrics.k8s.io/v1beta1",
            "networking.k8s.io/v1",
            "policy/v1",
            "rbac.authorization.k8s.io/v1",
            "scheduling.k8s.io/v1",
            "storage.k8s.io/v1",
            "v1"
        ]
    );
    let rs = c.items("/apis/apps/v1/namespaces/shop/replicasets")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ok(&c.kubectl(&["describe", "rs", &rs, "-n", "shop"]));
    assert!(
        out.contains("Controlled By:  Deployment/web") && out.contains("SuccessfulCreate"),
        "{out}"
    );
}

#[test]
fn unknown_fields_are_refused_in_strict_mode_and_warned_otherwise() {
    let c = TestCluster::apiserver_only(&[]);
    let dir = tempfile::tempdir().unwrap();
    let typo = std::fs::read_to_string(example())
        .unwrap()
        .replace("replicas: 3", "replicax: 3");
    let f = write(dir.path(), "typo.yaml", &typo);
    let out = c.kubectl(&["create", "-f", &f]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("strict decoding error: unknown field \"spec.replicax\""),
        "{}",
        stderr(&out)
    );
    assert!(c
        .items("/apis/apps/v1/namespaces/default/deployments")
        .is_empty());
    let out = c.kubectl(&["create", "--validate=warn", "-f", &f]);
    assert_eq!(ok(&out).trim(), "deployment.apps/web created");
    assert!(
        stderr(&out).contains("Warning: unknown field \"spec.replicax\""),
        "{}",
        stderr(&out)
    );
    let (_, d) = c.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert!(
        d["spec"].get("replicax").is_none(),
        "unknown fields are never stored: {}",
        d["spec"]
    );
    ok(&c.kubectl(&["delete", "deployment", "web"]));
    // A client-side apply patch carries $setElementOrder directives: they are not unknown fields.
    let four = std::fs::read_to_string(example())
        .unwrap()
        .replace("nginx:1.27", "nginx:1.28");
    let f4 = write(dir.path(), "four.yaml", &four);
    ok(&c.kubectl(&["apply", "-f", &example()]));
    let out = c.kubectl(&["apply", "-f", &f4]);
    assert_eq!(ok(&out).trim(), "deployment.apps/web configured");
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
}
