//! apps/v1 StatefulSet: defaults (OrderedReady, RollingUpdate with partition 0, Retain claims,
//! replicas, history limit, the template's pod spec), validation (a DNS label name, the
//! selector and template, restartPolicy Always, policies), the update rule (only replicas,
//! ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy and
//! minReadySeconds change), generation, `status` and `scale`, and kubectl's columns.

use super::shared::{containers_images, default, default_template, obj, validate_workload};
use super::{Kind, NameRule};
use crate::table::{age, col, n, s, Column};
use coxswain_api::resources::{ResourceInfo, STATEFULSETS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

/// The StatefulSet kind.
pub struct StatefulSet;

/// The spec fields an update may change.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// restartPolicy Always and no activeDeadlineSeconds: what a pod template of a controller
/// that keeps pods running must say (`what`: "StatefulSet", "DaemonSet").
pub fn validate_long_running(v: &Value, what: &str, causes: &mut Vec<Cause>) {
    if let Some(rp) = v
        .at("/spec/template/spec/restartPolicy")
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
    if v.at("/spec/template/spec/activeDeadlineSeconds")
        .is_some_and(|x| !x.is_null())
    {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: activeDeadlineSeconds in {what} is not Supported"),
            field: "spec.template.spec.activeDeadlineSeconds".into(),
        });
    }
}

impl Kind for StatefulSet {
    fn info(&self) -> &'static ResourceInfo {
        &STATEFULSETS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<apps::StatefulSet>(v)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"replicas": 0, "availableReplicas": 0}),
            );
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "serviceName", json!(""));
            let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
            if let Some(us) = us.as_object_mut() {
                if us.get("type").is_none_or(Value::is_null) {
                    us.insert("type".into(), json!("RollingUpdate"));
                    default(us, "rollingUpdate", json!({}));
                }
                if us.get("type") == Some(&json!("RollingUpdate")) {
                    if let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        default(ru, "partition", json!(0));
                    }
                }
            }
            let p = spec
                .entry("persistentVolumeClaimRetentionPolicy")
                .or_insert_with(|| json!({}));
            if let Some(p) = p.as_object_mut() {
                default(p, "whenDeleted", json!("Retain"));
                default(p, "whenScaled", json!("Retain"));
            }
        }
        if let Some(st) = obj(v, "status") {
            default(st, "replicas", json!(0));
            default(st, "availableReplicas", json!(0));
        }
        default_template(v);
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        validate_workload(v, causes);
        validate_long_running(v, "StatefulSet", causes);
        if let Some(p) = v.at("/spec/podManagementPolicy").and_then(Value::as_str) {
            if !["OrderedReady", "Parallel"].contains(&p) {
                causes.push(Cause::invalid(
                    "spec.podManagementPolicy",
                    format!("\"{p}\""),
                    "must be 'OrderedReady' or 'Parallel'",
                ));
            }
        }
        match v.at("/spec/updateStrategy/type").and_then(Value::as_str) {
            Some("RollingUpdate") => {
                let partition = v.at("/spec/updateStrategy/rollingUpdate/partition");
                if partition.and_then(Value::as_i64).is_some_and(|p| p < 0) {
                    causes.push(Cause::invalid(
                        "spec.updateStrategy.rollingUpdate.partition",
                        json!(partition),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            Some("OnDelete") => {
                if v.at("/spec/updateStrategy/rollingUpdate")
                    .is_some_and(|x| !x.is_null())
                {
                    causes.push(Cause::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        "{...}",
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            other => causes.push(Cause::invalid(
                "spec.updateStrategy",
                json!(other),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
        let max_unavailable = v.at("/spec/updateStrategy/rollingUpdate/maxUnavailable");
        let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
        super::shared::check_int_or_percent(max_unavailable, field, causes);
        if let Some(x) = max_unavailable.filter(|x| *x == &json!(0) || *x == &json!("0%")) {
            causes.push(Cause::invalid(field, x, "cannot be 0"));
        }
        for k in ["whenDeleted", "whenScaled"] {
            let p = format!("/spec/persistentVolumeClaimRetentionPolicy/{k}");
            if let Some(x) = v.at(&p).and_then(Value::as_str) {
                if !["Retain", "Delete"].contains(&x) {
                    causes.push(Cause::not_supported(
                        &format!("spec.persistentVolumeClaimRetentionPolicy.{k}"),
                        x,
                        &["Retain", "Delete"],
                    ));
                }
            }
        }
        for (field, ptr) in [
            ("spec.minReadySeconds", "/spec/minReadySeconds"),
            ("spec.ordinals.start", "/spec/ordinals/start"),
        ] {
            if let Some(x) = v.at(ptr).and_then(Value::as_i64).filter(|x| *x < 0) {
                causes.push(Cause::invalid(
                    field,
                    x,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        let rest = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(m) = s.as_object_mut() {
                for k in MUTABLE {
                    m.remove(*k);
                }
            }
            s
        };
        if rest(old) != rest(new) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into(),
                field: "spec".into(),
            });
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let [containers, images] = containers_images(v, "/spec/template/spec");
        vec![
            json!(s(v, "/metadata/name")),
            json!(format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                n(v, "/spec/replicas")
            )),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(containers),
            json!(images),
        ]
    }
}
