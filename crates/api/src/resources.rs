//! The registry of resources Coxswain serves: one [`ResourceInfo`] per resource, looked up by
//! plural, kind or short name, and the URL paths built from them.

/// Static description of one served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
    /// Has a `/status` subresource (status is ignored on the main resource).
    pub has_status: bool,
    /// Has a `/scale` subresource.
    pub has_scale: bool,
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`: the name used in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `/apis/apps/v1` or `/api/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path, namespaced when `namespace` is given and the resource is.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!(
                    "{}/namespaces/{}/{}",
                    self.group_version_path(),
                    ns,
                    self.plural
                )
            }
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    /// The path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), name)
    }

    /// `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

const ALL: &[&str] = &["all"];

/// `namespaces` (Namespace).
pub static NAMESPACES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `nodes` (Node).
pub static NODES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `pods` (Pod).
pub static PODS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    short_names: &["po"],
    categories: ALL,
    has_status: true,
    has_scale: false,
};

/// `configmaps` (ConfigMap).
pub static CONFIGMAPS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `replicationcontrollers` (ReplicationController).
pub static REPLICATIONCONTROLLERS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ReplicationController",
    plural: "replicationcontrollers",
    singular: "replicationcontroller",
    namespaced: true,
    short_names: &["rc"],
    categories: ALL,
    has_status: true,
    has_scale: true,
};

/// `persistentvolumeclaims` (PersistentVolumeClaim).
pub static PERSISTENTVOLUMECLAIMS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "PersistentVolumeClaim",
    plural: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    namespaced: true,
    short_names: &["pvc"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `events` (Event).
pub static EVENTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `services` (Service).
pub static SERVICES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    namespaced: true,
    short_names: &["svc"],
    categories: ALL,
    has_status: true,
    has_scale: false,
};

/// `endpoints` (Endpoints).
pub static ENDPOINTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    namespaced: true,
    short_names: &["ep"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `secrets` (Secret).
pub static SECRETS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `serviceaccounts` (ServiceAccount).
pub static SERVICEACCOUNTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    namespaced: true,
    short_names: &["sa"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `endpointslices` (EndpointSlice).
pub static ENDPOINTSLICES: ResourceInfo = ResourceInfo {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `resourcequotas` (ResourceQuota).
pub static RESOURCEQUOTAS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ResourceQuota",
    plural: "resourcequotas",
    singular: "resourcequota",
    namespaced: true,
    short_names: &["quota"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `limitranges` (LimitRange).
pub static LIMITRANGES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "LimitRange",
    plural: "limitranges",
    singular: "limitrange",
    namespaced: true,
    short_names: &["limits"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `persistentvolumes` (PersistentVolume).
pub static PERSISTENTVOLUMES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "PersistentVolume",
    plural: "persistentvolumes",
    singular: "persistentvolume",
    namespaced: false,
    short_names: &["pv"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `storageclasses` (StorageClass).
pub static STORAGECLASSES: ResourceInfo = ResourceInfo {
    group: "storage.k8s.io",
    version: "v1",
    kind: "StorageClass",
    plural: "storageclasses",
    singular: "storageclass",
    namespaced: false,
    short_names: &["sc"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `deployments` (Deployment).
pub static DEPLOYMENTS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    namespaced: true,
    short_names: &["deploy"],
    categories: ALL,
    has_status: true,
    has_scale: true,
};

/// `replicasets` (ReplicaSet).
pub static REPLICASETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    namespaced: true,
    short_names: &["rs"],
    categories: ALL,
    has_status: true,
    has_scale: true,
};

/// `statefulsets` (StatefulSet).
pub static STATEFULSETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "StatefulSet",
    plural: "statefulsets",
    singular: "statefulset",
    namespaced: true,
    short_names: &["sts"],
    categories: ALL,
    has_status: true,
    has_scale: true,
};

/// `daemonsets` (DaemonSet).
pub static DAEMONSETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "DaemonSet",
    plural: "daemonsets",
    singular: "daemonset",
    namespaced: true,
    short_names: &["ds"],
    categories: ALL,
    has_status: true,
    has_scale: false,
};

/// `controllerrevisions` (ControllerRevision).
pub static CONTROLLERREVISIONS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ControllerRevision",
    plural: "controllerrevisions",
    singular: "controllerrevision",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `jobs` (Job).
pub static JOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
    singular: "job",
    namespaced: true,
    short_names: &[],
    categories: ALL,
    has_status: true,
    has_scale: false,
};

/// `cronjobs` (CronJob).
pub static CRONJOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "CronJob",
    plural: "cronjobs",
    singular: "cronjob",
    namespaced: true,
    short_names: &["cj"],
    categories: ALL,
    has_status: true,
    has_scale: false,
};

/// `poddisruptionbudgets` (PodDisruptionBudget).
pub static PODDISRUPTIONBUDGETS: ResourceInfo = ResourceInfo {
    group: "policy",
    version: "v1",
    kind: "PodDisruptionBudget",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    namespaced: true,
    short_names: &["pdb"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `leases` (Lease).
pub static LEASES: ResourceInfo = ResourceInfo {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `ingresses` (Ingress).
pub static INGRESSES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    singular: "ingress",
    namespaced: true,
    short_names: &["ing"],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `ingressclasses` (IngressClass).
pub static INGRESSCLASSES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "IngressClass",
    plural: "ingressclasses",
    singular: "ingressclass",
    namespaced: false,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `networkpolicies` (NetworkPolicy).
pub static NETWORKPOLICIES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    singular: "networkpolicy",
    namespaced: true,
    short_names: &["netpol"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `priorityclasses` (PriorityClass).
pub static PRIORITYCLASSES: ResourceInfo = ResourceInfo {
    group: "scheduling.k8s.io",
    version: "v1",
    kind: "PriorityClass",
    plural: "priorityclasses",
    singular: "priorityclass",
    namespaced: false,
    short_names: &["pc"],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `apiservices` (APIService).
pub static APISERVICES: ResourceInfo = ResourceInfo {
    group: "apiregistration.k8s.io",
    version: "v1",
    kind: "APIService",
    plural: "apiservices",
    singular: "apiservice",
    namespaced: false,
    short_names: &[],
    categories: &[],
    has_status: true,
    has_scale: false,
};

/// `roles` (Role).
pub static ROLES: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "Role",
    plural: "roles",
    singular: "role",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `clusterroles` (ClusterRole).
pub static CLUSTERROLES: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    singular: "clusterrole",
    namespaced: false,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `rolebindings` (RoleBinding).
pub static ROLEBINDINGS: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    singular: "rolebinding",
    namespaced: true,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `clusterrolebindings` (ClusterRoleBinding).
pub static CLUSTERROLEBINDINGS: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    namespaced: false,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

/// `horizontalpodautoscalers` (HorizontalPodAutoscaler), stored as autoscaling/v2 and also
/// served as autoscaling/v1 (see [`OTHER_VERSIONS`]).
pub static HORIZONTALPODAUTOSCALERS: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    namespaced: true,
    short_names: &["hpa"],
    categories: &["all"],
    has_status: true,
    has_scale: false,
};

/// Resources served at a group version besides their own (the stored, preferred one),
/// converted by their kind on the way in and out: (resource, group, version).
pub static OTHER_VERSIONS: &[(&ResourceInfo, &str, &str)] = &[
    (&HORIZONTALPODAUTOSCALERS, "autoscaling", "v1"),
    (&EVENTS, "events.k8s.io", "v1"),
];

/// Every resource the API server serves, core group first (the order discovery lists them).
pub static RESOURCES: &[&ResourceInfo] = &[
    &NAMESPACES,
    &NODES,
    &PODS,
    &CONFIGMAPS,
    &REPLICATIONCONTROLLERS,
    &PERSISTENTVOLUMECLAIMS,
    &EVENTS,
    &SERVICES,
    &ENDPOINTS,
    &SECRETS,
    &SERVICEACCOUNTS,
    &RESOURCEQUOTAS,
    &LIMITRANGES,
    &PERSISTENTVOLUMES,
    &DEPLOYMENTS,
    &REPLICASETS,
    &STATEFULSETS,
    &DAEMONSETS,
    &CONTROLLERREVISIONS,
    &JOBS,
    &CRONJOBS,
    &PODDISRUPTIONBUDGETS,
    &HORIZONTALPODAUTOSCALERS,
    &LEASES,
    &ENDPOINTSLICES,
    &INGRESSES,
    &INGRESSCLASSES,
    &NETWORKPOLICIES,
    &PRIORITYCLASSES,
    &APISERVICES,
    &ROLES,
    &CLUSTERROLES,
    &ROLEBINDINGS,
    &CLUSTERROLEBINDINGS,
    &STORAGECLASSES,
];

/// The resource served at `group`/`version`/`plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource served at `group`/`version`/`plural`, at its own group version or one of
/// [`OTHER_VERSIONS`], with the group and version addressed.
pub fn served(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<(&'static ResourceInfo, &'static str, &'static str)> {
    if let Some(r) = by_plural(group, version, plural) {
        return Some((r, r.group, r.version));
    }
    OTHER_VERSIONS
        .iter()
        .find(|(r, g, v)| *g == group && *v == version && r.plural == plural)
        .map(|(r, g, v)| (*r, *g, *v))
}

/// Every (group, version) `r` is served at, its own first.
pub fn versions_of(r: &ResourceInfo) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![];
    if let Some(own) = RESOURCES.iter().find(|x| *x == &r) {
        out.push((own.group, own.version));
    }
    for (o, g, v) in OTHER_VERSIONS {
        if *o == r {
            out.push((*g, *v));
        }
    }
    out
}

/// The resource for an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Resolve what a user typed (`po`, `pods`, `pod`, `Deployment`, `deployments.apps`).
pub fn by_user_name(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower, None),
    };
    RESOURCES.iter().copied().find(|r| {
        let name_ok = r.plural == base
            || r.singular == base
            || r.kind.eq_ignore_ascii_case(&base)
            || r.short_names.contains(&base.as_str());
        let group_ok = group.as_deref().is_none_or(|g| r.group == g);
        name_ok && group_ok
    })
}

/// Every distinct group version (`v1`, `apps/v1`, ...), in registry order, a group's
/// other versions after its own.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        for gv in versions_of(r) {
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out
}

/// Each group with its versions, the preferred (stored) first, in registry order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (g, v) in group_versions() {
        match out.iter_mut().find(|(x, _)| *x == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

/// The resources served at `group`/`version`, at their own version or another.
pub fn at_version(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .copied()
        .filter(|r| versions_of(r).contains(&(group, version)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(by_user_name("po").map(|r| r.kind), Some("Pod"));
        assert_eq!(by_user_name("deploy").map(|r| r.kind), Some("Deployment"));
        assert_eq!(
            by_user_name("deployments.apps").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(
            by_user_name("ReplicaSet").map(|r| r.plural),
            Some("replicasets")
        );
        assert!(by_user_name("widgets").is_none());
        assert_eq!(
            by_kind("apps/v1", "Deployment").map(|r| r.plural),
            Some("deployments")
        );
        assert!(by_kind("v1", "Deployment").is_none());
    }

    #[test]
    fn paths() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        assert_eq!(
            d.object_path(Some("default"), "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        let n = by_plural("", "v1", "nodes").unwrap();
        assert_eq!(n.object_path(Some("default"), "n1"), "/api/v1/nodes/n1");
        assert_eq!(d.qualified_plural(), "deployments.apps");
    }
}
