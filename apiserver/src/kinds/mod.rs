//! The kinds the API server serves, one module each, in the spirit of Kubernetes' per-resource
//! strategies: what a kind's objects look like when created, defaulted, validated and updated,
//! which subresources it has and what each may change, how it prints as a Table, and which
//! field selectors it supports. The verbs (`crate::verbs`) call these hooks and never branch
//! on a kind's name.
//!
//! Adding a kind: its registry entry in `coxswain_api::resources` (group, version, kind, plural,
//! scope, short names, categories, status/scale), a module here implementing [`Kind`], and its
//! line in [`KINDS`].

pub mod apiservice;
pub mod clusterrole;
pub mod clusterrolebinding;
pub mod configmap;
pub mod controllerrevision;
pub mod controllerroles;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod event;
pub mod horizontalpodautoscaler;
pub mod ingress;
pub mod ingressclass;
pub mod job;
pub mod lease;
pub mod limitrange;
pub mod namespace;
pub mod networkpolicy;
pub mod node;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod poddisruptionbudget;
pub mod priorityclass;
pub mod rbac;
pub mod replicaset;
pub mod replicationcontroller;
pub mod resourcequota;
pub mod role;
pub mod rolebinding;
pub mod secret;
pub mod service;
pub mod serviceaccount;
pub mod shared;
pub mod statefulset;
pub mod storageclass;

use crate::table::{col, Column};
use coxswain_api::protobuf::Schema;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use serde_json::{json, Value};

/// How an object's `metadata.name` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (namespaces).
    Label,
    /// A DNS-1035 label: a label starting with a letter (services).
    Dns1035,
    /// Any non-empty name (events: their names carry a `.` and a hex suffix of any length).
    Any,
}

/// A subresource, and how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `status`: get, update, patch; changes only `.status`.
    Status,
    /// `scale`: autoscaling/v1 Scale over `spec.replicas`.
    Scale,
    /// `finalize` (namespaces): update; changes only `spec.finalizers`.
    Finalize,
    /// `binding` (pods): create; assigns the node once.
    Binding,
    /// `eviction` (pods): create; a graceful delete.
    Eviction,
    /// `log` (pods): get, proxied to the kubelet.
    Log,
}

impl Sub {
    /// The name in the URL.
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Finalize => "finalize",
            Sub::Binding => "binding",
            Sub::Eviction => "eviction",
            Sub::Log => "log",
        }
    }

    /// The verbs discovery lists for it.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Sub::Status | Sub::Scale => &["get", "patch", "update"],
            Sub::Finalize => &["update"],
            Sub::Binding | Sub::Eviction => &["create"],
            Sub::Log => &["get"],
        }
    }

    /// The (group, version, kind) discovery says it answers with; `None`: the parent's.
    pub fn response_kind(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Sub::Scale => Some(("autoscaling", "v1", "Scale")),
            Sub::Binding => Some(("", "v1", "Binding")),
            Sub::Eviction => Some(("policy", "v1", "Eviction")),
            Sub::Status | Sub::Finalize | Sub::Log => None,
        }
    }

    /// The one part of the object a write through this subresource may change (a JSON
    /// pointer), for the subresources that are writes of the object itself.
    pub fn owns(self) -> Option<&'static str> {
        match self {
            Sub::Status => Some("/status"),
            Sub::Finalize => Some("/spec/finalizers"),
            _ => None,
        }
    }
}

/// A field selector a kind supports: its name, where it reads, and the value an unset field
/// has (Kubernetes selects on the typed object, where an unset bool is `false`).
#[derive(Debug, Clone, Copy)]
pub struct SelectableField {
    /// `spec.nodeName`.
    pub name: &'static str,
    /// `/spec/nodeName`.
    pub pointer: &'static str,
    /// The value when the field is unset.
    pub default: &'static str,
}

/// A selectable field whose unset value is `""`.
pub const fn field(name: &'static str, pointer: &'static str) -> SelectableField {
    SelectableField {
        name,
        pointer,
        default: "",
    }
}

/// A selectable field with a default for when it is unset.
pub const fn field_or(
    name: &'static str,
    pointer: &'static str,
    default: &'static str,
) -> SelectableField {
    SelectableField {
        name,
        pointer,
        default,
    }
}

/// Every verb of a stored resource (what discovery lists for most kinds).
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served kind. Every hook has the behaviour most kinds want as its default.
pub trait Kind: Send + Sync + 'static {
    /// Its registry entry.
    fn info(&self) -> &'static ResourceInfo;

    /// Decode `v` as the kind's exact type: unknown fields, and why it does not decode if it
    /// does not (see [`crate::fields::typed`]).
    fn typed_check(&self, v: &Value) -> crate::fields::Typed;

    /// The protobuf schema of its `generated.proto` message, for the kinds kubectl's
    /// generators send as protobuf.
    fn protobuf(&self) -> Option<Schema> {
        None
    }

    /// The protobuf schema of the kind at another version it is served at.
    fn protobuf_at(&self, _version: &str) -> Option<Schema> {
        None
    }

    /// Convert an object of this kind to `apiVersion` `to` (the stored one, or one of the
    /// registry's `OTHER_VERSIONS`), from whichever it is at (`apiVersion` is set by the
    /// caller). Only kinds served at more than one version convert.
    fn convert(&self, _v: &mut Value, _to: &str) {}

    /// Rules an object sent at another `apiVersion` than the stored one must follow there
    /// (checked as sent, before it is converted).
    fn check_version(&self, _v: &Value, _api_version: &str, _causes: &mut Vec<Cause>) {}

    /// Admission on create, with the server's caches (Kubernetes' mutating admission
    /// plugins: a pod's priority from its class, an Ingress's default class): may change
    /// the object or refuse it.
    fn admit_create(&self, _st: &crate::state::AppState, _v: &mut Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// What an object uses against a ResourceQuota besides its counts (which every kind has:
    /// `count/<resource>`): (usage key, amount in milli-units).
    fn quota_usage(&self, _v: &Value) -> Vec<(String, i128)> {
        Vec::new()
    }

    /// Whether an object is in a ResourceQuota scope (`scope` with its selector `op` and
    /// `values`: `Terminating`, `BestEffort`, `PriorityClass In [high]`, ...); objects of kinds
    /// no scope applies to are in none, so a scoped quota does not count them.
    fn in_quota_scope(&self, _v: &Value, _scope: &str, _op: &str, _values: &[String]) -> bool {
        false
    }

    /// The usage keys [`Kind::quota_usage`] may give.
    fn quota_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// What an object fails to say that a quota tracking `tracked` needs (a pod's
    /// containers without cpu or memory requests or limits): `requests.cpu for: a,b` each.
    fn quota_missing(&self, _v: &Value, _tracked: &[&str]) -> Vec<String> {
        Vec::new()
    }

    /// What an object holds exclusively across the cluster, or asks to (a Service's cluster
    /// IP and node ports): taken before it is stored, given back once it no longer holds
    /// them (see `crate::allocator`).
    fn holdings(&self, _v: &Value) -> Vec<crate::allocator::Holding> {
        Vec::new()
    }

    /// Subresources besides `status` and `scale` (which the registry entry declares).
    fn extra_subresources(&self) -> &'static [Sub] {
        &[]
    }

    /// How names are checked.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Whether `metadata.generation` is kept (1 on create, +1 on every spec change).
    fn has_generation(&self) -> bool {
        false
    }

    /// What a create sets besides metadata: usually the status it starts with.
    fn prepare_create(&self, _v: &mut Value) {}

    /// Fill the defaults Kubernetes fills (on every write).
    fn defaults(&self, _v: &mut Value) {}

    /// Kind-specific validation of an object about to be stored (metadata is checked by the
    /// caller); each problem is one cause naming its field.
    fn validate(&self, _v: &Value, _causes: &mut Vec<Cause>) {}

    /// What an update may not change; each problem is one cause.
    fn validate_update(&self, _old: &Value, _new: &Value, _causes: &mut Vec<Cause>) {}

    /// Fields an update of the main resource keeps from the current object, besides status
    /// (kept whenever the kind has a status subresource).
    fn keep_on_update(&self, _cur: &Value, _new: &mut Value) {}

    /// The grace period a delete gives this object (0: none), given the one requested.
    fn grace_period(&self, _cur: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether the object may be deleted at all (the system namespaces may not).
    fn check_delete(&self, _cur: &Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Mark an object being deleted (e.g. a namespace's `Terminating` phase); returns whether
    /// the kind always goes through a marked state before it is removed.
    fn mark_deleting(&self, _v: &mut Value) -> bool {
        false
    }

    /// Whether an object marked for deletion with no finalizers left must still wait (a pod
    /// whose kubelet has not confirmed its containers stopped; a namespace with
    /// `spec.finalizers`).
    fn removal_waits(&self, _v: &Value) -> bool {
        false
    }

    /// The propagation policy of a DELETE that names none (`None`: Background; batch/v1 Jobs
    /// orphan their pods, as Kubernetes keeps for compatibility).
    fn default_propagation(&self) -> Option<&'static str> {
        None
    }

    /// Whether DELETE answers with the object (pods) rather than a `Status`.
    fn delete_returns_object(&self) -> bool {
        false
    }

    /// The object's label selector as a `LabelSelector` (the `scale` subresource's
    /// `status.selector`); a ReplicationController's plain map is converted.
    fn label_selector(&self, v: &Value) -> Option<Value> {
        v.at("/spec/selector").cloned()
    }

    /// The Table columns kubectl prints.
    fn columns(&self) -> Vec<Column> {
        vec![col("Name", "string", 0), col("Age", "string", 0)]
    }

    /// One object's cells, in the order of [`Kind::columns`].
    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(crate::table::s(v, "/metadata/name")),
            json!(crate::table::age(&v["metadata"]["creationTimestamp"])),
        ]
    }

    /// Field selectors besides `metadata.name` and `metadata.namespace`.
    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[];
        FIELDS
    }

    /// The verbs discovery lists for the resource.
    fn verbs(&self) -> &'static [&'static str] {
        ALL_VERBS
    }

    /// The selectable field the cache keeps an index on (`spec.nodeName` for pods), so a
    /// list or watch pinned to one value reads only its objects.
    fn indexed_field(&self) -> Option<&'static str> {
        None
    }
}

/// Every kind, in the registry's order.
pub static KINDS: &[&dyn Kind] = &[
    &namespace::Namespace,
    &node::Node,
    &pod::Pod,
    &configmap::ConfigMap,
    &replicationcontroller::ReplicationController,
    &persistentvolumeclaim::PersistentVolumeClaim,
    &event::Event,
    &service::Service,
    &endpoints::Endpoints,
    &secret::Secret,
    &serviceaccount::ServiceAccount,
    &resourcequota::ResourceQuota,
    &limitrange::LimitRange,
    &persistentvolume::PersistentVolume,
    &deployment::Deployment,
    &replicaset::ReplicaSet,
    &statefulset::StatefulSet,
    &daemonset::DaemonSet,
    &controllerrevision::ControllerRevision,
    &job::Job,
    &cronjob::CronJob,
    &poddisruptionbudget::PodDisruptionBudget,
    &horizontalpodautoscaler::HorizontalPodAutoscaler,
    &lease::Lease,
    &endpointslice::EndpointSlice,
    &ingress::Ingress,
    &ingressclass::IngressClass,
    &networkpolicy::NetworkPolicy,
    &priorityclass::PriorityClass,
    &apiservice::APIService,
    &role::Role,
    &clusterrole::ClusterRole,
    &rolebinding::RoleBinding,
    &clusterrolebinding::ClusterRoleBinding,
    &storageclass::StorageClass,
];

/// The kind serving a registry entry.
pub fn of(r: &ResourceInfo) -> &'static dyn Kind {
    KINDS
        .iter()
        .copied()
        .find(|k| std::ptr::eq(k.info(), r))
        .or_else(|| {
            KINDS.iter().copied().find(|k| {
                let i = k.info();
                i.group == r.group && i.plural == r.plural && i.version == r.version
            })
        })
        .unwrap_or(&Unknown)
}

/// The kind for an object's `apiVersion` and `kind`.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static dyn Kind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.info().kind == kind && k.info().api_version() == api_version)
}

/// The protobuf schema for a body's `apiVersion` and `kind`, at any version the kind is
/// served at.
pub fn protobuf_schema(api_version: &str, kind: &str) -> Option<Schema> {
    if let Some(k) = by_type(api_version, kind) {
        return k.protobuf();
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let k = KINDS
        .iter()
        .copied()
        .find(|k| k.info().kind == kind && k.info().group == group)?;
    k.protobuf_at(version)
}

/// The subresource named `name` of a kind, if it has one.
pub fn subresource(k: &dyn Kind, name: &str) -> Option<Sub> {
    subresources(k).into_iter().find(|s| s.name() == name)
}

/// Every subresource of a kind, `status` and `scale` first.
pub fn subresources(k: &dyn Kind) -> Vec<Sub> {
    let i = k.info();
    let mut out = Vec::new();
    if i.has_status {
        out.push(Sub::Status);
    }
    if i.has_scale {
        out.push(Sub::Scale);
    }
    out.extend_from_slice(k.extra_subresources());
    out
}

/// The selectable field values of an object, in the kind's order.
pub fn field_values(k: &dyn Kind, v: &Value) -> Vec<(&'static str, String)> {
    k.selectable_fields()
        .iter()
        .map(|f| {
            let val = match v.at(f.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => f.default.to_string(),
            };
            (f.name, val)
        })
        .collect()
}

/// A kind nobody registered (never served: paths and storage keys only resolve registered
/// resources).
struct Unknown;

static UNKNOWN: ResourceInfo = ResourceInfo {
    group: "",
    version: "",
    kind: "",
    plural: "",
    singular: "",
    namespaced: false,
    short_names: &[],
    categories: &[],
    has_status: false,
    has_scale: false,
};

impl Kind for Unknown {
    fn info(&self) -> &'static ResourceInfo {
        &UNKNOWN
    }
    fn typed_check(&self, _v: &Value) -> crate::fields::Typed {
        crate::fields::Typed {
            unknown: Vec::new(),
            error: Some("no kind serves this resource".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coxswain_api::resources::RESOURCES;

    #[test]
    fn every_registry_entry_has_one_kind() {
        for r in RESOURCES {
            let n = KINDS.iter().filter(|k| std::ptr::eq(k.info(), *r)).count();
            assert_eq!(n, 1, "{} has {n} kinds", r.plural);
        }
        assert_eq!(KINDS.len(), RESOURCES.len());
    }

    #[test]
    fn columns_and_cells_agree() {
        for k in KINDS {
            let cells = k.cells(&json!({"metadata": {"name": "x"}}));
            assert_eq!(cells.len(), k.columns().len(), "{}", k.info().plural);
        }
    }
}
