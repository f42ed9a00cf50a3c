//! Kinds stored, checked and shown without a data plane, on the real binaries with the real
//! kubectl: Ingress and IngressClass (the default class), NetworkPolicy, PriorityClass (the
//! system classes; a pod's priority from its class), and APIService (the local ones).

use coxswain_testkit::{eventually, ok, TestCluster};
use serde_json::{json, Value};

const T: std::time::Duration = std::time::Duration::from_secs(60);

const NET: &str = "/apis/networking.k8s.io/v1";

fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn causes(st: &Value) -> Vec<String> {
    st["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["field"].as_str().map(String::from))
        .collect()
}

#[test]
fn ingresses_classes_and_network_policies() {
    let c = TestCluster::start(0);
    let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"}});
    assert_eq!(c.post(&format!("{NET}/ingressclasses"), &class).0, 201);
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "foo.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
            "tls": [{"hosts": ["foo.example.com"], "secretName": "tls"}]}});
    let (code, created) = c.post(&format!("{NET}/namespaces/default/ingresses"), &ing);
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["ingressClassName"], "nginx",
        "the default class"
    );
    let out = ok(&c.kubectl(&["get", "ingress"]));
    assert!(out.starts_with("NAME"), "{out}");
    assert_eq!(
        row(&out, "web")[..5],
        ["web", "nginx", "foo.example.com", "80,", "443"]
    );
    let out = ok(&c.kubectl(&["get", "ingressclass"]));
    assert_eq!(
        row(&out, "nginx")[..3],
        ["nginx", "k8s.io/ingress-nginx", "<none>"]
    );
    let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad"},
        "spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [{"path": "x", "pathType": "Exact",
            "backend": {"service": {"name": "web"}}}, {"path": "/", "backend": {"service": {"name": "w", "port": {"number": 80}}}}]}}]}});
    let (code, st) = c.post(&format!("{NET}/namespaces/default/ingresses"), &bad);
    assert_eq!(code, 422, "{st}");
    let fields = causes(&st);
    for f in [
        "spec.rules[0].host",
        "spec.rules[0].http.paths[0].path",
        "spec.rules[0].http.paths[0].backend",
        "spec.rules[0].http.paths[1].pathType",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }
    // NetworkPolicy: policyTypes and protocols defaulted; CIDR rules.
    let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}], "ports": [{"port": 5432}]}],
            "egress": [{"to": [{"podSelector": {}}]}]}});
    let (code, p) = c.post(&format!("{NET}/namespaces/default/networkpolicies"), &np);
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(p["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(
        row(&ok(&c.kubectl(&["get", "netpol"])), "db")[..2],
        ["db", "app=db"]
    );
    let mut bad = np.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"] =
        json!({"cidr": "10.0.0.0/16", "except": ["192.168.0.0/24"]});
    let (code, st) = c.post(&format!("{NET}/namespaces/default/networkpolicies"), &bad);
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("must be a strict subset of `cidr`"),
        "{st}"
    );
}

#[test]
fn priority_classes_give_pods_their_priority() {
    let c = TestCluster::start(0);
    let out = ok(&c.kubectl(&["get", "priorityclasses"]));
    assert_eq!(
        row(&out, "system-node-critical")[..3],
        ["system-node-critical", "2000001000", "false"]
    );
    assert!(
        out.contains("PREEMPTIONPOLICY") && out.contains("PreemptLowerPriority"),
        "{out}"
    );
    let pcs = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let (code, _) = c.post(
        pcs,
        &json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": false}),
    );
    assert_eq!(code, 201);
    let (code, st) = c.post(
        pcs,
        &json!({"metadata": {"name": "huge"}, "value": 1_000_000_001}),
    );
    assert_eq!(code, 422, "{st}");
    let (code, st) = c.post(
        pcs,
        &json!({"metadata": {"name": "system-mine"}, "value": 5}),
    );
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("system-mine is not a known system priority class"),
        "{st}"
    );
    let (code, st) = c.delete(&format!("{pcs}/system-node-critical"));
    assert_eq!(code, 403, "{st}");
    let (code, st) = c.patch(&format!("{pcs}/high"), &json!({"value": 2000}));
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("value: Forbidden: may not be changed in an update."),
        "{st}"
    );
    // Pods get their class's value; a missing class is refused; no class is 0.
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |name: &str, class: Option<&str>| {
        let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        if let Some(cl) = class {
            p["spec"]["priorityClassName"] = json!(cl);
        }
        p
    };
    let (code, p) = c.post(pods, &pod("vip", Some("high")));
    assert_eq!(code, 201, "{p}");
    assert_eq!(
        (
            p["spec"]["priority"].as_i64(),
            p["spec"]["preemptionPolicy"].as_str()
        ),
        (Some(1000), Some("PreemptLowerPriority"))
    );
    let (code, st) = c.post(pods, &pod("lost", Some("nope")));
    assert_eq!(code, 403);
    assert_eq!(
        st["message"],
        "pods \"lost\" is forbidden: no PriorityClass with name nope was found"
    );
    let (_, p) = c.post(pods, &pod("plain", None));
    assert_eq!(p["spec"]["priority"], 0);
    // A global default applies to pods that name none; only one may exist.
    assert_eq!(
        c.post(
            pcs,
            &json!({"metadata": {"name": "dflt"}, "value": 7, "globalDefault": true})
        )
        .0,
        201
    );
    let (code, st) = c.post(
        pcs,
        &json!({"metadata": {"name": "dflt2"}, "value": 8, "globalDefault": true}),
    );
    assert_eq!(code, 403, "{st}");
    let (_, p) = c.post(pods, &pod("defaulted", None));
    assert_eq!(
        (
            p["spec"]["priority"].as_i64(),
            p["spec"]["priorityClassName"].as_str()
        ),
        (Some(7), Some("dflt"))
    );
}

#[test]
fn local_api_services_are_registered() {
    let c = TestCluster::start(0);
    let out = ok(&c.kubectl(&["get", "apiservices"]));
    assert!(out.starts_with("NAME"), "{out}");
    assert_eq!(row(&out, "v1.apps")[..3], ["v1.apps", "Local", "True"]);
    assert_eq!(
        row(&out, "v2.autoscaling")[..3],
        ["v2.autoscaling", "Local", "True"]
    );
    let (_, core) = c.get("/apis/apiregistration.k8s.io/v1/apiservices/v1.");
    assert_eq!(core["spec"]["groupPriorityMinimum"], 18000);
    let (code, st) = c.post(
        "/apis/apiregistration.k8s.io/v1/apiservices",
        &json!({"metadata": {"name": "v1beta1.wrong"}, "spec": {"group": "metrics.example.com", "version": "v1beta1",
            "groupPriorityMinimum": 100, "versionPriority": 100, "service": {"namespace": "x", "name": "y"}}}),
    );
    assert_eq!(code, 422, "{st}");
    assert!(causes(&st).contains(&"metadata.name".to_string()));
}

#[test]
fn rbac_objects_default_roles_and_aggregation() {
    let c = TestCluster::start(0);
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    // The defaults, and admin/edit/view aggregated from the aggregate-to roles.
    let (_, admin) = c.get(&format!("{rbac}/clusterroles/cluster-admin"));
    assert_eq!(
        admin["rules"][0],
        json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    );
    assert_eq!(
        admin["metadata"]["labels"]["kubernetes.io/bootstrapping"],
        "rbac-defaults"
    );
    let view_rules = coxswain_testkit::eventually(
        std::time::Duration::from_secs(30),
        "view aggregated",
        || {
            let (_, view) = c.get(&format!("{rbac}/clusterroles/view"));
            view["rules"].as_array().filter(|r| !r.is_empty()).cloned()
        },
    );
    assert!(view_rules
        .iter()
        .any(|r| r["resources"].as_array().unwrap().contains(&json!("pods"))));
    // A CRD author's role joins `view` by its label, and leaves it when the label goes.
    let mine = json!({"metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]});
    assert_eq!(c.post(&format!("{rbac}/clusterroles"), &mine).0, 201);
    let has_widgets = |c: &TestCluster, role: &str| {
        let (_, v) = c.get(&format!("{rbac}/clusterroles/{role}"));
        v["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["resources"] == json!(["widgets"]))
    };
    coxswain_testkit::eventually(
        std::time::Duration::from_secs(30),
        "view has widgets",
        || has_widgets(&c, "view").then_some(()),
    );
    coxswain_testkit::eventually(
        std::time::Duration::from_secs(30),
        "edit and admin too",
        || (has_widgets(&c, "edit") && has_widgets(&c, "admin")).then_some(()),
    );
    assert_eq!(
        c.patch(
            &format!("{rbac}/clusterroles/widgets-view"),
            &json!({"metadata": {"labels": null}})
        )
        .0,
        200
    );
    coxswain_testkit::eventually(
        std::time::Duration::from_secs(30),
        "view without widgets",
        || (!has_widgets(&c, "view")).then_some(()),
    );
    // kubectl's generators and columns.
    ok(&c.kubectl(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ]));
    ok(&c.kubectl(&[
        "create",
        "rolebinding",
        "read-pods",
        "--role=pod-reader",
        "--user=jane",
        "--serviceaccount=default:robot",
    ]));
    let out = ok(&c.kubectl(&["get", "rolebinding", "read-pods", "-o", "wide"]));
    let r = row(&out, "read-pods");
    assert_eq!(r[..2], ["read-pods", "Role/pod-reader"]);
    assert!(
        out.contains("jane") && out.contains("default/robot"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "clusterrolebinding", "cluster-admin"]));
    assert_eq!(
        row(&out, "cluster-admin")[..2],
        ["cluster-admin", "ClusterRole/cluster-admin"]
    );
    // Bad input, named; the role a binding names may not change.
    let (code, st) = c.post(
        &format!("{rbac}/namespaces/default/roles"),
        &json!({"metadata": {"name": "bad"},
        "rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/x"], "verbs": ["get"]}]}),
    );
    assert_eq!(code, 422, "{st}");
    let fields = causes(&st);
    for f in [
        "rules[0].verbs",
        "rules[0].apiGroups",
        "rules[1].nonResourceURLs",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }
    let (code, st) = c.patch(
        &format!("{rbac}/namespaces/default/rolebindings/read-pods"),
        &json!({"roleRef": {"name": "other"}}),
    );
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("cannot change roleRef"),
        "{st}"
    );
    let (code, st) = c.post(
        &format!("{rbac}/clusterrolebindings"),
        &json!({"metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
        "subjects": [{"kind": "ServiceAccount", "name": "s"}]}),
    );
    assert_eq!(code, 422);
    let fields = causes(&st);
    assert!(
        fields.contains(&"roleRef.kind".to_string())
            && fields.contains(&"subjects[0].namespace".to_string()),
        "{fields:?}"
    );
}

#[test]
fn limit_ranges_default_and_bound_pods_and_quotas_count_them() {
    let c = TestCluster::start(0);
    let ns = "/api/v1/namespaces/default";
    let lr = json!({"metadata": {"name": "limits"}, "spec": {"limits": [{"type": "Container",
        "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}});
    let (code, stored) = c.post(&format!("{ns}/limitranges"), &lr);
    assert_eq!(code, 201, "{stored}");
    assert_eq!(
        stored["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "100m", "memory": "128Mi"})
    );
    let pod = |name: &str, limits: Value| json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"limits": limits}}]}});
    let (code, p) = c.post(&format!("{ns}/pods"), &pod("a", json!({})));
    assert_eq!(code, 201, "{p}");
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let (code, st) = c.post(&format!("{ns}/pods"), &pod("big", json!({"cpu": "2"})));
    assert_eq!(code, 403);
    // Its request defaulted from its limit, so both are over, as in Kubernetes.
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with("pods \"big\" is forbidden: ["), "{msg}");
    assert!(
        msg.contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{msg}"
    );
    // A quota of two pods: counted, refused beyond, freed when one goes.
    let q =
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}});
    assert_eq!(c.post(&format!("{ns}/resourcequotas"), &q).0, 201);
    coxswain_testkit::eventually(std::time::Duration::from_secs(30), "usage counted", || {
        let (_, q) = c.get(&format!("{ns}/resourcequotas/q"));
        (q["status"]["used"] == json!({"pods": "1", "requests.cpu": "100m"})).then_some(())
    });
    let out = ok(&c.kubectl(&["get", "quota", "q"]));
    assert!(out.contains("pods: 1/2, requests.cpu: 100m/1"), "{out}");
    assert_eq!(c.post(&format!("{ns}/pods"), &pod("b", json!({}))).0, 201);
    let (_, q) = c.get(&format!("{ns}/resourcequotas/q"));
    assert_eq!(
        q["status"]["used"]["pods"], "2",
        "raised by admission at once"
    );
    let (code, st) = c.post(&format!("{ns}/pods"), &pod("c", json!({})));
    assert_eq!(code, 403);
    assert_eq!(
        st["message"],
        "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    assert_eq!(c.get(&format!("{ns}/pods/c")).0, 404);
    assert_eq!(c.delete(&format!("{ns}/pods/a")).0, 200);
    coxswain_testkit::eventually(std::time::Duration::from_secs(30), "room again", || {
        (c.post(&format!("{ns}/pods"), &pod("c", json!({}))).0 == 201).then_some(())
    });
    // A compute quota needs every container to say what it uses.
    ok(&c.kubectl(&["create", "namespace", "strict"]));
    let (code, _) = c.post(
        "/api/v1/namespaces/strict/resourcequotas",
        &json!({"metadata": {"name": "mem"}, "spec": {"hard": {"limits.memory": "1Gi"}}}),
    );
    assert_eq!(code, 201);
    let bare = json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, st) = c.post("/api/v1/namespaces/strict/pods", &bare);
    assert_eq!(code, 403);
    assert_eq!(
        st["message"],
        "pods \"bare\" is forbidden: failed quota: mem: must specify limits.memory for: c"
    );
    let (code, st) = c.post(
        &format!("{ns}/resourcequotas"),
        &json!({"metadata": {"name": "bad"}, "spec": {"hard": {"widgets": "1", "pods": "-1"}}}),
    );
    assert_eq!(code, 422, "{st}");
}

#[test]
fn storage_classes_and_volumes_are_stored_and_claims_get_the_default_class() {
    let c = TestCluster::start(0);
    let out = ok(&c.kubectl(&["get", "sc"]));
    let r: Vec<String> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        r[..6],
        [
            "standard",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ]
    );
    let claims = "/api/v1/namespaces/default/persistentvolumeclaims";
    let claim = |name: &str, class: Option<&str>| {
        let mut v = json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(cl) = class {
            v["spec"]["storageClassName"] = json!(cl);
        }
        v
    };
    let (_, a) = c.post(claims, &claim("a", None));
    assert_eq!(a["spec"]["storageClassName"], "standard");
    let (_, b) = c.post(claims, &claim("b", Some("")));
    assert_eq!(
        b["spec"]["storageClassName"], "",
        "an explicit empty class means none"
    );
    let pvs = "/api/v1/persistentvolumes";
    let pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "5Gi"},
        "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "hostPath": {"path": "/data/pv1"}}});
    let (code, p) = c.post(pvs, &pv);
    assert_eq!(code, 201, "{p}");
    assert_eq!(
        (
            p["status"]["phase"].as_str(),
            p["spec"]["persistentVolumeReclaimPolicy"].as_str()
        ),
        (Some("Pending"), Some("Retain"))
    );
    // Claim `b` (no class) fits it: the binder binds them.
    eventually(T, "pv1 bound to claim b", || {
        let out = ok(&c.kubectl(&["get", "pv"]));
        (row(&out, "pv1")[..6] == ["pv1", "5Gi", "RWO,ROX", "Retain", "Bound", "default/b"])
            .then_some(())
    });
    let (code, st) = c.post(pvs, &json!({"metadata": {"name": "bad"}, "spec": {"accessModes": ["Sometimes"], "hostPath": {"path": "/x"}, "nfs": {"server": "s", "path": "/"}}}));
    assert_eq!(code, 422, "{st}");
    let fields = causes(&st);
    for f in ["spec.accessModes", "spec.capacity", "spec.nfs"] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }
    let (code, st) = c.patch(
        "/apis/storage.k8s.io/v1/storageclasses/standard",
        &json!({"provisioner": "example.com/other"}),
    );
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("provisioner: Forbidden: updates to provisioner are forbidden."),
        "{st}"
    );
}

#[test]
fn scoped_quotas_count_only_the_pods_in_their_scope() {
    let c = TestCluster::start(0);
    let ns = "/api/v1/namespaces/default";
    for (name, value) in [("high", 1000), ("low", 10)] {
        let pc = json!({"metadata": {"name": name}, "value": value});
        assert_eq!(
            c.post("/apis/scheduling.k8s.io/v1/priorityclasses", &pc).0,
            201
        );
    }
    let quota = json!({"metadata": {"name": "high-pods"}, "spec": {"hard": {"pods": "1"},
        "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
    let (code, q) = c.post(&format!("{ns}/resourcequotas"), &quota);
    assert_eq!(code, 201, "{q}");
    let terminating = json!({"metadata": {"name": "short-lived"}, "spec": {"hard": {"pods": "0"}, "scopes": ["Terminating"]}});
    assert_eq!(c.post(&format!("{ns}/resourcequotas"), &terminating).0, 201);
    let pod = |name: &str, class: &str| {
        let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        if !class.is_empty() {
            p["spec"]["priorityClassName"] = json!(class);
        }
        p
    };
    // Outside the scope: not counted, however many.
    for name in ["plain-1", "plain-2"] {
        assert_eq!(c.post(&format!("{ns}/pods"), &pod(name, "")).0, 201);
    }
    assert_eq!(c.post(&format!("{ns}/pods"), &pod("low-1", "low")).0, 201);
    // In it: one, then refused.
    assert_eq!(c.post(&format!("{ns}/pods"), &pod("high-1", "high")).0, 201);
    let (code, st) = c.post(&format!("{ns}/pods"), &pod("high-2", "high"));
    assert_eq!(code, 403, "{st}");
    assert_eq!(
        st["message"],
        "pods \"high-2\" is forbidden: exceeded quota: high-pods, requested: pods=1, used: pods=1, limited: pods=1"
    );
    // A pod with a deadline is Terminating: the other quota allows none.
    let mut deadline = pod("deadline", "");
    deadline["spec"]["activeDeadlineSeconds"] = json!(60);
    let (code, st) = c.post(&format!("{ns}/pods"), &deadline);
    assert_eq!(code, 403, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota: short-lived"),
        "{st}"
    );
    let (_, q) = c.get(&format!("{ns}/resourcequotas/high-pods"));
    assert_eq!(q["status"]["used"]["pods"], "1");
    // Bad scopes are refused with the field.
    let bad = json!({"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "1"}, "scopes": ["Sometimes"],
        "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}}});
    let (code, st) = c.post(&format!("{ns}/resourcequotas"), &bad);
    assert_eq!(code, 422, "{st}");
    let fields = causes(&st);
    for f in [
        "spec.scopes[0]",
        "spec.scopeSelector.matchExpressions[0].values",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }
}

#[test]
fn kubectl_create_quota_priorityclass_and_ingress_send_protobuf() {
    let c = TestCluster::start(0);
    // kubectl's generators send these as protobuf; the stored objects show every flag.
    let out = c.kubectl(&["create", "quota", "q1", "--hard=pods=2,services=3", "-v=8"]);
    assert!(out.status.success(), "{}", coxswain_testkit::stderr(&out));
    assert!(
        coxswain_testkit::stderr(&out).contains("application/vnd.kubernetes.protobuf"),
        "kubectl sent protobuf"
    );
    let (_, q) = c.get("/api/v1/namespaces/default/resourcequotas/q1");
    assert_eq!(q["spec"]["hard"], json!({"pods": "2", "services": "3"}));
    ok(&c.kubectl(&[
        "create",
        "quota",
        "q2",
        "--hard=pods=1",
        "--scopes=NotTerminating",
    ]));
    let (_, q) = c.get("/api/v1/namespaces/default/resourcequotas/q2");
    assert_eq!(q["spec"]["scopes"], json!(["NotTerminating"]));
    ok(&c.kubectl(&[
        "create",
        "priorityclass",
        "pc1",
        "--value=1000",
        "--description=high",
        "--preemption-policy=Never",
    ]));
    let (_, pc) = c.get("/apis/scheduling.k8s.io/v1/priorityclasses/pc1");
    assert_eq!(
        (&pc["value"], &pc["description"], &pc["preemptionPolicy"]),
        (&json!(1000), &json!("high"), &json!("Never"))
    );
    ok(&c.kubectl(&["create", "priorityclass", "zero", "--value=0"]));
    let (_, pc) = c.get("/apis/scheduling.k8s.io/v1/priorityclasses/zero");
    assert_eq!(pc["value"], 0);
    ok(&c.kubectl(&[
        "create",
        "ingress",
        "simple",
        "--class=default",
        "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
        "--default-backend=defsvc:http",
    ]));
    let (_, ing) = c.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/simple");
    let spec = &ing["spec"];
    assert_eq!(spec["ingressClassName"], "default");
    assert_eq!(spec["rules"][0]["host"], "foo.com");
    let path = &spec["rules"][0]["http"]["paths"][0];
    assert_eq!(
        (&path["path"], &path["pathType"]),
        (&json!("/bar"), &json!("Prefix"))
    );
    assert_eq!(
        path["backend"]["service"],
        json!({"name": "svc1", "port": {"number": 8080}})
    );
    assert_eq!(
        spec["tls"][0],
        json!({"hosts": ["foo.com"], "secretName": "my-cert"})
    );
    assert_eq!(
        spec["defaultBackend"]["service"],
        json!({"name": "defsvc", "port": {"name": "http"}})
    );
}
