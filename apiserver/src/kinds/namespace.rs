//! v1 Namespace: a DNS-1123 label name, `spec.finalizers: [kubernetes]` and phase `Active` on
//! create; a delete marks it `Terminating` and it stays until the namespace controller has
//! emptied it and cleared `spec.finalizers` through the `finalize` subresource (the only way
//! to change them); the system namespaces that exist from the start.

use super::shared::{default, obj};
use super::{field, Kind, NameRule, SelectableField, Sub};
use crate::table::{age, col, s, Column};
use crate::AppState;
use coxswain_api::protobuf::{Schema, NAMESPACE_SCHEMA};
use coxswain_api::resources::{ResourceInfo, NAMESPACES};
use coxswain_api::status::ApiError;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The Namespace kind.
pub struct Namespace;

/// Namespaces that exist from the start, and are created again when they go.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces that may not be deleted (Kubernetes' NamespaceLifecycle admission).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

impl Kind for Namespace {
    fn info(&self) -> &'static ResourceInfo {
        &NAMESPACES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Namespace>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(NAMESPACE_SCHEMA)
    }

    fn extra_subresources(&self) -> &'static [Sub] {
        &[Sub::Finalize]
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Active"}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "finalizers", json!(["kubernetes"]));
        }
        if let Some(st) = obj(v, "status") {
            default(st, "phase", json!("Active"));
        }
    }

    fn keep_on_update(&self, cur: &Value, new: &mut Value) {
        new["spec"] = cur.get("spec").cloned().unwrap_or(json!({}));
    }

    fn check_delete(&self, cur: &Value) -> Result<(), ApiError> {
        let name = cur["metadata"]["name"].as_str().unwrap_or("");
        if IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    fn mark_deleting(&self, v: &mut Value) -> bool {
        v["status"]["phase"] = json!("Terminating");
        true
    }

    fn removal_waits(&self, v: &Value) -> bool {
        v["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    }

    /// Namespaces are deleted one by one (no `deletecollection`, as in Kubernetes).
    fn verbs(&self) -> &'static [&'static str] {
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/status/phase")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[field("status.phase", "/status/phase")];
        FIELDS
    }
}

/// Create the system namespaces again whenever they are missing (checked every `period`),
/// as kube-apiserver's system namespaces controller does.
pub async fn keep_system_namespaces(st: std::sync::Arc<AppState>, period: std::time::Duration) {
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = create_system_namespaces(&st).await {
            tracing::warn!(error = %e, "creating the system namespaces");
        }
    }
}

/// Create the system namespaces that are missing.
pub async fn create_system_namespaces(st: &AppState) -> anyhow::Result<()> {
    for ns in SYSTEM_NAMESPACES {
        if st.cache.get(&NAMESPACES, "", ns).is_some() {
            continue;
        }
        let body = json!({"metadata": {"name": ns}});
        if let Err(e) = crate::verbs::create::create_object(st, &NAMESPACES, None, body).await {
            if e.reason != "AlreadyExists" {
                anyhow::bail!("creating namespace {ns}: {e}");
            }
        }
    }
    Ok(())
}
