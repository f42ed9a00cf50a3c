//! storage.k8s.io/v1 StorageClass: defaults (reclaim Delete, binding Immediate), validation
//! (a qualified provisioner; parameters, provisioner and reclaim policy fixed after creation,
//! binding mode immutable), the default class (`storageclass.kubernetes.io/is-default-class:
//! "true"`; `standard`, kind's local-path class, is created at start) that claims naming no
//! class get ([`default_class`]), kubectl's columns (`standard (default)`).

use super::Kind;
use crate::state::AppState;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, STORAGECLASSES};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::storage::v1 as storage;
use serde_json::{json, Value};

/// The StorageClass kind.
pub struct StorageClass;

/// The provisioner of the simulated local-path volumes (as kind's).
pub const LOCAL_PATH: &str = "rancher.io/local-path";

fn is_default(v: &Value) -> bool {
    [
        "storageclass.kubernetes.io~1is-default-class",
        "storageclass.beta.kubernetes.io~1is-default-class",
    ]
    .iter()
    .any(|k| v.at(&format!("/metadata/annotations/{k}")) == Some(&json!("true")))
}

/// The default class (the newest if several; ties by name).
pub fn default_class(st: &AppState) -> Option<String> {
    let (all, _) = st
        .cache
        .list(&STORAGECLASSES, &crate::cache::Filter::default());
    all.iter()
        .filter_map(|o| serde_json::from_slice::<Value>(&o.bytes).ok())
        .filter(is_default)
        .max_by(|a, b| {
            (
                s(a, "/metadata/creationTimestamp"),
                std::cmp::Reverse(s(a, "/metadata/name")),
            )
                .cmp(&(
                    s(b, "/metadata/creationTimestamp"),
                    std::cmp::Reverse(s(b, "/metadata/name")),
                ))
        })
        .map(|v| s(&v, "/metadata/name"))
}

/// Create `standard`, the default class, if there is no StorageClass at all.
pub async fn create_standard(st: &AppState) {
    if !st
        .cache
        .list(&STORAGECLASSES, &crate::cache::Filter::default())
        .0
        .is_empty()
    {
        return;
    }
    let body = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": LOCAL_PATH, "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"});
    if let Err(e) = crate::verbs::create::create_object(st, &STORAGECLASSES, None, body).await {
        if e.reason != "AlreadyExists" {
            tracing::warn!(error = %e, "creating the standard StorageClass failed");
        }
    }
}

impl Kind for StorageClass {
    fn info(&self) -> &'static ResourceInfo {
        &STORAGECLASSES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<storage::StorageClass>(v)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            for (k, d) in [
                ("reclaimPolicy", "Delete"),
                ("volumeBindingMode", "Immediate"),
            ] {
                if m.get(k).is_none_or(Value::is_null) {
                    m.insert(k.into(), json!(d));
                }
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        match v["provisioner"].as_str().unwrap_or("") {
            "" => c.push(Cause::required("provisioner")),
            p if !coxswain_api::validation::is_qualified_name(&p.to_ascii_lowercase()) => c.push(Cause::invalid(
                "provisioner",
                format!("\"{p}\""),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            )),
            _ => {}
        }
        if let Some(p) = v["reclaimPolicy"]
            .as_str()
            .filter(|p| !["Delete", "Retain"].contains(p))
        {
            c.push(Cause::not_supported(
                "reclaimPolicy",
                p,
                &["Delete", "Retain"],
            ));
        }
        if let Some(m) = v["volumeBindingMode"]
            .as_str()
            .filter(|m| !["Immediate", "WaitForFirstConsumer"].contains(m))
        {
            c.push(Cause::not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
        if v["parameters"]
            .as_object()
            .is_some_and(|p| p.contains_key(""))
        {
            c.push(Cause::invalid(
                "parameters",
                "\"\"",
                "field can not be empty.",
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        for k in ["parameters", "provisioner", "reclaimPolicy"] {
            if old.get(k) != new.get(k) {
                c.push(Cause::forbidden(
                    k,
                    &format!("updates to {k} are forbidden."),
                ));
            }
        }
        if old["volumeBindingMode"] != new["volumeBindingMode"] {
            c.push(Cause::invalid(
                "volumeBindingMode",
                &new["volumeBindingMode"],
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Provisioner", "string", 0),
            col("ReclaimPolicy", "string", 0),
            col("VolumeBindingMode", "string", 0),
            col("AllowVolumeExpansion", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let mut name = s(v, "/metadata/name");
        if is_default(v) {
            name.push_str(" (default)");
        }
        vec![
            json!(name),
            json!(s(v, "/provisioner")),
            json!(v["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(v["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(v["allowVolumeExpansion"].as_bool().unwrap_or(false)),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
