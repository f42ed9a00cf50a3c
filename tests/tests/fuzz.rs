//! Property-based fuzzing of the API server (issue 13): random mutations of valid objects of
//! every kind, sent with every write verb (create, update, merge patch, strategic merge
//! patch, JSON patch, server-side apply, status), must each get either a 2xx with an object
//! that decodes as its kind's exact type, or a 4xx `Status`; never a 5xx, never a crash. At
//! the end every stored object lists, decodes, survives a restart of the server, and can be
//! deleted.
//!
//! The generator is a seeded xorshift, so a failure names its seed and case and replays
//! exactly. `COX_FUZZ_CASES` sets the number of cases (CI: the default, 400);
//! `COX_FUZZ_SEED` the seed.

use coxswain_testkit::TestCluster;
use serde_json::{json, Value};

/// A small deterministic random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A valid object of each kind, and its collection path.
fn bases() -> Vec<(&'static str, Value)> {
    let template = json!({"metadata": {"labels": {"app": "f"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
            "ports": [{"containerPort": 80}], "resources": {"requests": {"cpu": "100m"}}}]}});
    vec![
        (
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"app": "f"}},
                "spec": template["spec"]}),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "f"}}, "template": template}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "f"}}, "template": template}}),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                "data": {"a": "b"}, "binaryData": {"bin": "aGk="}}),
        ),
        (
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "x", "labels": {"zone": "a"}},
                "spec": {"unschedulable": false, "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"capacity": {"cpu": "4", "pods": "110"}}}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
        ),
        (
            "/api/v1/namespaces/default/replicationcontrollers",
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"},
                "spec": {"replicas": 0, "selector": {"app": "f"}, "template": template}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
                "spec": {"replicas": 0, "serviceName": "x", "selector": {"matchLabels": {"app": "f"}}, "template": template,
                    "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
                "spec": {"selector": {"matchLabels": {"app": "f"}}, "template": {"metadata": template["metadata"],
                    "spec": {"nodeSelector": {"none": "x"}, "containers": template["spec"]["containers"]}}}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/controllerrevisions",
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "x"},
                "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1}),
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
                "spec": {"suspend": true, "completions": 2, "parallelism": 1, "completionMode": "Indexed",
                    "template": {"spec": {"restartPolicy": "Never", "containers": template["spec"]["containers"]}}}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
                "spec": {"schedule": "*/5 * * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure", "containers": template["spec"]["containers"]}}}}}}),
        ),
        (
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"},
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "f"}}}}),
        ),
        (
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "f"},
                    "minReplicas": 1, "maxReplicas": 3,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
                    "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"type": "NodePort", "selector": {"app": "f"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x"},
                "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"},
                "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": true}}],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                "type": "kubernetes.io/basic-auth", "data": {"username": "dQ=="}, "stringData": {"password": "p"}}),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"},
                "automountServiceAccountToken": false, "imagePullSecrets": [{"name": "reg"}]}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
                "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "/apis/networking.k8s.io/v1/ingressclasses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "x"},
                "spec": {"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p"}}}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"},
                "spec": {"podSelector": {"matchLabels": {"app": "f"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 80, "endPort": 90}]}]}}),
        ),
        (
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "x"},
                "value": 100, "description": "d"}),
        ),
        (
            "/apis/apiregistration.k8s.io/v1/apiservices",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.x.example.com"},
                "spec": {"group": "x.example.com", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 100,
                    "service": {"namespace": "default", "name": "s"}}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"},
                "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}],
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "x"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s", "namespace": "default"}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
                "subjects": [{"kind": "Group", "name": "g"}]}),
        ),
        (
            "/api/v1/namespaces/default/resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "x"},
                "spec": {"hard": {"pods": "100", "requests.cpu": "10", "count/deployments.apps": "5"}}}),
        ),
        (
            "/api/v1/namespaces/default/limitranges",
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "x"},
                "spec": {"limits": [{"type": "Container", "default": {"cpu": "2"}, "max": {"cpu": "4"}, "min": {"cpu": "1m"}}]}}),
        ),
        (
            "/api/v1/persistentvolumes",
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "x"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data/x"}}}),
        ),
        (
            "/apis/storage.k8s.io/v1/storageclasses",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"},
                "provisioner": "example.com/x", "parameters": {"a": "b"}, "volumeBindingMode": "Immediate"}),
        ),
        (
            "/api/v1/namespaces/default/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "x"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "R", "message": "m", "count": 1, "type": "Normal",
                "firstTimestamp": "2026-01-01T00:00:00Z"}),
        ),
        (
            "/apis/events.k8s.io/v1/namespaces/default/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "x"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal", "reason": "R",
                "action": "A", "note": "n", "reportingController": "example.com/c",
                "reportingInstance": "i", "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
                "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
        ),
        (
            "/api/v1/namespaces/default/resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "x"},
                "spec": {"hard": {"pods": "10"}, "scopes": ["NotTerminating"],
                    "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["a"]}]}}}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
                "spec": {"holderIdentity": "h", "leaseDurationSeconds": 15,
                    "renewTime": "2026-01-01T00:00:00.000000Z"}}),
        ),
    ]
}

/// Values that are wrong somewhere: out-of-range and ill-typed numbers, strings, structure,
/// nesting, directives.
fn nasty(rng: &mut Rng) -> Value {
    let mut deep = json!(1);
    for _ in 0..(rng.below(200) + 1) {
        deep = json!({ "d": deep });
    }
    let palette = [
        json!(2147483648u64),
        json!(-2147483649i64),
        json!(9223372036854775807i64),
        json!(18446744073709551615u64),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e300),
        json!("x"),
        json!(""),
        json!("2026-13-45T99:99:99Z"),
        json!("!!notbase64"),
        json!(true),
        json!(null),
        json!({}),
        json!([]),
        json!([1, "a", null]),
        json!({"a": {"b": 1}}),
        json!({"$patch": "bogus"}),
        json!({"$patch": "delete"}),
        json!("a".repeat(300)),
        json!("UPPER_case name"),
        deep,
    ];
    rng.pick(&palette).clone()
}

/// Every JSON pointer in `v` (objects and arrays included).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

/// `v` with one to three random changes: a value replaced, a key added, a key removed.
fn mutate(rng: &mut Rng, v: &Value) -> Value {
    let mut v = v.clone();
    for _ in 0..(1 + rng.below(3)) {
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        if ps.is_empty() {
            break;
        }
        let p = rng.pick(&ps).clone();
        let value = nasty(rng);
        match rng.below(3) {
            0 => {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = value;
                }
            }
            1 => {
                if let Some(Value::Object(m)) = v.pointer_mut(&p) {
                    let keys = ["replicas", "x", "$patch", "containerPort", "labels", "spec"];
                    m.insert(rng.pick(&keys).to_string(), value);
                }
            }
            _ => {
                let (parent, key) = p.rsplit_once('/').unwrap_or(("", ""));
                if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                    m.remove(key);
                }
            }
        }
    }
    v
}

/// Decode `v` as the exact type of the collection at `path`.
fn decodes(path: &str, v: &Value) -> Result<(), String> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        coordination::v1 as coord, core::v1 as core, policy::v1 as policy,
    };
    let kind = path.rsplit('/').next().unwrap_or("");
    if path.contains("/events.k8s.io/") {
        let r = serde_json::from_value::<k8s_openapi::api::events::v1::Event>(v.clone());
        return r.map(drop).map_err(|e| e.to_string());
    }
    let r = match kind {
        "pods" => serde_json::from_value::<core::Pod>(v.clone()).map(drop),
        "deployments" => serde_json::from_value::<apps::Deployment>(v.clone()).map(drop),
        "replicasets" => serde_json::from_value::<apps::ReplicaSet>(v.clone()).map(drop),
        "configmaps" => serde_json::from_value::<core::ConfigMap>(v.clone()).map(drop),
        "nodes" => serde_json::from_value::<core::Node>(v.clone()).map(drop),
        "namespaces" => serde_json::from_value::<core::Namespace>(v.clone()).map(drop),
        "events" => serde_json::from_value::<core::Event>(v.clone()).map(drop),
        "leases" => serde_json::from_value::<coord::Lease>(v.clone()).map(drop),
        "replicationcontrollers" => {
            serde_json::from_value::<core::ReplicationController>(v.clone()).map(drop)
        }
        "statefulsets" => serde_json::from_value::<apps::StatefulSet>(v.clone()).map(drop),
        "daemonsets" => serde_json::from_value::<apps::DaemonSet>(v.clone()).map(drop),
        "controllerrevisions" => {
            serde_json::from_value::<apps::ControllerRevision>(v.clone()).map(drop)
        }
        "jobs" => serde_json::from_value::<batch::Job>(v.clone()).map(drop),
        "cronjobs" => serde_json::from_value::<batch::CronJob>(v.clone()).map(drop),
        "poddisruptionbudgets" => {
            serde_json::from_value::<policy::PodDisruptionBudget>(v.clone()).map(drop)
        }
        "services" => serde_json::from_value::<core::Service>(v.clone()).map(drop),
        "endpoints" => serde_json::from_value::<core::Endpoints>(v.clone()).map(drop),
        "secrets" => serde_json::from_value::<core::Secret>(v.clone()).map(drop),
        "serviceaccounts" => serde_json::from_value::<core::ServiceAccount>(v.clone()).map(drop),
        "endpointslices" => {
            serde_json::from_value::<k8s_openapi::api::discovery::v1::EndpointSlice>(v.clone())
                .map(drop)
        }
        "ingresses" => {
            serde_json::from_value::<k8s_openapi::api::networking::v1::Ingress>(v.clone()).map(drop)
        }
        "ingressclasses" => {
            serde_json::from_value::<k8s_openapi::api::networking::v1::IngressClass>(v.clone())
                .map(drop)
        }
        "networkpolicies" => {
            serde_json::from_value::<k8s_openapi::api::networking::v1::NetworkPolicy>(v.clone())
                .map(drop)
        }
        "priorityclasses" => {
            serde_json::from_value::<k8s_openapi::api::scheduling::v1::PriorityClass>(v.clone())
                .map(drop)
        }
        "apiservices" => serde_json::from_value::<
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        >(v.clone())
        .map(drop),
        "roles" => serde_json::from_value::<k8s_openapi::api::rbac::v1::Role>(v.clone()).map(drop),
        "clusterroles" => {
            serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRole>(v.clone()).map(drop)
        }
        "rolebindings" => {
            serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleBinding>(v.clone()).map(drop)
        }
        "clusterrolebindings" => {
            serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(v.clone())
                .map(drop)
        }
        "persistentvolumes" => {
            serde_json::from_value::<core::PersistentVolume>(v.clone()).map(drop)
        }
        "storageclasses" => {
            serde_json::from_value::<k8s_openapi::api::storage::v1::StorageClass>(v.clone())
                .map(drop)
        }
        "resourcequotas" => serde_json::from_value::<core::ResourceQuota>(v.clone()).map(drop),
        "limitranges" => serde_json::from_value::<core::LimitRange>(v.clone()).map(drop),
        "horizontalpodautoscalers" => {
            serde_json::from_value::<autoscaling::HorizontalPodAutoscaler>(v.clone()).map(drop)
        }
        "persistentvolumeclaims" => {
            serde_json::from_value::<core::PersistentVolumeClaim>(v.clone()).map(drop)
        }
        other => return Err(format!("no type for {other}")),
    };
    r.map_err(|e| e.to_string())
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_bodies_get_a_status_or_store_what_every_component_decodes() {
    let cases = env("COX_FUZZ_CASES", 400);
    let seed = env("COX_FUZZ_SEED", 0x5eed_c0c5);
    let mut rng = Rng(seed | 1);
    let mut c = TestCluster::apiserver_only(&[]);
    let bases = bases();
    let mut stored = 0;
    let mut refused = 0;
    for case in 0..cases {
        let (coll, base) = rng.pick(&bases).clone();
        let name = format!("f{}", rng.below(6));
        let mut base = base.clone();
        base["metadata"]["name"] = json!(name);
        let obj = format!("{coll}/{name}");
        // Make sure a valid object is there half the time, so updates and patches apply.
        if rng.below(2) == 0 {
            let _ = c.post(coll, &base);
        }
        let body = mutate(&mut rng, &base);
        let verb = rng.below(8);
        let (code, out) = match verb {
            0 => c.post(coll, &body),
            1 => {
                let (_, mut cur) = c.get(&obj);
                if let Some(m) = cur.as_object_mut() {
                    for (k, v) in body.as_object().cloned().unwrap_or_default() {
                        if k != "metadata" {
                            m.insert(k, v);
                        }
                    }
                }
                c.put(&obj, &cur)
            }
            2 => c.patch(&obj, &body),
            3 => c.send_body(
                "PATCH",
                &obj,
                "application/strategic-merge-patch+json",
                &body.to_string(),
            ),
            4 => {
                let mut ps = Vec::new();
                pointers(&base, String::new(), &mut ps);
                let ops: Vec<Value> = (0..(1 + rng.below(4)))
                    .map(|_| {
                        let p = rng.pick(&ps).clone();
                        match rng.below(4) {
                            0 => json!({"op": "replace", "path": p, "value": nasty(&mut rng)}),
                            1 => json!({"op": "add", "path": format!("{p}/x"), "value": nasty(&mut rng)}),
                            2 => json!({"op": "remove", "path": p}),
                            _ => json!({"op": "copy", "from": p, "path": "/metadata/labels/z"}),
                        }
                    })
                    .collect();
                c.send_body(
                    "PATCH",
                    &obj,
                    "application/json-patch+json",
                    &json!(ops).to_string(),
                )
            }
            5 => c.send_body(
                "PATCH",
                &format!("{obj}?fieldManager=fuzz&force=true"),
                "application/apply-patch+yaml",
                &body.to_string(),
            ),
            6 => c.patch(&format!("{obj}/status"), &body),
            _ => c.send_body(
                "PATCH",
                &obj,
                "application/merge-patch+json",
                &mutate(&mut rng, &json!({"spec": {}, "metadata": {}})).to_string(),
            ),
        };
        let what = format!("seed {seed:#x} case {case}: verb {verb} on {obj} with {body}");
        assert!(code < 500, "{what}: {code} {out}");
        if (200..300).contains(&code) {
            if out.get("kind").and_then(Value::as_str) != Some("Status") {
                decodes(coll, &out).unwrap_or_else(|e| panic!("{what}: stored {out}: {e}"));
            }
            stored += 1;
        } else {
            assert_eq!(out["kind"], "Status", "{what}: {code} {out}");
            refused += 1;
        }
    }
    eprintln!("{cases} cases: {stored} stored, {refused} refused with a Status");
    // Everything stored lists and decodes, before and after a restart, and deletes.
    let check_all = |c: &TestCluster| {
        for (coll, _) in &bases {
            let (code, list) = c.get(coll);
            assert_eq!(code, 200, "{coll}: {list}");
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                decodes(coll, &item).unwrap_or_else(|e| panic!("{coll}: {item}: {e}"));
            }
        }
    };
    check_all(&c);
    c.kill("apiserver");
    c.start_apiserver();
    check_all(&c);
    for (coll, _) in &bases {
        for i in 0..6 {
            let (code, s) = c.delete(&format!("{coll}/f{i}"));
            assert!(code == 200 || code == 404, "{coll}/f{i}: {code} {s}");
        }
    }
}

#[test]
fn random_json_never_stops_the_server() {
    let mut rng = Rng(0x0bad_f00d);
    let c = TestCluster::apiserver_only(&[]);
    let garbage = [
        "",
        "{",
        "[]",
        "null",
        "\"x\"",
        "{\"metadata\":[]}",
        "{\"metadata\":{\"name\":{}}}",
        "{\"kind\":\"Widget\"}",
        "{\"apiVersion\":\"v2\"}",
        "\u{0}\u{1}",
    ];
    let deep = "[".repeat(10_000);
    for case in 0..200 {
        let (coll, _) = rng.pick(&bases()).clone();
        let body: String = match rng.below(3) {
            0 => rng.pick(&garbage).to_string(),
            1 => deep.clone(),
            _ => (0..rng.below(64))
                .map(|_| char::from(b' ' + rng.below(95) as u8))
                .collect(),
        };
        let ct = rng
            .pick(&[
                "application/json",
                "application/yaml",
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/strategic-merge-patch+json",
                "application/vnd.kubernetes.protobuf",
                "text/html",
            ])
            .to_string();
        let method = *rng.pick(&["POST", "PUT", "PATCH", "DELETE"]);
        let path = if method == "POST" {
            coll.to_string()
        } else {
            format!("{coll}/f0")
        };
        let (code, out) = c.send_body(method, &path, &ct, &body);
        assert!(
            (400..500).contains(&code) || (200..300).contains(&code),
            "case {case}: {method} {path} {ct} {body:?}: {code} {out}"
        );
        if code >= 400 {
            assert_eq!(out["kind"], "Status", "case {case}: {out}");
        }
    }
    assert_eq!(c.get("/readyz").0, 200);
}
