//! v1 Node: stored as its kubelet registers it; kubectl's columns (STATUS from the Ready
//! condition and `spec.unschedulable`, ROLES from `node-role.kubernetes.io/*` labels); the
//! `spec.unschedulable` field selector (unset is `false`).

use super::{field_or, Kind, SelectableField};
use crate::table::{age, col, or_none, s, Column};
use coxswain_api::resources::{ResourceInfo, NODES};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The Node kind.
pub struct Node;

impl Kind for Node {
    fn info(&self) -> &'static ResourceInfo {
        &NODES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Node>(v)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
            col("External-IP", "string", 1),
            col("OS-Image", "string", 1),
            col("Kernel-Version", "string", 1),
            col("Container-Runtime", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let ready = v
            .at("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| match c["status"].as_str() {
                Some("True") => "Ready",
                _ => "NotReady",
            })
            .unwrap_or("Unknown");
        let mut status = ready.to_string();
        if v.at("/spec/unschedulable") == Some(&json!(true)) {
            status.push_str(",SchedulingDisabled");
        }
        let roles = v
            .at("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let addr = |t: &str| {
            v.at("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| x["type"] == t))
                .map(|x| s(x, "/address"))
                .unwrap_or_default()
        };
        vec![
            json!(s(v, "/metadata/name")),
            json!(status),
            json!(or_none(roles)),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(s(v, "/status/nodeInfo/kubeletVersion")),
            json!(or_none(addr("InternalIP"))),
            json!(or_none(addr("ExternalIP"))),
            json!(s(v, "/status/nodeInfo/osImage")),
            json!(s(v, "/status/nodeInfo/kernelVersion")),
            json!(s(v, "/status/nodeInfo/containerRuntimeVersion")),
        ]
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[field_or(
            "spec.unschedulable",
            "/spec/unschedulable",
            "false",
        )];
        FIELDS
    }
}
