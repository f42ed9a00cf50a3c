//! v1 ConfigMap: stored as sent; kubectl's DATA column counts `data` and `binaryData`.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::protobuf::{Schema, CONFIG_MAP_SCHEMA};
use coxswain_api::resources::{ResourceInfo, CONFIGMAPS};
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The ConfigMap kind.
pub struct ConfigMap;

impl Kind for ConfigMap {
    fn info(&self) -> &'static ResourceInfo {
        &CONFIGMAPS
    }

    fn typed_check(&self, v: &Value) -> (Vec<String>, bool) {
        crate::fields::typed::<core::ConfigMap>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(CONFIG_MAP_SCHEMA)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let count = |k: &str| v.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
        vec![
            json!(s(v, "/metadata/name")),
            json!(count("data") + count("binaryData")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
