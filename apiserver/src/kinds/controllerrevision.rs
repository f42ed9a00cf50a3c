//! apps/v1 ControllerRevision: the snapshots of pod templates StatefulSets and DaemonSets
//! keep (`rollout history`/`undo` read them): `data` required and immutable, `revision` not
//! negative, and kubectl's columns (the controller as `statefulset.apps/web`).

use super::Kind;
use crate::table::{age, col, n, s, Column};
use coxswain_api::resources::{ResourceInfo, CONTROLLERREVISIONS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

/// The ControllerRevision kind.
pub struct ControllerRevision;

impl Kind for ControllerRevision {
    fn info(&self) -> &'static ResourceInfo {
        &CONTROLLERREVISIONS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<apps::ControllerRevision>(v)
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.entry("revision").or_insert(json!(0));
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        if v.get("data").is_none_or(Value::is_null) {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: data is mandatory".into(),
                field: "data".into(),
            });
        }
        if let Some(r) = v.get("revision").and_then(Value::as_i64).filter(|r| *r < 0) {
            causes.push(Cause::invalid(
                "revision",
                r,
                "must be greater than or equal to 0",
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        if old.get("data") != new.get("data") {
            causes.push(Cause::invalid("data", "{...}", "field is immutable"));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Controller", "string", 0),
            col("Revision", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let controller = v
            .at("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .map_or_else(
                || "<none>".to_string(),
                |r| {
                    let group = s(r, "/apiVersion")
                        .rsplit_once('/')
                        .map(|(g, _)| format!(".{g}"))
                        .unwrap_or_default();
                    format!("{}{group}/{}", s(r, "/kind").to_lowercase(), s(r, "/name"))
                },
            );
        vec![
            json!(s(v, "/metadata/name")),
            json!(controller),
            json!(n(v, "/revision")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
