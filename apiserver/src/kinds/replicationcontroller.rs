//! v1 ReplicationController: defaults (replicas 1; the selector and the object's labels from
//! the template's labels), validation (a non-empty selector matching the template's labels,
//! restartPolicy Always), generation, the `status` and `scale` subresources (the plain-map
//! selector as a label selector), and kubectl's columns.

use super::shared::{default, default_template, obj, workload_cells_with, workload_columns};
use super::Kind;
use crate::table::{n, Column};
use coxswain_api::resources::{ResourceInfo, REPLICATIONCONTROLLERS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Map, Value};

/// The ReplicationController kind.
pub struct ReplicationController;

impl Kind for ReplicationController {
    fn info(&self) -> &'static ResourceInfo {
        &REPLICATIONCONTROLLERS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::ReplicationController>(v)
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
        let labels = v.at("/spec/template/metadata/labels").cloned();
        if let Some(spec) = obj(v, "spec") {
            default(spec, "replicas", json!(1));
            let empty = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if let (true, Some(l)) = (empty, labels.clone()) {
                spec.insert("selector".into(), l);
            }
        }
        if let (Some(l), Some(md)) = (labels, obj(v, "metadata")) {
            if md
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                md.insert("labels".into(), l);
            }
        }
        if let Some(st) = obj(v, "status") {
            default(st, "replicas", json!(0));
        }
        default_template(v);
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        if let Some(r) = v.at("/spec/replicas").and_then(Value::as_i64) {
            if r < 0 {
                causes.push(Cause::invalid(
                    "spec.replicas",
                    r,
                    "must be greater than or equal to 0",
                ));
            }
        }
        let sel = v.at("/spec/selector").and_then(Value::as_object);
        match sel {
            None => causes.push(Cause::required("spec.selector")),
            Some(m) if m.is_empty() => causes.push(Cause::required("spec.selector")),
            Some(m) => {
                let labels = v
                    .at("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                if !m
                    .iter()
                    .all(|(k, x)| labels.and_then(|l| l.get(k)) == Some(x))
                {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        json!(labels).to_string(),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
        let spec = v.at("/spec/template/spec");
        super::pod::validate_pod_spec(spec, "spec.template.spec", causes);
        if let Some(rp) = spec
            .and_then(|s| s.get("restartPolicy"))
            .and_then(Value::as_str)
        {
            if rp != "Always" {
                causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["Always"],
                ));
            }
        }
    }

    fn label_selector(&self, v: &Value) -> Option<Value> {
        v.at("/spec/selector").map(|m| json!({"matchLabels": m}))
    }

    fn columns(&self) -> Vec<Column> {
        workload_columns([
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ])
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let own = [
            json!(n(v, "/spec/replicas")),
            json!(n(v, "/status/replicas")),
            json!(n(v, "/status/readyReplicas")),
        ];
        workload_cells_with(v, own, self.label_selector(v).as_ref())
    }
}
