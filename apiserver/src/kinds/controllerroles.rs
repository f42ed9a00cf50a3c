//! The `system:controller:<name>` ClusterRoles of the controllers Coxswain runs, each bound
//! by a ClusterRoleBinding of the same name to the ServiceAccount `kube-system/<name>`, as
//! Kubernetes' bootstrap policy creates them (the rules follow its `controller_policy.go`;
//! every role may also write Events). Data only: `clusterrole::create_defaults` creates them.

use serde_json::{json, Value};

/// One rule: (API groups, resources, verbs).
type Rule = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const RW: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const READ: &[&str] = &["get", "list", "watch"];
const UPDATE: &[&str] = &["update"];

/// The controllers' roles (name after `system:controller:`, rules).
const ROLES: &[(&str, &[Rule])] = &[
    (
        "clusterrole-aggregation-controller",
        &[(
            &["rbac.authorization.k8s.io"],
            &["clusterroles"],
            &["escalate", "get", "list", "patch", "update", "watch"],
        )],
    ),
    (
        "cronjob-controller",
        &[
            (
                &["batch"],
                &["cronjobs"],
                &["get", "list", "update", "watch"],
            ),
            (&["batch"], &["jobs"], RW),
            (&["batch"], &["cronjobs/status"], UPDATE),
            (&["batch"], &["cronjobs/finalizers"], UPDATE),
            (&[""], &["pods"], &["delete", "list"]),
        ],
    ),
    (
        "daemon-set-controller",
        &[
            (&["apps", "extensions"], &["daemonsets"], READ),
            (&["apps", "extensions"], &["daemonsets/status"], UPDATE),
            (&["apps", "extensions"], &["daemonsets/finalizers"], UPDATE),
            (&[""], &["nodes"], &["list", "watch"]),
            (
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
            (&[""], &["pods/binding"], &["create"]),
            (&["apps"], &["controllerrevisions"], RW),
        ],
    ),
    (
        "deployment-controller",
        &[
            (
                &["apps", "extensions"],
                &["deployments"],
                &["get", "list", "update", "watch"],
            ),
            (&["apps", "extensions"], &["deployments/status"], UPDATE),
            (&["apps", "extensions"], &["deployments/finalizers"], UPDATE),
            (&["apps", "extensions"], &["replicasets"], RW),
            (&[""], &["pods"], &["get", "list", "update", "watch"]),
        ],
    ),
    (
        "disruption-controller",
        &[
            (&["apps", "extensions"], &["deployments"], READ),
            (&["apps", "extensions"], &["replicasets"], READ),
            (&[""], &["replicationcontrollers"], READ),
            (&["policy"], &["poddisruptionbudgets"], READ),
            (&["apps"], &["statefulsets"], READ),
            (&["policy"], &["poddisruptionbudgets/status"], UPDATE),
            (&["*"], &["*/scale"], &["get"]),
            (&[""], &["pods/status"], &["patch"]),
        ],
    ),
    (
        "endpoint-controller",
        &[
            (&[""], &["pods", "services"], READ),
            (
                &[""],
                &["endpoints"],
                &["create", "delete", "get", "list", "update"],
            ),
            (&[""], &["endpoints/restricted"], &["create"]),
        ],
    ),
    (
        "endpointslice-controller",
        &[
            (&[""], &["nodes", "pods", "services"], READ),
            (&[""], &["services/finalizers"], UPDATE),
            (
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["create", "delete", "get", "list", "update"],
            ),
        ],
    ),
    (
        "generic-garbage-collector",
        &[(
            &["*"],
            &["*"],
            &["delete", "get", "list", "patch", "update", "watch"],
        )],
    ),
    (
        "horizontal-pod-autoscaler",
        &[
            (&["autoscaling"], &["horizontalpodautoscalers"], READ),
            (
                &["autoscaling"],
                &["horizontalpodautoscalers/status"],
                UPDATE,
            ),
            (&["*"], &["*/scale"], &["get", "update"]),
            (&[""], &["pods"], &["list"]),
            (&["metrics.k8s.io"], &["pods"], &["list"]),
            (&["custom.metrics.k8s.io"], &["*"], &["get", "list"]),
            (&["external.metrics.k8s.io"], &["*"], &["get", "list"]),
        ],
    ),
    (
        "job-controller",
        &[
            (&["batch"], &["jobs"], &["get", "list", "update", "watch"]),
            (&["batch"], &["jobs/status"], UPDATE),
            (&["batch"], &["jobs/finalizers"], UPDATE),
            (
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
        ],
    ),
    (
        "namespace-controller",
        &[
            (&[""], &["namespaces"], &["delete", "get", "list", "watch"]),
            (&[""], &["namespaces/finalize", "namespaces/status"], UPDATE),
            (
                &["*"],
                &["*"],
                &["delete", "deletecollection", "get", "list"],
            ),
        ],
    ),
    (
        "node-controller",
        &[
            (
                &[""],
                &["nodes"],
                &["delete", "get", "list", "patch", "update"],
            ),
            (&[""], &["nodes/status"], &["patch", "update"]),
            (&[""], &["pods/status"], &["patch", "update"]),
            (&[""], &["pods"], &["delete", "list"]),
        ],
    ),
    (
        "persistent-volume-binder",
        &[
            (
                &[""],
                &["persistentvolumes"],
                &["create", "delete", "get", "list", "update", "watch"],
            ),
            (&[""], &["persistentvolumes/status"], UPDATE),
            (
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "update", "watch"],
            ),
            (&[""], &["persistentvolumeclaims/status"], UPDATE),
            (
                &[""],
                &["pods"],
                &["create", "delete", "get", "list", "watch"],
            ),
            (&["storage.k8s.io"], &["storageclasses"], READ),
            (&[""], &["nodes"], &["list", "watch"]),
            (&[""], &["events"], &["watch"]),
            (&[""], &["services"], &["get"]),
        ],
    ),
    (
        "pv-protection-controller",
        &[(
            &[""],
            &["persistentvolumes"],
            &["get", "list", "update", "watch"],
        )],
    ),
    (
        "pvc-protection-controller",
        &[
            (
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "update", "watch"],
            ),
            (&[""], &["pods"], READ),
        ],
    ),
    (
        "replicaset-controller",
        &[
            (
                &["apps", "extensions"],
                &["replicasets"],
                &["get", "list", "update", "watch"],
            ),
            (&["apps", "extensions"], &["replicasets/status"], UPDATE),
            (&["apps", "extensions"], &["replicasets/finalizers"], UPDATE),
            (
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
        ],
    ),
    (
        "replication-controller",
        &[
            (
                &[""],
                &["replicationcontrollers"],
                &["get", "list", "update", "watch"],
            ),
            (&[""], &["replicationcontrollers/status"], UPDATE),
            (&[""], &["replicationcontrollers/finalizers"], UPDATE),
            (
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
        ],
    ),
    (
        "resourcequota-controller",
        &[
            (&["*"], &["*"], &["list", "watch"]),
            (&[""], &["resourcequotas/status"], UPDATE),
        ],
    ),
    (
        "service-account-controller",
        &[(&[""], &["serviceaccounts"], &["create"])],
    ),
    (
        "service-controller",
        &[
            (&[""], &["services"], READ),
            (&[""], &["services/status"], &["patch", "update"]),
            (&[""], &["nodes"], &["list", "watch"]),
        ],
    ),
    (
        "statefulset-controller",
        &[
            (&[""], &["pods"], RW),
            (&["apps"], &["statefulsets"], READ),
            (&["apps"], &["statefulsets/status"], UPDATE),
            (&["apps"], &["statefulsets/finalizers"], UPDATE),
            (
                &[""],
                &["persistentvolumeclaims"],
                &["create", "delete", "get", "patch", "update"],
            ),
            (&["apps"], &["controllerrevisions"], RW),
        ],
    ),
    (
        "ttl-after-finished-controller",
        &[(&["batch"], &["jobs"], &["delete", "get", "list", "watch"])],
    ),
];

/// The roles (full names) with their rules, each with the Events rule last.
pub fn roles() -> Vec<(String, Value)> {
    ROLES
        .iter()
        .map(|(name, rules)| {
            let mut list: Vec<Value> = rules
                .iter()
                .map(|(g, r, v)| json!({"apiGroups": g, "resources": r, "verbs": v}))
                .collect();
            list.push(
                json!({"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                "verbs": ["create", "patch", "update"]}),
            );
            (format!("system:controller:{name}"), Value::Array(list))
        })
        .collect()
}

/// The binding of each role to its controller's ServiceAccount in kube-system.
pub fn binding_subject(role: &str) -> Value {
    let sa = role.trim_start_matches("system:controller:");
    json!([{"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}])
}
