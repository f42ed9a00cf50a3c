//! v1 PersistentVolumeClaim: stored, validated (access modes, a storage request) and shown as
//! kubectl shows it; by admission a claim naming no class gets the default StorageClass
//! (DefaultStorageClass) and every claim the `kubernetes.io/pvc-protection` finalizer. The
//! controllers bind it (`controllers/src/persistentvolume.rs`).

use super::shared::{add_finalizer, default, obj};
use super::Kind;
use crate::table::{age, col, or_none, s, Column};
use coxswain_api::resources::{ResourceInfo, PERSISTENTVOLUMECLAIMS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The PersistentVolumeClaim kind.
pub struct PersistentVolumeClaim;

const MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

impl Kind for PersistentVolumeClaim {
    fn info(&self) -> &'static ResourceInfo {
        &PERSISTENTVOLUMECLAIMS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::PersistentVolumeClaim>(v)
    }

    fn admit_create(
        &self,
        st: &crate::state::AppState,
        v: &mut Value,
    ) -> Result<(), coxswain_api::status::ApiError> {
        // DefaultStorageClass: a claim naming no class (not even "") gets the default one.
        let named = v.at("/spec/storageClassName").is_some_and(|c| !c.is_null())
            || v.at("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .is_some();
        if !named {
            if let (Some(class), Some(spec)) = (
                super::storageclass::default_class(st),
                v.get_mut("spec").and_then(Value::as_object_mut),
            ) {
                spec.insert("storageClassName".into(), json!(class));
            }
        }
        // StorageObjectInUseProtection: deletion waits until no scheduled pod uses it.
        add_finalizer(v, "kubernetes.io/pvc-protection");
        Ok(())
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Pending"}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "volumeMode", json!("Filesystem"));
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        match v.at("/spec/accessModes").and_then(Value::as_array) {
            Some(m) if !m.is_empty() => {
                for x in m {
                    let x = x.as_str().unwrap_or_default();
                    if !MODES.contains(&x) {
                        causes.push(Cause::not_supported("spec.accessModes", x, MODES));
                    }
                }
            }
            _ => causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: at least 1 access mode is required".into(),
                field: "spec.accessModes".into(),
            }),
        }
        if v.at("/spec/resources/requests/storage").is_none() {
            causes.push(Cause::required("spec.resources[storage]"));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        // The binder sets volumeName once (it may change while it is still empty).
        let unbound = old
            .at("/spec/volumeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        let rest = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(r) = s.pointer_mut("/resources").and_then(Value::as_object_mut) {
                r.remove("requests");
            }
            if unbound {
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeName");
                }
            }
            s
        };
        if rest(old) != rest(new) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
                field: "spec".into(),
            });
        }
    }

    fn columns(&self) -> Vec<Column> {
        let mut c: Vec<Column> = [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
        ]
        .iter()
        .map(|n| col(n, "string", 0))
        .collect();
        c.push(col("VolumeMode", "string", 1));
        c
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let modes = v
            .at("/status/accessModes")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .map(|x| match x.as_str().unwrap_or_default() {
                        "ReadWriteOnce" => "RWO",
                        "ReadOnlyMany" => "ROX",
                        "ReadWriteMany" => "RWX",
                        "ReadWriteOncePod" => "RWOP",
                        _ => "",
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        vec![
            json!(s(v, "/metadata/name")),
            json!(if v.at("/metadata/deletionTimestamp").is_some() {
                "Terminating".to_string()
            } else {
                s(v, "/status/phase")
            }),
            json!(s(v, "/spec/volumeName")),
            json!(s(v, "/status/capacity/storage")),
            json!(modes),
            json!(or_none(s(v, "/spec/storageClassName"))),
            json!(or_none(s(v, "/spec/volumeAttributesClassName"))),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(s(v, "/spec/volumeMode")),
        ]
    }
}
