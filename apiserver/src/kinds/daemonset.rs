//! apps/v1 DaemonSet: defaults (RollingUpdate with maxUnavailable 1 and maxSurge 0, history
//! limit, the template's pod spec), the template generation annotation
//! (`deprecated.daemonset.template.generation`, bumped when the template changes), validation
//! (selector and template, restartPolicy Always, the update strategy), the immutable
//! selector, generation, `status`, and kubectl's columns.

use super::shared::{
    containers_images, default, default_template, obj, selector_cell, selector_immutable,
    validate_workload,
};
use super::Kind;
use crate::table::{age, col, n, s, Column};
use coxswain_api::resources::{ResourceInfo, DAEMONSETS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

/// The DaemonSet kind.
pub struct DaemonSet;

/// The annotation apps/v1 shows the template generation in.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn int_or_percent(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(p) => p.strip_suffix('%')?.parse().ok(),
        _ => None,
    }
}

impl Kind for DaemonSet {
    fn info(&self) -> &'static ResourceInfo {
        &DAEMONSETS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<apps::DaemonSet>(v)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
            );
        }
        if let Some(md) = obj(v, "metadata") {
            let a = md.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = a.as_object_mut() {
                a.insert(TEMPLATE_GENERATION.into(), json!("1"));
            }
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "revisionHistoryLimit", json!(10));
            let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
            if let Some(us) = us.as_object_mut() {
                default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate")) {
                    default(us, "rollingUpdate", json!({}));
                    if let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "maxUnavailable", json!(1));
                        default(ru, "maxSurge", json!(0));
                    }
                }
            }
        }
        if let Some(st) = obj(v, "status") {
            for k in [
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
            ] {
                default(st, k, json!(0));
            }
        }
        default_template(v);
    }

    fn keep_on_update(&self, cur: &Value, new: &mut Value) {
        let gen: i64 = s(
            cur,
            &format!(
                "/metadata/annotations/{}",
                TEMPLATE_GENERATION.replace('/', "~1")
            ),
        )
        .parse()
        .unwrap_or(1);
        let gen = if cur.at("/spec/template") != new.at("/spec/template") {
            gen + 1
        } else {
            gen
        };
        if let Some(md) = obj(new, "metadata") {
            let a = md.entry("annotations").or_insert_with(|| json!({}));
            if !a.is_object() {
                *a = json!({});
            }
            if let Some(a) = a.as_object_mut() {
                a.insert(TEMPLATE_GENERATION.into(), json!(gen.to_string()));
            }
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        validate_workload(v, causes);
        super::statefulset::validate_long_running(v, "DaemonSet", causes);
        match v.at("/spec/updateStrategy/type").and_then(Value::as_str) {
            Some("OnDelete") => {}
            Some("RollingUpdate") => {
                let ru = v.at("/spec/updateStrategy/rollingUpdate");
                for k in ["maxUnavailable", "maxSurge"] {
                    if let Some(Value::String(p)) = ru.and_then(|r| r.get(k)) {
                        let field = format!("spec.updateStrategy.rollingUpdate.{k}");
                        match p.strip_suffix('%').and_then(|d| d.parse::<u64>().ok()) {
                            None => causes.push(Cause::invalid(&field, format!("\"{p}\""), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")),
                            Some(x) if x > 100 => causes.push(Cause::invalid(&field, format!("\"{p}\""), "must not be greater than 100%")),
                            Some(_) => {}
                        }
                    }
                }
                let unavailable =
                    int_or_percent(ru.and_then(|r| r.get("maxUnavailable"))).unwrap_or(0);
                let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge"))).unwrap_or(0);
                if unavailable < 0 || surge < 0 {
                    causes.push(Cause::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        "{...}",
                        "must be greater than or equal to 0",
                    ));
                } else if unavailable != 0 && surge != 0 {
                    causes.push(Cause::invalid(
                        "spec.updateStrategy.rollingUpdate.maxSurge",
                        json!(ru.and_then(|r| r.get("maxSurge"))),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if unavailable == 0 && surge == 0 {
                    causes.push(Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: cannot be 0 when maxSurge is 0".into(),
                        field: "spec.updateStrategy.rollingUpdate.maxUnavailable".into(),
                    });
                }
            }
            other => causes.push(Cause::not_supported(
                "spec.updateStrategy",
                other.unwrap_or(""),
                &["RollingUpdate", "OnDelete"],
            )),
        }
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
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Node Selector", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let [containers, images] = containers_images(v, "/spec/template/spec");
        let node_selector = v
            .at("/spec/template/spec/nodeSelector")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || "<none>".to_string(),
                |m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
        vec![
            json!(s(v, "/metadata/name")),
            json!(n(v, "/status/desiredNumberScheduled")),
            json!(n(v, "/status/currentNumberScheduled")),
            json!(n(v, "/status/numberReady")),
            json!(n(v, "/status/updatedNumberScheduled")),
            json!(n(v, "/status/numberAvailable")),
            json!(node_selector),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(containers),
            json!(images),
            json!(selector_cell(v.at("/spec/selector"))),
        ]
    }
}
