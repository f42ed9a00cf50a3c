//! Persistent volumes end to end on the real binaries and the real kubectl: the default
//! `standard` class (WaitForFirstConsumer, the simulated local-path provisioner) provisions a
//! claim for the node the scheduler picked once a pod uses it; static volumes bind to the
//! smallest that fits; a claim that cannot bind keeps its pod Pending with kube-scheduler's
//! message; in-use protection holds a claim while a pod uses it; reclaim policies on delete.

use coxswain_testkit::{eventually, ok, stays, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const PVCS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";
const PVS: &str = "/api/v1/persistentvolumes";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn claim(name: &str, size: &str, class: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

fn pod_with(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

fn volume(name: &str, size: &str, class: &str, node: Option<&str>) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "hostPath": {"path": format!("/mnt/{name}")}}});
    if let Some(node) = node {
        v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
    }
    v
}

fn field(c: &TestCluster, path: &str, pointer: &str) -> Value {
    let (_, v) = c.get(path);
    v.pointer(pointer).cloned().unwrap_or(Value::Null)
}

fn events_for(c: &TestCluster, name: &str) -> Vec<(String, String)> {
    c.items("/api/v1/namespaces/default/events")
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_claim_of_the_default_class_is_provisioned_on_the_node_of_its_first_pod() {
    let c = TestCluster::start(2);
    c.wait_nodes_ready(2);
    let (code, pvc) = c.post(PVCS, &claim("data", "1Gi", None));
    assert_eq!(code, 201, "{pvc}");
    assert_eq!(pvc["spec"]["storageClassName"], "standard");
    assert_eq!(
        pvc["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    // No consumer yet: Pending, and the controller says what it waits for.
    eventually(T, "the WaitForFirstConsumer event", || {
        events_for(&c, "data").into_iter().find(|(r, m)| {
            r == "WaitForFirstConsumer"
                && m == "waiting for first consumer to be created before binding"
        })
    });
    let out = ok(&c.kubectl(&["get", "pvc", "data"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["data", "Pending"], "{out}");
    // A pod using it: scheduled first, then the volume is provisioned for its node.
    let (code, _) = c.post(PODS, &pod_with("app", "data"));
    assert_eq!(code, 201);
    let node = eventually(T, "the pod Running", || {
        let (_, p) = c.get(&format!("{PODS}/app"));
        (p["status"]["phase"] == "Running")
            .then(|| p["spec"]["nodeName"].as_str().unwrap().to_string())
    });
    let (_, pvc) = c.get(&format!("{PVCS}/data"));
    let uid = pvc["metadata"]["uid"].as_str().unwrap();
    let pv_name = format!("pvc-{uid}");
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    assert_eq!(pvc["spec"]["volumeName"], pv_name.as_str());
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
    let ann = &pvc["metadata"]["annotations"];
    assert_eq!(ann["volume.kubernetes.io/selected-node"], node.as_str());
    assert_eq!(
        ann["volume.kubernetes.io/storage-provisioner"],
        "rancher.io/local-path"
    );
    assert_eq!(ann["pv.kubernetes.io/bind-completed"], "yes");
    let (_, pv) = c.get(&format!("{PVS}/{pv_name}"));
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
            ["values"],
        json!([node])
    );
    let reasons: Vec<String> = events_for(&c, "data").into_iter().map(|(r, _)| r).collect();
    for r in [
        "ExternalProvisioning",
        "Provisioning",
        "ProvisioningSucceeded",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    // kubectl shows it as against Kubernetes.
    let out = ok(&c.kubectl(&["get", "pvc", "data"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..6],
        ["data", "Bound", pv_name.as_str(), "1Gi", "RWO", "standard"],
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "pv"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            pv_name.as_str(),
            "1Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "standard"
        ],
        "{out}"
    );
    // A second pod of the same claim goes to the same node (the volume pins it).
    let (code, _) = c.post(PODS, &pod_with("app2", "data"));
    assert_eq!(code, 201);
    let node2 = eventually(T, "the second pod scheduled", || {
        field(&c, &format!("{PODS}/app2"), "/spec/nodeName")
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(node2, node);
    // In use: deleting the claim leaves it Terminating until its pods go.
    ok(&c.kubectl(&["delete", "pvc", "data", "--wait=false"]));
    eventually(T, "the claim Terminating", || {
        let out = ok(&c.kubectl(&["get", "pvc", "data"]));
        out.contains("Terminating").then_some(())
    });
    stays(
        Duration::from_secs(1),
        "the claim kept while pods use it",
        || c.get(&format!("{PVCS}/data")).0 == 200,
    );
    ok(&c.kubectl(&[
        "delete",
        "pod",
        "app",
        "app2",
        "--grace-period=0",
        "--force",
    ]));
    // The claim goes; its volume (policy Delete) is Released and deleted by the provisioner.
    eventually(T, "the claim and its volume gone", || {
        (c.get(&format!("{PVCS}/data")).0 == 404 && c.get(&format!("{PVS}/{pv_name}")).0 == 404)
            .then_some(())
    });
}

#[test]
fn static_volumes_bind_smallest_first_and_unbindable_claims_keep_pods_pending() {
    let c = TestCluster::start(2);
    c.wait_nodes_ready(2);
    for (name, size) in [("pv-small", "1Gi"), ("pv-big", "10Gi"), ("pv-mid", "5Gi")] {
        let (code, v) = c.post(PVS, &volume(name, size, "", None));
        assert_eq!(code, 201, "{v}");
        assert_eq!(
            v["metadata"]["finalizers"],
            json!(["kubernetes.io/pv-protection"])
        );
    }
    eventually(T, "the volumes Available", || {
        c.items(PVS)
            .iter()
            .all(|v| v["status"]["phase"] == "Available")
            .then_some(())
    });
    // class "" (no provisioning): the smallest volume that fits.
    let (code, _) = c.post(PVCS, &claim("two", "2Gi", Some("")));
    assert_eq!(code, 201);
    eventually(T, "the claim Bound to pv-mid", || {
        let (_, p) = c.get(&format!("{PVCS}/two"));
        (p["status"]["phase"] == "Bound").then(|| assert_eq!(p["spec"]["volumeName"], "pv-mid"))
    });
    assert_eq!(
        field(&c, &format!("{PVS}/pv-mid"), "/status/phase"),
        "Bound"
    );
    assert_eq!(
        field(&c, &format!("{PVS}/pv-small"), "/status/phase"),
        "Available"
    );
    // Too big for any volume: Pending with the controller's event, and its pod unschedulable.
    let (code, _) = c.post(PVCS, &claim("huge", "100Gi", Some("")));
    assert_eq!(code, 201);
    eventually(T, "the FailedBinding event", || {
        events_for(&c, "huge").into_iter().find(|(r, m)| {
            r == "FailedBinding" && m == "no persistent volumes available for this claim and no storage class is set"
        })
    });
    let (code, _) = c.post(PODS, &pod_with("waits", "huge"));
    assert_eq!(code, 201);
    let want = "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    eventually(
        T,
        "the pod unschedulable with kube-scheduler's message",
        || {
            let (_, p) = c.get(&format!("{PODS}/waits"));
            (p["status"]["conditions"][0]["message"] == want).then_some(())
        },
    );
    let (code, _) = c.post(PODS, &pod_with("nothing", "missing"));
    assert_eq!(code, 201);
    eventually(T, "the missing claim named", || {
        let (_, p) = c.get(&format!("{PODS}/nothing"));
        (p["status"]["conditions"][0]["message"]
            == "0/2 nodes are available: persistentvolumeclaim \"missing\" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
            .then_some(())
    });
    // A volume that fits arrives: the claim binds and the waiting pod runs.
    let (code, _) = c.post(PVS, &volume("pv-huge", "200Gi", "", None));
    assert_eq!(code, 201);
    eventually(T, "the waiting pod Running", || {
        (field(&c, &format!("{PODS}/waits"), "/status/phase") == "Running").then_some(())
    });
    assert_eq!(
        field(&c, &format!("{PVCS}/huge"), "/spec/volumeName"),
        "pv-huge"
    );
    // Retain: the claim deleted, its volume Released and kept with its claim shown.
    ok(&c.kubectl(&["delete", "pvc", "two"]));
    eventually(T, "pv-mid Released", || {
        (field(&c, &format!("{PVS}/pv-mid"), "/status/phase") == "Released").then_some(())
    });
    let out = ok(&c.kubectl(&["get", "pv", "pv-mid"]));
    assert!(
        out.contains("Retain") && out.contains("Released") && out.contains("default/two"),
        "{out}"
    );
    // A new claim does not get a Released volume.
    let (code, _) = c.post(PVCS, &claim("again", "2Gi", Some("")));
    assert_eq!(code, 201);
    eventually(T, "the new claim on pv-big", || {
        (field(&c, &format!("{PVCS}/again"), "/spec/volumeName") == "pv-big").then_some(())
    });
    // A volume reserved for a claim by name (claimRef without uid) goes to it, not the
    // smallest one that fits; a claimRef must name its claim.
    let mut reserved = volume("reserved", "50Gi", "", None);
    reserved["spec"]["claimRef"] = json!({"namespace": "default"});
    let (code, st) = c.post(PVS, &reserved);
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("spec.claimRef.name: Required value"),
        "{st}"
    );
    reserved["spec"]["claimRef"]["name"] = json!("mine");
    assert_eq!(c.post(PVS, &reserved).0, 201);
    assert_eq!(c.post(PVCS, &claim("mine", "1Gi", Some(""))).0, 201);
    eventually(T, "the claim on the volume reserved for it", || {
        (field(&c, &format!("{PVCS}/mine"), "/spec/volumeName") == "reserved").then_some(())
    });
    // A claim naming a volume too small for it.
    let mut named = claim("named", "5Gi", Some(""));
    named["spec"]["volumeName"] = json!("pv-small");
    assert_eq!(c.post(PVCS, &named).0, 201);
    eventually(T, "the VolumeMismatch event", || {
        events_for(&c, "named").into_iter().find(|(r, m)| {
            r == "VolumeMismatch"
                && m == "Cannot bind to requested volume \"pv-small\": requested PV is too small"
        })
    });
}

#[test]
fn wait_for_first_consumer_local_volumes_choose_the_pods_node() {
    let c = TestCluster::start(3);
    c.wait_nodes_ready(3);
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-storage"}, "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        c.post("/apis/storage.k8s.io/v1/storageclasses", &class).0,
        201
    );
    assert_eq!(
        c.post(
            PVS,
            &volume("local-3", "5Gi", "local-storage", Some("node-3"))
        )
        .0,
        201
    );
    assert_eq!(
        c.post(PVCS, &claim("local", "1Gi", Some("local-storage")))
            .0,
        201
    );
    // Not bound until a pod needs it; then on the only node its volume allows.
    eventually(T, "the WaitForFirstConsumer event", || {
        events_for(&c, "local")
            .into_iter()
            .find(|(r, _)| r == "WaitForFirstConsumer")
    });
    assert_eq!(
        field(&c, &format!("{PVCS}/local"), "/status/phase"),
        "Pending"
    );
    assert_eq!(c.post(PODS, &pod_with("db", "local")).0, 201);
    eventually(T, "the pod Running on node-3", || {
        let (_, p) = c.get(&format!("{PODS}/db"));
        (p["status"]["phase"] == "Running").then(|| assert_eq!(p["spec"]["nodeName"], "node-3"))
    });
    assert_eq!(
        field(&c, &format!("{PVCS}/local"), "/spec/volumeName"),
        "local-3"
    );
    assert_eq!(
        field(&c, &format!("{PVS}/local-3"), "/status/phase"),
        "Bound"
    );
    // A second claim of the class: no volume left and no provisioner - no node will do.
    assert_eq!(
        c.post(PVCS, &claim("local2", "1Gi", Some("local-storage")))
            .0,
        201
    );
    assert_eq!(c.post(PODS, &pod_with("db2", "local2")).0, 201);
    eventually(T, "the pod unschedulable", || {
        let (_, p) = c.get(&format!("{PODS}/db2"));
        (p["status"]["conditions"][0]["message"]
            == "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
            .then_some(())
    });
}
