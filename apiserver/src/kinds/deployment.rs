//! apps/v1 Deployment: defaults (replicas, history limit, progress deadline, RollingUpdate
//! 25%/25%, the template's pod spec), validation, the immutable selector, generation, the
//! `status` and `scale` subresources, and kubectl's columns.

use super::shared::{
    default, default_template, obj, selector_immutable, validate_workload, workload_cells,
    workload_columns,
};
use super::{field_or, Kind, SelectableField};
use crate::table::{n, Column};
use coxswain_api::protobuf::{Schema, DEPLOYMENT_SCHEMA};
use coxswain_api::resources::{ResourceInfo, DEPLOYMENTS};
use coxswain_api::status::Cause;
use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

/// The Deployment kind.
pub struct Deployment;

impl Kind for Deployment {
    fn info(&self) -> &'static ResourceInfo {
        &DEPLOYMENTS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<apps::Deployment>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(DEPLOYMENT_SCHEMA)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(spec, "strategy", json!({}));
            if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                default(st, "type", json!("RollingUpdate"));
                if st.get("type") == Some(&json!("RollingUpdate")) {
                    default(st, "rollingUpdate", json!({}));
                    if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "maxUnavailable", json!("25%"));
                        default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
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
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ])
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        workload_cells(
            v,
            [
                json!(format!(
                    "{}/{}",
                    n(v, "/status/readyReplicas"),
                    n(v, "/spec/replicas")
                )),
                json!(n(v, "/status/updatedReplicas")),
                json!(n(v, "/status/availableReplicas")),
            ],
        )
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[field_or("status.replicas", "/status/replicas", "0")];
        FIELDS
    }
}
