//! apps/v1 ReplicaSet: defaults (replicas, `status.replicas`, the template's pod spec),
//! validation, the immutable selector, generation, the `status` and `scale` subresources, and
//! kubectl's columns.

use super::shared::{
    containers_images_selector, default, default_template, obj, selector_immutable,
    validate_workload,
};
use super::{field_or, Kind, SelectableField};
use crate::table::{age, col, n, s, Column};
use coxswain_api::resources::{ResourceInfo, REPLICASETS};
use coxswain_api::status::Cause;
use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

/// The ReplicaSet kind.
pub struct ReplicaSet;

impl Kind for ReplicaSet {
    fn info(&self) -> &'static ResourceInfo {
        &REPLICASETS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<apps::ReplicaSet>(v)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"replicas": 0}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "replicas", json!(1));
        }
        // `replicas` is the one required field of ReplicaSetStatus (strict clients need it).
        if let Some(st) = obj(v, "status") {
            default(st, "replicas", json!(0));
        }
        default_template(v);
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        validate_workload(v, causes);
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        selector_immutable(old, new, causes);
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let [c, i, sel] = containers_images_selector(v);
        vec![
            json!(s(v, "/metadata/name")),
            json!(n(v, "/spec/replicas")),
            json!(n(v, "/status/replicas")),
            json!(n(v, "/status/readyReplicas")),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(c),
            json!(i),
            json!(sel),
        ]
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[field_or("status.replicas", "/status/replicas", "0")];
        FIELDS
    }
}
