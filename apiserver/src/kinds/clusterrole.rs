//! rbac.authorization.k8s.io/v1 ClusterRole: rules (non-resource URLs allowed), an
//! `aggregationRule` whose selectors the aggregation controller fills the rules from; the
//! default ClusterRoles and ClusterRoleBindings the API server creates at start when missing
//! (`cluster-admin`, `admin`/`edit`/`view` aggregated from `system:aggregate-to-*`, the
//! discovery and component roles, the controllers' `system:controller:*` roles from
//! `controllerroles.rs`), labelled `kubernetes.io/bootstrapping: rbac-defaults`.
//! Stored only: RBAC is not enforced yet.

use super::rbac::{bootstrap_meta, check_path_segment, check_rules, role_cells};
use super::{Kind, ALL_VERBS};
use crate::state::AppState;
use crate::table::Column;
use coxswain_api::resources::{ResourceInfo, CLUSTERROLEBINDINGS, CLUSTERROLES};
use coxswain_api::status::Cause;
use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::{json, Value};

/// The ClusterRole kind.
pub struct ClusterRole;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGG: &str = "rbac.authorization.k8s.io/aggregate-to-";

/// The default ClusterRoles: (name, labels, aggregated-by label or none, rules).
fn defaults() -> Vec<(&'static str, Value, Option<&'static str>, Value)> {
    let none = json!({});
    vec![
        (
            "cluster-admin",
            none.clone(),
            None,
            json!([rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        ),
        ("admin", none.clone(), Some("admin"), Value::Null),
        (
            "edit",
            json!({format!("{AGG}admin"): "true"}),
            Some("edit"),
            Value::Null,
        ),
        (
            "view",
            json!({format!("{AGG}edit"): "true"}),
            Some("view"),
            Value::Null,
        ),
        (
            "system:aggregate-to-admin",
            json!({format!("{AGG}admin"): "true"}),
            None,
            json!([
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"]
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    ALL_VERBS
                ),
            ]),
        ),
        (
            "system:aggregate-to-edit",
            json!({format!("{AGG}edit"): "true"}),
            None,
            json!([
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy"
                    ],
                    READ
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy"
                    ],
                    WRITE
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy"
                    ],
                    WRITE
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale"
                    ],
                    WRITE
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE
                ),
                rule(&["coordination.k8s.io"], &["leases"], ALL_VERBS),
            ]),
        ),
        (
            "system:aggregate-to-view",
            json!({format!("{AGG}view"): "true"}),
            None,
            json!([
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status"
                    ],
                    READ
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status"
                    ],
                    READ
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status"
                    ],
                    READ
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status"
                    ],
                    READ
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ
                ),
            ]),
        ),
        (
            "system:discovery",
            none.clone(),
            None,
            json!([urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/"
                ],
                &["get"]
            )]),
        ),
        (
            "system:public-info-viewer",
            none.clone(),
            None,
            json!([urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"]
            )]),
        ),
        (
            "system:monitoring",
            none.clone(),
            None,
            json!([urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*"
                ],
                &["get"]
            )]),
        ),
        (
            "system:basic-user",
            none.clone(),
            None,
            json!([
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"]
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"]
                ),
            ]),
        ),
        (
            "system:volume-scheduler",
            none.clone(),
            None,
            json!([
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "patch", "update", "watch"]
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "patch", "update", "watch"]
                ),
            ]),
        ),
        (
            "system:kube-scheduler",
            none.clone(),
            None,
            json!([
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"]
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "get", "update"]
                ),
                rule(&[""], &["nodes"], READ),
                rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
                rule(&[""], &["bindings", "pods/binding"], &["create"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(
                    &["", "apps"],
                    &[
                        "replicationcontrollers",
                        "replicasets",
                        "statefulsets",
                        "services"
                    ],
                    READ
                ),
                rule(&["policy"], &["poddisruptionbudgets"], READ),
                rule(
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                    READ
                ),
            ]),
        ),
        (
            "system:kube-controller-manager",
            none.clone(),
            None,
            json!([
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"]
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "get", "update"]
                ),
                rule(&["*"], &["*"], &["list", "watch"]),
                rule(
                    &[""],
                    &["secrets", "serviceaccounts"],
                    &["create", "get", "update"]
                ),
            ]),
        ),
        (
            "system:node",
            none.clone(),
            None,
            json!([
                rule(
                    &[""],
                    &["nodes", "nodes/status"],
                    &["create", "get", "list", "patch", "update", "watch"]
                ),
                rule(
                    &[""],
                    &["pods"],
                    &["get", "list", "watch", "create", "delete"]
                ),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "secrets",
                        "persistentvolumeclaims",
                        "services"
                    ],
                    READ
                ),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"]
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "delete", "get", "patch", "update"]
                ),
            ]),
        ),
        (
            "system:node-proxier",
            none,
            None,
            json!([
                rule(
                    &["", "discovery.k8s.io"],
                    &["endpoints", "endpointslices", "services", "nodes"],
                    READ
                ),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"]
                ),
            ]),
        ),
    ]
}

/// A default ClusterRoleBinding: name, role, subjects as (kind, name).
type Binding = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The default ClusterRoleBindings.
const BINDINGS: &[Binding] = &[
    (
        "cluster-admin",
        "cluster-admin",
        &[("Group", "system:masters")],
    ),
    (
        "system:discovery",
        "system:discovery",
        &[("Group", "system:authenticated")],
    ),
    (
        "system:basic-user",
        "system:basic-user",
        &[("Group", "system:authenticated")],
    ),
    (
        "system:public-info-viewer",
        "system:public-info-viewer",
        &[
            ("Group", "system:authenticated"),
            ("Group", "system:unauthenticated"),
        ],
    ),
    (
        "system:monitoring",
        "system:monitoring",
        &[("Group", "system:monitoring")],
    ),
    (
        "system:kube-scheduler",
        "system:kube-scheduler",
        &[("User", "system:kube-scheduler")],
    ),
    (
        "system:volume-scheduler",
        "system:volume-scheduler",
        &[("User", "system:kube-scheduler")],
    ),
    (
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        &[("User", "system:kube-controller-manager")],
    ),
    ("system:node", "system:node", &[]),
    (
        "system:node-proxier",
        "system:node-proxier",
        &[("User", "system:kube-proxy")],
    ),
];

/// Create the default ClusterRoles and ClusterRoleBindings that are missing.
pub async fn create_defaults(st: &AppState) {
    use crate::verbs::create::create_object;
    let mut wanted: Vec<(&ResourceInfo, Value)> = Vec::new();
    for (name, labels, aggregated, rules) in defaults() {
        let mut v = json!({"metadata": bootstrap_meta(name, labels)});
        if let Some(by) = aggregated {
            v["aggregationRule"] =
                json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGG}{by}"): "true"}}]});
        } else {
            v["rules"] = rules;
        }
        wanted.push((&CLUSTERROLES, v));
    }
    for (name, role, subjects) in BINDINGS {
        let subjects: Vec<Value> = subjects
            .iter()
            .map(|(kind, n)| json!({"kind": kind, "name": n, "apiGroup": super::rbac::GROUP}))
            .collect();
        wanted.push((&CLUSTERROLEBINDINGS, json!({"metadata": bootstrap_meta(name, json!({})),
            "roleRef": {"apiGroup": super::rbac::GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects})));
    }
    for (name, rules) in super::controllerroles::roles() {
        let role = json!({"metadata": bootstrap_meta(&name, json!({})), "rules": rules});
        let binding = json!({"metadata": bootstrap_meta(&name, json!({})),
            "roleRef": {"apiGroup": super::rbac::GROUP, "kind": "ClusterRole", "name": name},
            "subjects": super::controllerroles::binding_subject(&name)});
        wanted.push((&CLUSTERROLES, role));
        wanted.push((&CLUSTERROLEBINDINGS, binding));
    }
    for (r, body) in wanted {
        let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
        if st.cache.get(r, "", &name).is_some() {
            continue;
        }
        if let Err(e) = create_object(st, r, None, body).await {
            if e.reason != "AlreadyExists" {
                tracing::warn!(error = %e, name, "creating a default RBAC object failed");
            }
        }
    }
}

impl Kind for ClusterRole {
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTERROLES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<rbac::ClusterRole>(v)
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::ROLE_SCHEMA)
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::Any
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        check_path_segment(
            v["metadata"]["name"].as_str().unwrap_or(""),
            "metadata.name",
            c,
        );
        check_rules(v, false, c);
        if let Some(agg) = v.get("aggregationRule").filter(|a| !a.is_null()) {
            if agg["clusterRoleSelectors"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                c.push(Cause::required_because(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        super::rbac::role_columns()
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        role_cells(v)
    }
}
