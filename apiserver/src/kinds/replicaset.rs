//! apps/v1 ReplicaSet: defaults (replicas, `status.replicas`, the template's pod spec),
//! validation, the immutable selector, generation, the `status` and `scale` subresources, and
//! kubectl's columns.

use super::shared::{
    default, default_template, obj, selector_immutable, validate_workload, workload_cells,
    workload_columns,
};
use super::{field_or, Kind, SelectableField};
use crate::table::{n, Column};
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
        workload_columns([
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ])
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        workload_cells(
            v,
            [
                json!(n(v, "/spec/replicas")),
                json!(n(v, "/status/replicas")),
                json!(n(v, "/status/readyReplicas")),
            ],
        )
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[field_or("status.replicas", "/status/replicas", "0")];
        FIELDS
    }
}
