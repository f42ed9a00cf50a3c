//! v1 PersistentVolume: defaults (reclaim Retain, Filesystem), a new volume `Pending`,
//! validation (access modes, a `storage` capacity, exactly one volume source, local volumes
//! with node affinity), the source and mode immutable, the `kubernetes.io/pv-protection`
//! finalizer by admission, kubectl's columns (`RWO,ROX`). The controllers bind it to claims.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, PERSISTENTVOLUMES};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The PersistentVolume kind.
pub struct PersistentVolume;

const MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// The volume sources a PersistentVolume may name (one of them).
const SOURCES: &[&str] = &[
    "hostPath",
    "local",
    "nfs",
    "csi",
    "iscsi",
    "fc",
    "cephfs",
    "rbd",
    "cinder",
    "glusterfs",
    "flexVolume",
    "azureDisk",
    "azureFile",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "vsphereVolume",
    "quobyte",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "flocker",
];

/// kubectl's ACCESS MODES: `RWO,ROX,RWX,RWOP`, those present.
pub fn access_modes(v: &Value, pointer: &str) -> String {
    let have: Vec<&str> = v
        .at(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| have.contains(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

impl Kind for PersistentVolume {
    fn info(&self) -> &'static ResourceInfo {
        &PERSISTENTVOLUMES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::PersistentVolume>(v)
    }

    fn admit_create(
        &self,
        _st: &crate::state::AppState,
        v: &mut Value,
    ) -> Result<(), coxswain_api::status::ApiError> {
        super::shared::add_finalizer(v, "kubernetes.io/pv-protection");
        Ok(())
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "lastPhaseTransitionTime": now}),
            );
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
            for (k, d) in [
                ("persistentVolumeReclaimPolicy", "Retain"),
                ("volumeMode", "Filesystem"),
            ] {
                if spec.get(k).is_none_or(|x| x.is_null() || x == "") {
                    spec.insert(k.into(), json!(d));
                }
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let modes: Vec<&str> = v
            .at("/spec/accessModes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if modes.is_empty() {
            c.push(Cause::required("spec.accessModes"));
        }
        for m in &modes {
            if !MODES.contains(m) {
                c.push(Cause::not_supported("spec.accessModes", m, MODES));
            }
        }
        if modes.contains(&"ReadWriteOncePod") && modes.len() > 1 {
            c.push(Cause::forbidden(
                "spec.accessModes",
                "may not use ReadWriteOncePod with other access modes",
            ));
        }
        let cap = v
            .at("/spec/capacity")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if cap.is_empty() {
            c.push(Cause::required("spec.capacity"));
        }
        if !cap.contains_key("storage") || cap.len() > 1 {
            c.push(Cause::not_supported(
                "spec.capacity",
                &format!("{:?}", cap.keys().collect::<Vec<_>>()),
                &["storage"],
            ));
        }
        if let Some(q) = cap.get("storage") {
            let text = q
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| q.to_string());
            if text.starts_with('-') {
                c.push(Cause::invalid(
                    "spec.capacity[storage]",
                    format!("\"{text}\""),
                    "must be greater than or equal to 0",
                ));
            }
        }
        if let Some(p) = v
            .at("/spec/persistentVolumeReclaimPolicy")
            .and_then(Value::as_str)
            .filter(|p| !["Delete", "Recycle", "Retain"].contains(p))
        {
            c.push(Cause::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &["Delete", "Recycle", "Retain"],
            ));
        }
        let given: Vec<&&str> = SOURCES
            .iter()
            .filter(|k| v.at(&format!("/spec/{k}")).is_some_and(|x| !x.is_null()))
            .collect();
        match given.as_slice() {
            [] => c.push(Cause::required_because(
                "spec",
                "must specify a volume type",
            )),
            [_, rest @ ..] => {
                for k in rest {
                    c.push(Cause::forbidden(
                        &format!("spec.{k}"),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        if v.at("/spec/local").is_some_and(|x| !x.is_null())
            && v.at("/spec/nodeAffinity").is_none_or(Value::is_null)
        {
            c.push(Cause::required_because(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
        if let Some(r) = v.at("/spec/claimRef").filter(|x| !x.is_null()) {
            for k in ["name", "namespace"] {
                if r[k].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&format!("spec.claimRef.{k}")));
                }
            }
        }
        if let Some(h) = v.at("/spec/hostPath").filter(|x| !x.is_null()) {
            if h["path"].as_str().is_none_or(str::is_empty) {
                c.push(Cause::required("spec.hostPath.path"));
            }
        }
        if let Some(m) = v
            .at("/spec/volumeMode")
            .and_then(Value::as_str)
            .filter(|m| !["Block", "Filesystem"].contains(m))
        {
            c.push(Cause::not_supported(
                "spec.volumeMode",
                m,
                &["Block", "Filesystem"],
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        let source = |v: &Value| {
            SOURCES
                .iter()
                .map(|k| v.at(&format!("/spec/{k}")).cloned())
                .collect::<Vec<_>>()
        };
        if source(old) != source(new) {
            c.push(Cause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        if old.at("/spec/volumeMode") != new.at("/spec/volumeMode") {
            c.push(Cause::invalid(
                "volumeMode",
                new.at("/spec/volumeMode").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("Reclaim Policy", "string", 0),
            col("Status", "string", 0),
            col("Claim", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            col("Reason", "string", 0),
            col("Age", "string", 0),
            col("VolumeMode", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let status = if v.at("/metadata/deletionTimestamp").is_some() {
            "Terminating".to_string()
        } else {
            s(v, "/status/phase")
        };
        let claim = match v.at("/spec/claimRef").filter(|c| !c.is_null()) {
            Some(c) => format!(
                "{}/{}",
                c["namespace"].as_str().unwrap_or(""),
                c["name"].as_str().unwrap_or("")
            ),
            None => String::new(),
        };
        let class = v
            .at("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| s(v, "/spec/storageClassName"));
        let vac = s(v, "/spec/volumeAttributesClassName");
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/spec/capacity/storage")),
            json!(access_modes(v, "/spec/accessModes")),
            json!(s(v, "/spec/persistentVolumeReclaimPolicy")),
            json!(status),
            json!(claim),
            json!(class),
            json!(if vac.is_empty() {
                "<unset>".to_string()
            } else {
                vac
            }),
            json!(s(v, "/status/reason")),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(v
                .at("/spec/volumeMode")
                .and_then(Value::as_str)
                .unwrap_or("<unset>")),
        ]
    }
}
